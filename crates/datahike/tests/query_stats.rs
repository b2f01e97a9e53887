//! `query_stats` and `explain`: the clauses in the order the planner ran them, the index and
//! strategy of each data pattern, the rows before and after each clause, nested clauses of
//! `not`, `or` and rules; the result equals `q`'s.

mod common;

use common::{edn, transact, write_db};
use datahike::query::{explain, query_stats};
use datahike::{q, Conn, Edn, QueryInput};

const SCHEMA: &str = r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
 {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]"#;

fn people() -> Conn {
    let conn = write_db(SCHEMA);
    let mut tx = String::from("[");
    for i in 1..=200 {
        let name = if i % 20 == 0 { "Ivan" } else { "Other" };
        let friend = if i > 1 { format!(":friend [{}]", i - 1) } else { String::new() };
        tx.push_str(&format!("{{:db/id {i} :name {name:?} :age {} {friend}}}", i % 50));
    }
    tx.push(']');
    transact(&conn, &tx);
    conn
}

fn stats_of(result: &Edn) -> Vec<Edn> {
    result.get_kw("stats").and_then(Edn::as_seq).expect(":stats vector").to_vec()
}

fn int(m: &Edn, k: &str) -> i64 {
    match m.get_kw(k) {
        Some(Edn::Int(n)) => *n,
        other => panic!("{k} should be an integer in {m}, got {other:?}"),
    }
}

fn string(m: &Edn, k: &str) -> String {
    match m.get_kw(k) {
        Some(Edn::Str(s)) => s.to_string(),
        other => panic!("{k} should be a string in {m}, got {other:?}"),
    }
}

#[test]
fn stats_follow_the_chosen_order_with_rows_and_access() {
    let conn = people();
    // Written with the unselective clause first: the planner starts from the name instead.
    let query = edn(r#"[:find ?e ?a :where [?e :age ?a] [?e :name "Ivan"] [(> ?a 10)]]"#);
    let inputs = [QueryInput::Db(conn.db())];
    let result = query_stats(&query, &inputs).unwrap();
    assert_eq!(result.get_kw("ret"), Some(&q(&query, &inputs).unwrap()));
    assert_eq!(result.get_kw("query"), Some(&query));
    let stats = stats_of(&result);
    assert_eq!(stats.len(), 2, "the comparison is fused into the age lookup: {result}");
    assert_eq!(stats[0].get_kw("clause"), Some(&edn(r#"[?e :name "Ivan"]"#)));
    assert_eq!(stats[0].get_kw("type"), Some(&edn(":pattern")));
    assert_eq!(string(&stats[0], "access"), r#"SCAN :avet [:name "Ivan"]"#);
    assert_eq!((int(&stats[0], "rows-in"), int(&stats[0], "rows-out")), (1, 10));
    assert_eq!(stats[1].get_kw("clause"), Some(&edn("[?e :age ?a]")));
    let access = string(&stats[1], "access");
    // The name scan yields the Ivans by entity id, so the age scan merges with them.
    assert_eq!(access, "SCAN + MERGE-JOIN :aevt [:age] + [(> ?a 10)]");
    // Ivans are 20, 40, ..., 200: ages 20, 40, 10, 30, 0, 20, 40, 10, 30, 0; > 10 keeps six.
    assert_eq!((int(&stats[1], "rows-in"), int(&stats[1], "rows-out")), (10, 6));
    assert!(matches!(stats[1].get_kw("t"), Some(Edn::Float(t)) if *t >= 0.0));

    // A predicate the scan cannot apply is its own step, as soon as its variable is bound;
    // nothing is evaluated after a step leaves no rows.
    let query = edn(r#"[:find ?e ?a :where [?e :age ?a] [?e :name "Ivan"] [(odd? ?e)]]"#);
    let stats = stats_of(&query_stats(&query, &inputs).unwrap());
    assert_eq!(stats.len(), 2, "{stats:?}");
    assert_eq!(stats[1].get_kw("type"), Some(&edn(":predicate")));
    assert_eq!((int(&stats[1], "rows-in"), int(&stats[1], "rows-out")), (10, 0));
}

/// `[(op ?v c)]` fused into the scan of `[?e :attr ?v]` gives the same answers as the
/// predicate alone: every operator, both argument orders, two bounds, indexed or not.
#[test]
fn fused_comparisons_keep_their_meaning() {
    let conn = write_db(
        r#"[{:db/ident :n :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
            {:db/ident :m :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
            {:db/ident :s :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/index true}
            {:db/ident :d :db/valueType :db.type/double :db/cardinality :db.cardinality/one :db/index true}]"#,
    );
    let mut tx = String::from("[");
    for i in 0..40i64 {
        tx.push_str(&format!("{{:n {i} :m {i} :s \"s{i:02}\" :d {}.5}}", i - 20));
    }
    tx.push(']');
    transact(&conn, &tx);
    let db = conn.db();
    let ids = |query: &str| -> Vec<i64> {
        let result = q(&edn(query), &[QueryInput::Db(db.clone())]).unwrap();
        let mut out: Vec<i64> = result
            .as_seq()
            .unwrap()
            .iter()
            .map(|x| match x {
                Edn::Int(n) => *n,
                other => panic!("{other}"),
            })
            .collect();
        out.sort_unstable();
        out
    };
    let expect = |keep: &dyn Fn(i64) -> bool| -> Vec<i64> { (0..40).filter(|i| keep(*i)).collect() };
    for attr in [":n", ":m"] {
        let q1 = |clauses: &str| ids(&format!("[:find [?v ...] :where [?e {attr} ?v] {clauses}]"));
        assert_eq!(q1("[(> ?v 30)]"), expect(&|i| i > 30), "{attr}");
        assert_eq!(q1("[(>= ?v 30)]"), expect(&|i| i >= 30), "{attr}");
        assert_eq!(q1("[(< ?v 3)]"), expect(&|i| i < 3), "{attr}");
        assert_eq!(q1("[(<= ?v 3)]"), expect(&|i| i <= 3), "{attr}");
        assert_eq!(q1("[(< 30 ?v)]"), expect(&|i| i > 30), "{attr}");
        assert_eq!(q1("[(>= 3 ?v)]"), expect(&|i| i <= 3), "{attr}");
        assert_eq!(q1("[(> ?v 10)] [(< ?v 15)]"), expect(&|i| i > 10 && i < 15), "{attr}");
        assert_eq!(q1("[(> ?v 10)] [(>= ?v 12)] [(<= ?v 15)] [(< ?v 30)]"), expect(&|i| (12..=15).contains(&i)));
        assert_eq!(q1("[(> ?v 20)] [(< ?v 10)]"), Vec::<i64>::new(), "{attr}");
    }
    let access = |query: &str| {
        let stats = stats_of(&query_stats(&edn(query), &[QueryInput::Db(db.clone())]).unwrap());
        string(&stats[0], "access")
    };
    assert_eq!(access("[:find [?v ...] :where [?e :n ?v] [(> ?v 30)]]"), "SCAN :avet [:n 30] + [(> ?v 30)]");
    assert_eq!(access("[:find [?v ...] :where [?e :m ?v] [(> ?v 30)]]"), "SCAN :aevt [:m] + [(> ?v 30)]");
    let strs = ids(r#"[:find [?n ...] :where [?e :s ?v] [(>= ?v "s35")] [?e :n ?n]]"#);
    assert_eq!(strs, expect(&|i| i >= 35));
    let doubles = ids("[:find [?n ...] :where [?e :d ?v] [(< ?v 0.0)] [?e :n ?n]]");
    assert_eq!(doubles, expect(&|i| i < 20));
    // A constant of another kind is compared by the predicate, not the index.
    let mixed = ids("[:find [?n ...] :where [?e :d ?v] [(< ?v 0)] [?e :n ?n]]");
    assert_eq!(mixed, expect(&|i| i < 20));
}

#[test]
fn nested_clauses_are_reported_as_branches() {
    let conn = people();
    let query = edn(
        r#"[:find ?e :in $ % :where [?e :name "Ivan"] (not [?e :age 0]) (or [?e :age 20] [?e :age 40]) (near ?e ?f)]"#,
    );
    let rules = edn("[[(near ?a ?b) [?a :friend ?b]]]");
    let inputs = [QueryInput::Db(conn.db()), QueryInput::Edn(rules)];
    let result = query_stats(&query, &inputs).unwrap();
    assert_eq!(result.get_kw("ret"), Some(&q(&query, &inputs).unwrap()));
    let stats = stats_of(&result);
    let of_type = |t: &str| stats.iter().find(|s| s.get_kw("type") == Some(&edn(t))).cloned().expect(t);
    for t in [":not", ":or", ":rule"] {
        let stat = of_type(t);
        let branches = stat.get_kw("branches").and_then(Edn::as_seq).unwrap_or_else(|| panic!("{t} has branches"));
        assert!(!branches.is_empty(), "{stat}");
    }
    let or = of_type(":or");
    assert_eq!(or.get_kw("branches").and_then(Edn::as_seq).map(<[Edn]>::len), Some(2), "{or}");
}

#[test]
fn explain_prints_the_plan() {
    let conn = people();
    let query = edn(r#"[:find ?e (count ?f) :where [?e :name "Ivan"] [?e :friend ?f]]"#);
    let text = explain(&query, &[QueryInput::Db(conn.db())]).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "=== Query Plan ===");
    assert_eq!(lines[1], "find: [?e (count ?f)]");
    assert!(lines[2].starts_with(r#"1. SCAN :avet [:name "Ivan"]  [?e :name "Ivan"]  rows 1 -> 10"#), "{text}");
    assert!(lines[3].starts_with("2. "), "{text}");
    assert!(lines[3].contains("[?e :friend ?f]") && lines[3].contains("rows 10 -> 10"), "{text}");
    assert!(lines[4].starts_with("total: "), "{text}");
}

#[test]
fn errors_are_the_query_errors() {
    let conn = people();
    let inputs = [QueryInput::Db(conn.db())];
    let err = query_stats(&edn("[:find ?x :where [(> ?x 1)]]"), &inputs).unwrap_err();
    assert_eq!(err.code(), "query/binding", "{err}");
    let err = explain(&edn("[:find ?x :where [?x :name] :bogus]"), &inputs).unwrap_err();
    assert_eq!(err.code(), "query/syntax", "{err}");
}

/// Rows bound to an entity that is not their order are sorted before merging; a few rows
/// against a large attribute are looked up one by one. Both give the plain answer.
#[test]
fn sort_merge_and_lookup_joins() {
    let conn = people();
    let inputs = [QueryInput::Db(conn.db())];
    let query = edn(r#"[:find ?e ?f ?a :where [?e :name "Ivan"] [?e :friend ?f] [?f :age ?a]]"#);
    let result = query_stats(&query, &inputs).unwrap();
    let expected: Vec<String> =
        (1..=10).map(|k| format!("[{} {} {}]", 20 * k, 20 * k - 1, (20 * k - 1) % 50)).collect();
    assert_eq!(result.get_kw("ret"), Some(&edn(&format!("#{{{}}}", expected.join(" ")))));
    let stats = stats_of(&result);
    assert_eq!(string(&stats[2], "access"), "SORT + SCAN + MERGE-JOIN :aevt [:age]", "{result}");

    // One entity against 200 ages: a lookup.
    let query = edn(r#"[:find ?a . :in $ ?e :where [?e :age ?a]]"#);
    let inputs = [QueryInput::Db(conn.db()), QueryInput::Edn(edn("77"))];
    let result = query_stats(&query, &inputs).unwrap();
    assert_eq!(result.get_kw("ret"), Some(&edn("27")));
    assert!(string(&stats_of(&result)[0], "access").starts_with("LOOKUP per row :eavt"), "{result}");
}

#[test]
fn an_or_join_whose_branches_bind_its_variables_runs_before_an_unconnected_clause() {
    let conn = people();
    // `[?f :age _]` would bind ?f but shares nothing with ?e: waiting for it would first
    // join every Ivan with every person. Each branch binds ?f itself, so the or-join runs first.
    let query = edn(r#"[:find ?e ?f :where [?e :name "Ivan"]
            (or-join [?e ?f] [?e :friend ?f] (and [?f :friend ?e] [?f :age 0]))
            [?f :age _]]"#);
    let inputs = [QueryInput::Db(conn.db())];
    let result = query_stats(&query, &inputs).unwrap();
    assert_eq!(result.get_kw("ret"), Some(&q(&query, &inputs).unwrap()));
    let stats = stats_of(&result);
    assert_eq!(stats[0].get_kw("clause"), Some(&edn(r#"[?e :name "Ivan"]"#)), "{result}");
    assert_eq!(stats[1].get_kw("type"), Some(&edn(":or")), "{result}");
    assert!(stats.iter().all(|s| int(s, "rows-out") <= 20), "no cross product: {result}");
    let rows = q(&query, &inputs).unwrap();
    assert_eq!(rows.as_seq().map(<[Edn]>::len), Some(10), "each Ivan's friend: {rows}");
}
