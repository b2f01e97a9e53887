//! Sets and maps in queries: `set`, `hash-map`, `array-map`, set and map constants and inputs,
//! the collection functions on them, binding their elements, returning them from `:find`,
//! and the errors (`complement`, storing a set).

mod common;

use common::{edn, transact, write_db};
use datahike::edn::pr_str;
use datahike::{q, Conn, Edn, QueryInput};

fn db() -> Conn {
    let conn = write_db(
        r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
            {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
            {:db/ident :tag :db/valueType :db.type/keyword :db/cardinality :db.cardinality/many}]"#,
    );
    transact(
        &conn,
        r#"[{:db/id 1 :name "Ivan" :age 30 :tag [:a :b]} {:db/id 2 :name "Petr" :age 15 :tag [:b]}
            {:db/id 3 :name "Oleg" :age 40}]"#,
    );
    conn
}

fn query(conn: &Conn, text: &str, extra: &[&str]) -> datahike::Result<Edn> {
    let mut inputs = vec![QueryInput::Db(conn.db())];
    inputs.extend(extra.iter().map(|x| QueryInput::Edn(edn(x))));
    q(&edn(text), &inputs)
}

fn ok(conn: &Conn, text: &str, extra: &[&str]) -> Edn {
    query(conn, text, extra).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The value `[expr ?x]` binds.
fn call(conn: &Conn, expr: &str) -> Edn {
    ok(conn, &format!("[:find ?x . :where {expr} ?x]]"), &[])
}

#[test]
fn set_and_map_functions_make_values() {
    let conn = db();
    assert_eq!(call(&conn, "[(set [3 1 3 2])"), edn("#{1 2 3}"));
    assert_eq!(call(&conn, "[(set nil)"), edn("#{}"));
    assert_eq!(call(&conn, "[(set {:a 1})"), edn("#{[:a 1]}"));
    assert_eq!(call(&conn, "[(hash-map :b 2 :a 1)"), edn("{:a 1, :b 2}"));
    assert_eq!(call(&conn, "[(array-map :a 1 :a 2)"), edn("{:a 2}"));
    assert_eq!(call(&conn, "[(hash-map)"), edn("{}"));
    // Printed as Clojure prints them.
    assert_eq!(pr_str(&call(&conn, "[(hash-map :a 1 :b \"x\")")), r#"{:a 1, :b "x"}"#);
    assert_eq!(pr_str(&call(&conn, "[(set [2 1])")), "#{1 2}");
    // The collection functions.
    for (expr, expected) in [
        ("[(count #{1 2 3})", "3"),
        ("[(count {:a 1})", "1"),
        ("[(contains? #{1 2} 2)", "true"),
        ("[(contains? #{1 2} 5)", "false"),
        ("[(contains? {:a 1} :a)", "true"),
        ("[(contains? {:a 1} 1)", "false"),
        ("[(get {:a 1} :a)", "1"),
        ("[(get {:a 1} :z :none)", ":none"),
        ("[(get #{:x} :x)", ":x"),
        ("[(empty #{1})", "#{}"),
        ("[(empty {:a 1})", "{}"),
        ("[(clojure.core/empty? #{})", "true"),
        ("[(not-empty #{1})", "#{1}"),
        ("[(first #{7})", "7"),
        ("[(first {:a 1})", "[:a 1]"),
        ("[(set? #{})", "true"),
        ("[(map? {})", "true"),
        ("[(coll? {})", "true"),
        ("[(vector? #{})", "false"),
        ("[(= #{1 2} #{2 1})", "true"),
        ("[(= {:a 1 :b 2} {:b 2 :a 1})", "true"),
        ("[(type #{})", "clojure.lang.PersistentHashSet"),
        ("[(type {:a 1})", "clojure.lang.PersistentArrayMap"),
        ("[(str #{1})", r##""#{1}""##),
        ("[(pr-str {:a \"x\"})", r#""{:a \"x\"}""#),
    ] {
        assert_eq!(call(&conn, expr), edn(expected), "{expr}");
    }
}

#[test]
fn sets_and_maps_flow_through_queries() {
    let conn = db();
    // A set constant as a membership test, the classic Datomic idiom.
    let found = ok(&conn, r#"[:find [?n ...] :where [?e :name ?n] [(contains? #{"Ivan" "Oleg"} ?n)]]"#, &[]);
    let mut names: Vec<String> = found.as_seq().unwrap().iter().map(pr_str).collect();
    names.sort();
    assert_eq!(names, [r#""Ivan""#, r#""Oleg""#]);
    // A set input.
    let found = ok(&conn, "[:find ?n . :in $ ?ok :where [?e :name ?n] [?e :age ?a] [(contains? ?ok ?a)]]", &["#{15}"]);
    assert_eq!(found, edn(r#""Petr""#));
    // A set bound per row, joined on, returned and counted.
    let found = ok(&conn, "[:find ?e ?s :where [?e :age ?a] [(* ?a 2) ?d] [(vector ?a ?d) ?v] [(set ?v) ?s]]", &[]);
    assert_eq!(found, edn("#{[1 #{30 60}] [2 #{15 30}] [3 #{40 80}]}"));
    let found =
        ok(&conn, "[:find ?m . :where [?e :name \"Ivan\"] [?e :age ?a] [(hash-map :name \"Ivan\" :age ?a) ?m]]", &[]);
    assert_eq!(found, edn(r#"{:name "Ivan", :age 30}"#));
    // Equal sets join: both people whose tag set is #{:b} ... only Petr has exactly that.
    let found = ok(
        &conn,
        "[:find ?n . :in $ ?want :where [?e :name ?n] [(q [:find [?t ...] :in $ ?e :where [?e :tag ?t]] $ ?e) ?ts] [(set ?ts) ?s] [(= ?s ?want)]]",
        &["#{:b}"],
    );
    assert_eq!(found, edn(r#""Petr""#));
    // The elements of a set or the entries of a map bound as a collection.
    let found = ok(&conn, "[:find ?x :where [(set [1 2 2 3]) ?s] [(identity ?s) [?x ...]]]", &[]);
    assert_eq!(found, edn("#{[1] [2] [3]}"));
    let found = ok(&conn, "[:find ?k ?v :where [(hash-map :a 1 :b 2) ?m] [(identity ?m) [[?k ?v]]]]", &[]);
    assert_eq!(found, edn("#{[:a 1] [:b 2]}"));
    // A nested query's set result is a set.
    let found = ok(&conn, "[:find ?c . :where [(q [:find ?n :where [_ :name ?n]] $) ?r] [(set? ?r) ?c]]", &[]);
    assert_eq!(found, edn("true"));
    // Aggregates count sets as values.
    let found = ok(&conn, "[:find (count-distinct ?s) . :where [?e :age ?a] [(quot ?a 100) ?z] [(set [?z]) ?s]]", &[]);
    assert_eq!(found, edn("1"));
}

#[test]
fn errors_name_the_problem_and_sets_are_not_stored() {
    let conn = db();
    let err = query(&conn, "[:find ?f . :where [(complement odd?) ?f]]", &[]).unwrap_err().to_string();
    assert!(err.contains("complement") && err.contains("not"), "{err}");
    let err = query(&conn, "[:find ?x . :where [(hash-map :a) ?x]]", &[]).unwrap_err().to_string();
    assert!(err.contains("No value supplied for key"), "{err}");
    let err = query(&conn, "[:find ?x . :where [(set 5) ?x]]", &[]).unwrap_err().to_string();
    assert!(err.contains("set"), "{err}");
    // Sets are not ordered: a comparison is false as a predicate.
    let found = ok(&conn, "[:find ?t . :where [(ground true) ?t] [(< #{1} #{2})]]", &[]);
    assert_eq!(found, Edn::Nil);
    // A set from a query cannot be stored as a datom value.
    let s = call(&conn, "[(set [1 2])");
    let tx = Edn::Vector(vec![Edn::Vector(vec![edn(":db/add"), Edn::Int(1), edn(":age"), s])]);
    let before = conn.db().max_tx();
    let err = conn.transact(&tx).unwrap_err().to_string();
    assert!(err.contains("#{1 2}"), "{err}");
    assert_eq!(conn.db().max_tx(), before);
}
