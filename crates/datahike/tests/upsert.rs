//! Upserts on `:db.unique/identity` and conflicts on `:db.unique/value`, as in Datahike's
//! `upsert_test.cljc` and `upsert-eid` / `retry-with-tempid` in `db/transaction.cljc`.

mod common;

use common::*;

const NAME_EMAIL: &str = r#"[{:db/ident :name :db/unique :db.unique/identity}
                             {:db/ident :email :db/unique :db.unique/identity}]"#;

/// A `:read` db with :name and :email as identities (schema entities 1 and 2) and Ivan (10,
/// "@1") and Petr (11, "@2").
fn ivan_petr() -> datahike::Conn {
    let conn = read_db();
    transact(&conn, NAME_EMAIL);
    transact(&conn, r#"[{:db/id 10 :name "Ivan" :email "@1"} {:db/id 11 :name "Petr" :email "@2"}]"#);
    conn
}

#[test]
fn map_upserts_by_identity() {
    let db = ivan_petr().db();
    for text in [
        r#"[{:name "Ivan" :age 35}]"#,
        r#"[{:name "Ivan" :email "@1" :age 35}]"#,
        r#"[{:db/id 10 :name "Ivan" :age 35}]"#,
        r#"[{:db/id 10 :name "Ivan" :email "@1" :age 35}]"#,
    ] {
        let r = with(&db, text);
        assert_entities(&r.db_after, &[10], r#"[[10 :name "Ivan"] [10 :email "@1"] [10 :age 35]]"#);
        assert_eq!(tempids(&r), vec![], "{text}");
        assert_tx_data_user(&r, "[[10 :age 35 true]]");
        assert_eq!(r.db_after.max_eid(), db.max_eid(), "{text}: an upsert allocates no id");
    }
    for text in [r#"[{:db/id -1 :name "Ivan" :age 35}]"#, r#"[{:db/id -1 :name "Ivan" :email "@1" :age 35}]"#] {
        let r = with(&db, text);
        assert_entities(&r.db_after, &[10], r#"[[10 :name "Ivan"] [10 :email "@1"] [10 :age 35]]"#);
        assert_eq!(tempids(&r), vec![("-1".to_string(), 10)]);
    }
    // An identity whose value is new does not upsert; another identity that matches does,
    // and the new value updates it.
    let r = with(&db, r#"[{:name "Ivan" :email "@3" :age 35}]"#);
    assert_entities(&r.db_after, &[10], r#"[[10 :name "Ivan"] [10 :email "@3"] [10 :age 35]]"#);
    assert_tx_data_user(&r, r#"[[10 :email "@1" false] [10 :email "@3" true] [10 :age 35 true]]"#);
}

#[test]
fn string_tempids_upsert_and_retry() {
    let db = ivan_petr().db();
    let r = with(&db, r#"[{:db/id "1" :name "Ivan" :age 35} [:db/add "2" :name "Oleg"] [:db/add "2" :email "@2"]]"#);
    assert_entities(&r.db_after, &[10], r#"[[10 :name "Ivan"] [10 :email "@1"] [10 :age 35]]"#);
    // "2" was first a new entity, then upserted to Petr by :email: the tx restarts with "2" = 11.
    assert_entities(&r.db_after, &[11], r#"[[11 :name "Oleg"] [11 :email "@2"]]"#);
    assert_eq!(tempids(&r), vec![("\"1\"".to_string(), 10), ("\"2\"".to_string(), 11)]);
    assert_eq!(r.db_after.max_eid(), 11);
}

#[test]
fn tempids_unify_through_identities_in_one_transaction() {
    let db = ivan_petr().db();
    let r = with(&db, r#"[{:db/id -1 :name "Ivan" :age 35} {:db/id -1 :name "Ivan" :age 36}]"#);
    assert_eq!(tempids(&r), vec![("-1".to_string(), 10)]);
    assert_entities(&r.db_after, &[10], r#"[[10 :name "Ivan"] [10 :email "@1"] [10 :age 36]]"#);
    let r = with(&db, r#"[{:db/id -1 :name "Ivan" :age 35} {:db/id -2 :name "Ivan" :age 36}]"#);
    assert_eq!(tempids(&r), vec![("-1".to_string(), 10), ("-2".to_string(), 10)]);

    // A new identity value asserted twice in one tx: both maps are one new entity.
    let r = with(&db, r#"[{:name "Igor" :age 35} {:name "Igor" :age 36}]"#);
    assert_entities(&r.db_after, &[12], r#"[[12 :name "Igor"] [12 :age 36]]"#);
    assert_eq!(r.db_after.max_eid(), 12);
    let r = with(&db, r#"[{:db/id -1 :name "Igor" :age 35} {:db/id -2 :name "Igor" :age 36}]"#);
    assert_eq!(tempids(&r), vec![("-1".to_string(), 12), ("-2".to_string(), 12)]);
    assert_entities(&r.db_after, &[12], r#"[[12 :name "Igor"] [12 :age 36]]"#);
}

#[test]
fn vector_adds_upsert_with_tempids() {
    let conn = read_db();
    transact(&conn, r#"[{:db/ident :name :db/unique :db.unique/identity}]"#);
    transact(&conn, r#"[{:db/id -1 :name "Ivan"}]"#);
    let db = conn.db();
    for text in
        [r#"[[:db/add -1 :name "Ivan"] [:db/add -1 :age 12]]"#, r#"[[:db/add -1 :age 12] [:db/add -1 :name "Ivan"]]"#]
    {
        let r = with(&db, text);
        assert_eav(
            &r.db_after,
            r#"[[1 :db/ident :name] [1 :db/unique :db.unique/identity] [2 :name "Ivan"] [2 :age 12]]"#,
        );
        assert_eq!(tempids(&r), vec![("-1".to_string(), 2)], "{text}");
    }
    // Redefining a tempid: the first map allocated -1, the second upserts it to Ivan.
    let r = with(&db, r#"[{:db/id -1 :age 35} {:db/id -1 :name "Ivan" :age 36}]"#);
    assert_entities(&r.db_after, &[2], r#"[[2 :name "Ivan"] [2 :age 36]]"#);
    assert_eq!(tempids(&r), vec![("-1".to_string(), 2)]);
    assert_eq!(r.db_after.max_eid(), 2);
}

#[test]
fn retries_keep_the_order_of_the_data() {
    let conn = read_db();
    transact(&conn, r#"[{:db/ident :name :db/unique :db.unique/identity}]"#);
    let db = conn.db();
    let r = with(
        &db,
        r#"[[:db/add -1 :age 42] [:db/add -2 :likes "Pizza"] [:db/add -1 :name "Bob"] [:db/add -2 :name "Bob"]]"#,
    );
    assert_eav(
        &r.db_after,
        r#"[[1 :db/ident :name] [1 :db/unique :db.unique/identity] [2 :name "Bob"] [2 :likes "Pizza"] [2 :age 42]]"#,
    );
    let r = with(
        &db,
        r#"[[:db/add -1 :age 42] [:db/add -2 :likes "Pizza"] [:db/add -2 :name "Bob"] [:db/add -1 :name "Bob"]]"#,
    );
    assert_eav(
        &r.db_after,
        r#"[[1 :db/ident :name] [1 :db/unique :db.unique/identity] [3 :name "Bob"] [3 :likes "Pizza"] [3 :age 42]]"#,
    );
}

#[test]
fn conflicting_upserts_are_rejected() {
    let conn = ivan_petr();
    let msg = transact_err(&conn, r#"[{:name "Ivan" :email "@2" :age 35}]"#, "transact/upsert");
    assert!(msg.contains(r#"[:name "Ivan"] resolves to 10, but [:email "@2"] resolves to 11"#), "{msg}");
    // An explicit :db/id that differs from where the identity resolves.
    for id in ["11", "12"] {
        let msg = transact_err(&conn, &format!(r#"[{{:db/id {id} :name "Ivan" :age 36}}]"#), "transact/upsert");
        assert!(
            msg.contains(&format!(r#"[:name "Ivan"] resolves to 10, but entity already has :db/id {id}"#)),
            "{msg}"
        );
    }
    let msg = transact_err(&conn, r#"[{:db/id :db/current-tx :name "Ivan" :age 35}]"#, "transact/upsert");
    assert!(msg.contains("resolves to 10"), "{msg}");
    // A lookup ref as :db/id resolving elsewhere.
    transact_err(&conn, r#"[{:db/id [:email "@2"] :name "Ivan"}]"#, "transact/upsert");
    // One tempid upserted to two different entities.
    let msg = transact_err(
        &conn,
        r#"[{:db/id -1 :name "Ivan" :age 35} {:db/id -1 :name "Petr" :age 36}]"#,
        "transact/upsert",
    );
    assert!(msg.contains("-1 resolves both to"), "{msg}");
    let msg = transact_err(
        &conn,
        r#"[[:db/add -1 :name "Ivan"] [:db/add -1 :age 35] [:db/add -1 :name "Petr"] [:db/add -1 :age 36]]"#,
        "transact/upsert",
    );
    assert!(msg.contains("-1 resolves both to"), "{msg}");
}

#[test]
fn unique_value_conflicts_are_rejected_not_upserted() {
    let conn = read_db();
    transact(&conn, r#"[{:db/ident :ssn :db/unique :db.unique/value}]"#);
    transact(&conn, r#"[{:db/id 10 :ssn "123"}]"#);
    let msg = transact_err(&conn, r#"[{:ssn "123" :age 3}]"#, "transact/unique");
    assert!(msg.contains("because of unique constraint"), "{msg}");
    assert!(msg.contains(r#""123""#), "{msg}");
    transact_err(&conn, r#"[[:db/add 11 :ssn "123"]]"#, "transact/unique");
    transact_err(&conn, r#"[[:db/add -1 :ssn "123"]]"#, "transact/unique");
    // Two new entities with the same value in one transaction.
    transact_err(&conn, r#"[[:db/add 11 :ssn "9"] [:db/add 12 :ssn "9"]]"#, "transact/unique");
    // Identity attributes reject duplicates between explicit ids too.
    transact(&conn, r#"[{:db/ident :name :db/unique :db.unique/identity}]"#);
    transact(&conn, r#"[[:db/add 20 :name "x"]]"#);
    transact_err(&conn, r#"[[:db/add 21 :name "x"]]"#, "transact/unique");
    // Moving a value: retract first, then assert elsewhere, in one transaction.
    let r = transact(&conn, r#"[[:db/retract 10 :ssn "123"] [:db/add 11 :ssn "123"]]"#);
    assert_tx_data_user(&r, r#"[[10 :ssn "123" false] [11 :ssn "123" true]]"#);
}

#[test]
fn upsert_under_write_schema() {
    let conn = write_db(
        r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
            {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}]"#,
    );
    transact(&conn, r#"[{:name "Alice" :age 25}]"#);
    let r = transact(&conn, r#"[{:name "Alice" :age 26}]"#);
    assert_tx_data_user(&r, "[[3 :age 25 false] [3 :age 26 true]]");
    let r = transact(&conn, r#"[{:db/id [:name "Alice"] :age 26}]"#);
    assert_tx_data_user(&r, "[]");
    assert_eav(
        &conn.db(),
        r#"[[1 :db/ident :name] [1 :db/valueType :db.type/string] [1 :db/cardinality :db.cardinality/one]
            [1 :db/unique :db.unique/identity] [2 :db/ident :age] [2 :db/valueType :db.type/long]
            [2 :db/cardinality :db.cardinality/one] [3 :name "Alice"] [3 :age 26]]"#,
    );
    // A wrongly typed identity value is a schema error, not a lookup miss.
    transact_err(&conn, r#"[{:name 42 :age 1}]"#, "transact/schema");
}
