//! `:attribute-refs? true`: attributes and schema enums are entities with Datahike's ids, and
//! every way a user sees a datom shows those ids (tx-data, `datoms`, query bindings), on both
//! backends, across reopening.

mod common;

use common::{edn, fresh_store, Backend, BACKENDS, TX1};
use datahike::datom::TX0;
use datahike::edn::pr_str;
use datahike::{q, Config, Conn, Db, Edn, IndexOrder, QueryInput};

const SCHEMA: &str = "[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one
                        :db/unique :db.unique/identity}
                       {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
                       {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one
                        :db/index true}]";

struct Fixture {
    config: Config,
    conn: Conn,
    _dir: Option<tempfile::TempDir>,
}

fn fixture(backend: Backend, extra: &str) -> Fixture {
    let (store, dir) = fresh_store(backend, "attr-refs");
    let config = Config::parse(&format!("{{:store {store} :attribute-refs? true {extra}}}")).unwrap();
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    Fixture { config, conn, _dir: dir }
}

fn printed(db: &Db, datoms: &[datahike::Datom]) -> Vec<String> {
    datoms.iter().map(|d| pr_str(&db.datom_edn(d))).collect()
}

fn query(db: &Db, text: &str, extra: &[Edn]) -> String {
    let mut inputs = vec![QueryInput::Db(db.clone())];
    inputs.extend(extra.iter().cloned().map(QueryInput::Edn));
    pr_str(&q(&edn(text), &inputs).unwrap_or_else(|e| panic!("{text}: {e}")))
}

#[test]
fn a_new_database_holds_the_system_entities_with_datahikes_ids() {
    for backend in BACKENDS {
        let f = fixture(backend, "");
        let db = f.conn.db();
        assert_eq!(db.max_eid(), 54);
        assert_eq!(db.max_tx(), TX0);
        let eavt = db.datoms(IndexOrder::Eavt, &[]).unwrap();
        let shown = printed(&db, &eavt);
        assert_eq!(shown.iter().filter(|d| d.starts_with('[') && d.contains(" 1 :")).count(), 54, "{shown:?}");
        assert!(shown.contains(&format!("[1 1 :db/ident {TX0} true]")), "{shown:?}");
        // :db/ident is a keyword attribute (23), cardinality one (11), unique value (33).
        assert!(shown.contains(&format!("[1 2 23 {TX0} true]")));
        assert!(shown.contains(&format!("[1 3 11 {TX0} true]")));
        assert!(shown.contains(&format!("[1 6 33 {TX0} true]")));
        assert!(shown.contains(&format!("[26 1 :db.type/string {TX0} true]")));
        assert!(shown.contains(&format!("[{TX0} 9 #inst \"1970-01-01T00:00:00.000-00:00\" {TX0} true]")));
        // The same set in every index, and AEVT in attribute-id order.
        let aevt = db.datoms(IndexOrder::Aevt, &[]).unwrap();
        let mut a = printed(&db, &aevt);
        a.sort();
        let mut e = shown.clone();
        e.sort();
        assert_eq!(a, e);
        let ids: Vec<i64> = aevt.iter().map(|d| db.ident_id(d.a).unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] <= w[1]), "AEVT by attribute id: {ids:?}");
        // A query sees them too.
        assert_eq!(query(&db, "[:find ?e . :where [?e :db/ident :db.type/string]]", &[]), "26");
        assert!(db.schema_edn() == edn("{}"), "system attributes are not user schema: {}", db.schema_edn());
    }
}

#[test]
fn transactions_allocate_user_ids_after_the_system_entities_and_report_attribute_ids() {
    for backend in BACKENDS {
        let f = fixture(backend, "");
        let report = f.conn.transact(&edn(SCHEMA)).unwrap();
        let tx = TX1;
        let data = printed(&report.db_after, &report.tx_data);
        for expected in [
            format!("[55 1 :name {tx} true]"),
            format!("[55 2 26 {tx} true]"),
            format!("[55 3 11 {tx} true]"),
            format!("[55 6 32 {tx} true]"),
            format!("[56 1 :friend {tx} true]"),
            format!("[56 2 25 {tx} true]"),
            format!("[56 3 10 {tx} true]"),
            format!("[57 5 true {tx} true]"),
        ] {
            assert!(data.contains(&expected), "{expected} missing from {data:?}");
        }
        assert!(data.iter().any(|d| d.starts_with(&format!("[{tx} 9 #inst"))), "{data:?}");
        // Entities count on from the attributes; maps, tempids and attribute ids all work.
        let report = f
            .conn
            .transact(&edn(r#"[{:name "Ivan" :age 30 :friend [{:name "Petr" :age 20}]} [:db/add "o" 55 "Oleg"]]"#))
            .unwrap();
        assert_eq!(report.tempid(&edn(r#""o""#)), Some(60));
        let data = printed(&report.db_after, &report.tx_data);
        let tx = TX1 + 1;
        for expected in [
            format!("[58 55 \"Ivan\" {tx} true]"),
            format!("[58 57 30 {tx} true]"),
            format!("[59 55 \"Petr\" {tx} true]"),
            format!("[58 56 59 {tx} true]"),
            format!("[60 55 \"Oleg\" {tx} true]"),
        ] {
            assert!(data.contains(&expected), "{expected} missing from {data:?}");
        }
        // The transaction report as dthk prints it shows ids too.
        let text = pr_str(&report.to_edn());
        assert!(text.contains(&format!("#datahike/Datom [58 55 \"Ivan\" {tx} true]")), "{text}");
        // Upsert on the identity attribute, with the attribute given by id.
        let report = f.conn.transact(&edn(r#"[{55 "Ivan" 57 31}]"#)).unwrap();
        let data = printed(&report.db_after, &report.tx_data);
        assert!(data.contains(&format!("[58 57 31 {} true]", TX1 + 2)), "{data:?}");
        assert!(data.contains(&format!("[58 57 30 {} false]", TX1 + 2)), "{data:?}");
        // A lookup ref may name its attribute by id.
        let report = f.conn.transact(&edn(r#"[[:db/retract [55 "Oleg"] 55 "Oleg"]]"#)).unwrap();
        assert_eq!(printed(&report.db_after, &report.tx_data)[1], format!("[60 55 \"Oleg\" {} false]", TX1 + 3));
    }
}

#[test]
fn queries_bind_attributes_and_schema_enums_as_ids() {
    let f = fixture(Backend::Memory, "");
    f.conn.transact(&edn(SCHEMA)).unwrap();
    f.conn.transact(&edn(r#"[{:name "Ivan" :age 30 :friend [{:name "Petr" :age 20}]}]"#)).unwrap();
    let db = f.conn.db();
    let attrs = q(&edn(r#"[:find [?a ...] :where [?e :name "Ivan"] [?e ?a]]"#), &[QueryInput::Db(db.clone())]).unwrap();
    let mut attrs: Vec<i64> =
        attrs.as_seq().unwrap().iter().map(|x| if let Edn::Int(i) = x { *i } else { panic!("{x}") }).collect();
    attrs.sort();
    assert_eq!(attrs, [55, 56, 57]);
    assert_eq!(
        query(
            &db,
            r#"[:find ?ident ?t ?type :where [_ ?a "Ivan"] [?a :db/ident ?ident] [?a :db/valueType ?t] [?t :db/ident ?type]]"#,
            &[]
        ),
        "#{[:name 26 :db.type/string]}"
    );
    // An attribute constant or input given as an id or as an ident.
    assert_eq!(query(&db, "[:find ?v . :where [?e 55 ?v] [?e :age 20]]", &[]), r#""Petr""#);
    assert_eq!(query(&db, "[:find ?v . :in $ ?a :where [?e ?a ?v] [?e :age 20]]", &[edn("55")]), r#""Petr""#);
    assert_eq!(query(&db, "[:find ?v . :in $ ?a :where [?e ?a ?v] [?e :age 20]]", &[edn(":name")]), r#""Petr""#);
    // A bound attribute keeps the value it was bound to.
    assert_eq!(query(&db, "[:find ?a . :in $ ?a :where [?e ?a \"Petr\"]]", &[edn(":name")]), ":name");
    // Schema enum values match as ids or as idents.
    assert_eq!(query(&db, "[:find [?i ...] :where [?a :db/valueType 25] [?a :db/ident ?i]]", &[]), "[:friend]");
    // The system's :db.attr/preds is cardinality many too.
    assert_eq!(query(&db, "[:find (count ?a) . :where [?a :db/cardinality :db.cardinality/many]]", &[]), "2");
    // A join from an attribute id to the datoms using it.
    assert_eq!(query(&db, "[:find (count ?e) . :where [?a :db/ident :age] [?e ?a _]]", &[]), "2");
    // Built-ins that take an attribute take its id too; get-some answers the id.
    assert_eq!(query(&db, r#"[:find ?a . :where [?e :name "Petr"] [(get-else $ ?e 57 0) ?a]]"#, &[]), "20");
    assert_eq!(query(&db, r#"[:find ?x . :where [?e :name "Petr"] [(get-some $ ?e :friend 57) ?x]]"#, &[]), "[57 20]");
    assert_eq!(query(&db, r#"[:find ?n . :where [?e :name ?n] [(missing? $ ?e 56)]]"#, &[]), r#""Petr""#);
    // Pull and entities still speak idents.
    let ivan = db.entid(&edn(r#"[:name "Ivan"]"#)).unwrap().unwrap();
    assert_eq!(ivan, 58);
    assert_eq!(
        query(&db, r#"[:find (pull ?e [:name {:friend [:name]}]) . :where [?e :name "Ivan"]]"#, &[]),
        r#"{:name "Ivan", :friend [{:name "Petr"}]}"#
    );
}

#[test]
fn datoms_take_attribute_ids_and_answer_in_id_order() {
    let f = fixture(Backend::Memory, "");
    // Idents chosen so that ident order and id order differ: :z is 55, :a is 56.
    f.conn
        .transact(&edn("[{:db/ident :z :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
              {:db/ident :a :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}]"))
        .unwrap();
    f.conn.transact(&edn("[{:db/id 100 :z 1 :a 2} {:db/id 101 :z 3 :a 4}]")).unwrap();
    let db = f.conn.db();
    let tx = TX1 + 1;
    let show = |d: Vec<datahike::Datom>| printed(&db, &d).join(" ");
    assert_eq!(
        show(db.datoms(IndexOrder::Eavt, &[edn("100")]).unwrap()),
        format!("[100 55 1 {tx} true] [100 56 2 {tx} true]")
    );
    assert_eq!(
        show(db.datoms(IndexOrder::Aevt, &[edn("56")]).unwrap()),
        format!("[100 56 2 {tx} true] [101 56 4 {tx} true]")
    );
    assert_eq!(show(db.datoms(IndexOrder::Avet, &[edn("55"), edn("3")]).unwrap()), format!("[101 55 3 {tx} true]"));
    assert_eq!(show(db.datoms(IndexOrder::Aevt, &[edn(":z"), edn("101")]).unwrap()), format!("[101 55 3 {tx} true]"));
    // seek-datoms from attribute 56 (:a) runs to the end in id order: :a's datoms, not :z's.
    let seek = db.seek_datoms(IndexOrder::Aevt, &[edn("56")]).unwrap();
    assert_eq!(show(seek), format!("[100 56 2 {tx} true] [101 56 4 {tx} true]"));
    // rseek-datoms from attribute 55 back to the start: :z's datoms, then the system ones.
    let rseek = db.rseek_datoms(IndexOrder::Aevt, &[edn("55")]).unwrap();
    let shown = printed(&db, &rseek);
    assert_eq!(shown[0], format!("[101 55 3 {tx} true]"));
    assert_eq!(shown[1], format!("[100 55 1 {tx} true]"));
    assert!(shown[2..].iter().all(|d| !d.contains(" 56 ")), "{shown:?}");
    // In EAVT the entity leads either way: seek from entity 101 on, rseek from 100 back.
    let shown = printed(&db, &db.seek_datoms(IndexOrder::Eavt, &[edn("101")]).unwrap());
    assert_eq!(shown[..2], [format!("[101 55 3 {tx} true]"), format!("[101 56 4 {tx} true]")]);
    let shown = printed(&db, &db.rseek_datoms(IndexOrder::Eavt, &[edn("100")]).unwrap());
    assert_eq!(shown[..2], [format!("[100 56 2 {tx} true]"), format!("[100 55 1 {tx} true]")]);
    assert!(shown[2..].iter().all(|d| !d.starts_with("[100 ") && !d.starts_with("[101 ")), "{shown:?}");
    // index-range by ident.
    assert_eq!(
        show(db.index_range(datahike::Keyword::new("a"), &edn("3"), &Edn::Nil).unwrap()),
        format!("[101 56 4 {tx} true]")
    );
    // An id that names no attribute is an error naming it.
    let err = db.datoms(IndexOrder::Aevt, &[edn("12345")]).unwrap_err().to_string();
    assert!(err.contains("12345"), "{err}");
}

#[test]
fn system_entities_cannot_be_changed_and_read_flexibility_is_refused() {
    let f = fixture(Backend::Memory, "");
    let before = f.conn.db();
    for tx in ["[[:db/add 26 :db/doc \"mine\"]]", "[[:db/retractEntity 1]]", "[{:db/id 9 :db/noHistory false}]"] {
        let err = f.conn.transact(&edn(tx)).unwrap_err();
        assert_eq!(err.code(), "transact/schema", "{tx}: {err}");
        assert!(err.to_string().contains("System schema entity"), "{err}");
    }
    let after = f.conn.db();
    assert_eq!(after.max_tx(), before.max_tx());
    assert_eq!(after.datoms(IndexOrder::Eavt, &[]).unwrap().len(), before.datoms(IndexOrder::Eavt, &[]).unwrap().len());
    let err = Config::parse("{:store {:backend :memory} :attribute-refs? true :schema-flexibility :read}")
        .unwrap_err()
        .to_string();
    assert!(err.contains(":attribute-refs?") && err.contains(":read"), "{err}");
}

#[test]
fn reopening_keeps_the_ids_and_history_sees_the_system_entities() {
    let f = fixture(Backend::File, ":keep-history? true");
    f.conn.transact(&edn(SCHEMA)).unwrap();
    f.conn.transact(&edn(r#"[{:name "Ivan" :age 30}]"#)).unwrap();
    f.conn.transact(&edn(r#"[{:name "Ivan" :age 31}]"#)).unwrap();
    f.conn.release().unwrap();
    let conn = datahike::connect(&f.config).unwrap();
    let db = conn.db();
    assert!(db.attr_refs());
    assert_eq!(db.ident_id(datahike::Keyword::new("age")), Some(57));
    let report = conn.transact(&edn(r#"[{:name "Petr"}]"#)).unwrap();
    assert_eq!(printed(&report.db_after, &report.tx_data)[1], format!("[59 55 \"Petr\" {} true]", TX1 + 3));
    let history = report.db_after.history().unwrap();
    assert_eq!(
        query(&history, "[:find ?v ?added :where [58 57 ?v _ ?added]]", &[]),
        "#{[30 true] [30 false] [31 true]}"
    );
    let as_of = report.db_after.as_of(datahike::TimePoint::Tx(TX1 + 1)).unwrap();
    assert_eq!(query(&as_of, "[:find ?a . :where [58 ?a 30]]", &[]), "57");
    assert_eq!(query(&as_of, "[:find ?e . :where [?e :db/ident :db.type/long]]", &[]), "24");
    conn.release().unwrap();
}

#[test]
fn load_entities_maps_exported_attribute_ids() {
    // The target's own transaction comes first: loaded transactions keep their instants,
    // which may not be earlier than the target's last.
    let dst = fixture(Backend::Memory, "");
    dst.conn
        .transact(&edn("[{:db/ident :other :db/valueType :db.type/long :db/cardinality :db.cardinality/one}]"))
        .unwrap();
    let src = fixture(Backend::Memory, "");
    src.conn.transact(&edn(SCHEMA)).unwrap();
    src.conn.transact(&edn(r#"[{:name "Ivan" :age 30 :friend [{:name "Petr"}]}]"#)).unwrap();
    let db = src.conn.db();
    let export = Edn::Vector(db.datoms(IndexOrder::Eavt, &[]).unwrap().iter().map(|d| db.datom_edn(d)).collect());
    // Into another attribute-refs database: the system entities are skipped, ids remapped.
    dst.conn.load_entities(&export).unwrap();
    let db = dst.conn.db();
    assert_eq!(db.ident_id(datahike::Keyword::new("name")), Some(56));
    assert_eq!(
        query(&db, r#"[:find ?n ?a ?fn :where [?e :name ?n] [?e :age ?a] [?e :friend ?f] [?f :name ?fn]]"#, &[]),
        r#"#{["Ivan" 30 "Petr"]}"#
    );
    assert_eq!(query(&db, "[:find ?t . :where [?a :db/ident :age] [?a :db/valueType ?t]]", &[]), "24");
    // Into a database without attribute references: a clear error, nothing loaded.
    let (store, _dir) = fresh_store(Backend::Memory, "no-refs");
    let config = Config::parse(&format!("{{:store {store}}}")).unwrap();
    datahike::create_database(&config).unwrap();
    let plain = datahike::connect(&config).unwrap();
    let err = plain.load_entities(&export).unwrap_err().to_string();
    assert!(err.contains("attribute-refs"), "{err}");
    assert!(plain.db().datoms(IndexOrder::Eavt, &[]).unwrap().is_empty());
}

#[test]
fn an_attribute_in_use_keeps_its_ident() {
    let f = fixture(Backend::Memory, "");
    f.conn.transact(&edn(SCHEMA)).unwrap();
    f.conn.transact(&edn(r#"[{:name "Ivan"}]"#)).unwrap();
    let err = f.conn.transact(&edn("[[:db/add 55 :db/ident :full-name]]")).unwrap_err();
    assert_eq!(err.code(), "transact/schema");
    assert!(err.to_string().contains("Cannot rename :name to :full-name"), "{err}");
    // An attribute without datoms may be renamed; its id stays.
    f.conn.transact(&edn("[[:db/add 56 :db/ident :buddy]]")).unwrap();
    let db = f.conn.db();
    assert_eq!(db.ident_id(datahike::Keyword::new("buddy")), Some(56));
    assert_eq!(db.ident_id(datahike::Keyword::new("friend")), None);
}
