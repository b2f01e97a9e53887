//! Recursive pull down very long chains: 100,000 entities linked by `:next`, pulled with
//! `[:name {:next ...}]` on the test thread (whose stack is 2 MiB) without spawning threads.
//! The answer nests 100,000 maps deep, so building, comparing, printing and dropping it must
//! not recurse either. A chain closed into a cycle ends in `{:db/id ..}` of the first entity seen twice.

mod common;

use common::*;
use datahike::edn::pr_str;
use datahike::{pull, Conn, Edn, QueryInput};
use std::sync::OnceLock;

const CHAIN: usize = 100_000;

/// The open chain, built once for the tests that only read it.
fn open_chain() -> &'static (Conn, i64) {
    static CHAIN_DB: OnceLock<(Conn, i64)> = OnceLock::new();
    CHAIN_DB.get_or_init(|| chain(CHAIN, false))
}

/// A `:write` database holding a chain of `n` entities `{:name "n<i>" :next <i+1>}`, all in one
/// transaction with tempids; with `cycle`, the last one's `:next` is the first. Returns the
/// connection and the first entity's id.
fn chain(n: usize, cycle: bool) -> (Conn, i64) {
    let conn = write_db(
        "[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
          {:db/ident :next :db/valueType :db.type/ref :db/cardinality :db.cardinality/one}]",
    );
    let name = |i: usize| Edn::Str(format!("e{i}").into());
    let entities = (0..n)
        .map(|i| {
            let mut entity = vec![(Edn::kw("db/id"), name(i)), (Edn::kw("name"), Edn::Str(format!("n{i}").into()))];
            if i + 1 < n {
                entity.push((Edn::kw("next"), name(i + 1)));
            } else if cycle {
                entity.push((Edn::kw("next"), name(0)));
            }
            Edn::Map(entity)
        })
        .collect();
    let report = conn.transact(&Edn::Vector(entities)).expect("the chain transacts");
    let first = tempid(&report, "\"e0\"");
    (conn, first)
}

/// The `:next` values of a pulled chain, top down: the names seen and the innermost map.
fn walk(pulled: &Edn) -> (Vec<String>, &Edn) {
    let mut names = Vec::new();
    let mut node = pulled;
    loop {
        if let Some(Edn::Str(name)) = node.get_kw("name") {
            names.push(name.to_string());
        }
        match node.get_kw("next") {
            Some(next) => node = next,
            None => return (names, node),
        }
    }
}

#[test]
fn recursive_pull_down_a_100000_long_chain() {
    let (conn, first) = open_chain();
    let (db, first) = (conn.db(), *first);
    let pulled = pull(&db, &edn("[:name {:next ...}]"), &Edn::Int(first)).expect("the pull");
    let (names, last) = walk(&pulled);
    assert_eq!(names.len(), CHAIN, "one map per entity");
    assert!(names.iter().enumerate().all(|(i, name)| *name == format!("n{i}")), "names in chain order");
    assert!(*last == edn(&format!("{{:name \"n{}\"}}", CHAIN - 1)), "the last map: {last}");

    // The same value built independently compares equal, and unequal once one name differs.
    let expected = (0..CHAIN).rev().fold(None, |inner: Option<Edn>, i| {
        let mut map = vec![(Edn::kw("name"), Edn::Str(format!("n{i}").into()))];
        map.extend(inner.map(|next| (Edn::kw("next"), next)));
        Some(Edn::Map(map))
    });
    let expected = expected.expect("a chain");
    assert!(pulled == expected, "the pulled chain equals the expected one");
    let other = (0..CHAIN).rev().fold(Edn::Nil, |inner, i| {
        let name = if i == CHAIN - 1 { "other".to_string() } else { format!("n{i}") };
        let mut map = vec![(Edn::kw("name"), Edn::Str(name.into()))];
        if inner != Edn::Nil {
            map.push((Edn::kw("next"), inner));
        }
        Edn::Map(map)
    });
    assert!(pulled != other, "a chain differing in its last name is not equal");

    // Printing does not recurse; the text nests as deep as the value.
    let text = pr_str(&pulled);
    assert!(text.starts_with("{:name \"n0\", :next {:name \"n1\", :next {"), "{}", &text[..60]);
    let tail = format!("{{:name \"n{}\"}}{}", CHAIN - 1, "}".repeat(CHAIN - 1));
    assert!(text.ends_with(&tail), "the text ends in the last map and the closing braces");
    assert_eq!(text.matches(":next").count(), CHAIN - 1);
    // `pulled`, `expected` and `other` drop here without recursing.
}

#[test]
fn recursive_pull_of_a_100000_long_cycle_ends_in_the_first_entity() {
    let (conn, first) = chain(CHAIN, true);
    let db = conn.db();
    let pulled = pull(&db, &edn("[:db/id :name {:next ...}]"), &Edn::Int(first)).expect("the pull");
    let (names, last) = walk(&pulled);
    // The start is not on the recursion path (only entities reached by recursion are, as in
    // Datahike): every entity once, the first one again, then the second as `{:db/id ..}`.
    assert_eq!(names.len(), CHAIN + 1);
    assert_eq!(names[CHAIN - 1], format!("n{}", CHAIN - 1));
    assert_eq!(names[CHAIN], "n0");
    let second = pull(&db, &edn("[:db/id]"), &edn("[:name \"n1\"]")).expect("the pull");
    let second = second.get_kw("db/id").cloned().expect("an id");
    assert!(*last == Edn::Map(vec![(Edn::kw("db/id"), second.clone())]), "the cycle closes on {second}: {last}");
    // A pull starting in the middle of the cycle comes round to the entity before it.
    let middle = pull(&db, &edn("[:name {:next ...}]"), &edn("[:name \"n50000\"]")).expect("the pull");
    let (names, _) = walk(&middle);
    assert_eq!(names.len(), CHAIN + 1);
    assert_eq!(names.first().map(String::as_str), Some("n50000"));
    assert_eq!(names.last().map(String::as_str), Some("n50000"));
}

#[test]
fn recursion_limits_and_reverse_recursion_on_a_long_chain() {
    let (conn, first) = open_chain();
    let (db, first) = (conn.db(), *first);
    // A depth limit stops after that many steps, however long the chain.
    let pulled = pull(&db, &edn("[:name {:next 40000}]"), &Edn::Int(first)).expect("the pull");
    let (names, last) = walk(&pulled);
    assert_eq!(names.len(), 40_001);
    assert!(*last == edn("{:name \"n40000\"}"), "{last}");
    // Reverse recursion climbs the chain from its end to its start.
    let last_eid = pull(&db, &edn("[:db/id]"), &edn(&format!("[:name \"n{}\"]", CHAIN - 1))).expect("the pull");
    let last_eid = last_eid.get_kw("db/id").cloned().expect("an id");
    let pulled = pull(&db, &edn("[:name {:_next ...}]"), &last_eid).expect("the reverse pull");
    let mut node = &pulled;
    let mut n = 1;
    while let Some(Edn::Vector(parents)) = node.get_kw("_next") {
        assert_eq!(parents.len(), 1, "one entity points at each one");
        node = &parents[0];
        n += 1;
    }
    assert_eq!(n, CHAIN);
    assert!(*node == edn("{:name \"n0\"}"), "{node}");
}

#[test]
fn recursive_pull_in_a_query_down_a_long_chain() {
    let (conn, _) = open_chain();
    let query = edn("[:find (pull ?e [:name {:next ...}]) . :where [?e :name \"n0\"]]");
    let pulled = datahike::q(&query, &[QueryInput::Db(conn.db())]).expect("the query");
    let (names, last) = walk(&pulled);
    assert_eq!(names.len(), CHAIN);
    assert!(*last == edn(&format!("{{:name \"n{}\"}}", CHAIN - 1)), "{last}");
}
