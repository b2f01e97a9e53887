//! Find results are sets: the engine skips deduplication only when the rows are provably
//! distinct (every pattern names entity, attribute and value, the database holds each
//! (e, a, v) once, and the find keeps every column), and skips comparing constants that the
//! scan's index bounds already fix. These cases sit on each side of those rules.

mod common;

use common::{edn, mem_db, transact};
use datahike::{q, Conn, Db, Edn, QueryInput, TimePoint};

const SCHEMA: &str = r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
 {:db/ident :tag :db/valueType :db.type/keyword :db/cardinality :db.cardinality/many}]"#;

fn conn() -> Conn {
    let conn = mem_db(":schema-flexibility :write :keep-history? true");
    transact(&conn, SCHEMA);
    transact(&conn, r#"[{:db/id 1 :name "Ivan" :age 30 :tag [:a :b :c]} {:db/id 2 :name "Ivan" :age 30 :tag [:a]}]"#);
    conn
}

fn run(db: &Db, query: &str, extra: &[&str]) -> Edn {
    let mut inputs = vec![QueryInput::Db(db.clone())];
    inputs.extend(extra.iter().map(|x| QueryInput::Edn(edn(x))));
    q(&edn(query), &inputs).unwrap_or_else(|e| panic!("query failed: {e}: {query}"))
}

fn count(result: &Edn) -> usize {
    result.as_seq().map_or(0, <[Edn]>::len)
}

#[test]
fn projections_that_drop_a_column_are_deduplicated() {
    let c = conn();
    let db = c.db();
    // Three tags on entity 1, one on 2: the entity alone twice.
    assert_eq!(run(&db, "[:find ?e :where [?e :tag ?t]]", &[]), edn("#{[1] [2]}"));
    // A blank value: each entity once, though it matches several datoms.
    assert_eq!(run(&db, "[:find ?e :where [?e :tag _]]", &[]), edn("#{[1] [2]}"));
    // Two entities with the same name and age: the value pair once.
    assert_eq!(run(&db, r#"[:find ?n ?a :where [?e :name ?n] [?e :age ?a]]"#, &[]), edn(r#"#{["Ivan" 30]}"#));
    // Every column kept: one row per datom.
    assert_eq!(count(&run(&db, "[:find ?e ?t :where [?e :tag ?t]]", &[])), 4);
    // The same variable twice in the find keeps every column.
    assert_eq!(count(&run(&db, "[:find ?e ?e ?t :where [?e :tag ?t]]", &[])), 4);
}

#[test]
fn history_and_as_of_see_an_eav_more_than_once() {
    let c = conn();
    let t1 = c.db().max_tx();
    // Age 30 -> 31 -> 30: the history holds (1 :age 30) asserted twice.
    transact(&c, "[[:db/add 1 :age 31]]");
    transact(&c, "[[:db/add 1 :age 30]]");
    let history = c.db().history().unwrap();
    assert_eq!(run(&history, "[:find ?e ?a :where [?e :age ?a]]", &[]), edn("#{[1 30] [1 31] [2 30]}"));
    assert_eq!(run(&history, "[:find ?e ?a :where [?e :age ?a] [(= ?a 30)]]", &[]), edn("#{[1 30] [2 30]}"));
    let as_of = c.db().as_of(TimePoint::Tx(t1)).unwrap();
    assert_eq!(run(&as_of, "[:find ?e ?a :where [?e :age ?a]]", &[]), edn("#{[1 30] [2 30]}"));
    assert_eq!(run(&c.db(), "[:find ?e ?a :where [?e :age ?a]]", &[]), edn("#{[1 30] [2 30]}"));
}

#[test]
fn joins_with_inputs_that_repeat_rows() {
    let c = conn();
    let db = c.db();
    // A collection input with a repeated value: the rows it starts from are not distinct.
    assert_eq!(
        run(&db, "[:find ?e ?n :in $ [?n ...] :where [?e :name ?n]]", &[r#"["Ivan" "Ivan"]"#]),
        edn(r#"#{[1 "Ivan"] [2 "Ivan"]}"#)
    );
    assert_eq!(
        run(&db, "[:find ?e ?t :in $ [[?e ?t]] :where [?e :tag ?t]]", &["[[1 :a] [1 :a] [2 :a]]"]),
        edn("#{[1 :a] [2 :a]}")
    );
    // A pattern over a collection source with duplicate tuples.
    assert_eq!(
        run(&db, "[:find ?x ?y :in $ $src :where [$src ?x ?y]]", &["[[1 2] [1 2] [3 4]]"]),
        edn("#{[1 2] [3 4]}")
    );
    // A function's column beside a relation whose other column the find drops.
    assert_eq!(run(&db, "[:find ?e ?k :where [?e :tag ?t] [(str ?e) ?k]]", &[]), edn(r#"#{[1 "1"] [2 "2"]}"#));
}

#[test]
fn constants_fixed_by_the_scan_and_those_that_are_not() {
    let c = conn();
    transact(&c, r#"[{:db/id 3 :name "Ivana" :age 30} {:db/id 4 :name "Iva" :age 31}]"#);
    let db = c.db();
    // An AVET scan on [:name "Ivan"] has only "Ivan": neither prefix nor extension matches.
    assert_eq!(run(&db, r#"[:find ?e :where [?e :name "Ivan"]]"#, &[]), edn("#{[1] [2]}"));
    // A value range from a fused comparison fixes only the attribute: the value is checked.
    assert_eq!(
        run(&db, r#"[:find ?e :where [?e :name ?n] [(>= ?n "Ivan")] [(< ?n "Ivb")]]"#, &[]),
        edn("#{[1] [2] [3]}")
    );
    // Entity and attribute fixed, value compared (AEVT/EAVT scans with a constant value).
    assert_eq!(run(&db, "[:find ?a :where [1 :age ?a] [1 :age 30]]", &[]), edn("#{[30]}"));
    assert_eq!(run(&db, "[:find ?e :where [?e :age 31]]", &[]), edn("#{[4]}"));
    assert_eq!(run(&db, "[:find ?e :where [?e :tag :b]]", &[]), edn("#{[1]}"));
    // A repeated variable is always compared.
    transact(&c, "[{:db/id 5 :age 5} {:db/id 6 :age 7}]");
    assert_eq!(run(&c.db(), "[:find ?e :where [?e :age ?e]]", &[]), edn("#{[5]}"));
}
