//! The key-value `Store` trait under the index and the commit path, and the backends.
//! A store sees only string keys and bytes; it knows nothing of datoms or indices.
//!
//! Key space used by the database (see ARCHITECTURE.md, "Storage layout"):
//! - `nodes/<32 hex>`: immutable index nodes, content addressed, written once;
//! - `values/<32 hex>`: immutable strings and byte arrays that index nodes hold out of line
//!   (BLAKE3-128 of the bytes), written once before any head names a node referring to them;
//! - `heads/<branch>`: the mutable branch head, replaced only by [`Store::compare_and_set`];
//! - `commits/<uuid>`, `packs/<uuid>`: snapshot commit records and commit packs;
//! - the transaction log of each branch, behind the `log_*` methods.
//!
//! [`backend`] dispatches `{:store {:backend :kw ...}}` to the registered backends (a user
//! registers their own with [`register_backend`]); [`conformance`] is the suite every backend
//! passes, public so that the author of a backend runs it from their own tests. [`tiered`]
//! is a store over two stores (a cache in front of a durable store). [`fault`] holds the
//! stores that test the database against failures: fault injection and power loss.

pub mod backend;
pub mod conformance;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod fault;
mod file;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod jdbc;
pub mod lease;
#[cfg(feature = "lmdb")]
mod lmdb;
mod memory;
#[cfg(any(feature = "s3", feature = "gcs"))]
pub mod object;
mod pack;
pub mod packed;
#[cfg(feature = "redis")]
mod redis;
pub mod tiered;

pub use backend::{register_backend, Backend, OpenMode};
#[cfg(feature = "fuzzing")]
pub(crate) use file::fuzzing as file_fuzzing;
pub use file::FileStore;
#[cfg(feature = "lmdb")]
pub use lmdb::LmdbStore;
pub use memory::MemoryStore;
pub use packed::PackedStore;
#[cfg(feature = "redis")]
pub use redis::{RedisConfig, RedisStore};
pub use tiered::TieredStore;

pub use crate::error::StoreError;

/// Result of the storage layer.
pub type StoreResult<T> = Result<T, StoreError>;

/// Held while this process is the store's single writer; dropping it releases the lock.
pub struct WriterGuard(#[allow(dead_code)] Box<dyn Send>);

impl WriterGuard {
    /// Wraps whatever keeps the lock held (a locked file, a mutex guard...).
    pub fn new(inner: Box<dyn Send>) -> Self {
        WriterGuard(inner)
    }
}

/// A [`Store::log_append_many`] that stopped: how many records, from the first, are durable,
/// and why the next one is not.
#[derive(Debug)]
pub struct AppendFailure {
    /// Records appended (durable) before the failure.
    pub appended: usize,
    /// What stopped the next one.
    pub error: StoreError,
}

/// Which bytes of a value [`Store::get_range`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `len` bytes from `offset`; fewer when the value ends first.
    At {
        /// The first byte.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// The last `len` bytes; the whole value when it is shorter.
    Last(u64),
}

impl ByteRange {
    /// The part of `bytes` this range names.
    pub fn of(self, bytes: &[u8]) -> &[u8] {
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let (start, end) = match self {
            ByteRange::At { offset, len } => (offset.min(size), offset.saturating_add(len).min(size)),
            ByteRange::Last(len) => (size.saturating_sub(len), size),
        };
        let index = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        bytes.get(index(start)..index(end)).unwrap_or_default()
    }
}

/// A durable key-value store, shaped after what Datahike needs from konserve.
///
/// Contract (checked by [`conformance`]):
/// - Every write method is durable when it returns `Ok`: a crash afterwards loses nothing of it.
/// - A write that returns `Err` may have left any subset of its entries behind, but never a
///   torn entry: a later `get` returns the old bytes, the new bytes, or nothing.
/// - Keys under `nodes/` and `values/` are immutable: they are written once and never
///   rewritten with other bytes, so a reader may cache them forever.
/// - [`Store::put_if_absent`] and [`Store::compare_and_set`] are atomic across every handle
///   and process on the store: of two writers, exactly one wins. They are what keeps two
///   writers from overwriting each other's commits: every log record is written if absent,
///   every head by compare-and-set. The writer lock ([`Store::lock_writer`]) only keeps
///   writers from colliding often; correctness does not depend on it (a lease may lapse).
/// - Methods may be called from several threads and several handles at once; values of at
///   least 100 MiB are stored whole.
///
/// A plain key-value backend implements the first five methods plus `lock_writer` and
/// `destroy`; the log methods, `get_range` and `get_many` have defaults built on them. Index
/// nodes (a flush writes ~1,500 at once) go to such a store one key each unless it is wrapped
/// in a [`PackedStore`], which keeps them in packs of one flush each.
pub trait Store: Send + Sync + 'static {
    /// The bytes under `key`, or `None` when absent.
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Writes every entry, durably. Order inside the batch is not observable after return.
    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()>;

    /// Deletes the keys; absent keys are ignored.
    fn delete_batch(&self, keys: &[String]) -> StoreResult<()>;

    /// Every key that starts with `prefix`, in no particular order.
    fn list(&self, prefix: &str) -> StoreResult<Vec<String>>;

    /// Atomically replaces the bytes under `key` if they currently equal `expected` (`None` =
    /// absent). Returns whether the swap happened. Used for branch heads; durable on `Ok(true)`.
    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool>;

    /// Atomically writes `bytes` under `key` unless the key exists; returns whether it wrote.
    /// The default is a compare-and-set from absent; backends with a native put-if-absent
    /// (`INSERT ... ON CONFLICT DO NOTHING`, `SET NX`, `If-None-Match: *`) override it.
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> StoreResult<bool> {
        self.compare_and_set(key, None, bytes)
    }

    /// Bytes `range` of the value under `key`, or `None` when absent. The default reads the
    /// whole value and slices it; object stores override it with a ranged GET, which is how
    /// [`PackedStore`] reads one node out of a pack of thousands.
    fn get_range(&self, key: &str, range: ByteRange) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.get(key)?.map(|bytes| range.of(&bytes).to_vec()))
    }

    /// Several [`Store::get_range`] reads, answered in the order of `reads`. Object stores
    /// override it to send the ranged GETs concurrently (how [`PackedStore`] reads the nodes a
    /// scan needs next); the default reads one range after another.
    fn get_ranges(&self, reads: &[(String, ByteRange)]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        reads.iter().map(|(key, range)| self.get_range(key, *range)).collect()
    }

    /// The bytes under each key, in the order of `keys`. Remote backends override this to
    /// fetch concurrently; the default reads one key after another.
    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// The size in bytes of each key's stored value, in the order of `keys`: `None` where the
    /// key is absent or its size is unknown. Garbage collection asks it for the keys it is
    /// about to delete, to report the bytes a collection frees.
    ///
    /// `Some(n)` is what deleting the key frees of the backend's storage: the value's length,
    /// plus bookkeeping the backend keeps per key and frees with it when it knows it exactly
    /// (the file store and [`PackedStore`] count a node's 32-byte entry in its pack's index).
    /// Space the backend keeps for reuse rather than returning it (LMDB's free pages, SQLite's
    /// free list, PostgreSQL until `VACUUM`) counts as freed.
    ///
    /// The default answers `None` for every key: it never reads whole values, because on a
    /// remote store that would double the cost of a collection. Backends override it only
    /// where the size is cheap: a length in memory, file metadata, a map lookup,
    /// `octet_length(v)` in SQL, `STRLEN`. Object stores (S3, GCS) and DynamoDB keep the default: their only
    /// per-key size is one request per key (`HEAD`).
    fn stored_sizes(&self, keys: &[String]) -> StoreResult<Vec<Option<u64>>> {
        Ok(vec![None; keys.len()])
    }

    /// Whether reading many keys in one [`Store::get_many`] is much cheaper than reading them
    /// one by one (a network round trip per read). The index then fetches the nodes a range
    /// scan will need next, and garbage collection the nodes it marks, in batches. Local
    /// stores answer `false` (the default): a prefetch would only read what a scan that stops
    /// early never needs.
    fn prefers_batched_reads(&self) -> bool {
        false
    }

    /// Appends `record` with sequence number `seq` to log `log`, durably. Sequence numbers of
    /// one log strictly increase; appending a sequence number the log already holds, or one
    /// that [`Store::log_discard`] has passed, fails with [`StoreError::Conflict`] and writes
    /// nothing that a reader would return: this is what fences a writer that lost the lock.
    ///
    /// The default keeps one key per record (`log/<log>/<seq:020>`, a CRC32 before the
    /// payload), written with [`Store::put_if_absent`], and a floor key (`log/<log>/floor`)
    /// that [`Store::log_discard`] raises before it deletes records: a record written into a
    /// discarded place (a stale writer that missed a whole flush) finds the floor above it.
    fn log_append(&self, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
        append_record(self, log, seq, record)
    }

    /// Appends `records` (ascending sequence numbers) to `log` in order, as
    /// [`Store::log_append`] one after another would: this is how concurrent transactions
    /// share a sync (group commit). A store that can make several records durable at once
    /// overrides it (the file store writes them with one `fdatasync`). On failure the first
    /// [`AppendFailure::appended`] records are durable and none after them is.
    fn log_append_many(&self, log: &str, records: &[(u64, &[u8])]) -> Result<(), AppendFailure> {
        for (appended, (seq, record)) in records.iter().enumerate() {
            self.log_append(log, *seq, record).map_err(|error| AppendFailure { appended, error })?;
        }
        Ok(())
    }

    /// Every record of `log` with a sequence number greater than `after`, ascending and without
    /// holes: when a discard runs meanwhile, only records after the last discarded one. A torn
    /// last record (a crash during its append) is not returned: it was never acknowledged.
    /// Records at or below the log's floor (see [`Store::log_append`]) are never returned.
    fn log_read(&self, log: &str, after: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let floor = log_floor(self, log)?;
        let mut seqs: Vec<u64> = log_records(self, log)?.into_iter().map(|(seq, _)| seq).collect();
        seqs.retain(|seq| *seq > after.max(floor));
        seqs.sort_unstable();
        let keys: Vec<String> = seqs.iter().map(|seq| log_key(log, *seq)).collect();
        let mut out = Vec::with_capacity(seqs.len());
        for ((seq, key), bytes) in seqs.into_iter().zip(&keys).zip(self.get_many(&keys)?) {
            // Discarded meanwhile: a newer head covers it, and every record before it. Those
            // go too, so that the records returned follow each other and the caller, whose
            // next record is missing, reads the head again.
            let Some(bytes) = bytes else {
                out.clear();
                continue;
            };
            out.push((seq, unframe_record(key, bytes)?));
        }
        Ok(out)
    }

    /// Drops the records of `log` with sequence numbers `<= through`; they are covered by
    /// flushed indices. A backend may keep some of them longer (whole segments).
    fn log_discard(&self, log: &str, through: u64) -> StoreResult<()> {
        raise_log_floor(self, log, through)?;
        let doomed: Vec<String> =
            log_records(self, log)?.into_iter().filter(|(seq, _)| *seq <= through).map(|(_, key)| key).collect();
        self.delete_batch(&doomed)
    }

    /// Like [`Store::log_discard`], but keeps nothing at or below `through`, whole segments
    /// included: garbage collection calls it so that purged data leaves the log. The log
    /// stays open for appends after `through`. The default is `log_discard`, which keeps
    /// nothing already.
    fn log_discard_all(&self, log: &str, through: u64) -> StoreResult<()> {
        self.log_discard(log, through)
    }

    /// Deletes every record of `log`, for good: the log is not appended to again (a branch
    /// that is deleted, or reset to a new log by `force-branch`).
    fn log_delete(&self, log: &str) -> StoreResult<()> {
        raise_log_floor(self, log, u64::MAX)?;
        let doomed: Vec<String> = log_records(self, log)?.into_iter().map(|(_, key)| key).collect();
        self.delete_batch(&doomed)
    }

    /// Whether the backend can tell, cheaply, that log `log` ends at `last_seq` and that no
    /// other handle or process has written to it since this handle's last append. A writer
    /// holding the writer lock then knows that nobody else committed (every commit appends),
    /// and skips re-reading the head and the log. `false` (the default) means "cannot tell";
    /// the caller then checks the slow way.
    fn log_is_current(&self, log: &str, last_seq: u64) -> StoreResult<bool> {
        let _ = (log, last_seq);
        Ok(false)
    }

    /// Deletes temporary files that writes interrupted by a crash left behind (for the file
    /// backend: files whose names contain `~`, of a process that no longer runs or older than
    /// an hour), and returns their paths relative to the store. Writes under way are never
    /// touched. Backends without temporaries return nothing.
    fn sweep_temporaries(&self) -> StoreResult<Vec<String>> {
        Ok(Vec::new())
    }

    /// Blocks until this handle is the store's only writer, across processes where the
    /// backend can tell (the file backend locks a file). A backend without a lock of its own
    /// uses a lease ([`lease::acquire`]): it expires if its holder dies, so it only keeps
    /// writers from colliding, it is never what makes a collision safe (see the contract).
    fn lock_writer(&self) -> StoreResult<WriterGuard>;

    /// Deletes everything of this store.
    fn destroy(&self) -> StoreResult<()>;
}

/// The key of one log record in the default log implementation.
pub fn log_key(log: &str, seq: u64) -> String {
    format!("log/{log}/{seq:020}")
}

/// The default [`Store::log_append`]: `record` under [`log_key`] with a CRC32 before it,
/// written if absent, then checked against the log's floor. A backend that overrides
/// `log_append` to note what it appended calls this.
pub fn append_record<S: Store + ?Sized>(store: &S, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
    let key = log_key(log, seq);
    let mut framed = Vec::with_capacity(record.len() + 4);
    framed.extend_from_slice(&crc32fast::hash(record).to_le_bytes());
    framed.extend_from_slice(record);
    if !store.put_if_absent(&key, &framed)? {
        return Err(StoreError::Conflict {
            key,
            reason: format!("log {log} already holds record {seq}: another writer committed it first"),
        });
    }
    let floor = log_floor(store, log)?;
    if floor >= seq {
        return Err(StoreError::Conflict {
            key,
            reason: format!(
                "log {log} was discarded through record {floor}: a newer head covers record {seq}, \
                 so this writer is behind another one"
            ),
        });
    }
    Ok(())
}

pub(crate) fn log_floor_key(log: &str) -> String {
    format!("log/{log}/floor")
}

/// The records of `log` in the default layout: `(seq, key)`. Only keys whose rest after the
/// log's prefix is a sequence number count, so that the log `feature` never takes the records
/// of the log `feature/x` for its own.
fn log_records<S: Store + ?Sized>(store: &S, log: &str) -> StoreResult<Vec<(u64, String)>> {
    let prefix = format!("log/{log}/");
    Ok(store
        .list(&prefix)?
        .into_iter()
        .filter_map(|key| {
            let rest = key.strip_prefix(&prefix)?;
            let seq = (rest.len() == 20 && rest.bytes().all(|b| b.is_ascii_digit())).then(|| rest.parse().ok())??;
            Some((seq, key))
        })
        .collect())
}

/// The floor of `log` in the default layout: records at or below it are discarded.
fn log_floor<S: Store + ?Sized>(store: &S, log: &str) -> StoreResult<u64> {
    let key = log_floor_key(log);
    let bytes = store.get(&key)?;
    decode_log_floor(key, bytes)
}

/// A log floor as stored under `key` (absent: 0).
pub(crate) fn decode_log_floor(key: String, bytes: Option<Vec<u8>>) -> StoreResult<u64> {
    match bytes {
        None => Ok(0),
        Some(bytes) => bytes
            .as_slice()
            .try_into()
            .map(u64::from_le_bytes)
            .map_err(|_| StoreError::Corrupt { key, reason: format!("a log floor of {} bytes", bytes.len()) }),
    }
}

/// Raises the floor of `log` to `through` (never lowers it), by compare-and-set.
fn raise_log_floor<S: Store + ?Sized>(store: &S, log: &str, through: u64) -> StoreResult<()> {
    let key = log_floor_key(log);
    loop {
        let current = store.get(&key)?;
        let value = match &current {
            None => 0,
            Some(_) => log_floor(store, log)?,
        };
        if value >= through || store.compare_and_set(&key, current.as_deref(), &through.to_le_bytes())? {
            return Ok(());
        }
    }
}

/// The payload of a record stored by the default `log_append`, its CRC32 checked.
fn unframe_record(key: &str, mut bytes: Vec<u8>) -> StoreResult<Vec<u8>> {
    let crc = bytes.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let payload = bytes.get(4..).unwrap_or_default();
    if crc != Some(crc32fast::hash(payload)) {
        return Err(StoreError::Corrupt { key: key.to_owned(), reason: "log record checksum mismatch".into() });
    }
    bytes.drain(..4);
    Ok(bytes)
}
