//! Deterministic simulation: a seeded simulator drives, from one thread, several writer and
//! reader connections on one shared store (a memory store, and a file store in a temporary
//! directory), each through its own store handle wrapped in a `FaultStore`: transactions
//! (upserts, card-one overwrites, card-many retractions, entity retractions), flushes,
//! garbage collection, branch create/merge/delete, reopens (a process restart: release, then
//! a new store handle and connection), held old snapshots and queries, with seeded faults
//! injected into some steps. `:db` always has two writers on two store handles, so their
//! flushes race each other's pack compaction on the file store.
//!
//! After every step it checks: each branch, read through a reader connection, holds exactly
//! the model's facts, in every index alike (EAVT, AEVT, AVET); every node reachable from the
//! heads is stored (`verify_storage`); every held snapshot still reads the same facts;
//! history only grows; nothing acknowledged is lost across a reopen.
//!
//! ```text
//! SIM_SEEDS=200 SIM_STEPS=1000 cargo test -p datahike --test simulation   # a longer run
//! SIM_SEED=17 SIM_STEPS=200 cargo test -p datahike --test simulation      # replay one seed
//! ```
//!
//! Defaults: 12 seeds of 150 steps on the memory store, 4 of 100 on the file store. A failure
//! prints its seed and step. **What is deterministic:** every choice of the simulator and of
//! the fault plan comes from the seed, and the steps run one at a time from one thread, so
//! the sequence of store operations replays exactly. Commit ids and database ids are random
//! UUIDs (as Datahike's), so keys and bytes differ between runs of one seed, never the
//! operations; the connection's log writer is a thread, but each transaction waits for its
//! append, and background flushes (every 1,000 transactions) do not start within the
//! default step counts.

mod fault_model;

use datahike::store::fault::{Fault, FaultHandle, FaultStore, OpKind};
use datahike::store::{FileStore, MemoryStore, Store};
use datahike::{BranchOrCommit, Config, Conn, Db, Keyword};
use fault_model::{facts, query_keys, Expect, Fact, Model, SplitMix64, Tx, SCHEMA};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// One history datom: (e, attribute, value, tx, added).
type Event = (i64, String, String, i64, bool);

struct Writer {
    branch: Keyword,
    conn: Option<Conn>,
}

struct Sim {
    rng: SplitMix64,
    file: Option<tempfile::TempDir>,
    memory: Arc<MemoryStore>,
    handle: FaultHandle,
    writers: Vec<Writer>,
    readers: BTreeMap<Keyword, Conn>,
    models: BTreeMap<Keyword, Model>,
    history: BTreeMap<Keyword, BTreeSet<Event>>,
    snapshots: Vec<(Keyword, Db, BTreeSet<Fact>)>,
    faults: u64,
}

impl Sim {
    /// A new store handle on the shared data, in a `FaultStore` on the shared plan.
    fn store(&self) -> Arc<dyn Store> {
        let inner: Arc<dyn Store> = match &self.file {
            Some(dir) => Arc::new(FileStore::open(dir.path().join("db")).expect("file store opens")),
            None => self.memory.clone(),
        };
        Arc::new(FaultStore::with_handle(inner, self.handle.clone()))
    }

    fn config(&self, branch: Keyword, read_only: bool) -> Config {
        let mut config = Config::with_store(self.store());
        config.branching_factor = 4;
        config.keep_history = true;
        config.branch = branch;
        config.read_only = read_only;
        config
    }

    fn new(seed: u64, file: bool) -> Sim {
        let file = file.then(|| tempfile::tempdir().expect("tempdir"));
        if let Some(dir) = &file {
            FileStore::create(dir.path().join("db")).expect("file store");
        }
        let handle = FaultHandle::new(seed);
        let mut sim = Sim {
            rng: SplitMix64::new(seed),
            file,
            memory: Arc::new(MemoryStore::new()),
            handle,
            writers: Vec::new(),
            readers: BTreeMap::new(),
            models: BTreeMap::new(),
            history: BTreeMap::new(),
            snapshots: Vec::new(),
            faults: 0,
        };
        let db = Keyword::new("db");
        let config = sim.config(db, false);
        datahike::create_database(&config).expect("create");
        let conn = datahike::connect(&config).expect("connect");
        conn.transact(&datahike::edn::read_str(SCHEMA).expect("schema")).expect("schema");
        sim.writers.push(Writer { branch: db, conn: Some(conn) });
        // A second writer of :db on its own store handle.
        sim.writers.push(Writer { branch: db, conn: None });
        sim.models.insert(db, Model::default());
        sim
    }

    fn writer(&mut self, i: usize) -> datahike::Result<Conn> {
        if let Some(c) = &self.writers[i].conn {
            return Ok(c.clone());
        }
        let conn = datahike::connect(&self.config(self.writers[i].branch, false))?;
        self.writers[i].conn = Some(conn.clone());
        Ok(conn)
    }

    fn reader(&mut self, branch: Keyword) -> datahike::Result<Conn> {
        if let Some(c) = self.readers.get(&branch) {
            return Ok(c.clone());
        }
        let conn = datahike::connect(&self.config(branch, true))?;
        self.readers.insert(branch, conn.clone());
        Ok(conn)
    }

    fn pick(&mut self, n: usize) -> usize {
        usize::try_from(self.rng.below(u64::try_from(n).unwrap_or(0))).unwrap_or(0)
    }

    /// One random step. Errors of steps with faults must name the fault.
    fn step(&mut self) -> String {
        let faulty = self.rng.chance(0.15);
        if faulty {
            let fault = if self.rng.chance(0.5) { Fault::Fail } else { Fault::Tear };
            let kinds = [
                OpKind::Get,
                OpKind::PutBatch,
                OpKind::DeleteBatch,
                OpKind::LogAppend,
                OpKind::CompareAndSet,
                OpKind::List,
                OpKind::LogRead,
            ];
            self.handle.fault_randomly(0.2, fault, &kinds);
        }
        let injected = self.handle.injected();
        let choice = self.rng.below(100);
        let w = self.pick(self.writers.len());
        let branch = self.writers[w].branch;
        let (what, result): (String, datahike::Result<()>) = match choice {
            0..=44 => {
                let tx = Tx::random(&mut self.rng, 6);
                let result = self.writer(w).and_then(|c| c.transact(&tx.edn()));
                let model = &self.models[&branch];
                let result = match (result, model.apply(&tx)) {
                    (Ok(_), Expect::Accepted(next)) => {
                        self.models.insert(branch, next);
                        Ok(())
                    }
                    (Ok(_), Expect::Refused) => panic!("{tx:?} accepted on :{branch:?}, the model refuses it"),
                    (Err(e), Expect::Refused) if !e.to_string().contains("injected fault") => Ok(()),
                    (Err(e), _) => Err(e),
                };
                (format!("writer {w} (:{}) transacts {tx:?}", branch.as_str()), result)
            }
            45..=56 => (format!("writer {w} flushes"), self.writer(w).and_then(|c| c.flush())),
            57..=60 => {
                (format!("writer {w} collects garbage"), self.writer(w).and_then(|c| c.gc_storage(None).map(|_| ())))
            }
            61..=64 if self.models.len() < 3 => {
                let new = Keyword::new(&format!("b{}", self.rng.below(1000)));
                let result = self.writer(w).and_then(|c| c.branch(&BranchOrCommit::Branch(branch), new));
                // Whether the head was written is what the store says (a torn step may fail
                // after it).
                self.handle.lift();
                if self.writer(0).and_then(|c| c.branches()).is_ok_and(|b| b.contains(&new)) {
                    let model = self.models[&branch].clone();
                    self.models.insert(new, model);
                    self.writers.push(Writer { branch: new, conn: None });
                }
                (format!("branch :{} from :{}", new.as_str(), branch.as_str()), result)
            }
            65..=68 if self.models.len() > 1 => {
                let other = *self.models.keys().find(|b| **b != branch).expect("two branches");
                let tx = Tx::Upsert {
                    k: i64::try_from(self.rng.below(6)).unwrap_or(0),
                    name: "merged".into(),
                    tags: vec![7],
                };
                let result = self.writer(w).and_then(|c| c.merge_db(&[BranchOrCommit::Branch(other)], &tx.edn(), None));
                if result.is_ok() {
                    if let Expect::Accepted(next) = self.models[&branch].apply(&tx) {
                        self.models.insert(branch, next);
                    }
                }
                (format!("merge :{} into :{}", other.as_str(), branch.as_str()), result.map(|_| ()))
            }
            69..=71 if branch.as_str() != "db" => {
                let result = self.writer(0).and_then(|c| c.delete_branch(branch));
                self.handle.lift();
                if self.writer(0).and_then(|c| c.branches()).is_ok_and(|b| !b.contains(&branch)) {
                    self.models.remove(&branch);
                    self.history.remove(&branch);
                    self.snapshots.retain(|(b, _, _)| *b != branch);
                    if let Some(r) = self.readers.remove(&branch) {
                        let _ = r.release();
                    }
                    for writer in self.writers.iter().filter(|x| x.branch == branch) {
                        if let Some(c) = &writer.conn {
                            let _ = c.release();
                        }
                    }
                    self.writers.retain(|x| x.branch != branch);
                }
                (format!("delete branch :{}", branch.as_str()), result)
            }
            72..=81 => {
                // A process restart: the connection goes, a new store handle comes.
                let result = match self.writers[w].conn.take() {
                    Some(c) => c.release(),
                    None => Ok(()),
                };
                let result = result.and_then(|()| self.writer(w).map(|_| ()));
                (format!("writer {w} reopens"), result)
            }
            82..=89 => {
                let result = self.reader(branch).and_then(|r| r.latest()).and_then(|db| {
                    let f = facts(&db).map_err(|e| {
                        assert!(e.contains("injected fault"), "reading a snapshot: {e}");
                        datahike::Error::Database(e)
                    })?;
                    self.snapshots.push((branch, db, f));
                    if self.snapshots.len() > 8 {
                        self.snapshots.remove(0);
                    }
                    Ok(())
                });
                (format!("hold a snapshot of :{}", branch.as_str()), result)
            }
            _ => {
                let result = self.reader(branch).and_then(|r| r.latest()).and_then(|db| query_keys(&db)).map(|keys| {
                    assert_eq!(keys, self.models[&branch].0.keys().copied().collect(), "query answer");
                });
                (format!("query :{}", branch.as_str()), result)
            }
        };
        self.handle.lift();
        let fired = self.handle.injected() - injected;
        self.faults += fired;
        if let Err(e) = result {
            assert!(
                fired > 0 && e.to_string().contains("injected fault"),
                "{what} failed without an injected fault: {e}"
            );
            // A failed release (a flush met the fault) closes the connection anyway.
        }
        what
    }

    /// Every invariant, with faults lifted.
    fn check(&mut self) {
        let branches: Vec<Keyword> = self.models.keys().copied().collect();
        for branch in branches {
            let db = self.reader(branch).and_then(|r| r.latest()).expect("a reader reads the latest value");
            let seen = facts(&db).unwrap_or_else(|e| panic!(":{}: {e}", branch.as_str()));
            assert_eq!(seen, self.models[&branch].facts(), ":{} differs from the model", branch.as_str());
            let events: BTreeSet<Event> = db
                .history()
                .and_then(|h| h.datoms(datahike::IndexOrder::Eavt, &[]))
                .expect("history reads")
                .into_iter()
                .map(|d| (d.e, d.a.as_str().to_owned(), format!("{:?}", d.v), d.tx(), d.added()))
                .collect();
            if let Some(before) = self.history.get(&branch) {
                assert!(before.is_subset(&events), ":{}: history lost events", branch.as_str());
            }
            self.history.insert(branch, events);
        }
        for (branch, db, held) in &self.snapshots {
            let now = facts(db).unwrap_or_else(|e| panic!("snapshot of :{}: {e}", branch.as_str()));
            assert_eq!(&now, held, "a held snapshot of :{} changed", branch.as_str());
        }
        let conn = self.writer(0).expect("writer 0 connects without faults");
        conn.verify_storage().expect("every node reachable from the heads is stored");
    }

    fn close(mut self) {
        for writer in self.writers.drain(..) {
            if let Some(c) = writer.conn {
                c.release().expect("release without faults");
            }
        }
        for (_, r) in std::mem::take(&mut self.readers) {
            let _ = r.release();
        }
    }
}

/// Runs seed `seed` for `steps` steps; on failure prints how to replay it.
fn run(seed: u64, steps: u64, file: bool) -> u64 {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut sim = Sim::new(seed, file);
        let mut last = String::new();
        for n in 0..steps {
            let step = catch_unwind(AssertUnwindSafe(|| {
                last = sim.step();
                sim.check();
            }));
            if let Err(panic) = step {
                eprintln!(
                    "simulation failed: seed {seed}, step {n} ({last}), file store {file}; replay with SIM_SEED={seed} SIM_STEPS={} SIM_FILE={} cargo test -p datahike --test simulation",
                    n + 1,
                    u8::from(file)
                );
                std::panic::resume_unwind(panic);
            }
        }
        let faults = sim.faults;
        sim.close();
        faults
    }));
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn seeds(default: u64) -> Vec<u64> {
    match env_u64("SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..env_u64("SIM_SEEDS").unwrap_or(default)).collect(),
    }
}

#[test]
fn simulate_on_the_memory_store() {
    if env_u64("SIM_FILE") == Some(1) {
        return;
    }
    let steps = env_u64("SIM_STEPS").unwrap_or(150);
    let seeds = seeds(12);
    let faults: u64 = seeds.iter().map(|seed| run(*seed, steps, false)).sum();
    println!(
        "simulation (memory store): {} seeds x {steps} steps = {} steps, {faults} faults injected",
        seeds.len(),
        seeds.len() as u64 * steps
    );
}

#[test]
fn simulate_on_the_file_store() {
    if env_u64("SIM_FILE") == Some(0) {
        return;
    }
    let steps = env_u64("SIM_STEPS").unwrap_or(100);
    let seeds = seeds(4);
    let faults: u64 = seeds.iter().map(|seed| run(*seed, steps, true)).sum();
    println!(
        "simulation (file store): {} seeds x {steps} steps = {} steps, {faults} faults injected",
        seeds.len(),
        seeds.len() as u64 * steps
    );
}

/// Found by the simulation (seed 0, step 72): with two writers of `:db` on two store handles
/// (two processes, in effect), `branch` and `branch_as_db` through the writer that did not
/// commit last took its own, stale value of `:db` instead of the branch's latest commit.
#[test]
fn regression_branch_from_a_writer_behind_another_takes_the_latest_commit() {
    for file in [false, true] {
        let sim = Sim::new(99, file);
        let db = Keyword::new("db");
        let a = sim.writers[0].conn.clone().expect("writer 0");
        let b = datahike::connect(&sim.config(db, false)).expect("writer 1");
        a.transact(&Tx::Upsert { k: 1, name: "a".into(), tags: vec![1] }.edn()).expect("tx a");
        b.transact(&Tx::Score { k: 1, score: 3 }.edn()).expect("tx b");
        let latest = facts(&b.db()).expect("facts");
        assert!(latest.contains(&(1, "score", "3".into())));
        let seen = a.branch_as_db(db).expect("branch-as-db").expect(":db exists");
        assert_eq!(facts(&seen).expect("facts"), latest, "branch_as_db(:db) through the other writer (file {file})");
        let feature = Keyword::new("feature");
        a.branch(&BranchOrCommit::Branch(db), feature).expect("branch");
        let branched = a.branch_as_db(feature).expect("branch-as-db").expect(":feature exists");
        assert_eq!(facts(&branched).expect("facts"), latest, ":feature starts at the latest :db (file {file})");
        b.release().expect("release b");
        sim.close();
    }
}
