//! The Pull API against Datahike's answers (`test/datahike/test/pull_api_test.cljc`): attribute
//! specs and options, legacy forms, nested maps, reverse and component attributes, wildcard,
//! recursion with depths and cycles, limits, defaults, errors; on memory and file databases.

mod common;

use common::*;
use datahike::edn::pr_str;
use datahike::pull::{pull_eid, pull_many_eids};
use datahike::{pull, pull_many, Config, Conn, Db, Edn, PullPattern};

/// Datahike's pull test schema, with the schema entities at high ids so that the data can use
/// Datahike's ids 1..18.
const SCHEMA: &str = r#"[
 {:db/id 101 :db/ident :name}
 {:db/id 102 :db/ident :aka :db/cardinality :db.cardinality/many}
 {:db/id 103 :db/ident :child :db/cardinality :db.cardinality/many :db/valueType :db.type/ref}
 {:db/id 104 :db/ident :friend :db/cardinality :db.cardinality/many :db/valueType :db.type/ref}
 {:db/id 105 :db/ident :enemy :db/cardinality :db.cardinality/many :db/valueType :db.type/ref}
 {:db/id 106 :db/ident :father :db/valueType :db.type/ref}
 {:db/id 107 :db/ident :part :db/valueType :db.type/ref :db/isComponent true :db/cardinality :db.cardinality/many}
 {:db/id 108 :db/ident :spec :db/valueType :db.type/ref :db/isComponent true :db/cardinality :db.cardinality/one}]"#;

const DATA: &str = r#"[
 [:db/add 1 :name "Petr"] [:db/add 1 :aka "Devil"] [:db/add 1 :aka "Tupen"]
 [:db/add 2 :name "David"] [:db/add 3 :name "Thomas"] [:db/add 4 :name "Lucy"]
 [:db/add 5 :name "Elizabeth"] [:db/add 6 :name "Matthew"] [:db/add 7 :name "Eunan"]
 [:db/add 8 :name "Kerri"] [:db/add 9 :name "Rebecca"]
 [:db/add 1 :child 2] [:db/add 1 :child 3] [:db/add 2 :father 1] [:db/add 3 :father 1] [:db/add 6 :father 3]
 [:db/add 10 :name "Part A"] [:db/add 11 :name "Part A.A"] [:db/add 10 :part 11]
 [:db/add 12 :name "Part A.A.A"] [:db/add 11 :part 12] [:db/add 13 :name "Part A.A.A.A"] [:db/add 12 :part 13]
 [:db/add 14 :name "Part A.A.A.B"] [:db/add 12 :part 14] [:db/add 15 :name "Part A.B"] [:db/add 10 :part 15]
 [:db/add 16 :name "Part A.B.A"] [:db/add 15 :part 16] [:db/add 17 :name "Part A.B.A.A"] [:db/add 16 :part 17]
 [:db/add 18 :name "Part A.B.A.B"] [:db/add 16 :part 18]]"#;

fn load(conn: &Conn) -> Db {
    transact(conn, SCHEMA);
    transact(conn, DATA);
    conn.db()
}

fn test_db() -> Db {
    load(&mem_db(":schema-flexibility :read :keep-history? false"))
}

fn pulled(db: &Db, pattern: &str, eid: &str) -> Edn {
    pull(db, &edn(pattern), &edn(eid)).unwrap_or_else(|e| panic!("pull {pattern} {eid}: {e}"))
}

/// Pulls and compares with the expected EDN (maps compare without order, vectors in order).
fn check(db: &Db, pattern: &str, eid: &str, expected: &str) {
    let got = pulled(db, pattern, eid);
    assert_eq!(got, edn(expected), "pull {pattern} {eid}: got {}", pr_str(&got));
}

fn pull_err(db: &Db, pattern: &str, eid: &str, code: &str) -> String {
    match pull(db, &edn(pattern), &edn(eid)) {
        Ok(v) => panic!("pull {pattern} {eid} should fail with {code}, got {v}"),
        Err(e) => {
            assert_eq!(e.code(), code, "pull {pattern} {eid}: {e}");
            e.to_string()
        }
    }
}

#[test]
fn attribute_specs() {
    let db = test_db();
    check(&db, "[:name :aka]", "1", r#"{:name "Petr" :aka ["Devil" "Tupen"]}"#);
    check(&db, "[:name :father :db/id]", "6", r#"{:name "Matthew" :father {:db/id 3} :db/id 6}"#);
    // Printed in pattern order, as Clojure prints a small map.
    assert_eq!(
        pr_str(&pulled(&db, "[:name :father :db/id]", "6")),
        r#"{:name "Matthew", :father {:db/id 3}, :db/id 6}"#
    );
    let many = pull_many(&db, &edn("[:name]"), &edn("[1 5 7 9]")).unwrap();
    assert_eq!(pr_str(&many), r#"[{:name "Petr"} {:name "Elizabeth"} {:name "Eunan"} {:name "Rebecca"}]"#);
}

#[test]
fn reverse_attributes() {
    let db = test_db();
    check(&db, "[:name :_child]", "2", r#"{:name "David" :_child [{:db/id 1}]}"#);
    check(&db, "[:name {:_child [:name]}]", "2", r#"{:name "David" :_child [{:name "Petr"}]}"#);
    // Reverse non-component references yield collections.
    check(&db, "[:name :_father]", "3", r#"{:name "Thomas" :_father [{:db/id 6}]}"#);
    check(&db, "[:name :_father]", "1", r#"{:name "Petr" :_father [{:db/id 2} {:db/id 3}]}"#);
    check(&db, "[:name {:_father [:name]}]", "3", r#"{:name "Thomas" :_father [{:name "Matthew"}]}"#);
    check(&db, "[:name {:_father [:name]}]", "1", r#"{:name "Petr" :_father [{:name "David"} {:name "Thomas"}]}"#);
}

const PARTS: &str = r#"{:name "Part A",
 :part [{:db/id 11 :name "Part A.A",
         :part [{:db/id 12 :name "Part A.A.A",
                 :part [{:db/id 13 :name "Part A.A.A.A"} {:db/id 14 :name "Part A.A.A.B"}]}]}
        {:db/id 15 :name "Part A.B",
         :part [{:db/id 16 :name "Part A.B.A",
                 :part [{:db/id 17 :name "Part A.B.A.A"} {:db/id 18 :name "Part A.B.A.B"}]}]}]}"#;

#[test]
fn component_attributes() {
    let db = test_db();
    // Component entities are expanded recursively.
    check(&db, "[:name :part]", "10", PARTS);
    // Reverse component references yield a single result.
    check(&db, "[:name :_part]", "11", r#"{:name "Part A.A" :_part {:db/id 10}}"#);
    check(&db, "[:name {:_part [:name]}]", "11", r#"{:name "Part A.A" :_part {:name "Part A"}}"#);
    // Like explicit recursion, expansion will not allow loops.
    let recdb = with(&db, "[[:db/add 12 :part 10]]").db_after;
    let rpart = PARTS.replace(
        r#":part [{:db/id 13 :name "Part A.A.A.A"}"#,
        r#":part [{:db/id 10} {:db/id 13 :name "Part A.A.A.A"}"#,
    );
    check(&recdb, "[:name :part]", "10", &rpart);
    // A card-one component expands to a map.
    let spec = with(&db, "[[:db/add 1 :spec 10]]").db_after;
    let got = pulled(&spec, "[:spec]", "1");
    assert_eq!(got.get_kw("spec").and_then(|s| s.get_kw("name")), Some(&Edn::str("Part A")));
    assert_eq!(got.get_kw("spec").and_then(|s| s.get_kw("db/id")), Some(&Edn::Int(10)));
}

#[test]
fn wildcard() {
    let db = test_db();
    check(&db, "[*]", "1", r#"{:db/id 1 :name "Petr" :aka ["Devil" "Tupen"] :child [{:db/id 2} {:db/id 3}]}"#);
    check(&db, "[* :_child]", "2", r#"{:db/id 2 :name "David" :_child [{:db/id 1}] :father {:db/id 1}}"#);
    // `:db/id` first, then attributes in index order, reverse attributes last.
    assert_eq!(
        pr_str(&pulled(&db, "[* :_child]", "2")),
        r#"{:db/id 2, :father {:db/id 1}, :name "David", :_child [{:db/id 1}]}"#
    );
    // The wildcard spellings, and options for attributes next to it.
    for w in ["*", ":*", "\"*\""] {
        check(&db, &format!("[{w}]"), "9", r#"{:db/id 9 :name "Rebecca"}"#);
    }
    check(
        &db,
        r#"[* [:name :as "N"] {:child [:name]}]"#,
        "1",
        r#"{:db/id 1 "N" "Petr" :aka ["Devil" "Tupen"] :child [{:name "David"} {:name "Thomas"}]}"#,
    );
    // Components under a wildcard expand too.
    check(
        &db,
        "[*]",
        "15",
        r#"{:db/id 15 :name "Part A.B" :part [{:db/id 16 :name "Part A.B.A" :part [{:db/id 17 :name "Part A.B.A.A"} {:db/id 18 :name "Part A.B.A.B"}]}]}"#,
    );
    // Datahike answers `{:db/id e}` for a wildcard over an entity without datoms.
    check(&db, "[*]", "77", "{:db/id 77}");
}

#[test]
fn limits() {
    let db = test_db();
    let akas: Vec<String> = (0..2000).map(|i| format!("[:db/add 8 :aka \"aka-{i}\"]")).collect();
    let db = with(
        &db,
        &format!(
            "[[:db/add 4 :friend 5] [:db/add 4 :friend 6] [:db/add 4 :friend 7] [:db/add 4 :friend 8] {}]",
            akas.join(" ")
        ),
    )
    .db_after;
    let count = |pattern: &str| -> usize {
        let got = pulled(&db, pattern, "8");
        got.get_kw("aka").and_then(Edn::as_seq).map_or(0, <[Edn]>::len)
    };
    assert_eq!(count("[:aka]"), 1000, "the default limit is 1000");
    assert_eq!(count("[(limit :aka 500)]"), 500);
    assert_eq!(count("[[:aka :limit 500]]"), 500);
    assert_eq!(count("[[\"limit\" :aka 500]]"), 500);
    assert_eq!(count("[(limit :aka 1500)]"), 1500);
    assert_eq!(count("[(limit :aka nil)]"), 2000);
    assert_eq!(count("[[:aka :limit nil]]"), 2000);
    assert_eq!(count("[*]"), 1000, "the wildcard applies the default limit");
    assert_eq!(count("[* [:aka :limit 3]]"), 3);
    check(
        &db,
        "[:name {(limit :friend 2) [:name]}]",
        "4",
        r#"{:name "Lucy" :friend [{:name "Elizabeth"} {:name "Matthew"}]}"#,
    );
    check(&db, "[[:friend :limit 1]]", "4", "{:friend [{:db/id 5}]}");
    // A map spec's key may carry options in every attr-expr form (datalog-parser 0.2.37, which
    // Datahike uses; found by the DataScript differential test).
    for key in ["[:friend :limit 2]", "(limit :friend 2)", "[\"limit\" :friend 2]"] {
        check(&db, &format!("[{{{key} [:name]}}]"), "4", r#"{:friend [{:name "Elizabeth"} {:name "Matthew"}]}"#);
    }
    check(&db, "[{[:friend :as :pals :limit 1] [:name]}]", "4", r#"{:pals [{:name "Elizabeth"}]}"#);
}

#[test]
fn defaults_and_as() {
    let db = test_db();
    // Empty results return nil.
    assert_eq!(pulled(&db, "[:foo]", "1"), Edn::Nil);
    assert_eq!(pulled(&db, "[]", "1"), Edn::Nil);
    assert_eq!(pulled(&db, "[:name :db/id]", "77"), Edn::Nil);
    check(&db, r#"[(default :foo "bar")]"#, "1", r#"{:foo "bar"}"#);
    check(&db, r#"[[:foo :default "bar"]]"#, "1", r#"{:foo "bar"}"#);
    check(&db, r#"[[:name :as "Name"] [:aka :as :alias]]"#, "1", r#"{"Name" "Petr", :alias ["Devil" "Tupen"]}"#);
    check(&db, r#"[[:x :as "Name" :default "Nothing"]]"#, "1", r#"{"Name" "Nothing"}"#);
    // A string attribute name matches no keyword attribute.
    check(&db, r#"["name" [:aka :limit 1]]"#, "1", r#"{:aka ["Devil"]}"#);
}

#[test]
fn nested_maps() {
    let db = test_db();
    check(&db, "[:name {:father [:name]}]", "6", r#"{:name "Matthew" :father {:name "Thomas"}}"#);
    check(&db, "[:name {:child [:name]}]", "1", r#"{:name "Petr" :child [{:name "David"} {:name "Thomas"}]}"#);
    // Missing attributes are dropped; non-matching results are removed from collections.
    check(&db, "[:name {:father [:name]}]", "1", r#"{:name "Petr"}"#);
    check(&db, "[:name {:child [:foo]}]", "1", r#"{:name "Petr" :child []}"#);
    // Map specs override component expansion.
    let parts = r#"{:name "Part A" :part [{:name "Part A.A"} {:name "Part A.B"}]}"#;
    check(&db, "[:name {:part [:name]}]", "10", parts);
    check(&db, "[:name {:part 1}]", "10", parts);
    // Map specs go after the other specs; a map with several entries is several specs.
    assert_eq!(
        pr_str(&pulled(&db, "[{:father [:name] :_child [:db/id]} :name]", "2")),
        r#"{:name "David", :father {:name "Petr"}, :_child [{:db/id 1}]}"#
    );
}

fn friends_db() -> Db {
    with(
        &test_db(),
        "[[:db/add 4 :friend 5] [:db/add 5 :friend 6] [:db/add 6 :friend 7] [:db/add 7 :friend 8]
          [:db/add 4 :enemy 6] [:db/add 5 :enemy 7] [:db/add 6 :enemy 8] [:db/add 7 :enemy 4]]",
    )
    .db_after
}

const FRIENDS: &str = r#"{:db/id 4 :name "Lucy"
 :friend [{:db/id 5 :name "Elizabeth"
           :friend [{:db/id 6 :name "Matthew"
                     :friend [{:db/id 7 :name "Eunan"
                               :friend [{:db/id 8 :name "Kerri"}]}]}]}]}"#;

#[test]
fn recursion() {
    let db = friends_db();
    check(&db, "[:db/id :name {:friend ...}]", "4", FRIENDS);
    let enemies = r#"{:db/id 4 :name "Lucy"
     :friend [{:db/id 5 :name "Elizabeth"
               :friend [{:db/id 6 :name "Matthew" :enemy [{:db/id 8 :name "Kerri"}]}]
               :enemy [{:db/id 7 :name "Eunan"
                        :friend [{:db/id 8 :name "Kerri"}]
                        :enemy [{:db/id 4 :name "Lucy" :friend [{:db/id 5}]}]}]}]
     :enemy [{:db/id 6 :name "Matthew"
              :friend [{:db/id 7 :name "Eunan"
                        :friend [{:db/id 8 :name "Kerri"}]
                        :enemy [{:db/id 4 :name "Lucy" :friend [{:db/id 5 :name "Elizabeth"}]}]}]
              :enemy [{:db/id 8 :name "Kerri"}]}]}"#;
    check(&db, "[:db/id :name {:friend 2 :enemy 2}]", "4", enemies);
    // Cycles give only the :db/id of entities seen before on the path.
    let cyclic = with(&db, "[[:db/add 8 :friend 4]]").db_after;
    let expected = FRIENDS.replace(
        r#"{:db/id 8 :name "Kerri"}"#,
        r#"{:db/id 8 :name "Kerri" :friend [{:db/id 4 :name "Lucy" :friend [{:db/id 5}]}]}"#,
    );
    check(&cyclic, "[:db/id :name {:friend ...}]", "4", &expected);
}

#[test]
fn dual_recursion() {
    let conn = mem_db(":schema-flexibility :read");
    transact(&conn, "[{:db/id 101 :db/ident :part :db/valueType :db.type/ref} {:db/id 102 :db/ident :spec :db/valueType :db.type/ref}]");
    transact(
        &conn,
        "[[:db/add 1 :part 2] [:db/add 2 :part 3] [:db/add 3 :part 1] [:db/add 1 :spec 2] [:db/add 2 :spec 1]]",
    );
    check(
        &conn.db(),
        "[:db/id {:part ...} {:spec ...}]",
        "1",
        "{:db/id 1,
          :spec {:db/id 2 :spec {:db/id 1, :spec {:db/id 2}, :part {:db/id 2}}
                 :part {:db/id 3, :part {:db/id 1, :spec {:db/id 2}, :part {:db/id 2}}}}
          :part {:db/id 2 :spec {:db/id 1, :spec {:db/id 2}, :part {:db/id 2}}
                 :part {:db/id 3, :part {:db/id 1, :spec {:db/id 2}, :part {:db/id 2}}}}}",
    );
}

#[test]
fn deep_recursion_does_not_overflow_the_stack() {
    let (start, depth) = (100i64, 1500i64);
    let mut tx = vec![format!("[:db/add {start} :name \"Person-{start}\"]")];
    for i in start + 1..depth {
        tx.push(format!("[:db/add {i} :name \"Person-{i}\"] [:db/add {} :friend {i}]", i - 1));
    }
    let db = with(&test_db(), &format!("[{}]", tx.join(" "))).db_after;
    let pulled = pulled(&db, "[:name {:friend ...}]", &start.to_string());
    let mut node = &pulled;
    for _ in 0..(depth - start - 1) {
        node = node.get_kw("friend").and_then(Edn::as_seq).and_then(<[Edn]>::first).expect("a friend");
    }
    assert_eq!(node.get_kw("name"), Some(&Edn::str(&format!("Person-{}", depth - 1))));
    // The nested result drops here without recursion (`Edn`'s `Drop`); `pull_deep.rs` goes
    // 100,000 levels deep.
}

#[test]
fn idents_and_lookup_refs_as_entity_ids() {
    let conn = mem_db(":schema-flexibility :write");
    transact(
        &conn,
        r#"[{:db/ident :email :db/valueType :db.type/string :db/unique :db.unique/identity :db/cardinality :db.cardinality/one}
                       {:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
                       {:db/ident :color :db/valueType :db.type/ref :db/cardinality :db.cardinality/one}
                       {:db/ident :red}]"#,
    );
    transact(&conn, r#"[{:email "a@x" :name "Ann" :color :red}]"#);
    let db = conn.db();
    check(&db, "[:name]", r#"[:email "a@x"]"#, r#"{:name "Ann"}"#);
    check(&db, "[:db/ident]", ":red", "{:db/ident :red}");
    // Refs to an entity with an ident are `{:db/id e}` only, as in Datahike.
    let red = db.schema().ident_eid(datahike::Keyword::new("red")).unwrap();
    check(&db, "[:color]", r#"[:email "a@x"]"#, &format!("{{:color {{:db/id {red}}}}}"));
    check(&db, "[:name {:color [:db/ident]}]", r#"[:email "a@x"]"#, r#"{:name "Ann" :color {:db/ident :red}}"#);
    // Errors.
    let msg = pull_err(&db, "[:name]", r#"[:email "nobody"]"#, "entity-id/missing");
    assert!(msg.contains("Nothing found for entity id [:email \"nobody\"]"), "{msg}");
    pull_err(&db, "[:name]", ":nothing", "entity-id/missing");
    pull_err(&db, "[:name]", r#"[:name "Ann"]"#, "lookup-ref/unique");
    pull_err(&db, "[:name]", r#"[:email "a@x" 1]"#, "lookup-ref/syntax");
    pull_err(&db, "[:name]", r#""x""#, "entity-id/syntax");
    let msg = pull_err(&db, "[:name :unknown]", "1", "transact/schema");
    assert!(msg.contains(":unknown") && msg.contains("not defined in current schema"), "{msg}");
    pull_err(&db, "[{:unknown [:name]}]", "1", "transact/schema");
    pull_err(&db, "[:_unknown]", "1", "transact/schema");
    // pull-many resolves every id first.
    let err = pull_many(&db, &edn("[:name]"), &edn(r#"[1 [:email "nobody"]]"#)).unwrap_err();
    assert_eq!(err.code(), "entity-id/missing");
}

#[test]
fn malformed_patterns_are_errors() {
    let db = test_db();
    for (pattern, message) in [
        (":name", "Cannot parse pull pattern"),
        ("{:name [:x]}", "Cannot parse pull pattern"),
        ("[1]", "Cannot parse attr-spec"),
        ("[(limit :aka -1)]", "Expected [\"limit\" attr-name (positive-number | nil)]"),
        ("[(limit 1 2)]", "Expected [\"limit\""),
        ("[(default 1 2)]", "Expected [\"default\" attr-name any-value]"),
        ("[{:friend :x}]", "Expected (pattern | recursion-limit)"),
        ("[{:friend 0}]", "Expected (pattern | recursion-limit)"),
        ("[{1 [:name]}]", "Expected (attr-name | attr-expr)"),
        ("[{[:friend :bogus 1] [:name]}]", "Expected (attr-name | attr-expr)"),
        ("[[:name :bogus 1]]", "Cannot parse attr-spec"),
    ] {
        let err = pull(&db, &edn(pattern), &Edn::Int(1)).unwrap_err();
        assert!(err.to_string().contains(message), "{pattern}: {err}");
    }
}

#[test]
fn pull_many_leaves_out_entities_without_result() {
    let db = test_db();
    let got = pull_many(&db, &edn("[:name]"), &edn("[1 77 2]")).unwrap();
    assert_eq!(pr_str(&got), r#"[{:name "Petr"} {:name "David"}]"#);
    assert_eq!(pull_many(&db, &edn("[:name]"), &edn("[]")).unwrap(), edn("[]"));
    // A parsed pattern is reusable.
    let pattern = PullPattern::parse(&edn("[:name {:child [:name]}]"), &db).unwrap();
    assert_eq!(pull_eid(&db, &pattern, 1).unwrap(), edn(r#"{:name "Petr" :child [{:name "David"} {:name "Thomas"}]}"#));
    assert_eq!(pull_eid(&db, &pattern, 77).unwrap(), Edn::Nil);
    assert_eq!(pull_many_eids(&db, &pattern, &[2, 3]).unwrap(), edn(r#"[{:name "David"} {:name "Thomas"}]"#));
}

#[test]
fn file_database_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(&format!(
        "{{:store {{:backend :file :path {:?}}} :schema-flexibility :read :keep-history? false}}",
        dir.path().join("db").display().to_string()
    ))
    .unwrap();
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    load(&conn);
    conn.release().unwrap();
    let conn = datahike::connect(&config).unwrap();
    let db = conn.db();
    check(&db, "[:name :part]", "10", PARTS);
    check(&db, "[* :_child]", "2", r#"{:db/id 2 :name "David" :_child [{:db/id 1}] :father {:db/id 1}}"#);
    conn.release().unwrap();
}
