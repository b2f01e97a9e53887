//! Issue 15, query items on inputs: queries that need no database run with no inputs (as in
//! Datahike), and `:in` names each source, rule set and variable once (as DataScript's
//! parser requires).

use datahike::edn::read_str;
use datahike::{q, Edn, QueryInput};

fn edn(text: &str) -> Edn {
    read_str(text).unwrap()
}

fn run(query: &str, inputs: &[QueryInput]) -> datahike::Result<Edn> {
    q(&edn(query), inputs)
}

#[test]
fn a_query_needing_no_database_runs_without_inputs() {
    let cases = [
        ("[:find ?v :where [(ground [:a :e :i]) [?v ...]]]", "#{[:a] [:e] [:i]}"),
        ("[:find ?x ?y :where [(ground [1 2]) [?x ?y]]]", "#{[1 2]}"),
        ("[:find ?s . :where [(ground 2) ?a] [(+ ?a 3) ?s]]", "5"),
        ("[:find [?n ...] :where [(ground [[1 :a] [2 :b]]) [[?n _]]] [(odd? ?n)]]", "[1]"),
        // Conflicting bindings of one variable by two function clauses: nothing.
        ("[:find ?n :where [(identity 1) ?n] [(identity 2) ?n]]", "#{}"),
        ("[:find ?n :where [(identity 1) ?n] [(identity 1) ?n]]", "#{[1]}"),
    ];
    for (query, expected) in cases {
        let got = run(query, &[]).unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(got, edn(expected), "{query}");
    }
}

#[test]
fn without_inputs_a_clause_that_needs_the_database_is_an_error() {
    let e = run("[:find ?e :where [?e :name]]", &[]).unwrap_err();
    assert!(e.to_string().contains('$'), "{e}");
    // An explicit `:in $` wants its database.
    let e = run("[:find ?v :in $ :where [(ground 1) ?v]]", &[]).unwrap_err();
    assert!(e.to_string().contains("Wrong number of inputs"), "{e}");
}

#[test]
fn the_default_database_input_still_works() {
    let conn = datahike::connect(
        &datahike::create_database(
            &datahike::Config::parse("{:store {:backend :memory :id \"query-inputs\"} :schema-flexibility :read}")
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    conn.transact(&edn(r#"[{:name "Ada"}]"#)).unwrap();
    let got = run("[:find ?n :where [_ :name ?n]]", &[QueryInput::Db(conn.db())]).unwrap();
    assert_eq!(got, edn(r#"#{["Ada"]}"#));
    // A constant-only query with a database given binds `$` and ignores it.
    let got = run("[:find ?v :where [(ground 7) ?v]]", &[QueryInput::Db(conn.db())]).unwrap();
    assert_eq!(got, edn("#{[7]}"));
    conn.release().unwrap();
}

#[test]
fn duplicate_in_names_are_an_error() {
    for (query, name) in [
        ("[:find ?e :in $ $ :where [?e :name]]", "$"),
        ("[:find ?x :in $ ?x ?x :where [(ground 1) ?x]]", "?x"),
        ("[:find ?x :in $ [?x ...] ?x :where [(ground 1) ?x]]", "?x"),
        ("[:find ?x :in $ % % :where [(ground 1) ?x]]", "%"),
        ("[:find ?x :in $a [[?x ?x]] :where [(ground 1) ?x]]", "?x"),
    ] {
        let e = run(query, &[]).unwrap_err();
        assert_eq!(e.code(), "query/syntax", "{query}: {e}");
        assert!(e.to_string().contains(&format!("Duplicate :in binding {name}")), "{query}: {e}");
    }
}

#[test]
fn a_lookup_ref_input_naming_no_entity_is_an_error() {
    let config = datahike::Config::parse("{:store {:backend :memory :id \"query-lookup-inputs\"}}").unwrap();
    let conn = datahike::connect(&datahike::create_database(&config).unwrap()).unwrap();
    conn.transact(&edn(
        "[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
          {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
          {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}]",
    ))
    .unwrap();
    conn.transact(&edn(r#"[{:db/id "a" :name "Ada" :age 36} {:name "Bob" :friend "a"}]"#)).unwrap();
    let db = || QueryInput::Db(conn.db());
    // A lookup ref naming an entity works as its id, in entity and in ref value position.
    let got = run("[:find ?a . :in $ ?e :where [?e :age ?a]]", &[db(), QueryInput::Edn(edn(r#"[:name "Ada"]"#))]);
    assert_eq!(got.unwrap(), edn("36"));
    let got = run(
        "[:find ?n . :in $ ?f :where [?e :friend ?f] [?e :name ?n]]",
        &[db(), QueryInput::Edn(edn(r#"[:name "Ada"]"#))],
    );
    assert_eq!(got.unwrap(), edn(r#""Bob""#));
    // Naming nothing: an error naming it, in both positions and in a collection input.
    for (query, input) in [
        ("[:find ?a :in $ ?e :where [?e :age ?a]]", r#"[:name "Nobody"]"#),
        ("[:find ?e :in $ ?f :where [?e :friend ?f]]", r#"[:name "Nobody"]"#),
        ("[:find ?a :in $ [?e ...] :where [?e :age ?a]]", r#"[[:name "Ada"] [:name "Nobody"]]"#),
    ] {
        let e = run(query, &[db(), QueryInput::Edn(edn(input))]).unwrap_err();
        assert!(e.to_string().contains(r#"Nothing found for entity id [:name "Nobody"]"#), "{query}: {e}");
    }
    // A lookup ref on an attribute that is not unique is no lookup ref.
    let e = run("[:find ?x :in $ ?e :where [?e :age ?x]]", &[db(), QueryInput::Edn(edn("[:age 36]"))]).unwrap_err();
    assert!(e.to_string().contains(":db/unique"), "{e}");
    conn.release().unwrap();
}

#[test]
fn a_map_given_to_a_collection_binding_binds_its_entries() {
    let map = QueryInput::Edn(edn(r#"{:a 1 :b 2 "c" [3 4]}"#));
    let got = run("[:find ?k ?v :in [[?k ?v] ...]]", &[map]).unwrap();
    assert_eq!(got, edn(r#"#{[:a 1] [:b 2] ["c" [3 4]]}"#));
    // Entries as plain values of a collection binding, and a filter over them.
    let got = run("[:find ?e :in [?e ...]]", &[QueryInput::Edn(edn("{:a 1}"))]).unwrap();
    assert_eq!(got, edn("#{[[:a 1]]}"));
    let got = run("[:find [?k ...] :in [[?k ?v] ...] :where [(> ?v 1)]]", &[QueryInput::Edn(edn("{:a 1 :b 2 :c 3}"))])
        .unwrap();
    let Edn::Vector(ks) = &got else { panic!("{got}") };
    let mut ks = ks.clone();
    ks.sort_by_key(|k| k.to_string());
    assert_eq!(Edn::Vector(ks), edn("[:b :c]"));
    // An empty map binds nothing; a map is still no tuple.
    assert_eq!(run("[:find ?k :in [[?k ?v] ...]]", &[QueryInput::Edn(edn("{}"))]).unwrap(), edn("#{}"));
    let e = run("[:find ?k :in [?k ?v]]", &[QueryInput::Edn(edn("{:a 1}"))]).unwrap_err();
    assert!(e.to_string().contains("Cannot bind value"), "{e}");
}

#[test]
fn a_function_returning_nil_filters_the_row_out() {
    let maps = QueryInput::Edn(edn("[{:v 1} {:w 2} {:v 3}]"));
    let got = run("[:find ?x :in [?m ...] :where [(get ?m :v) ?x]]", &[maps]).unwrap();
    assert_eq!(got, edn("#{[1] [3]}"));
    // Into a collection binding too; `false` is a value and stays.
    let maps = QueryInput::Edn(edn("[{:v [1 2]} {:w 2}]"));
    let got = run("[:find ?x :in [?m ...] :where [(get ?m :v) [?x ...]]]", &[maps]).unwrap();
    assert_eq!(got, edn("#{[1] [2]}"));
    let maps = QueryInput::Edn(edn("[{:v false} {:w 2}]"));
    let got = run("[:find ?x :in [?m ...] :where [(get ?m :v) ?x]]", &[maps]).unwrap();
    assert_eq!(got, edn("#{[false]}"));
}
