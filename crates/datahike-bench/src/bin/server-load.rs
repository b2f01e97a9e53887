//! A load benchmark of Datahike's HTTP server on loopback: transactions per second and
//! request latency percentiles at several numbers of concurrent clients, with group commit on
//! and off, beside SQLite's durable commit rate and the disk's raw sync rate, all measured by
//! this program in the same run.
//!
//! ```text
//! server-load [--data DIR] [--dir TMP] [--clients 1,8,64] [--tx N] [--queries N]
//!             [--seconds S] [--group-commit on,off] [--busy THREADS] [--out FILE]
//!             [--frame-bytes BYTES]
//! server-load --table FILE...
//! ```
//!
//! One run, in this order (every step in `--dir`, one file system):
//!
//! 1. `fsync-raw`: 300 syncs written as the file log writes them (`log_sync_rate`: frames of
//!    one small commit's size, `--frame-bytes`, default 161, into zeros written ahead, one
//!    fdatasync each), before the first section and after each; a section's lines carry the
//!    mean of the probes around it (`raw_sync_per_s`). Files of runs before this probe hold
//!    4 KiB append + fdatasync rates (their lines have no `frame_bytes`).
//! 2. The server, once with group commit on and once off, each in a child process of this
//!    binary (`--variant on|off`). The library reads `DATAHIKE_GROUP_COMMIT` once per
//!    process, so a variant needs a process of its own: the parent removes the variable for
//!    `on` (the default) and sets it to `off` for `off`. The child loads the workload's people
//!    into a new file database with the library, releases it, starts the server in-process on
//!    127.0.0.1:0 (system allocator, as `dthk serve`), and drives it over HTTP:
//!    - `tx`: `--tx` small transactions in all, split over the clients; each transacts one new
//!      person of the workload's `new-people` with a unique email (WORKLOAD.md `tx-small`),
//!      `POST /transact` with `[config tx-data]`. The server answers once the commit is
//!      durable.
//!    - `q-email`: `--queries` point queries, a salary by email, `GET /q` with a body
//!      `[query config email]` (as the library's remote peer sends it).
//!    - `q4`: `--queries` of the workload's `q4` (four clauses joined, 1,274 rows at N = 20,000
//!      before the `tx` phases add people).
//!
//!    Every transaction phase (1, 8, 64 clients) runs before the query phases, so the query
//!    phases of a variant all see the same database; a warm-up (100 transactions, 100 + 20
//!    queries) comes first and a pause of 3 s lets a background index flush that the last
//!    transaction phase started finish before the queries. A `tx` line's `flushes` says how
//!    many index flushes its phase included (the library means to flush every 1,000
//!    transactions).
//! 3. `sqlite`: the same small transactions, in-process through rusqlite (bundled SQLite),
//!    `journal_mode=WAL`, `synchronous=FULL`, one connection per thread, `busy_timeout` set,
//!    each transaction `BEGIN IMMEDIATE`, insert the person and its follows, `COMMIT`; into a
//!    database that first gets the same people (tables as `../shared/bench/sqlite/run.py`).
//!    `tx` leaves contention to SQLite's lock and busy handler; `tx-serialized` has each
//!    thread take a mutex of this process around its transaction (one writer at a time).
//!
//! Each client is a thread with its own HTTP agent (one keep-alive connection, opened before
//! the phase starts) or its own SQLite connection; a phase starts all clients at once and
//! ends when every client has done its share or `--seconds` has passed. Each request is timed
//! from send to the last byte of the answer. `--busy THREADS` keeps THREADS threads of the
//! parent spinning for the whole run, children included.
//!
//! Output: one JSON line per measurement on stdout (and appended to `--out`): `peer`
//! (`datahike-server`, `sqlite`, `disk`), `op` (`tx`, `tx-serialized`, `q-email`, `q4`,
//! `fsync-raw`), `clients`, `group_commit`, `busy`,
//! `count` (requests that succeeded), `errors`, `seconds`, `ops_per_s` (successful requests
//! per second of the phase's wall time), `p50_ms`, `p90_ms`, `p99_ms`, `max_ms` (nearest
//! rank), `timed_out`, `raw_sync_per_s`; the server's `tx` lines also `log_groups` (log
//! appends, one sync each), `log_records`, `records_per_group` and `flushes` of the phase
//! (from `/stats`); `fsync-raw` lines `frame_bytes` and `others_cpu_cores`, the CPU that other processes of the
//! machine used in the section before. `--table` prints Markdown tables of such files.
//! The defaults: `--tx 3000 --queries 5000 --seconds 30`.

use datahike::{edn, Config, Edn};
use datahike_bench::{log_sync_rate, LOG_ZERO_AHEAD_BYTES, SCHEMA, SMALL_COMMIT_BYTES_DEFAULT};
use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime};

const TOKEN: &str = "load-bench-token";

/// The workload's `q4`.
const Q4: &str = r#"[:find ?e ?l ?a :where [?e :name "Ivan"] [?e :last-name ?l] [?e :age ?a] [?e :sex :male]]"#;
const Q_EMAIL: &str = "[:find ?s . :in $ ?email :where [?e :email ?email] [?e :salary ?s]]";

/// The pause between the transaction and the query phases.
const SETTLE: Duration = Duration::from_secs(3);

/// Appends and syncs of the raw-sync probe.
const PROBE_SYNCS: usize = 300;

struct Args {
    data: PathBuf,
    dir: PathBuf,
    clients: Vec<usize>,
    /// Transactions per phase, over all clients.
    tx: usize,
    /// Queries per phase, over all clients.
    queries: usize,
    /// The time limit of each phase.
    seconds: f64,
    group_commit: Vec<String>,
    busy: usize,
    out: Option<PathBuf>,
    /// The frame size of the `fsync-raw` probe: one small commit's log frame.
    frame_bytes: usize,
    /// Set in a child process: the group commit variant it measures.
    variant: Option<String>,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        data: PathBuf::from("../shared/bench/data/n20000"),
        dir: std::env::temp_dir().join(format!("server-load-{}", std::process::id())),
        clients: vec![1, 8, 64],
        tx: 3000,
        queries: 5000,
        seconds: 30.0,
        group_commit: vec!["on".into(), "off".into()],
        busy: 0,
        out: None,
        frame_bytes: SMALL_COMMIT_BYTES_DEFAULT,
        variant: None,
    };
    let mut i = 0;
    while i < argv.len() {
        let flag = argv[i].as_str();
        let val = argv.get(i + 1).cloned().ok_or_else(|| format!("{flag} needs a value"))?;
        let count = |v: &str| v.parse::<usize>().map_err(|_| format!("{flag} needs a count, got {v}"));
        match flag {
            "--data" => a.data = PathBuf::from(val),
            "--dir" => a.dir = PathBuf::from(val),
            "--clients" => a.clients = val.split(',').map(count).collect::<Result<_, _>>()?,
            "--tx" => a.tx = count(&val)?,
            "--queries" => a.queries = count(&val)?,
            "--seconds" => {
                a.seconds = val.parse().map_err(|_| format!("--seconds needs a number, got {val}"))?;
            }
            "--group-commit" => {
                a.group_commit = val.split(',').map(str::to_string).collect();
                if let Some(bad) = a.group_commit.iter().find(|v| *v != "on" && *v != "off") {
                    return Err(format!("--group-commit takes on, off or on,off, got {bad}"));
                }
            }
            "--busy" => a.busy = count(&val)?,
            "--out" => a.out = Some(PathBuf::from(val)),
            "--frame-bytes" => a.frame_bytes = count(&val)?.max(1),
            "--variant" => a.variant = Some(val),
            other => return Err(format!("unknown argument {other}")),
        }
        i += 2;
    }
    if a.clients.contains(&0) {
        return Err("--clients needs counts of at least 1".into());
    }
    Ok(a)
}

/// What one phase measured.
struct Phase {
    /// Latencies of the requests that succeeded, in milliseconds, sorted.
    latencies_ms: Vec<f64>,
    errors: usize,
    first_error: Option<String>,
    seconds: f64,
    timed_out: bool,
}

/// The `q`-quantile of `sorted` by nearest rank.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()).checked_sub(1)?).copied()
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Phase {
    fn to_json(&self) -> Json {
        let ms = |q: f64| percentile(&self.latencies_ms, q).map(r3);
        json!({
            "count": self.latencies_ms.len(), "errors": self.errors, "seconds": r3(self.seconds),
            "ops_per_s": (self.latencies_ms.len() as f64 / self.seconds).round(),
            "p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99), "max_ms": self.latencies_ms.last().map(|x| r3(*x)),
            "timed_out": self.timed_out, "first_error": self.first_error,
        })
    }
}

/// Runs `total` requests from `clients` threads at once, each with its own state from `open`
/// (made before the start), thread `c` doing requests `c`, `c + clients`, ...; stops early at
/// `limit`.
fn drive<S>(
    clients: usize,
    total: usize,
    limit: Duration,
    open: impl Fn(usize) -> S + Sync,
    request: impl Fn(&mut S, usize) -> Result<(), String> + Sync,
) -> Phase {
    let barrier = Barrier::new(clients + 1);
    let (open, request, barrier) = (&open, &request, &barrier);
    let (results, seconds) = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..clients)
            .map(|c| {
                scope.spawn(move || {
                    let mut state = open(c);
                    let (mut latencies, mut errors, mut first_error, mut timed_out) = (Vec::new(), 0, None, false);
                    barrier.wait();
                    let deadline = Instant::now() + limit;
                    for i in (c..total).step_by(clients) {
                        let t = Instant::now();
                        if t >= deadline {
                            timed_out = true;
                            break;
                        }
                        match request(&mut state, i) {
                            Ok(()) => latencies.push(t.elapsed().as_secs_f64() * 1000.0),
                            Err(e) => {
                                errors += 1;
                                first_error.get_or_insert(e);
                            }
                        }
                    }
                    (latencies, errors, first_error, timed_out)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().expect("a client thread panicked")).collect();
        (results, start.elapsed().as_secs_f64())
    });
    let mut phase = Phase { latencies_ms: Vec::new(), errors: 0, first_error: None, seconds, timed_out: false };
    for (latencies, errors, first_error, timed_out) in results {
        phase.latencies_ms.extend(latencies);
        phase.errors += errors;
        phase.timed_out |= timed_out;
        if phase.first_error.is_none() {
            phase.first_error = first_error;
        }
    }
    phase.latencies_ms.sort_by(f64::total_cmp);
    if let Some(e) = &phase.first_error {
        eprintln!("server-load: {} failed requests, the first: {e}", phase.errors);
    }
    phase
}

/// The workload's files: the people to load and `params.edn`.
struct Data {
    n: i64,
    people: Vec<Edn>,
    /// `new-people`: the persons of the small transactions.
    new_people: Vec<Edn>,
    /// `lookup-emails`: emails of loaded people, for the point queries.
    emails: Vec<String>,
}

fn read_data(dir: &Path) -> Data {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("read {}: {e}", dir.join(name).display()))
    };
    let people: Vec<Edn> = read("people.edn")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| edn::read_str(l).expect("a person in people.edn"))
        .collect();
    let params = edn::read_str(&read("params.edn")).expect("params.edn");
    let new_people = params.get_kw("new-people").and_then(Edn::as_seq).expect("new-people in params.edn").to_vec();
    let emails = params
        .get_kw("lookup-emails")
        .and_then(Edn::as_seq)
        .expect("lookup-emails in params.edn")
        .iter()
        .filter_map(|e| if let Edn::Str(s) = e { Some(s.to_string()) } else { None })
        .collect();
    Data { n: params.get_kw("n").and_then(long).unwrap_or(people.len() as i64), people, new_people, emails }
}

/// The integer `e`, if it is one.
fn long(e: &Edn) -> Option<i64> {
    if let Edn::Int(i) = e {
        Some(*i)
    } else {
        None
    }
}

/// `person` with its email prefixed by `prefix`, so every transaction creates a new entity.
fn renamed(person: &Edn, prefix: &str) -> Edn {
    let Edn::Map(entries) = person else { return person.clone() };
    let email = Edn::kw("email");
    Edn::Map(
        entries
            .iter()
            .map(|(k, v)| match v {
                Edn::Str(s) if *k == email => (k.clone(), Edn::str(&format!("{prefix}{s}"))),
                _ => (k.clone(), v.clone()),
            })
            .collect(),
    )
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// One request with an EDN body; the answer's body when the status is 200.
fn call(agent: &ureq::Agent, url: &str, get: bool, body: &str) -> Result<String, String> {
    let builder = if get { agent.get(url).force_send_body() } else { agent.post(url) };
    let mut response = builder
        .header("Authorization", format!("token {TOKEN}"))
        .header("Content-Type", "application/edn")
        .header("Accept", "application/edn")
        .send(body.as_bytes())
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let text = response.body_mut().with_config().limit(1 << 30).read_to_string().map_err(|e| format!("{url}: {e}"))?;
    if status == 200 {
        Ok(text)
    } else {
        Err(format!("{url}: status {status}: {}", text.chars().take(300).collect::<String>()))
    }
}

/// A child process: the server with this process's group commit setting, its phases.
fn run_variant(args: &Args, variant: &str) {
    let data = read_data(&args.data);
    std::fs::create_dir_all(&args.dir).expect("variant dir");
    let path = args.dir.join("db").display().to_string();
    let config_edn = format!("{{:store {{:backend :file :path {path:?}}} :keep-history? false}}");
    let config = Config::parse(&config_edn).expect("database config");
    let _ = datahike::delete_database(&config);
    datahike::create_database(&config).expect("create database");
    let conn = datahike::connect(&config).expect("connect");
    conn.transact(&edn::read_str(SCHEMA).expect("schema")).expect("schema tx");
    conn.transact(&Edn::Vector(data.people.clone())).expect("load the people");
    // Releasing flushes the indexes, so no flush of the load runs during the phases.
    conn.release().expect("release");

    let server = datahike_server::start(
        datahike_server::ServerConfig::parse(&format!("{{:port 0 :token {TOKEN:?}}}")).expect("server config"),
        false,
    )
    .expect("start the server");
    let base = format!("http://{}", server.addr);
    let (tx_url, q_url) = (format!("{base}/transact"), format!("{base}/q"));
    let open = |_| {
        let agent = agent();
        // The keep-alive connection is opened here, before the phase starts.
        agent.get(&format!("{base}/health")).call().and_then(|mut r| r.body_mut().read_to_string()).expect("health");
        agent
    };
    let emit = |op: &str, clients: usize, phase: &Phase, extra: Json| {
        let mut line = json!({"peer": "datahike-server", "op": op, "n": data.n, "clients": clients,
                              "group_commit": variant, "version": env!("CARGO_PKG_VERSION")});
        merge(&mut line, phase.to_json());
        merge(&mut line, extra);
        println!("{line}");
    };
    let limit = Duration::from_secs_f64(args.seconds);
    let tx_bodies = |tag: &str, count: usize| -> Vec<String> {
        (0..count)
            .map(|i| {
                let person = renamed(&data.new_people[i % data.new_people.len()], &format!("{tag}.{i}."));
                format!("[{config_edn} [{}]]", person.to_edn_string())
            })
            .collect()
    };
    let q_email_bodies: Vec<String> = (0..args.queries)
        .map(|i| format!("[{Q_EMAIL} {config_edn} {:?}]", data.emails[i % data.emails.len()]))
        .collect();
    let q4_body = format!("[{Q4} {config_edn}]");
    // Warm-up, not reported: the server opens the connection, caches fill.
    let warm = tx_bodies("warm", 100);
    drive(1, 100, limit, open, |agent, i| call(agent, &tx_url, false, &warm[i]).map(drop));
    drive(1, 100, limit, open, |agent, i| call(agent, &q_url, true, &q_email_bodies[i]).map(drop));
    drive(1, 20, limit, open, |agent, _| call(agent, &q_url, true, &q4_body).map(drop));

    let stats_agent = agent();
    for &clients in &args.clients {
        let bodies = tx_bodies(&format!("c{clients}"), args.tx);
        let before = log_counters(&stats_agent, &base);
        let phase = drive(clients, args.tx, limit, open, |agent, i| call(agent, &tx_url, false, &bodies[i]).map(drop));
        let after = log_counters(&stats_agent, &base);
        let [groups, records, flushes] = [0, 1, 2].map(|i| after[i] - before[i]);
        let log = json!({"log_groups": groups, "log_records": records, "flushes": flushes,
                         "records_per_group": r3(records as f64 / groups.max(1) as f64)});
        emit("tx", clients, &phase, log);
    }
    // The last transaction phase may have started a background index flush; the query
    // phases should not share the machine with it.
    std::thread::sleep(SETTLE);
    for &clients in &args.clients {
        let phase = drive(clients, args.queries, limit, open, |agent, i| {
            let body = call(agent, &q_url, true, &q_email_bodies[i])?;
            match body.trim().parse::<i64>() {
                Ok(_) => Ok(()),
                Err(_) => Err(format!("q-email: expected a salary, got {body}")),
            }
        });
        emit("q-email", clients, &phase, json!({}));
        let phase = drive(clients, args.queries, limit, open, |agent, _| call(agent, &q_url, true, &q4_body).map(drop));
        let rows = call(&agent(), &q_url, true, &q4_body)
            .ok()
            .and_then(|text| edn::read_str(&text).ok())
            .and_then(|result| result.as_seq().map(<[Edn]>::len));
        emit("q4", clients, &phase, json!({"result_count": rows}));
    }
    server.shutdown().expect("server shutdown");
    let _ = datahike::delete_database(&config);
}

/// The served database's log groups (appends, one sync each), log records and index flushes
/// so far, from `/stats`.
fn log_counters(agent: &ureq::Agent, base: &str) -> [i64; 3] {
    let text = call(agent, &format!("{base}/stats"), true, "").expect("/stats");
    let stats = edn::read_str(&text).expect("/stats is EDN");
    let db = stats.get_kw("databases").and_then(Edn::as_seq).and_then(<[Edn]>::first).expect("a database in /stats");
    ["log-groups", "log-records", "flushes"].map(|k| db.get_kw(k).and_then(long).expect("a counter in /stats"))
}

/// Adds the entries of the JSON object `extra` to the JSON object `line`.
fn merge(line: &mut Json, extra: Json) {
    if let (Some(line), Json::Object(extra)) = (line.as_object_mut(), extra) {
        line.extend(extra);
    }
}

/// SQLite's durable rate: the small transactions at each client count, one connection per
/// thread, into one database that first gets the people.
fn sqlite_phases(args: &Args, data: &Data) -> Vec<Json> {
    let path = args.dir.join("sqlite.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let open = || {
        let c = rusqlite::Connection::open(&path).expect("open sqlite");
        let mode: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).expect("journal_mode");
        assert_eq!(mode, "wal", "SQLite refused WAL mode");
        c.execute_batch("PRAGMA synchronous=FULL").expect("synchronous=FULL");
        c.busy_timeout(Duration::from_secs(60)).expect("busy_timeout");
        c
    };
    let mut c = open();
    c.execute_batch(
        "CREATE TABLE person(id INTEGER PRIMARY KEY, name TEXT NOT NULL, last_name TEXT NOT NULL,
                             sex TEXT NOT NULL, age INTEGER NOT NULL, salary INTEGER NOT NULL,
                             email TEXT NOT NULL UNIQUE);
         CREATE INDEX person_name ON person(name);
         CREATE INDEX person_last_name ON person(last_name);
         CREATE INDEX person_sex ON person(sex);
         CREATE INDEX person_age ON person(age);
         CREATE INDEX person_salary ON person(salary);
         CREATE TABLE follows(src INTEGER NOT NULL, dst INTEGER NOT NULL, PRIMARY KEY (src, dst)) WITHOUT ROWID;
         CREATE INDEX follows_dst ON follows(dst);",
    )
    .expect("sqlite schema");
    let load = c.transaction().expect("begin load");
    for p in &data.people {
        let id = p.get_kw("db/id").and_then(long);
        insert_person(&load, id, p, "").expect("load a person");
    }
    load.commit().expect("commit load");
    drop(c);
    let limit = Duration::from_secs_f64(args.seconds);
    // `tx`: the threads contend through SQLite's own lock and busy handler. `tx-serialized`:
    // they take a mutex of this process first, so SQLite never sees contention (what an
    // application with one writer thread, or a pool of one writer connection, gets).
    let writer = std::sync::Mutex::new(());
    let mut lines = Vec::new();
    for (op, serialized) in [("tx", false), ("tx-serialized", true)] {
        for &clients in &args.clients {
            let phase = drive(
                clients,
                args.tx,
                limit,
                |_| open(),
                |c, i| {
                    let _turn = serialized.then(|| writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
                    let person = &data.new_people[i % data.new_people.len()];
                    let tx = c
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                        .map_err(|e| format!("begin: {e}"))?;
                    insert_person(&tx, None, person, &format!("{op}.c{clients}.{i}."))
                        .map_err(|e| format!("insert: {e}"))?;
                    tx.commit().map_err(|e| format!("commit: {e}"))
                },
            );
            let mut line = json!({"peer": "sqlite", "op": op, "n": data.n, "clients": clients, "group_commit": null,
                                  "version": rusqlite::version(), "note": "WAL, synchronous=FULL, in-process"});
            merge(&mut line, phase.to_json());
            lines.push(line);
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    lines
}

/// Inserts a person of the workload (and its follows), with `id` or a new rowid, its email
/// prefixed by `prefix`.
fn insert_person(c: &rusqlite::Connection, id: Option<i64>, p: &Edn, prefix: &str) -> rusqlite::Result<()> {
    let text = |k: &str| match p.get_kw(k) {
        Some(Edn::Str(s)) => s.to_string(),
        Some(Edn::Keyword(k)) => k.as_str().to_string(),
        _ => String::new(),
    };
    let int = |k: &str| p.get_kw(k).and_then(long).unwrap_or(0);
    c.prepare_cached("INSERT INTO person VALUES (?,?,?,?,?,?,?)")?.execute(rusqlite::params![
        id,
        text("name"),
        text("last-name"),
        text("sex"),
        int("age"),
        int("salary"),
        format!("{prefix}{}", text("email")),
    ])?;
    let src = c.last_insert_rowid();
    let mut follow = c.prepare_cached("INSERT INTO follows VALUES (?,?)")?;
    for dst in p.get_kw("follows").and_then(Edn::as_seq).unwrap_or(&[]) {
        follow.execute(rusqlite::params![src, long(dst)])?;
    }
    Ok(())
}

/// CPU time of the whole machine and of this process with its waited-for children, in the
/// kernel's clock ticks (`/proc/stat`, `/proc/self/stat`), to tell how much CPU other
/// processes took during a section. The load average would not do: it counts this run's own
/// waiting threads.
struct CpuTimes {
    /// Ticks of every CPU, idle included.
    total: u64,
    /// Ticks of every CPU in processes (user, nice, system) or stolen by the hypervisor.
    busy: u64,
    /// Ticks of this process and its children.
    own: u64,
}

impl CpuTimes {
    /// Now; `None` off Linux.
    fn now() -> Option<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal (guest time is inside user). Interrupt
        // time is left out of `busy`: much of it is this run's own loopback traffic and disk
        // I/O. Steal is in: other virtual machines took it.
        let total: u64 = cpu.iter().take(8).sum();
        let busy = [0, 1, 2, 7].iter().map(|&i| cpu.get(i).copied().unwrap_or(0)).sum();
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // After the command name in parentheses: state is field 3, utime..cstime fields 14-17.
        let fields: Vec<u64> =
            own_stat.rsplit_once(')')?.1.split_whitespace().skip(11).take(4).filter_map(|x| x.parse().ok()).collect();
        Some(CpuTimes { total, busy, own: fields.iter().sum() })
    }

    /// Cores' worth of CPU that other processes used between `earlier` and now.
    fn others_cores_since(now: &Option<CpuTimes>, earlier: &Option<CpuTimes>) -> Option<f64> {
        let (now, earlier) = (now.as_ref()?, earlier.as_ref()?);
        let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        let total = now.total.checked_sub(earlier.total).filter(|t| *t > 0)? as f64;
        let others = (now.busy - earlier.busy).saturating_sub(now.own - earlier.own) as f64;
        Some(others * cpus / total)
    }
}

/// The parent: probes, the two server variants in child processes, SQLite, probes.
fn run(args: &Args) {
    for _ in 0..args.busy {
        // Busy until the process exits, children's phases included.
        std::thread::spawn(|| {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        });
    }
    let started = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let run_id = format!("{started}-{}", std::process::id());
    let emit = |mut line: Json| {
        merge(&mut line, json!({"bench": "server-load", "run": run_id, "busy": args.busy}));
        let text = line.to_string();
        println!("{text}");
        if let Some(out) = &args.out {
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(out).expect("open --out file");
            writeln!(f, "{text}").expect("write --out file");
        }
    };
    std::fs::create_dir_all(&args.dir).expect("bench dir");
    let data = read_data(&args.data);
    let probe = |when: &str, others: Option<f64>| {
        let rate = log_sync_rate(&args.dir, PROBE_SYNCS, args.frame_bytes);
        let note = format!(
            "{}-byte frames into zeros written ahead {} KiB at a time, one fdatasync each, as the file log \
             appends; others_cpu_cores: other processes' CPU use in the section before",
            args.frame_bytes,
            LOG_ZERO_AHEAD_BYTES >> 10
        );
        emit(json!({"peer": "disk", "op": "fsync-raw", "when": when, "ops_per_s": rate.round(),
                    "frame_bytes": args.frame_bytes,
                    "others_cpu_cores": others.map(|c| (c * 100.0).round() / 100.0), "note": note}));
        rate
    };
    // Each section's lines carry the mean of the probes just before and after it, the disk's
    // rate while it ran (it drifts on a shared machine), and the CPU that other processes of
    // the machine used meanwhile.
    let mut before = (probe("before", None), CpuTimes::now());
    let mut section = |lines: Vec<Json>, after: &str| {
        let others = CpuTimes::others_cores_since(&CpuTimes::now(), &before.1);
        let rate = probe(after, others);
        for mut line in lines {
            merge(&mut line, json!({"raw_sync_per_s": ((before.0 + rate) / 2.0).round()}));
            emit(line);
        }
        before = (rate, CpuTimes::now());
    };
    for variant in &args.group_commit {
        let exe = std::env::current_exe().expect("own executable");
        let mut child = Command::new(exe);
        child.args(["--variant", variant, "--data"]).arg(&args.data).arg("--dir").arg(args.dir.join(variant));
        let clients: Vec<String> = args.clients.iter().map(usize::to_string).collect();
        child.args(["--clients", &clients.join(","), "--tx", &args.tx.to_string()]);
        child.args(["--queries", &args.queries.to_string(), "--seconds", &args.seconds.to_string()]);
        if variant == "off" {
            child.env("DATAHIKE_GROUP_COMMIT", "off");
        } else {
            child.env_remove("DATAHIKE_GROUP_COMMIT");
        }
        let mut child = child.stdout(Stdio::piped()).spawn().expect("start a variant process");
        let stdout = child.stdout.take().expect("the variant's stdout");
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read the variant's output");
            match serde_json::from_str::<Json>(&line) {
                Ok(json) => lines.push(json),
                Err(_) => eprintln!("{line}"),
            }
        }
        let status = child.wait().expect("wait for the variant process");
        assert!(status.success(), "the group commit {variant} process failed: {status}");
        section(lines, &format!("after group commit {variant}"));
    }
    section(sqlite_phases(args, &data), "after sqlite");
    let _ = std::fs::remove_dir_all(&args.dir);
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--table") {
        print_tables(&argv[1..]);
        return;
    }
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("server-load: {e}");
            std::process::exit(2);
        }
    };
    match &args.variant {
        Some(variant) => run_variant(&args, variant),
        None => run(&args),
    }
}

/// `--table FILE...`: for each run a Markdown table of transactions and one of queries, then
/// the same tables with the median over the runs of each `--busy` value.
fn print_tables(files: &[String]) {
    let mut lines: Vec<Json> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file}: {e}"));
        lines.extend(text.lines().filter_map(|l| serde_json::from_str::<Json>(l).ok()));
    }
    lines.retain(|l| l["bench"] == "server-load");
    let mut runs: Vec<&str> = lines.iter().filter_map(|l| l["run"].as_str()).collect();
    runs.dedup();
    for run in &runs {
        let of_run: Vec<&Json> = lines.iter().filter(|l| l["run"] == *run).collect();
        let busy = of_run.first().map_or(0, |l| l["busy"].as_u64().unwrap_or(0));
        let n = of_run.iter().find_map(|l| l["n"].as_i64()).unwrap_or(0);
        let probes: Vec<String> = of_run
            .iter()
            .filter(|l| l["op"] == "fsync-raw")
            .map(|l| {
                let rate = l["ops_per_s"].as_f64().unwrap_or(f64::NAN);
                let when = l["when"].as_str().unwrap_or("");
                match l["others_cpu_cores"].as_f64() {
                    Some(cores) => format!("{rate:.0} {when} (others used {cores:.2} cores meanwhile)"),
                    None => format!("{rate:.0} {when}"),
                }
            })
            .collect();
        println!("#### Run {run}: busy {busy}, N = {n}\n");
        println!("Raw {} per second: {}.\n", probe_kinds(&of_run), probes.join(", "));
        print_run(&of_run);
    }
    let mut busies: Vec<u64> = lines.iter().filter_map(|l| l["busy"].as_u64()).collect();
    busies.sort_unstable();
    busies.dedup();
    for busy in busies {
        let of_busy: Vec<&Json> = lines.iter().filter(|l| l["busy"] == busy).collect();
        let mut of_runs: Vec<&str> = of_busy.iter().filter_map(|l| l["run"].as_str()).collect();
        of_runs.dedup();
        let mut raw: Vec<f64> =
            of_busy.iter().filter(|l| l["op"] == "fsync-raw").filter_map(|l| l["ops_per_s"].as_f64()).collect();
        raw.sort_by(f64::total_cmp);
        println!("#### Median of {} runs with busy {busy}\n", of_runs.len());
        println!(
            "Raw {} per second: median {:.0}, from {:.0} to {:.0} over {} probes.\n",
            probe_kinds(&of_busy),
            percentile(&raw, 0.5).unwrap_or(f64::NAN),
            raw.first().unwrap_or(&f64::NAN),
            raw.last().unwrap_or(&f64::NAN),
            raw.len()
        );
        print_run(&of_busy);
    }
}

/// What the `fsync-raw` probes among `lines` measured: the file log's pattern (lines with
/// `frame_bytes`) or, in files of older runs, 4 KiB appends.
fn probe_kinds(lines: &[&Json]) -> String {
    let mut kinds: Vec<String> = lines
        .iter()
        .filter(|l| l["op"] == "fsync-raw")
        .map(|l| match l["frame_bytes"].as_u64() {
            Some(bytes) => format!("{bytes}-byte log frames into zeros written ahead + fdatasync"),
            None => "4 KiB append + fdatasync".to_string(),
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds.join(" / ")
}

/// The two tables of `lines`: one line per cell, or the median of several (several runs).
fn print_run(lines: &[&Json]) {
    let find = |peer: &str, op: &str, clients: u64, gc: &Json| -> Option<Json> {
        let found: Vec<&Json> = lines
            .iter()
            .copied()
            .filter(|l| l["peer"] == peer && l["op"] == op && l["clients"] == clients && l["group_commit"] == *gc)
            .collect();
        let median = |key: &str| {
            let mut xs: Vec<f64> = found.iter().filter_map(|l| l[key].as_f64()).collect();
            xs.sort_by(f64::total_cmp);
            percentile(&xs, 0.5)
        };
        let ratio = |l: &&Json| Some(l["ops_per_s"].as_f64()? / l["raw_sync_per_s"].as_f64()?);
        let mut ratios: Vec<f64> = found.iter().filter_map(ratio).collect();
        ratios.sort_by(f64::total_cmp);
        (!found.is_empty()).then(|| {
            json!({
                "op": op, "ops_per_s": median("ops_per_s"), "p50_ms": median("p50_ms"), "p90_ms": median("p90_ms"),
                "p99_ms": median("p99_ms"), "raw_ratio": percentile(&ratios, 0.5),
                "records_per_group": median("records_per_group"),
                "errors": found.iter().filter_map(|l| l["errors"].as_u64()).sum::<u64>(),
                "timed_out": found.iter().filter(|l| l["timed_out"] == true).count(),
            })
        })
    };
    let mut clients: Vec<u64> = lines.iter().filter_map(|l| l["clients"].as_u64()).collect();
    clients.sort_unstable();
    clients.dedup();
    let cells = |l: Option<Json>| match l {
        Some(l) => [rate_cell(&l), latency_cell(&l)],
        None => ["–".to_string(), "–".to_string()],
    };
    println!(
        "Transactions per second (× the raw sync rate around the section; for the server, transactions per log \
         sync) and latency p50 / p90 / p99 in ms:\n"
    );
    print!("| clients | server, group commit on | latency | server, group commit off | latency ");
    println!("| SQLite | latency | SQLite, one writer at a time | latency |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &c in &clients {
        let row: Vec<String> = [
            find("datahike-server", "tx", c, &json!("on")),
            find("datahike-server", "tx", c, &json!("off")),
            find("sqlite", "tx", c, &Json::Null),
            find("sqlite", "tx-serialized", c, &Json::Null),
        ]
        .into_iter()
        .flat_map(cells)
        .collect();
        println!("| {c} | {} |", row.join(" | "));
    }
    println!("\nQueries per second and latency p50 / p90 / p99 in ms (point query by email; the workload's q4):\n");
    println!("| clients | group commit | q-email per s | latency | q4 per s | latency |");
    println!("|---:|---|---:|---:|---:|---:|");
    for gc in ["on", "off"] {
        for &c in &clients {
            let row: Vec<String> =
                ["q-email", "q4"].iter().flat_map(|op| cells(find("datahike-server", op, c, &json!(gc)))).collect();
            if row.iter().any(|cell| cell != "–") {
                println!("| {c} | {gc} | {} |", row.join(" | "));
            }
        }
    }
    println!();
}

/// `1234`, or `1234 (3.2×)` for a transaction rate (against the raw sync rate of its
/// section), with a mark when a phase had errors or ran out of time.
fn rate_cell(l: &Json) -> String {
    let rate = l["ops_per_s"].as_f64().unwrap_or(f64::NAN);
    let mut cell = format!("{rate:.0}");
    if let (Some(true), Some(ratio)) = (l["op"].as_str().map(|op| op.starts_with("tx")), l["raw_ratio"].as_f64()) {
        match l["records_per_group"].as_f64() {
            Some(group) => cell.push_str(&format!(" ({ratio:.1}×, {group:.1} per sync)")),
            None => cell.push_str(&format!(" ({ratio:.1}×)")),
        }
    }
    if l["errors"].as_u64().unwrap_or(0) > 0 {
        cell.push_str(&format!(", {} errors", l["errors"]));
    }
    if l["timed_out"].as_u64().unwrap_or(0) > 0 {
        cell.push_str(", hit the time limit");
    }
    cell
}

fn latency_cell(l: &Json) -> String {
    let ms = |k: &str| {
        l[k].as_f64().map_or("–".to_string(), |x| if x < 10.0 { format!("{x:.2}") } else { format!("{x:.0}") })
    };
    format!("{} / {} / {}", ms("p50_ms"), ms("p90_ms"), ms("p99_ms"))
}
