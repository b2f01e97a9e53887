//! The `:memory` backend: thread-safe maps in this process, addressable by id.
//!
//! Datahike memory stores are named by `:id` and live until the database is deleted, so
//! [`MemoryStore::open`] looks the id up in a process-global registry and returns a handle on
//! the same maps for the same id. Nothing is durable across processes; "durable" in the
//! [`Store`] contract means "visible to every later call in this process".

use super::{Store, StoreError, StoreResult, WriterGuard};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};

/// An in-memory store. Cloning yields another handle on the same data.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The registry id, or `None` for an anonymous store.
    id: Option<String>,
    /// Keys in order, so that `list` by prefix is a range scan.
    entries: RwLock<BTreeMap<String, Vec<u8>>>,
    /// One map of sequence number to record per log.
    logs: RwLock<HashMap<String, BTreeMap<u64, Vec<u8>>>>,
    writer: Arc<WriterLock>,
}

/// A lock whose guard owns an `Arc` on it, so the guard can outlive the borrow of the store.
#[derive(Default)]
struct WriterLock {
    locked: Mutex<bool>,
    released: Condvar,
}

/// Releases the [`WriterLock`] when dropped.
struct MemoryWriterGuard(Arc<WriterLock>);

impl Drop for MemoryWriterGuard {
    fn drop(&mut self) {
        *lock_ignoring_poison(&self.0.locked) = false;
        self.0.released.notify_one();
    }
}

/// The process-global id -> store registry.
fn registry() -> MutexGuard<'static, HashMap<String, Arc<Inner>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<Inner>>>> = OnceLock::new();
    lock_ignoring_poison(REGISTRY.get_or_init(Default::default))
}

/// The maps hold plain data whose every update is a single call, so a panic in another thread
/// cannot leave them half-updated; a poisoned lock is still consistent.
fn lock_ignoring_poison<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    fn new(id: Option<String>) -> Self {
        Inner { id, entries: RwLock::default(), logs: RwLock::default(), writer: Arc::default() }
    }
}

impl MemoryStore {
    /// A new anonymous store, not registered under any id.
    pub fn new() -> Self {
        MemoryStore { inner: Arc::new(Inner::new(None)) }
    }

    /// The store registered under `id`, created empty if there is none yet. Every call with
    /// the same id returns a handle on the same data until [`Store::destroy`].
    pub fn open(id: &str) -> Self {
        let mut registry = registry();
        let inner = registry.entry(id.to_owned()).or_insert_with(|| Arc::new(Inner::new(Some(id.to_owned())))).clone();
        MemoryStore { inner }
    }

    /// Whether a store is registered under `id`.
    pub fn exists(id: &str) -> bool {
        registry().contains_key(id)
    }

    /// The registry id, or `None` for a store made by [`MemoryStore::new`].
    pub fn id(&self) -> Option<&str> {
        self.inner.id.as_deref()
    }

    /// Like [`Store::lock_writer`] but returns `None` instead of waiting when another holder
    /// has the lock.
    pub fn try_lock_writer(&self) -> Option<WriterGuard> {
        let lock = &self.inner.writer;
        let mut locked = lock_ignoring_poison(&lock.locked);
        if *locked {
            return None;
        }
        *locked = true;
        Some(WriterGuard::new(Box::new(MemoryWriterGuard(Arc::clone(lock)))))
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").field("id", &self.inner.id).finish_non_exhaustive()
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.inner.entries.read().unwrap_or_else(PoisonError::into_inner).get(key).cloned())
    }

    /// The length of each stored value (the log is not under keys).
    fn stored_sizes(&self, keys: &[String]) -> StoreResult<Vec<Option<u64>>> {
        let map = self.inner.entries.read().unwrap_or_else(PoisonError::into_inner);
        Ok(keys.iter().map(|key| map.get(key).map(|bytes| u64::try_from(bytes.len()).unwrap_or(u64::MAX))).collect())
    }

    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        let mut map = self.inner.entries.write().unwrap_or_else(PoisonError::into_inner);
        for (key, bytes) in entries {
            map.insert(key.clone(), bytes.clone());
        }
        Ok(())
    }

    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        let mut map = self.inner.entries.write().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            map.remove(key);
        }
        Ok(())
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let map = self.inner.entries.read().unwrap_or_else(PoisonError::into_inner);
        Ok(map
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, _)| key.clone())
            .collect())
    }

    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        let mut map = self.inner.entries.write().unwrap_or_else(PoisonError::into_inner);
        if map.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        map.insert(key.to_owned(), new.to_vec());
        Ok(true)
    }

    fn log_append(&self, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
        let mut logs = self.inner.logs.write().unwrap_or_else(PoisonError::into_inner);
        let records = logs.entry(log.to_owned()).or_default();
        if let Some((&last, _)) = records.last_key_value() {
            if seq <= last {
                return Err(StoreError::Conflict {
                    key: super::log_key(log, seq),
                    reason: format!("log {log} already reached record {last}: another writer committed first"),
                });
            }
        }
        records.insert(seq, record.to_vec());
        Ok(())
    }

    fn log_read(&self, log: &str, after: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let logs = self.inner.logs.read().unwrap_or_else(PoisonError::into_inner);
        let Some(records) = logs.get(log) else {
            return Ok(Vec::new());
        };
        Ok(records
            .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .map(|(&seq, bytes)| (seq, bytes.clone()))
            .collect())
    }

    fn log_is_current(&self, log: &str, last_seq: u64) -> StoreResult<bool> {
        // Only this process sees a memory store, and one connection per branch writes it.
        let logs = self.inner.logs.read().unwrap_or_else(PoisonError::into_inner);
        Ok(logs.get(log).and_then(|r| r.last_key_value()).map(|(&seq, _)| seq) == Some(last_seq))
    }

    fn log_delete(&self, log: &str) -> StoreResult<()> {
        self.inner.logs.write().unwrap_or_else(PoisonError::into_inner).remove(log);
        Ok(())
    }

    fn log_discard(&self, log: &str, through: u64) -> StoreResult<()> {
        let mut logs = self.inner.logs.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(records) = logs.get_mut(log) {
            // `split_off` keeps the records after `through` in the returned map.
            let kept = match through.checked_add(1) {
                Some(first_kept) => records.split_off(&first_kept),
                None => BTreeMap::new(),
            };
            *records = kept;
        }
        Ok(())
    }

    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        let lock = &self.inner.writer;
        let mut locked = lock_ignoring_poison(&lock.locked);
        while *locked {
            locked = lock.released.wait(locked).unwrap_or_else(PoisonError::into_inner);
        }
        *locked = true;
        Ok(WriterGuard::new(Box::new(MemoryWriterGuard(Arc::clone(lock)))))
    }

    fn destroy(&self) -> StoreResult<()> {
        if let Some(id) = &self.inner.id {
            let mut registry = registry();
            if registry.get(id).is_some_and(|registered| Arc::ptr_eq(registered, &self.inner)) {
                registry.remove(id);
            }
        }
        self.inner.entries.write().unwrap_or_else(PoisonError::into_inner).clear();
        self.inner.logs.write().unwrap_or_else(PoisonError::into_inner).clear();
        Ok(())
    }
}
