//! Careless and hostile input through `dthk`: each gets a clear error naming the input and
//! changes nothing.

mod common;

use common::{fails, file_db, ok, run};
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};

#[test]
fn an_argument_that_is_not_utf8_is_refused_by_position() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dthk"))
        .arg("query")
        .arg(std::ffi::OsStr::from_bytes(b"[:find \xff]"))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("argument 2 is not valid UTF-8"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_config_without_store_is_refused_or_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("nostore.edn"), "{:schema-flexibility :read}").unwrap();
    // A connection or a database value from it would be an empty memory database.
    for arg in ["conn:nostore.edn", "db:nostore.edn"] {
        let op = if arg.starts_with("conn") { "transact" } else { "schema" };
        let args: Vec<&str> = if op == "transact" { vec![op, arg, "[{:a 1}]"] } else { vec![op, arg] };
        let err = fails(d, &args, 1);
        assert!(err.contains("config file nostore.edn has no :store"), "{err}");
    }
    // create-database with it works (as in Datahike) but says the database vanishes.
    let out = run(d, &["create-database", "edn:nostore.edn"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("memory database that vanishes"));
    // An explicit memory store is taken as meant.
    std::fs::write(d.join("mem.edn"), "{:store {:backend :memory :id \"m\"}}").unwrap();
    let out = run(d, &["create-database", "edn:mem.edn"]);
    assert!(out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("vanishes"));
}

#[test]
fn a_value_nested_too_deep_is_refused_and_the_database_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("db").display().to_string();
    std::fs::write(
        d.join("cfg.edn"),
        format!("{{:store {{:backend :file :path {path:?}}} :schema-flexibility :read}}"),
    )
    .unwrap();
    ok(d, &["create-database", "edn:cfg.edn"]);
    let deep = format!("[{{:v {}1{}}}]", "[".repeat(33), "]".repeat(33));
    let err = fails(d, &["transact", "conn:cfg.edn", &deep], 1);
    assert!(err.contains("nests 33 levels deep, more than the 32"), "{err}");
    let ok_deep = format!("[{{:v {}1{}}}]", "[".repeat(32), "]".repeat(32));
    ok(d, &["transact", "conn:cfg.edn", &ok_deep]);
    ok(d, &["transact", "conn:cfg.edn", "[{:name \"after\"}]"]);
    assert_eq!(ok(d, &["query", "[:find (count ?e) . :where (or [?e :v] [?e :name])]", "db:cfg.edn"]).trim(), "2");
}

/// Every file under `dir` with its size, sorted: what a refused command must leave alone.
fn listing(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                out.push((entry.path(), meta.len()));
            }
        }
    }
    out.sort();
    out
}

/// `dthk args` with `stdin` as standard input.
fn run_stdin(d: &std::path::Path, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_dthk"))
        .args(args)
        .current_dir(d)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn invalid_utf8_in_a_tx_file_or_stdin_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let datoms = file_db(d);
    let files = listing(&d.join("db"));
    std::fs::write(d.join("bad.edn"), b"[{:name \"\xff\xfe\"}]").unwrap();
    let err = fails(d, &["--tx-file", "bad.edn", "transact", "conn:cfg.edn"], 1);
    assert!(err.contains("--tx-file bad.edn") && err.contains("UTF-8"), "{err}");
    let err = fails(d, &["transact", "conn:cfg.edn", "edn:bad.edn"], 1);
    assert!(err.contains("bad.edn") && err.contains("UTF-8"), "{err}");
    let out = run_stdin(d, &["transact", "conn:cfg.edn", "-"], b"[{:name \"\xc3\x28\"}]");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("standard input") && err.contains("UTF-8"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(listing(&d.join("db")), files, "a refused transaction changed the store's files");
    assert_eq!(ok(d, &["datoms", "db:cfg.edn", "{:index :eavt}"]), datoms);
}

#[test]
fn text_nested_10000_deep_is_refused_in_every_argument() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let datoms = file_db(d);
    let files = listing(&d.join("db"));
    let deep = |open: &str, close: &str| format!("{}1{}", open.repeat(10_000), close.repeat(10_000));
    let tx = format!("[{{:v {}}}]", deep("[", "]"));
    let query = format!("[:find ?e :where [?e :name {}]]", deep("[", "]"));
    let pattern = format!("[:name {}]", deep("{:ref [", "]}"));
    std::fs::write(d.join("tx.edn"), &tx).unwrap();
    let cases: [&[&str]; 4] = [
        &["transact", "conn:cfg.edn", &tx],
        &["--tx-file", "tx.edn", "transact", "conn:cfg.edn"],
        &["query", &query, "db:cfg.edn"],
        &["pull", "db:cfg.edn", &pattern, "1"],
    ];
    for args in cases {
        let err = fails(d, args, 1);
        assert!(err.contains("nesting deeper than 1000 levels"), "{}: {err}", args[0]);
    }
    // A config file nested that deep.
    let path = d.join("db").display().to_string();
    std::fs::write(d.join("deep.edn"), format!("{{:store {{:backend :file :path {path:?}}} :x {}}}", deep("[", "]")))
        .unwrap();
    let err = fails(d, &["transact", "conn:deep.edn", "[{:name \"b\"}]"], 1);
    assert!(err.contains("deep.edn") && err.contains("nesting deeper than 1000 levels"), "{err}");
    assert_eq!(listing(&d.join("db")), files, "a refused command changed the store's files");
    assert_eq!(ok(d, &["datoms", "db:cfg.edn", "{:index :eavt}"]), datoms);
}

#[test]
fn a_config_pointing_at_a_missing_directory_says_it_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("missing").display().to_string();
    std::fs::write(d.join("cfg.edn"), format!("{{:store {{:backend :file :path {missing:?}}}}}")).unwrap();
    for args in
        [&["transact", "conn:cfg.edn", "[{:name \"a\"}]"][..], &["query", "[:find ?e :where [?e :name]]", "db:cfg.edn"]]
    {
        let err = fails(d, args, 1);
        assert!(err.contains("does not exist") && err.contains(&missing), "{err}");
    }
    assert!(!d.join("missing").exists(), "a refused command created the directory");
}

/// A recursive pull down a 100,000-long chain, transacted in one `--tx-file` transaction
/// with tempids, prints in the EDN, pprint and JSON formats.
#[test]
fn dthk_pull_prints_a_100000_long_chain() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    file_db(d);
    let n = 100_000;
    let entities: Vec<String> = (0..n)
        .map(|i| {
            if i + 1 < n {
                format!("{{:db/id \"e{i}\" :n {i} :next \"e{}\"}}", i + 1)
            } else {
                format!("{{:db/id \"e{i}\" :n {i}}}")
            }
        })
        .collect();
    let schema = "[{:db/ident :n :db/unique :db.unique/identity :db/cardinality :db.cardinality/one}
                   {:db/ident :next :db/valueType :db.type/ref :db/cardinality :db.cardinality/one}]";
    ok(d, &["transact", "conn:cfg.edn", schema]);
    std::fs::write(d.join("chain.edn"), format!("[{}]", entities.join(" "))).unwrap();
    ok(d, &["--tx-file", "chain.edn", "transact", "conn:cfg.edn"]);
    for format in ["edn", "pprint"] {
        let out = ok(d, &["-f", format, "pull", "db:cfg.edn", "[:n {:next ...}]", "[:n 0]"]);
        assert!(out.starts_with("{:n 0, :next {:n 1, :next {:n 2,"), "{format}: {}", &out[..80]);
        assert!(
            out.ends_with(&format!("{{:n {}}}{}\n", n - 1, "}".repeat(n - 1))),
            "{format}: the chain ends in the last entity"
        );
        assert_eq!(out.matches(":next").count(), n - 1, "{format}");
    }
    // CBOR's writer recurses: a result that deep is refused, naming the formats that work.
    let err = fails(d, &["-f", "cbor", "pull", "db:cfg.edn", "[:n {:next ...}]", "[:n 0]"], 1);
    assert!(err.contains("too deep for -f cbor") && err.contains("-f edn"), "{err}");
    let shallow = run(d, &["-f", "cbor", "pull", "db:cfg.edn", "[:n {:next 3}]", "[:n 0]"]);
    assert!(shallow.status.success() && !shallow.stdout.is_empty());
    let out = ok(d, &["-f", "json", "pull", "db:cfg.edn", "[:n {:next ...}]", "[:n 0]"]);
    assert!(out.starts_with(r#"{"n":0,"next":{"n":1,"next":{"n":2,"#), "json: {}", &out[..80]);
    assert!(
        out.ends_with(&format!("{{\"n\":{}}}{}\n", n - 1, "}".repeat(n - 1))),
        "json: the chain ends in the last entity"
    );
}
