//! Issue 15's library items through `dthk` on a file store, as a user porting an application
//! would run them: `or` with a variable from `:in`, `missing?` with a reverse attribute,
//! pull beside aggregates, recursion inside a wildcard pull, upsert through a unique
//! composite tuple and tempids that upsert in later rounds. (`crates/datahike/tests/
//! ported_cases.rs` checks each behaviour in full.)

mod common;

use common::ok;

fn setup(d: &std::path::Path) {
    common::write_file_config(d, "cfg.edn", "");
    ok(d, &["create-database", "edn:cfg.edn"]);
    let schema = r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
        {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
        {:db/ident :parent :db/valueType :db.type/ref :db/cardinality :db.cardinality/one}
        {:db/ident :child :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
        {:db/ident :a :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
        {:db/ident :b :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
        {:db/ident :a+b :db/valueType :db.type/tuple :db/tupleAttrs [:a :b] :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}]"#;
    ok(d, &["transact", "conn:cfg.edn", schema]);
    ok(
        d,
        &[
            "transact",
            "conn:cfg.edn",
            r#"[{:db/id "r" :name "root" :age 50 :child ["k1" "k2"]} {:db/id "k1" :name "k1" :age 20 :parent "r"}
                {:db/id "k2" :name "k2" :age 30 :parent "r"} {:db/id "g" :name "g" :age 5 :parent "k1"}
                {:a "A" :b "B"}]"#,
        ],
    );
}

fn query(d: &std::path::Path, q: &str, inputs: &[&str]) -> String {
    let mut args = vec!["query", q, "db:cfg.edn"];
    args.extend(inputs);
    ok(d, &args).trim().to_string()
}

#[test]
fn ported_query_and_pull_cases() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    setup(d);
    let or = "[:find [?n ...] :in $ ?a :where (or [?e :age ?a] [?e :name \"root\"]) [?e :name ?n]]";
    let mut names: Vec<String> = query(d, or, &["30"]).trim_matches(['[', ']']).split(' ').map(String::from).collect();
    names.sort();
    assert_eq!(names, ["\"k2\"", "\"root\""]);
    let leaves = "[:find [?n ...] :where [?e :name ?n] [(missing? $ ?e :_parent)]]";
    let mut names: Vec<String> = query(d, leaves, &[]).trim_matches(['[', ']']).split(' ').map(String::from).collect();
    names.sort();
    assert_eq!(names, ["\"g\"", "\"k2\""]);
    let agg = "[:find (pull ?p [:name]) (min ?a) (max ?a) :where [?c :parent ?p] [?c :age ?a] [?p :name \"root\"]]";
    assert_eq!(query(d, agg, &[]), r#"[[{:name "root"} 20 30]]"#);
    let tree = ok(d, &["pull", "db:cfg.edn", "[* {:child ...}]", "[:name \"root\"]"]);
    assert!(
        tree.contains(r#":child [{:db/id"#) && tree.contains(r#":name "k1""#) && tree.contains(r#":parent {:db/id"#),
        "{tree}"
    );
    assert_eq!(ok(d, &["entity", "db:cfg.edn", "\"root\""]), "nil\n");
}

#[test]
fn ported_transaction_cases() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    setup(d);
    // Upsert through the composite tuple: no new entity, the age lands on {:a "A" :b "B"}.
    ok(d, &["transact", "conn:cfg.edn", r#"[{:a+b ["A" "B"] :age 7}]"#]);
    assert_eq!(query(d, "[:find ?age . :where [?e :a \"A\"] [?e :age ?age]]", &[]), "7");
    assert_eq!(query(d, "[:find (count ?e) . :where [?e :a+b]]", &[]), "1");
    // References to tempids that upsert by :name in later maps resolve to the existing people.
    ok(
        d,
        &[
            "transact",
            "conn:cfg.edn",
            r#"[{:db/id -1 :parent "K1"} {:db/id -2 :parent "K2"} {:db/id "K1" :name "k1"} {:db/id "K2" :name "k2"}]"#,
        ],
    );
    let parents = "[:find [?pn ...] :where [?c :parent ?p] [?p :name ?pn] [(missing? $ ?c :name)]]";
    let mut names: Vec<String> = query(d, parents, &[]).trim_matches(['[', ']']).split(' ').map(String::from).collect();
    names.sort();
    assert_eq!(names, ["\"k1\"", "\"k2\""]);
    assert_eq!(query(d, "[:find (count ?e) . :where [?e :name]]", &[]), "4");
}
