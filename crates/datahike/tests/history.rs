//! Time travel: the `history`, `as-of`, `since` and `filter` views, `:db/txInstant`, and
//! `listen`, on the memory and the file backend. Many cases port Datahike's
//! `test/datahike/test/time_variance_test.cljc` and `filter_test.cljc`.

mod common;

use common::{edn, fresh_store, Backend, BACKENDS, TX1};
use datahike::datom::TX0;
use datahike::edn::pr_str;
use datahike::{q, Config, Conn, Db, Edn, IndexOrder, QueryInput, TimePoint};
use std::sync::atomic::Ordering;

/// A database on one backend, reopenable.
struct TestDb {
    conn: Conn,
    config: Config,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    fn db(&self) -> Db {
        self.conn.db()
    }

    fn transact(&self, text: &str) -> datahike::TxReport {
        self.conn.transact(&edn(text)).unwrap_or_else(|e| panic!("transaction failed: {e}: {text}"))
    }

    /// Releases the connection and connects again (for the file backend: from disk).
    fn reopen(&mut self) {
        self.conn.release().unwrap();
        self.conn = datahike::connect(&self.config).unwrap();
    }
}

/// A fresh database with config keys `extra` (e.g. `:schema-flexibility :read`).
fn open(backend: Backend, extra: &str) -> TestDb {
    let (store, dir) = fresh_store(backend, "history");
    let config = Config::parse(&format!("{{:store {store} {extra}}}")).unwrap();
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    TestDb { conn, config, _dir: dir }
}

/// Datahike's `cfg-template` schema of `time_variance_test.cljc`, with Alice 25 and Bob 35.
const PEOPLE: &str = r#"[{:db/ident :name :db/valueType :db.type/string :db/unique :db.unique/identity
   :db/index true :db/cardinality :db.cardinality/one}
  {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
  {:name "Alice" :age 25}
  {:name "Bob" :age 35}]"#;

fn people(backend: Backend) -> TestDb {
    let t = open(backend, ":schema-flexibility :write");
    t.transact(PEOPLE);
    t
}

fn query(query: &str, db: &Db, extra: &[&str]) -> Edn {
    let mut inputs = vec![QueryInput::Db(db.clone())];
    inputs.extend(extra.iter().map(|x| QueryInput::Edn(edn(x))));
    q(&edn(query), &inputs).unwrap_or_else(|e| panic!("query failed: {e}: {query}"))
}

fn check(db: &Db, q: &str, extra: &[&str], expected: &str) {
    let got = query(q, db, extra);
    assert_eq!(got, edn(expected), "query {q} on {}\n got {got}\nwant {expected}", pr_str(&db.to_edn_summary()));
}

/// Every sequence of the `ops` in which each op occurs once or twice (Datahike's
/// `vary-db-ops`), applied to `db`.
fn vary(db: &Db, ops: &[&dyn Fn(&Db) -> Db]) -> Vec<Db> {
    fn go(db: &Db, ops: &[&dyn Fn(&Db) -> Db], used: &mut Vec<u8>, out: &mut Vec<Db>) {
        if used.iter().all(|n| *n > 0) {
            out.push(db.clone());
        }
        for i in 0..ops.len() {
            if used[i] < 2 {
                used[i] += 1;
                go(&ops[i](db), ops, used, out);
                used[i] -= 1;
            }
        }
    }
    let mut out = Vec::new();
    go(db, ops, &mut vec![0; ops.len()], &mut out);
    out
}

fn history(db: &Db) -> Db {
    db.history().unwrap()
}

fn datom_rows(datoms: &[datahike::Datom]) -> Vec<String> {
    datoms.iter().map(|d| pr_str(&d.to_edn_vector())).collect()
}

fn set_of(rows: &[String]) -> std::collections::BTreeSet<String> {
    rows.iter().cloned().collect()
}

fn expected_rows(text: &str) -> std::collections::BTreeSet<String> {
    match &edn(text) {
        Edn::Vector(xs) | Edn::Set(xs) => xs.iter().map(pr_str).collect(),
        other => panic!("expected rows, got {other}"),
    }
}

// ---------------------------------------------------------------------------- history

#[test]
fn base_history() {
    for backend in BACKENDS {
        let t = people(backend);
        let tx0 = t.db().max_tx();
        let by_name = "[:find ?a :in $ ?e :where [?e :age ?a]]";
        check(&t.db(), "[:find ?n ?a :where [?e :name ?n] [?e :age ?a]]", &[], r#"#{["Alice" 25] ["Bob" 35]}"#);
        t.transact(r#"[{:db/id [:name "Alice"] :age 30}]"#);
        check(&t.db(), by_name, &[r#"[:name "Alice"]"#], "#{[30]}");
        check(&history(&t.db()), by_name, &[r#"[:name "Alice"]"#], "#{[30] [25]}");

        let tx1 = t.db().max_tx();
        t.transact(r#"[[:db/retractEntity [:name "Alice"]]]"#);
        // Datahike raises "Nothing found for entity id" here; our engine answers with no rows.
        let inputs = [QueryInput::Db(t.db()), QueryInput::Edn(edn(r#"[:name "Alice"]"#))];
        assert!(q(&edn(by_name), &inputs).map_or(true, |r| r == edn("#{}")));

        let as_of = move |db: &Db| db.as_of(TimePoint::Tx(tx0)).unwrap();
        let since = move |db: &Db| db.since(TimePoint::Tx(tx1)).unwrap();
        for db in vary(&t.db(), &[&history]) {
            check(&db, by_name, &[r#"[:name "Alice"]"#], "#{[30] [25]}");
        }
        for db in vary(&t.db(), &[&history, &as_of]) {
            check(&db, by_name, &[r#"[:name "Alice"]"#], "#{[25]}");
        }
        for db in vary(&t.db(), &[&history, &since]) {
            check(&db, by_name, &[r#"[:name "Alice"]"#], "#{[30]}");
        }
        // Retracted values, and the transactions of every assertion and retraction.
        for db in vary(&t.db(), &[&history]) {
            check(
                &db,
                "[:find ?n ?a :where [?r :age ?a _ false] [?r :name ?n _ false]]",
                &[],
                r#"#{["Alice" 25] ["Alice" 30]}"#,
            );
            check(
                &db,
                "[:find ?a ?op :in $ ?e :where [?e :age ?a ?t ?op] [?t :db/txInstant ?d]]",
                &[r#"[:name "Alice"]"#],
                "#{[25 true] [25 false] [30 true] [30 false]}",
            );
        }
    }
}

#[test]
fn added_position_bound_and_constant() {
    for backend in BACKENDS {
        let t = people(backend);
        t.transact(r#"[{:db/id [:name "Alice"] :age 30}]"#);
        let h = history(&t.db());
        let (tx1, tx2) = (TX1, TX1 + 1);
        check(
            &h,
            r#"[:find ?a ?tx ?added :where [?e :name "Alice"] [?e :age ?a ?tx ?added]]"#,
            &[],
            &format!("#{{[25 {tx1} true] [25 {tx2} false] [30 {tx2} true]}}"),
        );
        check(&h, r#"[:find ?a :where [?e :name "Alice"] [?e :age ?a _ true]]"#, &[], "#{[25] [30]}");
        check(&h, r#"[:find ?a :where [?e :name "Alice"] [?e :age ?a _ false]]"#, &[], "#{[25]}");
        check(&h, r#"[:find ?a :in $ ?added :where [?e :name "Alice"] [?e :age ?a _ ?added]]"#, &["false"], "#{[25]}");
        check(&h, r#"[:find ?a ?tx :where [?e :age ?a ?tx false]]"#, &[], &format!("#{{[25 {tx2}]}}"));
        // On the current database every datom is an assertion.
        check(&t.db(), r#"[:find ?a :where [?e :age ?a _ false]]"#, &[], "#{}");
        check(&t.db(), r#"[:find ?a :where [?e :age ?a _ true]]"#, &[], "#{[30] [35]}");
        // A four-element pattern on history sees both.
        check(
            &h,
            r#"[:find ?a ?tx :where [?e :name "Alice"] [?e :age ?a ?tx]]"#,
            &[],
            &format!("#{{[25 {tx1}] [25 {tx2}] [30 {tx2}]}}"),
        );
    }
}

/// Datahike's `upsert-history`: exact history datoms in the three orders.
#[test]
fn upsert_history() {
    for backend in BACKENDS {
        let t = open(backend, ":schema-flexibility :read");
        t.transact(PEOPLE);
        let query = r#"[:find ?a ?t ?op :where [?e :name "Alice"] [?e :age ?a ?t ?op]]"#;
        let aevt = history(&t.db()).datoms(IndexOrder::Aevt, &[edn(":age"), edn(r#"[:name "Alice"]"#)]).unwrap();
        assert_eq!(datom_rows(&aevt), vec![format!("[3 :age 25 {TX1} true]")]);

        t.transact(r#"[[:db/add [:name "Alice"] :age 30]]"#);
        check(&t.db(), query, &[], &format!("#{{[30 {} true]}}", TX1 + 1));
        t.transact(r#"[[:db/add [:name "Alice"] :age 35]]"#);
        t.transact(r#"[[:db/add [:name "Alice"] :age 25]]"#);
        check(&t.db(), query, &[], &format!("#{{[25 {} true]}}", TX1 + 3));
        t.transact(r#"[[:db/retract [:name "Alice"] :age 25]]"#);
        check(&t.db(), query, &[], "#{}");
        let full = format!(
            "#{{[25 {a} true] [25 {b} false] [30 {b} true] [30 {c} false] [35 {c} true] [35 {d} false] \
             [25 {d} true] [25 {e} false]}}",
            a = TX1,
            b = TX1 + 1,
            c = TX1 + 2,
            d = TX1 + 3,
            e = TX1 + 4
        );
        check(&history(&t.db()), query, &[], &full);

        let rows = |order: IndexOrder| -> std::collections::BTreeSet<String> {
            let datoms = history(&t.db()).datoms(order, &[]).unwrap();
            set_of(&datom_rows(&datoms.into_iter().filter(|d| d.e < TX0).collect::<Vec<_>>()))
        };
        let (a, b, c, d, e) = (TX1, TX1 + 1, TX1 + 2, TX1 + 3, TX1 + 4);
        let eavt = format!(
            "[[1 :db/cardinality :db.cardinality/one {a} true] [1 :db/ident :name {a} true] [1 :db/index true {a} true]
              [1 :db/unique :db.unique/identity {a} true] [1 :db/valueType :db.type/string {a} true]
              [2 :db/cardinality :db.cardinality/one {a} true] [2 :db/ident :age {a} true]
              [2 :db/valueType :db.type/long {a} true]
              [3 :age 25 {a} true] [3 :age 25 {b} false] [3 :age 25 {d} true] [3 :age 25 {e} false]
              [3 :age 30 {b} true] [3 :age 30 {c} false] [3 :age 35 {c} true] [3 :age 35 {d} false]
              [3 :name \"Alice\" {a} true] [4 :age 35 {a} true] [4 :name \"Bob\" {a} true]]"
        );
        assert_eq!(rows(IndexOrder::Eavt), expected_rows(&eavt));
        assert_eq!(rows(IndexOrder::Aevt), expected_rows(&eavt));
        let avet = format!(
            "[[3 :name \"Alice\" {a} true] [4 :name \"Bob\" {a} true] [2 :db/ident :age {a} true] [1 :db/ident :name {a} true]]"
        );
        assert_eq!(rows(IndexOrder::Avet), expected_rows(&avet));
        // Index order: EAVT sorts an (e, a, v)'s events by transaction.
        let alice_age = history(&t.db()).datoms(IndexOrder::Eavt, &[edn("3"), edn(":age")]).unwrap();
        assert_eq!(
            datom_rows(&alice_age),
            [
                format!("[3 :age 25 {a} true]"),
                format!("[3 :age 25 {b} false]"),
                format!("[3 :age 25 {d} true]"),
                format!("[3 :age 25 {e} false]"),
                format!("[3 :age 30 {b} true]"),
                format!("[3 :age 30 {c} false]"),
                format!("[3 :age 35 {c} true]"),
                format!("[3 :age 35 {d} false]"),
            ]
        );
    }
}

/// Datahike's `test-no-duplicates-on-history-search`.
#[test]
fn no_duplicates_with_cardinality_many() {
    for backend in BACKENDS {
        let t = open(backend, ":schema-flexibility :write");
        t.transact(
            "[{:db/ident :name :db/cardinality :db.cardinality/one :db/index true :db/unique :db.unique/identity
               :db/valueType :db.type/string}
              {:db/ident :sibling :db/cardinality :db.cardinality/many :db/valueType :db.type/ref}
              {:db/ident :age :db/cardinality :db.cardinality/one :db/valueType :db.type/long}]",
        );
        t.transact(
            r#"[{:name "Alice" :age 25} {:name "Charlie" :age 45 :sibling [[:name "Alice"] [:name "Charlie"]]}]"#,
        );
        let h = history(&t.db());
        let datoms = h.datoms(IndexOrder::Eavt, &[edn(r#"[:name "Alice"]"#), edn(":name"), edn(r#""Alice""#)]).unwrap();
        assert_eq!(datoms.len(), 1);
        assert!(datoms[0].added());
        let siblings = h.datoms(IndexOrder::Aevt, &[edn(":sibling")]).unwrap();
        assert_eq!(siblings.len(), 2);
    }
}

/// Datahike's `test-no-history`: `:db/noHistory` attributes keep no history.
#[test]
fn no_history_attribute() {
    for backend in BACKENDS {
        let t = open(backend, ":schema-flexibility :write");
        t.transact(
            r#"[{:db/ident :name :db/cardinality :db.cardinality/one :db/valueType :db.type/string
                 :db/unique :db.unique/identity}
                {:db/ident :age :db/cardinality :db.cardinality/one :db/valueType :db.type/long :db/noHistory true}
                {:name "Alice" :age 25} {:name "Bob" :age 35}]"#,
        );
        let query = "[:find ?n ?a :where [?e :name ?n] [?e :age ?a]]";
        check(&history(&t.db()), query, &[], r#"#{["Alice" 25] ["Bob" 35]}"#);
        let before = t.db().max_tx();
        t.transact(r#"[{:db/id [:name "Bob"] :age 36}]"#);
        t.transact(r#"[[:db/retractEntity [:name "Alice"]]]"#);
        check(&history(&t.db()), query, &[], r#"#{["Bob" 36]}"#);
        check(&history(&t.db()), "[:find ?n :where [?e :name ?n]]", &[], r#"#{["Alice"] ["Bob"]}"#);
        // As of before the changes, the overwritten and retracted ages are gone: no history.
        check(&t.db().as_of(TimePoint::Tx(before)).unwrap(), query, &[], "#{}");
        check(
            &t.db().as_of(TimePoint::Tx(before)).unwrap(),
            "[:find ?n :where [?e :name ?n]]",
            &[],
            r#"#{["Alice"] ["Bob"]}"#,
        );
    }
}

// ---------------------------------------------------------------------------- as-of, since

#[test]
fn historical_queries_with_instants() {
    for backend in BACKENDS {
        let t = people(backend);
        t.transact(r#"[{:db/id [:name "Alice"] :age 30}]"#);
        let between = t.db().last_tx_instant();
        t.transact(r#"[{:db/id [:name "Alice"] :age 35}]"#);
        let after = between + 1;
        check(&t.db(), "[:find ?a :in $ ?e :where [?e :age ?a]]", &[r#"[:name "Alice"]"#], "#{[35]}");
        let inst = pr_str(&Edn::Inst(after));
        for pred in ["before?", "<"] {
            check(
                &history(&t.db()),
                &format!("[:find ?a :in $ ?e ?fd :where [?e :age ?a ?tx] [?tx :db/txInstant ?t] [({pred} ?t ?fd)]]"),
                &[r#"[:name "Alice"]"#, &inst],
                "#{[25] [30]}",
            );
        }
        assert_eq!(
            pr_str(&history(&t.db()).to_edn_summary()),
            format!(
                "#datahike/HistoricalDB {{:origin #datahike/DB {{:max-tx {}, :max-eid 4, :commit-id {}}}}}",
                TX1 + 2,
                pr_str(&Edn::Uuid(t.db().commit_id().unwrap()))
            )
        );
    }
}

#[test]
fn as_of_by_tx_and_instant() {
    for backend in BACKENDS {
        let t = people(backend);
        let first = t.db().last_tx_instant();
        let query = "[:find ?a :in $ ?e :where [?e :age ?a ?tx]]";
        t.transact(r#"[{:db/id [:name "Alice"] :age 30}]"#);
        let db = t.db();
        check(&db.as_of(TimePoint::Instant(first)).unwrap(), query, &[r#"[:name "Alice"]"#], "#{[25]}");
        check(&db.as_of(TimePoint::Tx(TX1)).unwrap(), query, &[r#"[:name "Alice"]"#], "#{[25]}");
        check(&db.as_of(TimePoint::Tx(TX1 + 1)).unwrap(), query, &[r#"[:name "Alice"]"#], "#{[30]}");
        // An instant taken from one transaction names exactly that one.
        let second = db.last_tx_instant();
        assert!(second > first);
        check(&db.as_of(TimePoint::Instant(second)).unwrap(), query, &[r#"[:name "Alice"]"#], "#{[30]}");
        check(&db.as_of(TimePoint::Instant(second - 1)).unwrap(), query, &[r#"[:name "Alice"]"#], "#{[25]}");
        // Before the first transaction: nothing, not even the schema datoms.
        let empty = db.as_of(TimePoint::Instant(first - 1)).unwrap();
        assert_eq!(empty.datoms(IndexOrder::Eavt, &[]).unwrap(), vec![]);
        assert_eq!(
            pr_str(&db.as_of(TimePoint::Tx(TX1)).unwrap().to_edn_summary()),
            format!(
                "#datahike/AsOfDB {{:origin #datahike/DB {{:max-tx {}, :max-eid 4, :commit-id {}}}, :time-point {TX1}}}",
                TX1 + 1,
                pr_str(&Edn::Uuid(db.commit_id().unwrap()))
            )
        );
        assert_eq!(db.as_of(TimePoint::Tx(TX1)).unwrap().origin().unwrap().max_tx(), TX1 + 1);
        assert_eq!(db.as_of(TimePoint::Tx(TX1)).unwrap().time_point(), Some(TimePoint::Tx(TX1)));

        let find_age = "[:find ?a :in $ ?n :where [?e :name ?n] [?e :age ?a]]";
        check(&t.db().as_of(TimePoint::Tx(TX1)).unwrap(), find_age, &[r#""Alice""#], "#{[25]}");
        t.transact(r#"[[:db/retractEntity [:name "Alice"]]]"#);
        check(&t.db(), find_age, &[r#""Alice""#], "#{}");
        check(&t.db().as_of(TimePoint::Tx(TX1)).unwrap(), find_age, &[r#""Alice""#], "#{[25]}");
        check(&t.db().as_of(TimePoint::Tx(TX1 + 1)).unwrap(), find_age, &[r#""Alice""#], "#{[30]}");
        check(&t.db().as_of(TimePoint::Tx(TX1 + 2)).unwrap(), find_age, &[r#""Alice""#], "#{}");

        // Datahike's `as-of-should-fail-on-invalid-time-points`.
        let err = t.db().as_of(TimePoint::Tx(42)).unwrap_err();
        assert!(err.to_string().contains("Invalid transaction ID. Must be bigger than 536870912"), "{err}");
    }
}

#[test]
fn since_by_tx_and_instant() {
    for backend in BACKENDS {
        let t = people(backend);
        let first = t.db().last_tx_instant();
        let query = "[:find ?a :where [?e :age ?a]]";
        check(&t.db().since(TimePoint::Instant(first)).unwrap(), query, &[], "#{}");
        check(&t.db().since(TimePoint::Instant(first - 1)).unwrap(), query, &[], "#{[25] [35]}");
        t.transact(r#"[{:db/id [:name "Alice"] :age 30}]"#);
        check(&t.db().since(TimePoint::Instant(first)).unwrap(), query, &[], "#{[30]}");
        check(&t.db().since(TimePoint::Tx(TX1)).unwrap(), query, &[], "#{[30]}");
        assert_eq!(
            pr_str(&t.db().since(TimePoint::Tx(TX1)).unwrap().to_edn_summary()),
            format!(
                "#datahike/SinceDB {{:origin #datahike/DB {{:max-tx {}, :max-eid 4, :commit-id {}}}, :time-point {TX1}}}",
                TX1 + 1,
                pr_str(&Edn::Uuid(t.db().commit_id().unwrap()))
            )
        );
        // A retraction after the point: since shows what is current and was asserted after it.
        t.transact(r#"[[:db/retract [:name "Bob"] :age 35] {:name "Carol" :age 50}]"#);
        check(&t.db().since(TimePoint::Tx(TX1)).unwrap(), query, &[], "#{[30] [50]}");
        check(&t.db().since(TimePoint::Tx(TX1 + 1)).unwrap(), query, &[], "#{[50]}");
        // Since and as-of together: a window of transactions.
        let window = t.db().since(TimePoint::Tx(TX1)).unwrap().as_of(TimePoint::Tx(TX1 + 1)).unwrap();
        check(&window, query, &[], "#{[30]}");
        let window = t.db().as_of(TimePoint::Tx(TX1 + 1)).unwrap().since(TimePoint::Tx(TX1)).unwrap();
        check(&window, query, &[], "#{[30]}");
        // History since a point: the events after it.
        check(
            &history(&t.db().since(TimePoint::Tx(TX1 + 1)).unwrap()),
            "[:find ?a ?added :where [?e :age ?a _ ?added]]",
            &[],
            "#{[35 false] [50 true]}",
        );
    }
}

/// Datahike's `test-filter-current-values-of-same-transaction`: retract, add and retract again
/// in one transaction; as-of that transaction sees the added value.
#[test]
fn retract_and_add_in_one_transaction() {
    for backend in BACKENDS {
        for card in ["one", "many"] {
            let t = open(backend, ":schema-flexibility :write");
            t.transact(&format!(
                "[{{:db/ident :name :db/cardinality :db.cardinality/one :db/unique :db.unique/identity
                    :db/valueType :db.type/string}}
                  {{:db/ident :aka :db/cardinality :db.cardinality/{card} :db/valueType :db.type/string}}]"
            ));
            let report = t.transact(r#"[{:name "Michal" :aka "Tupen"}]"#);
            let michal = report.tx_data.iter().find(|d| d.v == datahike::Value::str("Michal")).unwrap().e;
            let report = t.transact(&format!(
                r#"[[:db/retract {michal} :aka "Tupen"] [:db/add {michal} :aka "Devil"] [:db/retract {michal} :aka "Tupen"]]"#
            ));
            let tx = report.db_after.max_tx();
            t.transact(&format!(r#"[[:db/retract {michal} :aka "Devil"]]"#));
            let as_of = t.db().as_of(TimePoint::Tx(tx)).unwrap();
            let want = if card == "one" { r#"{:aka "Devil"}"# } else { r#"{:aka ["Devil"]}"# };
            assert_eq!(datahike::pull(&as_of, &edn("[:aka]"), &Edn::Int(michal)).unwrap(), edn(want));
            assert_eq!(datahike::pull(&t.db(), &edn("[:aka]"), &Edn::Int(michal)).unwrap(), Edn::Nil);
        }
    }
}

/// Retracting a value and asserting it again in one transaction leaves it live; as-of that
/// transaction must see it although a retraction of the same transaction is in history.
#[test]
fn retract_then_assert_same_value() {
    for backend in BACKENDS {
        let t = open(backend, ":schema-flexibility :read");
        t.transact("[{:db/id 1 :tag :a}]");
        let report = t.transact("[[:db/retract 1 :tag :a] [:db/add 1 :tag :a]]");
        let tx = report.db_after.max_tx();
        let query = "[:find ?t :where [1 :tag ?t]]";
        check(&t.db(), query, &[], "#{[:a]}");
        let events = history(&t.db()).datoms(IndexOrder::Eavt, &[edn("1"), edn(":tag")]).unwrap();
        assert_eq!(
            datom_rows(&events),
            [
                format!("[1 :tag :a {} true]", tx - 1),
                format!("[1 :tag :a {tx} true]"),
                format!("[1 :tag :a {tx} false]")
            ]
        );
        check(&t.db().as_of(TimePoint::Tx(tx)).unwrap(), query, &[], "#{[:a]}");
        check(&t.db().as_of(TimePoint::Tx(tx - 1)).unwrap(), query, &[], "#{[:a]}");
    }
}

/// Interleaved assertions, retractions, card-one overwrites and card-many updates, checked
/// against a model: as-of every transaction equals the state recorded after it, since every
/// transaction equals the current datoms asserted later, and history holds every event.
#[test]
fn as_of_matches_model_after_interleaved_changes() {
    use std::collections::{BTreeMap, BTreeSet};
    for backend in BACKENDS {
        let mut t = open(backend, ":schema-flexibility :write");
        t.transact(
            "[{:db/ident :one :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
              {:db/ident :many :db/valueType :db.type/long :db/cardinality :db.cardinality/many}
              {:db/ident :quiet :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/noHistory true}]",
        );
        // A deterministic pseudo-random sequence (xorshift), printed on failure.
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        // (e, attr, v) -> present, after each transaction.
        let mut model: BTreeSet<(i64, &str, i64)> = BTreeSet::new();
        let mut states: BTreeMap<i64, BTreeSet<(i64, &str, i64)>> = BTreeMap::new();
        let mut events: BTreeSet<(i64, &str, i64, i64, bool)> = BTreeSet::new();
        for round in 0..60 {
            let mut ops = Vec::new();
            let mut touched: BTreeSet<(i64, &str)> = BTreeSet::new();
            for _ in 0..1 + next(4) {
                let e = 1 + next(4) as i64;
                let attr = ["one", "many", "quiet"][next(3) as usize];
                let v = next(5) as i64;
                // One op per (e, attr) per transaction keeps the model simple.
                if !touched.insert((e, attr)) {
                    continue;
                }
                let retract = next(3) == 0;
                if retract {
                    ops.push(format!("[:db/retract {e} :{attr} {v}]"));
                } else {
                    ops.push(format!("[:db/add {e} :{attr} {v}]"));
                }
            }
            let report = t.transact(&format!("[{}]", ops.join(" ")));
            let tx = report.db_after.max_tx();
            for d in report.tx_data.iter().filter(|d| d.e < TX0) {
                let attr = match d.a.as_str() {
                    "one" => "one",
                    "many" => "many",
                    _ => "quiet",
                };
                let v = d.v.as_long().unwrap();
                if d.added() {
                    model.insert((d.e, attr, v));
                } else {
                    model.remove(&(d.e, attr, v));
                }
                if attr != "quiet" {
                    events.insert((d.e, attr, v, tx, d.added()));
                }
            }
            // An assertion keeps its first transaction until it is retracted.
            states.insert(tx, model.clone());
            if round == 30 {
                // Half of the history comes from disk for the file backend.
                t.conn.flush().unwrap();
                t.reopen();
            }
        }
        let current = t.db();
        let rows = |db: &Db| -> BTreeSet<(i64, String, i64)> {
            db.datoms(IndexOrder::Eavt, &[])
                .unwrap()
                .into_iter()
                .filter(|d| d.e < TX0 && d.e > 0 && !d.a.as_str().starts_with("db"))
                .map(|d| (d.e, d.a.as_str().to_string(), d.v.as_long().unwrap()))
                .collect()
        };
        let quiet_current: BTreeSet<(i64, String, i64)> =
            rows(&current).into_iter().filter(|r| r.1 == "quiet").collect();
        for (tx, state) in &states {
            let as_of = current.as_of(TimePoint::Tx(*tx)).unwrap();
            // :quiet keeps no history: as-of shows its current values asserted by then.
            let quiet_then: BTreeSet<(i64, String, i64)> = quiet_current
                .iter()
                .filter(|(e, _, v)| {
                    current.datoms(IndexOrder::Eavt, &[Edn::Int(*e), edn(":quiet"), Edn::Int(*v)]).unwrap()[0].tx()
                        <= *tx
                })
                .cloned()
                .collect();
            let mut want: BTreeSet<(i64, String, i64)> =
                state.iter().filter(|r| r.1 != "quiet").map(|(e, a, v)| (*e, a.to_string(), *v)).collect();
            want.extend(quiet_then);
            assert_eq!(rows(&as_of), want, "{backend:?}: as-of {tx}");
            // Backwards, the same datoms in reverse order.
            let forward = as_of.datoms(IndexOrder::Aevt, &[]).unwrap();
            let mut backward = as_of.rseek_datoms(IndexOrder::Aevt, &[]).unwrap();
            backward.reverse();
            assert_eq!(forward, backward, "{backend:?}: rseek as-of {tx}");
            // A key with a transaction finds the live datom by the transaction that asserted it.
            for d in forward.iter().filter(|d| d.e < TX0).take(3) {
                let key = [Edn::Int(d.e), Edn::Keyword(d.a), d.v.to_edn(), Edn::Int(d.tx())];
                assert_eq!(as_of.datoms(IndexOrder::Eavt, &key).unwrap(), vec![d.clone()]);
                let key = [Edn::Int(d.e), Edn::Keyword(d.a), d.v.to_edn(), Edn::Int(d.tx() + 1)];
                assert_eq!(as_of.datoms(IndexOrder::Eavt, &key).unwrap(), vec![]);
            }
            // The same through a query, through AEVT and AVET.
            let got = query("[:find ?e ?v :where [?e :one ?v]]", &as_of, &[]);
            let want_one: BTreeSet<String> =
                want.iter().filter(|r| r.1 == "one").map(|(e, _, v)| format!("[{e} {v}]")).collect();
            assert_eq!(got, edn(&format!("#{{{}}}", want_one.into_iter().collect::<Vec<_>>().join(" "))));
            let avet = as_of.datoms(IndexOrder::Avet, &[edn(":one")]).unwrap();
            assert_eq!(avet.len(), want.iter().filter(|r| r.1 == "one").count(), "{backend:?}: AVET as-of {tx}");
            // Since: current datoms asserted after tx.
            let since = current.since(TimePoint::Tx(*tx)).unwrap();
            let want_since: BTreeSet<(i64, String, i64)> = current
                .datoms(IndexOrder::Eavt, &[])
                .unwrap()
                .into_iter()
                .filter(|d| d.e < TX0 && d.e > 0 && d.tx() > *tx && !d.a.as_str().starts_with("db"))
                .map(|d| (d.e, d.a.as_str().to_string(), d.v.as_long().unwrap()))
                .collect();
            assert_eq!(rows(&since), want_since, "{backend:?}: since {tx}");
        }
        // History: every event of the attributes that keep history, plus the live :quiet datoms.
        let hist: BTreeSet<(i64, String, i64, i64, bool)> = history(&current)
            .datoms(IndexOrder::Aevt, &[])
            .unwrap()
            .into_iter()
            .filter(|d| matches!(d.a.as_str(), "one" | "many"))
            .map(|d| (d.e, d.a.as_str().to_string(), d.v.as_long().unwrap(), d.tx(), d.added()))
            .collect();
        let want: BTreeSet<(i64, String, i64, i64, bool)> =
            events.iter().map(|(e, a, v, tx, added)| (*e, a.to_string(), *v, *tx, *added)).collect();
        assert_eq!(hist, want, "{backend:?}: history");
    }
}

// ---------------------------------------------------------------------------- reads on views

#[test]
fn index_access_pull_and_entity_on_views() {
    for backend in BACKENDS {
        let t = people(backend);
        t.transact(r#"[{:db/id [:name "Alice"] :age 30} {:name "Carol" :age 40}]"#);
        let as_of = t.db().as_of(TimePoint::Tx(TX1)).unwrap();
        let alice = edn(r#"[:name "Alice"]"#);
        // datoms, seek-datoms, rseek-datoms, index-range.
        let ages = as_of.datoms(IndexOrder::Aevt, &[edn(":age")]).unwrap();
        assert_eq!(datom_rows(&ages), vec![format!("[3 :age 25 {TX1} true]"), format!("[4 :age 35 {TX1} true]")]);
        let seek = as_of.seek_datoms(IndexOrder::Eavt, &[edn("3")]).unwrap();
        assert_eq!(
            datom_rows(&seek[..4]),
            [
                format!("[3 :age 25 {TX1} true]"),
                format!("[3 :name \"Alice\" {TX1} true]"),
                format!("[4 :age 35 {TX1} true]"),
                format!("[4 :name \"Bob\" {TX1} true]"),
            ]
        );
        let rseek = as_of.rseek_datoms(IndexOrder::Eavt, &[edn("3"), edn(":name")]).unwrap();
        let rseek: Vec<String> = datom_rows(&rseek).into_iter().take(2).collect();
        assert_eq!(rseek, [format!("[3 :name \"Alice\" {TX1} true]"), format!("[3 :age 25 {TX1} true]")]);
        let names = as_of.index_range(datahike::Keyword::new("name"), &edn(r#""A""#), &edn(r#""C""#)).unwrap();
        assert_eq!(names.len(), 2);
        let names_now = t.db().index_range(datahike::Keyword::new("name"), &edn(r#""A""#), &edn(r#""D""#)).unwrap();
        assert_eq!(names_now.len(), 3);
        // Lookup refs resolve in the view: Carol does not exist as of TX1.
        assert!(as_of.entid(&edn(r#"[:name "Carol"]"#)).unwrap().is_none());
        // Pull and entity.
        assert_eq!(datahike::pull(&as_of, &edn("[:name :age]"), &alice).unwrap(), edn(r#"{:name "Alice" :age 25}"#));
        assert_eq!(datahike::pull(&t.db(), &edn("[:age]"), &alice).unwrap(), edn("{:age 30}"));
        let e = datahike::entity(&as_of, &alice).unwrap().unwrap();
        assert_eq!(e.get_kw("age").unwrap().unwrap().to_edn(), edn("25"));
        assert_eq!(e.touch().unwrap(), edn(r#"{:name "Alice" :age 25 :db/id 3}"#));
        // Counts of a view are exact through the Db API.
        assert_eq!(
            as_of
                .count_key(
                    IndexOrder::Aevt,
                    &datahike::DatomKey { a: Some(datahike::Keyword::new("age")), ..Default::default() }
                )
                .unwrap(),
            2
        );
        assert_eq!(
            history(&t.db())
                .count_key(
                    IndexOrder::Aevt,
                    &datahike::DatomKey { a: Some(datahike::Keyword::new("age")), ..Default::default() }
                )
                .unwrap(),
            5
        );
        // Transaction entities: their metadata is queryable on views too.
        check(&as_of, "[:find ?tx :where [?tx :db/txInstant _]]", &[], &format!("#{{[{TX1}]}}"));
    }
}

#[test]
fn filter_views() {
    for backend in BACKENDS {
        let t = people(backend);
        t.transact(r#"[{:name "Carol" :age 40}]"#);
        let query = "[:find ?n :where [?e :name ?n]]";
        let no_bob = t.db().filter(|_, d| d.v != datahike::Value::str("Bob"));
        assert!(no_bob.is_filtered());
        assert!(!t.db().is_filtered());
        check(&no_bob, query, &[], r#"#{["Alice"] ["Carol"]}"#);
        // A filter of a filter: both hold, and the predicate sees the unfiltered database.
        let seen_filtered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = seen_filtered.clone();
        let young = no_bob.filter(move |db, d| {
            if db.is_filtered() {
                flag.store(true, Ordering::SeqCst);
            }
            d.a.as_str() != "age" || d.v.as_long().unwrap() < 40
        });
        check(&young, "[:find ?n ?a :where [?e :name ?n] [?e :age ?a]]", &[], r#"#{["Alice" 25]}"#);
        assert!(!seen_filtered.load(Ordering::SeqCst));
        // A filter over as-of; as-of over a filter.
        let old = t.db().as_of(TimePoint::Tx(TX1)).unwrap().filter(|_, d| d.v != datahike::Value::str("Bob"));
        check(&old, query, &[], r#"#{["Alice"]}"#);
        let old = no_bob.as_of(TimePoint::Tx(TX1)).unwrap();
        check(&old, query, &[], r#"#{["Alice"]}"#);
        assert_eq!(datahike::pull(&no_bob, &edn("[:name]"), &Edn::Int(4)).unwrap(), Edn::Nil);
        // Views cannot be written to.
        for view in [no_bob.clone(), history(&t.db()), t.db().as_of(TimePoint::Tx(TX1)).unwrap()] {
            let err = view.with(&edn(r#"[{:name "Dora"}]"#)).unwrap_err();
            assert_eq!(err.code(), "transaction/filtered", "{err}");
        }
    }
}

#[test]
fn keep_history_false_refuses_time_travel() {
    for backend in BACKENDS {
        let t = open(backend, ":keep-history? false :schema-flexibility :read");
        t.transact(r#"[{:name "Alice"}]"#);
        for err in [
            t.db().history().unwrap_err(),
            t.db().as_of(TimePoint::Tx(TX1)).unwrap_err(),
            t.db().since(TimePoint::Tx(TX1)).unwrap_err(),
        ] {
            assert_eq!(err.code(), "db/temporal");
            assert!(err.to_string().contains(":keep-history? false"), "{err}");
        }
        // Filters need no history.
        check(&t.db().filter(|_, _| true), "[:find ?n :where [_ :name ?n]]", &[], r#"#{["Alice"]}"#);
    }
}

#[test]
fn history_survives_reopen() {
    for backend in BACKENDS {
        let mut t = people(backend);
        t.transact(r#"[{:db/id [:name "Alice"] :age 30}]"#);
        t.transact(r#"[[:db/retract [:name "Bob"] :age 35]]"#);
        let q_all = "[:find ?e ?a ?tx ?added :where [?e :age ?a ?tx ?added]]";
        let before = query_result_history(&t.db(), q_all);
        let as_of_before = query("[:find ?a :where [_ :age ?a]]", &t.db().as_of(TimePoint::Tx(TX1)).unwrap(), &[]);
        // Reopen from the log alone, then from flushed indices.
        t.reopen();
        assert_eq!(query_result_history(&t.db(), q_all), before);
        t.conn.flush().unwrap();
        t.reopen();
        assert_eq!(query_result_history(&t.db(), q_all), before);
        let as_of_after = query("[:find ?a :where [_ :age ?a]]", &t.db().as_of(TimePoint::Tx(TX1)).unwrap(), &[]);
        assert_eq!(as_of_after, as_of_before);
        assert_eq!(as_of_after, edn("#{[25] [35]}"));
        // Instants survive too.
        let instant = t.db().datoms(IndexOrder::Eavt, &[Edn::Int(TX1), edn(":db/txInstant")]).unwrap()[0].v.clone();
        let datahike::Value::Instant(ms) = instant else { panic!("no instant") };
        check(&t.db().as_of(TimePoint::Instant(ms)).unwrap(), "[:find ?a :where [_ :age ?a]]", &[], "#{[25] [35]}");
    }
}

fn query_result_history(db: &Db, q: &str) -> Edn {
    query(q, &history(db), &[])
}

// ---------------------------------------------------------------------------- :db/txInstant

#[test]
fn tx_instants_increase_and_can_be_set() {
    for backend in BACKENDS {
        let t = open(backend, ":schema-flexibility :read");
        let mut last = 0;
        for i in 0..20 {
            let report = t.transact(&format!("[{{:n {i}}}]"));
            let instant = report.db_after.last_tx_instant();
            assert!(instant > last, "instants must strictly increase: {instant} after {last}");
            last = instant;
        }
        // A transaction sets its own instant in the data, as an op or as a map.
        let later = last + 60_000;
        let report =
            t.transact(&format!(r#"[{{:n 100}} [:db/add "datomic.tx" :db/txInstant {}]]"#, pr_str(&Edn::Inst(later))));
        let tx = report.db_after.max_tx();
        assert_eq!(report.db_after.last_tx_instant(), later);
        assert_eq!(report.tx_meta[0].1, Edn::Inst(later));
        // The automatic instant is replaced, not retracted.
        let tx_datoms: Vec<String> =
            report.tx_data.iter().filter(|d| d.e == tx).map(|d| pr_str(&d.to_edn_vector())).collect();
        assert_eq!(tx_datoms, vec![format!("[{tx} :db/txInstant {} {tx} true]", pr_str(&Edn::Inst(later)))]);
        check(
            &t.db(),
            "[:find ?t :in $ ?tx :where [?tx :db/txInstant ?t]]",
            &[&tx.to_string()],
            &format!("#{{[{}]}}", pr_str(&Edn::Inst(later))),
        );
        let report =
            t.transact(&format!(r#"[{{:db/id :db/current-tx :db/txInstant {}}}]"#, pr_str(&Edn::Inst(later + 5))));
        assert_eq!(report.db_after.last_tx_instant(), later + 5);
        // The next automatic instant follows the set one.
        let report = t.transact("[{:n 101}]");
        assert!(report.db_after.last_tx_instant() >= later + 6);
        let last = report.db_after.last_tx_instant();
        // Not earlier than the last one, and only on the transaction entity.
        let err = t
            .conn
            .transact(&edn(&format!(r#"[[:db/add "datomic.tx" :db/txInstant {}]]"#, pr_str(&Edn::Inst(last - 1)))))
            .unwrap_err();
        assert_eq!(err.code(), "transact/syntax");
        assert!(err.to_string().contains("earlier than the last transaction's instant"), "{err}");
        let err = t
            .conn
            .transact(&edn(&format!("[[:db/add {tx} :db/txInstant {}]]", pr_str(&Edn::Inst(last + 10)))))
            .unwrap_err();
        assert!(err.to_string().contains("only the transaction's own entity"), "{err}");
        let err = t
            .conn
            .transact_with_meta(
                &edn("[{:n 1}]"),
                Some(&edn(&format!("{{:db/txInstant {}}}", pr_str(&Edn::Inst(last - 1))))),
            )
            .unwrap_err();
        assert!(err.to_string().contains("earlier than the last transaction's instant"), "{err}");
        // An equal instant is allowed; as-of that instant includes both transactions.
        let report =
            t.transact(&format!(r#"[{{:n 102}} [:db/add "datomic.tx" :db/txInstant {}]]"#, pr_str(&Edn::Inst(last))));
        let tx_eq = report.db_after.max_tx();
        check(
            &t.db().as_of(TimePoint::Instant(last)).unwrap(),
            "[:find ?n :where [_ :n ?n] [(>= ?n 101)]]",
            &[],
            "#{[101] [102]}",
        );
        check(&t.db().since(TimePoint::Instant(last)).unwrap(), "[:find ?n :where [_ :n ?n]]", &[], "#{}");
        assert_eq!(tx_eq, t.db().max_tx());
    }
}

#[test]
fn transaction_metadata_is_queryable() {
    for backend in BACKENDS {
        let t = open(backend, ":schema-flexibility :read");
        let report =
            t.conn.transact_arg(&edn(r#"{:tx-data [{:name "Alice"}] :tx-meta {:source "import" :batch 7}}"#)).unwrap();
        let tx = report.db_after.max_tx();
        check(
            &t.db(),
            r#"[:find ?tx ?s ?b :where [?e :name "Alice" ?tx] [?tx :source ?s] [?tx :batch ?b]]"#,
            &[],
            &format!(r#"#{{[{tx} "import" 7]}}"#),
        );
        check(&history(&t.db()), "[:find ?tx :where [?tx :db/txInstant ?i] [(> ?tx 0)]]", &[], &format!("#{{[{tx}]}}"));
    }
}

// ---------------------------------------------------------------------------- listen

#[test]
fn listen_sees_reports_in_order() {
    use std::sync::{Arc, Mutex};
    for backend in BACKENDS {
        let t = open(backend, ":schema-flexibility :write");
        t.transact("[{:db/ident :n :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/unique :db.unique/value}]");
        let seen: Arc<Mutex<Vec<(i64, bool)>>> = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let conn = t.conn.clone();
        let key = t.conn.listen("watcher", move |report| {
            // The report is published when the callback runs.
            let published = conn.db().max_tx() >= report.db_after.max_tx();
            sink.lock().unwrap().push((report.db_after.max_tx(), published));
        });
        assert_eq!(key, "watcher");
        let first = t.db().max_tx();
        // Transactions from several threads: the callback sees each once, in commit order.
        std::thread::scope(|s| {
            for i in 0..4 {
                let conn = t.conn.clone();
                s.spawn(move || {
                    for j in 0..5 {
                        conn.transact(&edn(&format!("[{{:n {}}}]", i * 100 + j))).unwrap();
                    }
                });
            }
        });
        // A failed transaction (unique conflict) produces no report.
        assert!(t.conn.transact(&edn("[{:n 0}]")).is_err());
        let got = seen.lock().unwrap().clone();
        let txs: Vec<i64> = got.iter().map(|(tx, _)| *tx).collect();
        assert_eq!(txs, (first + 1..=first + 20).collect::<Vec<_>>());
        assert!(got.iter().all(|(_, published)| *published));
        // A callback cannot transact on its own connection; it gets an error, not a deadlock.
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (conn, sink) = (t.conn.clone(), errors.clone());
        t.conn.listen("nested", move |_| {
            if let Err(e) = conn.transact(&edn("[{:n 999}]")) {
                sink.lock().unwrap().push(e.to_string());
            }
        });
        t.transact("[{:n 1000}]");
        assert_eq!(errors.lock().unwrap().len(), 1);
        assert!(errors.lock().unwrap()[0].contains("listen callbacks"));
        // Unlisten by key.
        assert!(t.conn.unlisten("watcher"));
        assert!(t.conn.unlisten("nested"));
        assert!(!t.conn.unlisten("watcher"));
        t.transact("[{:n 1001}]");
        assert_eq!(seen.lock().unwrap().len(), 21);
    }
}

/// Datahike's `filter_test.cljc`: predicates that read the unfiltered database through
/// entities, filters of filters, entities and index access on filtered databases.
#[test]
fn filter_db_as_datahike() {
    use datahike::{entity, Keyword, Value};
    fn aka_count(db: &Db, e: i64) -> usize {
        let ent = entity(db, &Edn::Int(e)).unwrap().unwrap();
        ent.get(Keyword::new("aka")).unwrap().map_or(0, |v| v.as_set().map_or(1, <[_]>::len))
    }
    for backend in BACKENDS {
        let t = open(backend, ":schema-flexibility :read");
        t.transact("[{:db/ident :aka :db/cardinality :db.cardinality/many}]");
        t.transact(
            r#"[{:db/id 1 :name "Petr" :email "petya@spb.ru" :aka ["I" "Great"] :password "<SECRET>"}
                {:db/id 2 :name "Ivan" :aka ["Terrible" "IV"] :password "<PROTECTED>"}
                {:db/id 3 :name "Nikolai" :aka ["II"] :password "<UNKNOWN>"}]"#,
        );
        let db = t.db();
        let remove_pass = |_: &Db, d: &datahike::Datom| d.a.as_str() != "password";
        let remove_ivan = |_: &Db, d: &datahike::Datom| d.e != 2;
        let long_akas = |udb: &Db, d: &datahike::Datom| {
            d.a.as_str() != "aka"
                || aka_count(udb, d.e) <= 1
                || matches!(&d.v, Value::String(s) if s.chars().count() >= 4)
        };
        let passwords = "[:find ?v :where [_ :password ?v]]";
        check(&db, passwords, &[], r#"#{["<SECRET>"] ["<PROTECTED>"] ["<UNKNOWN>"]}"#);
        check(&db.filter(remove_pass), passwords, &[], "#{}");
        check(&db.filter(remove_ivan), passwords, &[], r#"#{["<SECRET>"] ["<UNKNOWN>"]}"#);
        check(&db.filter(remove_ivan).filter(remove_pass), passwords, &[], "#{}");

        let akas = "[:find ?v :where [_ :aka ?v]]";
        check(&db, akas, &[], r#"#{["I"] ["Great"] ["Terrible"] ["IV"] ["II"]}"#);
        check(&db.filter(remove_pass), akas, &[], r#"#{["I"] ["Great"] ["Terrible"] ["IV"] ["II"]}"#);
        check(&db.filter(remove_ivan), akas, &[], r#"#{["I"] ["Great"] ["II"]}"#);
        check(&db.filter(long_akas), akas, &[], r#"#{["Great"] ["Terrible"] ["II"]}"#);
        check(&db.filter(remove_ivan).filter(long_akas), akas, &[], r#"#{["Great"] ["II"]}"#);
        check(&db.filter(long_akas).filter(remove_ivan), akas, &[], r#"#{["Great"] ["II"]}"#);

        // Entities.
        let password = |db: &Db| entity(db, &Edn::Int(1)).unwrap().unwrap().get_kw("password").unwrap();
        assert_eq!(password(&db).unwrap().to_edn(), edn(r#""<SECRET>""#));
        assert!(password(&db.filter(remove_pass)).is_none());
        let ivan_akas = entity(&db.filter(long_akas), &Edn::Int(2)).unwrap().unwrap();
        assert_eq!(ivan_akas.get_kw("aka").unwrap().unwrap().to_edn(), edn(r#"#{"Terrible"}"#));
        // Index access.
        let values = |db: &Db| -> Vec<Edn> {
            db.datoms(IndexOrder::Aevt, &[edn(":password")]).unwrap().iter().map(|d| d.v.to_edn()).collect()
        };
        assert_eq!(values(&db), vec![edn(r#""<SECRET>""#), edn(r#""<PROTECTED>""#), edn(r#""<UNKNOWN>""#)]);
        assert_eq!(values(&db.filter(remove_pass)), Vec::<Edn>::new());
        assert_eq!(db.filter(|_, _| false).datoms(IndexOrder::Eavt, &[]).unwrap(), vec![]);

        // Double filtering: the second predicate runs only where the first holds.
        let t = open(backend, ":schema-flexibility :read");
        t.transact(r#"[{:db/id 1 :name "Petr" :age 32} {:db/id 2 :name "Oleg"} {:db/id 3 :name "Ivan" :age 12}]"#);
        let age = |db: &Db, e: i64| entity(db, &Edn::Int(e)).unwrap().unwrap().get_kw("age").unwrap();
        let has_age = move |db: &Db, d: &datahike::Datom| age(db, d.e).is_some();
        let adult =
            move |db: &Db, d: &datahike::Datom| matches!(age(db, d.e).unwrap().to_edn(), Edn::Int(a) if a >= 18);
        let names = |db: &Db| -> Vec<Edn> {
            db.datoms(IndexOrder::Aevt, &[edn(":name")]).unwrap().iter().map(|d| d.v.to_edn()).collect()
        };
        assert_eq!(names(&t.db()), vec![edn(r#""Petr""#), edn(r#""Oleg""#), edn(r#""Ivan""#)]);
        assert_eq!(names(&t.db().filter(has_age)), vec![edn(r#""Petr""#), edn(r#""Ivan""#)]);
        assert_eq!(names(&t.db().filter(has_age).filter(adult)), vec![edn(r#""Petr""#)]);
    }
}
