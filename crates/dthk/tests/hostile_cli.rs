//! Careless and hostile input through `dthk`: each gets a clear error naming the input and
//! changes nothing.

mod common;

use common::{fails, ok, run};
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
