//! The `:lmdb` backend (cargo feature `lmdb`): `{:store {:backend :lmdb :path "/var/lib/db"}}`,
//! one LMDB environment per store directory, through `heed` (LMDB's C code is vendored and
//! built with the crate).
//!
//! Layout under the store directory:
//!
//! ```text
//! data.mdb    LMDB's data file: every key of the store in its unnamed database; present = a store
//! lock.mdb    LMDB's reader table and write mutex
//! LOCK        flock'd by the single writer (Store::lock_writer), as in the file backend
//! ```
//!
//! Every write method is one LMDB write transaction, committed with LMDB's default flags, so
//! it is durable (fsync'd) when it returns and whole or absent after a crash; LMDB serialises
//! write transactions across threads and processes itself. Reads run in read transactions
//! (`get_many` and `list` in one each) and never wait for writers.
//!
//! Keys longer than LMDB's limit (511 bytes) are stored under their first 479 bytes, a `0xFF`
//! byte (never part of UTF-8, so no key of the store reads the same) and 16 bytes of the key's
//! BLAKE3 hash; the value then starts with the full key (`[u32 length][key]`), which reads
//! check, and listings read back. Listing by a prefix is a cursor range over the prefix.
//!
//! The log keeps the default key layout of [`Store::log_append`] (one key per record, a
//! floor key), with each append checked and written in one transaction, and
//! [`Store::log_is_current`] answered from one read transaction.
//!
//! LMDB maps the whole data file: `:map-size` (default 64 GiB on 64-bit systems, 1 GiB
//! otherwise) is address space, not disk space, and bounds the store's size. Every process on
//! a store should use the same map size. Within a process, handles on one directory share
//! one environment (LMDB must not open a file twice in one process).

use super::backend::{redact, string_key, Backend, OpenMode};
use super::{log_key, unframe_record, Store, StoreError, StoreResult, WriterGuard};
use crate::edn::Edn;
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, WithoutTls};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

const DATA_FILE: &str = "data.mdb";
const LMDB_LOCK_FILE: &str = "lock.mdb";
const LOCK_FILE: &str = "LOCK";

/// LMDB's largest key in its default build.
const KEY_BYTES_MAX: usize = 511;
/// Bytes of a long key kept before its hash.
const LONG_KEY_HEAD: usize = 479;
/// Stands between a long key's head and its hash; no UTF-8 text contains it.
const LONG_KEY_MARK: u8 = 0xFF;
/// The length of a stored long key: head, mark and 16 bytes of hash.
const LONG_KEY_BYTES: usize = LONG_KEY_HEAD + 1 + 16;

/// The default map size: address space, not disk space.
#[cfg(target_pointer_width = "64")]
pub const MAP_SIZE_DEFAULT: usize = 64 << 30;
/// The default map size: address space, not disk space.
#[cfg(not(target_pointer_width = "64"))]
pub const MAP_SIZE_DEFAULT: usize = 1 << 30;

/// Map sizes are rounded up to this, a multiple of every page size in use.
const MAP_SIZE_UNIT: usize = 64 << 10;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A cursor over stored keys and values.
type Entries<'txn> = Box<dyn Iterator<Item = heed::Result<(&'txn [u8], &'txn [u8])>> + 'txn>;

/// One open environment, shared by the handles of this process on its directory.
struct Shared {
    env: Env<WithoutTls>,
    db: Database<'static, Bytes, Bytes>,
    path: PathBuf,
    map_size: usize,
    /// Set by `destroy`: the files are gone, handles still holding this refuse to work.
    destroyed: AtomicBool,
}

/// The environments open in this process, by canonical directory.
fn environments() -> &'static Mutex<HashMap<PathBuf, Weak<Shared>>> {
    static ENVS: OnceLock<Mutex<HashMap<PathBuf, Weak<Shared>>>> = OnceLock::new();
    ENVS.get_or_init(|| Mutex::new(HashMap::new()))
}

#[expect(unsafe_code, reason = "heed's Env::open is unsafe: LMDB maps the data file into memory")]
fn open_env(path: &Path, map_size: usize) -> heed::Result<Env<WithoutTls>> {
    let mut options = EnvOpenOptions::new().read_txn_without_tls();
    options.map_size(map_size).max_dbs(0);
    // SAFETY: the map is only modified through LMDB (no NO_LOCK, NO_SYNC or WRITE_MAP flag),
    // the process opens each directory once (`environments` shares an open one, and heed
    // refuses a second open), and transactions are short: none outlives a store method.
    unsafe { options.open(path) }
}

/// A store in an LMDB environment. See the module documentation.
pub struct LmdbStore {
    shared: Arc<Shared>,
    /// The last sequence number this handle appended to each log (for `log_is_current`).
    appended: Mutex<HashMap<String, u64>>,
    /// The handle's open `LOCK` file, while no writer lock of this handle holds it.
    lock_file: Arc<Mutex<Option<File>>>,
}

impl std::fmt::Debug for LmdbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LmdbStore({})", self.shared.path.display())
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// An LMDB error on `key` (or an operation) of the store at `path`.
fn lmdb_error(path: &Path, key: &str, err: heed::Error) -> StoreError {
    match err {
        heed::Error::Io(source) => StoreError::Io { path: path.to_path_buf(), source },
        heed::Error::Mdb(heed::MdbError::MapFull) => StoreError::Backend {
            backend: "lmdb",
            key: key.to_string(),
            reason: format!(
                "the LMDB map of {} is full: give the store a larger :map-size (the store's size is bounded by it)",
                path.display()
            ),
        },
        heed::Error::Mdb(heed::MdbError::MapResized) => StoreError::Backend {
            backend: "lmdb",
            key: key.to_string(),
            reason: format!(
                "another process grew the LMDB map of {}: every process should open it with the same :map-size; \
                 reopen the store",
                path.display()
            ),
        },
        other => StoreError::Backend {
            backend: "lmdb",
            key: key.to_string(),
            reason: format!("{}: {other}", path.display()),
        },
    }
}

/// The key under which `key` is stored: itself, or for a key too long for LMDB its head, a
/// mark and its hash.
fn stored_key(key: &str) -> Cow<'_, [u8]> {
    let bytes = key.as_bytes();
    if bytes.len() <= KEY_BYTES_MAX {
        return Cow::Borrowed(bytes);
    }
    let mut stored = Vec::with_capacity(LONG_KEY_BYTES);
    stored.extend_from_slice(&bytes[..LONG_KEY_HEAD]);
    stored.push(LONG_KEY_MARK);
    stored.extend_from_slice(&blake3::hash(bytes).as_bytes()[..16]);
    Cow::Owned(stored)
}

fn is_long(stored: &[u8]) -> bool {
    stored.len() == LONG_KEY_BYTES && stored[LONG_KEY_HEAD] == LONG_KEY_MARK
}

/// The value stored for a long key: the full key, then the bytes.
fn long_value(key: &str, bytes: &[u8]) -> Vec<u8> {
    let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
    let mut value = Vec::with_capacity(4 + key.len() + bytes.len());
    value.extend_from_slice(&len.to_le_bytes());
    value.extend_from_slice(key.as_bytes());
    value.extend_from_slice(bytes);
    value
}

/// The full key and the bytes of a long key's stored value.
fn split_long_value(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(value.get(..4)?.try_into().ok()?) as usize;
    let key = value.get(4..4 + len)?;
    Some((key, value.get(4 + len..)?))
}

/// The key and bytes of one stored entry.
fn entry<'a>(stored: &'a [u8], value: &'a [u8]) -> StoreResult<(&'a [u8], &'a [u8])> {
    if !is_long(stored) {
        return Ok((stored, value));
    }
    split_long_value(value).ok_or_else(|| StoreError::Corrupt {
        key: String::from_utf8_lossy(stored).into_owned(),
        reason: "the entry of a long key lacks its full key".into(),
    })
}

impl LmdbStore {
    /// Whether `path` holds an LMDB store.
    pub fn exists(path: &Path) -> bool {
        path.join(DATA_FILE).is_file()
    }

    /// Creates the store at `path` (the directory and the environment), or opens it when it
    /// exists. `map_size` defaults to [`MAP_SIZE_DEFAULT`].
    pub fn create(path: &Path, map_size: Option<usize>) -> StoreResult<LmdbStore> {
        fs::create_dir_all(path).map_err(io_error(path))?;
        Self::open_shared(path, map_size, true).map(|store| store.expect("created"))
    }

    /// Opens the store at `path`, or `None` when there is none.
    pub fn open(path: &Path, map_size: Option<usize>) -> StoreResult<Option<LmdbStore>> {
        Self::open_shared(path, map_size, false)
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The map size of the store's environment in this process, in bytes.
    pub fn map_size(&self) -> usize {
        self.shared.map_size
    }

    fn open_shared(path: &Path, map_size: Option<usize>, create: bool) -> StoreResult<Option<LmdbStore>> {
        let map_size = map_size.unwrap_or(MAP_SIZE_DEFAULT).div_ceil(MAP_SIZE_UNIT).max(1) * MAP_SIZE_UNIT;
        let mut envs = lock(environments());
        if !create && !Self::exists(path) {
            return Ok(None);
        }
        let canonical = fs::canonicalize(path).map_err(io_error(path))?;
        let live = envs.get(&canonical).and_then(Weak::upgrade).filter(|s| !s.destroyed.load(Ordering::SeqCst));
        let shared = match live {
            Some(shared) => shared,
            None => {
                let shared = Arc::new(Self::open_environment(&canonical, map_size)?);
                envs.retain(|_, weak| weak.strong_count() > 0);
                envs.insert(canonical, Arc::downgrade(&shared));
                shared
            }
        };
        Ok(Some(LmdbStore { shared, appended: Mutex::new(HashMap::new()), lock_file: Arc::new(Mutex::new(None)) }))
    }

    fn open_environment(path: &Path, map_size: usize) -> StoreResult<Shared> {
        // An environment of this directory that was just released may still be closing.
        let deadline = Instant::now() + Duration::from_secs(5);
        let env = loop {
            match open_env(path, map_size) {
                Err(heed::Error::EnvAlreadyOpened) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(heed::Error::EnvAlreadyOpened) => {
                    return Err(StoreError::Invalid(format!(
                        "the LMDB store {} was deleted while this process still holds it open; release its \
                         connections before creating it again",
                        path.display()
                    )))
                }
                other => break other.map_err(|e| lmdb_error(path, "opening the environment", e))?,
            }
        };
        if env.max_key_size() < KEY_BYTES_MAX {
            return Err(StoreError::Invalid(format!(
                "the LMDB build takes keys of at most {} bytes; this store needs {KEY_BYTES_MAX}",
                env.max_key_size()
            )));
        }
        let rtxn = env.read_txn().map_err(|e| lmdb_error(path, "opening the database", e))?;
        let db = env
            .open_databases_and_commit(rtxn, |opener, rtxn| {
                opener.open_database::<Bytes, Bytes>(rtxn, None).map(CommitOrAbort::<_, ()>::Commit)
            })
            .map_err(|e| lmdb_error(path, "opening the database", e))?
            .unwrap_commit()
            .ok_or_else(|| {
                StoreError::Invalid(format!("the LMDB environment {} has no main database", path.display()))
            })?;
        Ok(Shared { env, db, path: path.to_path_buf(), map_size, destroyed: AtomicBool::new(false) })
    }

    fn check_live(&self) -> StoreResult<()> {
        if self.shared.destroyed.load(Ordering::SeqCst) {
            return Err(StoreError::Invalid(format!("the LMDB store {} was deleted", self.shared.path.display())));
        }
        Ok(())
    }

    fn err(&self, key: &str) -> impl FnOnce(heed::Error) -> StoreError + '_ {
        let key = key.to_string();
        move |e| lmdb_error(&self.shared.path, &key, e)
    }

    /// Reads `key` in `txn`.
    fn read_in(&self, txn: &heed::RoTxn<'_, WithoutTls>, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let stored = stored_key(key);
        let Some(value) = self.shared.db.get(txn, &stored).map_err(self.err(key))? else {
            return Ok(None);
        };
        let (full, bytes) = entry(&stored, value)?;
        // A long key whose hash another key shares (never seen; BLAKE3 has 128 bits here).
        Ok((full == key.as_bytes()).then(|| bytes.to_vec()))
    }

    /// Writes `key` in `txn`.
    fn write_in(&self, txn: &mut heed::RwTxn<'_>, key: &str, bytes: &[u8]) -> StoreResult<()> {
        let stored = stored_key(key);
        let result = if is_long(&stored) {
            self.shared.db.put(txn, &stored, &long_value(key, bytes))
        } else {
            self.shared.db.put(txn, &stored, bytes)
        };
        result.map_err(self.err(key))
    }

    /// Every key starting with `prefix` in `txn`, with a function of its stored bytes.
    fn scan_in<T>(
        &self,
        txn: &heed::RoTxn<'_, WithoutTls>,
        prefix: &str,
        mut keep: impl FnMut(&str, &[u8]) -> StoreResult<Option<T>>,
    ) -> StoreResult<Vec<T>> {
        // A long key is stored under its head: search by the prefix's first bytes, and check
        // each full key.
        let search = &prefix.as_bytes()[..prefix.len().min(LONG_KEY_HEAD)];
        let mut out = Vec::new();
        // LMDB takes no empty key to position a cursor at: the empty prefix walks everything.
        let items: Entries<'_> = if search.is_empty() {
            Box::new(self.shared.db.iter(txn).map_err(self.err(prefix))?)
        } else {
            Box::new(self.shared.db.prefix_iter(txn, search).map_err(self.err(prefix))?)
        };
        for item in items {
            let (stored, value) = item.map_err(self.err(prefix))?;
            let (full, bytes) = entry(stored, value)?;
            if !full.starts_with(prefix.as_bytes()) {
                continue;
            }
            let key = std::str::from_utf8(full).map_err(|_| StoreError::Corrupt {
                key: String::from_utf8_lossy(full).into_owned(),
                reason: "a key that is not UTF-8".into(),
            })?;
            if let Some(x) = keep(key, bytes)? {
                out.push(x);
            }
        }
        Ok(out)
    }

    fn read_txn(&self, what: &str) -> StoreResult<heed::RoTxn<'_, WithoutTls>> {
        self.check_live()?;
        self.shared.env.read_txn().map_err(self.err(what))
    }

    fn write_txn(&self, what: &str) -> StoreResult<heed::RwTxn<'_>> {
        self.check_live()?;
        self.shared.env.write_txn().map_err(self.err(what))
    }

    fn floor_in(&self, txn: &heed::RoTxn<'_, WithoutTls>, log: &str) -> StoreResult<u64> {
        let key = super::log_floor_key(log);
        let bytes = self.read_in(txn, &key)?;
        super::decode_log_floor(key, bytes)
    }
}

/// The sequence number of a record key of `log` in the default layout.
fn record_seq(prefix: &str, key: &str) -> Option<u64> {
    let rest = key.strip_prefix(prefix)?;
    (rest.len() == 20 && rest.bytes().all(|b| b.is_ascii_digit())).then(|| rest.parse().ok())?
}

impl Store for LmdbStore {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let txn = self.read_txn(key)?;
        self.read_in(&txn, key)
    }

    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let txn = self.read_txn("get_many")?;
        keys.iter().map(|key| self.read_in(&txn, key)).collect()
    }

    /// The length of each value, looked up in one read transaction: a lookup in LMDB's map
    /// copies nothing. (Deleting frees the value's pages for reuse inside the data file,
    /// which does not shrink.)
    fn stored_sizes(&self, keys: &[String]) -> StoreResult<Vec<Option<u64>>> {
        let txn = self.read_txn("stored_sizes")?;
        keys.iter()
            .map(|key| {
                let stored = stored_key(key);
                let Some(value) = self.shared.db.get(&txn, &stored).map_err(self.err(key))? else {
                    return Ok(None);
                };
                let (full, bytes) = entry(&stored, value)?;
                Ok((full == key.as_bytes()).then(|| u64::try_from(bytes.len()).unwrap_or(u64::MAX)))
            })
            .collect()
    }

    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut txn = self.write_txn(&entries[0].0)?;
        for (key, bytes) in entries {
            self.write_in(&mut txn, key, bytes)?;
        }
        txn.commit().map_err(self.err(&entries[0].0))
    }

    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut txn = self.write_txn(&keys[0])?;
        for key in keys {
            self.shared.db.delete(&mut txn, &stored_key(key)).map_err(self.err(key))?;
        }
        txn.commit().map_err(self.err(&keys[0]))
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let txn = self.read_txn(prefix)?;
        self.scan_in(&txn, prefix, |key, _| Ok(Some(key.to_string())))
    }

    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        let mut txn = self.write_txn(key)?;
        // The write transaction excludes every other writer, in any process, until commit.
        let current = self.read_in(&txn, key)?;
        if current.as_deref() != expected {
            return Ok(false);
        }
        self.write_in(&mut txn, key, new)?;
        txn.commit().map_err(self.err(key))?;
        Ok(true)
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> StoreResult<bool> {
        self.compare_and_set(key, None, bytes)
    }

    /// The default layout, checked and written in one write transaction: a fenced append
    /// writes nothing.
    fn log_append(&self, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
        let key = log_key(log, seq);
        let mut framed = Vec::with_capacity(record.len() + 4);
        framed.extend_from_slice(&crc32fast::hash(record).to_le_bytes());
        framed.extend_from_slice(record);
        let mut txn = self.write_txn(&key)?;
        let floor = self.floor_in(&txn, log)?;
        if floor >= seq {
            return Err(StoreError::Conflict {
                key,
                reason: format!(
                    "log {log} was discarded through record {floor}: a newer head covers record {seq}, \
                     so this writer is behind another one"
                ),
            });
        }
        if self.shared.db.get(&txn, &stored_key(&key)).map_err(self.err(&key))?.is_some() {
            return Err(StoreError::Conflict {
                key,
                reason: format!("log {log} already holds record {seq}: another writer committed it first"),
            });
        }
        self.write_in(&mut txn, &key, &framed)?;
        txn.commit().map_err(self.err(&key))?;
        lock(&self.appended).insert(log.to_string(), seq);
        Ok(())
    }

    fn log_read(&self, log: &str, after: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let txn = self.read_txn(log)?;
        let floor = self.floor_in(&txn, log)?.max(after);
        let prefix = format!("log/{log}/");
        let mut records = self.scan_in(&txn, &prefix, |key, bytes| match record_seq(&prefix, key) {
            Some(seq) if seq > floor => Ok(Some((seq, unframe_record(key, bytes.to_vec())?))),
            _ => Ok(None),
        })?;
        // The cursor walks keys in byte order, so records come out ascending, except under a
        // log name so long that its keys are hashed.
        records.sort_unstable_by_key(|(seq, _)| *seq);
        Ok(records)
    }

    fn log_is_current(&self, log: &str, last_seq: u64) -> StoreResult<bool> {
        if lock(&self.appended).get(log) != Some(&last_seq) {
            return Ok(false);
        }
        let txn = self.read_txn(log)?;
        if self.floor_in(&txn, log)? > last_seq {
            return Ok(false);
        }
        let ours = log_key(log, last_seq);
        let stored = stored_key(&ours);
        if is_long(&stored) {
            return Ok(false);
        }
        // Our record must still be there, and no record may follow it.
        if self.shared.db.get(&txn, &stored).map_err(self.err(&ours))?.is_none() {
            return Ok(false);
        }
        let prefix = format!("log/{log}/");
        match self.shared.db.get_greater_than(&txn, &stored).map_err(self.err(&ours))? {
            Some((next, _)) => Ok(std::str::from_utf8(next).map_or(true, |next| record_seq(&prefix, next).is_none())),
            None => Ok(true),
        }
    }

    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        self.check_live()?;
        let path = self.shared.path.join(LOCK_FILE);
        let cached = lock(&self.lock_file).take();
        let file = match cached {
            Some(file) => file,
            None => OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_error(&path))?,
        };
        file.lock().map_err(io_error(&path))?;
        Ok(WriterGuard::new(Box::new(LockGuard(Some(file), self.lock_file.clone()))))
    }

    fn destroy(&self) -> StoreResult<()> {
        self.check_live()?;
        let path = self.shared.path.clone();
        // Empty first, so that handles in other processes see the store gone; then the data
        // file, whose absence means "no store", and the rest.
        let mut txn = self.write_txn("destroy")?;
        self.shared.db.clear(&mut txn).map_err(self.err("destroy"))?;
        txn.commit().map_err(self.err("destroy"))?;
        {
            let mut envs = lock(environments());
            self.shared.destroyed.store(true, Ordering::SeqCst);
            envs.remove(&path);
            for file in [DATA_FILE, LMDB_LOCK_FILE, LOCK_FILE] {
                let file = path.join(file);
                match fs::remove_file(&file) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_error(&file)(e)),
                    _ => {}
                }
            }
        }
        match fs::remove_dir(&path) {
            // Files of the user's beside the store stay, and so does the directory.
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(()),
            other => other.map_err(io_error(&path)),
        }
    }
}

/// Holds the flock on `LOCK`; gives the file back to its handle on drop.
struct LockGuard(Option<File>, Arc<Mutex<Option<File>>>);

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(file) = self.0.take() {
            let _ = file.unlock();
            *lock(&self.1) = Some(file);
        }
    }
}

/// `{:backend :lmdb :path "/dir" :map-size bytes}`; `:id` is accepted and not needed.
pub(crate) struct LmdbBackend;

fn map_size_of(config: &Edn) -> StoreResult<Option<usize>> {
    match config.get_kw("map-size") {
        None | Some(Edn::Nil) => Ok(None),
        Some(Edn::Int(n)) if *n > 0 => Ok(Some(usize::try_from(*n).unwrap_or(usize::MAX))),
        Some(other) => Err(StoreError::Invalid(format!(
            ":store :map-size must be a positive number of bytes for the :lmdb backend, got {}",
            redact(other)
        ))),
    }
}

impl Backend for LmdbBackend {
    fn open(&self, config: &Edn, mode: OpenMode) -> StoreResult<Option<Arc<dyn Store>>> {
        let path = PathBuf::from(string_key(config, "lmdb", "path")?);
        let map_size = map_size_of(config)?;
        let store = match mode {
            OpenMode::Create => Some(LmdbStore::create(&path, map_size)?),
            OpenMode::Open | OpenMode::ReadOnly => LmdbStore::open(&path, map_size)?,
        };
        Ok(store.map(|s| Arc::new(s) as Arc<dyn Store>))
    }

    fn identity(&self, config: &Edn) -> String {
        let path = match config.get_kw("path") {
            Some(Edn::Str(p)) => PathBuf::from(p.as_ref()),
            _ => return String::new(),
        };
        fs::canonicalize(&path).unwrap_or(path).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_keep_their_prefix_and_differ() {
        let a = "k".repeat(600);
        let b = format!("{}x", "k".repeat(600));
        let (sa, sb) = (stored_key(&a), stored_key(&b));
        assert!(is_long(&sa) && is_long(&sb) && sa != sb);
        assert!(sa.starts_with(&a.as_bytes()[..LONG_KEY_HEAD]));
        assert!(!is_long(&stored_key(&"k".repeat(KEY_BYTES_MAX))));
        let value = long_value(&a, b"v");
        assert_eq!(split_long_value(&value), Some((a.as_bytes(), &b"v"[..])));
    }
}
