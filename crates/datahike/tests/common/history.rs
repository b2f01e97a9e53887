//! A database with history in every shape export and import must carry (overwrites,
//! retractions, a retracted entity, metadata, an explicit instant, a purge, every value type),
//! and a fingerprint of all of it to compare two databases by.

use super::{edn, transact};
use datahike::{Conn, Db, IndexOrder};

pub const SCHEMA: &str = r#"[
  {:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
  {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
  {:db/ident :score :db/valueType :db.type/double :db/cardinality :db.cardinality/one}
  {:db/ident :ratio :db/valueType :db.type/float :db/cardinality :db.cardinality/one}
  {:db/ident :big :db/valueType :db.type/bigint :db/cardinality :db.cardinality/one}
  {:db/ident :dec :db/valueType :db.type/bigdec :db/cardinality :db.cardinality/one}
  {:db/ident :born :db/valueType :db.type/instant :db/cardinality :db.cardinality/one}
  {:db/ident :uid :db/valueType :db.type/uuid :db/cardinality :db.cardinality/one}
  {:db/ident :kw :db/valueType :db.type/keyword :db/cardinality :db.cardinality/one}
  {:db/ident :sym :db/valueType :db.type/symbol :db/cardinality :db.cardinality/one}
  {:db/ident :ok :db/valueType :db.type/boolean :db/cardinality :db.cardinality/one}
  {:db/ident :blob :db/valueType :db.type/bytes :db/cardinality :db.cardinality/one}
  {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
  {:db/ident :tags :db/valueType :db.type/string :db/cardinality :db.cardinality/many}
  {:db/ident :pair :db/valueType :db.type/tuple :db/tupleTypes [:db.type/long :db.type/string] :db/cardinality :db.cardinality/one}
  {:db/ident :source :db/valueType :db.type/string :db/cardinality :db.cardinality/one}]"#;

/// A database with history: several transactions, card-one overwrites, retractions, a
/// retracted entity, transaction metadata, an explicit instant and a purge.
pub fn fill(conn: &Conn) {
    transact(conn, SCHEMA);
    let alice = r#"{:name "Alice" :age 20 :score 1.5 :ratio 0.25 :big 123456789012345678901234567890N
        :dec 1.50M :born #inst "1999-01-02T03:04:05.678-00:00" :uid #uuid "11111111-2222-3333-4444-555555555555"
        :kw :a/b :sym foo/bar :ok true :blob #bytes [1 2 -1 0] :tags ["a" "b"] :pair [1 "x"]}"#;
    conn.transact_with_meta(
        &edn(&format!("[{alice} {{:name \"Bob\" :age 30 :score 0.0 :ok false}}]")),
        Some(&edn(r#"{:source "import"}"#)),
    )
    .expect("tx");
    let (a, b, c) = (r#"[:name "Alice"]"#, r#"[:name "Bob"]"#, r#"[:name "Carl"]"#);
    transact(
        conn,
        &format!(
            r#"[[:db/add {a} :age 21] [:db/retract {a} :tags "b"] [:db/add {a} :friend {b}] {{:name "Carl" :score -2.0E10}}]"#
        ),
    );
    transact(
        conn,
        &format!(
            r#"[[:db/add {b} :age 31] [:db/add {b} :score 0.1] [:db/add "datomic.tx" :db/txInstant #inst "2030-01-01"]]"#
        ),
    );
    transact(conn, &format!(r#"[[:db/retractEntity {c}] [:db/add {a} :tags "c"] [:db/add {a} :dec 2.500M]]"#));
    transact(conn, &format!(r#"[[:db/retract {a} :tags "a"] [:db/add {a} :tags "a"]]"#));
    transact(conn, &format!(r#"[{{:name "Dora" :tags ["x"]}} [:db/add {b} :big -1N]]"#));
    transact(conn, &format!(r#"[[:db/purge {b} :score 0.1]]"#));
    transact(conn, &format!(r#"[[:db/add {a} :age 22] [:db/add {a} :ratio 0.5] [:db/retract {b} :ok false]]"#));
}

/// Every datom of every index, current and history, with values' exact types.
pub fn fingerprint(db: &Db) -> Vec<String> {
    let mut out = Vec::new();
    for order in [IndexOrder::Eavt, IndexOrder::Aevt, IndexOrder::Avet] {
        out.push(format!("{order:?} current {:?}", db.datoms(order, &[]).expect("datoms")));
        out.push(format!("{order:?} history {:?}", db.history().expect("history").datoms(order, &[]).expect("datoms")));
    }
    out.push(format!("max-eid {} max-tx {} instant {}", db.max_eid(), db.max_tx(), db.last_tx_instant()));
    out.push(format!("schema {}", datahike::edn::pr_str(&db.schema_edn())));
    out
}

pub fn assert_identical(a: &Db, b: &Db) {
    let (fa, fb) = (fingerprint(a), fingerprint(b));
    for (x, y) in fa.iter().zip(&fb) {
        assert_eq!(x, y);
    }
    assert_eq!(fa.len(), fb.len());
}
