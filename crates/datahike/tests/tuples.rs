//! Tuples: composite (`:db/tupleAttrs`), heterogeneous (`:db/tupleTypes`) and homogeneous
//! (`:db/tupleType`), as in Datahike's `tuples_test.cljc` and `check-tuple` in
//! `db/transaction.cljc`.

mod common;

use common::*;

const ABCD: &str = r#"[{:db/ident :a :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
                       {:db/ident :b :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
                       {:db/ident :c :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
                       {:db/ident :d :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
                       {:db/ident :a+b :db/valueType :db.type/tuple :db/tupleAttrs [:a :b] :db/cardinality :db.cardinality/one}
                       {:db/ident :a+c+d :db/valueType :db.type/tuple :db/tupleAttrs [:a :c :d] :db/cardinality :db.cardinality/one}]"#;

#[test]
fn composite_tuples_follow_their_parts() {
    let conn = write_db(ABCD);
    let steps = [
        (r#"[[:db/add 100 :a "a"]]"#, r#"[[100 :a "a"] [100 :a+b ["a" nil]] [100 :a+c+d ["a" nil nil]]]"#),
        (r#"[[:db/add 100 :b "b"]]"#, r#"[[100 :a "a"] [100 :b "b"] [100 :a+b ["a" "b"]] [100 :a+c+d ["a" nil nil]]]"#),
        (r#"[[:db/add 100 :a "A"]]"#, r#"[[100 :a "A"] [100 :b "b"] [100 :a+b ["A" "b"]] [100 :a+c+d ["A" nil nil]]]"#),
        (
            r#"[[:db/add 100 :c "c"] [:db/add 100 :d "d"]]"#,
            r#"[[100 :a "A"] [100 :b "b"] [100 :a+b ["A" "b"]] [100 :c "c"] [100 :d "d"] [100 :a+c+d ["A" "c" "d"]]]"#,
        ),
        (
            r#"[[:db/add 100 :a "A"] [:db/add 100 :b "B"] [:db/add 100 :c "C"] [:db/add 100 :d "D"]]"#,
            r#"[[100 :a "A"] [100 :b "B"] [100 :a+b ["A" "B"]] [100 :c "C"] [100 :d "D"] [100 :a+c+d ["A" "C" "D"]]]"#,
        ),
        (
            r#"[[:db/retract 100 :a "A"]]"#,
            r#"[[100 :b "B"] [100 :a+b [nil "B"]] [100 :c "C"] [100 :d "D"] [100 :a+c+d [nil "C" "D"]]]"#,
        ),
        (r#"[[:db/retract 100 :b "B"]]"#, r#"[[100 :c "C"] [100 :d "D"] [100 :a+c+d [nil "C" "D"]]]"#),
    ];
    for (tx, want) in steps {
        let r = transact(&conn, tx);
        assert_entities(&r.db_after, &[100], want);
    }
    // The tuple of a map with both parts is written once, with both values.
    let r = transact(&conn, r#"[{:db/id 200 :a "a" :b "c"}]"#);
    assert_tx_data_user(
        &r,
        r#"[[200 :a "a" true] [200 :b "c" true] [200 :a+b ["a" "c"] true] [200 :a+c+d ["a" nil nil] true]]"#,
    );
    // Retracting the entity retracts its tuples too.
    let r = transact(&conn, "[[:db/retractEntity 200]]");
    assert_entities(&r.db_after, &[200], "[]");
}

#[test]
fn composite_tuples_cannot_be_written_directly() {
    let conn = write_db(ABCD);
    transact(&conn, r#"[[:db/add 100 :a "a"]]"#);
    for text in [
        r#"[{:db/id 100 :a+b ["A" "B"]}]"#,
        "[[:db/add 101 :a+b [nil nil]]]",
        r#"[[:db/add 100 :a+b ["a" nil]]]"#,
        r#"[[:db/add 102 :a "a"] [:db/add 102 :a+b ["a" nil]]]"#,
        r#"[[:db/retract 100 :a+b ["a" nil]]]"#,
    ] {
        let msg = transact_err(&conn, text, "transact/syntax");
        assert!(msg.contains("Can’t modify tuple attrs directly"), "{text}: {msg}");
    }
}

#[test]
fn unique_composite_tuples_upsert_and_conflict() {
    let conn = write_db(
        r#"[{:db/ident :a :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
            {:db/ident :b :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
            {:db/ident :c :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
            {:db/ident :a+b :db/valueType :db.type/tuple :db/tupleAttrs [:a :b] :db/cardinality :db.cardinality/one
             :db/unique :db.unique/identity}]"#,
    );
    let r = transact(&conn, r#"[{:a "x" :b "y"}]"#);
    let e = r.db_after.max_eid();
    assert_eq!(e, 5);
    let r = transact(&conn, r#"[{:a "x" :b "y"}]"#);
    assert_tx_data_user(&r, "[]");
    let r = transact(&conn, r#"[{:a "x" :b "y" :c "xyz"}]"#);
    assert_tx_data_user(&r, r#"[[5 :c "xyz" true]]"#);
    assert_eq!(r.db_after.max_eid(), 5);
    assert_entities(&r.db_after, &[5], r#"[[5 :a "x"] [5 :b "y"] [5 :a+b ["x" "y"]] [5 :c "xyz"]]"#);
    // As a lookup ref.
    transact(&conn, r#"[{:db/id [:a+b ["x" "y"]] :c "new"}]"#);
    assert!(entity(&conn.db(), 5).contains(&r#"[5 :c "new"]"#.to_string()));
    // Changing a part so that the tuple collides with another entity's.
    transact(&conn, r#"[[:db/add 100 :a "a"] [:db/add 200 :a "A"] [:db/add 100 :b "b"] [:db/add 200 :b "b"]]"#);
    let msg = transact_err(&conn, r#"[[:db/add 100 :a "A"]]"#, "transact/unique");
    assert!(msg.contains("because of unique constraint"), "{msg}");
}

#[test]
fn heterogeneous_tuples_check_arity_and_types() {
    let conn = write_db(
        r#"[{:db/ident :coord :db/valueType :db.type/tuple :db/tupleTypes [:db.type/long :db.type/keyword]
             :db/cardinality :db.cardinality/one}]"#,
    );
    transact(&conn, "[{:db/id 100 :coord [100 :coord/west]}]");
    let r = transact(&conn, "[[:db/add 100 :coord [100 :coord/west]]]");
    assert_tx_data_user(&r, "[]");
    let msg = transact_err(&conn, "[{:coord [100 :coord/west 9]}]", "transact/syntax");
    assert!(msg.contains("Cannot store heterogeneous tuple: expecting 2 values, got 3"), "{msg}");
    let msg = transact_err(&conn, "[{:coord [100 9]}]", "transact/syntax");
    assert!(msg.contains("Cannot store heterogeneous tuple: there is a mismatch between values"), "{msg}");
    let r = transact(&conn, "[[:db/add 100 :coord [200 :coord/east]]]");
    assert_tx_data_user(&r, "[[100 :coord [100 :coord/west] false] [100 :coord [200 :coord/east] true]]");
}

#[test]
fn homogeneous_tuples_check_length_and_types() {
    let conn = write_db(
        r#"[{:db/ident :prices :db/valueType :db.type/tuple :db/tupleType :db.type/number :db/cardinality :db.cardinality/one}
            {:db/ident :tags :db/valueType :db.type/tuple :db/tupleType :db.type/string :db/cardinality :db.cardinality/one}]"#,
    );
    transact(&conn, "[{:db/id 10 :prices [1 2 3 4 5 6 7 8]}]");
    assert_eq!(entity(&conn.db(), 10), vec!["[10 :prices [1 2 3 4 5 6 7 8]]"]);
    let msg = transact_err(&conn, r#"[{:prices [1 2 3 4 5 6 "x"]}]"#, "transact/syntax");
    assert!(msg.contains("homogeneous tuple"), "{msg}");
    let msg = transact_err(&conn, r#"[{:prices ["a" "b" "c"]}]"#, "transact/syntax");
    assert!(msg.contains("Cannot store homogeneous tuple. Values are of wrong type"), "{msg}");
    let msg = transact_err(&conn, "[{:prices [1 2 3 4 5 6 7 8 9]}]", "transact/syntax");
    assert!(msg.contains("Cannot store more than 8 values"), "{msg}");
    // Values of one type: a long and a double are both numbers but not the same type.
    let msg = transact_err(&conn, "[{:prices [1 2.5]}]", "transact/syntax");
    assert!(msg.contains("homogeneous tuple"), "{msg}");
    transact(&conn, r#"[{:db/id 11 :tags ["a" "b" "c"]}]"#);
    transact_err(&conn, r#"[{:tags ["a" :b]}]"#, "transact/syntax");
    // nil is a type of its own to Datahike's check, so it cannot stand in a homogeneous tuple.
    transact_err(&conn, r#"[{:tags ["a" nil]}]"#, "transact/syntax");
    transact_err(&conn, "[{:prices [nil nil]}]", "transact/syntax");
}

#[test]
fn tuples_under_read_schema() {
    let conn = read_db();
    transact(
        &conn,
        "[{:db/ident :a+b :db/valueType :db.type/tuple :db/tupleAttrs [:a :b]}
          {:db/ident :xy :db/valueType :db.type/tuple :db/tupleTypes [:db.type/long :db.type/long]}]",
    );
    let r = transact(&conn, r#"[{:db/id 10 :a "x" :b 1 :xy [1 2]}]"#);
    assert_entities(&r.db_after, &[10], r#"[[10 :a "x"] [10 :b 1] [10 :a+b ["x" 1]] [10 :xy [1 2]]]"#);
    transact_err(&conn, "[[:db/add 10 :xy [1 2 3]]]", "transact/syntax");
    transact_err(&conn, r#"[[:db/add 10 :a+b ["y" 2]]]"#, "transact/syntax");
}

#[test]
fn composite_tuples_cannot_be_retracted_attribute_wise() {
    let conn = write_db(ABCD);
    transact(&conn, r#"[[:db/add 100 :a "a"]]"#);
    let msg = transact_err(&conn, "[[:db.fn/retractAttribute 100 :a+b]]", "transact/syntax");
    assert!(msg.contains("tuple attrs directly"), "{msg}");
}
