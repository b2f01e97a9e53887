//! Several processes on one store, as in a deployment: two writer processes, a garbage
//! collector and three read-only readers run together for a bounded time. Afterwards no
//! acknowledged commit is lost, every reader saw consistent snapshots that advanced, and the
//! store verifies.
//!
//! The processes are this test binary itself, started with `DATAHIKE_MP_ROLE` naming the
//! role. The scenario runs on the file backend and on every other backend of the build that
//! processes can share (`common::backends`).

mod common;

use datahike::edn::read_str;
use datahike::{q, Config, Edn, QueryInput};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const ROLE: &str = "DATAHIKE_MP_ROLE";
const CONFIG: &str = "DATAHIKE_MP_CONFIG";
const OUT: &str = "DATAHIKE_MP_OUT";
const SECONDS: &str = "DATAHIKE_MP_SECONDS";

fn config_from_env() -> Config {
    Config::parse(&std::env::var(CONFIG).expect("config")).expect("config parses")
}

fn deadline() -> Instant {
    let secs: u64 = std::env::var(SECONDS).ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    Instant::now() + Duration::from_secs(secs)
}

fn query(db: &datahike::Db, text: &str) -> Edn {
    q(&read_str(text).unwrap(), &[QueryInput::from(db.clone())]).unwrap()
}

/// A writer: each transaction adds two entities that belong together; after it is
/// acknowledged, its number goes to the output file. It flushes every 25 transactions.
fn writer(id: &str) {
    let conn = datahike::connect(&config_from_env()).unwrap();
    let mut acks = std::fs::File::create(std::env::var(OUT).unwrap()).unwrap();
    let end = deadline();
    let mut n = 0u64;
    while Instant::now() < end {
        let tx = format!(r#"[{{:w "{id}" :i {n} :half "a"}} {{:w "{id}" :i {n} :half "b"}}]"#);
        conn.transact(&read_str(&tx).unwrap()).unwrap_or_else(|e| panic!("writer {id}, tx {n}: {e}"));
        writeln!(acks, "{n}").unwrap();
        n += 1;
        // Flushes far more often than the automatic every thousand transactions, so that
        // they race with the collector and the other writer's flushes.
        if n.is_multiple_of(25) {
            conn.flush().unwrap_or_else(|e| panic!("writer {id}, flush after tx {n}: {e}"));
        }
    }
    acks.sync_all().unwrap();
    conn.release().unwrap();
}

/// A collector: `gc-storage` again and again.
fn collector() {
    let conn = datahike::connect(&config_from_env()).unwrap();
    let end = deadline();
    let mut runs = 0;
    while Instant::now() < end {
        conn.gc_storage(None).unwrap_or_else(|e| panic!("gc-storage run {runs}: {e}"));
        runs += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(std::env::var(OUT).unwrap(), format!("{runs}")).unwrap();
    conn.release().unwrap();
}

/// A reader: the latest value again and again; every transaction's two entities are there
/// together or not at all, and the number of transactions never goes down.
fn reader() {
    let config = Config { read_only: true, ..config_from_env() };
    let conn = datahike::connect(&config).unwrap();
    let end = deadline();
    let (mut reads, mut first, mut last) = (0u64, None, 0i64);
    while Instant::now() < end {
        let db = conn.latest().unwrap_or_else(|e| panic!("reader, read {reads}: {e}"));
        let groups = query(&db, "[:find ?w ?i (count ?e) :where [?e :w ?w] [?e :i ?i]]");
        let Some(rows) = groups.as_seq() else { panic!("{groups}") };
        for row in rows {
            assert_eq!(row.as_seq().and_then(|r| r.get(2)), Some(&Edn::Int(2)), "a torn transaction: {row}");
        }
        let n = i64::try_from(rows.len()).unwrap();
        assert!(n >= last, "the reader went back from {last} to {n} transactions");
        first.get_or_insert(n);
        last = n;
        reads += 1;
    }
    std::fs::write(std::env::var(OUT).unwrap(), format!("{reads} {} {last}", first.unwrap_or(0))).unwrap();
    conn.release().unwrap();
}

/// The entry point of a child process; does nothing in the parent.
#[test]
fn role() {
    match std::env::var(ROLE).as_deref() {
        Ok("writer-1") => writer("1"),
        Ok("writer-2") => writer("2"),
        Ok("collector") => collector(),
        Ok("reader") => reader(),
        _ => {}
    }
}

fn spawn(role: &str, config: &str, out: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "role", "--nocapture", "--test-threads", "1"])
        .env(ROLE, role)
        .env(CONFIG, config)
        .env(OUT, out)
        .spawn()
        .unwrap()
}

#[test]
fn writers_collector_and_readers_on_one_store() {
    let (store, _dir) = common::backends::fresh_store("file", "mp");
    scenario(&store);
}

/// The same on every other backend of the build that several processes can share.
#[test]
fn writers_collector_and_readers_on_every_shared_backend() {
    for backend in common::backends::available() {
        // Memory stores are not shared between processes; the file backend has its own test.
        // The GCS and DynamoDB emulators answer a few dozen requests per second here, too
        // few for two writers and three readers in a bounded time (their backends' own
        // tests check several handles).
        if matches!(backend, "memory" | "file" | "gcs" | "dynamodb") {
            continue;
        }
        let (store, _dir) = common::backends::fresh_store(backend, "mp");
        eprintln!("multi-process on {backend}");
        scenario(&store);
    }
}

/// Two writers, a collector and three readers on the store `store` (EDN text).
fn scenario(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config_text = format!("{{:store {store} :schema-flexibility :read}}");
    let config = Config::parse(&config_text).unwrap();
    if datahike::database_exists(&config).unwrap() {
        datahike::delete_database(&config).unwrap();
    }
    datahike::create_database(&config).unwrap();
    let out = |name: &str| -> PathBuf { dir.path().join(name) };
    let roles = [
        ("writer-1", "w1"),
        ("writer-2", "w2"),
        ("collector", "gc"),
        ("reader", "r1"),
        ("reader", "r2"),
        ("reader", "r3"),
    ];
    let children: Vec<(&str, Child)> =
        roles.iter().map(|(role, file)| (*role, spawn(role, &config_text, &out(file)))).collect();
    for (role, mut child) in children {
        let status = child.wait().unwrap();
        assert!(status.success(), "the {role} process failed: {status}");
    }

    let conn = datahike::connect(&config).unwrap();
    let db = conn.db();
    let mut total = 0;
    for (id, file) in [("1", "w1"), ("2", "w2")] {
        let acked: BTreeSet<i64> =
            std::fs::read_to_string(out(file)).unwrap().lines().map(|l| l.parse().unwrap()).collect();
        assert!(acked.len() > 10, "writer {id} acknowledged only {} transactions", acked.len());
        let stored = query(&db, &format!(r#"[:find [?i ...] :where [?e :w "{id}"] [?e :i ?i] [?e :half "a"]]"#));
        let stored: BTreeSet<i64> = stored
            .as_seq()
            .unwrap()
            .iter()
            .map(|v| match v {
                Edn::Int(i) => *i,
                other => panic!("{other}"),
            })
            .collect();
        let lost: Vec<&i64> = acked.difference(&stored).collect();
        assert!(lost.is_empty(), "writer {id}: acknowledged transactions lost: {lost:?}");
        total += acked.len();
    }
    for file in ["r1", "r2", "r3"] {
        let report = std::fs::read_to_string(out(file)).unwrap();
        let nums: Vec<i64> = report.split(' ').map(|n| n.parse().unwrap()).collect();
        assert!(nums[0] > 1, "a reader read only {} times", nums[0]);
        assert!(nums[2] > nums[1], "a reader never saw new commits: {report}");
        assert!(usize::try_from(nums[2]).unwrap() <= total);
    }
    let runs: u64 = std::fs::read_to_string(out("gc")).unwrap().parse().unwrap();
    assert!(runs > 0);
    conn.verify_storage().unwrap();
    conn.release().unwrap();
    eprintln!("multi-process: {total} transactions acknowledged, {runs} collections, all there");
    datahike::delete_database(&config).unwrap();
}
