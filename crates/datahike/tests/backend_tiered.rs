//! The `:tiered` backend: the store conformance suite and the database end to end over a
//! memory frontend and a file backend, under both write policies; other handles and
//! processes on the backend see every write, and a tiered reader never serves a stale head.

use datahike::edn::read_str;
use datahike::store::backend::open_store;
use datahike::store::conformance::Subject;
use datahike::store::tiered::{is_cacheable, ReadPolicy, WritePolicy};
use datahike::store::{FileStore, MemoryStore, OpenMode, Store, StoreResult, TieredStore, WriterGuard};
use datahike::{Config, Edn, QueryInput};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn tiered_map(backend_path: &Path, policy: &str, frontend: &str) -> String {
    format!(
        "{{:backend :tiered :frontend-config {frontend} :backend-config {{:backend :file :path {:?}}} \
         :write-policy :{policy} :read-policy :frontend-first}}",
        backend_path.display().to_string()
    )
}

/// A tiered store opened from its config map, over a fresh file backend and a private memory
/// frontend; another handle is another tiered store over the same directory (a new frontend,
/// as another process would have).
fn subject(policy: &'static str) -> Subject {
    let scratch = tempfile::tempdir().expect("temp dir");
    let path = scratch.path().join("db");
    let map = read_str(&tiered_map(&path, policy, "{:backend :memory}")).unwrap();
    let store = open_store(&map, OpenMode::Create).unwrap().expect("created");
    Subject::new(store, move || open_store(&map, OpenMode::Open).unwrap().expect("exists")).with_guard(scratch)
}

/// Both handles share one frontend (a memory store with an `:id`, as a file frontend would
/// be shared by processes): a handle finds entries there that it did not verify itself.
fn shared_frontend_subject() -> Subject {
    let scratch = tempfile::tempdir().expect("temp dir");
    let path = scratch.path().join("db");
    let frontend = format!("{{:backend :memory :id {:?}}}", format!("shared-frontend-{}", uuid::Uuid::new_v4()));
    let map = read_str(&tiered_map(&path, "write-through", &frontend)).unwrap();
    let store = open_store(&map, OpenMode::Create).unwrap().expect("created");
    Subject::new(store, move || open_store(&map, OpenMode::Open).unwrap().expect("exists")).with_guard(scratch)
}

mod shared_frontend {
    datahike::store_conformance_tests!(super::shared_frontend_subject);

    #[test]
    fn stored_sizes_reported() {
        datahike::store::conformance::stored_sizes_reported(&super::shared_frontend_subject());
    }
}

mod write_through {
    datahike::store_conformance_tests!(|| super::subject("write-through"));

    #[test]
    fn stored_sizes_reported() {
        datahike::store::conformance::stored_sizes_reported(&super::subject("write-through"));
    }
}

mod write_around {
    datahike::store_conformance_tests!(|| super::subject("write-around"));
}

fn config(map: &str) -> Config {
    Config::parse(&format!("{{:store {map}}}")).unwrap()
}

#[test]
fn database_conformance_write_through() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let path = scratch.path().join("db");
    datahike::store::conformance::database(&config(&tiered_map(&path, "write-through", "{:backend :memory}")));
}

#[test]
fn database_conformance_write_around() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let path = scratch.path().join("db");
    datahike::store::conformance::database(&config(&tiered_map(&path, "write-around", "{:backend :memory}")));
}

#[test]
fn database_conformance_file_frontend() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let dir = scratch.path();
    let frontend = format!("{{:backend :file :path {:?}}}", dir.join("cache").display().to_string());
    datahike::store::conformance::database(&config(&tiered_map(&dir.join("db"), "write-through", &frontend)));
}

fn count(db: &datahike::Db) -> Edn {
    datahike::q(&read_str("[:find (count ?e) . :where [?e :n]]").unwrap(), &[QueryInput::from(db.clone())]).unwrap()
}

fn transact_range(conn: &datahike::Conn, range: std::ops::Range<i64>) {
    for i in range {
        conn.transact(&read_str(&format!("[{{:n {i}}}]")).unwrap()).unwrap();
    }
}

/// Every write through a tiered store is in the backend: a plain file connection (another
/// handle, as another process would open it) reads all of it, flushed and unflushed. The
/// frontend holds only immutable keys.
#[test]
fn the_backend_alone_has_every_write() {
    for policy in ["write-through", "write-around"] {
        let scratch = tempfile::tempdir().expect("temp dir");
        let path = scratch.path().join("db");
        let frontend_id = format!("backend-alone-{policy}");
        let tiered = Config {
            schema_flexibility: datahike::SchemaFlexibility::Read,
            ..config(&tiered_map(&path, policy, &format!("{{:backend :memory :id {frontend_id:?}}}")))
        };
        let plain = config(&format!("{{:backend :file :path {:?}}}", path.display().to_string()));
        datahike::create_database(&tiered).unwrap();
        let conn = datahike::connect(&tiered).unwrap();
        transact_range(&conn, 0..1100);
        conn.flush().unwrap();
        transact_range(&conn, 1100..1150);
        // Unflushed records are in the backend's log: read by a second connection (another
        // handle on the file store) while the first still holds them.
        let other = datahike::connect(&Config { read_only: true, ..plain.clone() }).unwrap();
        assert_eq!(count(&other.db()), Edn::Int(1150), "{policy}: a reader on the backend sees every commit");
        other.release().unwrap();
        conn.release().unwrap();
        let direct = FileStore::open(&path).unwrap();
        let backend_nodes = direct.list("nodes/").unwrap();
        assert!(backend_nodes.len() > 10, "{policy}: nodes are in the backend");
        let frontend = MemoryStore::open(&frontend_id);
        let cached = frontend.list("").unwrap();
        assert!(cached.iter().all(|k| is_cacheable(k)), "{policy}: only immutable keys are cached: {cached:?}");
        if policy == "write-through" {
            let mut nodes = frontend.list("nodes/").unwrap();
            let mut expected = backend_nodes.clone();
            nodes.sort();
            expected.sort();
            assert_eq!(nodes, expected, "write-through: the frontend has every node written");
        } else {
            assert!(frontend.list("nodes/").unwrap().is_empty(), "write-around: writes leave the frontend alone");
        }
        let conn = datahike::connect(&plain).unwrap();
        assert_eq!(count(&conn.db()), Edn::Int(1150), "{policy}: everything survives without the frontend");
        conn.release().unwrap();
        frontend.destroy().unwrap();
    }
}

/// Commits made through the backend directly (another process) are seen through a tiered
/// store: heads and the log are never served from the frontend.
#[test]
fn tiered_readers_and_writers_never_see_a_stale_head() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let path = scratch.path().join("db");
    let plain = Config {
        schema_flexibility: datahike::SchemaFlexibility::Read,
        ..config(&format!("{{:backend :file :path {:?}}}", path.display().to_string()))
    };
    let tiered = Config {
        schema_flexibility: datahike::SchemaFlexibility::Read,
        ..config(&tiered_map(&path, "write-through", "{:backend :memory}"))
    };
    datahike::create_database(&plain).unwrap();
    let direct = datahike::connect(&plain).unwrap();
    transact_range(&direct, 0..1100);
    direct.flush().unwrap();

    let reader = datahike::connect(&Config { read_only: true, ..tiered.clone() }).unwrap();
    assert_eq!(count(&reader.db()), Edn::Int(1100));
    let writer = datahike::connect(&tiered).unwrap();
    assert_eq!(count(&writer.db()), Edn::Int(1100));

    // The backend moves on: a commit in its log, then a flush that replaces the head.
    transact_range(&direct, 1100..1101);
    assert_eq!(count(&reader.db()), Edn::Int(1101), "a tiered reader reads the backend's log");
    transact_range(&direct, 1101..2300);
    direct.flush().unwrap();
    assert_eq!(count(&reader.db()), Edn::Int(2300), "a tiered reader reads the backend's new head");

    // A tiered writer catches up with the backend's head before it commits.
    transact_range(&writer, 2300..2301);
    assert_eq!(count(&writer.db()), Edn::Int(2301), "a tiered writer builds on the backend's head");
    writer.flush().unwrap();
    transact_range(&direct, 2301..2302);
    assert_eq!(count(&direct.db()), Edn::Int(2302), "the direct writer builds on the tiered writer's head");
    assert_eq!(count(&reader.db()), Edn::Int(2302));
    for conn in [reader, writer, direct] {
        conn.release().unwrap();
    }
}

/// A store that counts the `nodes/` reads that reach it.
struct Counting {
    inner: Arc<dyn Store>,
    node_reads: AtomicU64,
}

impl Store for Counting {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        if key.starts_with("nodes/") {
            self.node_reads.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.get(key)
    }
    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
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
        self.inner.compare_and_set(key, expected, new)
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
    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        self.inner.lock_writer()
    }
    fn destroy(&self) -> StoreResult<()> {
        self.inner.destroy()
    }
}

/// Under `:write-around` the frontend fills as nodes are read, and a second connection reads
/// them from there, not from the backend.
#[test]
fn reads_fill_the_frontend() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let path = scratch.path().join("db");
    let plain = Config {
        schema_flexibility: datahike::SchemaFlexibility::Read,
        ..config(&format!("{{:backend :file :path {:?}}}", path.display().to_string()))
    };
    datahike::create_database(&plain).unwrap();
    let conn = datahike::connect(&plain).unwrap();
    transact_range(&conn, 0..3000);
    conn.release().unwrap();

    let backend =
        Arc::new(Counting { inner: Arc::new(FileStore::open(&path).unwrap()), node_reads: AtomicU64::new(0) });
    let frontend = MemoryStore::new();
    let tiered: Arc<dyn Store> = Arc::new(
        TieredStore::open(
            Arc::new(frontend.clone()),
            backend.clone(),
            WritePolicy::WriteAround,
            ReadPolicy::FrontendFirst,
        )
        .unwrap(),
    );
    let config = Config { read_only: true, ..Config::with_store(tiered) };
    assert!(frontend.list("").unwrap().is_empty());
    let conn = datahike::connect(&config).unwrap();
    assert_eq!(count(&conn.db()), Edn::Int(3000));
    conn.release().unwrap();
    let cached = frontend.list("nodes/").unwrap().len();
    let reads = backend.node_reads.load(Ordering::Relaxed);
    assert!(cached > 0 && reads > 0, "cached {cached}, backend node reads {reads}");
    assert_eq!(u64::try_from(cached).unwrap(), reads, "each node read from the backend once is cached");

    // A new connection (a new node cache) reads the same nodes from the frontend.
    let conn = datahike::connect(&config).unwrap();
    assert_eq!(count(&conn.db()), Edn::Int(3000));
    conn.release().unwrap();
    assert_eq!(backend.node_reads.load(Ordering::Relaxed), reads, "the second reader's nodes come from the frontend");
}

/// Under `:backend-only` the frontend is never read (nor filled by reads).
#[test]
fn backend_only_reads_never_touch_the_frontend() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let path = scratch.path().join("db");
    let map = tiered_map(&path, "write-around", "{:backend :memory :id \"backend-only-frontend\"}")
        .replace(":frontend-first", ":backend-only");
    let config = Config { schema_flexibility: datahike::SchemaFlexibility::Read, ..self::config(&map) };
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    transact_range(&conn, 0..1100);
    conn.release().unwrap();
    let conn = datahike::connect(&config).unwrap();
    assert_eq!(count(&conn.db()), Edn::Int(1100));
    conn.release().unwrap();
    let frontend = MemoryStore::open("backend-only-frontend");
    assert!(frontend.list("").unwrap().is_empty());
    frontend.destroy().unwrap();
}

#[test]
fn bad_configs_are_refused_by_name() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let path = scratch.path().join("db");
    let err = |map: String| datahike::create_database(&config(&map)).unwrap_err().to_string();
    let e = err(tiered_map(&path, "write-behind", "{:backend :memory}"));
    assert!(e.contains(":write-policy") && e.contains("durable"), "{e}");
    let e = err(tiered_map(&path, "write-through", "{:backend :memory}").replace(":frontend-first", ":frontend-only"));
    assert!(e.contains(":read-policy"), "{e}");
    let e =
        err(tiered_map(&path, "write-through", &format!("{{:backend :file :path {:?}}}", path.display().to_string())));
    assert!(e.contains("same store"), "{e}");
    let e = err("{:backend :tiered :frontend-config {:backend :memory}}".to_string());
    assert!(e.contains(":backend-config"), "{e}");
    let e = err(tiered_map(&path, "write-through", "{:backend :nope :password \"hunter2\"}"));
    assert!(e.contains(":frontend-config") && e.contains(":nope") && !e.contains("hunter2"), "{e}");
    assert!(!path.exists(), "a refused config creates nothing");
}

#[test]
fn open_mode_open_finds_nothing_without_a_backend() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let path = scratch.path().join("absent");
    let map = read_str(&tiered_map(&path, "write-through", "{:backend :memory}")).unwrap();
    assert!(open_store(&map, OpenMode::Open).unwrap().is_none());
    assert!(open_store(&map, OpenMode::ReadOnly).unwrap().is_none());
    assert!(!datahike::database_exists(&config(&tiered_map(&path, "write-through", "{:backend :memory}"))).unwrap());
    assert!(!path.exists());
}

/// A node that another handle deletes (a collection in another process) is not served from
/// this handle's frontend once this handle has read a mutable key (as the database reads a
/// head before it reads the nodes of a newer value).
#[test]
fn deletes_by_another_handle_are_seen_from_the_next_backend_read() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let path = scratch.path().join("db");
    let map = read_str(&tiered_map(&path, "write-around", "{:backend :memory :id \"deletes-by-another\"}")).unwrap();
    let a = open_store(&map, OpenMode::Create).unwrap().unwrap();
    let b_frontend = MemoryStore::new();
    let b = TieredStore::open(
        Arc::new(b_frontend.clone()),
        Arc::new(FileStore::open(&path).unwrap()),
        WritePolicy::WriteAround,
        ReadPolicy::FrontendFirst,
    )
    .unwrap();
    let node = format!("nodes/{}", "ab".repeat(16));
    a.put_batch(&[(node.clone(), b"n".to_vec()), ("heads/db".to_string(), b"h1".to_vec())]).unwrap();
    assert_eq!(b.get(&node).unwrap().as_deref(), Some(&b"n"[..]));
    assert_eq!(b_frontend.list("nodes/").unwrap(), vec![node.clone()], "the read filled b's frontend");
    a.delete_batch(std::slice::from_ref(&node)).unwrap();
    assert_eq!(b.get("heads/db").unwrap().as_deref(), Some(&b"h1"[..]));
    assert_eq!(b.get(&node).unwrap(), None, "a node deleted by another handle, after b read a head");
    assert!(b_frontend.list("nodes/").unwrap().is_empty(), "and it left b's frontend");
    assert_eq!(a.list("").unwrap(), vec!["heads/db".to_string()], "the deletes marker is never listed");
    MemoryStore::open("deletes-by-another").destroy().unwrap();
}
