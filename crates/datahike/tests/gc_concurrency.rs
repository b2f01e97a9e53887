//! Garbage collection while transactions, flushes, branch changes and readers run: for
//! random interleavings (seeded; `GC_SEEDS` sets how many), no collection may delete a node
//! that a branch head or a retained commit reaches, no reader of the current value may fail,
//! and the database after the run (also after reopening) is exactly the model's.

mod common;

use common::{edn, splitmix64};
use datahike::{q, BranchOrCommit, Config, Conn, Edn, Keyword, QueryInput};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

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
