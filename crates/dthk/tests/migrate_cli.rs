//! `dthk export` and `dthk import` between file databases in separate processes, and an
//! import killed with SIGKILL midway: the next import (and any connect) says so.

mod common;

use common::{fails, ok};
use datahike::migrate::{self, ExportOptions};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn write_config(dir: &Path, name: &str, db: &str) {
    let path = dir.join(db);
    let config =
        format!("{{:store {{:backend :file :path {:?}}} :schema-flexibility :read}}", path.display().to_string());
    std::fs::write(dir.join(name), config).unwrap();
}

#[test]
fn export_then_import_keeps_history_ids_and_instants() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config(d, "a.edn", "a");
    write_config(d, "b.edn", "b");
    ok(d, &["create-database", "edn:a.edn"]);
    ok(d, &["transact", "conn:a.edn", r#"[{:name "Alice" :age 20 :score 1.5}]"#]);
    ok(d, &["transact", "conn:a.edn", r#"{:tx-data [[:db/add 1 :age 21]] :tx-meta {:source "cli"}}"#]);
    ok(d, &["transact", "conn:a.edn", r#"[[:db/retract 1 :score 1.5]]"#]);
    let exported = ok(d, &["export", "db:a.edn", "dump"]);
    assert_eq!(exported.trim(), "{:datom-count 10, :chunks 1, :history? true}");
    assert!(d.join("dump/manifest.edn").exists());
    ok(d, &["create-database", "edn:b.edn"]);
    let imported = ok(d, &["import", "conn:b.edn", "dump"]);
    assert!(imported.contains(":datom-count 10, :tx-count 3, :max-tx 536870915"), "{imported}");
    for index in [":eavt", ":aevt", ":avet"] {
        assert_eq!(ok(d, &["datoms", "history:a.edn", index]), ok(d, &["datoms", "history:b.edn", index]));
    }
    let err = fails(d, &["import", "conn:b.edn", "dump"], 1);
    assert!(err.contains("is not empty") && err.contains("/b\""), "{err}");
    let merged = ok(d, &["import", "conn:b.edn", "dump", "{:merge? true}"]);
    assert!(merged.contains(":ids-preserved? false"), "{merged}");
    let err = fails(d, &["import", "conn:b.edn", "nowhere"], 1);
    assert!(err.contains("no dump at nowhere"), "{err}");
    let err = fails(d, &["export", "db:a.edn", "dump"], 1);
    assert!(err.contains("is not empty"), "{err}");
    // Options: current datoms only, uncompressed.
    let current = ok(d, &["export", "db:a.edn", "current", "{:history? false :compression :none :chunk-size 2}"]);
    assert_eq!(current.trim(), "{:datom-count 6, :chunks 3, :history? false}");
    assert!(d.join("current/datoms-000003.cbor").exists());
    let help = ok(d, &["--help"]);
    assert!(help.contains("Export and Import:") && help.contains("    export db:CONFIG PATH"), "{help}");
}

/// Whether the file store at `db` holds an in-progress import marker.
fn has_marker(db: &Path) -> bool {
    std::fs::read_dir(db.join("kv"))
        .map(|entries| entries.filter_map(Result::ok).any(|e| e.file_name().to_string_lossy().starts_with("imports")))
        .unwrap_or(false)
}

#[test]
fn an_import_killed_midway_is_reported_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A source with many small transactions, exported by the library.
    let id = format!("migrate-cli-{}", std::process::id());
    let source =
        datahike::Config::parse(&format!("{{:store {{:backend :memory :id {id:?}}} :schema-flexibility :read}}"))
            .unwrap();
    datahike::create_database(&source).unwrap();
    let conn = datahike::connect(&source).unwrap();
    for i in 0..3000 {
        conn.transact(&datahike::edn::read_str(&format!("[{{:db/id {} :n {i}}}]", i + 1)).unwrap()).unwrap();
    }
    let history = |db: &datahike::Db| db.history().unwrap().datoms(datahike::IndexOrder::Eavt, &[]).unwrap();
    let dump = d.join("dump");
    migrate::export_db(&conn.db(), &dump, &ExportOptions::default()).unwrap();
    write_config(d, "t.edn", "t");
    ok(d, &["create-database", "edn:t.edn"]);

    // One durable batch per transaction makes the import slow enough to kill in the middle.
    let mut child = Command::new(env!("CARGO_BIN_EXE_dthk"))
        .args(["import", "conn:t.edn", "dump"])
        .current_dir(d)
        .env("DATAHIKE_BULK_BATCH_TXS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !has_marker(&d.join("t")) {
        assert!(start.elapsed() < Duration::from_secs(60), "the import never started");
        assert!(child.try_wait().unwrap().is_none(), "the import ended before it could be killed");
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(child.try_wait().unwrap().is_none(), "the import ended before it could be killed");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(has_marker(&d.join("t")));

    let err = fails(d, &["import", "conn:t.edn", "dump"], 1);
    assert!(err.contains("has not completed") && err.contains("was interrupted") && err.contains("dump"), "{err}");
    let err = fails(d, &["datoms", "db:t.edn", ":eavt"], 1);
    assert!(err.contains("has not completed"), "{err}");

    ok(d, &["delete-database", "edn:t.edn"]);
    ok(d, &["create-database", "edn:t.edn"]);
    ok(d, &["import", "conn:t.edn", "dump"]);
    let target =
        datahike::connect(&datahike::Config::parse(&std::fs::read_to_string(d.join("t.edn")).unwrap()).unwrap())
            .unwrap();
    assert_eq!(history(&target.db()), history(&conn.db()));
    target.release().unwrap();
}
