//! The transaction semantics on the file backend: the same scenarios, reopening (release +
//! connect), database lifecycle errors, a corrupt index node and a torn log tail.

mod common;

use common::*;
use datahike::{Config, Conn, Edn, IndexOrder};
use std::fs;
use std::path::{Path, PathBuf};

fn config(path: &Path, extra: &str) -> Config {
    Config::parse(&format!("{{:store {{:backend :file :path {:?}}} {extra}}}", path.display().to_string())).unwrap()
}

fn create(path: &Path, extra: &str) -> (Config, Conn) {
    let config = config(path, extra);
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    (config, conn)
}

const SCHEMA: &str = r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
                         {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
                         {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
                         {:db/ident :room :db/valueType :db.type/ref :db/cardinality :db.cardinality/many :db/isComponent true}
                         {:db/ident :a :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
                         {:db/ident :b :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
                         {:db/ident :a+b :db/valueType :db.type/tuple :db/tupleAttrs [:a :b] :db/cardinality :db.cardinality/one}]"#;

/// The scenarios of the memory tests, on `conn`.
fn scenario(conn: &Conn) {
    transact(conn, SCHEMA);
    let r =
        transact(conn, r#"[{:name "Alice" :age 20} [:db/add -1 :name "Bob"] [:db/add -1 :friend [:name "Alice"]]]"#);
    assert_eq!(tempid(&r, "-1"), 9);
    assert_entities(&r.db_after, &[8, 9], r#"[[8 :name "Alice"] [8 :age 20] [9 :name "Bob"] [9 :friend 8]]"#);
    let r = transact(conn, r#"[{:name "Alice" :age 21}]"#);
    assert_tx_data_user(&r, "[[8 :age 20 false] [8 :age 21 true]]");
    transact_err(conn, r#"[{:name "Alice" :age "old"}]"#, "transact/schema");
    transact_err(conn, r#"[[:db/cas 8 :age 20 22]]"#, "transact/cas");
    transact_err(conn, r#"[{:db/id 9 :name "Alice"}]"#, "transact/upsert");
    transact(
        conn,
        r#"[{:name "House" :room [{:name "Kitchen"} {:name "Bath"}]} [:db/add 9 :a "x"] [:db/add 9 :b "y"]]"#,
    );
    assert!(entity(&conn.db(), 9).contains(&r#"[9 :a+b ["x" "y"]]"#.to_string()));
    let r = transact(conn, r#"[[:db/retractEntity [:name "House"]] [:db/retractEntity 8]]"#);
    assert_eq!(entid(&r.db_after, r#"[:name "Kitchen"]"#), None);
    assert_entities(&r.db_after, &[8, 9], r#"[[9 :name "Bob"] [9 :a "x"] [9 :b "y"] [9 :a+b ["x" "y"]]]"#);
}

#[test]
fn scenarios_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (config, conn) = create(&path, ":schema-flexibility :write");
    scenario(&conn);
    let before = conn.db();
    let snapshot = all_datoms(&before);
    conn.release().unwrap();

    let conn = datahike::connect(&config).unwrap();
    let db = conn.db();
    assert_eq!(all_datoms(&db), snapshot);
    assert_eq!(db.max_tx(), before.max_tx());
    assert_eq!(db.max_eid(), before.max_eid());
    assert_eq!(pr(&db.schema_edn()), pr(&before.schema_edn()));
    // Ids continue where they stopped.
    let r = transact(&conn, r#"[{:name "Carol"}]"#);
    assert_eq!(r.db_after.max_tx(), before.max_tx() + 1);
    let carol = entid(&r.db_after, r#"[:name "Carol"]"#).unwrap();
    assert_eq!(carol, before.max_eid() + 1);
    // Unique constraints and upserts work against the reopened indices.
    let r = transact(&conn, r#"[{:name "Bob" :age 5}]"#);
    assert_tx_data_user(&r, "[[9 :age 5 true]]");
    transact_err(&conn, r#"[{:db/id 100 :name "Bob"}]"#, "transact/upsert");
    let after = all_datoms(&conn.db());
    conn.release().unwrap();

    // Without releasing in between: the log alone carries the last transactions.
    let conn = datahike::connect(&config).unwrap();
    assert_eq!(all_datoms(&conn.db()), after);
    conn.release().unwrap();
}

#[test]
fn scenarios_under_read_schema_on_file() {
    let dir = tempfile::tempdir().unwrap();
    let (config, conn) = create(&dir.path().join("db"), ":schema-flexibility :read");
    let r = transact(&conn, r#"[{:name "Alice" :age 20} [:db/add -1 :name "Bob"]]"#);
    assert_eq!(tempid(&r, "-1"), 2);
    assert_eav(&r.db_after, r#"[[1 :name "Alice"] [1 :age 20] [2 :name "Bob"]]"#);
    conn.release().unwrap();
    let conn = datahike::connect(&config).unwrap();
    assert_eq!(conn.config().schema_flexibility, datahike::SchemaFlexibility::Read);
    let r = transact(&conn, r#"[[:db/add -1 :anything 1.5]]"#);
    assert_eq!(tempid(&r, "-1"), 3);
    conn.release().unwrap();
}

fn pr(e: &Edn) -> String {
    datahike::edn::pr_str(e)
}

#[test]
fn lifecycle_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let config = config(&path, "");
    assert!(!datahike::database_exists(&config).unwrap());
    let err = datahike::connect(&config).unwrap_err();
    assert_eq!(err.code(), "database/state", "{err}");
    datahike::create_database(&config).unwrap();
    assert!(datahike::database_exists(&config).unwrap());
    let err = datahike::create_database(&config).unwrap_err();
    assert_eq!(err.code(), "database/state", "{err}");
    assert!(err.to_string().contains("already exists"), "{err}");
    let conn = datahike::connect(&config).unwrap();
    conn.release().unwrap();
    datahike::delete_database(&config).unwrap();
    assert!(!datahike::database_exists(&config).unwrap());
    assert!(datahike::connect(&config).is_err());
    // It can be created anew, empty.
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    assert_eq!(conn.db().max_tx(), datahike::datom::TX0);
    assert!(conn.db().datoms(IndexOrder::Eavt, &[]).unwrap().is_empty());
    conn.release().unwrap();
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn a_corrupt_node_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (config, conn) = create(&path, ":schema-flexibility :read");
    for i in 0..20 {
        transact(&conn, &format!(r#"[{{:name "person {i}" :age {i}}}]"#));
    }
    conn.flush().unwrap();
    conn.release().unwrap();
    let nodes = files_under(&path.join("nodepacks"));
    assert!(!nodes.is_empty());
    for node in &nodes {
        let mut bytes = fs::read(node).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        fs::write(node, &bytes).unwrap();
    }
    let result = std::panic::catch_unwind(|| {
        datahike::connect(&config).and_then(|conn| {
            let db = conn.db();
            for order in IndexOrder::ALL {
                db.datoms(order, &[])?;
            }
            Ok(())
        })
    });
    let outcome = result.expect("reading a corrupt node must not panic");
    let err = outcome.expect_err("a corrupt node must be reported");
    assert!(matches!(err.code(), "store/corrupt" | "index/io" | "store/io"), "{} {err}", err.code());
}

#[test]
fn a_torn_log_tail_loses_only_the_last_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (_config, conn) = create(&path, ":schema-flexibility :read");
    for i in 0..5 {
        transact(&conn, &format!(r#"[{{:name "person {i}" :age {i}}}]"#));
    }
    let expected_before_last = all_datoms(&conn.db());
    transact(&conn, r#"[{:name "last" :age 99}]"#);
    // Copy the store while its last transactions are only in the log.
    let copy = dir.path().join("copy");
    copy_dir(&path, &copy);
    conn.release().unwrap();
    // The branch's log, `log/db@<log id>`: the only one.
    let segments = files_under(&copy.join("log"));
    let newest = segments.last().expect("a log segment");
    // Torn as a crash tears it: the last frame's last bytes never reached the zeros written
    // ahead of it.
    let mut bytes = fs::read(newest).unwrap();
    let written = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    bytes[written - 3..written].fill(0);
    fs::write(newest, &bytes).unwrap();

    let config = config(&copy, ":schema-flexibility :read");
    let conn = datahike::connect(&config).unwrap();
    let db = conn.db();
    assert_eq!(db.max_tx(), TX1 + 4);
    assert_eq!(all_datoms(&db), expected_before_last);
    // The next transaction takes the lost one's ids.
    let r = transact(&conn, r#"[{:name "again"}]"#);
    assert_eq!(r.db_after.max_tx(), TX1 + 5);
    assert_eq!(entid(&r.db_after, "6"), Some(6));
    assert_eq!(entity(&r.db_after, 6), vec![r#"[6 :name "again"]"#]);
    conn.release().unwrap();
}
