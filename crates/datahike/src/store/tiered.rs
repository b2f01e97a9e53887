//! The `:tiered` backend: a fast frontend store (memory, a local directory) caching a durable
//! backend store (a file store, a database server, an object store), after konserve's tiered
//! store.
//!
//! ```text
//! {:store {:backend :tiered
//!          :frontend-config {:backend :memory}
//!          :backend-config {:backend :file :path "/var/lib/db"}
//!          :write-policy :write-through      ; or :write-around
//!          :read-policy :frontend-first}}    ; or :backend-only
//! ```
//!
//! **The backend is the store; the frontend is a cache of it.** Every write goes to the
//! backend first and is durable there before the call returns; every conditional write
//! (`put_if_absent`, `compare_and_set`, log appends) is decided by the backend. Other
//! processes and handles may write the backend directly, so the frontend only ever holds keys
//! whose bytes never change once written:
//!
//! - `nodes/` (content-addressed index nodes) and `packs/` (the commits between two
//!   snapshots, under the id of a fresh commit) are written once with fixed bytes, so a
//!   frontend copy is always the backend's bytes. They are read from the frontend first.
//! - Everything else is read from the backend, always: heads, the log and its floor, the
//!   writer lease, `gc/epoch`, and also `commits/`. A commit record is immutable too, but the
//!   database asks whether one *exists* before it writes a head naming it (`branch`,
//!   `commit-as-db`), and a garbage collection in another process may have deleted it: read
//!   from the backend, "present" means present, and since a collection deletes a commit
//!   record no later than the nodes it marks, nodes read for a present commit are nodes the
//!   backend still has.
//! - A frontend copy of a node that another process's collection deleted from the backend
//!   is still served. Nothing asks whether a node exists (listing goes to the backend, and
//!   a flush always writes its nodes to the backend), so such a copy changes no decision; it
//!   is the same bytes the connection's own node cache would have kept in memory.
//!
//! Write policies: `:write-through` writes the backend, then the frontend (cacheable keys
//! only); `:write-around` writes only the backend, and reads fill the frontend. Deletes go
//! to both under either policy. Read policies: `:frontend-first` reads cacheable keys from
//! the frontend and, on a miss, from the backend, copying what it read into the frontend;
//! `:backend-only` never reads the frontend. konserve's `:write-behind` (acknowledge before
//! the backend has the write) and `:frontend-only` are refused: the first breaks the
//! durability of every write, the second would make the cache the store.
//!
//! The frontend is a cache, so its failures are not the caller's: a frontend read that fails
//! counts as a miss, a frontend write that fails leaves a miss behind (counted in
//! [`TieredStore::frontend_errors`]). A failed frontend *delete* is an error, because the
//! frontend would keep a key the caller deleted.
//!
//! On open nothing is copied (Datahike copies the backend's keys into the frontend on
//! connect): the heads are read from the backend anyway, and the nodes a connection needs
//! come in as it reads them; copying every key would cost a read of the whole store per
//! connection. A file frontend makes the cache outlive the process.

use super::backend::{store_identity, Backend, OpenMode};
use super::{MemoryStore, Store, StoreError, StoreResult, WriterGuard};
use crate::config::StoreConfig;
use crate::edn::Edn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// When the frontend is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WritePolicy {
    /// Backend (durably), then frontend; the write returns when both are done.
    WriteThrough,
    /// Backend only; reads fill the frontend.
    WriteAround,
}

/// Where cacheable keys are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPolicy {
    /// The frontend, then the backend on a miss (filling the frontend).
    FrontendFirst,
    /// The backend only.
    BackendOnly,
}

/// Whether the frontend may hold `key`: only keys whose bytes never change once written and
/// whose presence decides nothing (see the module doc).
pub fn is_cacheable(key: &str) -> bool {
    key.starts_with("nodes/") || key.starts_with("packs/")
}

/// A store over two stores: `backend` holds the data, `frontend` caches its immutable keys.
pub struct TieredStore {
    frontend: Arc<dyn Store>,
    backend: Arc<dyn Store>,
    write_policy: WritePolicy,
    read_policy: ReadPolicy,
    frontend_errors: AtomicU64,
}

impl TieredStore {
    /// A tiered store over `frontend` and `backend`.
    pub fn new(
        frontend: Arc<dyn Store>,
        backend: Arc<dyn Store>,
        write_policy: WritePolicy,
        read_policy: ReadPolicy,
    ) -> TieredStore {
        TieredStore { frontend, backend, write_policy, read_policy, frontend_errors: AtomicU64::new(0) }
    }

    /// The frontend store.
    pub fn frontend(&self) -> &Arc<dyn Store> {
        &self.frontend
    }

    /// The backend store.
    pub fn backend(&self) -> &Arc<dyn Store> {
        &self.backend
    }

    /// How many frontend reads and writes failed (each left a cache miss behind).
    pub fn frontend_errors(&self) -> u64 {
        self.frontend_errors.load(Ordering::Relaxed)
    }

    fn reads_frontend(&self, key: &str) -> bool {
        self.read_policy == ReadPolicy::FrontendFirst && is_cacheable(key)
    }

    /// Copies entries into the frontend; a failure only leaves misses.
    fn fill(&self, entries: &[(String, Vec<u8>)]) {
        if !entries.is_empty() && self.frontend.put_batch(entries).is_err() {
            self.frontend_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// After a successful write of `entries` to the backend: the frontend's copy under
    /// `:write-through`.
    fn write_frontend(&self, entries: &[(String, Vec<u8>)]) {
        if self.write_policy != WritePolicy::WriteThrough {
            return;
        }
        if entries.iter().all(|(key, _)| is_cacheable(key)) {
            self.fill(entries);
        } else {
            let cacheable: Vec<(String, Vec<u8>)> =
                entries.iter().filter(|(key, _)| is_cacheable(key)).cloned().collect();
            self.fill(&cacheable);
        }
    }

    fn write_frontend_one(&self, key: &str, bytes: &[u8]) {
        if self.write_policy == WritePolicy::WriteThrough && is_cacheable(key) {
            self.fill(&[(key.to_owned(), bytes.to_vec())]);
        }
    }
}

impl Store for TieredStore {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        if !self.reads_frontend(key) {
            return self.backend.get(key);
        }
        match self.frontend.get(key) {
            Ok(Some(bytes)) => return Ok(Some(bytes)),
            Ok(None) => {}
            Err(_) => {
                self.frontend_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        let bytes = self.backend.get(key)?;
        if let Some(bytes) = &bytes {
            self.fill(&[(key.to_owned(), bytes.clone())]);
        }
        Ok(bytes)
    }

    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let cached: Vec<usize> = (0..keys.len()).filter(|&i| self.reads_frontend(&keys[i])).collect();
        let mut from_backend: Vec<usize> = (0..keys.len()).filter(|&i| !self.reads_frontend(&keys[i])).collect();
        if !cached.is_empty() {
            let asked: Vec<String> = cached.iter().map(|&i| keys[i].clone()).collect();
            match self.frontend.get_many(&asked) {
                Ok(found) => {
                    for (&i, bytes) in cached.iter().zip(found) {
                        match bytes {
                            Some(bytes) => out[i] = Some(bytes),
                            None => from_backend.push(i),
                        }
                    }
                }
                Err(_) => {
                    self.frontend_errors.fetch_add(1, Ordering::Relaxed);
                    from_backend.extend(&cached);
                }
            }
        }
        if !from_backend.is_empty() {
            let asked: Vec<String> = from_backend.iter().map(|&i| keys[i].clone()).collect();
            let mut fills = Vec::new();
            for (&i, bytes) in from_backend.iter().zip(self.backend.get_many(&asked)?) {
                if let Some(bytes) = &bytes {
                    if self.reads_frontend(&keys[i]) {
                        fills.push((keys[i].clone(), bytes.clone()));
                    }
                }
                out[i] = bytes;
            }
            self.fill(&fills);
        }
        Ok(out)
    }

    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        self.backend.put_batch(entries)?;
        self.write_frontend(entries);
        Ok(())
    }

    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        self.backend.delete_batch(keys)?;
        let cached: Vec<String> = keys.iter().filter(|key| is_cacheable(key)).cloned().collect();
        if cached.is_empty() {
            return Ok(());
        }
        self.frontend.delete_batch(&cached)
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        self.backend.list(prefix)
    }

    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        let swapped = self.backend.compare_and_set(key, expected, new)?;
        if swapped {
            self.write_frontend_one(key, new);
        }
        Ok(swapped)
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> StoreResult<bool> {
        let written = self.backend.put_if_absent(key, bytes)?;
        if written {
            self.write_frontend_one(key, bytes);
        }
        Ok(written)
    }

    // The log changes with every commit of any process: it lives in the backend only.
    fn log_append(&self, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
        self.backend.log_append(log, seq, record)
    }

    fn log_read(&self, log: &str, after: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        self.backend.log_read(log, after)
    }

    fn log_discard(&self, log: &str, through: u64) -> StoreResult<()> {
        self.backend.log_discard(log, through)
    }

    fn log_discard_all(&self, log: &str, through: u64) -> StoreResult<()> {
        self.backend.log_discard_all(log, through)
    }

    fn log_delete(&self, log: &str) -> StoreResult<()> {
        self.backend.log_delete(log)
    }

    fn log_is_current(&self, log: &str, last_seq: u64) -> StoreResult<bool> {
        self.backend.log_is_current(log, last_seq)
    }

    fn sweep_temporaries(&self) -> StoreResult<Vec<String>> {
        let mut swept = self.backend.sweep_temporaries()?;
        swept.extend(self.frontend.sweep_temporaries()?.into_iter().map(|path| format!("frontend/{path}")));
        Ok(swept)
    }

    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        self.backend.lock_writer()
    }

    fn destroy(&self) -> StoreResult<()> {
        self.backend.destroy()?;
        self.frontend.destroy()
    }
}

/// The `:tiered` backend of the registry.
pub(super) struct TieredBackend;

fn sub_config<'a>(config: &'a Edn, key: &str) -> StoreResult<&'a Edn> {
    match config.get_kw(key) {
        Some(map @ Edn::Map(_)) => Ok(map),
        other => Err(StoreError::Invalid(format!(
            ":store :{key} must be a :store map for the :tiered backend, e.g. {{:backend :memory}}, got {}",
            other.map_or("nothing".to_string(), |v| super::backend::redact(v).to_string())
        ))),
    }
}

fn policy<'a>(config: &Edn, key: &str, default: &'a str, allowed: &[&'a str]) -> StoreResult<&'a str> {
    match config.get_kw(key) {
        None | Some(Edn::Nil) => Ok(default),
        Some(Edn::Keyword(k)) if allowed.contains(&k.as_str()) => {
            Ok(allowed.iter().find(|a| **a == k.as_str()).copied().unwrap_or(default))
        }
        Some(other) => Err(StoreError::Invalid(format!(
            ":store :{key} of the :tiered backend must be one of :{}, got {other}{}",
            allowed.join(" :"),
            match other.as_keyword().map(|k| k.as_str()) {
                Some("write-behind") =>
                    " (it acknowledges a write before it is durable, which the store contract forbids)",
                Some("frontend-only") => " (the frontend is a cache of the backend, never the store)",
                _ => "",
            }
        ))),
    }
}

/// Whether a `:store` map is a memory store without an `:id`: a private cache, not one
/// registered process-wide (which would live until deleted).
fn anonymous_memory(config: &Edn) -> bool {
    matches!(config.get_kw("backend").and_then(Edn::as_keyword).map(|k| k.as_str()), Some("memory" | "mem"))
        && matches!(config.get_kw("id"), None | Some(Edn::Nil))
}

/// One tier's config, parsed (so that a bad one is refused before anything is opened);
/// `None` for a private memory frontend. Errors say which tier.
fn parse_tier(config: &Edn, key: &str) -> StoreResult<Option<StoreConfig>> {
    if key == "frontend-config" && anonymous_memory(config) {
        return Ok(None);
    }
    StoreConfig::from_edn(config).map(Some).map_err(|e| StoreError::Invalid(format!(":store :{key}: {e}")))
}

fn open_tier(tier: Option<&StoreConfig>, mode: OpenMode) -> StoreResult<Option<Arc<dyn Store>>> {
    match tier {
        None => Ok(Some(Arc::new(MemoryStore::new()))),
        Some(config) => config.open(mode),
    }
}

impl Backend for TieredBackend {
    fn open(&self, config: &Edn, mode: OpenMode) -> StoreResult<Option<Arc<dyn Store>>> {
        let frontend_config = sub_config(config, "frontend-config")?;
        let backend_config = sub_config(config, "backend-config")?;
        let write_policy = match policy(config, "write-policy", "write-through", &["write-through", "write-around"])? {
            "write-around" => WritePolicy::WriteAround,
            _ => WritePolicy::WriteThrough,
        };
        let read_policy = match policy(config, "read-policy", "frontend-first", &["frontend-first", "backend-only"])? {
            "backend-only" => ReadPolicy::BackendOnly,
            _ => ReadPolicy::FrontendFirst,
        };
        let frontend_tier = parse_tier(frontend_config, "frontend-config")?;
        let backend_tier = parse_tier(backend_config, "backend-config")?;
        if let (Some(front), Some(back)) = (&frontend_tier, &backend_tier) {
            if front.identity() == back.identity() {
                return Err(StoreError::Invalid(format!(
                    ":store :frontend-config and :backend-config of the :tiered backend name the same store: {}",
                    super::backend::redact(backend_config)
                )));
            }
        }
        let Some(backend) = open_tier(backend_tier.as_ref(), mode)? else { return Ok(None) };
        // The frontend is this handle's cache, written by reads too: it is created when
        // missing, also for a reader that never writes the backend.
        let frontend = open_tier(frontend_tier.as_ref(), OpenMode::Create)?
            .ok_or_else(|| StoreError::Invalid(":store :frontend-config opened nothing in create mode".into()))?;
        Ok(Some(Arc::new(TieredStore::new(frontend, backend, write_policy, read_policy))))
    }

    /// The backend's identity: the data lives there, and two tiered configs over one backend
    /// name the same database (their frontends are caches of it).
    fn identity(&self, config: &Edn) -> String {
        config.get_kw("backend-config").map(store_identity).unwrap_or_default()
    }
}
