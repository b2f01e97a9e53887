//! The public store conformance suite (`datahike::store::conformance`) over the built-in
//! backends of the default build: the memory store and the file store on the real file
//! system. Backends behind cargo features run it in their own test files.

use datahike::store::conformance::Subject;
use datahike::store::{FileStore, MemoryStore, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn entries(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect()
}

fn memory() -> Subject {
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let id = format!("suite-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    Subject::new(Arc::new(MemoryStore::open(&id)), move || Arc::new(MemoryStore::open(&id)))
}

fn file() -> Subject {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("db");
    let store = FileStore::create(&path).expect("create");
    Subject::new(Arc::new(store), move || Arc::new(FileStore::open(&path).expect("open"))).with_guard(dir)
}

mod memory {
    datahike::store_conformance_tests!(super::memory);

    #[test]
    fn stored_sizes_reported() {
        datahike::store::conformance::stored_sizes_reported(&super::memory());
    }
}

mod file {
    datahike::store_conformance_tests!(super::file);

    #[test]
    fn stored_sizes_reported() {
        datahike::store::conformance::stored_sizes_reported(&super::file());
    }
}

#[test]
fn memory_stores_are_shared_by_id_until_destroyed() {
    let id = "memory-registry-test";
    assert!(!MemoryStore::exists(id));
    let a = MemoryStore::open(id);
    assert!(MemoryStore::exists(id));
    assert_eq!(a.id(), Some(id));
    a.put_batch(&entries(&[("k", b"v")])).unwrap();
    a.log_append("db", 1, b"r").unwrap();
    let b = MemoryStore::open(id);
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(b.log_read("db", 0).unwrap().len(), 1);
    b.destroy().unwrap();
    assert!(!MemoryStore::exists(id));
    assert_eq!(a.get("k").unwrap(), None);
    let c = MemoryStore::open(id);
    assert_eq!(c.get("k").unwrap(), None);
    assert_eq!(c.log_read("db", 0).unwrap(), vec![]);
    c.destroy().unwrap();

    let anonymous = MemoryStore::new();
    assert_eq!(anonymous.id(), None);
    anonymous.put_batch(&entries(&[("k", b"v")])).unwrap();
    assert_eq!(MemoryStore::new().get("k").unwrap(), None);
}

#[test]
fn file_store_destroy_removes_the_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("db");
    let store = FileStore::create(&path).expect("create");
    store.put_batch(&entries(&[("config", b"c")])).unwrap();
    store.log_append("db", 1, b"r").unwrap();
    assert!(FileStore::exists(&path));
    store.destroy().unwrap();
    assert!(!path.exists());
    assert!(!FileStore::exists(&path));
}

/// A store as small as the contract allows: the six required methods over one map shared
/// by its handles, a lease for the writer lock, and every log method left to the trait's
/// defaults. The suite over it checks those defaults (record fencing, the floor, prefixes).
#[derive(Clone, Default)]
struct PlainKv(Arc<std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>>);

impl Store for PlainKv {
    fn get(&self, key: &str) -> datahike::store::StoreResult<Option<Vec<u8>>> {
        Ok(self.0.lock().unwrap().get(key).cloned())
    }
    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> datahike::store::StoreResult<()> {
        let mut map = self.0.lock().unwrap();
        for (k, v) in entries {
            map.insert(k.clone(), v.clone());
        }
        Ok(())
    }
    fn delete_batch(&self, keys: &[String]) -> datahike::store::StoreResult<()> {
        let mut map = self.0.lock().unwrap();
        for k in keys {
            map.remove(k);
        }
        Ok(())
    }
    fn list(&self, prefix: &str) -> datahike::store::StoreResult<Vec<String>> {
        Ok(self.0.lock().unwrap().keys().filter(|k| k.starts_with(prefix)).cloned().collect())
    }
    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> datahike::store::StoreResult<bool> {
        let mut map = self.0.lock().unwrap();
        if map.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        map.insert(key.to_string(), new.to_vec());
        Ok(true)
    }
    fn lock_writer(&self) -> datahike::store::StoreResult<datahike::store::WriterGuard> {
        datahike::store::lease::acquire(Arc::new(self.clone()))
    }
    fn destroy(&self) -> datahike::store::StoreResult<()> {
        self.0.lock().unwrap().clear();
        Ok(())
    }
}

fn plain_kv() -> Subject {
    let store = PlainKv::default();
    let again = store.clone();
    Subject::new(Arc::new(store), move || Arc::new(again.clone()))
}

mod plain_kv {
    datahike::store_conformance_tests!(super::plain_kv);
}

/// The plain store, where a discard of the first two records of log `db` runs while a reader
/// of the default log has read record 1 and not yet record 2: what another process's flush
/// does to a reader catching up.
#[derive(Clone, Default)]
struct DiscardWhileReading(PlainKv, Arc<std::sync::atomic::AtomicBool>);

impl Store for DiscardWhileReading {
    fn get(&self, key: &str) -> datahike::store::StoreResult<Option<Vec<u8>>> {
        let bytes = self.0.get(key)?;
        if key == datahike::store::log_key("db", 1) && self.1.swap(false, Ordering::SeqCst) {
            self.0.log_discard("db", 2)?;
        }
        Ok(bytes)
    }
    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> datahike::store::StoreResult<()> {
        self.0.put_batch(entries)
    }
    fn delete_batch(&self, keys: &[String]) -> datahike::store::StoreResult<()> {
        self.0.delete_batch(keys)
    }
    fn list(&self, prefix: &str) -> datahike::store::StoreResult<Vec<String>> {
        self.0.list(prefix)
    }
    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> datahike::store::StoreResult<bool> {
        self.0.compare_and_set(key, expected, new)
    }
    fn lock_writer(&self) -> datahike::store::StoreResult<datahike::store::WriterGuard> {
        self.0.lock_writer()
    }
    fn destroy(&self) -> datahike::store::StoreResult<()> {
        self.0.destroy()
    }
}

/// Regression: the default `log_read` skipped a record deleted between its listing and its
/// read but kept the records read before it, returning a log with a hole (1, 3, 4...), which
/// a catching-up reader took for a damaged log. A missing record was covered by a newer
/// head, as was everything before it: the read returns what follows it.
#[test]
fn the_default_log_read_racing_a_discard_returns_no_hole() {
    let store = DiscardWhileReading::default();
    for seq in 1..=5u64 {
        store.log_append("db", seq, format!("tx{seq}").as_bytes()).unwrap();
    }
    store.1.store(true, Ordering::SeqCst);
    let read: Vec<u64> = store.log_read("db", 0).unwrap().into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(read, vec![3, 4, 5]);
    assert_eq!(store.log_read("db", 0).unwrap().len(), 3);
}

/// A database runs on the plain store, handed over as a value (no backend registered).
#[test]
fn a_database_on_a_store_value() {
    let store: Arc<dyn Store> = Arc::new(PlainKv::default());
    let config = datahike::Config {
        schema_flexibility: datahike::SchemaFlexibility::Read,
        ..datahike::Config::with_store(store.clone())
    };
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    for i in 0..1500 {
        conn.transact(&datahike::edn::read_str(&format!("[{{:n {i}}}]")).unwrap()).unwrap();
    }
    conn.release().unwrap();
    let conn = datahike::connect(&config).unwrap();
    let n = datahike::q(
        &datahike::edn::read_str("[:find (count ?e) . :where [?e :n]]").unwrap(),
        &[datahike::QueryInput::from(conn.db())],
    )
    .unwrap();
    assert_eq!(n.to_string(), "1500");
    assert!(store.list("nodes/").unwrap().len() > 10, "index nodes are in the store");
    conn.release().unwrap();
}

/// The database conformance check on the file backend, the memory backend and a store value.
#[test]
fn database_conformance_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db").display().to_string();
    datahike::store::conformance::database(
        &datahike::Config::parse(&format!("{{:store {{:backend :file :path {path:?}}}}}")).unwrap(),
    );
}

#[test]
fn database_conformance_memory() {
    datahike::store::conformance::database(
        &datahike::Config::parse("{:store {:backend :memory :id \"conformance-db\"}}").unwrap(),
    );
}

#[test]
fn database_conformance_store_value() {
    datahike::store::conformance::database(&datahike::Config::with_store(Arc::new(PlainKv::default())));
}

/// A store that prefers batched reads, counting its round trips.
struct Batched {
    inner: PlainKv,
    single: AtomicU64,
    batches: AtomicU64,
}

impl Store for Batched {
    fn get(&self, key: &str) -> datahike::store::StoreResult<Option<Vec<u8>>> {
        self.single.fetch_add(1, Ordering::Relaxed);
        self.inner.get(key)
    }
    fn get_many(&self, keys: &[String]) -> datahike::store::StoreResult<Vec<Option<Vec<u8>>>> {
        self.batches.fetch_add(1, Ordering::Relaxed);
        keys.iter().map(|k| self.inner.get(k)).collect()
    }
    fn prefers_batched_reads(&self) -> bool {
        true
    }
    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> datahike::store::StoreResult<()> {
        self.inner.put_batch(entries)
    }
    fn stored_sizes(&self, keys: &[String]) -> datahike::store::StoreResult<Vec<Option<u64>>> {
        self.inner.stored_sizes(keys)
    }
    fn delete_batch(&self, keys: &[String]) -> datahike::store::StoreResult<()> {
        self.inner.delete_batch(keys)
    }
    fn list(&self, prefix: &str) -> datahike::store::StoreResult<Vec<String>> {
        self.inner.list(prefix)
    }
    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> datahike::store::StoreResult<bool> {
        self.inner.compare_and_set(key, expected, new)
    }
    fn lock_writer(&self) -> datahike::store::StoreResult<datahike::store::WriterGuard> {
        self.inner.lock_writer()
    }
    fn destroy(&self) -> datahike::store::StoreResult<()> {
        self.inner.destroy()
    }
}

/// On a store that prefers batched reads, a scan over many index nodes fetches them in
/// batches (one round trip per batch, not per node), and garbage collection marks level by
/// level in batches; the answers are the same.
#[test]
fn scans_and_collection_batch_their_reads_on_remote_stores() {
    let data = PlainKv::default();
    let writer_config = datahike::Config {
        schema_flexibility: datahike::SchemaFlexibility::Read,
        ..datahike::Config::with_store(Arc::new(data.clone()))
    };
    datahike::create_database(&writer_config).unwrap();
    let conn = datahike::connect(&writer_config).unwrap();
    let rows: Vec<String> = (0..20_000).map(|i| format!("{{:n {i} :s \"v{i}\"}}")).collect();
    conn.transact(&datahike::edn::read_str(&format!("[{}]", rows.join(" "))).unwrap()).unwrap();
    conn.release().unwrap();
    let nodes = data.list("nodes/").unwrap().len() as u64;
    assert!(nodes > 200, "{nodes} nodes");

    let batched = Arc::new(Batched { inner: data.clone(), single: AtomicU64::new(0), batches: AtomicU64::new(0) });
    let config = datahike::Config { store_cache_size: Some(100_000), ..datahike::Config::with_store(batched.clone()) };
    let conn = datahike::connect(&config).unwrap();
    let query = datahike::edn::read_str("[:find (count ?e) . :where [?e :n ?n] [?e :s ?s]]").unwrap();
    let before = batched.single.load(Ordering::Relaxed);
    let n = datahike::q(&query, &[datahike::QueryInput::from(conn.db())]).unwrap();
    assert_eq!(n.to_string(), "20000");
    let singles = batched.single.load(Ordering::Relaxed) - before;
    let batches = batched.batches.load(Ordering::Relaxed);
    assert!(batches > 0, "no batched read");
    eprintln!("{singles} single reads, {batches} batches, {nodes} nodes");
    assert!(singles * 4 < nodes, "{singles} single reads of {nodes} nodes ({batches} batches)");
    let report = conn.gc_storage(None).unwrap();
    assert!(report.kept_nodes > 0);
    conn.verify_storage().unwrap();
    conn.release().unwrap();
}
