//! Component attributes (`:db/isComponent`): cascading retraction through retractEntity and
//! retractAttribute, and plain retraction of the reference only, as in Datahike's
//! `components_test.cljc` and `transact_test.cljc` test-retract-component.

mod common;

use common::*;
use datahike::{Db, Edn, IndexOrder};

const HOUSES: &str = r#"[{:db/ident :name :db/unique :db.unique/identity}
                         {:db/ident :room :db/valueType :db.type/ref :db/cardinality :db.cardinality/many :db/isComponent true}
                         {:db/ident :part :db/valueType :db.type/ref :db/isComponent true}
                         {:db/ident :ref :db/valueType :db.type/ref}]"#;

fn names(db: &Db) -> Vec<String> {
    let mut out: Vec<String> =
        db.datoms(IndexOrder::Aevt, &[Edn::kw("name")]).unwrap().iter().map(|d| d.v.to_edn().to_string()).collect();
    out.sort();
    out
}

fn houses() -> Db {
    let conn = read_db();
    transact(&conn, HOUSES);
    transact(
        &conn,
        "[{:name :house1 :room [{:name :kitchen :part {:name :sink}} {:name :bath}]}
          {:name :house2 :room [{:name :office} {:name :attic}]}
          {:name :visitor :ref [:name :kitchen]}]",
    );
    conn.db()
}

#[test]
fn retract_entity_cascades_into_components_recursively() {
    let db = houses();
    for op in [":db/retractEntity", ":db.fn/retractEntity"] {
        let r = with(&db, &format!("[[{op} [:name :house1]]]"));
        assert_eq!(names(&r.db_after), vec![":attic", ":house2", ":office", ":visitor"], "{op}");
        // The reference to a cascaded component from another entity is retracted too.
        let visitor = entid(&r.db_after, "[:name :visitor]").unwrap();
        assert_eq!(entity(&r.db_after, visitor), vec![format!("[{visitor} :name :visitor]")]);
        assert!(r.tx_data.iter().filter(|d| d.e < datahike::datom::TX0).all(|d| !d.added()));
    }
}

#[test]
fn retract_attribute_cascades_but_retract_does_not() {
    let db = houses();
    let house1 = entid(&db, "[:name :house1]").unwrap();
    let r = with(&db, "[[:db.fn/retractAttribute [:name :house1] :room]]");
    assert_eq!(entity(&r.db_after, house1), vec![format!("[{house1} :name :house1]")]);
    assert_eq!(names(&r.db_after), vec![":attic", ":house1", ":house2", ":office", ":visitor"]);

    let kitchen = entid(&db, "[:name :kitchen]").unwrap();
    let bath = entid(&db, "[:name :bath]").unwrap();
    let r = with(&db, "[[:db/retract [:name :house1] :room [:name :kitchen]]]");
    assert_eq!(
        entity(&r.db_after, house1),
        vec![format!("[{house1} :name :house1]"), format!("[{house1} :room {bath}]")]
    );
    assert!(entid(&r.db_after, "[:name :kitchen]").is_some());
    assert_eq!(names(&r.db_after).len(), 8);
    let r = with(&db, "[[:db/retract [:name :house1] :room]]");
    assert_eq!(entity(&r.db_after, house1), vec![format!("[{house1} :name :house1]")]);
    assert_eq!(names(&r.db_after).len(), 8);
    assert!(!entity(&r.db_after, kitchen).is_empty());
}

#[test]
fn nested_component_maps_get_their_own_ids() {
    let db = houses();
    // Schema entities 1..4, then house1 5, kitchen 6, sink 7, bath 8, house2 9, office 10,
    // attic 11, visitor 12.
    for (name, e) in [
        (":house1", 5),
        (":kitchen", 6),
        (":sink", 7),
        (":bath", 8),
        (":house2", 9),
        (":office", 10),
        (":attic", 11),
        (":visitor", 12),
    ] {
        assert_eq!(entid(&db, &format!("[:name {name}]")), Some(e), "{name}");
    }
    assert_entities(&db, &[5, 6], "[[5 :name :house1] [5 :room 6] [5 :room 8] [6 :name :kitchen] [6 :part 7]]");
}
