//! Garbage collection while transactions, flushes, branch changes and readers run: for
//! random interleavings (seeded; `GC_SEEDS` sets how many), no collection may delete a node
//! that a branch head or a retained commit reaches, no reader of the current value may fail,
//! and the database after the run (also after reopening) is exactly the model's. Then
//! interleavings driven by hand, from one thread, through store handles that run a hook
//! between two operations: a flush that loses its head swap while a collection runs, and a
//! reader that catches up while one runs.

mod common;

use common::{edn, splitmix64};
use datahike::store::{AppendFailure, ByteRange, MemoryStore, Store, StoreResult, WriterGuard};
use datahike::{q, BranchOrCommit, Config, Conn, Edn, Keyword, QueryInput};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn config(file: Option<&std::path::Path>) -> Config {
    let store = match file {
        Some(dir) => format!("{{:backend :file :path {:?}}}", dir.join("db").display().to_string()),
        None => {
            let id = format!("gc-conc-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
            format!("{{:backend :memory :id {id:?}}}")
        }
    };
    Config::parse(&format!("{{:store {store} :schema-flexibility :read}}")).unwrap()
}

fn ages(conn: &Conn) -> BTreeMap<i64, i64> {
    let rows = q(&edn("[:find ?e ?a :where [?e :age ?a]]"), &[QueryInput::Db(conn.db())]).unwrap();
    let Edn::Set(rows) = &rows else { panic!("not a set: {rows}") };
    rows.iter()
        .map(|r| match r.as_seq() {
            Some([Edn::Int(e), Edn::Int(a)]) => (*e, *a),
            _ => panic!("bad row {r}"),
        })
        .collect()
}

fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn run(seed: u64, file: bool) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(file.then(|| dir.path()));
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    let done = Arc::new(AtomicBool::new(false));

    let writer = {
        let conn = conn.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut rng = seed;
            let mut model: BTreeMap<i64, i64> = BTreeMap::new();
            let mut branches = 0;
            for i in 0..120 {
                let r = splitmix64(&mut rng);
                let ids: Vec<i64> = model.keys().copied().collect();
                match r % 10 {
                    0..=4 => {
                        let report =
                            conn.transact(&edn(&format!(r#"[{{:db/id "n" :name "p{i}" :age {}}}]"#, r % 90))).unwrap();
                        let e = report.tempids.iter().find(|(k, _)| *k == Edn::Str("n".into())).unwrap().1;
                        model.insert(e, (r % 90) as i64);
                    }
                    5..=6 if !ids.is_empty() => {
                        let e = ids[(r as usize / 10) % ids.len()];
                        let age = (r >> 20) as i64 % 90;
                        conn.transact(&edn(&format!("[[:db/add {e} :age {age}]]"))).unwrap();
                        model.insert(e, age);
                    }
                    7 if !ids.is_empty() => {
                        let e = ids[(r as usize / 10) % ids.len()];
                        conn.transact(&edn(&format!("[[:db/retractEntity {e}]]"))).unwrap();
                        model.remove(&e);
                    }
                    // A second collector, in the writing thread.
                    8 if r.is_multiple_of(3) => {
                        let cutoff = if r.is_multiple_of(2) { None } else { Some(now_millis() - (r % 40) as i64) };
                        conn.gc_storage(cutoff).unwrap();
                        conn.verify_storage()
                            .unwrap_or_else(|e| panic!("seed {seed} step {i}: inline gc {cutoff:?}: {e}"));
                    }
                    8 => conn.flush().unwrap(),
                    _ => {
                        // A branch made and, every other time, deleted again.
                        let name = Keyword::new(&format!("b{branches}"));
                        if branches % 2 == 0 {
                            conn.branch(&BranchOrCommit::Branch(Keyword::new("db")), name).unwrap();
                        } else {
                            conn.delete_branch(Keyword::new(&format!("b{}", branches - 1))).unwrap();
                        }
                        branches += 1;
                    }
                }
            }
            done.store(true, Ordering::SeqCst);
            model
        })
    };
    let collector = {
        let conn = conn.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut rng = seed ^ 0x5555;
            let mut runs = 0;
            while !done.load(Ordering::SeqCst) || runs < 2 {
                let cutoff = match splitmix64(&mut rng) % 3 {
                    0 => None,
                    1 => Some(now_millis()),
                    _ => Some(now_millis() - (splitmix64(&mut rng) % 50) as i64),
                };
                conn.gc_storage(cutoff).unwrap_or_else(|e| panic!("seed {seed}: gc {cutoff:?}: {e}"));
                if let Err(e) = conn.verify_storage() {
                    let heads: Vec<String> = conn
                        .branches()
                        .unwrap()
                        .into_iter()
                        .map(|b| {
                            let db = conn.branch_as_db(b).unwrap().unwrap();
                            format!("{b}: {:?} tx {} parents {:?}", db.commit_id(), db.max_tx(), db.parent_commit_ids())
                        })
                        .collect();
                    panic!("seed {seed}: after gc {cutoff:?}: {e}\nheads: {heads:#?}");
                }
                runs += 1;
            }
            runs
        })
    };
    let reader = {
        let conn = conn.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                let db = conn.db();
                let n = db.datoms(datahike::IndexOrder::Aevt, &[]).unwrap().len();
                let again = db.datoms(datahike::IndexOrder::Eavt, &[]).unwrap().len();
                assert_eq!(n, again, "seed {seed}: one value, two indices");
            }
        })
    };
    let model = writer.join().unwrap();
    let runs = collector.join().unwrap();
    reader.join().unwrap();
    assert!(runs >= 2);
    assert_eq!(ages(&conn), model, "seed {seed}");
    conn.gc_storage(Some(now_millis())).unwrap();
    conn.verify_storage().unwrap();
    conn.release().unwrap();
    let conn = datahike::connect(&config).unwrap();
    assert_eq!(ages(&conn), model, "seed {seed}: after reopen");
    conn.release().unwrap();
}

fn seeds() -> u64 {
    std::env::var("GC_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(6)
}

#[test]
fn gc_under_concurrent_transactions_file() {
    for seed in 0..seeds() {
        run(seed * 7919 + 1, true);
    }
}

#[test]
fn gc_under_concurrent_transactions_memory() {
    for seed in 0..seeds() {
        run(seed * 104_729 + 3, false);
    }
}

/// Where a [`Hooked`] store handle runs its hook.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    /// After a `put_batch` holding index nodes (a flush wrote its nodes).
    NodesWritten,
    /// After a `list` of this prefix.
    Listed(&'static str),
    /// After a `log_read` (a catch-up has the records it is about to apply).
    LogRead,
}

/// What other handles do at that point.
type Hook = Box<dyn FnOnce() + Send>;

/// A handle on a shared memory store that runs a hook once, at a chosen point of the
/// operations going through it: what other handles do in between, driven from one thread.
struct Hooked {
    inner: MemoryStore,
    hook: Mutex<Option<(At, Hook)>>,
}

impl Hooked {
    fn new(inner: MemoryStore) -> Arc<Hooked> {
        Arc::new(Hooked { inner, hook: Mutex::new(None) })
    }

    fn arm(&self, at: At, hook: impl FnOnce() + Send + 'static) {
        *self.hook.lock().unwrap() = Some((at, Box::new(hook)));
    }

    fn fire(&self, at: At) {
        let hook = {
            let mut slot = self.hook.lock().unwrap();
            if slot.as_ref().is_some_and(|(armed, _)| *armed == at) {
                slot.take()
            } else {
                None
            }
        };
        if let Some((_, hook)) = hook {
            hook();
        }
    }

    fn is_armed(&self) -> bool {
        self.hook.lock().unwrap().is_some()
    }
}

impl Store for Hooked {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        self.inner.put_batch(entries)?;
        if entries.iter().any(|(key, _)| key.starts_with("nodes/")) {
            self.fire(At::NodesWritten);
        }
        Ok(())
    }
    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        self.inner.delete_batch(keys)
    }
    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let keys = self.inner.list(prefix)?;
        if let Some(at) = ["nodes/", "values/", "commits/", "packs/", "heads/"].into_iter().find(|p| *p == prefix) {
            self.fire(At::Listed(at));
        }
        Ok(keys)
    }
    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        self.inner.compare_and_set(key, expected, new)
    }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> StoreResult<bool> {
        self.inner.put_if_absent(key, bytes)
    }
    fn get_range(&self, key: &str, range: ByteRange) -> StoreResult<Option<Vec<u8>>> {
        self.inner.get_range(key, range)
    }
    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        self.inner.get_many(keys)
    }
    fn log_append(&self, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
        self.inner.log_append(log, seq, record)
    }
    fn log_append_many(&self, log: &str, records: &[(u64, &[u8])]) -> Result<(), AppendFailure> {
        self.inner.log_append_many(log, records)
    }
    fn log_read(&self, log: &str, after: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let records = self.inner.log_read(log, after)?;
        self.fire(At::LogRead);
        Ok(records)
    }
    fn log_discard(&self, log: &str, through: u64) -> StoreResult<()> {
        self.inner.log_discard(log, through)
    }
    fn log_discard_all(&self, log: &str, through: u64) -> StoreResult<()> {
        self.inner.log_discard_all(log, through)
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

/// A connection of its own (one handle each) on `memory`, or through `hooked`.
fn handle(memory: &MemoryStore, hooked: Option<&Arc<Hooked>>, read_only: bool) -> Conn {
    let store: Arc<dyn Store> = match hooked {
        Some(h) => h.clone(),
        None => Arc::new(memory.clone()),
    };
    let config = Config {
        schema_flexibility: datahike::SchemaFlexibility::Read,
        read_only,
        branching_factor: 4,
        ..Config::with_store(store)
    };
    datahike::connect(&config).unwrap()
}

fn create(memory: &MemoryStore) {
    let store: Arc<dyn Store> = Arc::new(memory.clone());
    let config = Config {
        schema_flexibility: datahike::SchemaFlexibility::Read,
        branching_factor: 4,
        ..Config::with_store(store)
    };
    datahike::create_database(&config).unwrap();
}

fn add_names(conn: &Conn, names: std::ops::Range<usize>) {
    for i in names {
        conn.transact(&edn(&format!(r#"[{{:name "n{i}" :i {i}}}]"#))).unwrap();
    }
}

fn count_names(db: datahike::Db) -> usize {
    let rows = q(&edn("[:find ?n :where [_ :name ?n]]"), &[QueryInput::Db(db)]).unwrap();
    let Edn::Set(rows) = &rows else { panic!("not a set: {rows}") };
    rows.len()
}

/// Regression (seen in `multi_process.rs` on SQLite, where a flush waiting for the database's
/// write lock stays long between its writes): writer A flushes commit c, writing its nodes;
/// meanwhile writer B commits after c and publishes a newer head, and a collection sweeps
/// A's nodes, which no head and no commit record named yet. A's flush then loses the head
/// swap, as it should, but it wrote `commits/<c>` after that sweep: a record of a retained
/// commit (B's pack holds c) naming nodes that are gone, on which every later collection and
/// `verify_storage` failed. A commit record is now written only under the writer lock, after
/// the check that no collection ran since its nodes were written, and only by the flush that
/// publishes it.
#[test]
fn a_flush_that_loses_the_head_swap_leaves_no_record_naming_swept_nodes() {
    let memory = MemoryStore::new();
    create(&memory);
    let a_store = Hooked::new(memory.clone());
    let a = handle(&memory, Some(&a_store), false);
    let b = handle(&memory, None, false);
    let collector = handle(&memory, None, false);
    let reader = handle(&memory, None, true);
    add_names(&a, 0..5);
    let (b_hook, collector_hook) = (b.clone(), collector.clone());
    a_store.arm(At::NodesWritten, move || {
        add_names(&b_hook, 5..6);
        b_hook.flush().unwrap();
        let report = collector_hook.gc_storage(None).unwrap();
        assert!(report.deleted.iter().any(|k| k.starts_with("nodes/")), "A's nodes are swept: {report:?}");
    });
    a.flush().unwrap();
    assert!(!a_store.is_armed());
    collector.verify_storage().unwrap();
    collector.gc_storage(None).unwrap();
    collector.verify_storage().unwrap();
    assert_eq!(count_names(reader.latest().unwrap()), 6);
    // A goes on from B's head.
    add_names(&a, 6..7);
    a.flush().unwrap();
    collector.gc_storage(None).unwrap();
    collector.verify_storage().unwrap();
    assert_eq!(count_names(reader.latest().unwrap()), 7);
    for conn in [a, b, collector, reader] {
        conn.release().unwrap();
    }
}

/// Regression (the failure `multi_process.rs` showed on SQLite: a reader's `latest()` found
/// an index node missing): a reader catches up from the head it holds, reading the log;
/// meanwhile a collection lists the store, then a writer publishes a newer head, then the
/// collection marks from that head. Its commit record and pack came after the listing, so
/// the walk through parents stopped at it and no older commit was retained: the sweep
/// deleted every older snapshot, with the nodes of the reader's head that the records it
/// replays touch. A collection now reads the records and packs written since its listing
/// under the writer lock, before it decides what is retained.
#[test]
fn a_reader_catching_up_during_a_collection_keeps_the_nodes_of_its_head() {
    let memory = MemoryStore::new();
    create(&memory);
    let writer = handle(&memory, None, false);
    add_names(&writer, 0..40);
    writer.flush().unwrap();
    let reader_store = Hooked::new(memory.clone());
    let reader = handle(&memory, Some(&reader_store), true);
    let held = reader.latest().unwrap();
    let held_commit = held.commit_id().unwrap();
    add_names(&writer, 40..45);
    let collector_store = Hooked::new(memory.clone());
    let collector = handle(&memory, Some(&collector_store), false);
    let writer_hook = writer.clone();
    collector_store.arm(At::Listed("packs/"), move || {
        add_names(&writer_hook, 45..46);
        writer_hook.flush().unwrap();
    });
    let collector_hook = collector.clone();
    reader_store.arm(At::LogRead, move || {
        collector_hook.gc_storage(None).unwrap();
    });
    let db = reader.latest().unwrap_or_else(|e| panic!("the reader's catch-up: {e}"));
    assert!(!reader_store.is_armed() && !collector_store.is_armed());
    assert_eq!(count_names(db), 45);
    assert_eq!(count_names(held), 40, "a value the reader held");
    assert_eq!(count_names(reader.latest().unwrap()), 46);
    let old = collector.commit_as_db(held_commit).unwrap().expect("the reader's head is a retained commit");
    assert_eq!(count_names(old), 40);
    collector.verify_storage().unwrap();
    for conn in [writer, collector, reader] {
        conn.release().unwrap();
    }
}
