//! Crash safety on real storage: a child process transacts in a loop and reports each
//! acknowledged transaction; the parent kills it with SIGKILL at a random instant, reopens the
//! store and checks that every acknowledged transaction is there and nothing is half applied.
//!
//! The matrix: every durable local backend of the build (file; LMDB and SQLite with their
//! features) times four workloads: small transactions, large ones (hundreds of datoms each),
//! transactions with an index flush every few, and transactions with a garbage collection
//! every few, so that kills land inside appends, flushes and collections. On the file
//! backend some runs also leave a torn final record after the kill (the frame a crash would
//! leave half written) which the next open must ignore and the next append cut off.
//!
//! `DATAHIKE_CRASH_RUNS` sets the kills per cell of the matrix (default 8),
//! `DATAHIKE_CRASH_SEED` replays a seed.

use datahike::{edn::read_str, Config, Edn, IndexOrder};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "DATAHIKE_CRASH_CHILD_DIR";

/// The config of the store `location` (a directory, or a file for SQLite) on `backend`.
fn store_config(backend: &str, location: &Path) -> Config {
    let path = location.display().to_string();
    let store = match backend {
        "file" => format!("{{:backend :file :path {path:?}}}"),
        "lmdb" => format!("{{:backend :lmdb :path {path:?}}}"),
        "sqlite" => format!(r#"{{:backend :jdbc :dbtype "sqlite" :dbname {path:?}}}"#),
        other => panic!("no crash test config for {other}"),
    };
    Config::parse(&format!("{{:store {store} :index-config {{:branching-factor 8}}}}")).unwrap()
}

fn config(dir: &Path) -> Config {
    store_config("file", dir)
}

/// The durable local backends of this build.
fn backends() -> Vec<&'static str> {
    let mut out = vec!["file"];
    if cfg!(feature = "lmdb") {
        out.push("lmdb");
    }
    if cfg!(feature = "sqlite") {
        out.push("sqlite");
    }
    out
}

const SCHEMA: &str = r#"[{:db/ident :k :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
                         {:db/ident :v :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
                         {:db/ident :tags :db/valueType :db.type/long :db/cardinality :db.cardinality/many}
                         {:db/ident :bulk :db/valueType :db.type/long :db/cardinality :db.cardinality/many}]"#;

/// Datoms of `:bulk` per transaction of the `large` workload.
const LARGE: i64 = 400;

/// The child: transacts forever on `backend|location|workload`, printing `ACK <k>` after
/// each transaction returned.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let mut parts = spec.splitn(3, '|');
    let (backend, location, workload) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let config = store_config(backend, Path::new(location));
    let conn = datahike::connect(&config).unwrap();
    let start = conn.db().datoms(IndexOrder::Aevt, &[Edn::kw("k")]).unwrap().len() as i64;
    let mut out = std::io::stdout();
    for k in start.. {
        // Each transaction writes three attributes of one entity and retracts tag k of the
        // previous one, so a half-applied transaction would be visible.
        let bulk: String = if workload == "large" {
            let values: Vec<String> = (0..LARGE).map(|j| (k * LARGE + j).to_string()).collect();
            format!(" :bulk [{}]", values.join(" "))
        } else {
            String::new()
        };
        let tx = if k == 0 {
            format!(r#"[{{:k 0 :v "value-0" :tags [0 1]{bulk}}}]"#)
        } else {
            format!(r#"[{{:k {k} :v "value-{k}" :tags [{k} {}]{bulk}}} [:db/retract [:k {}] :tags {k}]]"#, k + 1, k - 1)
        };
        conn.transact(&read_str(&tx).unwrap()).unwrap();
        use std::io::Write;
        writeln!(out, "ACK {k}").unwrap();
        out.flush().unwrap();
        match workload {
            "flush" if k % 3 == 0 => conn.flush().unwrap(),
            "gc" if k % 5 == 0 => {
                conn.gc_storage(None).unwrap();
            }
            _ => {}
        }
    }
}

/// Runs the child test `test` of this binary with `env=value`, its stdout piped.
fn spawn_child(exe: &Path, test: &str, env: &str, value: &str) -> std::process::Child {
    Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(env, value)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A database with `schema` on `backend` under `parent`; its location.
fn fresh_store(backend: &str, parent: &Path, schema: &str) -> std::path::PathBuf {
    let location = parent.join(if backend == "sqlite" { "db.sqlite" } else { "db" });
    let config = store_config(backend, &location);
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    conn.transact(&read_str(schema).unwrap()).unwrap();
    conn.release().unwrap();
    location
}

/// A database with `schema` in `parent/db`; its directory.
fn fresh_db(parent: &Path, schema: &str) -> std::path::PathBuf {
    fresh_store("file", parent, schema)
}

fn check_store(config: &Config, acked: i64, workload: &str) {
    let conn = datahike::connect(config).expect("store opens after a crash");
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
        if workload == "large" {
            let bulk = db.datoms(IndexOrder::Eavt, &[Edn::Int(d.e), Edn::kw("bulk")]).unwrap();
            assert_eq!(bulk.len() as i64, LARGE, "entity k={k} has part of its transaction");
        }
    }
    // AEVT and AVET agree with EAVT.
    let avet = db.datoms(IndexOrder::Avet, &[Edn::kw("k")]).unwrap();
    assert_eq!(avet.len(), ks.len());
    conn.release().unwrap();
}

/// Leaves the frame a crash during an append would leave half written after the last record
/// of the file store's log at `dir` (length, checksum and sequence number of a record whose
/// payload was cut short), as a crash between two sectors would.
fn tear_final_record(dir: &Path, seed: u64) {
    let Some(log) = std::fs::read_dir(dir.join("log")).unwrap().map(|e| e.unwrap().path()).max() else { return };
    let Some(segment) = std::fs::read_dir(&log).unwrap().map(|e| e.unwrap().path()).max() else { return };
    let mut bytes = std::fs::read(&segment).unwrap();
    // Frames: [len u32][crc u32][seq u64][payload], then zeros.
    let (mut offset, mut last_seq) = (0usize, 0u64);
    while offset + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[offset + 4..offset + 8].try_into().unwrap());
        if len == 0 && crc == 0 {
            break;
        }
        last_seq = u64::from_le_bytes(bytes[offset + 8..offset + 16].try_into().unwrap());
        offset += 16 + len;
    }
    let len = 200 + (seed % 300) as usize;
    let mut frame = Vec::new();
    frame.extend_from_slice(&(len as u32).to_le_bytes());
    frame.extend_from_slice(&((seed >> 7) as u32 | 1).to_le_bytes());
    frame.extend_from_slice(&(last_seq + 1).to_le_bytes());
    frame.extend((0..len / 2).map(|i| (seed >> (i % 56)) as u8 | 1));
    if bytes.len() < offset + frame.len() {
        bytes.resize(offset + frame.len(), 0);
    }
    bytes[offset..offset + frame.len()].copy_from_slice(&frame);
    std::fs::write(&segment, bytes).unwrap();
}

#[test]
fn sigkill_at_random_instants_loses_no_acknowledged_transaction() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let runs: u64 = std::env::var("DATAHIKE_CRASH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let mut seed: u64 = std::env::var("DATAHIKE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("crash test seed {seed} (set DATAHIKE_CRASH_SEED to replay)");
    let exe = std::env::current_exe().unwrap();
    let (mut kills, mut tears, mut acknowledged) = (0u64, 0u64, 0i64);
    for backend in backends() {
        for workload in ["small", "large", "flush", "gc"] {
            let tmp = tempfile::tempdir().unwrap();
            let location = fresh_store(backend, tmp.path(), SCHEMA);
            let config = store_config(backend, &location);
            let mut total_acked = -1i64;
            for run in 0..runs {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let kill_after = Duration::from_millis(20 + (seed >> 33) % 400);
                let spec = format!("{backend}|{}|{workload}", location.display());
                let mut child = spawn_child(&exe, "crash_child", CHILD_ENV, &spec);
                let stdout = child.stdout.take().unwrap();
                let (first_ack, first_ack_seen) = std::sync::mpsc::channel();
                let reader = std::thread::spawn(move || {
                    let mut last = -1i64;
                    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                        if let Some(k) = line.strip_prefix("ACK ") {
                            last = k.trim().parse().unwrap();
                            let _ = first_ack.send(());
                        }
                    }
                    last
                });
                // One run in four is killed at an instant counted from its start (while it
                // opens the store and recovers, on a busy machine); the others at an instant
                // counted from its first acknowledged transaction.
                if !(seed >> 40).is_multiple_of(4) {
                    let _ = first_ack_seen.recv_timeout(Duration::from_secs(20));
                }
                let started = Instant::now();
                while started.elapsed() < kill_after {
                    std::thread::sleep(Duration::from_millis(2));
                }
                child.kill().unwrap(); // SIGKILL on Unix
                child.wait().unwrap();
                kills += 1;
                let acked = reader.join().unwrap();
                total_acked = total_acked.max(acked);
                let torn = backend == "file" && (seed >> 20).is_multiple_of(3);
                if torn {
                    tear_final_record(&location, seed);
                    tears += 1;
                }
                check_store(&config, total_acked, workload);
                eprintln!("{backend}/{workload} run {run}: killed after {kill_after:?}, acknowledged up to {acked}, torn tail {torn}");
            }
            assert!(total_acked > 0, "{backend}/{workload}: the child never acknowledged a transaction");
            acknowledged += total_acked + 1;
        }
    }
    eprintln!(
        "crash matrix: {kills} kills, {tears} torn final records, {acknowledged} acknowledged transactions, none lost"
    );
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
