//! Query memory and planning limits (issue 14, findings 3 and 7): every query runs under a
//! memory budget (the database's `:query-memory-limit`, lowered by a query's `:memory-limit`)
//! and fails with a `query/memory-limit` error instead of growing without bound; products of
//! unjoined clauses stream into `:limit` and small aggregates instead of being built; a query
//! of a thousand clauses on one variable plans quickly. Each reproduction of the issue runs
//! over 10,000 entities.

mod common;

use common::{edn, mem_db, transact};
use datahike::query::QueryInput;
use datahike::{q, Config, Conn, Edn, Error};
use std::collections::BTreeSet;

const N: i64 = 10_000;

/// `n` entities with `:k true` and `:v i`, in a database with `extra` config keys.
fn entities(conn: &Conn, n: i64) {
    for chunk in (1..=n).collect::<Vec<_>>().chunks(2_000) {
        let tx: String = chunk.iter().map(|i| format!("{{:k true :v {i}}}")).collect();
        transact(conn, &format!("[{tx}]"));
    }
}

fn db(extra: &str) -> Conn {
    let conn = mem_db(&format!(":schema-flexibility :read {extra}"));
    entities(&conn, N);
    conn
}

/// The ids of the entities with `:k`.
fn ids(conn: &Conn) -> BTreeSet<i64> {
    let found = q(&edn("[:find [?e ...] :where [?e :k]]"), &[conn.db().into()]).unwrap();
    let Edn::Vector(xs) = &found else { panic!("a vector, got {found}") };
    xs.iter().map(|x| if let Edn::Int(e) = x { *e } else { panic!("an id, got {x}") }).collect()
}

fn memory_error(query: &str, inputs: &[QueryInput]) -> Error {
    match q(&edn(query), inputs) {
        Ok(r) => panic!("{query} should exceed its memory limit, gave {}", r.to_string().len()),
        Err(e) => {
            assert_eq!(e.code(), "query/memory-limit", "{e}");
            e
        }
    }
}

fn limit_of(e: &Error) -> Edn {
    let data = e.data();
    let Edn::Map(entries) = &data else { panic!("data is a map: {data}") };
    entries.iter().find(|(k, _)| *k == Edn::kw("limit")).map(|(_, v)| v.clone()).expect(":limit in the data")
}

#[test]
fn a_product_of_three_scans_with_a_limit_answers_at_once() {
    let conn = db("");
    let ids = ids(&conn);
    assert_eq!(ids.len(), N as usize);
    let found = q(&edn("[:find ?a ?b ?c :where [?a :k] [?b :k] [?c :k] :limit 10]"), &[conn.db().into()]).unwrap();
    let Edn::Set(tuples) = &found else { panic!("a set, got {found}") };
    assert_eq!(tuples.len(), 10, "{found}");
    let distinct: BTreeSet<String> = tuples.iter().map(Edn::to_string).collect();
    assert_eq!(distinct.len(), 10, "distinct tuples: {found}");
    for t in tuples {
        let Edn::Vector(xs) = t else { panic!("a tuple, got {t}") };
        assert_eq!(xs.len(), 3);
        for x in xs {
            let Edn::Int(e) = x else { panic!("an id, got {x}") };
            assert!(ids.contains(e), "{e} has no :k");
        }
    }
    // :offset pages further into the same product.
    let paged =
        q(&edn("{:query [:find ?a ?b ?c :where [?a :k] [?b :k] [?c :k]] :offset 5 :limit 3}"), &[conn.db().into()])
            .unwrap();
    let Edn::Set(paged) = &paged else { panic!("a set") };
    assert_eq!(paged.len(), 3);
    // A scalar find needs one tuple of the product.
    let one = q(&edn("[:find ?a . :where [?a :k] [?b :k] [?c :k]]"), &[conn.db().into()]).unwrap();
    assert!(matches!(one, Edn::Int(e) if ids.contains(&e)), "{one}");
}

#[test]
fn a_product_of_three_scans_without_a_limit_fails_with_the_memory_error() {
    let conn = db("");
    // The query's own :memory-limit (64 MiB) keeps the test quick.
    let e = memory_error(
        "{:query [:find ?a ?b ?c :where [?a :k] [?b :k] [?c :k]] :memory-limit 67108864}",
        &[conn.db().into()],
    );
    assert_eq!(limit_of(&e), Edn::Int(64 << 20));
    let message = e.to_string();
    assert!(message.contains("memory limit of 67108864 bytes"), "{message}");
    assert!(message.contains(":query-memory-limit"), "says how to raise it: {message}");
    // The map form carries :memory-limit too, and the connection answers afterwards.
    memory_error("{:find [?a ?b] :where [[?a :k] [?b :k]] :memory-limit 16777216}", &[conn.db().into()]);
    let count = q(&edn("[:find (count ?a) . :where [?a :k]]"), &[conn.db().into()]).unwrap();
    assert_eq!(count, Edn::Int(N));
}

#[test]
fn the_database_config_sets_the_budget_and_a_query_can_only_lower_it() {
    // A file database with a 32 MiB budget.
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(&format!(
        "{{:store {{:backend :file :path {:?}}} :schema-flexibility :read :query-memory-limit 33554432}}",
        dir.path().join("db").display().to_string()
    ))
    .unwrap();
    assert_eq!(config.query_memory_limit, 32 << 20);
    // The config as printed back keeps the key.
    assert_eq!(Config::from_edn(&config.to_edn()).unwrap().query_memory_limit, 32 << 20);
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    entities(&conn, N);
    let e = memory_error("[:find ?a ?b :where [?a :k] [?b :k]]", &[conn.db().into()]);
    assert_eq!(limit_of(&e), Edn::Int(32 << 20));
    // A larger :memory-limit does not raise the database's.
    let e =
        memory_error("{:query [:find ?a ?b :where [?a :k] [?b :k]] :memory-limit 10737418240}", &[conn.db().into()]);
    assert_eq!(limit_of(&e), Edn::Int(32 << 20));
    // A smaller one lowers it.
    let e = memory_error("{:query [:find ?a ?b :where [?a :k] [?b :k]] :memory-limit 1048576}", &[conn.db().into()]);
    assert_eq!(limit_of(&e), Edn::Int(1 << 20));
    // Queries within the budget answer as before.
    let joined = q(&edn("[:find (count ?a) . :where [?a :k] [?a :v ?v] [(< ?v 100)]]"), &[conn.db().into()]).unwrap();
    assert_eq!(joined, Edn::Int(99));
    conn.release().unwrap();
}

#[test]
fn bad_memory_limits_are_refused_with_the_key_named() {
    for bad in ["0", "-5", "\"big\"", "1.5"] {
        let e = Config::parse(&format!("{{:store {{:backend :memory :id \"qm-bad\"}} :query-memory-limit {bad}}}"))
            .unwrap_err();
        assert!(e.to_string().contains(":query-memory-limit"), "{e}");
        assert!(e.to_string().contains(bad), "{e}");
    }
    let conn = db("");
    for bad in ["0", "-1", "\"x\""] {
        let query = format!("{{:query [:find ?a :where [?a :k]] :memory-limit {bad}}}");
        let e = q(&edn(&query), &[conn.db().into()]).unwrap_err();
        assert_eq!(e.code(), "query/syntax", "{e}");
        assert!(e.to_string().contains(":memory-limit"), "{e}");
        let map = format!("{{:find [?a] :where [[?a :k]] :memory-limit {bad}}}");
        let e = q(&edn(&map), &[conn.db().into()]).unwrap_err();
        assert_eq!(e.code(), "query/syntax", "{e}");
    }
}

#[test]
fn aggregates_over_a_product_run_over_the_set_of_find_tuples() {
    let conn = db("");
    let db = || -> Vec<QueryInput> { vec![conn.db().into()] };
    // Datahike aggregates the set of find tuples: [?a] for each ?a, whatever ?b is.
    assert_eq!(q(&edn("[:find (count ?a) . :where [?a :k] [?b :k]]"), &db()).unwrap(), Edn::Int(N));
    let sum: i64 = (1..=N).sum();
    let found = q(&edn("[:find (sum ?v) (min ?v) (max ?v) (avg ?v) :where [?a :v ?v] [?b :k]]"), &db()).unwrap();
    let expected = format!("[[{sum} 1 {N} {}]]", sum as f64 / N as f64);
    assert_eq!(found, edn(&expected));
    // Grouped: one group per ?v % 10 bucket would need a function; group by a second part's
    // constant instead: each ?a with the single ?t.
    transact(&conn, "[{:db/id \"t\" :tag :only}]");
    let grouped = q(&edn("[:find ?t (count ?a) :where [?a :k] [_ :tag ?t] [?b :k]]"), &db()).unwrap();
    assert_eq!(grouped, edn(&format!("[[:only {N}]]")));
    // An aggregate that needs every value (count-distinct) still answers within the budget.
    let distinct = q(&edn("[:find (count-distinct ?v) . :where [?a :v ?v] [?b :k]]"), &db()).unwrap();
    assert_eq!(distinct, Edn::Int(N));
    // Aggregating every pair of a product takes long but little memory: :timeout stops it.
    let e = q(&edn("{:query [:find (count ?a) (count ?b) :where [?a :k] [?b :k]] :timeout 100}"), &db()).unwrap_err();
    assert_eq!(e.code(), "query/timeout", "{e}");
    // An empty part empties the product.
    let none = q(&edn("[:find (count ?a) . :where [?a :k] [?b :missing]]"), &db()).unwrap();
    assert_eq!(none, Edn::Nil);
    let none = q(&edn("[:find ?a ?b :where [?a :k] [?b :missing]]"), &db()).unwrap();
    assert_eq!(none, edn("#{}"));
}

#[test]
fn a_join_too_large_for_the_budget_fails_instead_of_aborting() {
    assert_eq!(Config::memory("qm-default").query_memory_limit, 1 << 30, "the default budget is 1 GiB");
    // 16 MiB keeps the test quick; the default behaves alike at 1 GiB.
    let conn = db(":query-memory-limit 16777216");
    // One part: every ?a joins every ?b on the shared value true, 100 million distinct pairs.
    let e = memory_error("[:find ?a ?b :where [?a :k ?x] [?b :k ?x]]", &[conn.db().into()]);
    assert_eq!(limit_of(&e), Edn::Int(16 << 20));
    // With a :timeout, whichever limit comes first stops it, with its own error.
    let e =
        q(&edn("{:query [:find ?a ?b :where [?a :k ?x] [?b :k ?x]] :timeout 100}"), &[conn.db().into()]).unwrap_err();
    assert!(matches!(e.code(), "query/timeout" | "query/memory-limit"), "{e}");
    // A predicate after the join needs the joined rows.
    let count = q(&edn("[:find (count ?a) . :where [?a :k ?x] [?b :k ?x] [(= ?a ?b)]]"), &[conn.db().into()]);
    assert_eq!(count.unwrap_err().code(), "query/memory-limit");
    // The same join with a :limit stops once it has the tuples it shows.
    let ids = ids(&conn);
    for (query, n) in [
        ("[:find ?a ?b :where [?a :k ?x] [?b :k ?x] :limit 10]", 10),
        ("{:query [:find ?a ?b :where [?a :k ?x] [?b :k ?x]] :offset 20 :limit 5}", 5),
        ("[:find [?b ...] :where [?a :k ?x] [?b :k ?x] :limit 7]", 7),
    ] {
        let found = q(&edn(query), &[conn.db().into()]).unwrap();
        let (Edn::Set(xs) | Edn::Vector(xs)) = &found else { panic!("a collection, got {found}") };
        assert_eq!(xs.len(), n, "{query}: {found}");
        let distinct: BTreeSet<String> = xs.iter().map(Edn::to_string).collect();
        assert_eq!(distinct.len(), n, "{query}: {found}");
        for x in xs {
            let es = match x {
                Edn::Vector(es) => es.clone(),
                e => vec![e.clone()],
            };
            assert!(es.iter().all(|e| matches!(e, Edn::Int(e) if ids.contains(e))), "{query}: {x}");
        }
    }
    let one = q(&edn("[:find ?b . :where [?a :k ?x] [?b :k ?x]]"), &[conn.db().into()]).unwrap();
    assert!(matches!(one, Edn::Int(e) if ids.contains(&e)), "{one}");
}

#[test]
fn a_thousand_patterns_on_one_variable_plan_and_answer() {
    let conn = mem_db(":schema-flexibility :read");
    let attrs: String = (0..1000).map(|i| format!(" :a{i} {i}")).collect();
    transact(&conn, &format!("[{{:db/id \"x\" {attrs}}} {{:a0 0 :a1 -1}}]"));
    let patterns: String = (0..1000).map(|i| format!(" [?e :a{i} ?v{i}]")).collect();
    let query = format!("[:find ?v0 ?v500 ?v999 :where{patterns}]");
    assert_eq!(q(&edn(&query), &[conn.db().into()]).unwrap(), edn("#{[0 500 999]}"));
    // A thousand predicates on the variables of one pattern.
    let preds: String = (0..1000).map(|i| format!(" [(> ?v{} {})]", i % 10, i64::from(i % 10) - 2)).collect();
    let few: String = (0..10).map(|i| format!(" [?e :a{i} ?v{i}]")).collect();
    let query = format!("[:find ?e :where{few}{preds}]");
    let found = q(&edn(&query), &[conn.db().into()]).unwrap();
    let Edn::Set(found) = &found else { panic!("a set") };
    assert_eq!(found.len(), 1, "only the first entity has :a2..:a9");
    // A thousand patterns that share nothing: a product of a thousand parts, all but the
    // first only saying that they match something.
    let chain: String = (0..1000).map(|i| format!(" [?x{i} :a{} ?y{i}]", i % 3)).collect();
    let query = format!("[:find (count ?x0) . :where{chain}]");
    assert_eq!(q(&edn(&query), &[conn.db().into()]).unwrap(), Edn::Int(2));
}

#[test]
fn an_aggregate_over_a_join_holds_the_find_tuples_not_the_join() {
    // 1,000 entities joined on one shared value: a million rows (tens of MiB as a relation),
    // a thousand find tuples.
    let conn = mem_db(":schema-flexibility :read :query-memory-limit 4194304");
    entities(&conn, 1_000);
    let db = || -> Vec<QueryInput> { vec![conn.db().into()] };
    assert_eq!(q(&edn("[:find (count ?a) . :where [?a :k ?x] [?b :k ?x]]"), &db()).unwrap(), Edn::Int(1_000));
    let sum: i64 = (1..=1_000).sum();
    assert_eq!(q(&edn("[:find (sum ?v) . :where [?a :v ?v] [?a :k ?x] [?b :k ?x]]"), &db()).unwrap(), Edn::Int(sum));
    // The same join kept whole (a predicate runs after it) does not fit in 4 MiB.
    memory_error("[:find (count ?a) . :where [?a :k ?x] [?b :k ?x] [(!= ?a ?b)]]", &db());
}

#[test]
fn recursive_rules_count_against_the_budget() {
    let conn = mem_db(":schema-flexibility :read");
    let tx: String = (1..=2000).map(|i| format!("{{:db/id {i} :next {}}}", i + 1)).collect();
    transact(&conn, &format!("[{tx}]"));
    let rules = edn("[[(reach ?a ?b) [?a :next ?b]] [(reach ?a ?b) [?a :next ?x] (reach ?x ?b)]]");
    let inputs = || -> Vec<QueryInput> { vec![conn.db().into(), QueryInput::Edn(rules.clone())] };
    // The closure of a 2,000-long chain holds 2 million pairs: more than 8 MiB.
    let e = memory_error("{:query [:find (count ?b) . :in $ % :where (reach ?a ?b)] :memory-limit 8388608}", &inputs());
    assert_eq!(limit_of(&e), Edn::Int(8 << 20));
    // From one start, the walk down the chain fits.
    let from_one = "{:query [:find (count ?b) . :in $ % :where (reach 1 ?b)] :memory-limit 8388608}";
    assert_eq!(q(&edn(from_one), &inputs()).unwrap(), Edn::Int(2000));
}
