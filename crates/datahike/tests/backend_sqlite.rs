//! The `:jdbc` backend on SQLite (cargo feature `sqlite`): the store conformance suite and the
//! database end to end on real files, configs as users write them, table creation, several
//! stores in one file, and writers on several threads.
#![cfg(feature = "sqlite")]

use datahike::edn::read_str;
use datahike::store::backend::lookup;
use datahike::store::conformance::Subject;
use datahike::store::{OpenMode, Store};
use datahike::{Config, Edn};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `{:backend :jdbc :dbtype "sqlite" :dbname <path> :table <table>}`
fn store_map(path: &Path, table: &str) -> Edn {
    read_str(&format!(
        r#"{{:backend :jdbc :dbtype "sqlite" :dbname {:?} :table {table:?}}}"#,
        path.display().to_string()
    ))
    .unwrap()
}

fn open(config: &Edn, mode: OpenMode) -> Option<Arc<dyn Store>> {
    lookup("jdbc").expect("the jdbc backend is built in").open(config, mode).expect("open")
}

fn subject() -> Subject {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = store_map(&dir.path().join("store.sqlite"), "kv");
    let store = open(&config, OpenMode::Create).expect("created");
    Subject::new(store, move || open(&config, OpenMode::Open).expect("the store exists")).with_guard(dir)
}

mod conformance {
    datahike::store_conformance_tests!(super::subject);

    #[test]
    fn stored_sizes_reported() {
        datahike::store::conformance::stored_sizes_reported(&super::subject());
    }
}

fn config(path: &Path, extra: &str) -> Config {
    Config::parse(&format!(
        r#"{{:store {{:backend :jdbc :dbtype "sqlite" :dbname {:?}}} {extra}}}"#,
        path.display().to_string()
    ))
    .expect("config")
}

#[test]
fn database_conformance() {
    let scratch = tempfile::tempdir().expect("temp dir");
    datahike::store::conformance::database(&config(&scratch.path().join("db.sqlite"), ""));
}

fn count(conn: &datahike::Conn) -> Edn {
    datahike::q(&read_str("[:find (count ?e) . :where [?e :n]]").unwrap(), &[datahike::QueryInput::from(conn.db())])
        .unwrap()
}

#[test]
fn create_database_creates_the_file_and_the_table() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let path = scratch.path().join("sub/dir/app.sqlite");
    let config = config(&path, ":schema-flexibility :read");
    assert!(!datahike::database_exists(&config).unwrap());
    assert!(!path.exists(), "checking for a database creates no file");
    assert!(datahike::connect(&config).is_err());
    datahike::create_database(&config).unwrap();
    assert!(path.exists(), "create-database creates the file (and its directories)");
    assert!(datahike::database_exists(&config).unwrap());
    let conn = datahike::connect(&config).unwrap();
    conn.transact(&read_str("[{:n 1} {:n 2}]").unwrap()).unwrap();
    conn.release().unwrap();
    // The table is there for any SQLite client.
    let table = open(&store_map(&path, "datahike"), OpenMode::Open).expect("the default table is datahike");
    assert!(!table.list("heads/").unwrap().is_empty());
    assert!(open(&store_map(&path, "other"), OpenMode::Open).is_none(), "a missing table opens nothing");
    assert!(open(&store_map(&path, "other"), OpenMode::ReadOnly).is_none());

    let conn = datahike::connect(&config).unwrap();
    assert_eq!(count(&conn), Edn::Int(2), "reopened");
    conn.release().unwrap();
    datahike::delete_database(&config).unwrap();
    assert!(!datahike::database_exists(&config).unwrap());
}

/// next.jdbc's other shapes: `:jdbcUrl`, `:jdbc-url`, `:dbtype "sqlite3"`; `:table` keeps
/// databases in one file apart.
#[test]
fn config_shapes_and_tables_in_one_file() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let path = scratch.path().join("shared.sqlite");
    let p = path.display().to_string();
    let configs = [
        format!(r#"{{:store {{:backend :jdbc :jdbcUrl "jdbc:sqlite:{p}" :table "a"}} :schema-flexibility :read}}"#),
        format!(r#"{{:store {{:backend :jdbc :jdbc-url "jdbc:sqlite:{p}" :table "b"}} :schema-flexibility :read}}"#),
        format!(r#"{{:store {{:backend :jdbc :dbtype "sqlite3" :dbname {p:?}}} :schema-flexibility :read}}"#),
    ];
    for (idx, text) in configs.iter().enumerate() {
        let config = Config::parse(text).unwrap();
        assert_eq!(config.store.backend_name(), "jdbc");
        assert!(!datahike::database_exists(&config).unwrap(), "{text}");
        datahike::create_database(&config).unwrap();
        let conn = datahike::connect(&config).unwrap();
        for n in 0..=idx {
            conn.transact(&read_str(&format!("[{{:n {n}}}]")).unwrap()).unwrap();
        }
        conn.release().unwrap();
    }
    for (idx, text) in configs.iter().enumerate() {
        let conn = datahike::connect(&Config::parse(text).unwrap()).unwrap();
        assert_eq!(count(&conn), Edn::Int(idx as i64 + 1), "{text}");
        conn.release().unwrap();
    }
    // Deleting one leaves the others.
    datahike::delete_database(&Config::parse(&configs[0]).unwrap()).unwrap();
    assert!(!datahike::database_exists(&Config::parse(&configs[0]).unwrap()).unwrap());
    assert!(datahike::database_exists(&Config::parse(&configs[1]).unwrap()).unwrap());
}

#[test]
fn bad_configs_name_the_key() {
    for (text, word) in [
        r#"{:store {:backend :jdbc :dbtype "sqlite"}}"#,
        r#"{:store {:backend :jdbc :dbtype "sqlite" :dbname ":memory:"}}"#,
        r#"{:store {:backend :jdbc :dbtype "sqlite" :dbname "/tmp/x.sqlite" :table "x; drop table y"}}"#,
        r#"{:store {:backend :jdbc :dbtype "oracle" :dbname "x"}}"#,
        r#"{:store {:backend :jdbc :dbname "x"}}"#,
    ]
    .iter()
    .zip([":dbname", ":memory:", ":table", "oracle", ":dbtype"])
    {
        let config = Config::parse(text).expect("the backend checks its keys when it opens");
        let err = datahike::create_database(&config).unwrap_err().to_string();
        assert!(err.contains(word), "{text}: {err}");
    }
}

/// Threads transacting through one connection, and a second connection on a branch, all
/// on one file; every transaction is there after a reopen.
#[test]
fn writers_on_several_threads() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let config = config(&scratch.path().join("threads.sqlite"), ":schema-flexibility :read");
    datahike::create_database(&config).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = datahike::connect(&config).unwrap();
                for i in 0..50 {
                    conn.transact(&read_str(&format!("[{{:n {} :thread {t}}}]", t * 1000 + i)).unwrap()).unwrap();
                }
                conn.release().unwrap();
            })
        })
        .collect();
    // Meanwhile, a reader on another store handle of the same file.
    let reader = open(&store_map(&config_path(&config), "datahike"), OpenMode::ReadOnly).unwrap();
    for _ in 0..20 {
        assert!(reader.get("heads/db").unwrap().is_some());
    }
    for t in threads {
        t.join().unwrap();
    }
    let conn = datahike::connect(&config).unwrap();
    assert_eq!(count(&conn), Edn::Int(200));
    conn.release().unwrap();
}

fn config_path(config: &Config) -> PathBuf {
    let edn = config.store.to_edn();
    match edn.get_kw("dbname") {
        Some(Edn::Str(p)) => PathBuf::from(p.as_ref()),
        other => panic!("no :dbname in {other:?}"),
    }
}

/// A `:read-only? true` connection reads the database and is released without writing.
#[test]
fn read_only_connections() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let path = scratch.path().join("ro.sqlite");
    let writer = config(&path, ":schema-flexibility :read");
    datahike::create_database(&writer).unwrap();
    let conn = datahike::connect(&writer).unwrap();
    conn.transact(&read_str("[{:n 1}]").unwrap()).unwrap();
    let reader = Config { read_only: true, ..writer.clone() };
    let ro = datahike::connect(&reader).unwrap();
    assert_eq!(count(&ro), Edn::Int(1));
    assert!(ro.transact(&read_str("[{:n 2}]").unwrap()).is_err(), "a reader cannot write");
    ro.release().unwrap();
    conn.release().unwrap();
    let ro = datahike::connect(&reader).unwrap();
    assert_eq!(count(&ro), Edn::Int(1));
    ro.release().unwrap();
}
