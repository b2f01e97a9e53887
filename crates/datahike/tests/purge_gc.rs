//! Excision end to end on the file backend: after a purge and a garbage collection with a
//! cutoff after it, the purged bytes are physically gone from every file of the store (index
//! nodes, commit records, packs and the log), while the rest of the data survives a reopen.

mod common;

use common::edn;
use datahike::{q, Config, QueryInput};
use std::path::Path;

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path).unwrap().windows(needle.len()).any(|w| w == needle) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn count(conn: &datahike::Conn, query: &str) -> usize {
    let db = conn.db();
    let history = db.history().unwrap();
    let rows = q(&edn(query), &[QueryInput::Db(history)]).unwrap();
    rows.as_seq().map_or(0, <[datahike::Edn]>::len)
}

fn run(purge: &str, secret: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let config = Config::parse(&format!(
        r#"{{:store {{:backend :file :path {:?}}}
             :schema-flexibility :read}}"#,
        path.display().to_string()
    ))
    .unwrap();
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    conn.transact(&edn(&format!(r#"[{{:db/id 1 :name "Alice" :ssn "{secret}-v1"}}]"#))).unwrap();
    conn.flush().unwrap();
    // Overwritten: the old value moves to history; both are on disk in several snapshots.
    conn.transact(&edn(&format!(r#"[[:db/add 1 :ssn "{secret}-v2"]]"#))).unwrap();
    for i in 0..5 {
        conn.transact(&edn(&format!(r#"[{{:name "filler-{i}"}}]"#))).unwrap();
    }
    conn.flush().unwrap();
    conn.transact(&edn(r#"[{:name "Bob"}]"#)).unwrap();
    assert!(!files_containing(&path, secret.as_bytes()).is_empty(), "the secret is stored before the purge");

    conn.transact(&edn(purge)).unwrap();
    assert_eq!(count(&conn, r#"[:find ?v :where [_ :ssn ?v]]"#), 0, "purged from current and history");
    // Without a cutoff every commit is kept, and old commits still hold the secret.
    conn.gc_storage(None).unwrap();
    assert!(!files_containing(&path, secret.as_bytes()).is_empty(), "old commits keep it until a cutoff passes them");
    let cutoff = conn.db().last_tx_instant() + 1;
    std::thread::sleep(std::time::Duration::from_millis(2));
    conn.gc_storage(Some(cutoff)).unwrap();
    assert_eq!(files_containing(&path, secret.as_bytes()), Vec::<String>::new(), "physically gone");
    conn.verify_storage().unwrap();
    conn.release().unwrap();
    let conn = datahike::connect(&config).unwrap();
    assert_eq!(count(&conn, r#"[:find ?n :where [_ :name ?n]]"#), 7, "the rest survives");
    assert_eq!(count(&conn, r#"[:find ?v :where [_ :ssn ?v]]"#), 0);
    conn.transact(&edn(r#"[{:name "Carl"}]"#)).unwrap();
    conn.release().unwrap();
}

#[test]
fn purged_values_are_physically_gone_after_gc() {
    run("[[:db.purge/attribute 1 :ssn]]", "SECRET-9f2c41");
}

#[test]
fn purged_entity_is_physically_gone_after_gc() {
    // The entity goes entirely, with the reference to it.
    let secret = "SECRET-entity-77ab";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let config = Config::parse(&format!(
        r#"{{:store {{:backend :file :path {:?}}} :schema-flexibility :read}}"#,
        path.display().to_string()
    ))
    .unwrap();
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    conn.transact(&edn("[{:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/one}]"))
        .unwrap();
    let report =
        conn.transact(&edn(&format!(r#"[{{:db/id "a" :name "{secret}"}} {{:name "Bob" :friend "a"}}]"#))).unwrap();
    let a = report.tempids.iter().find(|(k, _)| *k == datahike::Edn::Str("a".into())).unwrap().1;
    conn.flush().unwrap();
    conn.transact(&edn(&format!("[[:db.purge/entity {a}]]"))).unwrap();
    assert_eq!(count(&conn, r#"[:find ?f :where [_ :friend ?f]]"#), 0, "refs to it go too");
    let cutoff = conn.db().last_tx_instant() + 1;
    std::thread::sleep(std::time::Duration::from_millis(2));
    conn.gc_storage(Some(cutoff)).unwrap();
    assert_eq!(files_containing(&path, secret.as_bytes()), Vec::<String>::new());
    assert_eq!(count(&conn, r#"[:find ?n :where [_ :name ?n]]"#), 1);
    conn.release().unwrap();
}
