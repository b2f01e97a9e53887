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
//! - `nodes/` (content-addressed index nodes), `values/` (content-addressed out-of-line
//!   values) and `packs/` (the commits between two snapshots, under the id of a fresh
//!   commit) are written once with fixed bytes, so a frontend copy is always the backend's
//!   bytes. They are read from the frontend first.
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
//! only, and not under `:backend-only`, which never reads them); `:write-around` writes only
//! the backend, and reads fill the frontend. Deletes go
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
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

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
    key.starts_with("nodes/") || key.starts_with("values/") || key.starts_with("packs/")
}

/// The backend key that every delete of cacheable keys through a tiered store changes (to a
/// fresh random value), after the keys are gone from the backend. A handle that reads a new
/// value no longer trusts its frontend's entries (see [`TieredStore`]). Never listed.
pub const DELETES_KEY: &str = "tiered/deletes";

/// A store over two stores: `backend` holds the data, `frontend` caches its immutable keys.
///
/// **Deletes by other handles.** A cached key that another handle deletes from the backend
/// (garbage collection in another process) must not be served for ever. Each delete of
/// cacheable keys changes [`DELETES_KEY`] in the backend after the keys are gone. A handle
/// serves a key from its frontend only when it has *verified* it: read it from the backend (a
/// miss, or a first hit on an entry that was in the frontend before this handle wrote or
/// read it) since it last saw [`DELETES_KEY`] change. The handle reads [`DELETES_KEY`] with
/// every read that goes to the backend anyway (a head, a commit record, a listing, the log:
/// in the same round trip where the backend batches reads), and when it changed, drops every
/// verification. So a delete by another handle is seen by this handle's first read of a
/// mutable key or listing after the delete returned. The database always reads a head (or
/// lists) before it reads the nodes of a newer value, and a garbage collection deletes only
/// nodes that no head reached when it marked, so a node served in between belongs to a
/// value the reader held before; the same node its in-memory node cache may hold. A
/// frontend hit costs no backend read.
pub struct TieredStore {
    frontend: Arc<dyn Store>,
    backend: Arc<dyn Store>,
    write_policy: WritePolicy,
    read_policy: ReadPolicy,
    frontend_errors: AtomicU64,
    trust: Mutex<Trust>,
}

/// Which frontend entries this handle may serve.
struct Trust {
    /// [`DELETES_KEY`] as this handle saw it last.
    deletes: Option<Vec<u8>>,
    /// Keys read from (or written to) the backend since `deletes` was seen.
    verified: HashSet<String>,
}

impl TieredStore {
    /// A tiered store over `frontend` and `backend`; reads the backend's [`DELETES_KEY`].
    pub fn open(
        frontend: Arc<dyn Store>,
        backend: Arc<dyn Store>,
        write_policy: WritePolicy,
        read_policy: ReadPolicy,
    ) -> StoreResult<TieredStore> {
        let deletes = backend.get(DELETES_KEY)?;
        Ok(TieredStore {
            frontend,
            backend,
            write_policy,
            read_policy,
            frontend_errors: AtomicU64::new(0),
            trust: Mutex::new(Trust { deletes, verified: HashSet::new() }),
        })
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

    fn trust(&self) -> MutexGuard<'_, Trust> {
        self.trust.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reads_frontend(&self, key: &str) -> bool {
        self.read_policy == ReadPolicy::FrontendFirst && is_cacheable(key)
    }

    /// Takes note of the backend's [`DELETES_KEY`] as just read: when it changed, no
    /// frontend entry is trusted any more.
    fn saw_deletes(&self, deletes: Option<Vec<u8>>) {
        let mut trust = self.trust();
        if trust.deletes != deletes {
            trust.deletes = deletes;
            trust.verified.clear();
        }
    }

    /// Reads [`DELETES_KEY`] beside a read of the backend that does not say it.
    fn check_deletes(&self) -> StoreResult<()> {
        if self.read_policy == ReadPolicy::FrontendFirst {
            self.saw_deletes(self.backend.get(DELETES_KEY)?);
        }
        Ok(())
    }

    /// The deletes marker as of now, to verify keys read from the backend after it.
    fn deletes_seen(&self) -> Option<Vec<u8>> {
        self.trust().deletes.clone()
    }

    /// Marks keys read from or written to the backend as servable from the frontend, unless
    /// this handle saw a delete meanwhile (then they are verified again on their next read).
    fn verify<'a>(&self, seen: &Option<Vec<u8>>, keys: impl IntoIterator<Item = &'a String>) {
        let mut trust = self.trust();
        if trust.deletes == *seen {
            trust.verified.extend(keys.into_iter().cloned());
        }
    }

    fn count_frontend_error(&self) {
        self.frontend_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies entries into the frontend; a failure only leaves misses.
    fn fill(&self, entries: &[(String, Vec<u8>)]) {
        if !entries.is_empty() && self.frontend.put_batch(entries).is_err() {
            self.count_frontend_error();
        }
    }

    /// After a successful write of `entries` to the backend: the frontend's copy under
    /// `:write-through`.
    fn write_frontend(&self, seen: &Option<Vec<u8>>, entries: &[(String, Vec<u8>)]) {
        if self.write_policy != WritePolicy::WriteThrough || self.read_policy != ReadPolicy::FrontendFirst {
            return;
        }
        let cacheable: Vec<(String, Vec<u8>)>;
        let entries = if entries.iter().all(|(key, _)| is_cacheable(key)) {
            entries
        } else {
            cacheable = entries.iter().filter(|(key, _)| is_cacheable(key)).cloned().collect();
            &cacheable
        };
        if entries.is_empty() {
            return;
        }
        if self.frontend.put_batch(entries).is_err() {
            self.count_frontend_error();
            return;
        }
        self.verify(seen, entries.iter().map(|(key, _)| key));
    }

    /// Reads cacheable keys: verified ones from the frontend, the rest from the backend
    /// (filling the frontend where it lacks them).
    fn get_cacheable(&self, keys: &[&String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let seen = self.deletes_seen();
        let verified: Vec<bool> = {
            let trust = self.trust();
            keys.iter().map(|key| trust.verified.contains(*key)).collect()
        };
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        // The frontend's copies, of verified keys and of the others (to know whether a fill
        // is needed after the backend confirms them).
        let in_frontend: Vec<Option<Vec<u8>>> =
            match self.frontend.get_many(&keys.iter().map(|k| (*k).clone()).collect::<Vec<_>>()) {
                Ok(found) => found,
                Err(_) => {
                    self.count_frontend_error();
                    vec![None; keys.len()]
                }
            };
        let mut ask: Vec<usize> = Vec::new();
        let mut present_unverified: Vec<bool> = vec![false; keys.len()];
        for (i, bytes) in in_frontend.into_iter().enumerate() {
            match (verified[i], bytes) {
                (true, Some(bytes)) => out[i] = Some(bytes),
                (false, Some(_)) => {
                    present_unverified[i] = true;
                    ask.push(i);
                }
                (_, None) => ask.push(i),
            }
        }
        if ask.is_empty() {
            return Ok(out);
        }
        let asked: Vec<String> = ask.iter().map(|&i| keys[i].clone()).collect();
        let found = self.backend.get_many(&asked)?;
        let mut fills = Vec::new();
        let mut confirmed = Vec::new();
        for (&i, bytes) in ask.iter().zip(found) {
            if let Some(bytes) = &bytes {
                confirmed.push(keys[i]);
                if !present_unverified[i] {
                    fills.push((keys[i].clone(), bytes.clone()));
                }
            } else if present_unverified[i] {
                // Deleted from the backend by another handle: not served again.
                if self.frontend.delete_batch(std::slice::from_ref(keys[i])).is_err() {
                    self.count_frontend_error();
                }
            }
            out[i] = bytes;
        }
        self.fill(&fills);
        self.verify(&seen, confirmed);
        Ok(out)
    }
}

impl Store for TieredStore {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        if self.reads_frontend(key) {
            let key = key.to_owned();
            return Ok(self.get_cacheable(&[&key])?.pop().flatten());
        }
        if self.read_policy == ReadPolicy::BackendOnly || key == DELETES_KEY {
            return self.backend.get(key);
        }
        // A mutable key: read beside the deletes marker (one round trip where the backend
        // batches reads).
        let mut found = self.backend.get_many(&[key.to_owned(), DELETES_KEY.to_owned()])?;
        let deletes = found.pop().flatten();
        let bytes = found.pop().flatten();
        self.saw_deletes(deletes);
        Ok(bytes)
    }

    /// The backend's sizes: the backend is the store, the frontend only a cache of it (a
    /// delete removes the frontend's copy too, but that is cache, not store).
    fn stored_sizes(&self, keys: &[String]) -> StoreResult<Vec<Option<u64>>> {
        self.backend.stored_sizes(keys)
    }

    fn prefers_batched_reads(&self) -> bool {
        self.backend.prefers_batched_reads()
    }

    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let (cached, direct): (Vec<usize>, Vec<usize>) = (0..keys.len()).partition(|&i| self.reads_frontend(&keys[i]));
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        if !direct.is_empty() {
            let mut asked: Vec<String> = direct.iter().map(|&i| keys[i].clone()).collect();
            let with_deletes = self.read_policy == ReadPolicy::FrontendFirst;
            if with_deletes {
                asked.push(DELETES_KEY.to_owned());
            }
            let mut found = self.backend.get_many(&asked)?;
            if with_deletes {
                let deletes = found.pop().flatten();
                self.saw_deletes(deletes);
            }
            for (&i, bytes) in direct.iter().zip(found) {
                out[i] = bytes;
            }
        }
        if !cached.is_empty() {
            let asked: Vec<&String> = cached.iter().map(|&i| &keys[i]).collect();
            for (&i, bytes) in cached.iter().zip(self.get_cacheable(&asked)?) {
                out[i] = bytes;
            }
        }
        Ok(out)
    }

    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        let seen = self.deletes_seen();
        self.backend.put_batch(entries)?;
        self.write_frontend(&seen, entries);
        Ok(())
    }

    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        let cached: Vec<String> = keys.iter().filter(|key| is_cacheable(key)).cloned().collect();
        {
            let mut trust = self.trust();
            for key in &cached {
                trust.verified.remove(key);
            }
        }
        self.backend.delete_batch(keys)?;
        if cached.is_empty() {
            return Ok(());
        }
        // Other handles drop their trust in their frontends when they read this.
        self.backend.put_batch(&[(DELETES_KEY.to_owned(), uuid::Uuid::new_v4().as_bytes().to_vec())])?;
        self.frontend.delete_batch(&cached)
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let mut keys = self.backend.list(prefix)?;
        keys.retain(|key| key != DELETES_KEY);
        self.check_deletes()?;
        Ok(keys)
    }

    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        let seen = self.deletes_seen();
        let swapped = self.backend.compare_and_set(key, expected, new)?;
        if swapped {
            self.write_frontend(&seen, &[(key.to_owned(), new.to_vec())]);
        }
        Ok(swapped)
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> StoreResult<bool> {
        let seen = self.deletes_seen();
        let written = self.backend.put_if_absent(key, bytes)?;
        if written {
            self.write_frontend(&seen, &[(key.to_owned(), bytes.to_vec())]);
        }
        Ok(written)
    }

    // The log changes with every commit of any process: it lives in the backend only.
    fn log_append(&self, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
        self.backend.log_append(log, seq, record)
    }

    fn log_append_many(&self, log: &str, records: &[(u64, &[u8])]) -> Result<(), super::AppendFailure> {
        self.backend.log_append_many(log, records)
    }

    fn log_read(&self, log: &str, after: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let records = self.backend.log_read(log, after)?;
        self.check_deletes()?;
        Ok(records)
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
        self.trust().verified.clear();
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
        Ok(Some(Arc::new(TieredStore::open(frontend, backend, write_policy, read_policy)?)))
    }

    /// The backend's identity: the data lives there, and two tiered configs over one backend
    /// name the same database (their frontends are caches of it).
    fn identity(&self, config: &Edn) -> String {
        config.get_kw("backend-config").map(store_identity).unwrap_or_default()
    }
}
