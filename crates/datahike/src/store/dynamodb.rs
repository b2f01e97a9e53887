//! The `:dynamodb` backend (cargo feature `dynamodb`): a store in an AWS DynamoDB table, or
//! in an emulator speaking its API.
//!
//! ```text
//! {:store {:backend :dynamodb :table "datahike" :region "us-east-1"}}
//! {:store {:backend :dynamodb :table "datahike" :region "us-east-1" :endpoint "http://127.0.0.1:8000"
//!          :prefix "orders" :access-key-id "..." :secret-access-key "..." :session-token "..."}}
//! ```
//!
//! **Items.** The table has a string partition key `pk` and a string sort key `sk`. One table
//! holds many stores, each under its `:prefix` (or `:id`; default `datahike`). A key `k` of
//! the store lives in the item `pk = <prefix>/<partition of k>`, `sk = k`, where the
//! partition of `k` is its first path segment with its slash (`heads/`, `log/`, `commits/`;
//! `""` for a key without a slash), and for `nodes/` keys the segment plus the next two
//! characters (`nodes/3f`: 256 partitions, so that the writes of a flush spread over
//! DynamoDB's partitions). Listing a prefix is then a `Query` of one partition (`sk`
//! `begins_with` the prefix) whenever the prefix names its partition (`heads/`, `log/db/`,
//! `nodes/ab...`), and otherwise a `Query` of each partition the store has written, which the
//! store records under `pk = <prefix>#partitions` (read only for such listings: `nodes/`
//! and `""`). Nothing is ever a `Scan`.
//!
//! **Values** are in the binary attribute `dv`. An item is at most 400 KB, so a value longer
//! than [`INLINE_MAX`] bytes is split: its chunks go to items `pk = <prefix>#chunks/<key>`,
//! `sk = <version>/<n>` (a fresh random version per write), written first; the item of the
//! key itself, the *manifest*, is written last and holds the version, the chunk count, the
//! length and the BLAKE3 hash of the whole value (`dver`, `dn`, `dlen`, `dh`). A reader reads
//! the manifest, then its chunks, and checks the hash; when a chunk is gone (a writer
//! replaced the value and deleted the old chunks meanwhile) it reads the manifest again. So
//! a reader never sees a torn value, and a crash leaves at most orphan chunks that no
//! manifest names (deleted with the store).
//!
//! **Conditional writes** are conditions on the key's item: `put_if_absent` is
//! `attribute_not_exists(sk)`; `compare_and_set` is `dv = :expected` for an expected value
//! that fits an item and `dh = :blake3(expected)` for one that was chunked. Either way the
//! manifest (or the item) is the one conditionally written, after its chunks, so the swap is
//! one atomic item write; a writer that loses deletes the chunks it wrote. All reads are
//! strongly consistent.
//!
//! **Table.** `OpenMode::Create` creates the table (on-demand billing) when it is missing and
//! waits until it is `ACTIVE`, then writes the store's marker item
//! (`pk = <prefix>#store`). `Open` finds nothing without the table or the marker.
//! `delete-database` deletes the store's items (every recorded partition, its chunks, its
//! marker), never the table, which other stores may share.
//!
//! **Credentials** come from the config (`:access-key-id`, `:secret-access-key`,
//! `:session-token`), else from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_SESSION_TOKEN`, else from the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`
//! or `~/.aws/credentials`, profile `:profile`, `AWS_PROFILE` or `default`). The region comes
//! from `:region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, or the profile in `~/.aws/config`.
//! Instance roles, SSO and `credential_process` are not read (aws-config's chain is a large
//! dependency); give such credentials through the environment. No secret is printed: the
//! config prints redacted, and error messages have the secret key and the session token
//! replaced.
//!
//! The SDK is asynchronous; the store's methods block on a runtime of their own (two threads,
//! shared by every handle of the process). Like every `Store` method, they are meant for
//! synchronous callers: from async code, call the database inside `spawn_blocking`.
//!
//! The writer lock is a lease ([`super::lease`]); the log is the trait's default (one item
//! per record, put if absent, a floor item), plus `log_is_current`: one Query tells a writer
//! that nobody appended after its last record, so a commit skips reading the head and the log.

use super::backend::{optional_string_key, redact, string_key, Backend, OpenMode};
use super::{lease, Store, StoreError, StoreResult, WriterGuard};
use crate::edn::Edn;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, KeySchemaElement, KeyType, KeysAndAttributes,
    PutRequest, ReturnValue, ScalarAttributeType, TableStatus, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// The longest value kept in one item; longer ones are chunked (items are at most 400 KB,
/// keys and attribute names included).
pub const INLINE_MAX: usize = 380 * 1024;

/// Keys per `BatchGetItem` (DynamoDB's limit).
const BATCH_GET_MAX: usize = 100;
/// Chunks per `BatchGetItem`: a response is at most 16 MB.
const BATCH_GET_CHUNKS: usize = 40;
/// Requests per `BatchWriteItem` (DynamoDB's limit; 25 chunks are under its 16 MB too).
const BATCH_WRITE_MAX: usize = 25;
/// Batch calls in flight at once.
const CONCURRENT_CALLS: usize = 8;
/// How long `create-database` waits for a new table to become active.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

type Item = HashMap<String, AttributeValue>;

/// The runtime that drives the SDK's futures; the store's methods block on it. One per
/// process, shared by every handle.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("datahike-dynamodb")
            .enable_all()
            .build()
            .expect("the DynamoDB runtime starts (threads and timers only)")
    })
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// A handle on one store in a DynamoDB table. Cloning yields another handle on the same
/// connection pool.
#[derive(Clone)]
pub struct DynamoStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    table: String,
    prefix: String,
    /// What error messages must never contain: the secret key and the session token.
    secrets: Vec<String>,
    /// Partitions this handle has recorded under `<prefix>#partitions`.
    recorded: Mutex<HashSet<String>>,
    /// The last sequence number this handle appended to each log, for `log_is_current`.
    appended: Mutex<HashMap<String, u64>>,
}

/// Where a key lives: its partition (`heads/`, `nodes/ab`, `""`), a prefix of the key.
fn partition_of(key: &str) -> &str {
    let Some(slash) = key.find('/') else { return "" };
    let segment = &key[..=slash];
    if segment != "nodes/" {
        return segment;
    }
    let end = key[slash + 1..].char_indices().nth(2).map_or(key.len(), |(i, _)| slash + 1 + i);
    &key[..end]
}

/// The partition every key starting with `prefix` lives in, when there is one.
fn partition_of_prefix(prefix: &str) -> Option<&str> {
    let slash = prefix.find('/')?;
    let segment = &prefix[..=slash];
    if segment != "nodes/" {
        return Some(segment);
    }
    (prefix[slash + 1..].chars().count() >= 2).then(|| partition_of(prefix))
}

fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

fn b(bytes: impl Into<Vec<u8>>) -> AttributeValue {
    AttributeValue::B(Blob::new(bytes))
}

fn n(number: usize) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn get_n(item: &Item, name: &str) -> Option<usize> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

/// A manifest of a chunked value, as stored.
struct Manifest {
    version: String,
    chunks: usize,
    len: usize,
    hash: Vec<u8>,
}

fn manifest_of(item: &Item) -> Option<Manifest> {
    Some(Manifest {
        version: get_s(item, "dver")?.to_owned(),
        chunks: get_n(item, "dn")?,
        len: get_n(item, "dlen")?,
        hash: item.get("dh").and_then(|v| v.as_b().ok()).map(|blob| blob.as_ref().to_vec())?,
    })
}

impl DynamoStore {
    fn pk(&self, partition: &str) -> String {
        format!("{}/{partition}", self.inner.prefix)
    }

    fn chunk_pk(&self, key: &str) -> String {
        format!("{}#chunks/{key}", self.inner.prefix)
    }

    fn partitions_pk(&self) -> String {
        format!("{}#partitions", self.inner.prefix)
    }

    fn marker_key(&self) -> Item {
        HashMap::from([("pk".into(), s(format!("{}#store", self.inner.prefix))), ("sk".into(), s("marker"))])
    }

    fn item_key(&self, key: &str) -> Item {
        HashMap::from([("pk".into(), s(self.pk(partition_of(key)))), ("sk".into(), s(key))])
    }

    fn chunk_key(&self, key: &str, version: &str, index: usize) -> Item {
        HashMap::from([("pk".into(), s(self.chunk_pk(key))), ("sk".into(), s(format!("{version}/{index:06}")))])
    }

    /// A `StoreError::Backend` with the SDK's whole message, secrets removed.
    fn error(&self, key: &str, err: impl std::error::Error) -> StoreError {
        let mut reason = DisplayErrorContext(err).to_string();
        for secret in &self.inner.secrets {
            reason = reason.replace(secret.as_str(), "***");
        }
        StoreError::Backend { backend: "dynamodb", key: key.to_owned(), reason }
    }

    fn build_error(&self, key: &str, err: aws_sdk_dynamodb::error::BuildError) -> StoreError {
        self.error(key, err)
    }

    /// Records the partitions (`p:<partition>`) and chunk partitions (`c:<key>`) this handle
    /// is about to write, so that listings and `destroy` find them.
    fn record(&self, names: impl IntoIterator<Item = String>) -> StoreResult<()> {
        let missing: Vec<String> = {
            let recorded = self.inner.recorded.lock().unwrap_or_else(PoisonError::into_inner);
            let mut seen = HashSet::new();
            names.into_iter().filter(|name| !recorded.contains(name) && seen.insert(name.clone())).collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let pk = self.partitions_pk();
        let requests: Vec<WriteRequest> = missing
            .iter()
            .map(|name| self.put_request(HashMap::from([("pk".into(), s(&pk)), ("sk".into(), s(name))])))
            .collect::<StoreResult<_>>()?;
        self.batch_write(requests, "the store's partitions")?;
        self.inner.recorded.lock().unwrap_or_else(PoisonError::into_inner).extend(missing);
        Ok(())
    }

    fn put_request(&self, item: Item) -> StoreResult<WriteRequest> {
        let put = PutRequest::builder().set_item(Some(item)).build().map_err(|e| self.build_error("put", e))?;
        Ok(WriteRequest::builder().put_request(put).build())
    }

    fn delete_request(&self, key: Item) -> StoreResult<WriteRequest> {
        let delete = DeleteRequest::builder().set_key(Some(key)).build().map_err(|e| self.build_error("delete", e))?;
        Ok(WriteRequest::builder().delete_request(delete).build())
    }

    /// Writes the requests 25 at a time, retrying what DynamoDB left unprocessed.
    fn batch_write(&self, requests: Vec<WriteRequest>, what: &str) -> StoreResult<()> {
        let table = &self.inner.table;
        let mut pending = requests;
        let mut backoff = Duration::from_millis(10);
        while !pending.is_empty() {
            // The calls of one round go out together (a flush is ~60 calls of 25 nodes).
            let calls = pending
                .chunks(BATCH_WRITE_MAX)
                .map(|batch| self.inner.client.batch_write_item().request_items(table, batch.to_vec()).send());
            let answers = block_on(stream::iter(calls).buffer_unordered(CONCURRENT_CALLS).collect::<Vec<_>>());
            let mut unprocessed = Vec::new();
            for answer in answers {
                let out = answer.map_err(|e| self.error(what, e))?;
                unprocessed.extend(out.unprocessed_items.and_then(|mut m| m.remove(table)).unwrap_or_default());
            }
            pending = unprocessed;
            if !pending.is_empty() {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
        Ok(())
    }

    /// Reads items by key (any number, no duplicates), strongly consistent, retrying what
    /// DynamoDB left unprocessed; the calls of a round go out together. Returns the items
    /// found, by `(pk, sk)`.
    fn batch_get(&self, keys: Vec<Item>, per_call: usize, what: &str) -> StoreResult<HashMap<(String, String), Item>> {
        let table = &self.inner.table;
        let mut found = HashMap::with_capacity(keys.len());
        let mut pending = keys;
        let mut backoff = Duration::from_millis(10);
        while !pending.is_empty() {
            let requests = pending
                .chunks(per_call)
                .map(|batch| {
                    KeysAndAttributes::builder()
                        .set_keys(Some(batch.to_vec()))
                        .consistent_read(true)
                        .build()
                        .map_err(|e| self.build_error(what, e))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let calls = requests
                .into_iter()
                .map(|request| self.inner.client.batch_get_item().request_items(table, request).send());
            let answers = block_on(stream::iter(calls).buffer_unordered(CONCURRENT_CALLS).collect::<Vec<_>>());
            let mut unprocessed = Vec::new();
            for answer in answers {
                let out = answer.map_err(|e| self.error(what, e))?;
                for item in out.responses.and_then(|mut m| m.remove(table)).unwrap_or_default() {
                    let id = (
                        get_s(&item, "pk").unwrap_or_default().to_owned(),
                        get_s(&item, "sk").unwrap_or_default().to_owned(),
                    );
                    found.insert(id, item);
                }
                unprocessed
                    .extend(out.unprocessed_keys.and_then(|mut m| m.remove(table)).map(|k| k.keys).unwrap_or_default());
            }
            pending = unprocessed;
            if !pending.is_empty() {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
        Ok(found)
    }

    /// Every `sk` of partition `pk` that begins with `prefix` (a strongly consistent Query,
    /// page by page).
    fn query_keys(&self, pk: &str, prefix: &str) -> StoreResult<Vec<String>> {
        let mut keys = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .inner
                .client
                .query()
                .table_name(&self.inner.table)
                .consistent_read(true)
                .projection_expression("sk")
                .set_exclusive_start_key(start.take());
            query = if prefix.is_empty() {
                query.key_condition_expression("pk = :p").expression_attribute_values(":p", s(pk))
            } else {
                query
                    .key_condition_expression("pk = :p AND begins_with(sk, :s)")
                    .expression_attribute_values(":p", s(pk))
                    .expression_attribute_values(":s", s(prefix))
            };
            let out = block_on(query.send()).map_err(|e| self.error(prefix, e))?;
            keys.extend(out.items.unwrap_or_default().iter().filter_map(|item| get_s(item, "sk").map(str::to_owned)));
            match out.last_evaluated_key {
                Some(last) if !last.is_empty() => start = Some(last),
                _ => return Ok(keys),
            }
        }
    }

    /// The recorded names (`p:<partition>`, `c:<key>`) under `<prefix>#partitions`.
    fn recorded_names(&self) -> StoreResult<Vec<String>> {
        self.query_keys(&self.partitions_pk(), "")
    }

    /// The value an item holds: inline, or its chunks, read and checked. `None` when a chunk
    /// is gone (the value was replaced meanwhile: read the manifest again).
    fn value_of(&self, key: &str, item: &Item) -> StoreResult<Option<Vec<u8>>> {
        if let Some(value) = item.get("dv") {
            let blob = value.as_b().map_err(|_| self.corrupt(key, "the value attribute is not binary"))?;
            return Ok(Some(blob.as_ref().to_vec()));
        }
        let manifest =
            manifest_of(item).ok_or_else(|| self.corrupt(key, "an item with neither a value nor a manifest"))?;
        let keys: Vec<Item> = (0..manifest.chunks).map(|i| self.chunk_key(key, &manifest.version, i)).collect();
        let mut chunks = self.batch_get(keys, BATCH_GET_CHUNKS, key)?;
        let pk = self.chunk_pk(key);
        let mut value = Vec::with_capacity(manifest.len);
        for i in 0..manifest.chunks {
            let Some(chunk) = chunks.remove(&(pk.clone(), format!("{}/{i:06}", manifest.version))) else {
                return Ok(None);
            };
            let Some(Ok(bytes)) = chunk.get("dv").map(AttributeValue::as_b) else {
                return Err(self.corrupt(key, "a chunk without a binary value"));
            };
            value.extend_from_slice(bytes.as_ref());
        }
        if value.len() != manifest.len || blake3::hash(&value).as_bytes()[..] != manifest.hash[..] {
            return Err(self.corrupt(key, "the chunks do not hash to the manifest's hash"));
        }
        Ok(Some(value))
    }

    fn corrupt(&self, key: &str, reason: &str) -> StoreError {
        StoreError::Corrupt { key: key.to_owned(), reason: format!("dynamodb table {}: {reason}", self.inner.table) }
    }

    fn get_item(&self, key: &str) -> StoreResult<Option<Item>> {
        let out = block_on(
            self.inner
                .client
                .get_item()
                .table_name(&self.inner.table)
                .set_key(Some(self.item_key(key)))
                .consistent_read(true)
                .send(),
        )
        .map_err(|e| self.error(key, e))?;
        Ok(out.item)
    }

    /// The value of `key`, reading the manifest again while chunks vanish under it.
    fn read(&self, key: &str, mut item: Item) -> StoreResult<Option<Vec<u8>>> {
        for _ in 0..32 {
            if let Some(value) = self.value_of(key, &item)? {
                return Ok(Some(value));
            }
            match self.get_item(key)? {
                Some(again) => item = again,
                None => return Ok(None),
            }
        }
        Err(self.corrupt(key, "the chunks of the value kept vanishing while it was read"))
    }

    /// Writes the chunks of `bytes` under a fresh version; returns the manifest's attributes.
    fn write_chunks(&self, key: &str, bytes: &[u8]) -> StoreResult<Item> {
        self.record([format!("c:{key}")])?;
        let version = uuid::Uuid::new_v4().simple().to_string();
        let requests: Vec<WriteRequest> = bytes
            .chunks(INLINE_MAX)
            .enumerate()
            .map(|(i, chunk)| {
                let mut item = self.chunk_key(key, &version, i);
                item.insert("dv".into(), b(chunk));
                self.put_request(item)
            })
            .collect::<StoreResult<_>>()?;
        let chunks = requests.len();
        self.batch_write(requests, key)?;
        Ok(HashMap::from([
            ("dver".into(), s(version)),
            ("dn".into(), n(chunks)),
            ("dlen".into(), n(bytes.len())),
            ("dh".into(), b(blake3::hash(bytes).as_bytes().to_vec())),
        ]))
    }

    /// Deletes the chunks a manifest names (after the manifest no longer names them).
    fn delete_chunks(&self, key: &str, manifest: &Manifest) -> StoreResult<()> {
        let requests: Vec<WriteRequest> = (0..manifest.chunks)
            .map(|i| self.delete_request(self.chunk_key(key, &manifest.version, i)))
            .collect::<StoreResult<_>>()?;
        self.batch_write(requests, key)
    }

    /// The whole item for `key` holding `bytes`: inline, or a manifest after its chunks.
    fn item_for(&self, key: &str, bytes: &[u8]) -> StoreResult<Item> {
        let mut item = self.item_key(key);
        if bytes.len() <= INLINE_MAX {
            item.insert("dv".into(), b(bytes));
        } else {
            item.extend(self.write_chunks(key, bytes)?);
        }
        Ok(item)
    }

    /// Puts `item` (optionally on a condition) and deletes the chunks of the item it
    /// replaced. Returns whether the condition held; when it did not, deletes the chunks
    /// `item` names.
    fn put_item(&self, key: &str, item: Item, condition: Option<(&str, Option<AttributeValue>)>) -> StoreResult<bool> {
        let ours = manifest_of(&item);
        let mut put = self
            .inner
            .client
            .put_item()
            .table_name(&self.inner.table)
            .set_item(Some(item))
            .return_values(ReturnValue::AllOld);
        if let Some((expression, value)) = condition {
            put = put.condition_expression(expression);
            if let Some(value) = value {
                put = put.expression_attribute_values(":e", value);
            }
        }
        match block_on(put.send()) {
            Ok(out) => {
                if let Some(old) = out.attributes.as_ref().and_then(manifest_of) {
                    self.delete_chunks(key, &old)?;
                }
                Ok(true)
            }
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                if let Some(ours) = ours {
                    self.delete_chunks(key, &ours)?;
                }
                Ok(false)
            }
            Err(err) => Err(self.error(key, err)),
        }
    }

    /// Creates the table when it is missing and waits until it is active.
    fn ensure_table(&self) -> StoreResult<()> {
        let table = &self.inner.table;
        let client = &self.inner.client;
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| self.build_error(table, e))
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| self.build_error(table, e))
        };
        let created = block_on(
            client
                .create_table()
                .table_name(table)
                .attribute_definitions(attribute("pk")?)
                .attribute_definitions(attribute("sk")?)
                .key_schema(key("pk", KeyType::Hash)?)
                .key_schema(key("sk", KeyType::Range)?)
                .billing_mode(BillingMode::PayPerRequest)
                .send(),
        );
        match created {
            Ok(_) => {}
            // Created meanwhile by another process: wait for it like for ours.
            Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(err) => return Err(self.error(&format!("table {table}"), err)),
        }
        let started = Instant::now();
        loop {
            let out = block_on(client.describe_table().table_name(table).send())
                .map_err(|e| self.error(&format!("table {table}"), e))?;
            if out.table.and_then(|t| t.table_status) == Some(TableStatus::Active) {
                return Ok(());
            }
            if started.elapsed() > TABLE_ACTIVE_TIMEOUT {
                return Err(StoreError::Backend {
                    backend: "dynamodb",
                    key: format!("table {table}"),
                    reason: format!("the table was not ACTIVE after {} s", TABLE_ACTIVE_TIMEOUT.as_secs()),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Whether the store's marker item exists; `None` when the table does not.
    fn marker_exists(&self) -> StoreResult<Option<bool>> {
        let got = block_on(
            self.inner
                .client
                .get_item()
                .table_name(&self.inner.table)
                .set_key(Some(self.marker_key()))
                .consistent_read(true)
                .send(),
        );
        match got {
            Ok(out) => Ok(Some(out.item.is_some())),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => Ok(None),
            Err(err) => Err(self.error("the store's marker", err)),
        }
    }

    /// The floor of `log` as the trait's default log keeps it.
    fn floor(&self, log: &str) -> StoreResult<u64> {
        let key = format!("log/{log}/floor");
        match self.get(&key)? {
            None => Ok(0),
            Some(bytes) => bytes
                .as_slice()
                .try_into()
                .map(u64::from_le_bytes)
                .map_err(|_| StoreError::Corrupt { key, reason: format!("a log floor of {} bytes", bytes.len()) }),
        }
    }

    fn write_marker(&self) -> StoreResult<()> {
        let mut item = self.marker_key();
        item.insert("format".into(), n(1));
        block_on(self.inner.client.put_item().table_name(&self.inner.table).set_item(Some(item)).send())
            .map_err(|e| self.error("the store's marker", e))?;
        Ok(())
    }
}

impl Store for DynamoStore {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        match self.get_item(key)? {
            Some(item) => self.read(key, item),
            None => Ok(None),
        }
    }

    /// One round trip answers many keys (MGET / BatchGetItem): worth a prefetch.
    fn prefers_batched_reads(&self) -> bool {
        true
    }

    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let unique: Vec<&String> = {
            let mut seen = HashSet::new();
            keys.iter().filter(|k| seen.insert(k.as_str())).collect()
        };
        let mut found = self.batch_get(unique.iter().map(|k| self.item_key(k)).collect(), BATCH_GET_MAX, "get-many")?;
        let mut values: HashMap<&str, Option<Vec<u8>>> = HashMap::with_capacity(unique.len());
        for key in unique {
            let value = match found.remove(&(self.pk(partition_of(key)), key.clone())) {
                Some(item) => self.read(key, item)?,
                None => None,
            };
            values.insert(key, value);
        }
        // Duplicate keys share one read; each answer is its own copy.
        Ok(keys.iter().map(|k| values.get(k.as_str()).cloned().flatten()).collect())
    }

    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        // A batch may not name one item twice: the last entry of a key wins.
        let mut last: HashMap<&str, &[u8]> = HashMap::with_capacity(entries.len());
        for (key, bytes) in entries {
            last.insert(key, bytes);
        }
        self.record(last.keys().map(|key| format!("p:{}", partition_of(key))))?;
        let mut requests = Vec::new();
        for (key, bytes) in last {
            if bytes.len() <= INLINE_MAX {
                let mut item = self.item_key(key);
                item.insert("dv".into(), b(bytes));
                requests.push(self.put_request(item)?);
            } else {
                let item = self.item_for(key, bytes)?;
                self.put_item(key, item, None)?;
            }
        }
        self.batch_write(requests, "put-batch")
    }

    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        let unique: Vec<&String> = {
            let mut seen = HashSet::new();
            keys.iter().filter(|k| seen.insert(k.as_str())).collect()
        };
        if unique.is_empty() {
            return Ok(());
        }
        // Chunked values lose their chunks too: find them first.
        let found = self.batch_get(unique.iter().map(|k| self.item_key(k)).collect(), BATCH_GET_MAX, "delete-batch")?;
        let mut requests = Vec::new();
        for key in unique {
            let chunked =
                found.get(&(self.pk(partition_of(key)), key.clone())).is_some_and(|item| !item.contains_key("dv"));
            if !chunked {
                requests.push(self.delete_request(self.item_key(key))?);
                continue;
            }
            let out = block_on(
                self.inner
                    .client
                    .delete_item()
                    .table_name(&self.inner.table)
                    .set_key(Some(self.item_key(key)))
                    .return_values(ReturnValue::AllOld)
                    .send(),
            )
            .map_err(|e| self.error(key, e))?;
            if let Some(old) = out.attributes.as_ref().and_then(manifest_of) {
                self.delete_chunks(key, &old)?;
            }
        }
        self.batch_write(requests, "delete-batch")
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        if let Some(partition) = partition_of_prefix(prefix) {
            return self.query_keys(&self.pk(partition), prefix);
        }
        let mut keys = Vec::new();
        for name in self.recorded_names()? {
            let Some(partition) = name.strip_prefix("p:") else { continue };
            if partition.starts_with(prefix) || prefix.starts_with(partition) {
                keys.extend(self.query_keys(&self.pk(partition), prefix)?);
            }
        }
        Ok(keys)
    }

    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        let condition = match expected {
            None => ("attribute_not_exists(sk)", None),
            Some(bytes) if bytes.len() <= INLINE_MAX => ("dv = :e", Some(b(bytes))),
            Some(bytes) => ("dh = :e", Some(b(blake3::hash(bytes).as_bytes().to_vec()))),
        };
        self.record([format!("p:{}", partition_of(key))])?;
        let item = self.item_for(key, new)?;
        self.put_item(key, item, Some(condition))
    }

    /// The trait's default log (a record item written if absent, then the floor checked),
    /// remembering the sequence number for [`Store::log_is_current`].
    fn log_append(&self, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
        let key = super::log_key(log, seq);
        let mut framed = Vec::with_capacity(record.len() + 4);
        framed.extend_from_slice(&crc32fast::hash(record).to_le_bytes());
        framed.extend_from_slice(record);
        if !self.put_if_absent(&key, &framed)? {
            return Err(StoreError::Conflict {
                key,
                reason: format!("log {log} already holds record {seq}: another writer committed it first"),
            });
        }
        let floor = self.floor(log)?;
        if floor >= seq {
            return Err(StoreError::Conflict {
                key,
                reason: format!(
                    "log {log} was discarded through record {floor}: a newer head covers record {seq}, \
                     so this writer is behind another one"
                ),
            });
        }
        self.inner.appended.lock().unwrap_or_else(PoisonError::into_inner).insert(log.to_owned(), seq);
        Ok(())
    }

    /// One Query of the log's items from `last_seq` to its floor item: current when this
    /// handle appended `last_seq` last, that record is still there, no record follows it,
    /// and the floor is below it (no other writer discarded, deleted or fenced the log).
    fn log_is_current(&self, log: &str, last_seq: u64) -> StoreResult<bool> {
        if self.inner.appended.lock().unwrap_or_else(PoisonError::into_inner).get(log) != Some(&last_seq) {
            return Ok(false);
        }
        let ours = super::log_key(log, last_seq);
        let floor_key = format!("log/{log}/floor");
        let prefix = format!("log/{log}/");
        let mut start: Option<Item> = None;
        let mut saw_ours = false;
        loop {
            let out = block_on(
                self.inner
                    .client
                    .query()
                    .table_name(&self.inner.table)
                    .consistent_read(true)
                    .key_condition_expression("pk = :p AND sk BETWEEN :a AND :b")
                    .expression_attribute_values(":p", s(self.pk(partition_of(&ours))))
                    .expression_attribute_values(":a", s(&ours))
                    .expression_attribute_values(":b", s(&floor_key))
                    .set_exclusive_start_key(start.take())
                    .send(),
            )
            .map_err(|e| self.error(&ours, e))?;
            for item in out.items.unwrap_or_default() {
                let Some(sk) = get_s(&item, "sk") else { continue };
                if sk == ours {
                    saw_ours = true;
                } else if sk == floor_key {
                    let floor = self.read(sk, item.clone())?.and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
                    if floor.is_none_or(|floor| floor >= last_seq) {
                        return Ok(false);
                    }
                } else if sk
                    .strip_prefix(&prefix)
                    .is_some_and(|rest| rest.len() == 20 && rest.bytes().all(|c| c.is_ascii_digit()))
                {
                    // A record after ours: another writer appended.
                    return Ok(false);
                }
            }
            match out.last_evaluated_key {
                Some(last) if !last.is_empty() => start = Some(last),
                _ => return Ok(saw_ours),
            }
        }
    }

    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        lease::acquire(Arc::new(self.clone()))
    }

    fn destroy(&self) -> StoreResult<()> {
        let mut requests = Vec::new();
        let names = self.recorded_names()?;
        for name in &names {
            let pk = match (name.strip_prefix("p:"), name.strip_prefix("c:")) {
                (Some(partition), _) => self.pk(partition),
                (_, Some(key)) => self.chunk_pk(key),
                _ => continue,
            };
            for sk in self.query_keys(&pk, "")? {
                requests.push(self.delete_request(HashMap::from([("pk".into(), s(&pk)), ("sk".into(), s(sk))]))?);
            }
        }
        self.batch_write(requests, "destroy")?;
        let pk = self.partitions_pk();
        let recorded: Vec<WriteRequest> = names
            .iter()
            .map(|name| self.delete_request(HashMap::from([("pk".into(), s(&pk)), ("sk".into(), s(name))])))
            .chain(std::iter::once(self.delete_request(self.marker_key())))
            .collect::<StoreResult<_>>()?;
        self.batch_write(recorded, "destroy")?;
        self.inner.recorded.lock().unwrap_or_else(PoisonError::into_inner).clear();
        Ok(())
    }
}

/// The `:dynamodb` backend of the registry.
pub(super) struct DynamoBackend;

/// What the config names, secrets apart.
struct Settings {
    table: String,
    region: String,
    endpoint: Option<String>,
    prefix: String,
    credentials: Credentials,
    secrets: Vec<String>,
}

fn invalid(message: String) -> StoreError {
    StoreError::Invalid(message)
}

/// The prefix of the store: `:prefix`, else `:id`, else `datahike`.
fn prefix_of(config: &Edn) -> StoreResult<String> {
    let prefix = match optional_string_key(config, "dynamodb", "prefix")? {
        Some(prefix) => prefix,
        None => match config.get_kw("id") {
            None | Some(Edn::Nil) => "datahike".to_owned(),
            Some(Edn::Str(text)) => text.to_string(),
            Some(Edn::Uuid(id)) => id.to_string(),
            Some(Edn::Keyword(k)) => k.to_string(),
            Some(other) => return Err(invalid(format!(":store :id must be a string, keyword or uuid, got {other}"))),
        },
    };
    if prefix.is_empty() || prefix.contains(['/', '#']) {
        return Err(invalid(format!(
            ":store :prefix (or :id) of the :dynamodb backend must be non-empty, without / or #, got {prefix:?}"
        )));
    }
    Ok(prefix)
}

/// `name = value` lines of `[section]` in an AWS ini file (`~/.aws/credentials`).
fn ini_section(text: &str, section: &str) -> Option<HashMap<String, String>> {
    let mut found = None;
    let mut current = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim() == section;
            if current {
                found.get_or_insert_with(HashMap::new);
            }
            continue;
        }
        if current {
            if let (Some(map), Some((k, v))) = (found.as_mut(), line.split_once('=')) {
                map.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
    }
    found
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn aws_file(env_name: &str, default_name: &str) -> Option<String> {
    let path = env(env_name)
        .map(std::path::PathBuf::from)
        .or_else(|| env("HOME").map(|home| std::path::Path::new(&home).join(".aws").join(default_name)))?;
    std::fs::read_to_string(path).ok()
}

fn settings(config: &Edn) -> StoreResult<Settings> {
    let table = string_key(config, "dynamodb", "table")?;
    let endpoint = optional_string_key(config, "dynamodb", "endpoint")?;
    let profile = optional_string_key(config, "dynamodb", "profile")?
        .or_else(|| env("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_owned());
    let region = match optional_string_key(config, "dynamodb", "region")? {
        Some(region) => region,
        None => env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| {
                let text = aws_file("AWS_CONFIG_FILE", "config")?;
                let section = if profile == "default" { "default".to_owned() } else { format!("profile {profile}") };
                ini_section(&text, &section)?.remove("region")
            })
            .ok_or_else(|| {
                invalid(
                    "the :dynamodb backend needs a region: :region in the :store map, AWS_REGION, or a region in \
                     ~/.aws/config"
                        .to_owned(),
                )
            })?,
    };
    let key_id = optional_string_key(config, "dynamodb", "access-key-id")?;
    let secret = optional_string_key(config, "dynamodb", "secret-access-key")?;
    let token = optional_string_key(config, "dynamodb", "session-token")?;
    let (key_id, secret, token) = match (key_id, secret) {
        (Some(key_id), Some(secret)) => (key_id, secret, token),
        (Some(_), None) | (None, Some(_)) => {
            return Err(invalid(
                ":store :access-key-id and :secret-access-key of the :dynamodb backend go together".to_owned(),
            ))
        }
        (None, None) => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(key_id), Some(secret)) => (key_id, secret, env("AWS_SESSION_TOKEN")),
            _ => {
                let section = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials")
                    .and_then(|text| ini_section(&text, &profile))
                    .unwrap_or_default();
                match (section.get("aws_access_key_id"), section.get("aws_secret_access_key")) {
                    (Some(key_id), Some(secret)) => {
                        (key_id.clone(), secret.clone(), section.get("aws_session_token").cloned())
                    }
                    _ => {
                        return Err(invalid(format!(
                            "the :dynamodb backend found no credentials: give :access-key-id and :secret-access-key, \
                             set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add profile {profile:?} to \
                             ~/.aws/credentials"
                        )))
                    }
                }
            }
        },
    };
    let secrets = std::iter::once(secret.clone()).chain(token.clone()).filter(|s| s.len() >= 4).collect();
    Ok(Settings {
        table,
        region,
        endpoint,
        prefix: prefix_of(config)?,
        credentials: Credentials::new(key_id, secret, token, None, "datahike-config"),
        secrets,
    })
}

impl DynamoStore {
    fn connect(settings: Settings) -> DynamoStore {
        let timeouts = aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .operation_attempt_timeout(Duration::from_secs(120))
            .build();
        let mut builder = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region))
            .credentials_provider(settings.credentials)
            .timeout_config(timeouts);
        if let Some(endpoint) = settings.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        DynamoStore {
            inner: Arc::new(Inner {
                client: Client::from_conf(builder.build()),
                table: settings.table,
                prefix: settings.prefix,
                secrets: settings.secrets,
                recorded: Mutex::new(HashSet::new()),
                appended: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl Backend for DynamoBackend {
    fn open(&self, config: &Edn, mode: OpenMode) -> StoreResult<Option<Arc<dyn Store>>> {
        let store = DynamoStore::connect(settings(config)?);
        match (store.marker_exists()?, mode) {
            (Some(true), _) => {}
            (_, OpenMode::Open | OpenMode::ReadOnly) => return Ok(None),
            (None, OpenMode::Create) => {
                store.ensure_table()?;
                store.write_marker()?;
            }
            (Some(false), OpenMode::Create) => store.write_marker()?,
        }
        Ok(Some(Arc::new(store)))
    }

    /// The endpoint (or `aws`), region, table and prefix: never a credential.
    fn identity(&self, config: &Edn) -> String {
        let text = |key: &str| optional_string_key(config, "dynamodb", key).ok().flatten().unwrap_or_default();
        let endpoint =
            optional_string_key(config, "dynamodb", "endpoint").ok().flatten().unwrap_or_else(|| "aws".into());
        let region = text("region");
        let prefix = prefix_of(config).unwrap_or_else(|_| redact(config).to_string());
        format!("{endpoint}/{region}/{}/{prefix}", text("table"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_prefixes_of_their_keys() {
        for (key, partition) in [
            ("heads/db", "heads/"),
            ("config", ""),
            ("nodes/abcdef", "nodes/ab"),
            ("nodes/a", "nodes/a"),
            ("nodes/", "nodes/"),
            ("nodes/üß/x", "nodes/üß"),
            ("log/feature/x/00000000000000000001", "log/"),
        ] {
            assert_eq!(partition_of(key), partition, "{key}");
            assert!(key.starts_with(partition_of(key)));
        }
        assert_eq!(partition_of_prefix("log/db/"), Some("log/"));
        assert_eq!(partition_of_prefix("nodes/ab"), Some("nodes/ab"));
        assert_eq!(partition_of_prefix("nodes/abc"), Some("nodes/ab"));
        assert_eq!(partition_of_prefix("nodes/a"), None);
        assert_eq!(partition_of_prefix("heads"), None);
        assert_eq!(partition_of_prefix(""), None);
    }

    #[test]
    fn ini_sections() {
        let text =
            "[default]\naws_access_key_id = A\n[profile x]\nregion=eu-west-1\n[other]\naws_secret_access_key=S\n";
        assert_eq!(ini_section(text, "default").unwrap()["aws_access_key_id"], "A");
        assert_eq!(ini_section(text, "profile x").unwrap()["region"], "eu-west-1");
        assert!(ini_section(text, "missing").is_none());
    }
}
