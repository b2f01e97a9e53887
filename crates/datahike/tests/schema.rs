//! Schema: `:write` and `:read` flexibility, value type checks, schema entities and which
//! schema changes are allowed, `schema` / `reverse-schema` and `:initial-tx`, as in
//! Datahike's `schema_test.cljc` and `check-schema-update` / `validate-schema-changes!`.

mod common;

use common::*;
use datahike::Edn;

const PEOPLE: &str = r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
                         {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
                         {:db/ident :weight :db/valueType :db.type/double :db/cardinality :db.cardinality/one}
                         {:db/ident :color :db/valueType :db.type/keyword :db/cardinality :db.cardinality/one}
                         {:db/ident :tags :db/valueType :db.type/string :db/cardinality :db.cardinality/many}
                         {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]"#;

#[test]
fn write_rejects_undeclared_attributes() {
    let conn = write_db(PEOPLE);
    let msg = transact_err(&conn, r#"[{:name "Ivan" :shoe-size 42}]"#, "transact/schema");
    assert!(msg.contains(":shoe-size") && msg.contains("not defined in current schema"), "{msg}");
    let msg = transact_err(&conn, r#"[[:db/add -1 :shoe-size 42]]"#, "transact/schema");
    assert!(msg.contains(":shoe-size"), "{msg}");
    transact_err(&conn, r#"[[:db/retract 1 :shoe-size 42]]"#, "transact/schema");
}

#[test]
fn write_rejects_values_of_the_wrong_type() {
    let conn = write_db(PEOPLE);
    for (text, bad) in [
        ("[{:age 1.5}]", "1.5"),
        ("[{:age \"1\"}]", "\"1\""),
        ("[{:weight 1}]", "1"),
        ("[{:name :ivan}]", ":ivan"),
        ("[{:color \"red\"}]", "\"red\""),
        ("[{:tags [\"a\" 1]}]", "1"),
        ("[[:db/add -1 :age true]]", "true"),
    ] {
        let msg = transact_err(&conn, text, "transact/schema");
        assert!(msg.contains("Bad entity value") && msg.contains(bad), "{text}: {msg}");
    }
    let r = transact(&conn, r#"[{:name "Ivan" :age 1 :weight 1.5 :color :red :tags ["a" "b"]}]"#);
    assert_eq!(r.db_after.max_eid(), 7);
    assert_entities(
        &r.db_after,
        &[7],
        r#"[[7 :name "Ivan"] [7 :age 1] [7 :weight 1.5] [7 :color :red] [7 :tags "a"] [7 :tags "b"]]"#,
    );
}

#[test]
fn nil_values_are_rejected() {
    for conn in [write_db(PEOPLE), read_db()] {
        let msg = transact_err(&conn, "[{:db/id 100 :age nil}]", "transact/syntax");
        assert!(msg.contains("Cannot store nil"), "{msg}");
        transact_err(&conn, "[[:db/add 100 :age nil]]", "transact/syntax");
    }
}

#[test]
fn schema_entities_must_be_complete_and_outside_the_db_namespace() {
    let conn = write_db(PEOPLE);
    let msg = transact_err(&conn, "[{:db/ident :x :db/valueType :db.type/string}]", "transact/schema");
    assert!(msg.contains("Incomplete schema"), "{msg}");
    transact_err(&conn, "[{:db/ident :x :db/cardinality :db.cardinality/one}]", "transact/schema");
    let msg = transact_err(
        &conn,
        "[{:db/ident :db/foo :db/valueType :db.type/string :db/cardinality :db.cardinality/one}]",
        "transact/schema",
    );
    assert!(msg.contains("namespace 'db'"), "{msg}");
    transact_err(
        &conn,
        "[{:db/ident :x :db/valueType :db.type/nonsense :db/cardinality :db.cardinality/one}]",
        "transact/schema",
    );
    transact_err(&conn, "[{:db/ident :x :db/valueType :db.type/long :db/cardinality :one}]", "transact/schema");
}

#[test]
fn allowed_and_rejected_schema_changes() {
    let conn = write_db(PEOPLE);
    transact(&conn, r#"[{:name "Ivan" :age 3 :tags ["a"]}]"#);
    // Always allowed: documentation; cardinality one -> many.
    transact(&conn, r#"[{:db/id :age :db/doc "years"}]"#);
    transact(&conn, "[{:db/id :age :db/cardinality :db.cardinality/many}]");
    transact(&conn, "[[:db/add [:name \"Ivan\"] :age 4]]");
    assert_eq!(entity(&conn.db(), 7).iter().filter(|d| d.contains(":age")).count(), 2);
    assert!(conn.db().schema_edn().get_kw("age").and_then(|m| m.get_kw("db/doc")) == Some(&Edn::str("years")));

    // Unique on a card-many attribute, and card-many on a unique one.
    let msg = transact_err(&conn, "[{:db/id :tags :db/unique :db.unique/identity}]", "transact/schema");
    assert!(msg.contains(":db/unique"), "{msg}");
    transact_err(&conn, "[{:db/id :name :db/cardinality :db.cardinality/many}]", "transact/schema");
    // The value type of an attribute in use.
    let msg = transact_err(&conn, "[{:db/id :age :db/valueType :db.type/string}]", "transact/schema");
    assert!(msg.contains(":db/valueType"), "{msg}");
    // ... but of an unused attribute it may change.
    transact(&conn, "[{:db/id :color :db/valueType :db.type/string}]");
    transact(&conn, r#"[{:name "Petr" :color "red"}]"#);
    // Adding a uniqueness constraint to an unused card-one attribute is allowed.
    transact(&conn, "[{:db/id :weight :db/unique :db.unique/value}]");
    let rschema = conn.db().reverse_schema_edn();
    let unique_value = rschema.get_kw("db.unique/value").and_then(Edn::as_seq).unwrap();
    assert_eq!(unique_value, &[Edn::kw("weight")]);
}

#[test]
fn read_accepts_anything_but_honours_declared_properties() {
    let conn = read_db();
    transact(&conn, "[{:db/ident :tags :db/cardinality :db.cardinality/many}]");
    let r =
        transact(&conn, r#"[{:x 1.5 :y "s" :z :k :tags ["a" "b"]} [:db/add -1 :x 1] [:db/add -1 :x "now a string"]]"#);
    assert_entities(
        &r.db_after,
        &[2, 3],
        r#"[[2 :x 1.5] [2 :y "s"] [2 :z :k] [2 :tags "a"] [2 :tags "b"] [3 :x "now a string"]]"#,
    );
    // Datahike's validate-val checks declared value types only under :write.
    transact(&conn, "[{:db/ident :n :db/valueType :db.type/long}]");
    let r = transact(&conn, r#"[[:db/add 10 :n "x"]]"#);
    assert_eq!(entity(&r.db_after, 10), vec![r#"[10 :n "x"]"#]);
}

#[test]
fn schema_and_reverse_schema_describe_the_attributes() {
    let conn = write_db(PEOPLE);
    let schema = conn.db().schema_edn();
    let name = schema.get_kw("name").unwrap();
    assert_eq!(name.get_kw("db/ident"), Some(&Edn::kw("name")));
    assert_eq!(name.get_kw("db/valueType"), Some(&Edn::kw("db.type/string")));
    assert_eq!(name.get_kw("db/cardinality"), Some(&Edn::kw("db.cardinality/one")));
    assert_eq!(name.get_kw("db/unique"), Some(&Edn::kw("db.unique/identity")));
    assert_eq!(name.get_kw("db/id"), Some(&Edn::Int(1)));
    assert_eq!(schema.get_kw("friend").unwrap().get_kw("db/id"), Some(&Edn::Int(6)));
    assert!(schema.get_kw("nonexistent").is_none());
    if let Edn::Map(m) = &schema {
        assert_eq!(m.len(), 6);
    } else {
        panic!("schema is not a map: {schema}");
    }

    let rschema = conn.db().reverse_schema_edn();
    let set = |k: &str| -> Vec<String> {
        let mut v: Vec<String> =
            rschema.get_kw(k).and_then(Edn::as_seq).unwrap_or(&[]).iter().map(|x| x.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(set("db.unique/identity"), vec![":name"]);
    assert_eq!(set("db/unique"), vec![":name"]);
    assert_eq!(set("db.cardinality/many"), vec![":friend", ":tags"]);
    assert_eq!(set("db.type/ref"), vec![":friend"]);
    assert_eq!(set("db/ident"), vec![":age", ":color", ":friend", ":name", ":tags", ":weight"]);
    assert_eq!(set("db/isComponent"), Vec::<String>::new());
    // As in Datahike's attr->properties, unique and ref attributes count as indexed.
    assert!(set("db/index").contains(&":name".to_string()), "{rschema}");
    assert!(set("db/index").contains(&":friend".to_string()), "{rschema}");
}

#[test]
fn initial_tx_is_transacted_on_creation() {
    let conn = mem_db(
        ":schema-flexibility :write :initial-tx [{:db/ident :name :db/valueType :db.type/string \
         :db/cardinality :db.cardinality/one}]",
    );
    let db = conn.db();
    assert_eq!(db.max_tx(), TX1);
    assert_eq!(entid(&db, ":name"), Some(1));
    assert_eav(&db, "[[1 :db/ident :name] [1 :db/valueType :db.type/string] [1 :db/cardinality :db.cardinality/one]]");
    let r = transact(&conn, r#"[{:name "Ivan"}]"#);
    assert_eq!(entity(&r.db_after, 2), vec![r#"[2 :name "Ivan"]"#]);
    assert_eq!(r.db_after.max_tx(), TX1 + 1);

    // A bad :initial-tx fails the creation.
    let id = format!("txtests-bad-initial-{}", std::process::id());
    let config = datahike::Config::parse(&format!(
        "{{:store {{:backend :memory :id {id:?}}} :schema-flexibility :write :initial-tx [{{:undeclared 1}}]}}"
    ))
    .unwrap();
    let err = datahike::create_database(&config).unwrap_err();
    assert_eq!(err.code(), "transact/schema", "{err}");
}

#[test]
fn an_attribute_in_use_cannot_be_renamed_or_lose_its_ident() {
    let conn = write_db(
        "[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
          {:db/ident :spare :db/valueType :db.type/string :db/cardinality :db.cardinality/one}]",
    );
    transact(&conn, r#"[{:name "Ann"}]"#);
    let err = transact_err(&conn, "[[:db/add 1 :db/ident :full-name]]", "transact/schema");
    assert!(err.contains("Cannot rename :name to :full-name"), "{err}");
    let err = transact_err(&conn, "[{:db/id 1 :db/ident :full-name}]", "transact/schema");
    assert!(err.contains("Cannot rename :name"), "{err}");
    let err = transact_err(&conn, "[[:db/retract 1 :db/ident :name]]", "transact/schema");
    assert!(err.contains("Cannot retract the :db/ident of attribute :name"), "{err}");
    // Data only in history still pins the name.
    transact(&conn, r#"[[:db/retract 3 :name "Ann"]]"#);
    transact_err(&conn, "[[:db/add 1 :db/ident :full-name]]", "transact/schema");
    // An unused attribute may be renamed; the new name works, the old one is gone.
    transact(&conn, "[[:db/add 2 :db/ident :extra]]");
    transact(&conn, r#"[{:extra "x"}]"#);
    assert!(conn.transact(&edn(r#"[{:spare "x"}]"#)).is_err());
}
