//! `dthk` on an `:attribute-refs? true` file database: transaction reports, `datoms` and
//! query results show attributes (and schema enums) as their entity ids, in separate
//! processes over one store.

mod common;

use common::{fails, ok};

#[test]
fn attribute_ids_through_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let config = format!("{{:store {{:backend :file :path {:?}}} :attribute-refs? true}}", path.display().to_string());
    std::fs::write(dir.path().join("cfg.edn"), config).unwrap();
    let d = dir.path();
    ok(d, &["create-database", "edn:cfg.edn"]);
    let report = ok(
        d,
        &[
            "transact",
            "conn:cfg.edn",
            "[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one}]",
        ],
    );
    assert!(report.contains("#datahike/Datom [55 1 :name 536870913 true]"), "{report}");
    assert!(report.contains("#datahike/Datom [55 2 26 536870913 true]"), "{report}");
    let report = ok(d, &["transact", "conn:cfg.edn", r#"[{:name "Alice"} [:db/add -1 55 "Bob"]]"#]);
    assert!(report.contains("#datahike/Datom [56 55 \"Alice\" 536870914 true]"), "{report}");
    assert!(report.contains(":tempids {-1 57"), "{report}");
    let datoms = ok(d, &["datoms", "db:cfg.edn", "{:index :aevt :components [55]}"]);
    assert_eq!(
        datoms.trim(),
        "[#datahike/Datom [56 55 \"Alice\" 536870914 true] #datahike/Datom [57 55 \"Bob\" 536870914 true]]"
    );
    let found = ok(d, &["query", "[:find ?a ?t :where [?e ?a \"Bob\"] [?a :db/valueType ?t]]", "db:cfg.edn"]);
    assert_eq!(found.trim(), "#{[55 26]}");
    let pulled = ok(d, &["pull", "db:cfg.edn", "[*]", "57"]);
    assert_eq!(pulled.trim(), r#"{:db/id 57, :name "Bob"}"#);
    let err = fails(d, &["transact", "conn:cfg.edn", r#"[[:db/add 26 :db/doc "mine"]]"#], 1);
    assert!(err.contains("System schema entity 26"), "{err}");
}
