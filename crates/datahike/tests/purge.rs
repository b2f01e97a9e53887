//! Excision: `:db/purge`, `:db.purge/attribute`, `:db.purge/entity` and
//! `:db.history.purge/before` remove datoms from the current and the history indices and leave
//! no history of them, on the memory and the file backend, also after reopening a file
//! database (replay from the log, then from flushed indices). Several cases port Datahike's
//! `test/datahike/test/purge_test.cljc`.

mod common;
use common::copy_dir;

use common::{edn, fresh_store, Backend, BACKENDS};
use datahike::datom::TX0;
use datahike::edn::pr_str;
use datahike::{q, Config, Conn, Db, Edn, IndexOrder, QueryInput, TimePoint, TxReport};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A database on one backend, reopenable.
struct TestDb {
    conn: Conn,
    config: Config,
    backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    fn db(&self) -> Db {
        self.conn.db()
    }

    fn transact(&self, text: &str) -> TxReport {
        self.conn
            .transact(&edn(text))
            .unwrap_or_else(|e| panic!("transaction failed on {:?}: {e}: {text}", self.backend))
    }

    /// A transaction that must fail with `code`, leaving every current and history datom as it
    /// was. Returns the message.
    fn transact_err(&self, text: &str, code: &str) -> String {
        let before = snapshot(&self.db());
        let err = match self.conn.transact(&edn(text)) {
            Ok(report) => panic!("should fail with {code}: {text}\ntx-data: {:?}", report.tx_data),
            Err(e) => e,
        };
        assert_eq!(err.code(), code, "wrong error code for {text}: {err}");
        assert_eq!(snapshot(&self.db()), before, "a failed purge changed the database: {text}");
        err.to_string()
    }

    /// On the file backend, opens the database anew and checks that it looks the same: first
    /// a copy of its files taken while it is open, which replays the transactions from the log
    /// (nothing was flushed yet), then the database itself after release, which flushes its
    /// indices. A memory database lives in the process and is not reopened.
    fn reopen_and_compare(&mut self) {
        let Some(dir) = &self._dir else { return };
        let before = snapshot(&self.db());
        let copy_path = dir.path().join(format!("copy-{}", NEXT.fetch_add(1, Ordering::SeqCst)));
        copy_dir(&dir.path().join("db"), &copy_path);
        let copy_config =
            Config::parse(&format!("{{:store {{:backend :file :path {:?}}}}}", copy_path.display().to_string()))
                .unwrap();
        let copy = datahike::connect(&copy_config).unwrap();
        assert_eq!(snapshot(&copy.db()), before, "database replayed from the log differs");
        copy.release().unwrap();
        self.conn.release().unwrap();
        self.conn = datahike::connect(&self.config).unwrap();
        assert_eq!(snapshot(&self.db()), before, "database reopened from flushed indices differs");
    }
}

/// A fresh database with config keys `extra`.
fn open(backend: Backend, extra: &str) -> TestDb {
    let (store, dir) = fresh_store(backend, "purge");
    let config = Config::parse(&format!("{{:store {store} {extra}}}")).unwrap();
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    TestDb { conn, config, backend, _dir: dir }
}

/// Datahike's `purge_test.cljc` schema, with Alice 25 and Bob 35, plus a card-many `:tags`, a
/// `:friend` ref and a component `:items` (card-many) with component `:parts`.
const PEOPLE: &str = r#"[{:db/ident :name :db/valueType :db.type/string :db/unique :db.unique/identity
   :db/index true :db/cardinality :db.cardinality/one}
  {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
  {:db/ident :tags :db/valueType :db.type/string :db/cardinality :db.cardinality/many :db/index true}
  {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/one}
  {:db/ident :items :db/valueType :db.type/ref :db/cardinality :db.cardinality/many :db/isComponent true}
  {:db/ident :parts :db/valueType :db.type/ref :db/cardinality :db.cardinality/many :db/isComponent true}
  {:db/ident :label :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
  {:name "Alice" :age 25}
  {:name "Bob" :age 35}]"#;

fn people(backend: Backend) -> TestDb {
    let t = open(backend, ":schema-flexibility :write");
    t.transact(PEOPLE);
    t
}

/// Every datom of every index, current and history (the history view's indices merge both).
fn snapshot(db: &Db) -> (Vec<String>, Vec<String>) {
    let rows = |db: &Db| -> Vec<String> {
        IndexOrder::ALL.iter().flat_map(|o| db.datoms(*o, &[]).unwrap()).map(|d| pr_str(&d.to_edn_vector())).collect()
    };
    (rows(db), rows(&db.history().unwrap()))
}

fn query(db: &Db, query: &str, args: &[&str]) -> Edn {
    let mut inputs = vec![QueryInput::Db(db.clone())];
    inputs.extend(args.iter().map(|x| QueryInput::Edn(edn(x))));
    q(&edn(query), &inputs).unwrap_or_else(|e| panic!("query failed: {e}: {query}"))
}

fn check(db: &Db, q: &str, args: &[&str], expected: &str) {
    let got = query(db, q, args);
    assert_eq!(got, edn(expected), "query {q} on {}\n got {got}\nwant {expected}", pr_str(&db.to_edn_summary()));
}

fn history(db: &Db) -> Db {
    db.history().unwrap()
}

/// Rows `[e a v tx added]` of every datom of the history view (current and history) that
/// mentions `needle` as entity or value, in all three orders.
fn history_rows_with(db: &Db, needle: &Edn) -> BTreeSet<String> {
    let h = history(db);
    IndexOrder::ALL
        .iter()
        .flat_map(|o| h.datoms(*o, &[]).unwrap())
        .filter(|d| Edn::Int(d.e) == *needle || d.v.to_edn() == *needle)
        .map(|d| pr_str(&d.to_edn_vector()))
        .collect()
}

const AGES: &str = "[:find ?a ?op :in $ ?n :where [?e :name ?n] [?e :age ?a ?t ?op]]";
const ENTITIES: &str = "[:find ?n ?a :where [?e :name ?n] [?e :age ?a]]";

fn eid(db: &Db, lookup: &str) -> i64 {
    db.entid(&edn(lookup)).unwrap().unwrap_or_else(|| panic!("no entity {lookup}"))
}

// ---------------------------------------------------------------------------- :db/purge

/// Datahike's `test-purge`.
#[test]
fn purge_datom_from_current_and_history() {
    for backend in BACKENDS {
        let mut t = people(backend);
        // A retraction keeps the value in history.
        t.transact(r#"[[:db/retract [:name "Alice"] :age 25]]"#);
        check(&t.db(), AGES, &[r#""Alice""#], "#{}");
        check(&history(&t.db()), AGES, &[r#""Alice""#], "#{[25 true] [25 false]}");
        // Purging a current datom removes it from the current and the history indices.
        t.transact(r#"[[:db/purge [:name "Bob"] :age 35]]"#);
        check(&t.db(), AGES, &[r#""Bob""#], "#{}");
        check(&history(&t.db()), AGES, &[r#""Bob""#], "#{}");
        // Purging a retracted datom removes the assertion and the retraction from history.
        t.transact(r#"[[:db/purge [:name "Alice"] :age 25]]"#);
        check(&history(&t.db()), AGES, &[r#""Alice""#], "#{}");
        // Names are untouched.
        check(&history(&t.db()), "[:find ?n :where [_ :name ?n]]", &[], r#"#{["Alice"] ["Bob"]}"#);
        assert!(history_rows_with(&t.db(), &edn("25")).is_empty());
        assert!(history_rows_with(&t.db(), &edn("35")).is_empty());
        t.reopen_and_compare();
        check(&history(&t.db()), "[:find ?a :where [_ :age ?a]]", &[], "#{}");
    }
}

#[test]
fn purge_after_overwrites_and_cardinality_many_changes() {
    for backend in BACKENDS {
        let mut t = people(backend);
        let alice = eid(&t.db(), r#"[:name "Alice"]"#);
        let bob = eid(&t.db(), r#"[:name "Bob"]"#);
        t.transact(r#"[{:db/id [:name "Alice"] :age 30 :tags ["a" "b" "c"]}]"#);
        let t30 = t.db().max_tx();
        t.transact(r#"[{:db/id [:name "Alice"] :age 31} [:db/retract [:name "Alice"] :tags "b"] {:db/id [:name "Bob"] :tags "b"}]"#);
        t.transact(r#"[[:db/add [:name "Alice"] :tags "b"] [:db/add [:name "Alice"] :tags "d"]]"#);
        check(&history(&t.db()), AGES, &[r#""Alice""#], "#{[25 true] [25 false] [30 true] [30 false] [31 true]}");

        // An overwritten value in the middle of the history.
        t.transact(r#"[[:db/purge [:name "Alice"] :age 30]]"#);
        check(&history(&t.db()), AGES, &[r#""Alice""#], "#{[25 true] [25 false] [31 true]}");
        check(&t.db(), AGES, &[r#""Alice""#], "#{[31 true]}");
        // As of the transaction that set 30, Alice has no age at all now.
        check(&t.db().as_of(TimePoint::Tx(t30)).unwrap(), AGES, &[r#""Alice""#], "#{}");

        // A card-many value asserted, retracted and asserted again: every occurrence goes.
        let tags = "[:find ?v ?op :in $ ?e :where [?e :tags ?v _ ?op]]";
        check(
            &history(&t.db()),
            tags,
            &[&alice.to_string()],
            r#"#{["a" true] ["b" true] ["b" false] ["c" true] ["d" true]}"#,
        );
        t.transact(&format!(r#"[[:db/purge {alice} :tags "b"]]"#));
        check(&history(&t.db()), tags, &[&alice.to_string()], r#"#{["a" true] ["c" true] ["d" true]}"#);
        check(&t.db(), tags, &[&alice.to_string()], r#"#{["a" true] ["c" true] ["d" true]}"#);
        check(&t.db().as_of(TimePoint::Tx(t30)).unwrap(), tags, &[&alice.to_string()], r#"#{["a" true] ["c" true]}"#);
        // Bob's "b" is another datom and stays; so does the AVET entry of it.
        check(&t.db(), tags, &[&bob.to_string()], r#"#{["b" true]}"#);
        assert_eq!(t.db().datoms(IndexOrder::Avet, &[edn(":tags"), edn(r#""b""#)]).unwrap().len(), 1);
        assert_eq!(history(&t.db()).datoms(IndexOrder::Avet, &[edn(":tags"), edn(r#""b""#)]).unwrap().len(), 1);
        t.reopen_and_compare();
        check(&history(&t.db()), tags, &[&alice.to_string()], r#"#{["a" true] ["c" true] ["d" true]}"#);
    }
}

#[test]
fn purge_of_absent_value_does_nothing() {
    for backend in BACKENDS {
        let t = people(backend);
        let before = snapshot(&t.db());
        let report = t.transact(r#"[[:db/purge [:name "Alice"] :age 99]]"#);
        let tx = report.db_after.max_tx();
        assert_eq!(report.tx_data.len(), 1, "only the transaction's :db/txInstant");
        let without_tx = |rows: Vec<String>| -> Vec<String> {
            rows.into_iter().filter(|r| !r.starts_with(&format!("[{tx} "))).collect()
        };
        let after = snapshot(&t.db());
        assert_eq!((without_tx(after.0), without_tx(after.1)), before);
    }
}

/// A ref value may be given as a lookup ref, also one that only history resolves.
#[test]
fn purge_ref_value_by_lookup_ref() {
    for backend in BACKENDS {
        let t = people(backend);
        t.transact(r#"[[:db/add [:name "Bob"] :friend [:name "Alice"]]]"#);
        t.transact(r#"[[:db/retract [:name "Bob"] :friend [:name "Alice"]]]"#);
        let alice = eid(&t.db(), r#"[:name "Alice"]"#);
        check(
            &history(&t.db()),
            "[:find ?f ?op :where [_ :friend ?f _ ?op]]",
            &[],
            &format!("#{{[{alice} true] [{alice} false]}}"),
        );
        t.transact(r#"[[:db/purge [:name "Bob"] :friend [:name "Alice"]]]"#);
        check(&history(&t.db()), "[:find ?f ?op :where [_ :friend ?f _ ?op]]", &[], "#{}");
    }
}

// ---------------------------------------------------------------------------- :db.purge/attribute

/// Datahike's `test-purge-attribute`, and a card-many attribute.
#[test]
fn purge_attribute_current_and_history() {
    for backend in BACKENDS {
        let mut t = people(backend);
        t.transact(r#"[{:db/id [:name "Alice"] :tags ["a" "b"]}]"#);
        t.transact(r#"[[:db/retract [:name "Alice"] :tags "a"] [:db/add [:name "Alice"] :tags "c"] {:db/id [:name "Alice"] :age 26}]"#);
        t.transact(r#"[[:db.purge/attribute [:name "Alice"] :age]]"#);
        check(&t.db(), AGES, &[r#""Alice""#], "#{}");
        check(&history(&t.db()), AGES, &[r#""Alice""#], "#{}");
        check(&t.db(), "[:find ?n :where [_ :name ?n]]", &[], r#"#{["Alice"] ["Bob"]}"#);
        check(&t.db(), AGES, &[r#""Bob""#], "#{[35 true]}");
        t.transact(r#"[[:db.purge/attribute [:name "Alice"] :tags]]"#);
        check(&history(&t.db()), "[:find ?v :where [_ :tags ?v]]", &[], "#{}");
        // Retract first, then purge the history.
        t.transact(r#"[[:db.fn/retractAttribute [:name "Bob"] :age]]"#);
        check(&history(&t.db()), AGES, &[r#""Bob""#], "#{[35 true] [35 false]}");
        t.transact(r#"[[:db.purge/attribute [:name "Bob"] :age]]"#);
        check(&history(&t.db()), AGES, &[r#""Bob""#], "#{}");
        check(&t.db(), "[:find ?n :where [_ :name ?n]]", &[], r#"#{["Alice"] ["Bob"]}"#);
        t.reopen_and_compare();
    }
}

/// Purging a component attribute purges the component entities, recursively, with their
/// history, including components the attribute no longer references.
#[test]
fn purge_attribute_purges_components() {
    for backend in BACKENDS {
        let mut t = people(backend);
        let report = t.transact(
            r#"[{:db/id [:name "Alice"] :items [{:db/id "i1" :label "one" :parts [{:db/id "p1" :label "part"}]}
                                               {:db/id "i2" :label "two"}]}]"#,
        );
        let (i1, i2, p1) = (
            common::tempid(&report, r#""i1""#),
            common::tempid(&report, r#""i2""#),
            common::tempid(&report, r#""p1""#),
        );
        // i2 leaves Alice's items (still an entity of its own), then gets a new label.
        t.transact(&format!(r#"[[:db/retract [:name "Alice"] :items {i2}] [:db/add {i2} :label "two!"]]"#));
        t.transact(r#"[[:db.purge/attribute [:name "Alice"] :items]]"#);
        for e in [i1, i2, p1] {
            assert!(
                history_rows_with(&t.db(), &Edn::Int(e)).is_empty(),
                "component {e} still in {:?}",
                snapshot(&t.db())
            );
        }
        check(&t.db(), ENTITIES, &[], r#"#{["Alice" 25] ["Bob" 35]}"#);
        t.reopen_and_compare();
    }
}

// ---------------------------------------------------------------------------- :db.purge/entity

/// Datahike's `test-purge-entity`.
#[test]
fn purge_entity_current_and_retracted() {
    for backend in BACKENDS {
        let mut t = people(backend);
        let alice = eid(&t.db(), r#"[:name "Alice"]"#);
        t.transact(r#"[[:db.purge/entity [:name "Alice"]]]"#);
        check(&t.db(), ENTITIES, &[], r#"#{["Bob" 35]}"#);
        check(&history(&t.db()), ENTITIES, &[], r#"#{["Bob" 35]}"#);
        assert!(history_rows_with(&t.db(), &Edn::Int(alice)).is_empty());
        // A retracted entity is found by a lookup ref through history.
        t.transact(r#"[[:db/retractEntity [:name "Bob"]]]"#);
        check(&t.db(), ENTITIES, &[], "#{}");
        check(&history(&t.db()), ENTITIES, &[], r#"#{["Bob" 35]}"#);
        t.transact(r#"[[:db.purge/entity [:name "Bob"]]]"#);
        check(&history(&t.db()), ENTITIES, &[], "#{}");
        check(&history(&t.db()), "[:find ?e :where [?e :name]]", &[], "#{}");
        // Nothing left to find.
        let message = t.transact_err(r#"[[:db.purge/entity [:name "Alice"]]]"#, "transact/purge");
        assert!(message.contains(r#"Can't find entity with ID [:name "Alice"] to be purged"#), "{message}");
        t.reopen_and_compare();
    }
}

/// Refs to the entity, current and historical, and its components, recursively, go with it;
/// other entities and their other datoms stay.
#[test]
fn purge_entity_removes_refs_and_components() {
    for backend in BACKENDS {
        let mut t = people(backend);
        t.transact(r#"[{:name "Carol" :age 40 :friend [:name "Alice"]}]"#);
        let report = t.transact(
            r#"[{:db/id [:name "Alice"] :friend [:name "Bob"]
                 :items [{:db/id "i1" :label "one" :parts [{:db/id "p1" :label "part"}]}]}
                [:db/add [:name "Bob"] :friend [:name "Alice"]]]"#,
        );
        let (i1, p1) = (common::tempid(&report, r#""i1""#), common::tempid(&report, r#""p1""#));
        // Bob's ref to Alice is now only history.
        t.transact(r#"[[:db/add [:name "Bob"] :friend [:name "Carol"]]]"#);
        let alice = eid(&t.db(), r#"[:name "Alice"]"#);
        let bob = eid(&t.db(), r#"[:name "Bob"]"#);
        let carol = eid(&t.db(), r#"[:name "Carol"]"#);
        let bob_before: Vec<_> = t.db().datoms(IndexOrder::Eavt, &[Edn::Int(bob)]).unwrap();

        let report = t.transact(r#"[[:db.purge/entity [:name "Alice"]]]"#);
        for e in [alice, i1, p1] {
            assert!(history_rows_with(&t.db(), &Edn::Int(e)).is_empty(), "{e} still in {:?}", snapshot(&t.db()));
        }
        check(&t.db(), ENTITIES, &[], r#"#{["Bob" 35] ["Carol" 40]}"#);
        check(&history(&t.db()), ENTITIES, &[], r#"#{["Bob" 35] ["Carol" 40]}"#);
        // Carol lost her (current) ref to Alice, Bob his historical one; Bob -> Carol stays.
        check(
            &history(&t.db()),
            "[:find ?e ?f ?op :where [?e :friend ?f _ ?op]]",
            &[],
            &format!("#{{[{bob} {carol} true]}}"),
        );
        assert_eq!(t.db().datoms(IndexOrder::Eavt, &[Edn::Int(bob)]).unwrap(), bob_before);
        // The purge reports only the transaction's instant, as Datahike does.
        assert_eq!(report.tx_data.len(), 1);
        assert!(report.tx_data.iter().all(|d| d.e == report.db_after.max_tx() && d.a.as_str() == "db/txInstant"));
        // As of any earlier transaction, Alice is gone too.
        for tx in TX0 + 1..report.db_after.max_tx() {
            check(&t.db().as_of(TimePoint::Tx(tx)).unwrap(), "[:find ?e :where [?e :name \"Alice\"]]", &[], "#{}");
        }
        t.reopen_and_compare();
    }
}

// ---------------------------------------------------------------------------- :db.history.purge/before

fn instant_of(db: &Db, tx: i64) -> Edn {
    db.datoms(IndexOrder::Eavt, &[Edn::Int(tx), edn(":db/txInstant")]).unwrap()[0].v.to_edn()
}

/// Datahike's `test-history-purge-before`: only history older than the instant goes; current
/// datoms stay, whatever their age.
#[test]
fn history_purge_before() {
    for backend in BACKENDS {
        let mut t = people(backend);
        check(&t.db(), AGES, &[r#""Alice""#], "#{[25 true]}");
        t.transact(r#"[{:db/id [:name "Alice"] :age 30}]"#);
        let upsert = instant_of(&t.db(), t.db().max_tx());
        check(&history(&t.db()), AGES, &[r#""Alice""#], "#{[25 true] [25 false] [30 true]}");
        let current = t.db().datoms(IndexOrder::Eavt, &[]).unwrap();
        // The assertion of 25 is older than the upsert; its retraction is not.
        t.transact(&format!("[[:db.history.purge/before {upsert}]]"));
        check(&t.db(), AGES, &[r#""Alice""#], "#{[30 true]}");
        check(&history(&t.db()), AGES, &[r#""Alice""#], "#{[25 false] [30 true]}");
        check(&history(&t.db()), AGES, &[r#""Bob""#], "#{[35 true]}");
        let now_current = t.db().datoms(IndexOrder::Eavt, &[]).unwrap();
        assert!(current.iter().all(|d| now_current.contains(d)), "a current datom was purged");
        t.transact(r#"[[:db.history.purge/before #inst "2999-01-01T00:00:00.000-00:00"]]"#);
        check(&history(&t.db()), AGES, &[r#""Alice""#], "#{[30 true]}");
        // Every transaction keeps its instant: the current datoms are untouched.
        let now_current = t.db().datoms(IndexOrder::Eavt, &[]).unwrap();
        assert!(current.iter().all(|d| now_current.contains(d)), "a current datom was purged");
        let history_only = snapshot(&t.db()).1.len() - snapshot(&t.db()).0.len();
        assert_eq!(history_only, 0, "history left: {:?}", snapshot(&t.db()).1);
        t.reopen_and_compare();
    }
}

/// In one transaction with other ops, a purge sees what they did: the value this transaction
/// overwrites is history by then, while the transaction's own retraction stays.
#[test]
fn history_purge_before_sees_the_transaction_so_far() {
    for backend in BACKENDS {
        let mut t = people(backend);
        t.transact(
            r#"[[:db/add [:name "Bob"] :age 36] [:db.history.purge/before #inst "2999-01-01T00:00:00.000-00:00"]]"#,
        );
        check(&history(&t.db()), AGES, &[r#""Bob""#], "#{[35 false] [36 true]}");
        check(&t.db(), AGES, &[r#""Alice""#], "#{[25 true]}");
        t.reopen_and_compare();
    }
}

/// Components referenced only from purged history are purged as entities, as in Datahike.
#[test]
fn history_purge_before_purges_components_of_purged_refs() {
    for backend in BACKENDS {
        let t = people(backend);
        let report = t.transact(r#"[{:db/id [:name "Alice"] :items [{:db/id "i1" :label "one"}]}]"#);
        let i1 = common::tempid(&report, r#""i1""#);
        t.transact(&format!(r#"[[:db/retract [:name "Alice"] :items {i1}]]"#));
        t.transact(r#"[[:db.history.purge/before #inst "2999-01-01T00:00:00.000-00:00"]]"#);
        assert!(history_rows_with(&t.db(), &Edn::Int(i1)).is_empty(), "{:?}", snapshot(&t.db()));
    }
}

// ---------------------------------------------------------------------------- one transaction

/// A purge in a transaction that also changes the purged value leaves neither history nor a
/// retraction of it.
#[test]
fn purge_with_other_ops_in_one_transaction() {
    for backend in BACKENDS {
        let mut t = people(backend);
        let alice = eid(&t.db(), r#"[:name "Alice"]"#);
        let bob = eid(&t.db(), r#"[:name "Bob"]"#);
        // Overwrite, then purge the old value: its retraction is dropped from tx-data.
        let report = t.transact(r#"[[:db/add [:name "Alice"] :age 26] [:db/purge [:name "Alice"] :age 25]]"#);
        common::assert_tx_data_user(&report, &format!("[[{alice} :age 26 true]]"));
        check(&history(&t.db()), AGES, &[r#""Alice""#], "#{[26 true]}");
        // Purge, then assert the same value anew.
        t.transact(r#"[[:db/purge [:name "Bob"] :age 35] [:db/add [:name "Bob"] :age 35]]"#);
        let tx = t.db().max_tx();
        check(
            &history(&t.db()),
            "[:find ?a ?tx ?op :in $ ?e :where [?e :age ?a ?tx ?op]]",
            &[&bob.to_string()],
            &format!("#{{[35 {tx} true]}}"),
        );
        // Assert and purge in one transaction: nothing stays.
        let report = t.transact(r#"[[:db/add [:name "Bob"] :tags "x"] [:db.purge/attribute [:name "Bob"] :tags]]"#);
        assert_eq!(report.tx_data.len(), 1);
        check(&history(&t.db()), "[:find ?v :where [_ :tags ?v]]", &[], "#{}");
        t.reopen_and_compare();
        check(&history(&t.db()), AGES, &[r#""Alice""#], "#{[26 true]}");
    }
}

/// A unique value purged earlier in the transaction is free again: a later entity map with it
/// makes a new entity instead of upserting into the purged one.
#[test]
fn purged_unique_value_is_free_in_the_same_transaction() {
    for backend in BACKENDS {
        let mut t = people(backend);
        let alice = eid(&t.db(), r#"[:name "Alice"]"#);
        let report = t.transact(r#"[[:db.purge/entity [:name "Alice"]] {:db/id "new" :name "Alice" :age 1}]"#);
        let new = common::tempid(&report, r#""new""#);
        assert_ne!(new, alice);
        assert!(history_rows_with(&t.db(), &Edn::Int(alice)).is_empty());
        check(&history(&t.db()), ENTITIES, &[], r#"#{["Alice" 1] ["Bob" 35]}"#);
        t.reopen_and_compare();
    }
}

/// Components that reference each other are each purged once.
#[test]
fn purge_entity_with_component_cycle() {
    for backend in BACKENDS {
        let mut t = people(backend);
        let report = t.transact(r#"[{:db/id "a" :label "a" :items "b"} {:db/id "b" :label "b" :items "a"}]"#);
        let (a, b) = (common::tempid(&report, r#""a""#), common::tempid(&report, r#""b""#));
        t.transact(&format!("[[:db.purge/entity {a}]]"));
        for e in [a, b] {
            assert!(history_rows_with(&t.db(), &Edn::Int(e)).is_empty(), "{e} still in {:?}", snapshot(&t.db()));
        }
        check(&t.db(), ENTITIES, &[], r#"#{["Alice" 25] ["Bob" 35]}"#);
        t.reopen_and_compare();
    }
}

/// An ident that only history still knows names its entity, as a lookup ref does.
#[test]
fn purge_entity_by_retracted_ident() {
    for backend in BACKENDS {
        let t = people(backend);
        let report = t.transact(r#"[{:db/id "c" :db/ident :color/red :label "red"}]"#);
        let red = common::tempid(&report, r#""c""#);
        // The current ident is schema: refused until retracted.
        t.transact_err("[[:db.purge/entity :color/red]]", "transact/purge");
        t.transact("[[:db/retractEntity :color/red]]");
        t.transact("[[:db.purge/entity :color/red]]");
        assert!(history_rows_with(&t.db(), &Edn::Int(red)).is_empty(), "{:?}", snapshot(&t.db()));
    }
}

/// `with` applies a purge to a value without storing anything.
#[test]
fn purge_with_db_with() {
    let t = people(Backend::Memory);
    let db = t.db();
    let after = db.db_with(&edn(r#"[[:db.purge/entity [:name "Alice"]]]"#)).unwrap();
    check(&history(&after), ENTITIES, &[], r#"#{["Bob" 35]}"#);
    check(&history(&t.db()), ENTITIES, &[], r#"#{["Alice" 25] ["Bob" 35]}"#);
}

// ---------------------------------------------------------------------------- errors

/// Datahike's `test-purge-non-temporal-database`, for every op.
#[test]
fn purge_needs_history() {
    for backend in BACKENDS {
        let t = open(backend, ":schema-flexibility :write :keep-history? false");
        t.transact(PEOPLE);
        for (op, what) in [
            (r#"[:db/purge [:name "Alice"] :age 25]"#, "Purge is only available in temporal databases"),
            (
                r#"[:db.purge/attribute [:name "Alice"] :age]"#,
                "Purge attribute is only available in temporal databases",
            ),
            (r#"[:db.purge/entity [:name "Alice"]]"#, "Purge entity is only available in temporal databases"),
            (
                r#"[:db.history.purge/before #inst "2999-01-01T00:00:00.000-00:00"]"#,
                "History purge is only available in temporal databases",
            ),
        ] {
            let before = common::all_datoms(&t.db());
            let err = t.conn.transact(&edn(&format!("[{op}]"))).unwrap_err();
            assert_eq!(err.code(), "transact/purge", "{err}");
            let message = err.to_string();
            assert!(message.contains(what) && message.contains(op), "{message}");
            assert_eq!(common::all_datoms(&t.db()), before);
        }
    }
}

#[test]
fn purge_errors_name_the_op() {
    for backend in BACKENDS {
        let t = people(backend);
        for (op, code, says) in [
            (
                r#"[:db.purge/entity [:name "Nobody"]]"#,
                "transact/purge",
                r#"Can't find entity with ID [:name "Nobody"] to be purged"#,
            ),
            (
                r#"[:db.purge/attribute :no/such-ident :age]"#,
                "transact/purge",
                "Can't find entity with ID :no/such-ident to be purged",
            ),
            (
                r#"[:db/purge [:name "Nobody"] :age 25]"#,
                "transact/purge",
                r#"Can't find entity with ID [:name "Nobody"]"#,
            ),
            (
                r#"[:db/purge [:name "Bob"] :friend [:name "Nobody"]]"#,
                "transact/purge",
                r#"Can't find entity with ID [:name "Nobody"]"#,
            ),
            (r#"[:db.purge/entity "tempid"]"#, "transact/syntax", "Can't use tempid"),
            (r#"[:db.purge/entity [:name "Alice"] :age]"#, "transact/syntax", "expected [:db.purge/entity e]"),
            (r#"[:db/purge [:name "Alice"] :age]"#, "transact/syntax", "expected [:db/purge e a v]"),
            (r#"[:db.history.purge/before 12]"#, "transact/syntax", "expected an instant"),
            (r#"[:db/purge [:name "Alice"] :no-such-attr 1]"#, "transact/schema", ":no-such-attr"),
            (r#"[:db/purge [:name "Alice"] :age "old"]"#, "transact/schema", r#""old""#),
            (r#"[:db.purge/entity :age]"#, "transact/purge", "Cannot purge the schema datom"),
            (
                r#"[:db/purge :name :db/cardinality :db.cardinality/one]"#,
                "transact/purge",
                "Cannot purge the schema datom",
            ),
        ] {
            let text = format!("[{op}]");
            let message = t.transact_err(&text, code);
            assert!(message.contains(says), "{text}: {message}");
            if code == "transact/purge" {
                assert!(message.contains(op), "the message names the op: {message}");
            }
        }
    }
}

/// A retracted schema datom is history and may be purged; the schema is unchanged.
#[test]
fn retracted_schema_datom_can_be_purged() {
    for backend in BACKENDS {
        let mut t = people(backend);
        let schema = t.db().schema_edn();
        t.transact(r#"[[:db/add :label :db/doc "private note"]]"#);
        t.transact(r#"[[:db/retract :label :db/doc "private note"]]"#);
        t.transact(r#"[[:db/purge :label :db/doc "private note"]]"#);
        assert!(history_rows_with(&t.db(), &edn(r#""private note""#)).is_empty());
        assert_eq!(t.db().schema_edn(), schema);
        // Retracting and purging in one transaction leaves the schema as the retraction does.
        t.transact(r#"[[:db/add :label :db/doc "again"]]"#);
        t.transact(r#"[[:db/retract :label :db/doc "again"] [:db/purge :label :db/doc "again"]]"#);
        assert!(history_rows_with(&t.db(), &edn(r#""again""#)).is_empty());
        assert_eq!(t.db().schema_edn(), schema);
        t.reopen_and_compare();
        assert_eq!(t.db().schema_edn(), schema);
    }
}
