//! Runs the operations of `../shared/bench/WORKLOAD.md` that this version supports on
//! datahike-rs, with that file's timing protocol, and prints the same JSON lines as the peer
//! runners, so `tools/compare.py` checks our answers and puts us beside the peers.
//!
//! ```text
//! datahike-bench --data DIR [--ops a,b] [--out FILE] [--backend file|memory|both] [--dir TMP]
//!                [--store NAME=EDN]... [--cold RUNS] [--busy THREADS] [--frame-bytes BYTES]
//! ```
//!
//! `--busy THREADS` keeps THREADS threads spinning for the whole run, to measure with the
//! machine's other cores busy.
//!
//! `--cold RUNS` adds, for each query op, `<op>-cold`: the query on a new read-only
//! connection (an empty node cache, every node read from the store), RUNS times, and
//! `connect-cold`, the time to open that connection. The databases of `--store` backends are
//! deleted at the end of the run.
//!
//! `--store NAME=EDN` adds a backend by its `:store` map (any backend of the build, e.g.
//! `--store 'pg={:backend :jdbc :dbtype "postgresql" :host "127.0.0.1" ...}'`); each database
//! the run creates gets its own `:id`/`:table`/`:prefix` suffix (`-<pid>-<n>`, appended to the
//! value the map gives), and the results are reported as peer `datahike-rs-NAME`.
//!
//! `load-bulk` and `load-chunked` are timed until the indices are durable (the load's
//! transactions and `Conn::flush`), on every backend. `--ops load-bulk-log,load-chunked-log`
//! adds the same loads timed until the log record of the last transaction is durable (its
//! index nodes are written in the background after that). The load lines also carry
//! `datoms_per_s`, the person datoms loaded per second of the median run.
//!
//! `lookup-attr` (not a workload op) reads the `:salary` of each entity of datoms-eavt
//! through `Db::datoms_key`, a warm point lookup of one attribute of one entity; its line
//! carries `ns_per_lookup`, and its result_count and check are datoms-eavt's.
//!
//! Besides the workload's ops it measures, in the same run, the disk's raw sync rate before
//! and after a durable `tx-small`, and the bytes one small durable commit writes
//! (`commit-bytes`), so the durable write targets are read as ratios. `fsync-raw` writes as
//! the file log does: frames of one small commit's size (`--frame-bytes`, else measured on
//! the file backend, else 161) at increasing offsets into zeros written ahead, extending the
//! file by 256 KiB of zeros when full, one fdatasync per frame. `fsync-raw-append` is the
//! older probe, 4 KiB append + fdatasync, which records a new file size at every sync.

use datahike::{edn, Config, Conn, DatomKey, Edn, IndexOrder, Keyword, QueryInput};
use datahike_bench::{append_sync_rate, log_sync_rate, LOG_ZERO_AHEAD_BYTES, SCHEMA, SMALL_COMMIT_BYTES_DEFAULT};

/// The allocator matters for a database that builds many small immutable nodes; mimalloc is
/// what a Rust application embedding the library would typically pick.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use serde_json::{json, Value as Json};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

struct Args {
    data: PathBuf,
    ops: Option<Vec<String>>,
    out: Option<PathBuf>,
    backends: Vec<String>,
    /// Backends given by `--store NAME=EDN`, by name.
    stores: Vec<(String, Edn)>,
    dir: PathBuf,
    warmup_ms: f64,
    warmup_min: usize,
    sample_ms: f64,
    sample_min: usize,
    sample_max: usize,
    load_warmup: usize,
    load_samples: usize,
    /// Threads that keep a core busy for the whole run (`--busy N`): the database shares
    /// its machine with its users' work.
    busy: usize,
    cold: usize,
    /// The frame size of the `fsync-raw` probe (`--frame-bytes`); measured when not given.
    frame_bytes: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        data: PathBuf::from("../shared/bench/data/n20000"),
        ops: None,
        out: None,
        backends: vec!["file".into(), "memory".into()],
        stores: Vec::new(),
        dir: std::env::temp_dir().join("datahike-bench"),
        warmup_ms: 3000.0,
        warmup_min: 5,
        sample_ms: 2000.0,
        sample_min: 5,
        sample_max: 1000,
        load_warmup: 1,
        load_samples: 3,
        busy: 0,
        cold: 0,
        frame_bytes: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let flag = argv[i].as_str();
        let val = argv.get(i + 1).cloned().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|_| format!("{flag} needs a number, got {v}"));
        match flag {
            "--data" => a.data = PathBuf::from(val),
            "--ops" => a.ops = Some(val.split(',').map(str::to_string).collect()),
            "--out" => a.out = Some(PathBuf::from(val)),
            "--backend" => {
                a.backends = match val.as_str() {
                    "both" => vec!["file".into(), "memory".into()],
                    "file" | "memory" => vec![val],
                    other => return Err(format!("--backend must be file, memory or both, got {other}")),
                }
            }
            "--dir" => a.dir = PathBuf::from(val),
            "--cold" => a.cold = num(&val)? as usize,
            "--store" => {
                let (name, text) = val.split_once('=').ok_or_else(|| format!("--store needs NAME=EDN, got {val}"))?;
                let store = edn::read_str(text).map_err(|e| format!("--store {name}: {e}"))?;
                a.stores.push((name.to_string(), store));
            }
            "--warmup-ms" => a.warmup_ms = num(&val)?,
            "--warmup-min" => a.warmup_min = num(&val)? as usize,
            "--sample-ms" => a.sample_ms = num(&val)?,
            "--sample-min" => a.sample_min = num(&val)? as usize,
            "--sample-max" => a.sample_max = num(&val)? as usize,
            "--load-warmup" => a.load_warmup = num(&val)? as usize,
            "--load-samples" => a.load_samples = num(&val)? as usize,
            "--busy" => a.busy = num(&val)? as usize,
            "--frame-bytes" => match val.parse::<usize>() {
                Ok(bytes) if bytes > 0 => a.frame_bytes = Some(bytes),
                _ => return Err(format!("--frame-bytes needs a count of bytes of at least 1, got {val}")),
            },
            other => return Err(format!("unknown argument {other}")),
        }
        i += 2;
    }
    // `--store` backends run after those of `--backend`, and alone when it is not given.
    if !a.stores.is_empty() && !argv.iter().any(|f| f == "--backend") {
        a.backends.clear();
    }
    for (name, _) in &a.stores {
        if !a.backends.contains(name) {
            a.backends.push(name.clone());
        }
    }
    Ok(a)
}

const RULES_HOPS: &str = "[[(hop1 ?x ?y) [?x :follows ?y]]
 [(hop2 ?x ?y) (hop1 ?x ?y)] [(hop2 ?x ?y) [?x :follows ?t] (hop1 ?t ?y)]
 [(hop3 ?x ?y) (hop2 ?x ?y)] [(hop3 ?x ?y) [?x :follows ?t] (hop2 ?t ?y)]
 [(hop4 ?x ?y) (hop3 ?x ?y)] [(hop4 ?x ?y) [?x :follows ?t] (hop3 ?t ?y)]]";
const RULES_DEPTH: &str = "[[(reach ?x ?y ?d) [?x :follows ?y]]
 [(reach ?x ?y ?d) [(> ?d 1)] [(dec ?d) ?d2] [?x :follows ?t] (reach ?t ?y ?d2)]]";
const RULES_REACH: &str = "[[(follows ?x ?y) [?x :follows ?y]]
 [(follows ?x ?y) [?x :follows ?t] (follows ?t ?y)]]";

/// The integer in a result cell, 0 for anything else (WORKLOAD.md "sum of ints").
fn int_of(x: &Edn) -> i64 {
    match x {
        Edn::Int(i) => *i,
        _ => 0,
    }
}

const ATTRS: [&str; 7] = ["name", "last-name", "sex", "age", "salary", "email", "follows"];

struct Bench {
    args: Args,
    n: i64,
    people: Vec<Edn>,
    params: Edn,
    counter: usize,
    /// The config map of the database `config` made last, secrets included (for the reader
    /// processes of `readers-N`, which open the same store).
    last_config: Option<Edn>,
    /// The databases of `--store` backends this run made, deleted at the end.
    created: Vec<Config>,
}

fn stats(times: &[f64]) -> (f64, f64, f64) {
    let mut s = times.to_vec();
    s.sort_by(f64::total_cmp);
    let mid = s.len() / 2;
    let median = if s.len() % 2 == 1 { s[mid] } else { (s[mid - 1] + s[mid]) / 2.0 };
    (median, s[0], s[s.len() - 1])
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Bench {
    fn emit(&self, obj: Json) {
        let line = obj.to_string();
        println!("{line}");
        if let Some(out) = &self.args.out {
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(out).expect("open --out file");
            writeln!(f, "{line}").expect("write --out file");
        }
    }

    /// Whether to run `op`: `--ops` names it, or there is no `--ops` (every op of the default
    /// set runs).
    fn wanted(&self, op: &str) -> bool {
        self.args.ops.as_ref().is_none_or(|ops| ops.iter().any(|o| o == op))
    }

    /// Whether `--ops` names `op`: for the ops that are not in the default set.
    fn asked(&self, op: &str) -> bool {
        self.args.ops.as_ref().is_some_and(|ops| ops.iter().any(|o| o == op))
    }

    fn config(&mut self, backend: &str) -> Config {
        self.counter += 1;
        let unique = format!("{}-{}", std::process::id(), self.counter);
        let given = self.args.stores.iter().find(|(name, _)| name == backend).map(|(_, store)| store.clone());
        let store = match (backend, given) {
            (_, Some(store)) => {
                let store = unique_store(&store, &unique);
                let map = Edn::Map(vec![(Edn::kw("store"), store.clone())]);
                self.created.push(Config::from_edn(&map).expect("--store config"));
                store
            }
            ("file", None) => Edn::Map(vec![
                (Edn::kw("backend"), Edn::kw("file")),
                (Edn::kw("path"), Edn::str(&self.args.dir.join(format!("db-{unique}")).display().to_string())),
            ]),
            _ => Edn::Map(vec![
                (Edn::kw("backend"), Edn::kw("memory")),
                (Edn::kw("id"), Edn::str(&format!("bench-{unique}"))),
            ]),
        };
        let map = Edn::Map(vec![(Edn::kw("store"), store), (Edn::kw("keep-history?"), Edn::Bool(false))]);
        let mut c = Config::from_edn(&map).expect("bench config");
        self.last_config = Some(map);
        // The peers keep no history; Datahike's benchmark switches it off too.
        c.keep_history = false;
        if let Some(b) = std::env::var("DATAHIKE_BENCH_BRANCHING").ok().and_then(|s| s.parse().ok()) {
            c.branching_factor = b;
        }
        c
    }

    fn fresh_conn(&mut self, backend: &str) -> Conn {
        let config = self.config(backend);
        let _ = datahike::delete_database(&config);
        datahike::create_database(&config).expect("create database");
        let conn = datahike::connect(&config).expect("connect");
        conn.transact(&edn::read_str(SCHEMA).expect("schema")).expect("schema tx");
        conn
    }

    /// Runs one op with the workload's protocol and emits its line. `run` gets the iteration
    /// number and returns `(result_count, check)`; the whole of `run` is timed.
    fn bench(
        &mut self,
        peer: &str,
        op: &str,
        load: bool,
        durable: bool,
        mut run: impl FnMut(&mut Bench, usize) -> (i64, Option<i64>),
    ) {
        let m = self.measure(load, |b, iter| {
            let (count, check) = run(b, iter);
            (count, check, None)
        });
        self.emit(self.line(peer, op, durable, &m));
    }

    /// Runs one op with the workload's protocol. `run` gets the iteration number and returns
    /// `(result_count, check, timed_ms)`: `timed_ms` is the time of the part of the run that
    /// the op times itself (a load times its transactions, not the database's creation nor
    /// the count of its datoms), `None` to time the whole of `run`.
    fn measure(
        &mut self,
        load: bool,
        mut run: impl FnMut(&mut Bench, usize) -> (i64, Option<i64>, Option<f64>),
    ) -> Measured {
        let mut timed = |b: &mut Bench, iter: usize| {
            let t = Instant::now();
            let (count, check, own_ms) = run(b, iter);
            (count, check, own_ms.unwrap_or_else(|| ms_since(t)))
        };
        let (count, check, first_ms) = timed(self, 0);
        let mut times = Vec::new();
        let mut iter = 1;
        let mut warm = 0;
        if load {
            for _ in 0..self.args.load_warmup {
                timed(self, iter);
                iter += 1;
                warm += 1;
            }
            for _ in 0..self.args.load_samples.max(1) {
                times.push(timed(self, iter).2);
                iter += 1;
            }
        } else {
            let start = Instant::now();
            while warm < self.args.warmup_min || ms_since(start) < self.args.warmup_ms {
                timed(self, iter);
                iter += 1;
                warm += 1;
            }
            let start = Instant::now();
            while (times.len() < self.args.sample_min || ms_since(start) < self.args.sample_ms)
                && times.len() < self.args.sample_max
            {
                times.push(timed(self, iter).2);
                iter += 1;
            }
        }
        Measured { count, check, first_ms, times, warm }
    }

    /// The JSON line of WORKLOAD.md section 4 for what `measure` returned.
    fn line(&self, peer: &str, op: &str, durable: bool, m: &Measured) -> Json {
        let (median, min, max) = stats(&m.times);
        json!({
            "peer": peer, "op": op, "n": self.n,
            "median_ms": r3(median), "min_ms": r3(min), "max_ms": r3(max),
            "result_count": m.count, "check": m.check, "first_ms": r3(m.first_ms),
            "samples": m.times.len(), "warmup": m.warm, "durable": durable,
            "version": env!("CARGO_PKG_VERSION"),
        })
    }
}

/// What [`Bench::measure`] measured of one op.
struct Measured {
    count: i64,
    check: Option<i64>,
    /// The first (cold) run.
    first_ms: f64,
    /// The timed runs after the warm-up.
    times: Vec<f64>,
    /// Runs of the warm-up.
    warm: usize,
}

impl Measured {
    fn median_ms(&self) -> f64 {
        stats(&self.times).0
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Sets `fields`' keys in the JSON object `line`.
fn with_fields(mut line: Json, fields: Json) -> Json {
    if let (Some(line), Json::Object(fields)) = (line.as_object_mut(), fields) {
        line.extend(fields);
    }
    line
}

/// `store` with `-<unique>` appended to the keys that name a store within a server or bucket
/// (`:id`, `:table`, `:prefix`, `:dbname` of SQLite, `:path`), so each database of a run is new.
fn unique_store(store: &Edn, unique: &str) -> Edn {
    let Edn::Map(entries) = store else { return store.clone() };
    let sqlite = store.get_kw("dbtype") == Some(&Edn::str("sqlite"));
    Edn::Map(
        entries
            .iter()
            .map(|(k, v)| {
                let key = k.as_keyword().map(|k| k.as_str()).unwrap_or("");
                let named = matches!(key, "id" | "table" | "prefix" | "path") || (sqlite && key == "dbname");
                match v {
                    Edn::Str(text) if named => (k.clone(), Edn::str(&format!("{text}-{unique}"))),
                    Edn::Map(_) => (k.clone(), unique_store(v, unique)),
                    _ => (k.clone(), v.clone()),
                }
            })
            .collect(),
    )
}

impl Bench {
    /// `<op>-cold`: `query` on a new read-only connection to `config`'s store (its own, empty
    /// node cache), `--cold` times, and `connect-cold`, the opening of that connection.
    fn cold(&mut self, peer: &str, op: &str, config: &Config, query: &Edn, extra: &[QueryInput]) {
        let config = Config { read_only: true, ..config.clone() };
        let (mut connects, mut times) = (Vec::new(), Vec::new());
        let mut count = 0;
        for _ in 0..self.args.cold {
            let t = Instant::now();
            let conn = datahike::connect(&config).expect("connect read-only");
            connects.push(t.elapsed().as_secs_f64() * 1000.0);
            let mut inputs = vec![QueryInput::from(conn.db())];
            inputs.extend(extra.iter().cloned());
            let t = Instant::now();
            let result = datahike::q(query, &inputs).expect("query");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            count = result.as_seq().map_or(0, <[Edn]>::len) as i64;
            conn.release().expect("release");
        }
        for (name, samples) in [(format!("{op}-cold"), &times), ("connect-cold".to_string(), &connects)] {
            let (median, min, max) = stats(samples);
            self.emit(json!({
                "peer": peer, "op": name, "n": self.n, "median_ms": r3(median), "min_ms": r3(min),
                "max_ms": r3(max), "result_count": count, "check": null, "samples": samples.len(),
                "warmup": 0, "durable": false, "version": env!("CARGO_PKG_VERSION"),
            }));
        }
    }
}

/// Syncs of each `fsync-raw` probe.
const PROBE_SYNCS: usize = 300;

const APPEND_NOTE: &str = "4 KiB append + fdatasync (a new file size at every sync), measured around tx-small";

impl Bench {
    /// The frame size of the `fsync-raw` probe and where it comes from: `--frame-bytes`, else
    /// on the file backend the bytes one small commit writes, measured, else
    /// [`SMALL_COMMIT_BYTES_DEFAULT`].
    fn probe_frame_bytes(&mut self, backend: &str, new_people: &[Edn]) -> (usize, &'static str) {
        if let Some(bytes) = self.args.frame_bytes {
            return (bytes, "--frame-bytes");
        }
        if backend != "file" {
            return (SMALL_COMMIT_BYTES_DEFAULT, "default");
        }
        // The median over 21 commits of one new person each, into a database with only the
        // schema: what the process hands to `write` per commit (`commit-bytes` counts the
        // same way), which is the log frame.
        let conn = self.fresh_conn(backend);
        let mut bytes: Vec<u64> = new_people
            .iter()
            .take(21)
            .enumerate()
            .map(|(i, p)| {
                let tx = Edn::Vector(vec![with_email(p, &format!("frame{i}@example.com"))]);
                let before = bytes_written_by_process();
                conn.transact(&tx).expect("commit");
                bytes_written_by_process() - before
            })
            .collect();
        discard(conn, backend);
        if bytes.is_empty() {
            return (SMALL_COMMIT_BYTES_DEFAULT, "default");
        }
        bytes.sort_unstable();
        (usize::try_from(bytes[bytes.len() / 2]).unwrap_or(SMALL_COMMIT_BYTES_DEFAULT), "measured")
    }
}

fn person_datoms(conn: &Conn) -> i64 {
    let db = conn.db();
    ATTRS.iter().map(|a| db.datoms(IndexOrder::Aevt, &[Edn::kw(a)]).expect("datoms").len() as i64).sum()
}

/// Releases `conn` and, on the `file` and `memory` backends, deletes its database (the loads
/// make one per run; those of `--store` backends are deleted at the end of the run).
fn discard(conn: Conn, backend: &str) {
    let config = conn.config().clone();
    conn.release().expect("release");
    if matches!(backend, "file" | "memory") {
        datahike::delete_database(&config).expect("delete database");
    }
}

fn with_email(person: &Edn, email: &str) -> Edn {
    match person {
        Edn::Map(m) => Edn::Map(
            m.iter()
                .map(
                    |(k, v)| if *k == Edn::kw("email") { (k.clone(), Edn::str(email)) } else { (k.clone(), v.clone()) },
                )
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Bytes this process has passed to `write` and friends so far (`wchar` of `/proc/self/io`).
fn bytes_written_by_process() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines()
        .find_map(|line| line.strip_prefix("wchar:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("wchar in /proc/self/io")
}

/// `datahike-bench --reader-child CONFIG-EDN SECONDS QUERY`: one reader process of the
/// `readers-N` ops. Connects read-only, runs QUERY on the latest value again and again for
/// SECONDS, and prints `{"queries": n, "cold_ms": first query, "median_ms": ...}`.
fn reader_child(argv: &[String]) {
    let [config, seconds, query] = argv else {
        eprintln!("datahike-bench --reader-child CONFIG-EDN SECONDS QUERY");
        std::process::exit(2);
    };
    let mut config = Config::parse(config).expect("reader config");
    config.read_only = true;
    let seconds: f64 = seconds.parse().expect("seconds");
    let query = edn::read_str(query).expect("query");
    let t0 = Instant::now();
    let conn = datahike::connect(&config).expect("reader connect");
    datahike::q(&query, &[QueryInput::from(conn.db())]).expect("query");
    let cold_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let mut times = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        let s = Instant::now();
        datahike::q(&query, &[QueryInput::from(conn.db())]).expect("query");
        times.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    let (median, _, _) = stats(&times);
    println!("{}", json!({"queries": times.len(), "cold_ms": cold_ms, "median_ms": median}));
}

/// Runs `procs` reader processes on the store of `config` at once, each running `query` for
/// `seconds`; returns (queries per second over all, median latency, median cold latency).
fn readers(config: &Edn, procs: usize, seconds: f64, query: &str) -> (f64, f64, f64) {
    let exe = std::env::current_exe().expect("own executable");
    let children: Vec<std::process::Child> = (0..procs)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["--reader-child", &config.to_edn_string(), &seconds.to_string(), query])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn reader")
        })
        .collect();
    let mut total = 0.0;
    let (mut medians, mut colds) = (Vec::new(), Vec::new());
    for child in children {
        let out = child.wait_with_output().expect("reader");
        assert!(out.status.success(), "a reader process failed");
        let report: Json = serde_json::from_slice(&out.stdout).expect("reader report");
        total += report["queries"].as_f64().unwrap_or(0.0);
        medians.push(report["median_ms"].as_f64().unwrap_or(0.0));
        colds.push(report["cold_ms"].as_f64().unwrap_or(0.0));
    }
    (total / seconds, stats(&medians).0, stats(&colds).0)
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--reader-child") {
        reader_child(&argv[1..]);
        return;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("datahike-bench: {e}");
            std::process::exit(2);
        }
    };
    let read =
        |name: &str| std::fs::read_to_string(args.data.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"));
    let meta: Json = serde_json::from_str(&read("meta.json")).expect("meta.json");
    let people: Vec<Edn> = read("people.edn")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| edn::read_str(l).expect("person"))
        .collect();
    let params = edn::read_str(&read("params.edn")).expect("params.edn");
    let n = meta["n"].as_i64().expect("n in meta.json");
    let backends = args.backends.clone();
    for _ in 0..args.busy {
        // Busy until the process exits.
        std::thread::spawn(|| {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        });
    }
    let mut b = Bench { args, n, people, params, counter: 0, last_config: None, created: Vec::new() };
    std::fs::create_dir_all(&b.args.dir).expect("bench dir");
    for backend in backends {
        let peer = format!(
            "datahike-rs-{}",
            match backend.as_str() {
                "memory" => "mem",
                other => other,
            }
        );
        let durable = backend != "memory";
        let tx_all = Edn::Vector(b.people.clone());
        // The loads (WORKLOAD.md section 5). `load-bulk` and `load-chunked` are timed until
        // the indices are durable (`Conn::flush` has returned: the index nodes are written
        // and the head that names them is published), which is what a user waits for until
        // the data is in durable indices. `<op>-log`, only when asked for, are timed until
        // the log record of the last transaction is durable (`transact` has returned); the
        // index nodes then follow in the background. Creating the database and counting its
        // datoms are not timed. The database of load-bulk's last run is the one the read ops
        // use.
        let mut loaded: Option<(Conn, Edn)> = None;
        let bulk = std::slice::from_ref(&tx_all);
        let chunks: Vec<Edn> = b.people.chunks(100).map(|c| Edn::Vector(c.to_vec())).collect();
        let loads = [
            ("load-bulk", bulk, true),
            ("load-bulk-log", bulk, false),
            ("load-chunked", &chunks[..], true),
            ("load-chunked-log", &chunks[..], false),
        ];
        for (op, txs, until_indices) in loads {
            if !(if until_indices { b.wanted(op) } else { b.asked(op) }) {
                continue;
            }
            let m = b.measure(true, |b, _| {
                let conn = b.fresh_conn(&backend);
                let config = b.last_config.clone().expect("the new database's config");
                let t = Instant::now();
                for tx in txs {
                    conn.transact(tx).expect(op);
                }
                if until_indices {
                    conn.flush().expect("flush");
                }
                let timed_ms = ms_since(t);
                // After a log-only run, the index flush it started must not overlap the next.
                conn.flush().expect("flush");
                let count = person_datoms(&conn);
                if op == "load-bulk" {
                    if let Some((previous, _)) = loaded.replace((conn, config)) {
                        discard(previous, &backend);
                    }
                } else {
                    discard(conn, &backend);
                }
                (count, None, Some(timed_ms))
            });
            let line = b.line(&peer, op, durable, &m);
            let datoms_per_s = m.count as f64 / (m.median_ms() / 1000.0);
            b.emit(with_fields(line, json!({"datoms_per_s": datoms_per_s.round() as i64})));
        }
        let (conn, loaded_config) = loaded.unwrap_or_else(|| {
            let conn = b.fresh_conn(&backend);
            conn.transact(&tx_all).expect("load");
            (conn, b.last_config.clone().expect("the loaded database's config"))
        });
        // The index nodes of an untimed load are written in the background after its log
        // record is durable; let that finish before timing reads, so they are not measured
        // against a concurrent flush.
        conn.flush().expect("flush");
        let db = conn.db();
        // Queries (WORKLOAD.md section 5), parsed once outside the timed region, as the
        // peers cache parsed queries.
        let start = b.params.get_kw("rule-start").cloned().expect("rule-start");
        let queries: Vec<(&str, &str, Vec<QueryInput>)> = vec![
            ("q1", r#"[:find ?e :where [?e :name "Ivan"]]"#, vec![]),
            ("q2", r#"[:find ?e ?a :where [?e :name "Ivan"] [?e :age ?a]]"#, vec![]),
            ("q3", r#"[:find ?e ?a :where [?e :name "Ivan"] [?e :age ?a] [?e :sex :male]]"#, vec![]),
            (
                "q4",
                r#"[:find ?e ?l ?a :where [?e :name "Ivan"] [?e :last-name ?l] [?e :age ?a] [?e :sex :male]]"#,
                vec![],
            ),
            ("qpred", "[:find ?e ?s :where [?e :salary ?s] [(> ?s 50000)]]", vec![]),
            (
                "qpred-join",
                r#"[:find ?e ?f :where [?e :name "Ivan"] [?e :age ?a] [(> ?a 18)] [?e :follows ?f] [?f :sex :female]]"#,
                vec![],
            ),
            ("qagg", "[:find ?a (count ?e) (max ?s) (avg ?s) :where [?e :age ?a] [?e :salary ?s]]", vec![]),
            (
                "rule-hops",
                "[:find ?y :in $ % ?start :where (hop4 ?start ?y)]",
                vec![QueryInput::from(edn::read_str(RULES_HOPS).expect("rules")), QueryInput::from(start.clone())],
            ),
            (
                "rule-depth",
                "[:find ?y :in $ % ?start ?depth :where (reach ?start ?y ?depth)]",
                vec![
                    QueryInput::from(edn::read_str(RULES_DEPTH).expect("rules")),
                    QueryInput::from(start.clone()),
                    QueryInput::from(Edn::Int(4)),
                ],
            ),
            (
                "rule-reach",
                "[:find ?y :in $ % ?start :where (follows ?start ?y)]",
                vec![QueryInput::from(edn::read_str(RULES_REACH).expect("rules")), QueryInput::from(start.clone())],
            ),
        ];
        for (name, text, extra) in queries {
            if !b.wanted(name) {
                continue;
            }
            let query = edn::read_str(text).expect("query");
            let mut inputs = vec![QueryInput::from(db.clone())];
            inputs.extend(extra);
            if std::env::var_os("DATAHIKE_BENCH_EXPLAIN").is_some() {
                // The plan of each query, for tuning; stderr keeps the JSON lines clean.
                eprintln!("{name} ({peer}):\n{}", datahike::query::explain(&query, &inputs).expect("explain"));
            }
            if b.args.cold > 0 {
                b.cold(&peer, name, conn.config(), &query, &inputs[1..]);
            }
            b.bench(&peer, name, false, false, |_, _| {
                let result = datahike::q(&query, &inputs).expect("query");
                let rows = match &result {
                    Edn::Set(rows) | Edn::Vector(rows) => rows.clone(),
                    _ => Vec::new(),
                };
                let check: i64 = if name == "qagg" {
                    // ?a + count + max per row; the float avg is skipped.
                    rows.iter().map(|r| r.as_seq().map_or(0, |c| c.iter().take(3).map(int_of).sum::<i64>())).sum()
                } else {
                    rows.iter().map(|r| r.as_seq().map_or(0, |c| c.iter().map(int_of).sum::<i64>())).sum()
                };
                (rows.len() as i64, Some(check))
            });
        }
        if b.wanted("pull-wildcard") || b.wanted("pull-nested") {
            let eids = b.params.get_kw("pull-eids").cloned().expect("pull-eids");
            for (name, pattern) in [("pull-wildcard", "[*]"), ("pull-nested", "[:name {:follows [:name]}]")] {
                if !b.wanted(name) {
                    continue;
                }
                let pattern = edn::read_str(pattern).expect("pattern");
                b.bench(&peer, name, false, false, |_, _| {
                    let maps = datahike::pull_many(&db, &pattern, &eids).expect("pull-many");
                    let maps = maps.as_seq().map(<[Edn]>::to_vec).unwrap_or_default();
                    let follows = Edn::kw("follows");
                    let check: i64 = maps
                        .iter()
                        .map(|m| match m.get(&follows) {
                            Some(Edn::Vector(fs)) if name == "pull-wildcard" => fs.len() as i64,
                            Some(Edn::Vector(fs)) => fs.iter().filter(|f| f.get_kw("name").is_some()).count() as i64,
                            _ => 0,
                        })
                        .sum();
                    (maps.len() as i64, Some(check))
                });
            }
        }
        if b.wanted("lookup-email") {
            let emails: Vec<Edn> =
                b.params.get_kw("lookup-emails").and_then(Edn::as_seq).expect("lookup-emails").to_vec();
            let email = Keyword::new("email");
            let salary = Edn::kw("salary");
            b.bench(&peer, "lookup-email", false, false, |_, _| {
                let (mut found, mut sum) = (0i64, 0i64);
                for e in &emails {
                    let lr = Edn::Vector(vec![Edn::Keyword(email), e.clone()]);
                    if let Some(eid) = db.entid(&lr).expect("entid") {
                        if let Some(d) =
                            db.datoms(IndexOrder::Eavt, &[Edn::Int(eid), salary.clone()]).expect("datoms").first()
                        {
                            found += 1;
                            sum += d.v.as_long().unwrap_or(0);
                        }
                    }
                }
                (found, Some(sum))
            });
        }
        if b.wanted("datoms-eavt") {
            let eids: Vec<Edn> = b.params.get_kw("datom-eids").and_then(Edn::as_seq).expect("datom-eids").to_vec();
            let salary = Edn::kw("salary");
            b.bench(&peer, "datoms-eavt", false, false, |_, _| {
                let (mut found, mut sum) = (0i64, 0i64);
                for e in &eids {
                    if let Some(d) = db.datoms(IndexOrder::Eavt, &[e.clone(), salary.clone()]).expect("datoms").first()
                    {
                        found += 1;
                        sum += d.v.as_long().unwrap_or(0);
                    }
                }
                (found, Some(sum))
            });
        }
        // A warm point read of one attribute of one entity: the `:salary` of each entity of
        // `datom-eids` (those of datoms-eavt, whose result_count and check it repeats) through
        // `Db::datoms_key`, the cheapest public read of "attribute A of entity E": it takes an
        // entity id and an attribute as they are, where `Db::datoms` resolves EDN components
        // first. `ns_per_lookup` is the median run's time divided by its lookups. Not a
        // workload op: the peers do not run it (it is in this runner's default set).
        if b.wanted("lookup-attr") {
            let eids: Vec<i64> = b
                .params
                .get_kw("datom-eids")
                .and_then(Edn::as_seq)
                .expect("datom-eids")
                .iter()
                .map(|e| match e {
                    Edn::Int(e) => *e,
                    other => panic!("datom-eids holds {other}, not an entity id"),
                })
                .collect();
            let salary = Keyword::new("salary");
            let m = b.measure(false, |_, _| {
                let (mut found, mut sum) = (0i64, 0i64);
                for &e in &eids {
                    let key = DatomKey { e: Some(e), a: Some(salary), ..DatomKey::default() };
                    if let Some(d) = db.datoms_key(IndexOrder::Eavt, &key).expect("datoms").first() {
                        found += 1;
                        sum += d.v.as_long().unwrap_or(0);
                    }
                }
                (found, Some(sum), None)
            });
            let ns_per_lookup = m.median_ms() * 1e6 / eids.len().max(1) as f64;
            let line = b.line(&peer, "lookup-attr", false, &m);
            b.emit(with_fields(line, json!({"ns_per_lookup": (ns_per_lookup * 10.0).round() / 10.0})));
        }
        if b.wanted("tx-small") {
            let new_people: Vec<Edn> =
                b.params.get_kw("new-people").and_then(Edn::as_seq).expect("new-people").to_vec();
            // The disk's raw sync rate around tx-small: once with the file log's write pattern
            // (frames of one small commit's size into zeros written ahead), once as 4 KiB
            // appends that extend the file at every sync.
            let probe_dir = b.args.dir.clone();
            let frame = if durable { Some(b.probe_frame_bytes(&backend, &new_people)) } else { None };
            let probe = |frame_bytes: usize| {
                (log_sync_rate(&probe_dir, PROBE_SYNCS, frame_bytes), append_sync_rate(&probe_dir, PROBE_SYNCS))
            };
            let before = frame.map(|(frame_bytes, _)| probe(frame_bytes));
            b.bench(&peer, "tx-small", true, durable, |_, iter| {
                let mut n = 0;
                for p in &new_people {
                    let email = match p.get_kw("email") {
                        Some(Edn::Str(s)) => format!("r{iter}.{s}"),
                        _ => format!("r{iter}.missing"),
                    };
                    conn.transact(&Edn::Vector(vec![with_email(p, &email)])).expect("tx-small");
                    n += 1;
                }
                (n, None)
            });
            if let (Some((frame_bytes, frame_from)), Some((log_before, append_before))) = (frame, before) {
                let (log_after, append_after) = probe(frame_bytes);
                let note = format!(
                    "{frame_bytes}-byte frames (one small commit's, {frame_from}) written at increasing offsets into zeros \
                     written ahead {} KiB at a time, one fdatasync each, as the file log appends; measured around tx-small",
                    LOG_ZERO_AHEAD_BYTES >> 10
                );
                for (op, before, after, note, frame) in [
                    ("fsync-raw", log_before, log_after, note.as_str(), Some(frame_bytes)),
                    ("fsync-raw-append", append_before, append_after, APPEND_NOTE, None),
                ] {
                    b.emit(json!({"peer": peer, "op": op, "n": b.n, "ops_per_s_before": before.round(),
                                  "ops_per_s_after": after.round(), "result_count": null,
                                  "median_ms": r3(1000.0 / ((before + after) / 2.0)), "min_ms": null, "max_ms": null,
                                  "frame_bytes": frame, "note": note}));
                }
            }
        }
        // Group commit: the same 1,000 small transactions from 1, 8 and 64 threads on one
        // connection at once (each thread its share); what a server's clients wait for. Only
        // when asked for (`--ops tx-threads-1,tx-threads-8,tx-threads-64`).
        for threads in [1usize, 8, 64] {
            let op = format!("tx-threads-{threads}");
            if b.args.ops.as_ref().is_none_or(|ops| !ops.contains(&op)) {
                continue;
            }
            let new_people: Vec<Edn> =
                b.params.get_kw("new-people").and_then(Edn::as_seq).expect("new-people").to_vec();
            b.bench(&peer, &op, true, durable, |_, iter| {
                std::thread::scope(|scope| {
                    for t in 0..threads {
                        let (conn, new_people) = (conn.clone(), &new_people);
                        scope.spawn(move || {
                            for p in new_people.iter().skip(t).step_by(threads) {
                                let email = match p.get_kw("email") {
                                    Some(Edn::Str(s)) => format!("g{threads}.{iter}.{s}"),
                                    _ => format!("g{threads}.{iter}.missing"),
                                };
                                conn.transact(&Edn::Vector(vec![with_email(p, &email)])).expect("tx-threads");
                            }
                        });
                    }
                });
                (new_people.len() as i64, None)
            });
        }
        if durable && b.wanted("commit-bytes") {
            // Bytes written by 100 small commits vs. their payload: what the process handed to
            // `write` (the kernel's `wchar` count, so zeros written ahead in the log count too);
            // index flushes are excluded because none happens within 100 commits.
            // No background flush of the shared connection may run while we count.
            conn.flush().expect("flush");
            let c = b.fresh_conn(&backend);
            c.transact(&tx_all).expect("load");
            c.flush().expect("flush");
            let before = bytes_written_by_process();
            let new_people: Vec<Edn> =
                b.params.get_kw("new-people").and_then(Edn::as_seq).expect("new-people").to_vec();
            let mut payload = 0usize;
            for (i, p) in new_people.iter().take(100).enumerate() {
                let tx = Edn::Vector(vec![with_email(p, &format!("cb{i}@example.com"))]);
                payload += tx.to_edn_string().len();
                c.transact(&tx).expect("commit");
            }
            let written = bytes_written_by_process() - before;
            b.emit(json!({"peer": peer, "op": "commit-bytes", "n": b.n, "commits": 100,
                          "bytes_written": written, "payload_bytes": payload,
                          "bytes_per_commit": written / 100, "payload_per_commit": payload / 100,
                          "result_count": null, "median_ms": null, "min_ms": null, "max_ms": null}));
            c.release().expect("release");
        }
        // Time travel (issue 4): a second load changes every age, then q2 and q4 run on the
        // as-of view of the first load and on the history view, beside the current db. Only
        // when asked for (`--ops q2-asof,...`): these are not workload ops the peers run.
        // Reads from 1, 2 and 4 reader processes on the same store at once (`:read-only?`
        // connections, each its own process and cache), while this process holds the writer
        // connection: throughput of all together, median latency, and the first (cold) query
        // of a fresh process. Only when asked for, on stores other processes can open.
        for procs in [1usize, 2, 4] {
            let op = format!("readers-{procs}");
            if backend == "memory" || b.args.ops.is_none() || !b.wanted(&op) {
                continue;
            }
            let (qps, median, cold) =
                readers(&loaded_config, procs, 5.0, r#"[:find ?e ?a :where [?e :name "Ivan"] [?e :age ?a]]"#);
            b.emit(json!({"peer": peer, "op": op, "n": b.n, "procs": procs, "queries_per_s": qps.round(),
                          "median_ms": r3(median), "cold_ms": r3(cold), "min_ms": null, "max_ms": null,
                          "result_count": null, "note": "q2 in each reader process, 5 s"}));
        }
        let temporal = ["q2-current", "q4-current", "q2-asof", "q4-asof", "q2-history", "q4-history"];
        if b.args.ops.is_some() && temporal.iter().any(|op| b.wanted(op)) {
            // A database that keeps history (the others do not, as the peers keep none).
            let mut config = b.config(&backend);
            config.keep_history = true;
            datahike::create_database(&config).expect("create database");
            let conn = datahike::connect(&config).expect("connect");
            conn.transact(&edn::read_str(SCHEMA).expect("schema")).expect("schema tx");
            conn.transact(&Edn::Vector(b.people.clone())).expect("first load");
            let first_load = conn.db().max_tx();
            let age = Keyword::new("age");
            let email = Keyword::new("email");
            let second: Vec<Edn> = b
                .people
                .iter()
                .filter_map(|p| {
                    let Some(Edn::Int(a)) = p.get(&Edn::Keyword(age)) else { return None };
                    let e = p.get(&Edn::Keyword(email))?.clone();
                    Some(Edn::Map(vec![(Edn::Keyword(email), e), (Edn::Keyword(age), Edn::Int(a + 1))]))
                })
                .collect();
            conn.transact(&Edn::Vector(second)).expect("second load");
            conn.flush().expect("flush");
            let now = conn.db();
            let views = [
                ("current", now.clone()),
                ("asof", now.as_of(datahike::TimePoint::Tx(first_load)).expect("as-of")),
                ("history", now.history().expect("history")),
            ];
            let queries = [
                ("q2", r#"[:find ?e ?a :where [?e :name "Ivan"] [?e :age ?a]]"#),
                ("q4", r#"[:find ?e ?l ?a :where [?e :name "Ivan"] [?e :last-name ?l] [?e :age ?a] [?e :sex :male]]"#),
            ];
            for (view, db) in &views {
                for (q, text) in queries {
                    let name = format!("{q}-{view}");
                    if !b.wanted(&name) {
                        continue;
                    }
                    let query = edn::read_str(text).expect("query");
                    let inputs = [QueryInput::from(db.clone())];
                    if std::env::var_os("DATAHIKE_BENCH_EXPLAIN").is_some() {
                        eprintln!("{name} ({peer}):\n{}", datahike::query::explain(&query, &inputs).expect("explain"));
                    }
                    b.bench(&peer, &name, false, false, |_, _| {
                        let result = datahike::q(&query, &inputs).expect("query");
                        let rows = result.as_seq().map(<[Edn]>::to_vec).unwrap_or_default();
                        let check: i64 =
                            rows.iter().map(|r| r.as_seq().map_or(0, |c| c.iter().map(int_of).sum::<i64>())).sum();
                        (rows.len() as i64, Some(check))
                    });
                }
            }
            conn.release().expect("release");
        }
        // Garbage collection (issue 4) over a database with 1,000 commits after the load, each
        // changing one age: once with the commits packed between two flushes (our normal
        // path), once with a flush after every commit (1,000 snapshots, as Datahike stores
        // each commit). Timed once each: `gc-keep-all` (no cutoff: marks every commit,
        // deletes nothing), then `gc-cutoff` (cutoff now: only the head stays).
        for (variant, flush_each) in [("packed", false), ("snapshots", true)] {
            let ops = [format!("gc-keep-all-{variant}"), format!("gc-cutoff-{variant}")];
            if b.args.ops.is_none() || !ops.iter().any(|op| b.wanted(op)) {
                continue;
            }
            let mut config = b.config(&backend);
            config.keep_history = true;
            datahike::create_database(&config).expect("create database");
            let gc_conn = datahike::connect(&config).expect("connect");
            gc_conn.transact(&edn::read_str(SCHEMA).expect("schema")).expect("schema tx");
            gc_conn.transact(&Edn::Vector(b.people.clone())).expect("load");
            gc_conn.flush().expect("flush");
            let email = Keyword::new("email");
            for i in 0..1000usize {
                let p = &b.people[(i * 7919) % b.people.len()];
                let e = p.get(&Edn::Keyword(email)).expect("email").clone();
                let tx = Edn::Vector(vec![Edn::Vector(vec![
                    Edn::kw("db/add"),
                    Edn::Vector(vec![Edn::Keyword(email), e]),
                    Edn::kw("age"),
                    Edn::Int(200 + i as i64),
                ])]);
                gc_conn.transact(&tx).expect("commit");
                if flush_each {
                    gc_conn.flush().expect("flush");
                }
            }
            gc_conn.flush().expect("flush");
            for (op, cutoff) in [(&ops[0], None), (&ops[1], Some(gc_conn.db().last_tx_instant()))] {
                let t0 = Instant::now();
                let report = gc_conn.gc_storage(cutoff).expect("gc");
                let ms = r3(t0.elapsed().as_secs_f64() * 1000.0);
                b.emit(json!({"peer": peer, "op": op, "n": b.n, "commits": 1000,
                              "median_ms": ms, "min_ms": ms, "max_ms": ms, "samples": 1,
                              "result_count": report.deleted.len(), "kept_nodes": report.kept_nodes,
                              "kept_commits": report.kept_commits, "check": null, "durable": backend == "file"}));
            }
            gc_conn.verify_storage().expect("storage intact after gc");
            gc_conn.release().expect("release");
        }
        conn.release().expect("release");
        for config in std::mem::take(&mut b.created) {
            datahike::delete_database(&config).expect("delete a --store database");
        }
    }
    let _ = std::fs::remove_dir_all(&b.args.dir);
}
