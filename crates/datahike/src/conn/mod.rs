//! Connections and the commit path: the single writer, the transaction log, index flushes and
//! head publication. See ARCHITECTURE.md, "Commit path", for the crash argument.
//!
//! A transaction is durable once its record is appended to the branch log (one sync). Index
//! nodes are flushed every [`FLUSH_EVERY_TXS`] transactions (or when the unflushed log grows
//! past [`FLUSH_EVERY_BYTES`]), and only then is the head replaced; the head never names a
//! node that is not durable. Opening a database reads the head and replays the log after it.

mod bulk;
mod gc;
mod versioning;

pub(crate) use bulk::BulkLoad;
pub use gc::GcReport;
pub use versioning::BranchOrCommit;

use crate::attr_refs;
use crate::config::{Config, StoreConfig};
use crate::datom::TX0;
use crate::db::{now_millis, Db, DbInner, Indices};
use crate::edn::{pr_str, read_str, Edn, Keyword};
use crate::error::{Error, Result};
use crate::index::codec::{self, Reader};
use crate::index::{IndexRoot, NodeCache, PendingFlush};
use crate::schema::{is_schema_attr, Schema};
use crate::store::{FileStore, MemoryStore, Store};
use crate::tx::{self, Commit, TxOutcome, TxReport};
use crate::value::Eid;
use crate::{DatomKey, IndexOrder};
use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
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
const HEAD_VERSION: u8 = 2;
const PACK_MAGIC: &[u8; 8] = b"DHRSPACK";
const PACK_VERSION: u8 = 1;
/// Bumped by every garbage collection after its sweep; see [`flush_snapshot`].
const GC_EPOCH_KEY: &str = "gc/epoch";
const LOG_VERSION: u8 = 2;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One `[e a v added]` row of `load-entities`.
type LoadRow = (i64, Keyword, Edn, bool);

/// The decoded branch head.
#[derive(Clone, Debug)]
struct Head {
    fixed_config: String,
    db_id: uuid::Uuid,
    created_at: i64,
    max_eid: Eid,
    max_tx: Eid,
    last_tx_instant: i64,
    current: [IndexRoot; 3],
    history: Option<[IndexRoot; 3]>,
    /// The commit this head is.
    commit: Commit,
    /// The snapshot commit that `packs/<commit id>` (the commits between that snapshot and
    /// this one) replays from; `None` when there is no pack.
    pack_base: Option<uuid::Uuid>,
}

fn put_root(root: &IndexRoot, out: &mut Vec<u8>) {
    match root.address {
        Some(a) => {
            out.push(1);
            out.extend_from_slice(&a);
        }
        None => out.push(0),
    }
    codec::put_varint(root.count, out);
}

fn read_root(r: &mut Reader<'_>) -> Result<IndexRoot> {
    let address = match r.u8()? {
        0 => None,
        _ => Some(r.array::<16>("index root address")?),
    };
    Ok(IndexRoot { address, count: r.varint()? })
}

impl Head {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(HEAD_MAGIC);
        out.push(HEAD_VERSION);
        codec::put_str(&self.fixed_config, &mut out);
        out.extend_from_slice(self.db_id.as_bytes());
        codec::put_ivarint(self.created_at, &mut out);
        codec::put_ivarint(self.max_eid, &mut out);
        codec::put_ivarint(self.max_tx, &mut out);
        codec::put_ivarint(self.last_tx_instant, &mut out);
        for r in &self.current {
            put_root(r, &mut out);
        }
        match &self.history {
            Some(h) => {
                out.push(1);
                for r in h {
                    put_root(r, &mut out);
                }
            }
            None => out.push(0),
        }
        put_commit(&Some(self.commit.clone()), &mut out);
        match &self.pack_base {
            Some(base) => {
                out.push(1);
                put_uuid(base, &mut out);
            }
            None => out.push(0),
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Head> {
        if bytes.len() < 9 || &bytes[..8] != HEAD_MAGIC {
            return Err(Error::Database("the branch head is not a datahike-rs head (bad magic)".into()));
        }
        let version = bytes[8];
        if version != 1 && version != HEAD_VERSION {
            return Err(Error::Database(format!(
                "the branch head has format version {}, this build reads version {HEAD_VERSION}",
                bytes[8]
            )));
        }
        let mut r = Reader::new(&bytes[9..]);
        let fixed_config = r.str()?.to_string();
        let id = r.array::<16>("database id")?;
        let created_at = r.ivarint()?;
        let max_eid = r.ivarint()?;
        let max_tx = r.ivarint()?;
        let last_tx_instant = r.ivarint()?;
        let current = [read_root(&mut r)?, read_root(&mut r)?, read_root(&mut r)?];
        let history = match r.u8()? {
            0 => None,
            _ => Some([read_root(&mut r)?, read_root(&mut r)?, read_root(&mut r)?]),
        };
        let db_id = uuid::Uuid::from_bytes(id);
        // Version 1 heads predate commits: the database id stands in for the commit id.
        let (commit, pack_base) = if version >= 2 {
            let commit =
                read_commit(&mut r)?.ok_or_else(|| Error::Database("the branch head names no commit".into()))?;
            let pack_base = if r.u8()? == 0 { None } else { Some(read_uuid(&mut r, "pack base commit id")?) };
            (commit, pack_base)
        } else {
            (Commit { id: db_id, parents: Vec::new() }, None)
        };
        Ok(Head {
            commit,
            pack_base,
            fixed_config,
            db_id,
            created_at,
            max_eid,
            max_tx,
            last_tx_instant,
            current,
            history,
        })
    }
}

fn put_uuid(id: &uuid::Uuid, out: &mut Vec<u8>) {
    out.extend_from_slice(id.as_bytes());
}

fn read_uuid(r: &mut Reader<'_>, what: &'static str) -> Result<uuid::Uuid> {
    Ok(uuid::Uuid::from_bytes(r.array::<16>(what)?))
}

fn put_commit(commit: &Option<Commit>, out: &mut Vec<u8>) {
    match commit {
        Some(c) => {
            out.push(1);
            put_uuid(&c.id, out);
            codec::put_varint(c.parents.len() as u64, out);
            for p in &c.parents {
                put_uuid(p, out);
            }
        }
        None => out.push(0),
    }
}

fn read_commit(r: &mut Reader<'_>) -> Result<Option<Commit>> {
    if r.u8()? == 0 {
        return Ok(None);
    }
    let id = read_uuid(r, "commit id")?;
    let n = r.varint()?;
    let mut parents = Vec::new();
    for _ in 0..n {
        parents.push(read_uuid(r, "parent commit id")?);
    }
    Ok(Some(Commit { id, parents }))
}

/// Log record, version 2: `[2][tx][max-eid][tx-instant][commit][tx-data][purged]`.
/// Version 1 records (no commit, no purge) are still read.
fn encode_log_record(o: &TxOutcome) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + o.tx_data.len() * 24);
    out.push(LOG_VERSION);
    codec::put_ivarint(o.tx, &mut out);
    codec::put_ivarint(o.max_eid, &mut out);
    codec::put_ivarint(o.tx_instant, &mut out);
    put_commit(&o.commit, &mut out);
    codec::put_datoms_body(&o.tx_data, &mut out);
    codec::put_datoms_body(&o.purged, &mut out);
    out
}

fn decode_log_record(bytes: &[u8]) -> Result<TxOutcome> {
    let Some((&version, rest)) = bytes.split_first() else {
        return Err(Error::Database("empty log record".into()));
    };
    if version != 1 && version != LOG_VERSION {
        return Err(Error::Database(format!("log record version {version} is not readable by this build")));
    }
    let mut r = Reader::new(rest);
    let tx = r.ivarint()?;
    let max_eid = r.ivarint()?;
    let tx_instant = r.ivarint()?;
    let commit = if version >= 2 { read_commit(&mut r)? } else { None };
    let tx_data = r.datoms()?;
    let purged = if version >= 2 { r.datoms()? } else { Vec::new() };
    r.finish()?;
    Ok(TxOutcome { tx, tx_data, max_eid, tx_instant, tempids: Vec::new(), tx_meta: Vec::new(), purged, commit })
}

/// A pack: the log records of the commits between two snapshots, oldest first, and the id of
/// the earlier snapshot they replay from (`base`). Stored under `packs/<id of the later
/// snapshot>`, whose head also names `base` as its `pack_base`.
fn encode_pack(base: &uuid::Uuid, records: &[Arc<[u8]>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + records.iter().map(|r| r.len() + 4).sum::<usize>());
    out.extend_from_slice(PACK_MAGIC);
    out.push(PACK_VERSION);
    put_uuid(base, &mut out);
    codec::put_varint(records.len() as u64, &mut out);
    for r in records {
        codec::put_bytes(r, &mut out);
    }
    out
}

fn decode_pack(key: &str, bytes: &[u8]) -> Result<(uuid::Uuid, Vec<TxOutcome>)> {
    if bytes.len() < 9 || &bytes[..8] != PACK_MAGIC || bytes[8] != PACK_VERSION {
        return Err(Error::Database(format!("{key} is not a commit pack of a version this build reads")));
    }
    let mut r = Reader::new(&bytes[9..]);
    let base = read_uuid(&mut r, "pack base commit id")?;
    let n = r.count(1, "pack record count")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(decode_log_record(r.bytes()?)?);
    }
    r.finish()?;
    Ok((base, out))
}

fn commit_key(id: &uuid::Uuid) -> String {
    format!("commits/{id}")
}

fn pack_key(id: &uuid::Uuid) -> String {
    format!("packs/{id}")
}

/// Rebuilds the schema of a database from its schema datoms.
fn load_schema(db: &Db) -> Result<Schema> {
    let mut schema = Schema::new(db.config().attribute_refs);
    let ident = Keyword::new("db/ident");
    let entities = db.datoms_key(IndexOrder::Aevt, &DatomKey { a: Some(ident), ..Default::default() })?;
    for ent in entities {
        for d in db.datoms_key(IndexOrder::Eavt, &DatomKey { e: Some(ent.e), ..Default::default() })? {
            if is_schema_attr(d.a) {
                schema.apply_datom(&d);
            }
        }
    }
    Ok(schema)
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
    /// Started on the first commit.
    log_writer: Option<LogWriter>,
    /// The log records after the head, oldest first, with their tx: the next flush stores
    /// them as the pack of its snapshot.
    unflushed: Vec<LogRecord>,
    /// The log holds records that do not follow the head (see [`replay`]): clear it before
    /// the next append.
    stale_log: bool,
}

/// A thread that appends log records, so that the sync of one record overlaps the in-memory
/// index update of the same transaction.
struct LogWriter {
    requests: mpsc::Sender<LogRequest>,
}

struct LogRequest {
    seq: u64,
    record: Arc<[u8]>,
    reply: mpsc::SyncSender<Result<()>>,
}

/// An append under way; [`PendingAppend::wait`] returns once it is durable.
struct PendingAppend(mpsc::Receiver<Result<()>>);

impl PendingAppend {
    fn wait(self) -> Result<()> {
        // The sync is under way and ends within a disk's latency: polling for it saves the
        // wake-up of a sleeping thread (tens of microseconds on a virtual machine).
        recv_polling(&self.0, REPLY_POLL).map_err(|_| Error::Internal("the log writer thread stopped".into()))?
    }
}

/// How long a committer polls for its log append to finish before it sleeps.
const REPLY_POLL: Duration = Duration::from_millis(2);

/// How long the log writer polls for the next record after an append before it sleeps, when
/// records have been arriving that fast: a committer that transacts in a loop then hands
/// over its record without waking a thread.
const REQUEST_POLL: Duration = Duration::from_micros(250);

/// Receives from `rx`, first polling for up to `poll` and then sleeping.
fn recv_polling<T>(rx: &mpsc::Receiver<T>, poll: Duration) -> std::result::Result<T, mpsc::RecvError> {
    if !poll.is_zero() {
        let start = Instant::now();
        loop {
            match rx.try_recv() {
                Ok(v) => return Ok(v),
                Err(mpsc::TryRecvError::Disconnected) => return Err(mpsc::RecvError),
                Err(mpsc::TryRecvError::Empty) => {
                    for _ in 0..32 {
                        std::hint::spin_loop();
                    }
                    if start.elapsed() >= poll {
                        break;
                    }
                }
            }
        }
    }
    rx.recv()
}

impl LogWriter {
    fn spawn(store: Arc<dyn Store>, log: String) -> Result<LogWriter> {
        let (requests, inbox) = mpsc::channel::<LogRequest>();
        std::thread::Builder::new()
            .name(format!("datahike-log-{log}"))
            .spawn(move || {
                // Polls for the next record only while records keep coming within the poll
                // window; a connection that commits now and then costs no polling.
                let mut poll = Duration::ZERO;
                // Ends when the connection drops its sender.
                loop {
                    let idle = Instant::now();
                    let Ok(req) = recv_polling(&inbox, poll) else { break };
                    poll = if idle.elapsed() < REQUEST_POLL { REQUEST_POLL } else { Duration::ZERO };
                    let result = store.log_append(&log, req.seq, &req.record).map_err(Error::from);
                    let _ = req.reply.send(result);
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the log writer thread: {e}")))?;
        Ok(LogWriter { requests })
    }

    fn append(&self, seq: u64, record: Arc<[u8]>) -> Result<PendingAppend> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests
            .send(LogRequest { seq, record, reply })
            .map_err(|_| Error::Internal("the log writer thread stopped".into()))?;
        Ok(PendingAppend(answer))
    }
}

impl Durable {
    fn log_writer(&mut self) -> Result<&LogWriter> {
        let writer = match self.log_writer.take() {
            Some(w) => w,
            None => LogWriter::spawn(self.store.clone(), self.log.clone())?,
        };
        Ok(self.log_writer.insert(writer))
    }
}

struct Writer {
    durable: Option<Durable>,
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

fn registry() -> &'static Mutex<HashMap<String, Arc<ConnInner>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<ConnInner>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

fn store_key(config: &Config) -> String {
    match &config.store {
        StoreConfig::Memory { id } => format!("memory:{id}:{}", config.branch),
        StoreConfig::File { path } => {
            let p = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            format!("file:{}:{}", p.display(), config.branch)
        }
    }
}

fn open_store(config: &Config, create: bool) -> Result<Arc<dyn Store>> {
    Ok(match &config.store {
        StoreConfig::Memory { id } => Arc::new(MemoryStore::open(id)),
        StoreConfig::File { path } => {
            let store = if create { FileStore::create(path)? } else { FileStore::open(path)? };
            // Tests shrink log segments to exercise rotation and discarding.
            match std::env::var("DATAHIKE_LOG_SEGMENT_BYTES").ok().and_then(|s| s.parse().ok()) {
                Some(bytes) => Arc::new(store.with_segment_bytes_max(bytes)),
                None => Arc::new(store),
            }
        }
    })
}

fn head_key(config: &Config) -> String {
    format!("heads/{}", config.branch.as_str())
}

/// Whether a database exists under this config.
pub fn database_exists(config: &Config) -> Result<bool> {
    match &config.store {
        StoreConfig::Memory { id } => {
            if !MemoryStore::exists(id) {
                return Ok(false);
            }
            Ok(MemoryStore::open(id).get(&head_key(config))?.is_some())
        }
        StoreConfig::File { path } => {
            if !FileStore::exists(path) {
                return Ok(false);
            }
            Ok(FileStore::open(path)?.get(&head_key(config))?.is_some())
        }
    }
}

/// Creates a database and transacts `:initial-tx`. Returns the config.
pub fn create_database(config: &Config) -> Result<Config> {
    if database_exists(config)? {
        return Err(Error::Database(format!("Database already exists: {}", pr_str(&config.store.to_edn()))));
    }
    let store = open_store(config, !matches!(config.store, StoreConfig::File { ref path } if FileStore::exists(path)))?;
    let guard = store.lock_writer()?;
    let head = Head {
        fixed_config: pr_str(&config.fixed_edn()),
        db_id: uuid::Uuid::new_v4(),
        created_at: now_millis(),
        max_eid: 0,
        max_tx: TX0,
        last_tx_instant: 0,
        current: std::array::from_fn(|_| IndexRoot { address: None, count: 0 }),
        history: if config.keep_history {
            Some(std::array::from_fn(|_| IndexRoot { address: None, count: 0 }))
        } else {
            None
        },
        commit: Commit { id: uuid::Uuid::new_v4(), parents: Vec::new() },
        pack_base: None,
    };
    let head = if config.attribute_refs { with_system_entities(config, &store, head)? } else { head };
    let bytes = head.encode();
    store.put_batch(&[(commit_key(&head.commit.id), bytes.clone())])?;
    if !store.compare_and_set(&head_key(config), None, &bytes)? {
        return Err(Error::Database(format!("Database already exists: {}", pr_str(&config.store.to_edn()))));
    }
    drop(guard);
    if let Some(initial) = &config.initial_tx {
        let conn = connect(config)?;
        let result = conn.transact(initial);
        conn.release()?;
        result?;
    }
    Ok(config.clone())
}

/// The first head of an `:attribute-refs? true` database: its indices hold the system
/// entities (written here, before the head that names them exists).
fn with_system_entities(config: &Config, store: &Arc<dyn Store>, head: Head) -> Result<Head> {
    let config = Arc::new(config.clone());
    let cache = Arc::new(NodeCache::with_limit(Some(store.clone()), config.cache_limit()));
    let empty = db_from_head(&config, &head, &cache)?;
    let outcome = TxOutcome {
        tx: TX0,
        tx_data: attr_refs::system_datoms(),
        max_eid: attr_refs::UE0,
        tx_instant: 0,
        tempids: Vec::new(),
        tx_meta: Vec::new(),
        purged: Vec::new(),
        commit: Some(head.commit.clone()),
    };
    let db = empty.apply_tx(&outcome)?;
    let snapshot = Snapshot::prepare(&db, head.commit.clone(), None, head)?;
    store.put_batch(&snapshot.nodes)?;
    Ok(snapshot.head)
}

/// Deletes the database and its store.
pub fn delete_database(config: &Config) -> Result<()> {
    let key = store_key(config);
    lock(registry()).remove(&key);
    match &config.store {
        StoreConfig::Memory { id } => {
            if MemoryStore::exists(id) {
                MemoryStore::open(id).destroy()?;
            }
        }
        StoreConfig::File { path } => {
            if FileStore::exists(path) {
                FileStore::open(path)?.destroy()?;
            }
        }
    }
    Ok(())
}

/// Connects to an existing database. Connections to one store and branch within a process
/// share one writer and one current value, as in Datahike.
pub fn connect(config: &Config) -> Result<Conn> {
    let key = store_key(config);
    let mut reg = lock(registry());
    if let Some(inner) = reg.get(&key) {
        *lock(&inner.refs) += 1;
        return Ok(Conn(inner.clone()));
    }
    if !database_exists(config)? {
        return Err(Error::Database(format!("Database does not exist: {}", pr_str(&config.store.to_edn()))));
    }
    let store = open_store(config, false)?;
    bulk::refuse_interrupted(store.as_ref(), config)?;
    let (db, durable) = open_durable(config, store)?;
    let inner = Arc::new(ConnInner {
        config: Arc::new(config.clone()),
        key: key.clone(),
        current: RwLock::new(db),
        writer: Mutex::new(Writer { durable: Some(durable) }),
        refs: Mutex::new(1),
        flushing: Mutex::new(()),
        flusher: Mutex::new(None),
        flush_error: Mutex::new(None),
        listeners: Mutex::new(Vec::new()),
        notifying: Mutex::new(()),
    });
    reg.insert(key, inner.clone());
    Ok(Conn(inner))
}

/// Reads the head, opens the indices and replays the log after them.
fn open_durable(config: &Config, store: Arc<dyn Store>) -> Result<(Db, Durable)> {
    let head_key = head_key(config);
    let head_bytes = store
        .get(&head_key)?
        .ok_or_else(|| Error::Database(format!("Database does not exist: {}", pr_str(&config.store.to_edn()))))?;
    let head = Head::decode(&head_bytes)?;
    let stored_config = read_str(&head.fixed_config)?;
    let mut effective = config.clone();
    // The fixed keys come from the stored database, as Datahike adopts them on connect.
    if let Ok(stored) = Config::from_edn(&stored_config) {
        if stored.keep_history != config.keep_history || stored.schema_flexibility != config.schema_flexibility {
            // Datahike raises :config-does-not-match-stored-db; we adopt the stored values
            // only when the caller left them at their defaults.
            let defaults = Config::default();
            if config.keep_history != defaults.keep_history || config.schema_flexibility != defaults.schema_flexibility
            {
                return Err(Error::Config(format!(
                    "config does not match the stored database: stored {}, given {}",
                    head.fixed_config,
                    pr_str(&config.fixed_edn())
                )));
            }
        }
        effective.keep_history = stored.keep_history;
        effective.schema_flexibility = stored.schema_flexibility;
        effective.attribute_refs = stored.attribute_refs;
        effective.branching_factor = stored.branching_factor;
    }
    let config = Arc::new(effective);
    let cache = Arc::new(if matches!(config.store, StoreConfig::Memory { .. }) {
        NodeCache::resident(store.clone(), config.cache_limit())
    } else {
        NodeCache::with_limit(Some(store.clone()), config.cache_limit())
    });
    let mut db = db_from_head(&config, &head, &cache)?;
    let log = config.branch.as_str().to_string();
    let mut durable = Durable {
        store,
        log,
        head_key,
        flushed_tx: head.max_tx,
        head_bytes: Some(head_bytes),
        head,
        txs_since_flush: 0,
        bytes_since_flush: 0,
        inline_log: matches!(config.store, StoreConfig::Memory { .. }),
        log_writer: None,
        unflushed: Vec::new(),
        stale_log: false,
    };
    db = replay(&mut durable, db)?;
    Ok((db, durable))
}

/// The database value a head (or a snapshot commit record) names; nodes load lazily.
fn db_from_head(config: &Arc<Config>, head: &Head, cache: &Arc<NodeCache>) -> Result<Db> {
    let current = Indices::open(config, false, Some(&head.current), cache)?;
    let history = match (&head.history, config.keep_history) {
        (Some(roots), true) => Some(Indices::open(config, true, Some(roots), cache)?),
        (None, true) => Some(Indices::open(config, true, None, cache)?),
        _ => None,
    };
    let db = Db(Arc::new(DbInner {
        config: config.clone(),
        schema: Arc::new(Schema::new(config.attribute_refs)),
        current,
        history,
        max_eid: head.max_eid,
        max_tx: head.max_tx,
        last_tx_instant: head.last_tx_instant,
        cache: cache.clone(),
        view: None,
        commit: Some(Arc::new(head.commit.clone())),
    }));
    let schema = load_schema(&db)?;
    Ok(Db(Arc::new(DbInner { schema: Arc::new(schema), ..clone_inner(&db) })))
}

fn clone_inner(db: &Db) -> DbInner {
    let i = &db.0;
    DbInner {
        config: i.config.clone(),
        schema: i.schema.clone(),
        current: i.current.clone(),
        history: i.history.clone(),
        max_eid: i.max_eid,
        max_tx: i.max_tx,
        last_tx_instant: i.last_tx_instant,
        cache: i.cache.clone(),
        view: None,
        commit: i.commit.clone(),
    }
}

/// Applies the log records after `db.max_tx()`.
fn replay(durable: &mut Durable, db: Db) -> Result<Db> {
    let replayed = replay_log(durable.store.as_ref(), &durable.log, db)?;
    durable.txs_since_flush += replayed.records.len();
    durable.bytes_since_flush += replayed.records.iter().map(|r| r.bytes.len()).sum::<usize>();
    durable.unflushed.extend(replayed.records);
    durable.stale_log |= replayed.stale;
    Ok(replayed.db)
}

/// A log record kept in memory until a flush packs it.
#[derive(Clone)]
struct LogRecord {
    tx: Eid,
    commit: Option<uuid::Uuid>,
    bytes: Arc<[u8]>,
}

struct Replayed {
    db: Db,
    records: Vec<LogRecord>,
    /// The log continues with records that do not follow `db` (see [`replay_log`]).
    stale: bool,
}

/// Applies the records of `log` after `db.max_tx()` to `db`. Records that do not follow
/// `db`'s commit belong to a lineage a reset of the branch (force-branch) replaced, when it
/// stopped between publishing the new head and clearing the old log: they end the replay.
fn replay_log(store: &dyn Store, log: &str, mut db: Db) -> Result<Replayed> {
    let mut records = Vec::new();
    let mut stale = false;
    for (seq, bytes) in store.log_read(log, u64::try_from(db.max_tx()).unwrap_or(0))? {
        let outcome = decode_log_record(&bytes)?;
        if let (Some(commit), Some(head)) = (&outcome.commit, db.commit_id()) {
            if commit.parents.first() != Some(&head) {
                stale = true;
                break;
            }
        }
        if outcome.tx != db.max_tx() + 1 || u64::try_from(outcome.tx).ok() != Some(seq) {
            return Err(Error::Database(format!(
                "the transaction log of branch {log} skips from tx {} to tx {} (record {seq})",
                db.max_tx(),
                outcome.tx
            )));
        }
        db = db.apply_tx(&outcome)?;
        records.push(LogRecord { tx: outcome.tx, commit: outcome.commit.map(|c| c.id), bytes: bytes.into() });
    }
    Ok(Replayed { db, records, stale })
}

impl Conn {
    /// The current database value.
    pub fn db(&self) -> Db {
        self.0.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The connection's config (with the fixed keys as stored in the database).
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// Transacts `tx_data` (a vector of entity maps and op vectors) and returns once it is
    /// durable.
    pub fn transact(&self, tx_data: &Edn) -> Result<TxReport> {
        self.transact_with_meta(tx_data, None)
    }

    /// Accepts Datahike's argument map `{:tx-data [...] :tx-meta {...}}` or a plain vector.
    pub fn transact_arg(&self, arg: &Edn) -> Result<TxReport> {
        match arg {
            Edn::Map(_) => {
                let data = arg.get_kw("tx-data").ok_or_else(|| {
                    Error::Tx(crate::error::TxError::Syntax(format!("Bad argument {arg}: a map must contain :tx-data")))
                })?;
                self.transact_with_meta(data, arg.get_kw("tx-meta"))
            }
            _ => self.transact(arg),
        }
    }

    /// Transacts with transaction metadata (a map asserted on the transaction entity).
    pub fn transact_with_meta(&self, tx_data: &Edn, tx_meta: Option<&Edn>) -> Result<TxReport> {
        self.commit(&[], |db| tx::run(db, tx_data, tx_meta, now_millis()))
    }

    /// Runs `make` against the freshest database under the writer locks, then makes the
    /// outcome durable and publishes it.
    ///
    /// The commit's parents are the branch's previous commit and `merged` (a merge).
    fn commit(&self, merged: &[uuid::Uuid], make: impl FnOnce(&Db) -> Result<TxOutcome>) -> Result<TxReport> {
        let id = Arc::as_ptr(&self.0) as usize;
        if NOTIFYING.with(|n| n.borrow().contains(&id)) {
            return Err(Error::Database(
                "Cannot transact on a connection from inside one of its listen callbacks (it would wait for itself)"
                    .into(),
            ));
        }
        let mut writer = lock(&self.0.writer);
        let durable = writer.durable.as_mut().ok_or_else(|| Error::Database("Connection has been released".into()))?;
        let guard = durable.store.lock_writer()?;
        let mut db_before = self.db();
        db_before = self.catch_up(durable, db_before)?;
        let mut outcome = make(&db_before)?;
        let mut parents: Vec<uuid::Uuid> = db_before.commit_id().into_iter().collect();
        for p in merged {
            if !parents.contains(p) {
                parents.push(*p);
            }
        }
        let commit = Commit { id: uuid::Uuid::new_v4(), parents };
        outcome.tx_meta.push((Keyword::new("db/commitId"), Edn::Uuid(commit.id)));
        outcome.commit = Some(commit);
        let record: Arc<[u8]> = encode_log_record(&outcome).into();
        let seq = u64::try_from(outcome.tx).unwrap_or(0);
        if durable.stale_log {
            durable.log_writer = None;
            durable.store.log_delete(&durable.log)?;
            durable.stale_log = false;
        }
        let db_after = if durable.inline_log {
            durable.store.log_append(&durable.log, seq, &record)?;
            db_before.apply_tx(&outcome)?
        } else {
            // The log append (one fdatasync) and the in-memory index update are independent:
            // run them side by side; the new value is published only once both are done.
            let pending = durable.log_writer()?.append(seq, record.clone())?;
            let db_after = db_before.apply_tx(&outcome);
            pending.wait()?;
            db_after?
        };
        durable.txs_since_flush += 1;
        durable.bytes_since_flush += record.len();
        let commit_id = outcome.commit.as_ref().map(|c| c.id);
        durable.unflushed.push(LogRecord { tx: outcome.tx, commit: commit_id, bytes: record });
        *self.0.current.write().unwrap_or_else(PoisonError::into_inner) = db_after.clone();
        let every = if durable.inline_log { MEMORY_FLUSH_EVERY_TXS } else { FLUSH_EVERY_TXS };
        if durable.txs_since_flush >= every || durable.bytes_since_flush >= FLUSH_EVERY_BYTES {
            // Index nodes are written in the background; transactions go on meanwhile, their
            // records stay in the log until a head covers them.
            durable.txs_since_flush = 0;
            durable.bytes_since_flush = 0;
            let inner = self.0.clone();
            let snapshot = db_after.clone();
            let handle = std::thread::spawn(move || {
                if let Err(e) = flush_snapshot(&inner, &snapshot) {
                    *lock(&inner.flush_error) = Some(e.to_string());
                }
            });
            *lock(&self.0.flusher) = Some(handle);
        }
        let report = TxReport {
            db_before,
            db_after,
            tx_data: outcome.tx_data,
            tempids: outcome.tempids,
            tx_meta: outcome.tx_meta,
        };
        // Callbacks run after the writer is released, one transaction at a time in commit
        // order: the next commit waits for `notifying` before releasing the writer.
        let notifying = lock(&self.0.notifying);
        drop(guard);
        drop(writer);
        self.notify(&report, id);
        drop(notifying);
        Ok(report)
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

    /// Datahike's `listen`: calls `callback` with the report of every later transaction on this
    /// connection, once it is durable and `db()` returns its result. Callbacks run on the
    /// transacting thread, after the writer lock is released, in commit order; a callback
    /// must not transact on the same connection (that returns an error). Registering a key
    /// again replaces its callback. Returns the key.
    pub fn listen(&self, key: &str, callback: impl Fn(&TxReport) + Send + Sync + 'static) -> String {
        let mut listeners = lock(&self.0.listeners);
        let callback: Listener = Arc::new(callback);
        match listeners.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = callback,
            None => listeners.push((key.to_string(), callback)),
        }
        key.to_string()
    }

    /// Datahike's `unlisten`: removes the callback registered under `key`; whether there was one.
    pub fn unlisten(&self, key: &str) -> bool {
        let mut listeners = lock(&self.0.listeners);
        let before = listeners.len();
        listeners.retain(|(k, _)| k != key);
        listeners.len() != before
    }

    /// Brings `db` up to date with commits made by other processes on the same store.
    fn catch_up(&self, durable: &mut Durable, db: Db) -> Result<Db> {
        if durable.store.log_is_current(&durable.log, u64::try_from(db.max_tx()).unwrap_or(0))? {
            return Ok(db);
        }
        let head_bytes = durable.store.get(&durable.head_key)?;
        if head_bytes != durable.head_bytes {
            let bytes = head_bytes.ok_or_else(|| Error::Database("the database was deleted".into()))?;
            let head = Head::decode(&bytes)?;
            if head.max_tx > db.max_tx() {
                // Another process flushed past us: reopen from its head.
                let (fresh, fresh_durable) = open_durable(&self.0.config, durable.store.clone())?;
                *durable = fresh_durable;
                *self.0.current.write().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
                return Ok(fresh);
            }
            durable.head_bytes = Some(bytes);
            durable.head = head;
        }
        let db = replay(durable, db)?;
        *self.0.current.write().unwrap_or_else(PoisonError::into_inner) = db.clone();
        Ok(db)
    }

    /// Writes every index node not yet durable and publishes a head naming them, so that the
    /// log before it can be discarded. Called automatically; exposed for tests and tools.
    pub fn flush(&self) -> Result<()> {
        self.join_flusher()?;
        let db = {
            let mut writer = lock(&self.0.writer);
            let Some(durable) = writer.durable.as_mut() else { return Ok(()) };
            let _guard = durable.store.lock_writer()?;
            let db = self.catch_up(durable, self.db())?;
            durable.txs_since_flush = 0;
            durable.bytes_since_flush = 0;
            db
        };
        flush_snapshot(&self.0, &db)
    }

    /// Waits for a background flush and reports its error, if any.
    fn join_flusher(&self) -> Result<()> {
        let handle = lock(&self.0.flusher).take();
        if let Some(handle) = handle {
            handle.join().map_err(|_| Error::Internal("the background flush panicked".into()))?;
        }
        match lock(&self.0.flush_error).take() {
            Some(e) => Err(Error::Database(format!("a background index flush failed: {e}"))),
            None => Ok(()),
        }
    }

    /// Bulk-loads datoms `[e a v tx added]` exported from another database, remapping entity
    /// and transaction ids to fresh ones (Datahike's `load-entities`). Each source transaction
    /// becomes one transaction here; its `:db/txInstant` and other metadata are kept.
    pub fn load_entities(&self, entities: &Edn) -> Result<Vec<TxReport>> {
        let Some(rows) = entities.as_seq() else {
            return Err(Error::Argument(format!(
                "load-entities expects a collection of [e a v tx added], got {entities}"
            )));
        };
        let mut groups: Vec<(i64, Vec<LoadRow>)> = Vec::new();
        // Data exported with :attribute-refs? true names attributes by the ids they had in the
        // source: their idents come from the source's own `[id 1 ident]` rows.
        let mut source_idents: HashMap<i64, Keyword> = HashMap::new();
        for row in rows {
            let parts = match row {
                Edn::Tagged(_, inner) => inner.as_seq(),
                other => other.as_seq(),
            };
            if let Some([Edn::Int(e), Edn::Int(1), Edn::Keyword(ident), ..]) = parts {
                source_idents.insert(*e, *ident);
            }
        }
        for row in rows {
            let parts = match row {
                Edn::Tagged(_, inner) => inner.as_seq().map(<[Edn]>::to_vec),
                other => other.as_seq().map(<[Edn]>::to_vec),
            };
            let Some(parts) = parts.filter(|p| p.len() >= 4) else {
                return Err(Error::Argument(format!("load-entities: {row} is not [e a v tx added]")));
            };
            let (Edn::Int(e), Edn::Int(t)) = (&parts[0], &parts[3]) else {
                return Err(Error::Argument(format!("load-entities: {row} is not [e a v tx added]")));
            };
            let added = !matches!(parts.get(4), Some(Edn::Bool(false)));
            let a = match &parts[1] {
                Edn::Keyword(a) => *a,
                Edn::Int(id) if !self.config().attribute_refs => {
                    return Err(Error::Argument(format!(
                        "load-entities: {row} names its attribute by id ({id}): data exported with \
                         :attribute-refs? true cannot be loaded into a database without attribute references"
                    )));
                }
                Edn::Int(id) => {
                    if *t == TX0 && (attr_refs::is_system_entity(*e) || *e == TX0) {
                        // The system entities every such database starts with.
                        continue;
                    }
                    match source_idents.get(id).copied().or_else(|| attr_refs::system_ident(*id)) {
                        Some(a) => a,
                        None => {
                            return Err(Error::Argument(format!(
                                "load-entities: {row} uses attribute {id}, whose :db/ident the data does not contain"
                            )))
                        }
                    }
                }
                _ => return Err(Error::Argument(format!("load-entities: {row} is not [e a v tx added]"))),
            };
            match groups.iter_mut().find(|(tx, _)| tx == t) {
                Some((_, g)) => g.push((*e, a, parts[2].clone(), added)),
                None => groups.push((*t, vec![(*e, a, parts[2].clone(), added)])),
            }
        }
        // Source transactions load in their original order, whatever order the rows came in
        // (an EAVT export lists an entity's later facts before other entities' earlier ones).
        groups.sort_by_key(|(tx, _)| *tx);
        let mut mapping: HashMap<i64, i64> = HashMap::new();
        let mut reports = Vec::new();
        for (src_tx, datoms) in groups {
            let schema_db = self.db();
            let mut meta = Vec::new();
            let mut ops = Vec::new();
            let map_id = |x: i64, mapping: &HashMap<i64, i64>| -> Edn {
                match mapping.get(&x) {
                    Some(t) => Edn::Int(*t),
                    None => Edn::Str(format!("load-{x}").into()),
                }
            };
            for (e, a, v, added) in datoms {
                if e == src_tx {
                    if added && a.as_str() != "db.install/attribute" {
                        meta.push((Edn::Keyword(a), v));
                    }
                    continue;
                }
                let v = match (&v, schema_db.schema().is_ref(a)) {
                    (Edn::Int(x), true) => map_id(*x, &mapping),
                    _ => v,
                };
                let op = if added { "db/add" } else { "db/retract" };
                ops.push(Edn::Vector(vec![Edn::kw(op), map_id(e, &mapping), Edn::Keyword(a), v]));
            }
            // Retractions must name resolved ids; tempids are only allowed in :db/add.
            let meta_edn = if meta.is_empty() { None } else { Some(Edn::Map(meta)) };
            let report = self.transact_with_meta(&Edn::Vector(ops), meta_edn.as_ref())?;
            for (k, eid) in &report.tempids {
                if let Edn::Str(s) = k {
                    if let Some(src) = s.strip_prefix("load-").and_then(|x| x.parse::<i64>().ok()) {
                        mapping.insert(src, *eid);
                    }
                }
            }
            mapping.insert(src_tx, report.db_after.max_tx());
            reports.push(report);
        }
        Ok(reports)
    }

    /// Releases this handle; the last release of a store flushes its indices.
    pub fn release(&self) -> Result<()> {
        let last = {
            let mut refs = lock(&self.0.refs);
            *refs = refs.saturating_sub(1);
            *refs == 0
        };
        if last {
            self.flush()?;
            lock(registry()).remove(&self.0.key);
        }
        Ok(())
    }
}

/// The index nodes of a value not stored yet and the head that names the value.
struct Snapshot {
    pendings: Vec<PendingFlush>,
    nodes: Vec<(String, Vec<u8>)>,
    head: Head,
}

impl Snapshot {
    /// Encodes every node of `db`'s indices that is not durable yet, and the head naming
    /// `db` as commit `commit` (the fields fixed at creation come from `fixed`).
    fn prepare(db: &Db, commit: Commit, pack_base: Option<uuid::Uuid>, fixed: Head) -> Result<Snapshot> {
        let mut pendings = Vec::new();
        for idx in db.0.current.all() {
            pendings.push(idx.prepare_flush()?);
        }
        if let Some(h) = &db.0.history {
            for idx in h.all() {
                pendings.push(idx.prepare_flush()?);
            }
        }
        let nodes: Vec<(String, Vec<u8>)> = pendings.iter_mut().flat_map(|p| std::mem::take(&mut p.nodes)).collect();
        let roots: Vec<IndexRoot> = pendings.iter().map(|p| p.root.clone()).collect();
        let head = Head {
            max_eid: db.max_eid(),
            max_tx: db.max_tx(),
            last_tx_instant: db.last_tx_instant(),
            current: [roots[0].clone(), roots[1].clone(), roots[2].clone()],
            history: if roots.len() == 6 { Some([roots[3].clone(), roots[4].clone(), roots[5].clone()]) } else { None },
            pack_base,
            commit,
            ..fixed
        };
        Ok(Snapshot { pendings, nodes, head })
    }
}

/// Makes every index node of `db` durable, then publishes a head naming them, then discards
/// the log it covers. Node writing runs without the writer lock, so transactions continue;
/// only the head swap takes it. One flush runs at a time per connection.
///
/// With the nodes go the snapshot's commit record (`commits/<id>`, the same bytes as the
/// head) and its pack (`packs/<id>`, the log records since the previous snapshot), so that
/// every commit stays addressable after the log is discarded.
///
/// Garbage collection may run in another thread or process while the nodes are written, and
/// a node this flush skipped as already stored (content addressing) may be one it deletes as
/// unreachable. Every collection bumps [`GC_EPOCH_KEY`] after its sweep, under the writer
/// lock; a flush that sees the epoch changed between its writes and its head swap writes its
/// batch again (missing files only) before swapping, under the lock.
fn flush_snapshot(inner: &ConnInner, db: &Db) -> Result<()> {
    let _one_at_a_time = lock(&inner.flushing);
    let (store, records, previous) = {
        let writer = lock(&inner.writer);
        match writer.durable.as_ref() {
            Some(d) if d.flushed_tx < db.max_tx() => {
                let records: Vec<Arc<[u8]>> =
                    d.unflushed.iter().filter(|r| r.tx <= db.max_tx()).map(|r| r.bytes.clone()).collect();
                (d.store.clone(), records, d.head.clone())
            }
            _ => return Ok(()),
        }
    };
    let commit =
        db.0.commit
            .as_deref()
            .cloned()
            .ok_or_else(|| Error::Internal("a connection's database value has no commit".into()))?;
    let epoch = store.get(GC_EPOCH_KEY)?;
    let previous_id = previous.commit.id;
    // The last record is this snapshot's own commit: a pack is worth writing only when it
    // holds commits before it.
    let pack_base = (records.len() > 1).then_some(previous_id);
    let Snapshot { pendings, mut nodes, head } = Snapshot::prepare(db, commit, pack_base, previous)?;
    let bytes = head.encode();
    if head.pack_base.is_some() {
        nodes.push((pack_key(&head.commit.id), encode_pack(&previous_id, &records)));
    }
    nodes.push((commit_key(&head.commit.id), bytes.clone()));
    store.put_batch(&nodes)?;
    // The nodes stay in memory until the head names them: a collection may delete one of
    // them from the store before this flush writes it again (below), and nothing must read
    // it from the store meanwhile.
    let mut writer = lock(&inner.writer);
    let Some(durable) = writer.durable.as_mut() else { return Ok(()) };
    let _guard = durable.store.lock_writer()?;
    if durable.flushed_tx >= db.max_tx() {
        return Ok(());
    }
    let current = durable.store.get(&durable.head_key)?;
    if current != durable.head_bytes {
        // Another process published a head since we last looked: adopt it if it is newer,
        // otherwise replace it (it names only durable nodes of an older state).
        if let Some(bytes) = &current {
            let head = Head::decode(bytes)?;
            if head.max_tx >= db.max_tx() {
                durable.head_bytes = current;
                durable.head = head;
                return Ok(());
            }
        }
        durable.head_bytes = current;
    }
    if durable.store.get(GC_EPOCH_KEY)? != epoch {
        durable.store.put_batch(&nodes)?;
    }
    drop(nodes);
    // The log is discarded one flush behind: records covered by the head being replaced go,
    // records covered only by the new head stay until the next flush. A copy of the store
    // that took `heads/` before `log/` (as `rsync` does, alphabetically) then still finds
    // every record after the head it copied, even if a flush ran during the copy.
    let discard_through = durable.head.max_tx;
    if !durable.store.compare_and_set(&durable.head_key, durable.head_bytes.as_deref(), &bytes)? {
        return Err(Error::Database(
            "the branch head changed underneath this writer; another process wrote without the writer lock".into(),
        ));
    }
    durable.head_bytes = Some(bytes);
    durable.head = head;
    durable.flushed_tx = db.max_tx();
    for p in pendings {
        p.mark_durable();
    }
    durable.unflushed.retain(|r| r.tx > db.max_tx());
    durable.store.log_discard(&durable.log, u64::try_from(discard_through).unwrap_or(0))?;
    Ok(())
}
