//! Connections and the commit path: the single writer, the transaction log, index flushes and
//! head publication. See ARCHITECTURE.md, "Commit path", for the crash argument.
//!
//! A transaction is durable once its record is appended to the branch log (one sync). Index
//! nodes are flushed every [`FLUSH_EVERY_TXS`] transactions (or when the unflushed log grows
//! past [`FLUSH_EVERY_BYTES`]), and only then is the head replaced; the head never names a
//! node that is not durable. Opening a database reads the head and replays the log after it.

mod bulk;
mod commit;
mod flush;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
mod gc;
mod group_commit;
mod load;
mod open;
mod records;
mod versioning;
mod watcher;

pub(crate) use bulk::BulkLoad;
pub use gc::GcReport;
pub use open::{connect, create_database, database_exists, delete_database};
pub use versioning::BranchOrCommit;

use flush::*;
use group_commit::*;
use open::*;
use records::*;

use crate::attr_refs;
use crate::config::{Config, StoreConfig};
use crate::datom::TX0;
use crate::db::{now_millis, Db, DbInner, Indices};
use crate::edn::{pr_str, read_str, Edn, Keyword};
use crate::error::{Error, Result};
use crate::index::codec::{self, Reader};
use crate::index::{IndexRoot, NodeCache, PendingFlush};
use crate::schema::{is_schema_attr, Schema};
use crate::store::{backend, OpenMode, Store, StoreError, WriterGuard};
use crate::tx::{self, Commit, TxOutcome, TxReport};
use crate::value::Eid;
use crate::{DatomKey, IndexOrder};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Flush the indices after this many transactions since the last flush.
pub const FLUSH_EVERY_TXS: usize = 1000;
/// The memory backend flushes after this many transactions: its nodes live in this process
/// anyway, so a flush only makes the commits addressable without the connection (packs,
/// snapshots); `release`, `flush`, garbage collection and branching flush first.
pub const MEMORY_FLUSH_EVERY_TXS: usize = 100_000;
/// Flush the indices when the unflushed log exceeds this many bytes.
pub const FLUSH_EVERY_BYTES: usize = 64 << 20;

const HEAD_MAGIC: &[u8; 8] = b"DHRSHEAD";
const HEAD_VERSION: u8 = 3;
const PACK_MAGIC: &[u8; 8] = b"DHRSPACK";
/// Version 2 adds a checksum; version 1 is still read.
const PACK_VERSION: u8 = 2;
/// Bumped by every garbage collection after its sweep; see [`flush_snapshot`].
const GC_EPOCH_KEY: &str = "gc/epoch";
const LOG_VERSION: u8 = 2;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
/// The durable side of a connection.
struct Durable {
    store: Arc<dyn Store>,
    log: String,
    head_key: String,
    /// The head bytes as last read or written by this process.
    head_bytes: Option<Vec<u8>>,
    head: Head,
    /// Highest tx covered by the flushed indices named in the head.
    flushed_tx: Eid,
    txs_since_flush: usize,
    bytes_since_flush: usize,
    /// True for the memory backend: an append is a map insert, cheaper than a thread handoff.
    inline_log: bool,
    /// The records on their way to the log (group commit); made on the first commit.
    log_queue: Option<Arc<LogQueue>>,
    /// The log records after the head, oldest first, with their tx: the next flush stores
    /// them as the pack of its snapshot.
    unflushed: Vec<LogRecord>,
    /// The log holds records that do not follow the head (see [`replay`]): clear it before
    /// the next append.
    stale_log: bool,
    /// Log appends of the transaction under way that lost to another writer.
    conflicts: usize,
    /// Transactions applied in memory whose records are on their way to the log, oldest
    /// first (group commit, see [`Conn::commit`]). They are published, in order, once the
    /// log writer reports them durable.
    pipeline: std::collections::VecDeque<InFlight>,
    /// The value after the newest transaction of `pipeline`: the next transaction is made
    /// from it.
    tip: Option<Db>,
    /// Bumped when a record of the pipeline failed to reach the log: the transactions made
    /// after it fail too, and the next one starts from the last durable value.
    generation: u64,
    /// The store's writer lock, held while `pipeline` is not empty.
    held: Option<WriterGuard>,
    /// A record failed to reach the log: the next transaction re-reads the log instead of
    /// trusting what this handle appended.
    distrust: bool,
    /// While `listen` callbacks are registered: the reports of transactions other processes
    /// committed, collected as the log is replayed, until they are handed to the callbacks.
    foreign: Option<Vec<TxReport>>,
}

/// A transaction applied in memory whose record is being appended to the log.
struct InFlight {
    seq: u64,
    db_after: Db,
    record: LogRecord,
    /// Its report, for the `listen` callbacks (none when there were no callbacks).
    report: Option<TxReport>,
}

struct Writer {
    durable: Option<Durable>,
    /// Callers waiting for the pipeline to empty (see [`drained`]); no transaction joins the
    /// pipeline meanwhile.
    draining: usize,
}

struct ConnInner {
    config: Arc<Config>,
    key: String,
    current: RwLock<Db>,
    writer: Mutex<Writer>,
    refs: Mutex<usize>,
    /// Held by the one flush that runs at a time.
    flushing: Mutex<()>,
    /// The background flush thread, if one was started.
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The error of the last background flush, reported by the next `flush`/`release`.
    flush_error: Mutex<Option<String>>,
    /// `listen` callbacks by key, in the order they were registered.
    listeners: Mutex<Vec<(String, Listener)>>,
    /// Held from publication through the callbacks of one transaction, so that callbacks see
    /// transactions in commit order.
    notifying: Mutex<()>,
    /// Signalled (with the writer mutex) when the pipeline empties or a drain ends.
    settled: std::sync::Condvar,
    /// A thread watches the store for other processes' commits (see [`watcher`]).
    watching: std::sync::atomic::AtomicBool,
    /// What the connection has done, for [`Conn::stats`].
    counters: Arc<Counters>,
}

/// The counters behind [`ConnStats`].
#[derive(Default)]
struct Counters {
    transactions: std::sync::atomic::AtomicU64,
    failed_transactions: std::sync::atomic::AtomicU64,
    commit_micros: std::sync::atomic::AtomicU64,
    log_groups: std::sync::atomic::AtomicU64,
    log_records: std::sync::atomic::AtomicU64,
    foreign_transactions: std::sync::atomic::AtomicU64,
    flushes: std::sync::atomic::AtomicU64,
}

impl Counters {
    fn add(counter: &std::sync::atomic::AtomicU64, n: u64) {
        counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What a connection has done since it was opened, for monitoring (a server's metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Transactions this connection committed (acknowledged).
    pub transactions: u64,
    /// Transactions it refused or could not make durable.
    pub failed_transactions: u64,
    /// The time its committed transactions took, from the call to the acknowledgement, summed
    /// (divide by `transactions` for the mean).
    pub commit_micros: u64,
    /// Log appends (one sync each on the file store) and the records they carried: with
    /// several threads committing, fewer appends than records (group commit).
    pub log_groups: u64,
    /// See `log_groups`.
    pub log_records: u64,
    /// Transactions of other processes reported to `listen` callbacks.
    pub foreign_transactions: u64,
    /// Index flushes published.
    pub flushes: u64,
    /// The node cache of the current value.
    pub cache: crate::index::CacheStats,
}

/// The writer state once no transaction is in flight: every caller that changes the durable
/// state other than by a transaction (flush, garbage collection, branches, bulk loads,
/// release) takes the writer this way. Transactions that would start meanwhile wait.
fn drained(inner: &ConnInner) -> MutexGuard<'_, Writer> {
    let mut writer = lock(&inner.writer);
    writer.draining += 1;
    while writer.durable.as_ref().is_some_and(|d| !d.pipeline.is_empty()) {
        writer = inner.settled.wait(writer).unwrap_or_else(PoisonError::into_inner);
    }
    writer.draining -= 1;
    if writer.draining == 0 {
        inner.settled.notify_all();
    }
    writer
}

/// A `listen` callback.
type Listener = Arc<dyn Fn(&TxReport) + Send + Sync>;

thread_local! {
    /// The connections whose callbacks run on this thread now (a callback that transacts on
    /// its own connection would wait for itself).
    static NOTIFYING: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A connection to a database: the current value and the single writer.
#[derive(Clone)]
pub struct Conn(Arc<ConnInner>);

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#datahike/Connection {{:store {}}}", self.0.key)
    }
}

impl Conn {
    /// The current database value. On a read-only connection (a reader on shared storage,
    /// `:read-only? true`) this is the latest committed value, read from the store when it
    /// has changed (see [`Conn::latest`]); should reading the store fail, the value read last.
    pub fn db(&self) -> Db {
        if self.0.config.read_only {
            if let Ok(db) = self.latest() {
                return db;
            }
        }
        self.current_value()
    }

    /// The latest committed value. A connection that writes has it in memory; a read-only
    /// connection reads the branch head (one read) and, when nothing else changed, only the
    /// log records after the value it holds. Values already returned stay as they are: each
    /// is a consistent snapshot. Readers take no lock of the store and never block a writer.
    pub fn latest(&self) -> Result<Db> {
        if !self.0.config.read_only {
            return Ok(self.current_value());
        }
        let mut writer = lock(&self.0.writer);
        let durable = writer.durable.as_mut().ok_or_else(|| Error::Database("Connection has been released".into()))?;
        let db = self.catch_up(durable, self.current_value(), false)?;
        self.deliver_foreign(writer, Arc::as_ptr(&self.0) as usize);
        Ok(db)
    }

    /// The handle Datahike's server returns for a connection:
    /// `#datahike/Connection {:store-id [[backend "identity"] branch]}`.
    pub fn handle(&self) -> Edn {
        Edn::Tagged(
            crate::edn::Symbol::new("datahike/Connection"),
            Box::new(Edn::Map(vec![(Edn::kw("store-id"), self.0.config.store_id())])),
        )
    }

    /// What this connection has done since it was opened: transactions, log appends, index
    /// flushes, and how the node cache served reads.
    pub fn stats(&self) -> ConnStats {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.0.counters;
        ConnStats {
            transactions: c.transactions.load(Relaxed),
            failed_transactions: c.failed_transactions.load(Relaxed),
            commit_micros: c.commit_micros.load(Relaxed),
            log_groups: c.log_groups.load(Relaxed),
            log_records: c.log_records.load(Relaxed),
            foreign_transactions: c.foreign_transactions.load(Relaxed),
            flushes: c.flushes.load(Relaxed),
            cache: self.current_value().0.cache.stats(),
        }
    }

    /// The value this connection holds now, without looking at the store.
    fn current_value(&self) -> Db {
        self.0.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The connection's config (with the fixed keys as stored in the database).
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    fn notify(&self, report: &TxReport, id: usize) {
        let listeners: Vec<Listener> = lock(&self.0.listeners).iter().map(|(_, f)| f.clone()).collect();
        if listeners.is_empty() {
            return;
        }
        NOTIFYING.with(|n| n.borrow_mut().push(id));
        for f in listeners {
            // A panicking callback must not poison the connection for the others.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(report)));
        }
        NOTIFYING.with(|n| n.borrow_mut().retain(|x| *x != id));
    }

    /// Datahike's `listen`: calls `callback` with the report of every later transaction on the
    /// database, once it is durable and `db()` returns its result: this connection's own and,
    /// through a watcher thread that looks at the store every 100 ms while callbacks are
    /// registered, those other processes commit (also on a `:read-only? true` reader). Reports
    /// arrive in commit order, each once; callbacks run on a committing thread, the watcher
    /// or a caller of `db()`, never under the writer lock. A callback must not transact on the
    /// same connection (that returns an error). A listener that falls more than one index
    /// flush of another process behind (its log discarded) skips to the newest value without
    /// the reports in between. Registering a key again replaces its callback. Returns the key.
    pub fn listen(&self, key: &str, callback: impl Fn(&TxReport) + Send + Sync + 'static) -> String {
        {
            let mut listeners = lock(&self.0.listeners);
            let callback: Listener = Arc::new(callback);
            match listeners.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = callback,
                None => listeners.push((key.to_string(), callback)),
            }
        }
        if let Some(durable) = lock(&self.0.writer).durable.as_mut() {
            durable.foreign.get_or_insert_with(Vec::new);
        }
        watcher::start(self);
        key.to_string()
    }

    /// Datahike's `unlisten`: removes the callback registered under `key`; whether there was one.
    pub fn unlisten(&self, key: &str) -> bool {
        let (removed, none_left) = {
            let mut listeners = lock(&self.0.listeners);
            let before = listeners.len();
            listeners.retain(|(k, _)| k != key);
            (listeners.len() != before, listeners.is_empty())
        };
        if none_left {
            if let Some(durable) = lock(&self.0.writer).durable.as_mut() {
                durable.foreign = None;
            }
        }
        removed
    }

    /// Releases this handle; the last release of a store flushes its indices (a read-only
    /// connection writes nothing) and closes the connection, also when that flush fails: the
    /// next `connect` opens a fresh one from the store, where every acknowledged transaction
    /// is (in the log, if not in a flushed index).
    pub fn release(&self) -> Result<()> {
        let last = {
            let mut refs = lock(&self.0.refs);
            *refs = refs.saturating_sub(1);
            *refs == 0
        };
        if !last {
            return Ok(());
        }
        {
            let mut registry = lock(registry());
            if registry.get(&self.0.key).is_some_and(|inner| Arc::ptr_eq(inner, &self.0)) {
                registry.remove(&self.0.key);
            }
        }
        let flushed = if self.0.config.read_only { Ok(()) } else { self.flush() };
        let mut writer = drained(&self.0);
        writer.durable = None;
        flushed
    }
}
