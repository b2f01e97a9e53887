//! Crash safety on the real file system: a child process transacts in a loop and reports each
//! acknowledged transaction; the parent kills it with SIGKILL at a random instant, reopens the
//! store and checks that every acknowledged transaction is there and nothing is half applied.
//! Repeated many times, with index flushes happening inside the runs.

use datahike::{edn::read_str, Config, Edn, IndexOrder};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "DATAHIKE_CRASH_CHILD_DIR";

fn config(dir: &std::path::Path) -> Config {
    Config::parse(&format!(
        "{{:store {{:backend :file :path {:?}}} :index-config {{:branching-factor 8}}}}",
        dir.display().to_string()
    ))
    .unwrap()
}

const SCHEMA: &str = r#"[{:db/ident :k :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
                         {:db/ident :v :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
                         {:db/ident :tags :db/valueType :db.type/long :db/cardinality :db.cardinality/many}]"#;

/// The child: transacts forever, printing `ACK <k>` after each transaction returned.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let config = config(std::path::Path::new(&dir));
    let conn = datahike::connect(&config).unwrap();
    let start = conn.db().datoms(IndexOrder::Aevt, &[Edn::kw("k")]).unwrap().len() as i64;
    let mut out = std::io::stdout();
    for k in start.. {
        // Each transaction writes three attributes of one entity and retracts tag k of the
        // previous one, so a half-applied transaction would be visible.
        let tx = format!(
            r#"[{{:k {k} :v "value-{k}" :tags [{k} {}]}} [:db/retract [:k {}] :tags {}]]"#,
            k + 1,
            (k - 1).max(0),
            k
        );
        let tx = if k == 0 { r#"[{:k 0 :v "value-0" :tags [0 1]}]"#.to_string() } else { tx };
        conn.transact(&read_str(&tx).unwrap()).unwrap();
        use std::io::Write;
        writeln!(out, "ACK {k}").unwrap();
        out.flush().unwrap();
    }
}

/// Runs the child test `test` of this binary with `env=value`, its stdout piped.
fn spawn_child(exe: &std::path::Path, test: &str, env: &str, value: &str) -> std::process::Child {
    Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(env, value)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A database with `schema` in `parent/db`; its directory.
fn fresh_db(parent: &std::path::Path, schema: &str) -> std::path::PathBuf {
    let dir = parent.join("db");
    datahike::create_database(&config(&dir)).unwrap();
    let conn = datahike::connect(&config(&dir)).unwrap();
    conn.transact(&read_str(schema).unwrap()).unwrap();
    conn.release().unwrap();
    dir
}

fn check_store(dir: &std::path::Path, acked: i64) {
    let config = config(dir);
    let conn = datahike::connect(&config).expect("store opens after a crash");
    let db = conn.db();
    let ks = db.datoms(IndexOrder::Aevt, &[Edn::kw("k")]).unwrap();
    let n = ks.len() as i64;
    assert!(n > acked, "acknowledged up to k={acked}, but only {n} entities are present");
    for d in &ks {
        let k = d.v.as_long().unwrap();
        let vs = db.datoms(IndexOrder::Eavt, &[Edn::Int(d.e), Edn::kw("v")]).unwrap();
        assert_eq!(vs.len(), 1, "entity k={k} lacks :v: half-applied transaction");
        let tags: Vec<i64> = db
            .datoms(IndexOrder::Eavt, &[Edn::Int(d.e), Edn::kw("tags")])
            .unwrap()
            .iter()
            .map(|d| d.v.as_long().unwrap())
            .collect();
        // Entity k is created with tags k and k+1; transaction k+1 retracts its tag k+1.
        assert!(tags.contains(&k), "entity k={k} lost tag {k}: {tags:?}");
        let retracted_by_next = k + 1 < n;
        assert_eq!(tags.contains(&(k + 1)), !retracted_by_next, "entity k={k} tags {tags:?} with {n} entities");
    }
    // AEVT and AVET agree with EAVT.
    let avet = db.datoms(IndexOrder::Avet, &[Edn::kw("k")]).unwrap();
    assert_eq!(avet.len(), ks.len());
    conn.release().unwrap();
}

#[test]
fn sigkill_at_random_instants_loses_no_acknowledged_transaction() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_db(tmp.path(), SCHEMA);
    let exe = std::env::current_exe().unwrap();
    let runs: u64 = std::env::var("DATAHIKE_CRASH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(25);
    let mut seed: u64 = std::env::var("DATAHIKE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("crash test seed {seed} (set DATAHIKE_CRASH_SEED to replay)");
    let mut total_acked = -1i64;
    for run in 0..runs {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let kill_after = Duration::from_millis(20 + (seed >> 33) % 400);
        let mut child = spawn_child(&exe, "crash_child", CHILD_ENV, &dir.display().to_string());
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = -1i64;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(k) = line.strip_prefix("ACK ") {
                    last = k.trim().parse().unwrap();
                }
            }
            last
        });
        let started = Instant::now();
        while started.elapsed() < kill_after {
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        total_acked = total_acked.max(acked);
        check_store(&dir, total_acked);
        eprintln!("run {run}: killed after {kill_after:?}, acknowledged up to {acked}");
    }
    assert!(total_acked > 0, "the child never acknowledged a transaction");
}

const GROUP_CHILD_ENV: &str = "DATAHIKE_CRASH_GROUP_CHILD";

const GROUP_SCHEMA: &str = r#"[{:db/ident :gk :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
                               {:db/ident :half :db/valueType :db.type/string :db/cardinality :db.cardinality/one}]"#;

/// The child of the group-commit crash test: four threads transact on one connection (so
/// their records share syncs), each printing `ACK <key>` after a transaction returned. Each
/// transaction writes two entities, `<key>-a` and `<key>-b`.
#[test]
fn crash_group_child() {
    let Ok(spec) = std::env::var(GROUP_CHILD_ENV) else { return };
    let (dir, run) = spec.split_once('|').unwrap();
    let conn = datahike::connect(&config(std::path::Path::new(dir))).unwrap();
    let out = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (conn, out) = (conn.clone(), &out);
            scope.spawn(move || {
                for n in 0.. {
                    let key = format!("r{run}-t{t}-{n}");
                    let tx = format!(r#"[{{:gk "{key}-a" :half "a"}} {{:gk "{key}-b" :half "b"}}]"#);
                    conn.transact(&read_str(&tx).unwrap()).unwrap();
                    use std::io::Write;
                    let mut out = out.lock().unwrap();
                    writeln!(out, "ACK {key}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

/// Crash safety with group commit: several threads commit through shared syncs when the
/// process is killed; every acknowledged transaction is there after reopening, and every
/// transaction is whole or absent.
#[test]
fn sigkill_during_group_commits_loses_no_acknowledged_transaction() {
    if std::env::var(GROUP_CHILD_ENV).is_ok() || std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_db(tmp.path(), GROUP_SCHEMA);
    let exe = std::env::current_exe().unwrap();
    let mut seed: u64 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("group crash test seed {seed}");
    let mut acked_total = Vec::new();
    for run in 0..10 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let kill_after = Duration::from_millis(50 + (seed >> 33) % 300);
        let mut child = spawn_child(&exe, "crash_group_child", GROUP_CHILD_ENV, &format!("{}|{run}", dir.display()));
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|line| line.strip_prefix("ACK ").map(str::to_owned))
                .collect::<Vec<String>>()
        });
        std::thread::sleep(kill_after);
        child.kill().unwrap();
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        eprintln!("run {run}: killed after {kill_after:?}, {} acknowledged", acked.len());
        acked_total.extend(acked);

        let conn = datahike::connect(&config(&dir)).expect("store opens after a crash");
        let db = conn.db();
        let mut present = std::collections::HashMap::<String, Vec<String>>::new();
        for d in db.datoms(IndexOrder::Aevt, &[Edn::kw("gk")]).unwrap() {
            let datahike::Value::String(key) = &d.v else { panic!("not a key: {:?}", d.v) };
            let (tx, half) = key.rsplit_once('-').unwrap();
            present.entry(tx.to_owned()).or_default().push(half.to_owned());
        }
        for (tx, halves) in &present {
            assert_eq!(halves.len(), 2, "transaction {tx} is half there: {halves:?}");
        }
        for key in &acked_total {
            assert!(present.contains_key(key), "acknowledged transaction {key} is missing after the crash");
        }
        conn.release().unwrap();
    }
    assert!(!acked_total.is_empty(), "the child never acknowledged a transaction");
}
