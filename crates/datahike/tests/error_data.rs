//! Errors as data: each kind of error, provoked through the public API, carries Datahike's
//! code, a message, and the data of its `ex-data` (`Error::data`): the attribute, value,
//! entity, clause or input at fault. Bad input is a client error; store faults are not.

mod common;

use common::*;
use datahike::edn::read_str;
use datahike::query::register_function;
use datahike::store::{Store, StoreError, StoreResult, WriterGuard};
use datahike::{pull, q, Config, Edn, Error, IndexOrder, QueryInput, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PEOPLE: &str = r#"[{:db/ident :email :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
  {:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
  {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
  {:db/ident :score :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
  {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]"#;

/// A `:write` database with [`PEOPLE`] and Alice (entity 6) and Bob (entity 7).
fn people() -> datahike::Conn {
    let conn = write_db(PEOPLE);
    transact(
        &conn,
        r#"[{:db/id -1 :email "alice@example.com" :name "Alice" :age 30}
                        {:db/id -2 :email "bob@example.com" :name "Bob" :age 40}]"#,
    );
    assert_eq!(entid(&conn.db(), r#"[:email "bob@example.com"]"#), Some(7));
    conn
}

/// Checks the code, that the data map starts with `:error` and holds every entry of
/// `expected` (EDN map text), and returns the data for further checks.
fn assert_data(err: &Error, code: &str, expected: &str) -> Edn {
    assert_eq!(err.code(), code, "{err}");
    let data = err.data();
    let Edn::Map(entries) = &data else { panic!("data of {err} is not a map: {data}") };
    assert_eq!(entries.first(), Some(&(Edn::kw("error"), Edn::kw(code))), "{data}");
    let Edn::Map(want) = &edn(expected) else { panic!("expected data must be a map: {expected}") };
    for (k, v) in want {
        assert_eq!(data.get(k), Some(v), "{k} in the data of {err}: {data}");
    }
    data
}

fn tx_error(conn: &datahike::Conn, text: &str) -> Error {
    conn.transact(&edn(text)).expect_err(text)
}

fn q_error(query: &str, inputs: &[QueryInput]) -> Error {
    q(&edn(query), inputs).expect_err(query)
}

// ------------------------------------------------------------------ transactions

#[test]
fn unique_names_attribute_value_entity_and_the_holder() {
    let conn = people();
    let err = tx_error(&conn, r#"[[:db/add 7 :email "alice@example.com"]]"#);
    let data = assert_data(
        &err,
        "transact/unique",
        r#"{:attribute :email :value "alice@example.com" :entity-id 7 :conflict [6 :email "alice@example.com"]}"#,
    );
    let Some(Edn::Vector(datom)) = data.get_kw("datom") else { panic!("no :datom in {data}") };
    assert_eq!(datom[..3], edn(r#"[7 :email "alice@example.com"]"#).as_seq().unwrap()[..]);
    assert_eq!(datom[4], Edn::Bool(true));
    assert!(err.is_client_error());
    assert_eq!(err.detail().and_then(|d| d.get("attribute")), Some(&Edn::kw("email")));
}

#[test]
fn a_value_of_the_wrong_type_names_the_expected_type() {
    let conn = people();
    let err = tx_error(&conn, r#"[{:db/id 6 :age "thirty"}]"#);
    assert_data(
        &err,
        "transact/schema",
        r#"{:attribute :age :value "thirty" :expected :db.type/long :entity-id 6 :context [:db/add 6 :age "thirty"]}"#,
    );
    assert!(err.is_client_error());
    // A lookup ref's value of the wrong type: the lookup ref is the entity.
    let err = tx_error(&conn, "[[:db/add [:email 42] :age 3]]");
    assert_data(
        &err,
        "transact/schema",
        "{:attribute :email :value 42 :entity-id [:email 42] :expected :db.type/string}",
    );
}

#[test]
fn a_schema_enum_lists_its_choices() {
    let conn = people();
    let err = tx_error(&conn, "[{:db/ident :nick :db/valueType :db.type/text :db/cardinality :db.cardinality/one}]");
    let data = assert_data(&err, "transact/schema", "{:attribute :db/valueType :value :db.type/text}");
    let choices = data.get_kw("choices").and_then(Edn::as_seq).expect("choices");
    assert!(choices.contains(&Edn::kw("db.type/string")) && choices.contains(&Edn::kw("db.type/tuple")), "{data}");
    let err = tx_error(&conn, "[{:db/ident :nick :db/valueType :db.type/string :db/cardinality :one}]");
    assert_data(
        &err,
        "transact/schema",
        "{:attribute :db/cardinality :value :one :choices [:db.cardinality/one :db.cardinality/many]}",
    );
}

#[test]
fn an_unknown_attribute_lists_the_known_ones() {
    let conn = people();
    let err = tx_error(&conn, r#"[{:db/id 6 :nickname "Al"}]"#);
    assert_data(
        &err,
        "transact/schema",
        r#"{:attribute :nickname :entity-id 6 :choices [:age :email :friend :name :score]
            :context {:db/id 6, :nickname "Al"}}"#,
    );
}

#[test]
fn cas_names_the_current_expected_and_new_values() {
    let conn = people();
    let err = tx_error(&conn, "[[:db/cas 6 :age 31 32]]");
    assert_data(
        &err,
        "transact/cas",
        "{:operation :db/cas :entity-id 6 :attribute :age :old 30 :expected 31 :new 32 :tx-data [:db/cas 6 :age 31 32]}",
    );
    let err = tx_error(&conn, "[[:db.fn/cas 6 :age nil 32]]");
    assert_data(&err, "transact/cas", "{:operation :db.fn/cas :old 30 :expected nil :new 32}");
}

#[test]
fn conflicting_upserts_name_both_resolutions() {
    let conn = write_db(
        "[{:db/ident :email :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
          {:db/ident :handle :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}]",
    );
    transact(&conn, r#"[{:email "a@x" :handle "a"} {:email "b@x" :handle "b"}]"#);
    let err = tx_error(&conn, r#"[{:email "a@x" :handle "b"}]"#);
    assert_data(
        &err,
        "transact/upsert",
        r#"{:attribute :handle :value "b" :entity-id 4 :conflict [3 :email "a@x"] :entity {:email "a@x" :handle "b"}}"#,
    );
}

#[test]
fn entity_ids_and_lookup_refs_name_the_entity() {
    let conn = people();
    let err = tx_error(&conn, r#"[[:db/add [:email "carol@example.com"] :age 3]]"#);
    assert_data(&err, "entity-id/missing", r#"{:entity-id [:email "carol@example.com"]}"#);
    let err = tx_error(&conn, r#"[[:db/add [:name "Alice"] :age 3]]"#);
    assert_data(&err, "lookup-ref/unique", r#"{:entity-id [:name "Alice"] :attribute :name}"#);
    let err = tx_error(&conn, "[[:db/add [:email] :age 3]]");
    assert_data(&err, "lookup-ref/syntax", "{:entity-id [:email]}");
    let err = tx_error(&conn, "[[:db/add 1.5 :age 3]]");
    assert_data(&err, "entity-id/syntax", "{:entity-id 1.5}");
    let err = tx_error(&conn, "[{:db/id 2.5 :age 3}]");
    assert_data(&err, "entity-id/syntax", "{:entity-id 2.5 :entity {:db/id 2.5 :age 3}}");
}

#[test]
fn syntax_errors_name_the_operation() {
    let conn = people();
    let err = tx_error(&conn, "[[:db/frobnicate 6 :age 3]]");
    let data = assert_data(&err, "transact/syntax", "{:operation :db/frobnicate :tx-data [:db/frobnicate 6 :age 3]}");
    let choices = data.get_kw("choices").and_then(Edn::as_seq).expect("choices");
    assert_eq!(choices.len(), 11, "{data}");
    assert_eq!(choices[0], Edn::kw("db/add"));
    let err = tx_error(&conn, r#"[[:db/retract "alice" :age 30]]"#);
    assert_data(&err, "transact/syntax", r#"{:operation :db/retract :entity-id "alice"}"#);
    let err = tx_error(&conn, "[[:db/add 6 :age]]");
    assert_data(&err, "transact/syntax", "{:operation :db/add :tx-data [:db/add 6 :age]}");
    let err = tx_error(&conn, "[[:db/add 6 \"age\" 3]]");
    assert_data(&err, "transact/syntax", r#"{:attribute "age" :entity-id 6 :context [:db/add 6 "age" 3]}"#);
    let err = conn.transact(&edn("{:age 3}")).unwrap_err();
    assert_data(&err, "transact/syntax", "{:tx-data {:age 3}}");
    let err = tx_error(&conn, "[42]");
    assert_data(&err, "transact/syntax", "{:tx-data 42}");
    let err = tx_error(&conn, "[[:db/add 6 :age nil]]");
    assert_data(&err, "transact/syntax", "{:attribute :age :value nil :entity-id 6}");
}

#[test]
fn tuples_name_the_attribute_and_the_types() {
    let conn = write_db(
        "[{:db/ident :a :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
          {:db/ident :b :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
          {:db/ident :a+b :db/valueType :db.type/tuple :db/tupleAttrs [:a :b] :db/cardinality :db.cardinality/one}
          {:db/ident :point :db/valueType :db.type/tuple :db/tupleTypes [:db.type/long :db.type/string] :db/cardinality :db.cardinality/one}]",
    );
    let err = tx_error(&conn, "[[:db/add 1 :a+b [1 2]]]");
    assert_data(&err, "transact/syntax", "{:attribute :a+b :operation :db/add :tx-data [:db/add 1 :a+b [1 2]]}");
    let err = tx_error(&conn, r#"[[:db/add -1 :point [1 2]]]"#);
    assert_data(
        &err,
        "transact/syntax",
        "{:attribute :point :value [1 2] :expected {:db/tupleTypes [:db.type/long :db.type/string]}}",
    );
}

#[test]
fn schema_updates_name_what_cannot_change() {
    let conn = people();
    let err = tx_error(&conn, "[{:db/id 3 :db/valueType :db.type/string}]");
    let data = assert_data(
        &err,
        "transact/schema",
        "{:attribute :age :entity-id 3 :invalid-updates {:db/valueType [:db.type/long :db.type/string]}}",
    );
    assert_eq!(data.get_kw("entity"), Some(&edn("{:db/id 3 :db/valueType :db.type/string}")));
    let err = tx_error(&conn, "[{:db/ident :db/mine :db/valueType :db.type/long :db/cardinality :db.cardinality/one}]");
    assert_data(&err, "transact/schema", "{:attribute :db/mine}");
    let err = tx_error(&conn, "[{:db/ident :half :db/valueType :db.type/long}]");
    assert_data(
        &err,
        "transact/schema",
        "{:expected [:db/ident :db/valueType :db/cardinality] :entity {:db/ident :half :db/valueType :db.type/long}}",
    );
    let err = tx_error(&conn, "[{:db/id 3 :db/ident :years}]");
    assert_data(&err, "transact/schema", "{:attribute :age :new-attribute :years :entity-id 3}");
}

#[test]
fn purge_and_tx_metadata_errors() {
    let conn = mem_db(":schema-flexibility :read :keep-history? false");
    transact(&conn, "[{:db/id 1 :age 3}]");
    let err = tx_error(&conn, "[[:db/purge 1 :age 3]]");
    assert_data(&err, "transact/purge", "{:operation :db/purge :tx-data [:db/purge 1 :age 3]}");
    let err = conn.transact_with_meta(&edn("[{:age 4}]"), Some(&edn("{:db/txInstant 5}"))).unwrap_err();
    assert_data(&err, "transact/schema", "{:attribute :db/txInstant :value 5 :expected :db.type/instant}");
}

// ------------------------------------------------------------------ queries

#[test]
fn an_unknown_function_names_it_and_its_clause() {
    let conn = people();
    let err = q_error("[:find ?e :where [?e :age ?a] [(frobnicate ?a)]]", &[conn.db().into()]);
    assert_data(&err, "query/syntax", "{:function frobnicate :form [(frobnicate ?a)]}");
    assert!(err.is_client_error());
}

#[test]
fn unbound_variables_are_named() {
    let conn = people();
    let err = q_error("[:find ?e :where [?e :age ?a] [(< ?a ?limit)]]", &[conn.db().into()]);
    assert_data(&err, "query/binding", "{:vars [?limit] :form [(< ?a ?limit)]}");
    let err = q_error("[:find ?x :where [?e :age ?a]]", &[conn.db().into()]);
    assert_data(&err, "query/syntax", "{:vars [?x]}");
}

#[test]
fn inputs_that_do_not_fit_name_the_binding() {
    let conn = people();
    let err = q_error("[:find ?e :in $ ?name :where [?e :name ?name]]", &[conn.db().into()]);
    assert_data(&err, "query/inputs", "{:binding [$ ?name] :expected 2 :value 1}");
    let err = q_error(
        "[:find ?e :in $ [?name ...] :where [?e :name ?name]]",
        &[conn.db().into(), QueryInput::Edn(Edn::str("Alice"))],
    );
    assert_data(&err, "query/inputs", r#"{:binding [?name ...] :value "Alice"}"#);
    let err = q_error("[:find ?e :in $ $2 :where [$2 ?e]]", &[conn.db().into(), QueryInput::Edn(Edn::Int(3))]);
    assert_data(&err, "query/inputs", "{:binding $2 :value 3}");
}

#[test]
fn unknown_rules_aggregates_and_sections_list_the_choices() {
    let conn = people();
    let rules = "[[(adult ?e) [?e :age ?a] [(>= ?a 18)]]]";
    let err = q_error("[:find ?e :in $ % :where (grown-up ?e)]", &[conn.db().into(), QueryInput::Edn(edn(rules))]);
    assert_data(&err, "query/syntax", "{:rule grown-up :form (grown-up ?e) :choices [adult]}");
    let err = q_error("[:find ?e :in $ % :where (adult ?e ?x)]", &[conn.db().into(), QueryInput::Edn(edn(rules))]);
    assert_data(&err, "query/syntax", "{:rule adult :expected 1 :form (adult ?e ?x)}");
    let err = q_error("[:find (mean ?a) :where [?e :age ?a]]", &[conn.db().into()]);
    let data = assert_data(&err, "query/syntax", "{:function mean :form (mean ?a)}");
    assert!(data.get_kw("choices").and_then(Edn::as_seq).unwrap().contains(&edn("avg")), "{data}");
    let err = q_error("[:find ?e :wehre [?e :age]]", &[conn.db().into()]);
    let data = assert_data(&err, "query/syntax", "{:form :wehre}");
    assert!(data.get_kw("choices").and_then(Edn::as_seq).unwrap().contains(&Edn::kw("where")), "{data}");
}

#[test]
fn parse_errors_name_the_form() {
    let conn = people();
    let err = q_error("[:find ?e :where [?e :age ?a] (not)]", &[conn.db().into()]);
    assert_data(&err, "query/syntax", "{:form (not)}");
    let err = q_error("[:find ?e :where [?e :age ?a] (not-join [?x] [?e :age ?a])]", &[conn.db().into()]);
    assert_data(&err, "query/syntax", "{:vars [?x] :form (not-join [?x] [?e :age ?a])}");
    let err = q(&Edn::str("[:find ?e :where [?e :age"), &[conn.db().into()]).unwrap_err();
    assert_data(&err, "query/syntax", "{:line 1 :column 26}");
    let err = q_error("{:query [:find ?e :where [?e :age]] :limit -1}", &[conn.db().into()]);
    assert_data(&err, "query/syntax", "{:form :limit :value -1}");
}

#[test]
fn a_failed_call_names_the_function_and_clause() {
    let conn = people();
    let err = q_error(r#"[:find ?s :where [?e :age ?a] [(+ ?a "one") ?s]]"#, &[conn.db().into()]);
    assert_data(&err, "query/eval", r#"{:function + :form [(+ ?a "one") ?s]}"#);
    assert!(err.is_client_error());
    let err = q_error("[:find (sum ?n) :where [?e :name ?n]]", &[conn.db().into()]);
    assert_data(&err, "query/eval", "{:function sum :form (sum ?n)}");
}

#[test]
fn a_timeout_is_not_the_callers_fault() {
    let conn = read_db();
    transact(&conn, "[{:v 1} {:v 2} {:v 3} {:v 4} {:v 5}]");
    register_function("test.error-data/slow", |args: &[Value]| {
        std::thread::sleep(Duration::from_millis(20));
        Ok(args.first().cloned().unwrap_or(Value::Nil))
    })
    .unwrap();
    let query = "{:query [:find ?y :where [?e :v ?x] [(test.error-data/slow ?x) ?y]] :timeout 30}";
    let err = q_error(query, &[conn.db().into()]);
    assert_data(&err, "query/timeout", "{:timeout 30}");
    assert!(!err.is_client_error());
}

// ------------------------------------------------------------------ pull and datoms

#[test]
fn pull_names_the_entity_attribute_or_pattern_element() {
    let conn = people();
    let db = conn.db();
    let err = pull(&db, &edn("[:name]"), &edn(r#"[:email "carol@example.com"]"#)).unwrap_err();
    assert_data(&err, "entity-id/missing", r#"{:entity-id [:email "carol@example.com"]}"#);
    let err = pull(&db, &edn("[:nickname]"), &Edn::Int(6)).unwrap_err();
    assert_data(&err, "transact/schema", "{:attribute :nickname :choices [:age :email :friend :name :score]}");
    let err = pull(&db, &edn("[{:friend :all}]"), &Edn::Int(6)).unwrap_err();
    assert_data(&err, "argument/invalid", "{:form [:friend :all]}");
    assert!(err.is_client_error());
}

#[test]
fn datoms_name_the_attribute_or_entity() {
    let conn = people();
    let db = conn.db();
    let err = db.datoms(IndexOrder::Aevt, &[Edn::kw("nickname")]).unwrap_err();
    assert_data(&err, "argument/invalid", "{:attribute :nickname :choices [:age :email :friend :name :score]}");
    let err = db.datoms(IndexOrder::Avet, &[Edn::kw("age"), Edn::Int(30)]).unwrap_err();
    assert_data(&err, "argument/invalid", "{:attribute :age}");
    let err = db.datoms(IndexOrder::Eavt, &[edn(r#"[:email "carol@example.com"]"#)]).unwrap_err();
    assert_data(&err, "argument/invalid", r#"{:entity-id [:email "carol@example.com"]}"#);
    let err = db.datoms(IndexOrder::Avet, &[Edn::kw("score"), edn("#{1}")]).unwrap_err();
    assert_data(&err, "argument/invalid", "{:attribute :score :value #{1}}");
    let err = db.index_range(datahike::Keyword::new("age"), &Edn::Int(1), &Edn::Int(50)).unwrap_err();
    assert_data(&err, "argument/invalid", "{:attribute :age}");
}

// ------------------------------------------------------------------ the other layers

#[test]
fn configuration_database_and_view_errors_are_client_errors() {
    let err = Config::parse("{:store {:backend :memory :id").unwrap_err();
    assert_data(&err, "edn/syntax", "{:line 1}");
    assert!(err.data().get_kw("column").is_some() && err.is_client_error());
    let err = Config::parse("{:store {:backend :no-such-backend}}").unwrap_err();
    assert_data(&err, "config/invalid", "{}");
    assert!(err.is_client_error());
    let config = Config::parse(r#"{:store {:backend :memory :id "error-data-missing"}}"#).unwrap();
    let err = datahike::connect(&config).unwrap_err();
    assert_data(&err, "database/state", "{}");
    assert!(err.is_client_error());
    let conn = mem_db(":schema-flexibility :read :keep-history? false");
    let err = conn.db().history().unwrap_err();
    assert_data(&err, "db/temporal", "{}");
    assert!(err.is_client_error());
    let conn = read_db();
    transact(&conn, "[{:age 1}]");
    let err = conn.db().history().unwrap().with(&edn("[{:age 2}]")).unwrap_err();
    assert_data(&err, "transaction/filtered", "{}");
    assert!(err.is_client_error());
}

/// An in-memory store whose writes fail once `failing` is set, as a remote backend's would.
#[derive(Clone, Default)]
struct FlakyStore {
    map: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    failing: Arc<AtomicBool>,
}

impl FlakyStore {
    fn check(&self, key: &str) -> StoreResult<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Backend { backend: "flaky", key: key.to_string(), reason: "unplugged".into() });
        }
        Ok(())
    }
}

impl Store for FlakyStore {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.map.lock().unwrap().get(key).cloned())
    }
    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        self.check(entries.first().map_or("", |(k, _)| k))?;
        let mut map = self.map.lock().unwrap();
        for (k, v) in entries {
            map.insert(k.clone(), v.clone());
        }
        Ok(())
    }
    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        self.check(keys.first().map_or("", String::as_str))?;
        let mut map = self.map.lock().unwrap();
        for k in keys {
            map.remove(k);
        }
        Ok(())
    }
    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        Ok(self.map.lock().unwrap().keys().filter(|k| k.starts_with(prefix)).cloned().collect())
    }
    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        self.check(key)?;
        let mut map = self.map.lock().unwrap();
        if map.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        map.insert(key.to_string(), new.to_vec());
        Ok(true)
    }
    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        datahike::store::lease::acquire(Arc::new(self.clone()))
    }
    fn destroy(&self) -> StoreResult<()> {
        self.map.lock().unwrap().clear();
        Ok(())
    }
}

#[test]
fn a_failing_store_is_a_fault_that_names_the_backend_and_key() {
    let store = FlakyStore::default();
    let config =
        Config { schema_flexibility: datahike::SchemaFlexibility::Read, ..Config::with_store(Arc::new(store.clone())) };
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    transact(&conn, "[{:age 1}]");
    store.failing.store(true, Ordering::SeqCst);
    let err = conn.transact(&edn("[{:age 2}]")).unwrap_err();
    let data = assert_data(&err, "store/io", r#"{:backend :flaky :reason "unplugged"}"#);
    let Some(Edn::Str(key)) = data.get_kw("key") else { panic!("no :key in {data}") };
    assert!(!key.is_empty(), "{data}");
    assert!(!err.is_client_error());
}

#[test]
fn corrupt_stored_bytes_are_a_fault_that_names_where() {
    let store = FlakyStore::default();
    let config =
        Config { schema_flexibility: datahike::SchemaFlexibility::Read, ..Config::with_store(Arc::new(store.clone())) };
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    for i in 0..20 {
        transact(&conn, &format!("[{{:n {i}}}]"));
    }
    conn.flush().unwrap();
    conn.release().unwrap();
    for (key, bytes) in store.map.lock().unwrap().iter_mut() {
        if key.starts_with("nodes/") {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x55;
        }
    }
    let err = datahike::connect(&config)
        .and_then(|conn| IndexOrder::ALL.iter().try_for_each(|order| conn.db().datoms(*order, &[]).map(drop)))
        .unwrap_err();
    assert!(!err.is_client_error(), "{err}");
    let data = err.data();
    let place = match err.code() {
        "index/io" => "address",
        "store/corrupt" => "offset",
        _ => "key",
    };
    assert!(data.get_kw(place).is_some(), "{} without :{place}: {data}", err.code());
}

// ------------------------------------------------------------------ the shapes

#[test]
fn to_edn_is_the_message_then_the_data() {
    let conn = people();
    let err = tx_error(&conn, r#"[[:db/add 7 :email "alice@example.com"]]"#);
    let Edn::Map(entries) = &err.to_edn() else { panic!("to_edn is not a map") };
    assert_eq!(entries[0], (Edn::kw("message"), Edn::Str(err.to_string().into())));
    assert_eq!(Edn::Map(entries[1..].to_vec()), err.data());
    // The message is what Datahike says, as before.
    assert!(err.to_string().starts_with("Cannot add #datahike/Datom [7 :email \"alice@example.com\""), "{err}");
    // Printed and read back, the body is the same value.
    assert_eq!(read_str(&err.to_edn().to_string()).unwrap(), err.to_edn());
}
