//! `dthk` on an `:lmdb` store (cargo feature `lmdb`): the database lifecycle, transactions and
//! queries from separate processes, two `dthk transact` at once, and the errors of a bad config.
#![cfg(feature = "lmdb")]

mod common;

use common::{fails, ok};
use std::process::{Command, Stdio};

fn write_config(dir: &std::path::Path, extra: &str) {
    let store = dir.join("db").display().to_string();
    let text = format!("{{:store {{:backend :lmdb :path {store:?} {extra}}} :schema-flexibility :read}}");
    std::fs::write(dir.join("cfg.edn"), text).unwrap();
}

#[test]
fn lifecycle_transact_and_query() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_config(dir, ":map-size 1073741824");
    assert_eq!(ok(dir, &["database-exists", "edn:cfg.edn"]), "false\n");
    let created = ok(dir, &["create-database", "edn:cfg.edn"]);
    assert!(created.contains(":backend :lmdb") && created.contains(":map-size 1073741824"), "{created}");
    assert!(dir.join("db/data.mdb").is_file());
    assert_eq!(ok(dir, &["database-exists", "edn:cfg.edn"]), "true\n");
    let report = ok(dir, &["transact", "conn:cfg.edn", r#"[{:name "Alice" :age 20} {:name "Bob" :age 30}]"#]);
    assert!(report.contains(r#"#datahike/Datom [1 :name "Alice" 536870913 true]"#), "{report}");
    assert_eq!(ok(dir, &["query", "[:find ?n . :where [?e :age 30] [?e :name ?n]]", "db:cfg.edn"]), "\"Bob\"\n");

    // Two writers at once, each a process: both land.
    let children: Vec<_> = ["x", "y"]
        .iter()
        .map(|who| {
            let tx = format!(r#"[{{:who "{who}"}}]"#);
            Command::new(env!("CARGO_BIN_EXE_dthk"))
                .args(["transact", "conn:cfg.edn", &tx])
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(ok(dir, &["query", "[:find (count ?e) . :where [?e :who]]", "db:cfg.edn"]), "2\n");

    assert!(fails(dir, &["create-database", "edn:cfg.edn"], 1).contains("already exists"));
    ok(dir, &["delete-database", "edn:cfg.edn"]);
    assert_eq!(ok(dir, &["database-exists", "edn:cfg.edn"]), "false\n");
    assert!(!dir.join("db").exists());
    let err = fails(dir, &["transact", "conn:cfg.edn", "[{:x 1}]"], 1);
    assert!(err.contains("does not exist") && err.contains(":lmdb"), "{err}");
}

#[test]
fn a_bad_map_size_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_config(tmp.path(), ":map-size \"large\"");
    let err = fails(tmp.path(), &["create-database", "edn:cfg.edn"], 1);
    assert!(err.contains(":map-size") && err.contains(":lmdb"), "{err}");
}
