//! [`PackedStore`]: index nodes in packs over any key-value [`Store`].
//!
//! A flush writes ~1,500 immutable index nodes at once. On a remote key-value store (S3, GCS,
//! a database server) one request per node makes the flush slow and costly; wrapped in a
//! `PackedStore`, the nodes of one `put_batch` become one value under `nodepacks/<name>.pack`
//! (the file store's pack format, see the `pack` module), a node is read by a ranged read of
//! its pack ([`Store::get_range`]), and every other key goes to the inner store unchanged.
//! Everything the file store's packs guarantee holds here too, from the same code: a node
//! counts as stored only while its pack exists, deletes and compactions write the new pack
//! before they remove the old ones, a reader that finds a pack gone lists the packs again,
//! each node's bytes carry a crc32, and rewrites across processes are serialised by a lease
//! ([`super::lease`]) under `nodepacks/LOCK`.
//!
//! ```
//! use datahike::store::{MemoryStore, PackedStore, Store};
//!
//! let store = PackedStore::new(MemoryStore::new());
//! let nodes: Vec<(String, Vec<u8>)> =
//!     (0..100u32).map(|n| (format!("nodes/{n:032x}"), n.to_le_bytes().to_vec())).collect();
//! store.put_batch(&nodes).unwrap();
//! // One value in the inner store holds them all.
//! assert_eq!(store.inner().list("nodepacks/").unwrap().len(), 1);
//! assert_eq!(store.get(&nodes[7].0).unwrap(), Some(7u32.to_le_bytes().to_vec()));
//! assert_eq!(store.list("nodes/").unwrap().len(), 100);
//! ```

use super::pack::{is_pack_name, node_address, node_key, prefix_overlaps, PackMedium, Packs, PACKS_DIR};
use super::{lease, ByteRange, Store, StoreResult, WriterGuard};
use std::collections::HashSet;
use std::sync::Arc;

/// The key of the lease that serialises pack rewrites across processes.
const REWRITE_LEASE_KEY: &str = "nodepacks/LOCK";

/// A [`Store`] that keeps index nodes (`nodes/<32 hex>` keys) in packs inside `S` and passes
/// every other key through. See the module documentation.
pub struct PackedStore<S: Store> {
    inner: Arc<S>,
    packs: Packs<KvPacks<S>>,
}

impl<S: Store> PackedStore<S> {
    /// Wraps `inner`. Handles on the same inner data (in this process or others) see each
    /// other's packs.
    pub fn new(inner: S) -> PackedStore<S> {
        let inner = Arc::new(inner);
        PackedStore { packs: Packs::new(KvPacks { store: inner.clone() }), inner }
    }

    /// The inner store: packs are its values under `nodepacks/`.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }
}

impl<S: Store> std::fmt::Debug for PackedStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedStore").finish_non_exhaustive()
    }
}

/// Packs as values of a key-value store, under `nodepacks/`.
struct KvPacks<S: Store> {
    store: Arc<S>,
}

impl<S: Store> KvPacks<S> {
    fn key(name: &str) -> String {
        format!("{PACKS_DIR}/{name}")
    }
}

impl<S: Store> PackMedium for KvPacks<S> {
    fn describe(&self, name: &str) -> String {
        Self::key(name)
    }

    fn list(&self) -> StoreResult<Vec<String>> {
        let prefix = Self::key("");
        Ok(self
            .store
            .list(&prefix)?
            .into_iter()
            .filter_map(|key| key.strip_prefix(&prefix).filter(|name| is_pack_name(name)).map(str::to_owned))
            .collect())
    }

    fn read(&self, name: &str, range: ByteRange) -> StoreResult<Option<Vec<u8>>> {
        self.store.get_range(&Self::key(name), range)
    }

    fn read_many(&self, reads: &[(Arc<str>, ByteRange)]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let reads: Vec<(String, ByteRange)> = reads.iter().map(|(name, range)| (Self::key(name), *range)).collect();
        self.store.get_ranges(&reads)
    }

    fn read_all(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.store.get(&Self::key(name))
    }

    fn write(&self, name: &str, bytes: Vec<u8>) -> StoreResult<()> {
        // A store's put is durable and never leaves a torn value (the Store contract).
        self.store.put_batch(&[(Self::key(name), bytes)])
    }

    fn remove(&self, names: &[String]) -> StoreResult<()> {
        let keys: Vec<String> = names.iter().map(|name| Self::key(name)).collect();
        self.store.delete_batch(&keys)
    }

    fn lock_rewrites(&self) -> StoreResult<WriterGuard> {
        let store: Arc<dyn Store> = self.store.clone();
        lease::acquire_at(store, REWRITE_LEASE_KEY)
    }
}

/// Whether `key` is the pack layer's own, never a key of the wrapped store's users.
fn is_internal(key: &str) -> bool {
    key.strip_prefix(PACKS_DIR).is_some_and(|rest| rest.starts_with('/'))
}

/// Answers a per-key batch question about `keys`: index nodes (with their addresses) from
/// `nodes`, every other key from `others`, each in one batch; the answers in the order of
/// `keys`.
fn split_by_kind<T>(
    keys: &[String],
    nodes: impl FnOnce(&[(u128, &String)]) -> StoreResult<Vec<Option<T>>>,
    others: impl FnOnce(&[String]) -> StoreResult<Vec<Option<T>>>,
) -> StoreResult<Vec<Option<T>>> {
    let node_keys: Vec<(u128, &String)> = keys.iter().filter_map(|key| Some((node_address(key)?, key))).collect();
    let mut node_answers = nodes(&node_keys)?.into_iter();
    let other_keys: Vec<String> = keys.iter().filter(|key| node_address(key).is_none()).cloned().collect();
    let mut other_answers = others(&other_keys)?.into_iter();
    Ok(keys
        .iter()
        .map(|key| match node_address(key) {
            Some(_) => node_answers.next().flatten(),
            None => other_answers.next().flatten(),
        })
        .collect())
}

impl<S: Store> Store for PackedStore<S> {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        match node_address(key) {
            Some(address) => self.packs.get(address, key, || Ok(None)),
            None => self.inner.get(key),
        }
    }

    fn get_range(&self, key: &str, range: ByteRange) -> StoreResult<Option<Vec<u8>>> {
        match node_address(key) {
            Some(_) => Ok(self.get(key)?.map(|bytes| range.of(&bytes).to_vec())),
            None => self.inner.get_range(key, range),
        }
    }

    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        split_by_kind(
            keys,
            |nodes| {
                let nodes: Vec<(u128, &str)> = nodes.iter().map(|(a, key)| (*a, key.as_str())).collect();
                self.packs.get_many(&nodes, |_| Ok(None))
            },
            |others| self.inner.get_many(others),
        )
    }

    /// A node's size comes from the pack indices this handle holds (listed again first, no
    /// node read): its bytes and its 32-byte index entry, which a rewrite of its pack without
    /// it takes off the inner store's value. Every other key's size is the inner store's.
    fn stored_sizes(&self, keys: &[String]) -> StoreResult<Vec<Option<u64>>> {
        split_by_kind(
            keys,
            |nodes| self.packs.stored_sizes(&nodes.iter().map(|(a, _)| *a).collect::<Vec<u128>>()),
            |others| if others.is_empty() { Ok(Vec::new()) } else { self.inner.stored_sizes(others) },
        )
    }

    fn prefers_batched_reads(&self) -> bool {
        self.inner.prefers_batched_reads()
    }

    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        let mut nodes: Vec<(u128, &[u8])> = Vec::new();
        let mut others: Vec<(String, Vec<u8>)> = Vec::new();
        for (key, bytes) in entries {
            match node_address(key) {
                Some(address) => nodes.push((address, bytes)),
                None => others.push((key.clone(), bytes.clone())),
            }
        }
        let nodes = self.packs.unstored(nodes)?;
        self.packs.write(&nodes)?;
        if others.is_empty() {
            return Ok(());
        }
        self.inner.put_batch(&others)
    }

    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        let nodes: HashSet<u128> = keys.iter().filter_map(|key| node_address(key)).collect();
        self.packs.delete(&nodes)?;
        let others: Vec<String> = keys.iter().filter(|key| node_address(key).is_none()).cloned().collect();
        if others.is_empty() {
            return Ok(());
        }
        self.inner.delete_batch(&others)
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let mut keys = Vec::new();
        if prefix_overlaps(prefix, "nodes/") {
            keys.extend(self.packs.addresses()?.into_iter().map(node_key).filter(|key| key.starts_with(prefix)));
        }
        keys.extend(self.inner.list(prefix)?.into_iter().filter(|key| !is_internal(key)));
        Ok(keys)
    }

    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        self.inner.compare_and_set(key, expected, new)
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> StoreResult<bool> {
        self.inner.put_if_absent(key, bytes)
    }

    fn log_append(&self, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
        self.inner.log_append(log, seq, record)
    }

    fn log_append_many(&self, log: &str, records: &[(u64, &[u8])]) -> Result<(), super::AppendFailure> {
        self.inner.log_append_many(log, records)
    }

    fn log_read(&self, log: &str, after: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        self.inner.log_read(log, after)
    }

    fn log_discard(&self, log: &str, through: u64) -> StoreResult<()> {
        self.inner.log_discard(log, through)
    }

    fn log_discard_all(&self, log: &str, through: u64) -> StoreResult<()> {
        self.inner.log_discard_all(log, through)
    }

    fn log_delete(&self, log: &str) -> StoreResult<()> {
        self.inner.log_delete(log)
    }

    fn log_is_current(&self, log: &str, last_seq: u64) -> StoreResult<bool> {
        self.inner.log_is_current(log, last_seq)
    }

    fn sweep_temporaries(&self) -> StoreResult<Vec<String>> {
        self.inner.sweep_temporaries()
    }

    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        self.inner.lock_writer()
    }

    fn destroy(&self) -> StoreResult<()> {
        self.inner.destroy()?;
        self.packs.clear();
        Ok(())
    }
}
