//! `:timeout`: queries that run longer than it stop with a `query/timeout` error, soon after
//! the deadline, whether the time goes into a cross product, a deep recursive rule or slow
//! functions; queries within it answer as before.

mod common;

use common::{edn, read_db, transact};
use datahike::query::{register_function, QueryInput};
use datahike::{q, Conn, Edn, Value};
use std::time::{Duration, Instant};

/// `n` entities `:v 0..n`, and a chain `:next` through them.
fn db(n: usize) -> Conn {
    let conn = read_db();
    let tx: String = (1..=n).map(|i| format!("{{:db/id {i} :v {i} :next {}}}", i + 1)).collect();
    transact(&conn, &format!("[{tx}]"));
    conn
}

const REACH: &str = "[[(reach ?a ?b) [?a :next ?b]] [(reach ?a ?b) [?a :next ?x] (reach ?x ?b)]]";

/// Runs `query` and expects a timeout within `limit` of its start.
fn times_out(query: &str, inputs: &[QueryInput], limit: Duration) {
    let start = Instant::now();
    let result = q(&edn(query), inputs);
    let elapsed = start.elapsed();
    match result {
        Ok(r) => panic!("{query} should time out, gave {r} after {elapsed:?}"),
        Err(e) => {
            assert_eq!(e.code(), "query/timeout", "{e}");
            assert!(e.to_string().contains(":timeout of 50 ms"), "{e}");
        }
    }
    assert!(elapsed >= Duration::from_millis(50), "stopped before the deadline: {elapsed:?}");
    assert!(elapsed < limit, "stopped {elapsed:?} after the start, long after the 50 ms deadline");
}

#[test]
fn cross_product_times_out() {
    let conn = db(2000);
    // 4 million pairs before the predicate.
    let product = "[:find (count ?a) . :where [?a :v ?x] [?b :v ?y] [(< ?x ?y)]]";
    times_out(&format!("{{:query {product} :timeout 50}}"), &[conn.db().into()], Duration::from_secs(2));
    // The map form carries :timeout too.
    let map = "{:find [(count ?a) .] :where [[?a :v ?x] [?b :v ?y] [(< ?x ?y)]] :timeout 50}";
    times_out(map, &[conn.db().into()], Duration::from_secs(2));
    // A timed-out query leaves no deadline behind on its thread.
    std::thread::sleep(Duration::from_millis(60));
    let quick = "[:find (count ?e) . :where [?e :v ?x] [(< ?x 10)]]";
    assert_eq!(q(&edn(quick), &[conn.db().into()]).unwrap(), Edn::Int(9));
}

#[test]
fn deep_recursive_rule_times_out() {
    let conn = db(2000);
    // The transitive closure of a 2000-long chain: 2 million pairs, 2000 iterations.
    let query = "{:query [:find (count ?b) . :in $ % :where (reach ?a ?b)] :timeout 50}";
    times_out(query, &[conn.db().into(), QueryInput::Edn(edn(REACH))], Duration::from_secs(2));
}

#[test]
fn slow_functions_time_out() {
    let conn = db(200);
    register_function("test.timeout/slow", |args: &[Value]| {
        std::thread::sleep(Duration::from_millis(5));
        Ok(args.first().cloned().unwrap_or(Value::Nil))
    })
    .unwrap();
    // 200 calls of 5 ms: a second without the timeout.
    let query = "{:query [:find ?y :where [?e :v ?x] [(test.timeout/slow ?x) ?y]] :timeout 50}";
    times_out(query, &[conn.db().into()], Duration::from_millis(500));
    let predicate = "{:query [:find ?x :where [?e :v ?x] [(test.timeout/slow ?x)]] :timeout 50}";
    times_out(predicate, &[conn.db().into()], Duration::from_millis(500));
    // A nested query runs under the enclosing query's deadline.
    let nested = "{:query [:find ?n . :where [(q [:find (count ?y) . :where [?e :v ?x] [(test.timeout/slow ?x) ?y]] $) ?n]] :timeout 50}";
    times_out(nested, &[conn.db().into()], Duration::from_millis(500));
}

#[test]
fn queries_within_the_timeout_answer() {
    let conn = db(100);
    let db = conn.db();
    let count = "[:find (count ?b) . :in $ % :where [?a :v 90] (reach ?a ?b)]";
    let plain = q(&edn(count), &[db.clone().into(), QueryInput::Edn(edn(REACH))]).unwrap();
    // 91 to 101 (the last :next names an entity without :v).
    assert_eq!(plain, Edn::Int(11));
    let with_timeout = format!("{{:query {count} :timeout 60000}}");
    assert_eq!(q(&edn(&with_timeout), &[db.clone().into(), QueryInput::Edn(edn(REACH))]).unwrap(), plain);
    let vector_form = "[:find (count ?e) . :timeout 60000 :where [?e :v]]";
    assert_eq!(q(&edn(vector_form), &[db.clone().into()]).unwrap(), Edn::Int(100));
    let nil = "{:query [:find (count ?e) . :where [?e :v]] :timeout nil}";
    assert_eq!(q(&edn(nil), &[db.clone().into()]).unwrap(), Edn::Int(100));

    for bad in ["0", "-5", "\"50\"", "1.5"] {
        for query in [
            format!("{{:query [:find ?e :where [?e :v]] :timeout {bad}}}"),
            format!("{{:find [?e] :where [[?e :v]] :timeout {bad}}}"),
        ] {
            let e = q(&edn(&query), &[db.clone().into()]).unwrap_err();
            assert_eq!(e.code(), "query/syntax", "{query}: {e}");
            assert!(e.to_string().contains(":timeout should be a positive number of milliseconds"), "{e}");
        }
    }
}
