//! `dthk` on the `:jdbc` backend with SQLite (cargo feature `sqlite`): the database commands,
//! transact and query through a config file, writers in two processes at once, and no
//! password in any log line.
#![cfg(feature = "sqlite")]

mod common;

use std::process::{Command, Stdio};

fn config_file(dir: &std::path::Path, table: &str) -> String {
    let db = dir.join("data").join("app.sqlite");
    let text = format!(
        r#"{{:store {{:backend :jdbc :dbtype "sqlite" :dbname {:?} :table {table:?}}} :schema-flexibility :read}}"#,
        db.display().to_string()
    );
    let file = format!("{table}.edn");
    std::fs::write(dir.join(&file), text).unwrap();
    file
}

#[test]
fn database_commands_transact_and_query() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "people");
    let edn = format!("edn:{cfg}");
    let conn = format!("conn:{cfg}");
    let db = format!("db:{cfg}");
    assert_eq!(common::ok(dir.path(), &["database-exists", &edn]), "false\n");
    let created = common::ok(dir.path(), &["create-database", &edn]);
    assert!(created.contains(r#":dbtype "sqlite""#) && created.contains(":backend :jdbc"), "{created}");
    assert!(dir.path().join("data/app.sqlite").exists());
    assert_eq!(common::ok(dir.path(), &["database-exists", &edn]), "true\n");
    let report = common::ok(dir.path(), &["transact", &conn, r#"[{:name "Alice" :age 30} {:name "Bob" :age 40}]"#]);
    assert!(report.contains(r#"[1 :name "Alice" 536870913 true]"#), "{report}");
    let found = common::ok(dir.path(), &["query", "[:find ?n ?a :where [?e :name ?n] [?e :age ?a]]", &db]);
    assert_eq!(found, "#{[\"Alice\" 30] [\"Bob\" 40]}\n");

    // A second database in another table of the same file.
    let other = config_file(dir.path(), "other");
    assert_eq!(common::ok(dir.path(), &["database-exists", &format!("edn:{other}")]), "false\n");
    common::ok(dir.path(), &["create-database", &format!("edn:{other}")]);
    let empty = common::ok(dir.path(), &["query", "[:find ?n :where [?e :name ?n]]", &format!("db:{other}")]);
    assert_eq!(empty, "#{}\n");

    common::ok(dir.path(), &["delete-database", &edn]);
    assert_eq!(common::ok(dir.path(), &["database-exists", &edn]), "false\n");
    assert_eq!(common::ok(dir.path(), &["database-exists", &format!("edn:{other}")]), "true\n");
    let err = common::fails(dir.path(), &["query", "[:find ?n :where [?e :name ?n]]", &db], 1);
    assert!(err.contains("Database does not exist"), "{err}");
}

/// Two processes transact into one SQLite store at once; every transaction lands.
#[test]
fn writers_in_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "shared");
    common::ok(dir.path(), &["create-database", &format!("edn:{cfg}")]);
    let conn = format!("conn:{cfg}");
    let writers: Vec<_> = (0..2)
        .map(|p| {
            let script: String = (0..10)
                .map(|i| format!("{} transact {conn} '[{{:n {}}}]'\n", env!("CARGO_BIN_EXE_dthk"), p * 100 + i))
                .collect();
            Command::new("sh")
                .arg("-c")
                .arg(format!("set -e\n{script}"))
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for writer in writers {
        let out = writer.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let n = common::ok(dir.path(), &["query", "[:find (count ?e) . :where [?e :n]]", &format!("db:{cfg}")]);
    assert_eq!(n, "20\n");
}

/// The most verbose log shows configs with their password replaced.
#[test]
fn no_password_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.sqlite").display().to_string();
    let config = format!(r#"{{:store {{:backend :jdbc :dbtype "sqlite" :dbname {db:?} :password "Sw0rdfish"}}}}"#);
    let out = common::run(dir.path(), &["-vvv", "create-database", &config]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(":password \"***\""), "{stderr}");
    assert!(!stderr.contains("Sw0rdfish") && !stdout.contains("Sw0rdfish"), "{stderr}\n{stdout}");
}
