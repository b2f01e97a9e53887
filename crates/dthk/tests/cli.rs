//! End-to-end tests of the `dthk` binary against file stores in temporary directories: every
//! command of this version, every output format, the argument prefixes, standard input and
//! `--tx-file`, error messages and exit codes, and concurrent writers from separate processes.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A temporary directory with a config file `cfg.edn` for a file store inside it.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// A directory with `cfg.edn` holding `{:store {:backend :file :path ".../db"} <extra>}`.
    fn new(extra: &str) -> Env {
        let env = Env { dir: tempfile::tempdir().unwrap() };
        env.config("cfg.edn", "db", extra);
        env
    }

    /// Writes a config file for the store `store` in this directory.
    fn config(&self, file: &str, store: &str, extra: &str) -> PathBuf {
        let path = self.dir.path().join(store);
        let text = format!("{{:store {{:backend :file :path {:?}}} {extra}}}", path.display().to_string());
        self.write(file, &text)
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dthk"));
        command.args(args).current_dir(self.dir.path());
        command
    }

    /// Runs with standard input closed.
    fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs with `input` on standard input.
    fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child =
            self.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs and expects success; returns standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_success(args, &out);
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects exit code `code`; returns standard error.
    fn fails(&self, args: &[&str], code: i32) -> String {
        common::fails(self.dir.path(), args, code)
    }

    /// The number of datoms `dthk datoms db:cfg.edn :aevt <attr>` prints.
    fn count(&self, attr: &str) -> usize {
        self.ok(&["datoms", "db:cfg.edn", ":aevt", attr]).matches("#datahike/Datom").count()
    }
}

fn assert_success(args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "dthk {args:?} exited {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cfg.edn` of the brief: a file store with `:schema-flexibility :read`, created.
fn read_db() -> Env {
    let env = Env::new(":schema-flexibility :read");
    env.ok(&["create-database", "edn:cfg.edn"]);
    env
}

#[test]
fn create_transact_and_read_back() {
    let env = Env::new(":schema-flexibility :read");
    let created = env.ok(&["create-database", "edn:cfg.edn"]);
    assert!(created.starts_with('{') && created.ends_with("}\n") && created.lines().count() == 1, "{created}");
    assert!(created.contains(":schema-flexibility :read") && created.contains(":backend :file"), "{created}");
    assert_eq!(env.ok(&["database-exists", "edn:cfg.edn"]), "true\n");

    let report = env.ok(&["transact", "conn:cfg.edn", r#"[{:name "Alice" :age 20} [:db/add -1 :name "Bob"]]"#]);
    assert!(report.starts_with("{:db-before #datahike/DB {"), "{report}");
    assert!(report.contains(r#"#datahike/Datom [1 :name "Alice" 536870913 true]"#), "{report}");
    assert!(report.contains(":tempids {-1 2, :db/current-tx 536870913}"), "{report}");

    let by_map = env.ok(&["datoms", "db:cfg.edn", "{:index :eavt :components [1]}"]);
    assert_eq!(
        by_map,
        "[#datahike/Datom [1 :age 20 536870913 true] #datahike/Datom [1 :name \"Alice\" 536870913 true]]\n"
    );
    assert_eq!(env.ok(&["datoms", "db:cfg.edn", ":eavt", "1"]), by_map);
    assert_eq!(
        env.ok(&["datoms", "db:cfg.edn", ":eavt", "1", ":age"]),
        "[#datahike/Datom [1 :age 20 536870913 true]]\n"
    );

    let seek = env.ok(&["seek-datoms", "db:cfg.edn", "{:index :aevt :components [:name]}"]);
    assert!(
        seek.starts_with(r#"[#datahike/Datom [1 :name "Alice" 536870913 true] #datahike/Datom [2 :name "Bob""#),
        "{seek}"
    );
    let rseek = env.ok(&["rseek-datoms", "db:cfg.edn", "{:index :aevt :components [:name 2]}"]);
    assert!(
        rseek.starts_with(r#"[#datahike/Datom [2 :name "Bob" 536870913 true] #datahike/Datom [1 :name "Alice""#),
        "{rseek}"
    );

    assert_eq!(env.ok(&["schema", "db:cfg.edn"]), "{}\n");
    assert_eq!(env.ok(&["reverse-schema", "db:cfg.edn"]), "{}\n");
    let metrics = env.ok(&["metrics", "db:cfg.edn"]);
    assert!(metrics.starts_with("{:count 4, ") && metrics.contains(":per-attr-counts {:age 1, :name 2"), "{metrics}");
}

#[test]
fn with_reports_without_writing() {
    let env = read_db();
    let report = env.ok(&["with", "db:cfg.edn", r#"[[:db/add -1 :name "Ivan"]]"#]);
    assert!(report.contains(r#":name "Ivan""#), "{report}");
    let report = env.ok(&["with", "db:cfg.edn", r#"[[:db/add -1 :name "Ivan"]]"#, "{:source :cli}"]);
    assert!(report.contains(":source :cli"), "{report}");
    let report = env.ok(&["with", "db:cfg.edn", r#"{:tx-data [[:db/add -1 :name "Ivan"]] :tx-meta {:source :map}}"#]);
    assert!(report.contains(":source :map"), "{report}");
    assert_eq!(env.count(":name"), 0);
}

#[test]
fn index_range_over_an_indexed_attribute() {
    let env = read_db();
    env.ok(&[
        "transact",
        "conn:cfg.edn",
        "[{:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}]",
    ]);
    env.ok(&[
        "transact",
        "conn:cfg.edn",
        r#"[{:name "A" :age 5} {:name "B" :age 20} {:name "C" :age 30} {:name "D" :age 40}]"#,
    ]);
    let range = env.ok(&["index-range", "db:cfg.edn", "{:attrid :age :start 10 :end 30}"]);
    let ages: Vec<&str> = range.split("#datahike/Datom").skip(1).collect();
    assert_eq!(ages.len(), 2, "{range}");
    assert!(ages[0].contains(":age 20 ") && ages[1].contains(":age 30 "), "{range}");
    let schema = env.ok(&["schema", "db:cfg.edn"]);
    assert!(schema.starts_with("{:age {") && schema.contains(":db/index true"), "{schema}");
    assert!(env.ok(&["reverse-schema", "db:cfg.edn"]).contains(":db/index #{:age}"));
    // An attribute without an index is a library error.
    let err = env.fails(&["index-range", "db:cfg.edn", "{:attrid :name :start \"A\" :end \"Z\"}"], 1);
    assert!(err.starts_with("❌ Error executing command: ") && err.contains(":name"), "{err}");
}

#[test]
fn transaction_data_from_stdin_and_tx_file() {
    let env = read_db();
    let out = env.run_stdin(&["transact", "conn:cfg.edn"], r#"[{:name "Carl"}]"#);
    assert_success(&["transact"], &out);
    let out = env.run_stdin(&["transact", "conn:cfg.edn", "-"], r#"[{:name "Dora"}]"#);
    assert_success(&["transact", "-"], &out);
    env.write("tx.edn", "[{:name \"Emil\"}\n {:name \"Fay\"}]");
    env.ok(&["--tx-file", "tx.edn", "transact", "conn:cfg.edn"]);
    env.ok(&["transact", "conn:cfg.edn", "edn:tx.edn"]);
    assert_eq!(env.count(":name"), 6);
    // --tx-file is ignored with a warning for other commands.
    let out = env.run(&["--tx-file", "tx.edn", "schema", "db:cfg.edn"]);
    assert_success(&["schema"], &out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tx-file not supported for command: schema"));
}

#[test]
fn load_entities_from_edn_and_cbor_exports() {
    let source = read_db();
    source.ok(&["transact", "conn:cfg.edn", r#"[{:name "Alice" :age 20} {:name "Bob" :age 30}]"#]);
    source.ok(&["transact", "conn:cfg.edn", r#"[[:db/add 1 :age 21]]"#]);
    let export = source.ok(&["datoms", "db:cfg.edn", ":eavt"]);
    let cbor = source.run(&["-f", "cbor", "datoms", "db:cfg.edn", ":eavt"]);
    assert_success(&["-f cbor"], &cbor);

    let target = read_db();
    target.write("datoms.edn", &export);
    let report = target.ok(&["load-entities", "conn:cfg.edn", "edn:datoms.edn"]);
    assert!(report.starts_with("{:db-before") && report.contains(r#":name "Bob""#), "{report}");
    assert_eq!(target.count(":name"), 2);
    let ages = target.ok(&["datoms", "db:cfg.edn", ":aevt", ":age"]);
    assert!(ages.contains(":age 21 ") && ages.contains(":age 30 ") && !ages.contains(":age 20 "), "{ages}");

    // The CBOR export loads the same into a third database.
    let third = read_db();
    std::fs::write(third.dir.path().join("datoms.cbor"), &cbor.stdout).unwrap();
    third.ok(&["load-entities", "conn:cfg.edn", "cbor:datoms.cbor"]);
    assert_eq!(third.ok(&["datoms", "db:cfg.edn", ":eavt"]), target.ok(&["datoms", "db:cfg.edn", ":eavt"]));

    // And the EDN export from standard input into a fourth.
    let fourth = read_db();
    let out = fourth.run_stdin(&["load-entities", "conn:cfg.edn", "-"], &export);
    assert_success(&["load-entities -"], &out);
    assert_eq!(fourth.count(":name"), 2);
}

#[test]
fn delete_database() {
    let env = read_db();
    env.ok(&["transact", "conn:cfg.edn", r#"[{:name "Alice"}]"#]);
    assert_eq!(env.ok(&["delete-database", "edn:cfg.edn"]), "nil\n");
    assert_eq!(env.ok(&["database-exists", "edn:cfg.edn"]), "false\n");
    assert!(
        !env.dir.path().join("db").exists() || std::fs::read_dir(env.dir.path().join("db")).unwrap().next().is_none()
    );
    // The config may also be given inline.
    let inline = format!("{{:store {{:backend :file :path {:?}}}}}", env.dir.path().join("db2").display().to_string());
    env.ok(&["create-database", &inline]);
    assert_eq!(env.ok(&["database-exists", &inline]), "true\n");
    assert_eq!(env.ok(&["database-exists"]), "false\n");
}

#[test]
fn json_output_and_input() {
    let env = read_db();
    env.write("tx.json", r#"[{"name": "Alice", "age": 20, "kind": ["!kw", "person"]}]"#);
    let report = env.ok(&["-f", "json", "transact", "conn:cfg.edn", "json:tx.json"]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["tempids"]["db/current-tx"], 536870913);
    assert_eq!(report["db-after"]["max-eid"], 1);

    let datoms: serde_json::Value =
        serde_json::from_str(&env.ok(&["--format", "json", "datoms", "db:cfg.edn", ":eavt", "1"])).unwrap();
    assert_eq!(datoms[0], serde_json::json!([1, "age", 20, 536870913, true]));
    assert_eq!(datoms[1], serde_json::json!([1, "kind", "person", 536870913, true]));
    assert_eq!(datoms[2], serde_json::json!([1, "name", "Alice", 536870913, true]));
    assert_eq!(datoms.as_array().unwrap().len(), 3, "{datoms}");

    let config: serde_json::Value =
        serde_json::from_str(&env.ok(&["-f", "json", "create-database", "{:store {:backend :memory :id \"j\"}}"]))
            .unwrap();
    assert_eq!(config["store"]["backend"], "memory");
    assert_eq!(config["keep-history?"], true);

    let tx_instant = env.ok(&["-f", "json", "datoms", "db:cfg.edn", ":aevt", ":db/txInstant"]);
    let tx_instant: serde_json::Value = serde_json::from_str(&tx_instant).unwrap();
    let text = tx_instant[0][2].as_str().unwrap();
    assert!(text.len() == 29 && text.ends_with("-00:00") && text.as_bytes()[10] == b'T', "{text}");
}

#[test]
fn pprint_and_cbor_output() {
    let env = read_db();
    env.ok(&["transact", "conn:cfg.edn", r#"[{:name "Alice" :age 20} {:name "Bob" :age 30}]"#]);
    let pretty = env.ok(&["-f", "pprint", "transact", "conn:cfg.edn", r#"[{:name "Carl" :age 40}]"#]);
    assert!(pretty.lines().count() > 3 && pretty.starts_with("{:db-before"), "{pretty}");
    assert_eq!(env.ok(&["-f", "pprint", "database-exists", "edn:cfg.edn"]), "true\n");

    let out = env.run(&["-f", "cbor", "database-exists", "edn:cfg.edn"]);
    assert_eq!(out.stdout, [0xf5]);
    let out = env.run(&["-f", "cbor", "datoms", "db:cfg.edn", ":eavt", "1", ":name"]);
    // [[1, 39(":name"), "Alice", 536870913, true]]
    let mut expected = vec![0x81, 0x85, 0x01, 0xd8, 39, 0x65];
    expected.extend(b":name");
    expected.push(0x65);
    expected.extend(b"Alice");
    expected.extend([0x1a, 0x20, 0x00, 0x00, 0x01, 0xf5]);
    assert_eq!(out.stdout, expected);
}

#[test]
fn malformed_edn_names_line_and_column() {
    let env = read_db();
    let err = env.fails(&["transact", "conn:cfg.edn", r#"[{:name "X"]"#], 1);
    assert!(err.contains("Invalid arguments for 'transact'") && err.contains("1:12"), "{err}");
    env.write("bad.edn", "[{:name \"X\"}\n {:name }]");
    let err = env.fails(&["--tx-file", "bad.edn", "transact", "conn:cfg.edn"], 1);
    assert!(err.contains("--tx-file bad.edn") && err.contains("2:"), "{err}");
    let err = env.fails(&["transact", "conn:cfg.edn", "edn:bad.edn"], 1);
    assert!(err.contains("bad.edn") && err.contains("at 2:"), "{err}");
    let out = env.run_stdin(&["transact", "conn:cfg.edn", "-"], "[[:db/add -1 :name \"x\"]\n\n  {:a }");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("standard input") && err.contains("3:"), "{err}");
    let err = env.fails(&["datoms", "db:cfg.edn", "{:index :eavt"], 1);
    assert!(err.contains("Invalid arguments for 'datoms'") && err.contains("1:14"), "{err}");
    assert_eq!(env.count(":name"), 0);
}

#[test]
fn usage_errors() {
    let env = read_db();
    let err = env.fails(&["frobnicate", "x", "y"], 1);
    assert!(err.starts_with("Unknown command: frobnicate x") && err.contains("dthk --help"), "{err}");
    let err = env.fails(&["valid-at", "db:cfg.edn"], 2);
    assert_eq!(err, "Command 'valid-at' is not implemented yet in this version\n");
    // The temporal prefixes work (tests/history_cli.rs); a time that is not a number fails.
    for prefix in ["history:cfg.edn", "asof:1700000000000:cfg.edn", "since:1700000000000:cfg.edn"] {
        env.ok(&["datoms", prefix, ":eavt"]);
    }
    let err = env.fails(&["datoms", "asof:yesterday:cfg.edn", ":eavt"], 1);
    assert!(err.contains("\"yesterday\" is not a time in epoch milliseconds"), "{err}");
    let err = env.fails(&["datoms", "db:cfg.edn", ":foo"], 1);
    assert!(err.contains("Invalid arguments for 'datoms'") && err.contains("Got:") && err.contains(":foo"), "{err}");
    let err = env.fails(&["schema"], 1);
    assert!(err.contains("expected 1 arguments, got 0"), "{err}");
    let err = env.fails(&["-f", "xml", "schema", "db:cfg.edn"], 1);
    assert!(err.contains("Must be one of"), "{err}");
    let err = env.fails(&["-vvvv", "schema", "db:cfg.edn"], 1);
    assert!(err.contains("Verbosity level not supported: 4"), "{err}");
    let err = env.fails(&["schema", "db:missing.edn"], 1);
    assert!(err.starts_with("❌ Error executing command: cannot read file missing.edn"), "{err}");
    env.fails(&[], 1);
}

#[test]
fn transact_against_a_missing_database_fails() {
    let env = Env::new("");
    let err = env.fails(&["transact", "conn:cfg.edn", r#"[{:name "A"}]"#], 1);
    assert!(err.starts_with("❌ Error executing command: Database does not exist"), "{err}");
    assert_eq!(env.ok(&["database-exists", "edn:cfg.edn"]), "false\n");
}

#[test]
fn schema_violation_under_write_changes_nothing() {
    let env = Env::new(":schema-flexibility :write");
    env.ok(&["create-database", "edn:cfg.edn"]);
    env.ok(&[
        "transact",
        "conn:cfg.edn",
        "[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one}]",
    ]);
    env.ok(&["transact", "conn:cfg.edn", r#"[{:name "Alice"}]"#]);
    let before = env.ok(&["datoms", "db:cfg.edn", ":eavt"]);
    let err = env.fails(&["transact", "conn:cfg.edn", r#"[{:name "Bob"} {:name 42}]"#], 1);
    assert!(err.starts_with("❌ Error executing command: "), "{err}");
    let err = env.fails(&["transact", "conn:cfg.edn", r#"[{:name "Bob" :age 3}]"#], 1);
    assert!(err.contains(":age"), "{err}");
    assert_eq!(env.ok(&["datoms", "db:cfg.edn", ":eavt"]), before);
    assert_eq!(env.count(":name"), 1);
}

#[test]
fn concurrent_transacts_from_two_processes_both_land() {
    let env = read_db();
    for round in 0..3 {
        let children: Vec<_> = ["Alice", "Bob"]
            .iter()
            .map(|name| {
                let tx = format!("[{{:name \"{name}-{round}\"}}]");
                env.command(&["transact", "conn:cfg.edn", &tx])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert_success(&["transact (concurrent)"], &out);
        }
        assert_eq!(env.count(":name"), 2 * (round + 1));
    }
    let names = env.ok(&["datoms", "db:cfg.edn", ":aevt", ":name"]);
    for round in 0..3 {
        assert!(
            names.contains(&format!("\"Alice-{round}\"")) && names.contains(&format!("\"Bob-{round}\"")),
            "{names}"
        );
    }
}

#[test]
fn help_and_version() {
    let env = Env::new("");
    let help = env.ok(&["--help"]);
    for command in [
        "database-exists",
        "create-database",
        "delete-database",
        "transact",
        "load-entities",
        "with",
        "datoms",
        "seek-datoms",
        "rseek-datoms",
        "index-range",
        "schema",
        "reverse-schema",
        "metrics",
        "query",
        "pull",
        "gc-storage",
    ] {
        assert!(help.contains(&format!("\n    {command} ")), "{command} missing from help");
    }
    assert!(help.contains("Coming in a later version"));
    assert!(env.ok(&["-h"]) == help);
    assert!(env.ok(&["--version"]).starts_with("Datahike "));
    assert!(env.ok(&["help", "datoms"]).contains("dthk datoms db:CONFIG INDEX COMPONENT..."));
    // Each command has its own --help, the same text.
    assert_eq!(env.ok(&["datoms", "--help"]), env.ok(&["help", "datoms"]));
    assert_eq!(env.ok(&["-h", "transact"]), env.ok(&["help", "transact"]));
}

#[test]
fn verbose_logs_go_to_stderr() {
    let env = read_db();
    let out = env.run(&["-vv", "database-exists", "edn:cfg.edn"]);
    assert_success(&["-vv"], &out);
    assert_eq!(out.stdout, b"true\n");
    let log = String::from_utf8(out.stderr).unwrap();
    assert!(log.contains("DEBUG") && log.contains("INFO"), "{log}");
}
