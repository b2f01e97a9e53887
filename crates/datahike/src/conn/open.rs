//! Creating, opening, deleting and connecting to databases: the connection registry, the
//! store of a config, reading a head and replaying the log after it.

use super::*;

/// Rebuilds the schema of a database from its schema datoms.
pub(super) fn load_schema(db: &Db) -> Result<Schema> {
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

pub(super) fn registry() -> &'static Mutex<HashMap<String, Arc<ConnInner>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<ConnInner>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A text naming the store of `config` (equal for two configs exactly when they name the same
/// store), without secrets.
pub(super) fn store_identity(config: &Config) -> String {
    config.store.identity()
}

/// The connection registry's key: one connection per store, branch and access mode.
pub(super) fn store_key(config: &Config) -> String {
    let mode = if config.read_only { ":read-only" } else { "" };
    format!("{}:{}{mode}", store_identity(config), config.branch)
}

/// The store of `config`, or `None` when `mode` does not create it and it does not exist. A
/// read-only handle refuses every write.
pub(super) fn open_store(config: &Config, mode: OpenMode) -> Result<Option<Arc<dyn Store>>> {
    let Some(store) = config.store.open(mode)? else { return Ok(None) };
    Ok(Some(if mode == OpenMode::ReadOnly {
        Arc::new(backend::ReadOnlyStore::new(store, pr_str(&config.store.to_edn())))
    } else {
        store
    }))
}

pub(super) fn head_key(config: &Config) -> String {
    format!("heads/{}", config.branch.as_str())
}

/// A `:remote-peer` config names a database on a server: `create_database`,
/// `delete_database` and `database_exists` and the calls of [`crate::api`] go there;
/// `connect`, which would open the store here, refuses it, naming the way to call.
fn refuse_remote_peer(config: &Config, what: &str) -> Result<()> {
    match &config.remote_peer {
        Some(peer) => Err(Error::Config(format!(
            "{what}: this config has :remote-peer {}, so its calls go to that server: call them through datahike::api::call (dthk does), or remove :remote-peer to open the store here",
            peer.url
        ))),
        None => Ok(()),
    }
}

/// Whether a database exists under this config.
pub fn database_exists(config: &Config) -> Result<bool> {
    if let Some(peer) = &config.remote_peer {
        let exists = crate::remote::call(peer, "/database-exists", false, &[crate::remote::wire_config(config)])?;
        return Ok(exists == Edn::Bool(true));
    }
    match open_store(config, OpenMode::ReadOnly)? {
        Some(store) => Ok(store.get(&head_key(config))?.is_some()),
        None => Ok(false),
    }
}

/// Creates a database and transacts `:initial-tx`. Returns the config. Creates what the
/// backend needs (a directory, a table, a bucket) when it is missing.
pub fn create_database(config: &Config) -> Result<Config> {
    if let Some(peer) = &config.remote_peer {
        crate::remote::call(peer, "/create-database", false, &[crate::remote::wire_config(config)])?;
        return Ok(config.clone());
    }
    if let Some(writer) = &config.writer {
        crate::remote::call(writer, "/create-database-writer", false, &[crate::remote::wire_config(config)])?;
        return Ok(config.clone());
    }
    if config.read_only {
        return Err(Error::Config(format!(
            "cannot create a database with :read-only? true: {}",
            pr_str(&config.store.to_edn())
        )));
    }
    if database_exists(config)? {
        return Err(Error::Database(format!("Database already exists: {}", pr_str(&config.store.to_edn()))));
    }
    let store = open_store(config, OpenMode::Create)?
        .ok_or_else(|| Error::Internal("a backend opened nothing in create mode".into()))?;
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
        log_id: Some(uuid::Uuid::new_v4()),
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
pub(super) fn with_system_entities(config: &Config, store: &Arc<dyn Store>, head: Head) -> Result<Head> {
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
    if let Some(peer) = &config.remote_peer {
        crate::remote::call(peer, "/delete-database", false, &[crate::remote::wire_config(config)])?;
        return Ok(());
    }
    if let Some(writer) = &config.writer {
        let identity = store_identity(config);
        lock(registry()).retain(|_, inner| store_identity(&inner.config) != identity);
        crate::remote::call(writer, "/delete-database-writer", false, &[crate::remote::wire_config(config)])?;
        return Ok(());
    }
    if config.read_only {
        return Err(Error::Config(format!(
            "cannot delete a database through a :read-only? true config: {}",
            pr_str(&config.store.to_edn())
        )));
    }
    let identity = store_identity(config);
    // Every connection of this process to the store goes, whatever its branch.
    lock(registry()).retain(|_, inner| store_identity(&inner.config) != identity);
    if let Some(store) = open_store(config, OpenMode::Open)? {
        store.destroy()?;
    }
    Ok(())
}

/// Connects to an existing database. Connections to one store and branch within a process
/// share one writer and one current value, as in Datahike.
pub fn connect(config: &Config) -> Result<Conn> {
    refuse_remote_peer(config, "connect")?;
    if config.writer.is_some() && !config.read_only {
        // Reads stay local, as a reader on shared storage; transact goes to the writer.
        return connect(&Config { read_only: true, ..config.clone() });
    }
    let key = store_key(config);
    let mut reg = lock(registry());
    if let Some(inner) = reg.get(&key) {
        *lock(&inner.refs) += 1;
        return Ok(Conn(inner.clone()));
    }
    let mode = if config.read_only { OpenMode::ReadOnly } else { OpenMode::Open };
    let missing = || Error::Database(format!("Database does not exist: {}", pr_str(&config.store.to_edn())));
    let store = open_store(config, mode)?.ok_or_else(missing)?;
    bulk::refuse_interrupted(store.as_ref(), config)?;
    let (db, durable) = open_durable(config, store)?;
    let inner = Arc::new(ConnInner {
        config: Arc::new(config.clone()),
        key: key.clone(),
        current: RwLock::new(db),
        writer: Mutex::new(Writer { durable: Some(durable), draining: 0 }),
        refs: Mutex::new(1),
        flushing: Mutex::new(()),
        flusher: Mutex::new(None),
        flush_error: Mutex::new(None),
        listeners: Mutex::new(Vec::new()),
        notifying: Mutex::new(()),
        settled: std::sync::Condvar::new(),
        watching: std::sync::atomic::AtomicBool::new(false),
        counters: Arc::default(),
    });
    reg.insert(key, inner.clone());
    Ok(Conn(inner))
}

/// Reads the head, opens the indices and replays the log after them. When the log no longer
/// holds the records after the head read (another process flushed and discarded them in
/// between), reads the head again.
pub(super) fn open_durable(config: &Config, store: Arc<dyn Store>) -> Result<(Db, Durable)> {
    for _ in 0..MOVED_HEAD_RETRIES {
        if let Some(opened) = open_durable_once(config, store.clone())? {
            return Ok(opened);
        }
    }
    Err(Error::Database(format!(
        "{}: the head kept moving while it was read ({MOVED_HEAD_RETRIES} attempts)",
        head_key(config)
    )))
}

/// How often opening or catching up reads a head again that moved while its log was read.
pub(super) const MOVED_HEAD_RETRIES: usize = 8;

fn open_durable_once(config: &Config, store: Arc<dyn Store>) -> Result<Option<(Db, Durable)>> {
    let head_key = head_key(config);
    let head_bytes = store
        .get(&head_key)?
        .ok_or_else(|| Error::Database(format!("Database does not exist: {}", pr_str(&config.store.to_edn()))))?;
    let head = Head::decode(&head_key, &head_bytes)?;
    let stored_config = read_str(&head.fixed_config)?;
    let mut effective = config.clone();
    // The fixed keys come from the stored database, as Datahike adopts them on connect.
    // A stored config this build cannot read (an index implementation not registered in this
    // process) is an error: the indices cannot be read without it.
    let stored = Config::from_edn(&stored_config)
        .map_err(|e| Error::Config(format!("{head_key}: the stored database config {}: {e}", head.fixed_config)))?;
    {
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
        effective.index = stored.index;
    }
    let config = Arc::new(effective);
    let cache = Arc::new(if matches!(config.store, StoreConfig::Memory { .. }) {
        NodeCache::resident(store.clone(), config.cache_limit())
    } else {
        NodeCache::with_limit(Some(store.clone()), config.cache_limit())
    });
    let db = db_from_head(&config, &head, &cache)?;
    let log = head.log_name(config.branch.as_str());
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
        log_queue: None,
        unflushed: Vec::new(),
        stale_log: false,
        conflicts: 0,
        pipeline: Default::default(),
        tip: None,
        generation: 0,
        held: None,
        distrust: false,
        foreign: None,
    };
    Ok(replay(&mut durable, db)?.map(|db| (db, durable)))
}

/// The database value a head (or a snapshot commit record) names; nodes load lazily.
pub(super) fn db_from_head(config: &Arc<Config>, head: &Head, cache: &Arc<NodeCache>) -> Result<Db> {
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

pub(super) fn clone_inner(db: &Db) -> DbInner {
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

/// Applies the log records after `db.max_tx()`; `None` when the log no longer holds the
/// records right after `db` (a newer head covers them and a flush discarded them: read the
/// head again).
pub(super) fn replay(durable: &mut Durable, db: Db) -> Result<Option<Db>> {
    let legacy = durable.head.log_id.is_none();
    let started = std::time::Instant::now();
    let mut reports = durable.foreign.is_some().then(Vec::new);
    let replayed = replay_log(durable.store.as_ref(), &durable.log, db, legacy, reports.as_mut())?;
    if let (Some(foreign), Some(reports), false) = (durable.foreign.as_mut(), reports, replayed.gap) {
        foreign.extend(reports);
    }
    if !replayed.records.is_empty() {
        tracing::debug!(
            target: "datahike::replay",
            log = %durable.log,
            records = replayed.records.len(),
            micros = started.elapsed().as_micros() as u64,
            "replayed log records"
        );
    }
    durable.txs_since_flush += replayed.records.len();
    durable.bytes_since_flush += replayed.records.iter().map(|r| r.bytes.len()).sum::<usize>();
    durable.unflushed.extend(replayed.records);
    durable.stale_log |= replayed.stale;
    Ok((!replayed.gap).then_some(replayed.db))
}

/// A log record kept in memory until a flush packs it.
#[derive(Clone)]
pub(super) struct LogRecord {
    pub(super) tx: Eid,
    pub(super) commit: Option<uuid::Uuid>,
    pub(super) bytes: Arc<[u8]>,
}

pub(super) struct Replayed {
    pub(super) db: Db,
    pub(super) records: Vec<LogRecord>,
    /// The log continues with records that do not follow `db` (see [`replay_log`]).
    pub(super) stale: bool,
    /// The log's first record after `db` is not the next transaction: records were
    /// discarded under a newer head.
    pub(super) gap: bool,
}

/// Applies the records of `log` after `db.max_tx()` to `db`. In a log of a head without a log
/// id (`legacy`), records that do not follow `db`'s commit belong to a lineage a reset of the
/// branch (force-branch) replaced, when it stopped between publishing the new head and
/// clearing the old log: they end the replay. In any other log such a record is an error
/// naming it, never skipped.
pub(super) fn replay_log(
    store: &dyn Store,
    log: &str,
    mut db: Db,
    legacy: bool,
    mut reports: Option<&mut Vec<TxReport>>,
) -> Result<Replayed> {
    let mut records = Vec::new();
    let mut stale = false;
    let mut gap = false;
    for (seq, bytes) in store.log_read(log, u64::try_from(db.max_tx()).unwrap_or(0))? {
        let outcome =
            decode_log_record(&bytes).map_err(|e| Error::Database(format!("log {log}, record {seq}: {e}")))?;
        if outcome.tx != db.max_tx() + 1 || u64::try_from(outcome.tx).ok() != Some(seq) {
            if records.is_empty() && outcome.tx > db.max_tx() + 1 && u64::try_from(outcome.tx).ok() == Some(seq) {
                gap = true;
                break;
            }
            return Err(Error::Database(format!(
                "the transaction log {log} skips from tx {} to tx {} (record {seq})",
                db.max_tx(),
                outcome.tx
            )));
        }
        if let (Some(commit), Some(head)) = (&outcome.commit, db.commit_id()) {
            if commit.parents.first() != Some(&head) {
                if legacy {
                    stale = true;
                    break;
                }
                return Err(Error::Database(format!(
                    "log {log}, record {seq}: commit {} does not follow commit {head}",
                    commit.id
                )));
            }
        }
        let db_after = db.apply_tx(&outcome)?;
        records.push(LogRecord { tx: outcome.tx, commit: outcome.commit.as_ref().map(|c| c.id), bytes: bytes.into() });
        if let Some(reports) = reports.as_deref_mut() {
            reports.push(TxReport {
                db_before: db,
                db_after: db_after.clone(),
                tx_data: outcome.tx_data,
                tempids: outcome.tempids,
                tx_meta: outcome.tx_meta,
            });
        }
        db = db_after;
    }
    Ok(Replayed { db, records, stale, gap })
}
