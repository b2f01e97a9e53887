//! Fault injection: a workload of transactions, flushes, queries, reopens and garbage
//! collection runs through `FaultStore` over the memory store and over the file store (real
//! files in a temporary directory). First once, to number its store operations; then once per
//! operation with that operation failed, then torn (batches: a strict subset of the entries
//! applied, then an error), then applied-but-reported-failed (writes). Each run checks:
//! no panic; a failure is an error naming the injected fault; every successful step leaves
//! the connection's value equal to the model of the acknowledged transactions; once the
//! fault is lifted a transaction succeeds (on the same connection or a new one); and a fresh
//! store handle opens the database with exactly the acknowledged transactions, every node
//! reachable from the heads stored. `PowerLossStore` then cuts the power before every step
//! of the same workload and checks what a restart finds.
//!
//! The figures (faults injected, power cuts) are printed; run with `--nocapture` to see them.

mod fault_model;

use datahike::store::backend::open_store;
use datahike::store::fault::{Fault, FaultHandle, FaultStore, OpKind, PowerLossStore, Survivors};
use datahike::store::{FileStore, MemoryStore, OpenMode, Store};
use datahike::{Config, Conn, Error};
use fault_model::{facts, query_keys, Expect, Model, Tx, SCHEMA};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// One step of the workload.
#[derive(Clone, Debug)]
enum Step {
    Tx(Tx),
    Flush,
    Query,
    /// Release the connection and connect again (the node cache starts empty).
    Reopen,
    Gc,
}

fn workload() -> Vec<Step> {
    let up = |k: i64, name: &str, tags: &[i64]| Step::Tx(Tx::Upsert { k, name: name.into(), tags: tags.to_vec() });
    vec![
        up(1, "a", &[1, 2]),
        up(2, "b", &[3]),
        Step::Tx(Tx::Score { k: 1, score: 5 }),
        Step::Flush,
        Step::Tx(Tx::RetractTag { k: 1, tag: 1 }),
        up(3, "c", &[1]),
        Step::Tx(Tx::Score { k: 7, score: 1 }),
        Step::Reopen,
        Step::Query,
        Step::Tx(Tx::RetractEntity { k: 2 }),
        Step::Gc,
        up(4, "d", &[2, 4]),
        Step::Tx(Tx::Score { k: 4, score: 2 }),
        Step::Query,
    ]
}

/// The backends the suites run on: memory and file always, LMDB and SQLite (the other
/// durable local backends) when their features are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Memory,
    File,
    #[cfg(feature = "lmdb")]
    Lmdb,
    #[cfg(feature = "sqlite")]
    Sqlite,
}

impl Kind {
    fn of(file: bool) -> Kind {
        if file {
            Kind::File
        } else {
            Kind::Memory
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::File => "file",
            #[cfg(feature = "lmdb")]
            Kind::Lmdb => "lmdb",
            #[cfg(feature = "sqlite")]
            Kind::Sqlite => "sqlite",
        }
    }
}

/// Where the data lives: one memory store, or one directory opened by a new handle each time.
enum Backing {
    Memory(Arc<MemoryStore>),
    Dir(Kind, tempfile::TempDir),
}

impl Backing {
    fn new(file: bool) -> Backing {
        Backing::of(Kind::of(file))
    }

    fn of(kind: Kind) -> Backing {
        match kind {
            Kind::Memory => Backing::Memory(Arc::new(MemoryStore::new())),
            _ => Backing::Dir(kind, tempfile::tempdir().expect("tempdir")),
        }
    }

    /// A store handle on the data (for files a new `FileStore`, with nothing cached; LMDB
    /// and SQLite through the backend registry, as a config names them).
    fn handle(&self, create: bool) -> Arc<dyn Store> {
        match self {
            Backing::Memory(m) => m.clone(),
            Backing::Dir(Kind::File, dir) => {
                let path = dir.path().join("db");
                Arc::new(if create { FileStore::create(&path) } else { FileStore::open(&path) }.expect("file store"))
            }
            Backing::Dir(kind, dir) => {
                let path = dir.path().join("db").display().to_string();
                let store = match kind {
                    #[cfg(feature = "sqlite")]
                    Kind::Sqlite => format!(r#"{{:backend :jdbc :dbtype "sqlite" :dbname {path:?}}}"#),
                    _ => format!("{{:backend :{} :path {path:?}}}", kind.name()),
                };
                let mode = if create { OpenMode::Create } else { OpenMode::Open };
                open_store(&datahike::edn::read_str(&store).expect("store config"), mode)
                    .expect("store opens")
                    .expect("the store exists")
            }
        }
    }
}

fn config_of(store: Arc<dyn Store>) -> Config {
    let mut config = Config::with_store(store);
    // Small nodes: more of them, so flushes and collections write and delete several.
    config.branching_factor = 4;
    config.keep_history = true;
    config
}

/// Whether `e` is the clear error of an injected fault (or of a power loss).
fn names_fault(e: &Error) -> bool {
    let text = e.to_string();
    text.contains("injected fault") || text.contains("power is off")
}

/// What one run saw.
struct Run {
    /// Operations (or power steps) the workload took, after the setup.
    ops: u64,
    injected: u64,
}

/// Runs one step; `Err` is the step's error. Panics escape to the caller's `catch_unwind`.
fn step(conn: &mut Option<Conn>, config: &Config, model: &Model, s: &Step) -> Result<Option<Model>, Error> {
    if conn.is_none() {
        *conn = Some(datahike::connect(config)?);
    }
    let c = conn.as_ref().expect("connected above");
    match s {
        Step::Tx(tx) => {
            let expect = model.apply(tx);
            match (c.transact(&tx.edn()), expect) {
                (Ok(_), Expect::Accepted(next)) => Ok(Some(next)),
                (Ok(_), Expect::Refused) => panic!("{tx:?} accepted, but the model refuses it"),
                (Err(e), Expect::Refused) if !names_fault(&e) => Ok(None),
                (Err(e), _) => Err(e),
            }
        }
        Step::Flush => c.flush().map(|()| None),
        Step::Gc => c.gc_storage(None).map(|_| None),
        Step::Query => {
            let keys = query_keys(&c.db())?;
            assert_eq!(keys, model.0.keys().copied().collect(), "query answer differs from the model");
            Ok(None)
        }
        Step::Reopen => {
            let old = conn.take().expect("connected above");
            let released = old.release();
            *conn = Some(datahike::connect(config)?);
            released.map(|()| None)
        }
    }
}

/// Runs the workload over `store` (already holding a database with the schema): each step's
/// outcome checked against the model. A failure must name a fault. Returns the model of the
/// acknowledged transactions and the transaction in flight when a step failed (it may or may
/// not be durable after a power loss).
fn run_workload(config: &Config, label: &str, stop_on_error: bool) -> (Model, Option<Model>, Option<Conn>) {
    let mut model = Model::default();
    let mut conn: Option<Conn> = None;
    for (n, s) in workload().iter().enumerate() {
        let result = catch_unwind(AssertUnwindSafe(|| step(&mut conn, config, &model, s)));
        let result = result.unwrap_or_else(|_| panic!("{label}: step {n} ({s:?}) panicked"));
        match result {
            Ok(Some(next)) => model = next,
            Ok(None) => {}
            Err(e) => {
                if std::env::var_os("FAULT_DEBUG").is_some() {
                    eprintln!("{label}: step {n} {s:?} failed: {e}");
                }
                assert!(names_fault(&e), "{label}: step {n} ({s:?}) failed without naming the fault: {e}");
                if stop_on_error {
                    let in_flight = match s {
                        Step::Tx(tx) => match model.apply(tx) {
                            Expect::Accepted(next) => Some(next),
                            Expect::Refused => None,
                        },
                        _ => None,
                    };
                    return (model, in_flight, conn);
                }
            }
        }
        // Nothing half applied: the value the connection holds is the acknowledged one.
        if std::env::var_os("FAULT_DEBUG").is_some() {
            eprintln!("{label}: step {n} {s:?} -> model {:?}", model.0.keys().collect::<Vec<_>>());
        }
        if let Some(c) = &conn {
            // A read that meets a fault is an error naming it; reading again works (the
            // value is not damaged by a failed read).
            let mut read = facts(&c.db());
            for _ in 0..20 {
                match &read {
                    Err(e) if !stop_on_error && e.contains("injected fault") => read = facts(&c.db()),
                    _ => break,
                }
            }
            let seen = match read {
                Err(e) if stop_on_error && (e.contains("injected fault") || e.contains("power is off")) => {
                    return (model, None, conn);
                }
                other => other.unwrap_or_else(|e| panic!("{label}: after step {n} ({s:?}): {e}")),
            };
            assert_eq!(seen, model.facts(), "{label}: after step {n} ({s:?}) the value differs from the model");
        }
    }
    (model, None, conn)
}

/// A fresh database with the schema on `backing`, wrapped in a `FaultStore` seeded `seed`.
fn setup(backing: &Backing, seed: u64) -> (Config, FaultHandle) {
    let store = Arc::new(FaultStore::new(backing.handle(true), seed));
    let handle = store.handle();
    let config = config_of(store);
    datahike::create_database(&config).expect("create");
    let conn = datahike::connect(&config).expect("connect");
    conn.transact(&datahike::edn::read_str(SCHEMA).expect("schema")).expect("schema");
    conn.release().expect("release");
    (config, handle)
}

/// Opens the data with a new store handle and no faults: exactly `expected`, every reachable
/// node present; then one more transaction.
fn check_reopened(backing: &Backing, label: &str, expected: &[&Model]) {
    check_reopened_store(backing.handle(false), label, expected);
}

fn check_reopened_store(store: Arc<dyn Store>, label: &str, expected: &[&Model]) {
    let config = config_of(store);
    let conn = datahike::connect(&config).unwrap_or_else(|e| panic!("{label}: the database does not open: {e}"));
    let seen = facts(&conn.db()).unwrap_or_else(|e| panic!("{label}: reopened: {e}"));
    assert!(
        expected.iter().any(|m| m.facts() == seen),
        "{label}: reopened database holds {seen:?}, expected one of {:?}",
        expected.iter().map(|m| m.facts()).collect::<Vec<_>>()
    );
    conn.verify_storage().unwrap_or_else(|e| panic!("{label}: storage does not verify: {e}"));
    let tx = Tx::Upsert { k: 100, name: "after".into(), tags: vec![9] };
    conn.transact(&tx.edn()).unwrap_or_else(|e| panic!("{label}: no transaction after reopening: {e}"));
    conn.release().unwrap_or_else(|e| panic!("{label}: release after reopening: {e}"));
}

/// One run with `fault` at operation `at` of the workload (none: the counting run).
fn run_with_fault(kind: Kind, fault: Option<(u64, Fault)>, seed: u64) -> Run {
    let backing = Backing::of(kind);
    let (config, handle) = setup(&backing, seed);
    let start = handle.ops();
    let injected_before = handle.injected();
    if let Some((at, f)) = fault {
        handle.fault_op(start + at, f);
    }
    let label = format!("{} store, {fault:?}, seed {seed}", kind.name());
    let (model, _, conn) = run_workload(&config, &label, false);
    let ops = handle.ops() - start;
    handle.lift();
    // The connection stays usable once the fault is lifted, or refuses cleanly and a new one
    // works.
    let tx = Tx::Upsert { k: 50, name: "lifted".into(), tags: vec![] };
    let Expect::Accepted(model) = model.apply(&tx) else { unreachable!("an upsert is always accepted") };
    let conn = match conn.map(|c| (c.transact(&tx.edn()), c)) {
        Some((Ok(_), c)) => c,
        other => {
            if let Some((Err(e), c)) = other {
                assert!(names_fault(&e), "{label}: after the fault was lifted: {e}");
                let _ = c.release();
            }
            let c =
                datahike::connect(&config).unwrap_or_else(|e| panic!("{label}: no connection after the fault: {e}"));
            c.transact(&tx.edn()).unwrap_or_else(|e| panic!("{label}: no transaction after the fault: {e}"));
            c
        }
    };
    let seen = facts(&conn.db()).unwrap_or_else(|e| panic!("{label}: after the fault: {e}"));
    assert_eq!(seen, model.facts(), "{label}: after the fault was lifted");
    conn.release().unwrap_or_else(|e| panic!("{label}: release after the fault was lifted: {e}"));
    check_reopened(&backing, &label, &[&model]);
    Run { ops, injected: handle.injected() - injected_before }
}

/// Every operation failed, every batch torn, every write applied and reported failed.
fn sweep(kind: Kind) {
    let seed = 0x5eed;
    let backing = Backing::of(kind);
    let (config, handle) = setup(&backing, seed);
    handle.record();
    let skip = handle.trace().len();
    let _ = run_workload(&config, "counting run", false);
    let trace: Vec<_> = handle.trace().into_iter().skip(skip).collect();
    drop(backing);
    let base = run_with_fault(kind, None, seed);
    assert_eq!(base.ops, u64::try_from(trace.len()).unwrap_or(0), "the workload's operations are not deterministic");
    assert_eq!(base.injected, 0);
    let mut injected = 0;
    let mut runs = 0;
    for (at, op) in trace.iter().enumerate() {
        let at = u64::try_from(at).unwrap_or(0);
        let mut faults = vec![Fault::Fail];
        if op.entries > 1 {
            faults.push(Fault::Tear);
        }
        if op.kind.is_write() {
            faults.push(Fault::FailAfter);
        }
        for fault in faults {
            let run = run_with_fault(kind, Some((at, fault)), seed ^ at);
            assert_eq!(run.injected, 1, "operation {at} ({op:?}) was not reached with {fault:?}");
            injected += run.injected;
            runs += 1;
        }
    }
    let writes = trace.iter().filter(|op| op.kind.is_write()).count();
    println!(
        "fault sweep ({} store): {} operations ({writes} writes), {runs} runs, {injected} faults injected",
        kind.name(),
        trace.len()
    );
    assert!(injected > 0);
}

#[test]
fn every_operation_fails_once_on_the_memory_store() {
    sweep(Kind::Memory);
}

#[test]
fn every_operation_fails_once_on_the_file_store() {
    sweep(Kind::File);
}

#[cfg(feature = "lmdb")]
#[test]
fn every_operation_fails_once_on_the_lmdb_store() {
    sweep(Kind::Lmdb);
}

#[cfg(feature = "sqlite")]
#[test]
fn every_operation_fails_once_on_the_sqlite_store() {
    sweep(Kind::Sqlite);
}

/// Faults at random (seeded) on every kind of operation, several at once, delays and
/// reordered batches: the same checks, run after run.
#[test]
fn random_faults_on_both_stores() {
    let mut injected = 0;
    for seed in 0..12u64 {
        let file = seed % 2 == 1;
        let backing = Backing::new(file);
        let (config, handle) = setup(&backing, seed);
        handle.reorder_batches(true);
        handle.delay(Some(OpKind::LogAppend), std::time::Duration::from_micros(200));
        let fault = [Fault::Fail, Fault::Tear, Fault::FailAfter][usize::try_from(seed % 3).unwrap_or(0)];
        handle.fault_randomly(
            0.05,
            fault,
            &[
                OpKind::Get,
                OpKind::PutBatch,
                OpKind::DeleteBatch,
                OpKind::LogAppend,
                OpKind::CompareAndSet,
                OpKind::List,
            ],
        );
        let label = format!("random faults, seed {seed}, file {file}");
        let (model, _, conn) = run_workload(&config, &label, false);
        handle.lift();
        if let Some(c) = conn {
            let _ = c.release();
        }
        injected += handle.injected();
        check_reopened(&backing, &label, &[&model]);
    }
    println!("random faults: {injected} faults injected over 12 seeds");
    assert!(injected > 0);
}

/// A power cut before every step of the workload (each entry a write touches is a step),
/// keeping nothing of the operation in progress, then keeping a seeded subset of it: the
/// restarted store holds every acknowledged transaction and nothing half applied (the one in
/// flight may be there whole).
#[test]
fn power_loss_at_every_step() {
    let counting = Arc::new(PowerLossStore::new(1));
    let start = prepare_power(&counting);
    let _ = run_workload(&config_of(counting.clone()), "power counting run", false);
    let steps = counting.steps() - start;
    let mut cuts = 0;
    for survivors in [Survivors::None, Survivors::Some] {
        for at in 0..steps {
            let store = Arc::new(PowerLossStore::new(at));
            let start = prepare_power(&store);
            store.cut_at(start + at, survivors);
            let label = format!("power cut at step {at} of {steps} ({survivors:?})");
            let (model, in_flight, conn) = run_workload(&config_of(store.clone()), &label, true);
            assert!(store.is_off(), "{label}: the cut was not reached");
            if let Some(c) = conn {
                // The process is gone: its connection is dropped, not released.
                let _ = c.release();
            }
            let mut expected = vec![&model];
            expected.extend(in_flight.as_ref());
            check_reopened_store(Arc::new(store.restart(at)), &label, &expected);
            cuts += 1;
        }
    }
    println!("power loss: {steps} steps in the workload, {cuts} cuts, every acknowledged transaction kept");
    assert!(cuts > 0);
}

/// Creates the database with the schema on `store`; returns the steps that took.
fn prepare_power(store: &Arc<PowerLossStore>) -> u64 {
    let config = config_of(store.clone());
    datahike::create_database(&config).expect("create");
    let conn = datahike::connect(&config).expect("connect");
    conn.transact(&datahike::edn::read_str(SCHEMA).expect("schema")).expect("schema");
    conn.release().expect("release");
    store.steps()
}

/// Both stores keep the `Store` contract when no fault is planned: the conformance suite over
/// a `FaultStore` on a memory store, and over a `PowerLossStore`.
fn fault_store_subject() -> datahike::store::conformance::Subject {
    let memory = Arc::new(MemoryStore::new());
    let store = Arc::new(FaultStore::new(memory.clone(), 7));
    let handle = store.handle();
    datahike::store::conformance::Subject::new(store, move || {
        Arc::new(FaultStore::with_handle(memory.clone(), handle.clone()))
    })
}

fn power_loss_subject() -> datahike::store::conformance::Subject {
    let store = Arc::new(PowerLossStore::new(7));
    let other = store.handle();
    datahike::store::conformance::Subject::new(store, move || Arc::new(other.handle()))
}

mod conformance_fault_store {
    datahike::store_conformance_tests!(super::fault_store_subject);

    #[test]
    fn stored_sizes_reported() {
        datahike::store::conformance::stored_sizes_reported(&super::fault_store_subject());
    }
}

mod conformance_power_loss_store {
    datahike::store_conformance_tests!(super::power_loss_subject);

    #[test]
    fn stored_sizes_reported() {
        datahike::store::conformance::stored_sizes_reported(&super::power_loss_subject());
    }
}

/// A flush whose node batch is torn never leaves a commit record behind without its nodes
/// (found by the random faults after the merge of out-of-line values shifted their schedule:
/// the commit record went in the same batch as the nodes, and a torn batch could keep the
/// record but not all nodes; garbage collection then refused the store).
#[test]
fn a_torn_flush_never_leaves_a_commit_record_without_its_nodes() {
    for seed in 0..24 {
        let backing = Backing::new(seed % 2 == 1);
        let (config, handle) = setup(&backing, seed);
        let conn = datahike::connect(&config).expect("connect");
        for k in 0..6 {
            let tx = format!(r#"[{{:k {k} :name "n{k}" :tags [{k}]}}]"#);
            conn.transact(&datahike::edn::read_str(&tx).unwrap()).expect("transact");
        }
        let torn = conn.db().commit_id().expect("a commit");
        // The flush of `release` tears; the connection is gone, its unwritten nodes with it.
        // Shuffled, a torn batch keeps any subset of its entries, as the contract allows.
        handle.reorder_batches(true);
        handle.fault_randomly(1.0, Fault::Tear, &[OpKind::PutBatch]);
        let e = conn.release().expect_err("every batch tears");
        assert!(names_fault(&e), "seed {seed}: {e}");
        handle.lift();
        // A new connection replays the log, commits more (the torn commit becomes an ancestor
        // of the head, which the collector keeps with every node its record names, if it
        // has a record), flushes and collects.
        let conn = datahike::connect(&config).expect("connect again");
        for k in 6..8 {
            let tx = format!(r#"[{{:k {k} :name "n{k}" :tags [{k}]}}]"#);
            conn.transact(&datahike::edn::read_str(&tx).unwrap()).expect("transact");
        }
        conn.flush().unwrap_or_else(|e| panic!("seed {seed}: flushing again: {e}"));
        conn.gc_storage(None).unwrap_or_else(|e| panic!("seed {seed}: collecting after a torn flush: {e}"));
        conn.verify_storage().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        if let Some(db) = conn.commit_as_db(torn).unwrap_or_else(|e| panic!("seed {seed}: {e}")) {
            assert_eq!(db.commit_id(), Some(torn));
        }
        conn.release().expect("release");
    }
}
