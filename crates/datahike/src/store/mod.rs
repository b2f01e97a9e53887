//! The key-value `Store` trait under the index and the commit path, and the backends.
//! A store sees only string keys and bytes; it knows nothing of datoms or indices.
//!
//! Key space used by the database (see ARCHITECTURE.md, "Storage layout"):
//! - `nodes/<32 hex>`: immutable index nodes, content addressed, written once;
//! - `heads/<branch>`: the mutable branch head, replaced only by [`Store::compare_and_set`];
//! - the transaction log of each branch, behind the `log_*` methods.

mod file;
mod memory;
mod pack;

pub use file::FileStore;
pub use memory::MemoryStore;

use std::path::PathBuf;

/// Errors of the storage layer. Messages name the key or path involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An operating-system I/O error on `path`.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes that cannot be what they claim to be (torn, truncated, flipped).
    #[error("corrupt data under {key}: {reason}")]
    Corrupt {
        /// The key or file of the bad bytes.
        key: String,
        /// What is wrong with them.
        reason: String,
    },
    /// An earlier durable write failed; the store refuses writes until it is reopened,
    /// because the state of the failed write on the medium is unknown.
    #[error("store refuses writes after an earlier failed write; reopen it: {0}")]
    Poisoned(String),
    /// A store-level precondition does not hold (e.g. the directory is not a database).
    #[error("{0}")]
    Invalid(String),
}

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

/// A durable key-value store, shaped after what Datahike needs from konserve.
///
/// Contract:
/// - Every write method is durable when it returns `Ok`: a crash afterwards loses nothing of it.
/// - A write that returns `Err` may have left any subset of its entries behind, but never a
///   torn entry: a later `get` returns the old bytes, the new bytes, or nothing.
/// - Keys under `nodes/` are immutable: they are written once and never rewritten with other
///   bytes, so a reader may cache them forever.
/// - Methods may be called from several threads; the caller serialises writers with
///   [`Store::lock_writer`].
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

    /// Appends `record` with sequence number `seq` to log `log`, durably. Sequence numbers of
    /// one log strictly increase. The default keeps one key per record; backends with cheap
    /// appends (files) override the three `log_*` methods.
    fn log_append(&self, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
        self.put_batch(&[(log_key(log, seq), record.to_vec())])
    }

    /// Every record of `log` with a sequence number greater than `after`, ascending. A torn
    /// last record (a crash during its append) is not returned: it was never acknowledged.
    fn log_read(&self, log: &str, after: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let prefix = format!("log/{log}/");
        let mut seqs: Vec<u64> = self
            .list(&prefix)?
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix)?.parse().ok())
            .filter(|seq| *seq > after)
            .collect();
        seqs.sort_unstable();
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(bytes) = self.get(&log_key(log, seq))? {
                out.push((seq, bytes));
            }
        }
        Ok(out)
    }

    /// Drops the records of `log` with sequence numbers `<= through`; they are covered by
    /// flushed indices. A backend may keep some of them longer (whole segments).
    fn log_discard(&self, log: &str, through: u64) -> StoreResult<()> {
        let prefix = format!("log/{log}/");
        let doomed: Vec<String> = self
            .list(&prefix)?
            .into_iter()
            .filter(|k| k.strip_prefix(&prefix).and_then(|s| s.parse::<u64>().ok()).is_some_and(|seq| seq <= through))
            .collect();
        self.delete_batch(&doomed)
    }

    /// Deletes every record of `log`, whatever its sequence numbers; the next append may start
    /// at any sequence number. Used when a branch is deleted or reset.
    fn log_delete(&self, log: &str) -> StoreResult<()> {
        let prefix = format!("log/{log}/");
        let doomed = self.list(&prefix)?;
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

    /// Blocks until this process is the store's only writer, across processes where the
    /// backend can tell (the file backend locks a file).
    fn lock_writer(&self) -> StoreResult<WriterGuard>;

    /// Deletes everything of this store.
    fn destroy(&self) -> StoreResult<()>;
}

/// The key of one log record in the default log implementation.
pub fn log_key(log: &str, seq: u64) -> String {
    format!("log/{log}/{seq:020}")
}
