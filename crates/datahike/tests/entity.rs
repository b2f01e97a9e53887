//! The Entity API against Datahike's `entity_test.cljc`: lazy attribute reads, card-many sets,
//! refs to entities, reverse attributes, components, `touch`, equality, ids that name nothing.

mod common;

use common::*;
use datahike::edn::pr_str;
use datahike::{entity, Config, Db, Edn, Entity, EntityValue, Keyword, Value};

const SCHEMA: &str = r#"[
 {:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
 {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
 {:db/ident :email :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
 {:db/ident :aka :db/valueType :db.type/string :db/cardinality :db.cardinality/many}
 {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
 {:db/ident :father :db/valueType :db.type/ref :db/cardinality :db.cardinality/one}
 {:db/ident :part :db/valueType :db.type/ref :db/cardinality :db.cardinality/many :db/isComponent true}
 {:db/ident :spec :db/valueType :db.type/ref :db/cardinality :db.cardinality/one :db/isComponent true}]"#;

const DATA: &str = r#"[
 {:db/id -1 :name "Ivan" :age 19 :email "ivan@x" :aka ["X" "Y"] :friend [-2 -3]}
 {:db/id -2 :name "Petr" :age 37 :father -1}
 {:db/id -3 :name "Oleg" :spec {:name "engine" :part [{:name "piston"} {:name "valve"}]}}]"#;

struct Fixture {
    db: Db,
    ivan: i64,
    petr: i64,
    oleg: i64,
}

fn fixture_on(conn: &datahike::Conn) -> Fixture {
    transact(conn, SCHEMA);
    let report = transact(conn, DATA);
    let id = |t: i64| report.tempid(&Edn::Int(t)).expect("tempid");
    Fixture { db: conn.db(), ivan: id(-1), petr: id(-2), oleg: id(-3) }
}

fn fixture() -> Fixture {
    fixture_on(&mem_db(":schema-flexibility :write :keep-history? false"))
}

fn ent(db: &Db, eid: &str) -> Entity {
    entity(db, &edn(eid)).unwrap().unwrap_or_else(|| panic!("no entity for {eid}"))
}

fn get(e: &Entity, attr: &str) -> Option<EntityValue> {
    e.get(Keyword::new(attr)).unwrap()
}

fn get_edn(e: &Entity, attr: &str) -> String {
    get(e, attr).map_or("nil".to_string(), |v| pr_str(&v.to_edn()))
}

#[test]
fn lazy_lookup_of_attributes() {
    let f = fixture();
    let ivan = ent(&f.db, &f.ivan.to_string());
    assert_eq!(get(&ivan, "name"), Some(EntityValue::Value(Value::str("Ivan"))));
    assert_eq!(get(&ivan, "age").and_then(|v| v.as_value().cloned()), Some(Value::Long(19)));
    assert_eq!(get(&ivan, "db/id"), Some(EntityValue::Value(Value::Long(f.ivan))));
    assert_eq!(ivan.db_id(), f.ivan);
    assert_eq!(get(&ivan, "missing"), None);
    assert!(ivan.contains(Keyword::new("aka")).unwrap());
    assert!(!ivan.contains(Keyword::new("father")).unwrap());
    // Card-many values are sets.
    assert_eq!(get_edn(&ivan, "aka"), r#"#{"X" "Y"}"#);
    assert_eq!(get(&ivan, "aka").unwrap().to_edn(), edn(r#"#{"Y" "X"}"#));
}

#[test]
fn refs_navigate_to_entities() {
    let f = fixture();
    let petr = ent(&f.db, &f.petr.to_string());
    let father = get(&petr, "father").unwrap();
    let father = father.as_entity().unwrap();
    assert_eq!(father, &ent(&f.db, &f.ivan.to_string()));
    assert_eq!(get(father, "name"), Some(EntityValue::Value(Value::str("Ivan"))));
    assert_eq!(get_edn(&petr, "father"), format!("{{:db/id {}}}", f.ivan));
    // Card-many refs are sets of entities.
    let ivan = ent(&f.db, &f.ivan.to_string());
    let friends = get(&ivan, "friend").unwrap();
    let names: Vec<String> =
        friends.as_set().unwrap().iter().map(|x| get_edn(x.as_entity().unwrap(), "name")).collect();
    assert_eq!(names, [r#""Petr""#, r#""Oleg""#]);
    assert_eq!(friends.to_edn(), edn(&format!("#{{{{:db/id {}}} {{:db/id {}}}}}", f.petr, f.oleg)));
}

#[test]
fn reverse_attributes() {
    let f = fixture();
    let ivan = ent(&f.db, &f.ivan.to_string());
    // Non-component: a set of entities.
    assert_eq!(get_edn(&ivan, "_father"), format!("#{{{{:db/id {}}}}}", f.petr));
    let petr = ent(&f.db, &f.petr.to_string());
    assert_eq!(get_edn(&petr, "_friend"), format!("#{{{{:db/id {}}}}}", f.ivan));
    assert_eq!(get(&petr, "_father"), None);
    // Component: the single owning entity.
    let oleg = ent(&f.db, &f.oleg.to_string());
    let engine = get(&oleg, "spec").unwrap().as_entity().unwrap().clone();
    assert_eq!(get(&engine, "_spec"), Some(EntityValue::Entity(oleg.clone())));
    let parts = get(&engine, "part").unwrap();
    for part in parts.as_set().unwrap() {
        assert_eq!(get(part.as_entity().unwrap(), "_part"), Some(EntityValue::Entity(engine.clone())));
    }
}

#[test]
fn touch_gives_every_attribute_with_components_touched() {
    let f = fixture();
    let ivan = ent(&f.db, &f.ivan.to_string());
    assert_eq!(
        pr_str(&ivan.touch().unwrap()),
        format!(
            r#"{{:db/id {}, :age 19, :aka #{{"X" "Y"}}, :email "ivan@x", :friend #{{{{:db/id {}}} {{:db/id {}}}}}, :name "Ivan"}}"#,
            f.ivan, f.petr, f.oleg
        )
    );
    let keys: Vec<&str> = ivan.keys().unwrap().iter().map(|k| k.as_str()).collect();
    assert_eq!(keys, ["age", "aka", "email", "friend", "name"]);
    let oleg = ent(&f.db, &f.oleg.to_string());
    let touched = oleg.touch().unwrap();
    let spec = touched.get_kw("spec").unwrap();
    assert_eq!(spec.get_kw("name"), Some(&Edn::str("engine")));
    let parts = spec.get_kw("part").unwrap();
    let Edn::Set(parts) = parts else { panic!("parts should be a set: {parts}") };
    let mut names: Vec<String> = parts.iter().map(|p| pr_str(p.get_kw("name").unwrap())).collect();
    names.sort();
    assert_eq!(names, [r#""piston""#, r#""valve""#]);
    // An untouched entity prints as Datahike prints it.
    assert_eq!(pr_str(&oleg.to_edn()), format!("{{:db/id {}}}", f.oleg));
}

#[test]
fn component_cycles_stop() {
    let f = fixture();
    let oleg = ent(&f.db, &f.oleg.to_string());
    let engine = get(&oleg, "spec").unwrap().as_entity().unwrap().db_id();
    let db = with(&f.db, &format!("[[:db/add {engine} :spec {}]]", f.oleg)).db_after;
    let touched = ent(&db, &f.oleg.to_string()).touch().unwrap();
    let inner = touched.get_kw("spec").and_then(|s| s.get_kw("spec")).unwrap();
    assert_eq!(inner, &edn(&format!("{{:db/id {}}}", f.oleg)));
}

#[test]
fn ids_idents_and_lookup_refs() {
    let f = fixture();
    let by_email = ent(&f.db, r#"[:email "ivan@x"]"#);
    assert_eq!(by_email.db_id(), f.ivan);
    assert_eq!(entity(&f.db, &edn(r#"[:email "nobody"]"#)).unwrap(), None);
    assert_eq!(entity(&f.db, &edn(":nothing")).unwrap(), None);
    assert_eq!(entity(&f.db, &edn(r#""ivan""#)).unwrap(), None);
    let name_attr = ent(&f.db, ":name");
    assert_eq!(get_edn(&name_attr, "db/ident"), ":name");
    // A number is an entity even without datoms, touching to just its id.
    let empty = ent(&f.db, "4242");
    assert_eq!(pr_str(&empty.touch().unwrap()), "{:db/id 4242}");
    assert!(empty.keys().unwrap().is_empty());
    // Errors.
    assert_eq!(entity(&f.db, &edn(r#"[:name "Ivan"]"#)).unwrap_err().code(), "lookup-ref/unique");
    assert_eq!(entity(&f.db, &edn("[:email]")).unwrap_err().code(), "lookup-ref/syntax");
}

#[test]
fn equality_is_by_id_and_database() {
    let f = fixture();
    let a = ent(&f.db, &f.ivan.to_string());
    let b = ent(&f.db, r#"[:email "ivan@x"]"#);
    assert_eq!(a, b);
    assert_ne!(a, ent(&f.db, &f.petr.to_string()));
    let later = with(&f.db, "[[:db/add 4242 :name \"x\"]]").db_after;
    assert_ne!(a, ent(&later, &f.ivan.to_string()));
    // Entities read the database value they came from.
    assert_eq!(get_edn(&ent(&later, "4242"), "name"), r#""x""#);
    assert_eq!(get(&ent(&f.db, "4242"), "name"), None);
}

#[test]
fn file_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(&format!(
        "{{:store {{:backend :file :path {:?}}} :keep-history? false}}",
        dir.path().join("db").display().to_string()
    ))
    .unwrap();
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    let f = fixture_on(&conn);
    conn.release().unwrap();
    let conn = datahike::connect(&config).unwrap();
    let ivan = ent(&conn.db(), r#"[:email "ivan@x"]"#);
    assert_eq!(ivan.db_id(), f.ivan);
    assert_eq!(get_edn(&ivan, "aka"), r#"#{"X" "Y"}"#);
    assert_eq!(ivan.touch().unwrap(), ent(&f.db, &f.ivan.to_string()).touch().unwrap());
    conn.release().unwrap();
}
