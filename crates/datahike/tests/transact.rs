//! Transactions: entity maps, tempids, ops, lookup refs, tx metadata, tx-data contents and
//! order, and that a failed transaction changes nothing. Behaviour as in Datahike's
//! `transact_test.cljc`, `lookup_refs_test.cljc` and `db/transaction.cljc`.

mod common;

use common::*;
use datahike::edn::pr_str;
use datahike::{Edn, IndexOrder};

const FRIEND_MANY: &str = "[{:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]";

#[test]
fn map_without_id_then_tempid_op_allocate_in_order() {
    let conn = read_db();
    let r = transact(&conn, r#"[{:name "Alice" :age 20} [:db/add -1 :name "Bob"]]"#);
    assert_eq!(tempids(&r), vec![("-1".to_string(), 2)]);
    assert_eq!(r.tempid(&Edn::kw("db/current-tx")), Some(TX1));
    assert_eav(&r.db_after, r#"[[1 :name "Alice"] [1 :age 20] [2 :name "Bob"]]"#);
    assert_eq!(r.db_after.max_eid(), 2);
    // The next transaction continues after the largest id.
    let r = transact(&conn, r#"[{:name "Carol"}]"#);
    assert_eq!(entity(&r.db_after, 3), vec![r#"[3 :name "Carol"]"#]);
}

#[test]
fn schema_entities_take_ids() {
    let conn = write_db(
        r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
            {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}]"#,
    );
    let db = conn.db();
    assert_eq!(entid(&db, ":name"), Some(1));
    assert_eq!(entid(&db, ":age"), Some(2));
    let r = transact(&conn, r#"[[:db/add -1 :name "Ivan"] {:name "Petr" :age 3}]"#);
    assert_eq!(tempids(&r), vec![("-1".to_string(), 3)]);
    assert_entities(&r.db_after, &[3, 4], r#"[[3 :name "Ivan"] [4 :name "Petr"] [4 :age 3]]"#);
}

#[test]
fn negative_and_string_tempids() {
    let conn = read_db();
    let t1 = transact(
        &conn,
        r#"[[:db/add -1 :name "Ivan"] [:db/add -1 :age 19] [:db/add -2 :name "Petr"] [:db/add -2 :age 22]]"#,
    );
    assert_eq!(tempids(&t1), vec![("-1".to_string(), 1), ("-2".to_string(), 2)]);
    assert_eq!(t1.tempid(&Edn::kw("db/current-tx")), Some(TX1));
    let t2 = transact(&conn, r#"[[:db/add "Serg" :name "Sergey"] [:db/add "Serg" :age 30]]"#);
    assert_eq!(tempids(&t2), vec![("\"Serg\"".to_string(), 3)]);
    assert_eq!(t2.tempid(&Edn::kw("db/current-tx")), Some(TX1 + 1));
    assert_eav(
        &conn.db(),
        r#"[[1 :name "Ivan"] [1 :age 19] [2 :name "Petr"] [2 :age 22] [3 :name "Sergey"] [3 :age 30]]"#,
    );
    // The same tempid across maps and ops is one entity.
    let t3 = transact(&conn, r#"[{:db/id "x" :name "Oleg"} [:db/add "x" :age 40] {:db/id "x" :aka "O"}]"#);
    let x = tempid(&t3, "\"x\"");
    assert_eq!(x, 4);
    assert_entities(&t3.db_after, &[4], r#"[[4 :name "Oleg"] [4 :age 40] [4 :aka "O"]]"#);
}

#[test]
fn tempids_as_ref_values_allocate_in_order() {
    let conn = read_db();
    transact(&conn, FRIEND_MANY);
    let r = transact(
        &conn,
        r#"[{:name "Sergey" :friend [-1 -2]}
            [:db/add -1 :name "Ivan"]
            [:db/add -2 :name "Petr"]
            [:db/add "B" :name "Boris"]
            [:db/add "B" :friend -3]
            [:db/add -3 :name "Oleg"]
            [:db/add -3 :friend "B"]]"#,
    );
    assert_eq!(
        tempids(&r),
        vec![("\"B\"".to_string(), 5), ("-1".to_string(), 3), ("-2".to_string(), 4), ("-3".to_string(), 6)]
    );
    assert_entities(
        &r.db_after,
        &[2, 3, 4, 5, 6],
        r#"[[2 :name "Sergey"] [2 :friend 3] [2 :friend 4] [3 :name "Ivan"] [4 :name "Petr"]
            [5 :name "Boris"] [5 :friend 6] [6 :name "Oleg"] [6 :friend 5]]"#,
    );
}

#[test]
fn unique_ref_attr_with_tempid_values_in_both_directions() {
    for text in [
        "[{:db/id 16 :foo/match -7} {:db/id -7 :foo/match 16}]",
        "[{:db/id -7 :foo/match 16} {:db/id 16 :foo/match -7}]",
        "[[:db/add 16 :foo/match -7] [:db/add -7 :foo/match 16]]",
        "[[:db/add -7 :foo/match 16] [:db/add 16 :foo/match -7]]",
    ] {
        let conn = mem_db(
            ":schema-flexibility :read :initial-tx [{:db/ident :foo/match :db/valueType :db.type/ref \
             :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}]",
        );
        let r = transact(&conn, text);
        let id = tempid(&r, "-7");
        let got: Vec<String> = r
            .db_after
            .datoms(IndexOrder::Aevt, &[Edn::kw("foo/match")])
            .unwrap()
            .iter()
            .map(|d| format!("{} {}", d.e, pr_str(&d.v.to_edn())))
            .collect();
        let mut want = vec![format!("16 {id}"), format!("{id} 16")];
        want.sort();
        let mut got = got;
        got.sort();
        assert_eq!(got, want, "{text}");
    }
}

#[test]
fn current_tx_forms_name_the_transaction_entity() {
    for form in [":db/current-tx", "\"datomic.tx\"", "\"datahike.tx\""] {
        let conn = mem_db(":schema-flexibility :read :keep-history? false");
        let r = transact(
            &conn,
            &format!(
                r#"[{{:db/ident :created-at :db/valueType :db.type/ref}}
                    {{:name "X" :created-at {form}}}
                    {{:db/id {form} :prop1 "prop1"}}
                    [:db/add {form} :prop2 "prop2"]
                    [:db/add -1 :name "Y"]
                    [:db/add -1 :created-at {form}]]"#
            ),
        );
        assert_eq!(tempid(&r, form), TX1, "{form}");
        assert_eq!(tempid(&r, "-1"), 3, "{form}");
        assert_eq!(r.tempid(&Edn::kw("db/current-tx")), Some(TX1));
        let all: Vec<String> = r
            .db_after
            .datoms(IndexOrder::Eavt, &[])
            .unwrap()
            .iter()
            .map(|d| pr_str(&Edn::Vector(vec![Edn::Int(d.e), Edn::Keyword(d.a), d.v.to_edn()])))
            .collect();
        let want = vec![
            "[1 :db/ident :created-at]".to_string(),
            "[1 :db/valueType :db.type/ref]".to_string(),
            r#"[2 :name "X"]"#.to_string(),
            format!("[2 :created-at {TX1}]"),
            r#"[3 :name "Y"]"#.to_string(),
            format!("[3 :created-at {TX1}]"),
            format!(r#"[{TX1} :prop1 "prop1"]"#),
            format!(r#"[{TX1} :prop2 "prop2"]"#),
        ];
        let (mut all, mut want) = (all, want);
        all.sort();
        want.sort();
        assert_eq!(all, want, "{form}");
        // In a later transaction the same form names that transaction.
        let r2 = transact(&conn, &format!(r#"[[:db/add {form} :prop3 "prop3"]]"#));
        assert_eq!(tempid(&r2, form), TX1 + 1);
        assert_eq!(entity(&r2.db_after, TX1 + 1), vec![format!(r#"[{} :prop3 "prop3"]"#, TX1 + 1)]);
        let r3 = transact(&conn, &format!(r#"[{{:db/id {form} :prop4 "prop4"}}]"#));
        assert_eq!(tempid(&r3, form), TX1 + 2);
        assert_eq!(entity(&r3.db_after, TX1 + 2), vec![format!(r#"[{} :prop4 "prop4"]"#, TX1 + 2)]);
    }
}

#[test]
fn tx_meta_is_asserted_on_the_transaction_entity() {
    let conn = read_db();
    let r = conn.transact_arg(&edn(r#"{:tx-data [{:name "Sergey" :age 5}] :tx-meta {:foo "bar" :n 1}}"#)).unwrap();
    let meta: Vec<String> = r.tx_meta.iter().map(|(k, v)| format!("{} {}", Edn::Keyword(*k), pr_str(v))).collect();
    assert!(meta.contains(&r#":foo "bar""#.to_string()), "{meta:?}");
    assert!(meta.contains(&":n 1".to_string()), "{meta:?}");
    assert!(r.tx_meta.iter().any(|(k, v)| k.as_str() == "db/txInstant" && matches!(v, Edn::Inst(_))));
    let tx = entity(&r.db_after, TX1);
    assert!(tx.contains(&format!(r#"[{TX1} :foo "bar"]"#)), "{tx:?}");
    assert!(tx.contains(&format!("[{TX1} :n 1]")), "{tx:?}");
    assert!(tx.iter().any(|d| d.contains(":db/txInstant")), "{tx:?}");
    assert_eav(&r.db_after, r#"[[1 :name "Sergey"] [1 :age 5]]"#);

    // Overwriting and retracting metadata like any other entity.
    transact(&conn, &format!(r#"[{{:db/id {TX1} :foo "baz"}}]"#));
    assert!(entity(&conn.db(), TX1).contains(&format!(r#"[{TX1} :foo "baz"]"#)));
    transact(&conn, &format!(r#"[[:db/retract {TX1} :foo "baz"]]"#));
    assert!(!entity(&conn.db(), TX1).iter().any(|d| d.contains(":foo")));

    // A given :db/txInstant is used as is.
    let conn = read_db();
    let r = conn
        .transact_arg(&edn(
            r#"{:tx-data [{:name "Sergey"}] :tx-meta {:db/txInstant #inst "2020-01-02T03:04:05.006-00:00"}}"#,
        ))
        .unwrap();
    let want = datahike::edn::read_str(r#"#inst "2020-01-02T03:04:05.006-00:00""#).unwrap();
    let got = r.db_after.datoms(IndexOrder::Eavt, &[Edn::Int(TX1), Edn::kw("db/txInstant")]).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].v.to_edn(), want);
}

#[test]
fn tx_meta_with_an_undeclared_attribute_is_rejected_under_write() {
    let conn = write_db("[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one}]");
    let before = common::all_datoms(&conn.db());
    let err = conn.transact_arg(&edn(r#"{:tx-data [{:name "Sergey"}] :tx-meta {:foo :bar}}"#)).unwrap_err();
    assert_eq!(err.code(), "transact/schema", "{err}");
    assert!(err.to_string().contains(":foo"), "{err}");
    assert_eq!(common::all_datoms(&conn.db()), before);
}

#[test]
fn nested_maps_under_ref_attrs_create_linked_entities() {
    let conn = read_db();
    transact(
        &conn,
        r#"[{:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/one}
            {:db/ident :kids :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]"#,
    );
    let r = transact(&conn, r#"[{:name "X" :friend {:name "Y"}}]"#);
    assert_entities(&r.db_after, &[3, 4], r#"[[3 :name "X"] [3 :friend 4] [4 :name "Y"]]"#);
    let r = transact(&conn, r#"[{:db/id -1 :name "P" :kids [{:name "K1"} {:name "K2"}]}]"#);
    assert_eq!(tempid(&r, "-1"), 5);
    assert_entities(
        &r.db_after,
        &[5, 6, 7],
        r#"[[5 :name "P"] [5 :kids 6] [5 :kids 7] [6 :name "K1"] [7 :name "K2"]]"#,
    );
}

#[test]
fn reverse_refs_single_and_collection() {
    let conn = read_db();
    transact(&conn, FRIEND_MANY);
    transact(&conn, r#"[{:db/id 10 :name "Ivan"} {:db/id 11 :name "Petr"}]"#);
    let r = transact(&conn, r#"[{:db/id -1 :name "Oleg" :_friend 10}]"#);
    let oleg = tempid(&r, "-1");
    assert_eq!(oleg, 12);
    assert_entities(&r.db_after, &[10], &format!(r#"[[10 :name "Ivan"] [10 :friend {oleg}]]"#));
    let r = transact(&conn, r#"[{:db/id -1 :name "Anna" :_friend [10 11]}]"#);
    let anna = tempid(&r, "-1");
    assert_entities(
        &r.db_after,
        &[10, 11],
        &format!(
            r#"[[10 :name "Ivan"] [10 :friend {oleg}] [10 :friend {anna}] [11 :name "Petr"] [11 :friend {anna}]]"#
        ),
    );
    // A reverse attribute of a non-ref attribute is an error.
    let msg = transact_err(&conn, r#"[{:name "Z" :_name 10}]"#, "transact/syntax");
    assert!(msg.contains(":_name"), "{msg}");
}

#[test]
fn card_many_values_as_vector_set_or_list() {
    let conn = read_db();
    transact(&conn, "[{:db/ident :aka :db/cardinality :db.cardinality/many}]");
    let r = transact(
        &conn,
        r#"[{:db/id 10 :aka ["a" "b"]} {:db/id 11 :aka #{"c" "d"}} {:db/id 12 :aka ("e" "f")} {:db/id 13 :aka "g"}]"#,
    );
    assert_entities(
        &r.db_after,
        &[10, 11, 12, 13],
        r#"[[10 :aka "a"] [10 :aka "b"] [11 :aka "c"] [11 :aka "d"] [12 :aka "e"] [12 :aka "f"] [13 :aka "g"]]"#,
    );
    // Card-one: a vector is one (tuple-like) value, not expanded.
    let r = transact(&conn, r#"[{:db/id 14 :point [1 2]}]"#);
    assert_eq!(entity(&r.db_after, 14), vec!["[14 :point [1 2]]"]);
}

#[test]
fn a_lookup_ref_is_one_value_of_a_card_many_ref() {
    let conn = read_db();
    transact(
        &conn,
        r#"[{:db/ident :email :db/unique :db.unique/identity}
            {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]"#,
    );
    transact(&conn, r#"[{:db/id 10 :email "a@x"} {:db/id 11 :email "b@x"}]"#);
    let r = transact(&conn, r#"[{:db/id 12 :friend [:email "a@x"]}]"#);
    assert_eq!(entity(&r.db_after, 12), vec!["[12 :friend 10]"]);
    let r = transact(&conn, r#"[{:db/id 13 :friend [[:email "a@x"] [:email "b@x"]]}]"#);
    assert_eq!(entity(&r.db_after, 13), vec!["[13 :friend 10]", "[13 :friend 11]"]);
    let r = transact(&conn, r#"[{:db/id 14 :friend [10 [:email "b@x"]]}]"#);
    assert_eq!(entity(&r.db_after, 14), vec!["[14 :friend 10]", "[14 :friend 11]"]);
}

#[test]
fn add_retract_and_cardinality() {
    let conn = read_db();
    transact(&conn, "[{:db/ident :aka :db/cardinality :db.cardinality/many}]");
    transact(&conn, r#"[[:db/add 10 :name "Ivan"]]"#);
    let r = transact(&conn, r#"[[:db/add 10 :name "Petr"]]"#);
    // A card-one overwrite reports the retraction of the old value first.
    assert_tx_data_user(&r, r#"[[10 :name "Ivan" false] [10 :name "Petr" true]]"#);
    transact(&conn, r#"[[:db/add 10 :aka "Devil"] [:db/add 10 :aka "Tupen"]]"#);
    assert_entities(&conn.db(), &[10], r#"[[10 :name "Petr"] [10 :aka "Devil"] [10 :aka "Tupen"]]"#);

    // Retract with a value, absent value (no-op), without value (all values).
    let r = transact(&conn, r#"[[:db/retract 10 :name "Ivan"]]"#);
    assert_tx_data_user(&r, "[]");
    let r = transact(&conn, r#"[[:db/retract 10 :aka "Devil"]]"#);
    assert_tx_data_user(&r, r#"[[10 :aka "Devil" false]]"#);
    transact(&conn, r#"[[:db/add 10 :aka "X"]]"#);
    let r = transact(&conn, "[[:db/retract 10 :aka]]");
    assert_tx_data_user(&r, r#"[[10 :aka "Tupen" false] [10 :aka "X" false]]"#);
    assert_entities(&conn.db(), &[10], r#"[[10 :name "Petr"]]"#);
    // Retracting from an entity that does not exist or a lookup ref that resolves to nothing.
    transact(&conn, "[{:db/ident :email :db/unique :db.unique/identity}]");
    let r = transact(&conn, r#"[[:db/retract 99 :name "Petr"] [:db/retract [:email "none"] :name]]"#);
    assert_tx_data_user(&r, "[]");
}

#[test]
fn redundant_assertions_produce_no_datoms() {
    let conn = read_db();
    transact(&conn, "[{:db/ident :aka :db/cardinality :db.cardinality/many}]");
    transact(&conn, r#"[[:db/add 10 :name "Ivan"] [:db/add 10 :aka "a"] [:db/add 10 :aka "b"]]"#);
    let before = conn.db();
    for text in
        [r#"[[:db/add 10 :name "Ivan"]]"#, r#"[[:db/add 10 :aka "b"]]"#, r#"[{:db/id 10 :name "Ivan" :aka ["a" "b"]}]"#]
    {
        let r = transact(&conn, text);
        assert_tx_data_user(&r, "[]");
    }
    // The original assertion keeps its tx.
    let d = conn.db().datoms(IndexOrder::Eavt, &[Edn::Int(10), Edn::kw("name")]).unwrap();
    assert_eq!(d[0].tx(), before.datoms(IndexOrder::Eavt, &[Edn::Int(10), Edn::kw("name")]).unwrap()[0].tx());
    // The same value twice in one transaction is asserted once.
    let r = transact(&conn, r#"[[:db/add 11 :name "Oleg"] [:db/add 11 :name "Oleg"] {:db/id 11 :aka ["c" "c"]}]"#);
    assert_tx_data_user(&r, r#"[[11 :name "Oleg" true] [11 :aka "c" true]]"#);
}

#[test]
fn tx_data_order_follows_the_transaction() {
    let conn = read_db();
    let r = transact(&conn, r#"[[:db/add 2 :b 1] {:db/id 1 :a "x" :c 3} [:db/add 1 :a "y"] [:db/retract 2 :b 1]]"#);
    assert_tx_data_user(
        &r,
        r#"[[2 :b 1 true] [1 :a "x" true] [1 :c 3 true] [1 :a "x" false] [1 :a "y" true] [2 :b 1 false]]"#,
    );
    // With history kept, the tx entity's :db/txInstant comes first.
    assert_eq!(r.tx_data[0].e, TX1);
    assert_eq!(r.tx_data[0].a.as_str(), "db/txInstant");
    // nil entries are skipped.
    let r = transact(&conn, "[[:db/add 3 :a 1] nil [:db/add 4 :a 2]]");
    assert_tx_data_user(&r, "[[3 :a 1 true] [4 :a 2 true]]");
}

#[test]
fn retract_attribute_and_entity() {
    let schema = r#"[{:db/ident :aka :db/cardinality :db.cardinality/many}
                     {:db/ident :friend :db/valueType :db.type/ref}]"#;
    let conn = read_db();
    transact(&conn, schema);
    transact(
        &conn,
        r#"[{:db/id 10 :name "Ivan" :age 15 :aka ["X" "Y" "Z"] :friend 11}
            {:db/id 11 :name "Petr" :age 37 :friend 10}]"#,
    );
    let db = conn.db();
    let r = with(&db, "[[:db.fn/retractAttribute 10 :aka]]");
    assert_entities(&r.db_after, &[10], r#"[[10 :name "Ivan"] [10 :age 15] [10 :friend 11]]"#);
    let same = with(&db, "[[:db/retract 10 :aka]]");
    assert_entities(&same.db_after, &[10], r#"[[10 :name "Ivan"] [10 :age 15] [10 :friend 11]]"#);
    assert_eq!(same.tx_data[1..], r.tx_data[1..]);

    for op in [":db.fn/retractEntity", ":db/retractEntity"] {
        let r = with(&db, &format!("[[{op} 10]]"));
        // All datoms of 10 and the ref from 11 to 10 are gone.
        assert_entities(&r.db_after, &[10, 11], r#"[[11 :name "Petr"] [11 :age 37]]"#);
        assert!(r.tx_data.iter().filter(|d| d.e < datahike::datom::TX0).all(|d| !d.added()));
        assert_eq!(r.tx_data.iter().filter(|d| d.e < datahike::datom::TX0).count(), 7);
    }
    // Not found or unresolvable entity: no-op; repeated: idempotent.
    transact(&conn, "[{:db/ident :email :db/unique :db.unique/identity}]");
    transact(&conn, r#"[[:db/add 20 :email "e"]]"#);
    let db = conn.db();
    for op in [
        "[:db/retract 99 :name \"Petr\"]",
        "[:db.fn/retractAttribute 99 :name]",
        "[:db.fn/retractEntity 99]",
        "[:db/retractEntity 99]",
        "[:db/retract [:email \"none\"] :name \"Petr\"]",
        "[:db.fn/retractAttribute [:email \"none\"] :name]",
        "[:db.fn/retractEntity [:email \"none\"]]",
    ] {
        let r = with(&db, &format!("[{op}]"));
        assert_tx_data_user(&r, "[]");
    }
    for op in [
        "[:db/retract 20 :email \"e\"]",
        "[:db.fn/retractAttribute 20 :email]",
        "[:db.fn/retractEntity 20]",
        "[:db/retractEntity [:email \"e\"]]",
    ] {
        let once = with(&db, &format!("[{op}]"));
        let twice = with(&db, &format!("[{op} {op}]"));
        assert_eq!(entity(&once.db_after, 20), Vec::<String>::new(), "{op}");
        assert_tx_data_user(&twice, r#"[[20 :email "e" false]]"#);
    }
}

#[test]
fn retract_entity_added_in_the_same_transaction() {
    let conn = read_db();
    transact(&conn, "[{:db/ident :friend :db/valueType :db.type/ref}]");
    let r = transact(&conn, r#"[[:db/add 10 :name "A"] [:db/add 11 :friend 10] [:db/retractEntity 10]]"#);
    assert_entities(&r.db_after, &[10, 11], "[]");
}

#[test]
fn cas() {
    let conn = read_db();
    transact(&conn, "[{:db/ident :label :db/cardinality :db.cardinality/many}]");
    transact(&conn, "[[:db/cas 10 :weight nil 100]]");
    assert_eq!(entity(&conn.db(), 10), vec!["[10 :weight 100]"]);
    transact(&conn, "[[:db/add 10 :weight 200]]");
    transact(&conn, "[[:db.fn/cas 10 :weight 200 300]]");
    transact(&conn, "[[:db/cas 10 :weight 300 400]]");
    assert_eq!(entity(&conn.db(), 10), vec!["[10 :weight 400]"]);
    let msg = transact_err(&conn, "[[:db.fn/cas 10 :weight 200 210]]", "transact/cas");
    assert!(msg.contains(":db.fn/cas failed on datom [10 :weight 400], expected 200"), "{msg}");
    let msg = transact_err(&conn, "[[:db/cas 10 :weight nil 1]]", "transact/cas");
    assert!(msg.contains("[10 :weight 400], expected nil"), "{msg}");

    // Card-many: any current value may match.
    transact(&conn, "[[:db/add 11 :label :x] [:db/add 11 :label :y]]");
    transact(&conn, "[[:db.fn/cas 11 :label :y :z]]");
    assert_eq!(entity(&conn.db(), 11), vec!["[11 :label :x]", "[11 :label :y]", "[11 :label :z]"]);
    let msg = transact_err(&conn, "[[:db.fn/cas 11 :label :s :t]]", "transact/cas");
    assert!(msg.contains("[11 :label (:x :y :z)], expected :s"), "{msg}");

    // Tempids are only allowed in :db/add.
    let msg = transact_err(&conn, r#"[[:db/add -1 :name "Ivan"] [:db.fn/cas -1 :attr nil :val]]"#, "transact/syntax");
    assert!(msg.contains("Tempids are allowed in :db/add only"), "{msg}");
}

#[test]
fn tempids_only_in_add() {
    let conn = read_db();
    for op in [
        "[:db/retract -1 :name \"x\"]",
        "[:db/retractEntity -1]",
        "[:db.fn/retractEntity \"t\"]",
        "[:db.fn/retractAttribute -1 :name]",
        "[:db/cas -1 :name nil \"x\"]",
    ] {
        let msg = transact_err(&conn, &format!(r#"[[:db/add -1 :name "Ivan"] {op}]"#), "transact/syntax");
        assert!(msg.contains("Tempids are allowed in :db/add only"), "{op}: {msg}");
    }
}

#[test]
fn lookup_refs_in_every_position() {
    let conn = read_db();
    transact(
        &conn,
        r#"[{:db/ident :name :db/unique :db.unique/identity}
            {:db/ident :email :db/unique :db.unique/value}
            {:db/ident :friend :db/valueType :db.type/ref}]"#,
    );
    transact(&conn, r#"[{:db/id 10 :name "Ivan" :email "@1"} {:db/id 11 :name "Petr" :email "@2"}]"#);
    // Entity position, in :db/id, as ref value, with both unique kinds.
    transact(&conn, r#"[[:db/add [:name "Ivan"] :age 35] {:db/id [:email "@2"] :age 36}]"#);
    transact(&conn, r#"[[:db/add 10 :friend [:name "Petr"]] {:db/id [:name "Petr"] :friend [:email "@1"]}]"#);
    assert_entities(
        &conn.db(),
        &[10, 11],
        r#"[[10 :name "Ivan"] [10 :email "@1"] [10 :age 35] [10 :friend 11]
            [11 :name "Petr"] [11 :email "@2"] [11 :age 36] [11 :friend 10]]"#,
    );
    transact(&conn, r#"[[:db/retract [:name "Ivan"] :age 35] [:db.fn/retractAttribute [:name "Petr"] :age]]"#);
    assert!(!entity(&conn.db(), 10).iter().chain(entity(&conn.db(), 11).iter()).any(|d| d.contains(":age")));

    // Missing entity: entity-id/missing, in every position that must resolve.
    for text in [
        r#"[[:db/add [:name "Nobody"] :age 1]]"#,
        r#"[{:db/id [:name "Nobody"] :age 1}]"#,
        r#"[[:db/add 10 :friend [:name "Nobody"]]]"#,
        r#"[{:db/id 10 :friend [:name "Nobody"]}]"#,
        r#"[[:db/cas [:name "Nobody"] :age nil 1]]"#,
    ] {
        let msg = transact_err(&conn, text, "entity-id/missing");
        assert!(msg.contains("Nobody"), "{text}: {msg}");
    }
    // Non-unique attribute.
    for text in [r#"[[:db/add [:age 35] :x 1]]"#, r#"[{:db/id [:age 35] :x 1}]"#, r#"[[:db/add 10 :friend [:age 1]]]"#]
    {
        let msg = transact_err(&conn, text, "lookup-ref/unique");
        assert!(msg.contains(":age"), "{text}: {msg}");
    }
}

#[test]
fn ident_keyword_as_entity_id() {
    let conn = read_db();
    transact(&conn, r#"[{:db/ident :my.entity :name "Initial"}]"#);
    transact(&conn, r#"[{:db/id :my.entity :name "Updated"}]"#);
    assert_eav(&conn.db(), r#"[[1 :db/ident :my.entity] [1 :name "Updated"]]"#);
    transact(&conn, r#"[[:db/add :my.entity :age 3]]"#);
    assert_eq!(entity(&conn.db(), 1).len(), 3);
    let msg = transact_err(&conn, r#"[{:db/id :no.such :name "x"}]"#, "entity-id/missing");
    assert!(msg.contains(":no.such"), "{msg}");
}

#[test]
fn datom_literals_are_added_and_retracted() {
    let conn = read_db();
    transact(&conn, r#"[#datahike/Datom [1 :name "Oleg" 536870913 true] #datahike/Datom [1 :age 17 536870913 true]]"#);
    assert_eav(&conn.db(), r#"[[1 :name "Oleg"] [1 :age 17]]"#);
    transact(&conn, r#"[#datahike/Datom [1 :name "Oleg" 536870913 false]]"#);
    assert_eav(&conn.db(), "[[1 :age 17]]");
}

#[test]
fn malformed_transactions_are_rejected() {
    let conn = read_db();
    transact(&conn, r#"[[:db/add 1 :name "x"]]"#);
    transact_err(&conn, r#"{:db/id 1 :name "y"}"#, "transact/syntax");
    transact_err(&conn, "[1]", "transact/syntax");
    transact_err(&conn, r#"[[:db/frobnicate 1 :name "y"]]"#, "transact/syntax");
    transact_err(&conn, r#"[[:db/add 1 :name]]"#, "transact/syntax");
    let msg = transact_err(&conn, "[[:db/add 1 :name nil]]", "transact/syntax");
    assert!(msg.contains("nil"), "{msg}");
    transact_err(&conn, "[{:db/id 1 :name nil}]", "transact/syntax");
    transact_err(&conn, r#"[{:db/id 1.5 :name "y"}]"#, "entity-id/syntax");
    assert_eav(&conn.db(), r#"[[1 :name "x"]]"#);
}

#[test]
fn with_does_not_change_the_connection() {
    let conn = read_db();
    transact(&conn, r#"[[:db/add 1 :name "x"]]"#);
    let db = conn.db();
    let r = with(&db, r#"[[:db/add 1 :name "y"]]"#);
    assert_eav(&r.db_after, r#"[[1 :name "y"]]"#);
    assert_eq!(r.db_after.max_tx(), db.max_tx() + 1);
    assert_eav(&conn.db(), r#"[[1 :name "x"]]"#);
    assert_eq!(conn.db().max_tx(), db.max_tx());
}

#[test]
fn current_tx_names_the_transaction_in_retract_ops_too() {
    let conn = read_db();
    // Metadata asserted on the tx entity, then retracted in a later op of the same kind of
    // transaction: "datomic.tx" resolves to the running transaction in every op.
    let r = transact(&conn, r#"[[:db/add "datomic.tx" :source "import"] [:db/retract "datomic.tx" :source "import"]]"#);
    let tx = r.db_after.max_tx();
    assert_eq!(tempid(&r, r#""datomic.tx""#), tx);
    assert!(entity(&r.db_after, tx).iter().all(|d| !d.contains(":source")), "{:?}", entity(&r.db_after, tx));
    let r = transact(&conn, r#"[[:db/retractEntity :db/current-tx]]"#);
    assert!(r.tx_data.iter().any(|d| d.e == r.db_after.max_tx() && !d.added()), "{:?}", r.tx_data);
}
