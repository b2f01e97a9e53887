//! Helpers of the object store backend tests (`backend_s3.rs`, `backend_gcs.rs`): the server
//! under test from the environment, fresh configs, a store that counts requests, and the
//! checks both backends run.
#![allow(dead_code)]

use datahike::edn::read_str;
use datahike::store::conformance::Subject;
use datahike::store::object::ObjectKv;
use datahike::store::{Backend, ByteRange, OpenMode, PackedStore, Store, StoreResult, WriterGuard};
use datahike::{Config, Edn, QueryInput};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A server to test against.
#[derive(Clone)]
pub struct Server {
    /// `moto`, `seaweedfs`, `fake-gcs-server`.
    pub name: &'static str,
    /// The `:backend` keyword's name.
    pub backend: &'static str,
    pub endpoint: String,
    /// More keys of the `:store` map (region, credentials), EDN text.
    pub extra: String,
    /// The bucket the tests share (each test has its own prefix).
    pub bucket: String,
    pub open_kv: fn(&Edn, OpenMode) -> StoreResult<Option<ObjectKv>>,
    pub registered: Arc<dyn Backend>,
}

/// The endpoint in `var`. Unset: under CI (`CI` set) the test fails, else it prints a note
/// and the caller returns.
pub fn endpoint(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set, and CI is: the {what} tests need it (see .ci/services.sh)")
        }
        _ => {
            eprintln!("note: {var} is not set; skipping the {what} tests (see .ci/services.sh)");
            None
        }
    }
}

/// A unique name for this test run.
pub fn unique(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{what}-{}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), uuid_tail())
}

fn uuid_tail() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{:x}", nanos & 0xffff_ffff)
}

impl Server {
    /// The `:store` map of `prefix` in `bucket`.
    pub fn store_edn(&self, bucket: &str, prefix: &str) -> String {
        format!(
            "{{:backend :{} :bucket {bucket:?} :prefix {prefix:?} :endpoint {:?} {}}}",
            self.backend, self.endpoint, self.extra
        )
    }

    /// A config of a fresh store (a new prefix in the shared bucket), with `extra` keys.
    pub fn fresh_config(&self, extra: &str) -> Config {
        let store = self.store_edn(&self.bucket, &unique("t"));
        Config::parse(&format!("{{:store {store} {extra}}}")).expect("config")
    }

    /// The `:store` map of a config.
    pub fn store_of(config: &Config) -> Edn {
        match &config.store {
            datahike::StoreConfig::Backend { config, .. } => config.clone(),
            other => panic!("not a backend store: {other:?}"),
        }
    }

    /// A conformance subject on a fresh store.
    pub fn subject(&self) -> Subject {
        let store = Self::store_of(&self.fresh_config(""));
        let first = self.registered.open(&store, OpenMode::Create).expect("create").expect("a store");
        let registered = self.registered.clone();
        Subject::new(first, move || registered.open(&store, OpenMode::Open).expect("open").expect("the store exists"))
    }
}

/// Counts the requests that reach the inner store, by kind; pack values are `nodepacks/`.
pub struct Counting<S: Store> {
    pub inner: S,
    pub pack_puts: AtomicUsize,
    pub puts: AtomicUsize,
    pub pack_full_gets: AtomicUsize,
    pub pack_range_gets: AtomicUsize,
    /// Calls of `get_ranges` (one concurrent batch of ranged GETs each), and their ranges.
    pub range_batches: AtomicUsize,
    pub batched_ranges: AtomicUsize,
}

impl<S: Store> Counting<S> {
    pub fn new(inner: S) -> Counting<S> {
        Counting {
            inner,
            pack_puts: AtomicUsize::new(0),
            puts: AtomicUsize::new(0),
            pack_full_gets: AtomicUsize::new(0),
            pack_range_gets: AtomicUsize::new(0),
            range_batches: AtomicUsize::new(0),
            batched_ranges: AtomicUsize::new(0),
        }
    }

    pub fn reset(&self) {
        for c in [
            &self.pack_puts,
            &self.puts,
            &self.pack_full_gets,
            &self.pack_range_gets,
            &self.range_batches,
            &self.batched_ranges,
        ] {
            c.store(0, Ordering::SeqCst);
        }
    }
}

fn is_pack(key: &str) -> bool {
    key.starts_with("nodepacks/")
}

impl<S: Store> Store for Counting<S> {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        if is_pack(key) {
            self.pack_full_gets.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.get(key)
    }
    fn get_range(&self, key: &str, range: ByteRange) -> StoreResult<Option<Vec<u8>>> {
        if is_pack(key) {
            self.pack_range_gets.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.get_range(key, range)
    }
    fn get_ranges(&self, reads: &[(String, ByteRange)]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        self.range_batches.fetch_add(1, Ordering::SeqCst);
        self.batched_ranges.fetch_add(reads.len(), Ordering::SeqCst);
        self.inner.get_ranges(reads)
    }
    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        self.inner.get_many(keys)
    }
    fn prefers_batched_reads(&self) -> bool {
        self.inner.prefers_batched_reads()
    }
    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        self.puts.fetch_add(entries.len(), Ordering::SeqCst);
        self.pack_puts.fetch_add(entries.iter().filter(|(k, _)| is_pack(k)).count(), Ordering::SeqCst);
        self.inner.put_batch(entries)
    }
    fn stored_sizes(&self, keys: &[String]) -> StoreResult<Vec<Option<u64>>> {
        self.inner.stored_sizes(keys)
    }
    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        self.inner.delete_batch(keys)
    }
    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        self.inner.list(prefix)
    }
    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.inner.compare_and_set(key, expected, new)
    }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> StoreResult<bool> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.inner.put_if_absent(key, bytes)
    }
    fn log_append(&self, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
        self.inner.log_append(log, seq, record)
    }
    fn log_read(&self, log: &str, after: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        self.inner.log_read(log, after)
    }
    fn log_discard(&self, log: &str, through: u64) -> StoreResult<()> {
        self.inner.log_discard(log, through)
    }
    fn log_delete(&self, log: &str) -> StoreResult<()> {
        self.inner.log_delete(log)
    }
    fn log_is_current(&self, log: &str, last_seq: u64) -> StoreResult<bool> {
        self.inner.log_is_current(log, last_seq)
    }
    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        self.inner.lock_writer()
    }
    fn destroy(&self) -> StoreResult<()> {
        self.inner.destroy()
    }
}

fn count(db: &datahike::Db) -> i64 {
    let n = datahike::q(&read_str("[:find (count ?e) . :where [?e :k]]").unwrap(), &[QueryInput::from(db.clone())])
        .expect("query");
    match n {
        Edn::Int(n) => n,
        Edn::Nil => 0,
        other => panic!("count: {other}"),
    }
}

/// A flush writes its index nodes as one object (plus the head, commit and pack records: a
/// handful of PUTs, not one per node), and a fresh connection reads nodes by ranged GETs,
/// never a whole pack.
pub fn flush_writes_one_pack_and_reads_by_range(server: &Server) {
    let store = Server::store_of(&server.fresh_config(""));
    let kv = (server.open_kv)(&store, OpenMode::Create).expect("create").expect("store");
    let counting = Arc::new(PackedStore::new(Counting::new(kv)));
    let config =
        Config { schema_flexibility: datahike::SchemaFlexibility::Read, ..Config::with_store(counting.clone()) };
    datahike::create_database(&config).expect("create-database");
    let conn = datahike::connect(&config).expect("connect");
    for t in 0..20 {
        let tx: String = (0..500).map(|i| format!("{{:k {} :v \"value {i} of {t}\"}}", t * 500 + i)).collect();
        conn.transact(&read_str(&format!("[{tx}]")).unwrap()).expect("transact");
    }
    let counts = counting.inner();
    counts.reset();
    conn.flush().expect("flush");
    let nodes = counting.list("nodes/").expect("list").len();
    let pack_puts = counts.pack_puts.load(Ordering::SeqCst);
    let puts = counts.puts.load(Ordering::SeqCst);
    eprintln!("{}: a flush of {nodes} nodes made {pack_puts} pack PUTs and {puts} PUTs in all", server.name);
    assert!(nodes > 300, "{nodes} nodes: the test wants a flush of many nodes");
    assert_eq!(pack_puts, 1, "one pack per flush");
    assert!(puts <= 12, "{puts} PUTs for a flush of {nodes} nodes");
    conn.release().expect("release");

    // A fresh connection (an empty node cache) reads its nodes by range, never a whole pack;
    // a scan fetches the leaves it needs next in concurrent batches, neighbours in one range.
    counts.reset();
    let conn = datahike::connect(&config).expect("connect");
    assert_eq!(count(&conn.db()), 10_000);
    let single = counts.pack_range_gets.load(Ordering::SeqCst);
    let (batches, ranges) = (counts.range_batches.load(Ordering::SeqCst), counts.batched_ranges.load(Ordering::SeqCst));
    eprintln!("{}: a cold scan made {single} single ranged GETs and {batches} batches of {ranges} ranges", server.name);
    assert!(batches > 0, "the scan prefetches in batches");
    let leaves = 10_000 / 128;
    assert!(
        single + batches < leaves / 2,
        "{single} + {batches} round trips for a scan of about {leaves} leaves or more"
    );
    assert_eq!(counts.pack_full_gets.load(Ordering::SeqCst), 0, "no pack is read whole");
    conn.release().expect("release");
    datahike::delete_database(&config).expect("delete-database");
}

/// `create-database` creates a bucket that does not exist, and the store in it works.
pub fn create_database_makes_the_bucket(server: &Server) {
    let bucket = unique("dthk-new").to_ascii_lowercase();
    let store = server.store_edn(&bucket, "db");
    let config = Config::parse(&format!("{{:store {store} :schema-flexibility :read}}")).expect("config");
    assert!((server.open_kv)(&Server::store_of(&config), OpenMode::Open).expect("open").is_none());
    assert!(!datahike::database_exists(&config).expect("exists"), "no database in a missing bucket");
    datahike::create_database(&config).expect("create-database creates the bucket");
    let conn = datahike::connect(&config).expect("connect");
    conn.transact(&read_str("[{:k 1} {:k 2}]").unwrap()).expect("transact");
    conn.release().expect("release");
    let conn = datahike::connect(&config).expect("connect");
    assert_eq!(count(&conn.db()), 2);
    conn.release().expect("release");
    datahike::delete_database(&config).expect("delete-database");
    assert!(!datahike::database_exists(&config).expect("exists"));
}

/// Open modes: `Open` and `ReadOnly` find no store without its marker; a read-only
/// connection refuses writes; two stores in one bucket under different prefixes stay apart.
pub fn prefixes_and_open_modes(server: &Server) {
    let a = server.fresh_config(":schema-flexibility :read");
    let b = server.fresh_config(":schema-flexibility :read");
    for mode in [OpenMode::Open, OpenMode::ReadOnly] {
        assert!(server.registered.open(&Server::store_of(&a), mode).expect("open").is_none());
    }
    assert!(datahike::connect(&a).is_err(), "no database to connect to");
    datahike::create_database(&a).expect("create a");
    datahike::create_database(&b).expect("create b");
    let conn = datahike::connect(&a).expect("connect a");
    conn.transact(&read_str("[{:k 1}]").unwrap()).expect("transact");
    let reader_config = Config { read_only: true, ..a.clone() };
    let reader = datahike::connect(&reader_config).expect("read-only connect");
    assert_eq!(count(&reader.db()), 1);
    assert!(reader.transact(&read_str("[{:k 2}]").unwrap()).is_err(), "a read-only connection writes nothing");
    conn.transact(&read_str("[{:k 3}]").unwrap()).expect("transact");
    assert_eq!(count(&reader.db()), 2, "a reader sees the latest commit");
    let other = datahike::connect(&b).expect("connect b");
    assert_eq!(count(&other.db()), 0, "stores under two prefixes are apart");
    for c in [conn, reader, other] {
        c.release().expect("release");
    }
    datahike::delete_database(&a).expect("delete a");
    assert!(datahike::database_exists(&b).expect("exists"), "deleting one prefix leaves the other");
    datahike::delete_database(&b).expect("delete b");
}

/// `secret` appears in no printed config, in nothing create-database returns, and in no
/// error message.
pub fn assert_hidden(secret: &str, config: &Config, error: &str) {
    let printed = format!("{config:?}");
    assert!(!printed.contains(secret), "the secret is in the printed config: {printed}");
    assert!(!error.contains(secret), "the secret is in an error: {error}");
}
