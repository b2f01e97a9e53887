//! The `:s3` and `:gcs` backends: a [`Store`] over an object store bucket ([`ObjectKv`],
//! through the `object_store` crate), wrapped in a [`PackedStore`] so that the index nodes of
//! a flush go to the bucket as one object and are read back by ranged GETs.
//!
//! ```text
//! {:store {:backend :s3 :bucket "b" :region "us-east-1"}}
//! {:store {:backend :s3 :bucket "b" :region "us-east-1" :endpoint "http://127.0.0.1:9000"}}
//! {:store {:backend :gcs :bucket "b" :project-id "p"}}
//! ```
//!
//! plus `:prefix` (or `:id`: a key prefix inside the bucket, so that several stores share
//! one), credentials (`:access-key-id`, `:secret-access-key`, `:session-token`; GCS
//! `:service-account-key`, a path) or, when the config gives none, the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_PROFILE` and `~/.aws/credentials`; `GOOGLE_APPLICATION_CREDENTIALS`,
//! `GOOGLE_SERVICE_ACCOUNT_KEY`, ...). No secret is ever printed: configs print redacted
//! ([`super::backend::redact`]) and error messages have every known secret scrubbed.
//!
//! Keys become object names under the prefix, each `/`-separated segment escaped (bytes
//! outside `[A-Za-z0-9._-]` and a leading `.` as `%XX`, an empty segment as `%`), so that any
//! key is a valid object name and a key's directory is an object "directory": listing the
//! records of one log lists only that log. The store exists when its marker object
//! `<prefix>/__datahike_store` does; `create-database` writes it, creating the bucket first
//! when it is missing (S3 CreateBucket, GCS through the JSON API) and the credentials allow.
//!
//! Conditional writes are the bucket's own: put-if-absent is `If-None-Match: *` (S3) or
//! `ifGenerationMatch=0` (GCS), compare-and-set a GET followed by a PUT conditional on the
//! ETag (S3) or generation (GCS) that GET returned. The writer lock is a lease
//! ([`super::lease`]). The core is synchronous: each request runs on a small private tokio
//! runtime (created once per process, two worker threads), which is safe to call from any
//! thread, also one of another runtime.

use super::backend::{optional_string_key, string_key, Backend, OpenMode};
use super::{append_record, lease, ByteRange, PackedStore, Store, StoreError, StoreResult, WriterGuard};
use crate::edn::Edn;
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The key of the marker object: present = this prefix holds a store.
pub const MARKER_KEY: &str = "__datahike_store";
const MARKER_TEXT: &[u8] = b"datahike-rs object store\nformat 1\n";
/// Requests in flight at once for one batch (puts, gets, deletes).
const CONCURRENT_REQUESTS: usize = 32;

/// The runtime every object store request runs on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("datahike-object-store")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the object store runtime: {e}"))
    })
}

/// Runs `future` on the private runtime and waits for it. Spawning (rather than `block_on`)
/// makes this safe from any thread, including a thread of another tokio runtime.
fn run<T: Send + 'static>(
    backend: &'static str,
    future: impl Future<Output = StoreResult<T>> + Send + 'static,
) -> StoreResult<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv().unwrap_or_else(|_| {
        Err(StoreError::Backend { backend, key: "a request".into(), reason: "the request's task panicked".into() })
    })
}

/// Whether `byte` stands for itself in an object name segment (except as a leading `.`).
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-')
}

/// One `/`-free segment of a key as an object name segment (see the module documentation).
fn escape_segment(segment: &str) -> String {
    if segment.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(segment.len());
    for (idx, &byte) in segment.as_bytes().iter().enumerate() {
        if is_plain(byte) && !(idx == 0 && byte == b'.') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The key segment that [`escape_segment`] maps to `segment`, if it is exactly such an image.
fn unescape_segment(segment: &str) -> Option<String> {
    if segment == "%" {
        return Some(String::new());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while let Some(&byte) = bytes.get(idx) {
        if byte == b'%' {
            let hex = std::str::from_utf8(bytes.get(idx + 1..idx + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            idx += 3;
        } else {
            out.push(byte);
            idx += 1;
        }
    }
    let decoded = String::from_utf8(out).ok()?;
    (escape_segment(&decoded) == segment).then_some(decoded)
}

/// What an [`ObjectKv`] knows of its credentials: the secrets to scrub from messages.
#[derive(Clone, Default)]
struct Secrets(Arc<Vec<String>>);

impl Secrets {
    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in self.0.iter().filter(|s| s.len() >= 4) {
            out = out.replace(secret.as_str(), "***");
        }
        out
    }
}

/// A [`Store`] over one prefix of one bucket, every value an object. Usually wrapped in a
/// [`PackedStore`] (which the `:s3` and `:gcs` backends do).
#[derive(Clone)]
pub struct ObjectKv {
    client: Arc<dyn ObjectStore>,
    /// The prefix inside the bucket, as an object path (empty: the bucket's root).
    root: String,
    backend: &'static str,
    /// `s3://bucket/prefix`: names the store in messages.
    name: Arc<str>,
    secrets: Secrets,
    /// The last record each log had when this handle appended to it (for
    /// [`Store::log_is_current`]).
    appended: Arc<Mutex<HashMap<String, u64>>>,
    /// How to create the bucket when it is missing.
    creator: Arc<BucketCreator>,
    /// The bytes and version (ETag, generation) of small values this handle read or wrote
    /// last: a compare-and-set that expects them sends its conditional PUT without reading
    /// first (a lease, a head, a log floor: one request instead of two). A stale entry only
    /// costs the PUT its precondition; it then reads and tries again.
    versions: Arc<Mutex<Versions>>,
}

/// Remembered values and their versions, by key.
type Versions = HashMap<String, (Vec<u8>, UpdateVersion)>;

/// Values up to this size have their version remembered (see `ObjectKv::versions`).
const VERSIONED_BYTES_MAX: usize = 64 << 10;
/// Versions remembered at most; past it the memory starts afresh.
const VERSIONS_MAX: usize = 4096;

impl std::fmt::Debug for ObjectKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectKv").field("store", &self.name).finish_non_exhaustive()
    }
}

/// How a missing bucket is made.
enum BucketCreator {
    #[cfg(feature = "s3")]
    S3 { client: Arc<object_store::aws::AmazonS3>, region: String },
    #[cfg(feature = "gcs")]
    Gcs {
        client: Arc<object_store::gcp::GoogleCloudStorage>,
        base_url: String,
        bucket: String,
        project: Option<String>,
    },
}

impl ObjectKv {
    /// GETs each of `reads` (its path, key, and byte range or the whole object), up to
    /// [`CONCURRENT_REQUESTS`] at a time, in order; `None` for a missing object.
    fn get_all(&self, reads: Vec<(Path, String, Option<GetRange>)>) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let this = self.clone();
        self.run(async move {
            stream::iter(reads)
                .map(|(path, key, range)| {
                    let this = this.clone();
                    async move {
                        let options = GetOptions { range, ..GetOptions::default() };
                        match this.client.get_opts(&path, options).await {
                            Ok(result) => Ok(Some(result.bytes().await.map_err(|e| this.error(&key, &e))?.to_vec())),
                            Err(e) if is_not_found(&e) => Ok(None),
                            Err(e) => Err(this.error(&key, &e)),
                        }
                    }
                })
                .buffered(CONCURRENT_REQUESTS)
                .try_collect()
                .await
        })
    }

    /// Remembers (or, with `None`, forgets) the version of the value under `key`.
    fn remember(&self, key: &str, value: Option<(&[u8], UpdateVersion)>) {
        let mut versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        match value {
            Some((bytes, version))
                if bytes.len() <= VERSIONED_BYTES_MAX && (version.e_tag.is_some() || version.version.is_some()) =>
            {
                if versions.len() >= VERSIONS_MAX {
                    versions.clear();
                }
                versions.insert(key.to_owned(), (bytes.to_vec(), version));
            }
            _ => {
                versions.remove(key);
            }
        }
    }

    /// The version remembered for `key` if its value was `expected`.
    fn remembered(&self, key: &str, expected: &[u8]) -> Option<UpdateVersion> {
        let versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        versions.get(key).filter(|(bytes, _)| bytes == expected).map(|(_, version)| version.clone())
    }

    /// The object path of `key`.
    fn path(&self, key: &str) -> StoreResult<Path> {
        let mut raw = self.root.clone();
        for segment in key.split('/') {
            if !raw.is_empty() {
                raw.push('/');
            }
            raw.push_str(&escape_segment(segment));
        }
        Path::parse(&raw).map_err(|e| StoreError::Invalid(format!("key {key:?} of {}: {e}", self.name)))
    }

    /// The key of the object at `path`, if it is one of this store's.
    fn key(&self, path: &Path) -> Option<String> {
        let raw = path.as_ref();
        let rest = if self.root.is_empty() { raw } else { raw.strip_prefix(&self.root)?.strip_prefix('/')? };
        let segments: Option<Vec<String>> = rest.split('/').map(unescape_segment).collect();
        Some(segments?.join("/"))
    }

    /// A store error for a failed request on `key`, secrets scrubbed.
    fn error(&self, key: &str, err: &object_store::Error) -> StoreError {
        StoreError::Backend { backend: self.backend, key: key.to_owned(), reason: self.secrets.scrub(&err.to_string()) }
    }

    /// Runs `future` on the private runtime.
    fn run<T: Send + 'static>(&self, future: impl Future<Output = StoreResult<T>> + Send + 'static) -> StoreResult<T> {
        run(self.backend, future)
    }

    /// Every object path under the store's prefix (marker included).
    fn list_paths(&self, dir: Option<Path>) -> StoreResult<Vec<Path>> {
        let client = self.client.clone();
        let this = self.clone();
        let dir = dir.or_else(|| (!self.root.is_empty()).then(|| Path::from_iter(self.root.split('/'))));
        self.run(async move {
            client
                .list(dir.as_ref())
                .map_ok(|meta| meta.location)
                .try_collect::<Vec<Path>>()
                .await
                .map_err(|e| this.error("the listing", &e))
        })
    }

    /// Whether the marker object exists.
    fn has_marker(&self) -> StoreResult<bool> {
        Ok(self.get(MARKER_KEY)?.is_some())
    }

    /// Writes the marker, creating the bucket first if it is missing.
    fn create(&self) -> StoreResult<()> {
        let path = self.path(MARKER_KEY)?;
        let client = self.client.clone();
        let put = move || {
            let client = client.clone();
            let path = path.clone();
            async move { client.put(&path, PutPayload::from_static(MARKER_TEXT)).await }
        };
        let this = self.clone();
        self.run(async move {
            match put().await {
                Ok(_) => Ok(()),
                Err(object_store::Error::NotFound { .. }) => {
                    this.create_bucket().await?;
                    put().await.map(|_| ()).map_err(|e| this.error(MARKER_KEY, &e))
                }
                Err(e) => Err(this.error(MARKER_KEY, &e)),
            }
        })
    }

    /// Creates the bucket (it was missing).
    async fn create_bucket(&self) -> StoreResult<()> {
        let fail = |reason: String| StoreError::Backend {
            backend: self.backend,
            key: format!("the bucket of {}", self.name),
            reason: self.secrets.scrub(&reason),
        };
        let (request, ok) = match self.creator.as_ref() {
            #[cfg(feature = "s3")]
            BucketCreator::S3 { client, region } => {
                use object_store::signer::Signer;
                let url = client
                    .signed_url(http::Method::PUT, &Path::from(""), std::time::Duration::from_secs(300))
                    .await
                    .map_err(|e| fail(format!("cannot sign CreateBucket: {e}")))?;
                let body = if region == "us-east-1" {
                    Vec::new()
                } else {
                    format!(
                        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                         <LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
                    )
                    .into_bytes()
                };
                let request = http::Request::builder()
                    .method(http::Method::PUT)
                    .uri(url.as_str())
                    .header("Content-Length", body.len())
                    .body(object_store::client::HttpRequestBody::from(body))
                    .map_err(|e| fail(format!("cannot build CreateBucket: {e}")))?;
                // 409 BucketAlreadyOwnedByYou: another process created it meanwhile.
                (request, [200u16, 409])
            }
            #[cfg(feature = "gcs")]
            BucketCreator::Gcs { client, base_url, bucket, project } => {
                let token = client
                    .credentials()
                    .get_credential()
                    .await
                    .map_err(|e| fail(format!("cannot get a token to create the bucket: {e}")))?;
                let project = project.clone().ok_or_else(|| {
                    fail("the bucket does not exist, and creating it needs :project-id in the :store config".into())
                })?;
                let uri = format!("{}/storage/v1/b?project={project}", base_url.trim_end_matches('/'));
                let mut request = http::Request::builder()
                    .method(http::Method::POST)
                    .uri(uri)
                    .header("Content-Type", "application/json");
                if !token.bearer.is_empty() {
                    request = request.header("Authorization", format!("Bearer {}", token.bearer));
                }
                let body = format!("{{\"name\":{}}}", Edn::str(bucket));
                request = request.header("Content-Length", body.len());
                let request = request
                    .body(object_store::client::HttpRequestBody::from(body))
                    .map_err(|e| fail(format!("cannot build the bucket request: {e}")))?;
                (request, [200u16, 409])
            }
        };
        use object_store::client::HttpConnector;
        let options = object_store::ClientOptions::new().with_allow_http(true);
        let http = object_store::client::ReqwestConnector::default()
            .connect(&options)
            .map_err(|e| fail(format!("cannot make an HTTP client: {e}")))?;
        // The request's URL may carry a signature: it is never part of a message.
        let response =
            http.execute(request).await.map_err(|e| fail(format!("bucket creation failed: {:?}", e.kind())))?;
        let status = response.status().as_u16();
        if ok.contains(&status) {
            Ok(())
        } else {
            Err(fail(format!("bucket creation was refused with HTTP status {status}")))
        }
    }
}

/// Whether one of `keys` is a directory of another: `a` and `a/x`.
fn has_nested_keys<'a>(keys: impl Iterator<Item = &'a str> + Clone) -> bool {
    let directories: std::collections::HashSet<&str> =
        keys.clone().flat_map(|key| key.match_indices('/').map(move |(at, _)| &key[..at])).collect();
    keys.into_iter().any(|key| directories.contains(key))
}

/// The HTTP range of `range`; `None` for an empty one, which HTTP cannot express.
fn get_range_of(range: ByteRange) -> Option<GetRange> {
    match range {
        ByteRange::At { len: 0, .. } | ByteRange::Last(0) => None,
        ByteRange::At { offset, len } => Some(GetRange::Bounded(offset..offset.saturating_add(len))),
        ByteRange::Last(len) => Some(GetRange::Suffix(len)),
    }
}

fn is_not_found(err: &object_store::Error) -> bool {
    matches!(err, object_store::Error::NotFound { .. })
}

fn is_precondition(err: &object_store::Error) -> bool {
    matches!(err, object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. })
}

impl Store for ObjectKv {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let path = self.path(key)?;
        let (client, this, key) = (self.client.clone(), self.clone(), key.to_owned());
        self.run(async move {
            match client.get(&path).await {
                Ok(result) => {
                    let version =
                        UpdateVersion { e_tag: result.meta.e_tag.clone(), version: result.meta.version.clone() };
                    let bytes = result.bytes().await.map_err(|e| this.error(&key, &e))?.to_vec();
                    this.remember(&key, Some((&bytes, version)));
                    Ok(Some(bytes))
                }
                Err(e) if is_not_found(&e) => {
                    this.remember(&key, None);
                    Ok(None)
                }
                Err(e) => Err(this.error(&key, &e)),
            }
        })
    }

    fn get_range(&self, key: &str, range: ByteRange) -> StoreResult<Option<Vec<u8>>> {
        // An empty range is not a valid HTTP range: it answers whether the key exists.
        let Some(get_range) = get_range_of(range) else { return Ok(self.get(key)?.map(|_| Vec::new())) };
        let path = self.path(key)?;
        let (client, this, key) = (self.client.clone(), self.clone(), key.to_owned());
        self.run(async move {
            let options = GetOptions { range: Some(get_range), ..GetOptions::default() };
            match client.get_opts(&path, options).await {
                Ok(result) => Ok(Some(result.bytes().await.map_err(|e| this.error(&key, &e))?.to_vec())),
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(this.error(&key, &e)),
            }
        })
    }

    fn get_ranges(&self, reads: &[(String, ByteRange)]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        if reads.iter().any(|(_, range)| get_range_of(*range).is_none()) {
            return reads.iter().map(|(key, range)| self.get_range(key, *range)).collect();
        }
        let reads = reads
            .iter()
            .filter_map(|(key, range)| Some((key.clone(), get_range_of(*range)?)))
            .map(|(key, range)| Ok((self.path(&key)?, key, Some(range))))
            .collect::<StoreResult<Vec<_>>>()?;
        self.get_all(reads)
    }

    fn prefers_batched_reads(&self) -> bool {
        true
    }

    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let reads = keys.iter().map(|key| Ok((self.path(key)?, key.clone(), None))).collect::<StoreResult<Vec<_>>>()?;
        self.get_all(reads)
    }

    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        for (key, _) in entries {
            self.remember(key, None);
        }
        let puts = entries
            .iter()
            .map(|(key, bytes)| Ok((key.clone(), self.path(key)?, PutPayload::from(bytes.clone()))))
            .collect::<StoreResult<Vec<_>>>()?;
        let this = self.clone();
        // A key that is a directory of another (`heads/a` beside `heads/a/x`): servers that
        // keep objects in a file system (SeaweedFS) can lose one of the two when both are
        // created at once, so such a batch is written one key after another.
        let concurrency =
            if has_nested_keys(entries.iter().map(|(key, _)| key.as_str())) { 1 } else { CONCURRENT_REQUESTS };
        self.run(async move {
            stream::iter(puts)
                .map(|(key, path, payload)| {
                    let this = this.clone();
                    async move { this.client.put(&path, payload).await.map(|_| ()).map_err(|e| this.error(&key, &e)) }
                })
                .buffer_unordered(concurrency)
                .try_collect::<Vec<()>>()
                .await
                .map(|_| ())
        })
    }

    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        for key in keys {
            self.remember(key, None);
        }
        let paths = keys.iter().map(|key| self.path(key)).collect::<StoreResult<Vec<_>>>()?;
        let this = self.clone();
        let first = keys.first().cloned().unwrap_or_default();
        self.run(async move {
            let locations = stream::iter(paths.into_iter().map(Ok)).boxed();
            let results: Vec<_> = this.client.delete_stream(locations).collect().await;
            for result in results {
                match result {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(this.error(&first, &e)),
                }
            }
            Ok(())
        })
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        // Listing is by directory: the deepest directory that every key with `prefix` is in.
        let dir = match prefix.rfind('/') {
            Some(at) => Some(self.path(&prefix[..at])?),
            None => None,
        };
        Ok(self
            .list_paths(dir)?
            .iter()
            .filter_map(|path| self.key(path))
            .filter(|key| key.starts_with(prefix) && key != MARKER_KEY)
            .collect())
    }

    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        let path = self.path(key)?;
        let remembered = expected.and_then(|expected| self.remembered(key, expected));
        let (this, key, new) = (self.clone(), key.to_owned(), new.to_vec());
        let expected = expected.map(<[u8]>::to_vec);
        self.run(async move {
            let put = |mode: PutMode| {
                let (this, path, key, new) = (this.clone(), path.clone(), key.clone(), new.clone());
                async move {
                    match this.client.put_opts(&path, PutPayload::from(new.clone()), PutOptions::from(mode)).await {
                        Ok(result) => {
                            let version = UpdateVersion { e_tag: result.e_tag, version: result.version };
                            this.remember(&key, Some((&new, version)));
                            Ok(true)
                        }
                        Err(e) if is_precondition(&e) || is_not_found(&e) => {
                            this.remember(&key, None);
                            Ok(false)
                        }
                        Err(e) => Err(this.error(&key, &e)),
                    }
                }
            };
            let Some(expected) = expected else { return put(PutMode::Create).await };
            if let Some(version) = remembered {
                if put(PutMode::Update(version)).await? {
                    return Ok(true);
                }
            }
            let current = match this.client.get(&path).await {
                Ok(result) => result,
                Err(e) if is_not_found(&e) => return Ok(false),
                Err(e) => return Err(this.error(&key, &e)),
            };
            let version = UpdateVersion { e_tag: current.meta.e_tag.clone(), version: current.meta.version.clone() };
            let bytes = current.bytes().await.map_err(|e| this.error(&key, &e))?;
            if bytes.as_ref() != expected.as_slice() {
                this.remember(&key, Some((&bytes, version)));
                return Ok(false);
            }
            put(PutMode::Update(version)).await
        })
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> StoreResult<bool> {
        self.compare_and_set(key, None, bytes)
    }

    fn log_append(&self, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
        append_record(self, log, seq, record)?;
        self.appended.lock().unwrap_or_else(PoisonError::into_inner).insert(log.to_owned(), seq);
        Ok(())
    }

    /// True when this handle appended `last_seq` last and record `last_seq + 1` does not
    /// exist (one request). A writer that lost its place anyway is fenced by the log's
    /// put-if-absent and floor.
    fn log_is_current(&self, log: &str, last_seq: u64) -> StoreResult<bool> {
        if self.appended.lock().unwrap_or_else(PoisonError::into_inner).get(log) != Some(&last_seq) {
            return Ok(false);
        }
        let key = super::log_key(log, last_seq.saturating_add(1));
        let path = self.path(&key)?;
        let this = self.clone();
        self.run(async move {
            match this.client.head(&path).await {
                Ok(_) => Ok(false),
                Err(e) if is_not_found(&e) => Ok(true),
                Err(e) => Err(this.error(&key, &e)),
            }
        })
    }

    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        lease::acquire(Arc::new(self.clone()))
    }

    fn destroy(&self) -> StoreResult<()> {
        // The marker goes first, so that a crash midway leaves no prefix that claims to be a
        // store.
        self.delete_batch(&[MARKER_KEY.to_owned()])?;
        let paths = self.list_paths(None)?;
        let this = self.clone();
        self.run(async move {
            let locations = stream::iter(paths.into_iter().map(Ok)).boxed();
            let results: Vec<_> = this.client.delete_stream(locations).collect().await;
            for result in results {
                match result {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(this.error("the store", &e)),
                }
            }
            Ok(())
        })?;
        self.appended.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.versions.lock().unwrap_or_else(PoisonError::into_inner).clear();
        Ok(())
    }
}

/// The `:prefix` (or `:id`) of a config as an object path prefix, validated.
fn prefix_of(config: &Edn, backend: &str) -> StoreResult<String> {
    let prefix = match optional_string_key(config, backend, "prefix")? {
        Some(prefix) => prefix,
        None => match config.get_kw("id") {
            None | Some(Edn::Nil) => String::new(),
            Some(Edn::Uuid(u)) => u.to_string(),
            Some(_) => string_key(config, backend, "id")?,
        },
    };
    let prefix = prefix.trim_matches('/').to_owned();
    if !prefix.is_empty() {
        Path::parse(&prefix).map_err(|e| {
            StoreError::Invalid(format!(
                ":store :prefix {prefix:?} of the :{backend} backend is not a valid object prefix: {e}"
            ))
        })?;
    }
    Ok(prefix)
}

/// The secrets of `config` and of the environment, to scrub from messages.
fn known_secrets(config: &Edn, env: &[&str]) -> Secrets {
    let mut secrets: Vec<String> = Vec::new();
    if let Edn::Map(entries) = config {
        for (k, v) in entries {
            if k.as_keyword().is_some_and(|kw| super::backend::is_secret_key(kw.name())) {
                if let Edn::Str(s) = v {
                    secrets.push(s.to_string());
                }
            }
        }
    }
    secrets.extend(env.iter().filter_map(|name| std::env::var(name).ok()));
    Secrets(Arc::new(secrets))
}

/// Opens `kv` as `mode` asks: creates the marker (and bucket) for `Create`, else `None`
/// without a marker.
fn open_kv(kv: ObjectKv, mode: OpenMode) -> StoreResult<Option<ObjectKv>> {
    if kv.has_marker()? {
        return Ok(Some(kv));
    }
    if mode != OpenMode::Create {
        return Ok(None);
    }
    kv.create()?;
    Ok(Some(kv))
}

/// The name of the store in messages and the connection registry: no secrets.
fn store_name(scheme: &str, endpoint: Option<&str>, bucket: &str, prefix: &str) -> String {
    let at = endpoint.filter(|e| !e.is_empty()).map(|e| format!(" at {e}")).unwrap_or_default();
    format!("{scheme}://{bucket}/{prefix}{at}")
}

#[cfg(feature = "s3")]
mod s3 {
    use super::*;
    use object_store::aws::{AmazonS3Builder, AwsCredential};

    /// Access key, secret and session token from `~/.aws/credentials` (or
    /// `AWS_SHARED_CREDENTIALS_FILE`), profile `AWS_PROFILE` or `default`.
    fn profile_credentials() -> Option<(String, String, Option<String>)> {
        let path = std::env::var("AWS_SHARED_CREDENTIALS_FILE")
            .ok()
            .or_else(|| std::env::var("HOME").ok().map(|home| format!("{home}/.aws/credentials")))?;
        let text = std::fs::read_to_string(path).ok()?;
        let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_owned());
        let mut in_profile = false;
        let mut values: HashMap<String, String> = HashMap::new();
        for line in text.lines().map(str::trim) {
            if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                in_profile = section.trim() == profile;
            } else if let (true, Some((k, v))) = (in_profile, line.split_once('=')) {
                values.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        Some((
            values.remove("aws_access_key_id")?,
            values.remove("aws_secret_access_key")?,
            values.remove("aws_session_token"),
        ))
    }

    /// The `:s3` backend.
    pub struct S3Backend;

    impl S3Backend {
        /// The store a `:store` config names, without the pack layer.
        pub fn open_kv(config: &Edn, mode: OpenMode) -> StoreResult<Option<ObjectKv>> {
            const B: &str = "s3";
            let bucket = string_key(config, B, "bucket")?;
            let prefix = prefix_of(config, B)?;
            let endpoint = optional_string_key(config, B, "endpoint")?;
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
            let region = match optional_string_key(config, B, "region")? {
                Some(region) => region,
                None => std::env::var("AWS_REGION")
                    .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|_| "us-east-1".to_owned()),
            };
            builder = builder.with_region(&region);
            if let Some(endpoint) = &endpoint {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
            }
            let key_id = optional_string_key(config, B, "access-key-id")?;
            let secret = optional_string_key(config, B, "secret-access-key")?;
            let token = optional_string_key(config, B, "session-token")?;
            let mut profile_secrets = Vec::new();
            match (key_id, secret) {
                (Some(key_id), Some(secret)) => {
                    builder = builder.with_access_key_id(key_id).with_secret_access_key(secret);
                    if let Some(token) = token {
                        builder = builder.with_token(token);
                    }
                }
                (None, None) => {
                    if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
                        if let Some((key_id, secret, token)) = profile_credentials() {
                            profile_secrets.push(secret.clone());
                            profile_secrets.extend(token.clone());
                            builder = builder.with_credentials(Arc::new(object_store::StaticCredentialProvider::new(
                                AwsCredential { key_id, secret_key: secret, token },
                            )));
                        }
                    }
                }
                _ => {
                    return Err(StoreError::Invalid(
                        ":store of the :s3 backend: give both :access-key-id and :secret-access-key, or neither \
                         (then the environment's credentials are used)"
                            .into(),
                    ))
                }
            }
            let mut secrets = known_secrets(config, &["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]);
            Arc::make_mut(&mut secrets.0).extend(profile_secrets);
            let name = store_name("s3", endpoint.as_deref(), &bucket, &prefix);
            let client = builder.build().map_err(|e| StoreError::Backend {
                backend: B,
                key: name.clone(),
                reason: secrets.scrub(&e.to_string()),
            })?;
            let client = Arc::new(client);
            let kv = ObjectKv {
                client: client.clone(),
                root: prefix,
                backend: B,
                name: name.into(),
                secrets,
                appended: Arc::default(),
                creator: Arc::new(BucketCreator::S3 { client, region }),
                versions: Arc::default(),
            };
            open_kv(kv, mode)
        }
    }

    impl Backend for S3Backend {
        fn open(&self, config: &Edn, mode: OpenMode) -> StoreResult<Option<Arc<dyn Store>>> {
            Ok(Self::open_kv(config, mode)?.map(|kv| Arc::new(PackedStore::new(kv)) as Arc<dyn Store>))
        }

        fn identity(&self, config: &Edn) -> String {
            let get = |key: &str| optional_string_key(config, "s3", key).ok().flatten().unwrap_or_default();
            store_name("s3", Some(&get("endpoint")), &get("bucket"), &prefix_of(config, "s3").unwrap_or_default())
        }
    }
}

#[cfg(feature = "s3")]
pub use s3::S3Backend;

#[cfg(feature = "gcs")]
mod gcs {
    use super::*;
    use object_store::gcp::GoogleCloudStorageBuilder;

    /// The `:gcs` backend.
    pub struct GcsBackend;

    impl GcsBackend {
        /// The store a `:store` config names, without the pack layer.
        pub fn open_kv(config: &Edn, mode: OpenMode) -> StoreResult<Option<ObjectKv>> {
            const B: &str = "gcs";
            let bucket = string_key(config, B, "bucket")?;
            let prefix = prefix_of(config, B)?;
            let endpoint = optional_string_key(config, B, "endpoint")?;
            let project = optional_string_key(config, B, "project-id")?;
            let mut builder = GoogleCloudStorageBuilder::from_env().with_bucket_name(&bucket);
            let key_path = optional_string_key(config, B, "service-account-key")?;
            let has_env_credentials = [
                "GOOGLE_SERVICE_ACCOUNT",
                "GOOGLE_SERVICE_ACCOUNT_PATH",
                "GOOGLE_SERVICE_ACCOUNT_KEY",
                "GOOGLE_APPLICATION_CREDENTIALS",
            ]
            .iter()
            .any(|name| std::env::var(name).is_ok());
            if let Some(path) = &key_path {
                builder = builder.with_service_account_path(path);
            }
            let mut base_url = "https://storage.googleapis.com".to_owned();
            if let Some(endpoint) = &endpoint {
                builder = builder.with_base_url(endpoint).with_client_options(
                    object_store::ClientOptions::new().with_allow_http(endpoint.starts_with("http://")),
                );
                base_url.clone_from(endpoint);
                if key_path.is_none() && !has_env_credentials {
                    // An emulator: no OAuth.
                    builder = builder.with_bearer_token("");
                }
            }
            let secrets = known_secrets(config, &["GOOGLE_SERVICE_ACCOUNT_KEY"]);
            let name = store_name("gs", endpoint.as_deref(), &bucket, &prefix);
            let client = builder.build().map_err(|e| StoreError::Backend {
                backend: B,
                key: name.clone(),
                reason: secrets.scrub(&e.to_string()),
            })?;
            let client = Arc::new(client);
            let kv = ObjectKv {
                client: client.clone(),
                root: prefix,
                backend: B,
                name: name.into(),
                secrets,
                appended: Arc::default(),
                creator: Arc::new(BucketCreator::Gcs { client, base_url, bucket, project }),
                versions: Arc::default(),
            };
            open_kv(kv, mode)
        }
    }

    impl Backend for GcsBackend {
        fn open(&self, config: &Edn, mode: OpenMode) -> StoreResult<Option<Arc<dyn Store>>> {
            Ok(Self::open_kv(config, mode)?.map(|kv| Arc::new(PackedStore::new(kv)) as Arc<dyn Store>))
        }

        fn identity(&self, config: &Edn) -> String {
            let get = |key: &str| optional_string_key(config, "gcs", key).ok().flatten().unwrap_or_default();
            store_name("gs", Some(&get("endpoint")), &get("bucket"), &prefix_of(config, "gcs").unwrap_or_default())
        }
    }
}

#[cfg(feature = "gcs")]
pub use gcs::GcsBackend;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_escape_and_round_trip() {
        for segment in ["", ".", "..", ".hidden", "a b", "%41", "ü", "x~tmp", "q?x=1&y=#z", "00000000000000000001", "%"]
        {
            let escaped = escape_segment(segment);
            assert!(Path::parse(&escaped).is_ok(), "{segment:?} -> {escaped:?}");
            assert!(escaped != "." && escaped != "..");
            assert_eq!(unescape_segment(&escaped).as_deref(), Some(segment), "{escaped:?}");
        }
        assert_eq!(escape_segment("nodepacks"), "nodepacks");
        assert_eq!(unescape_segment("%2e"), None, "only the canonical spelling is a key");
    }

    #[test]
    fn nested_keys_are_found() {
        assert!(has_nested_keys(["heads/a", "heads/a/x"].into_iter()));
        assert!(has_nested_keys(["..", "../escape"].into_iter()));
        assert!(!has_nested_keys(["heads/a", "heads/ab", "heads/b/x"].into_iter()));
    }
}
