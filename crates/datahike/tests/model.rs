//! Model-based property test: random schemas and random transactions, compared with a plain
//! set of (e, a, v) facts. All three indices must agree with the model, a rejected transaction
//! must change nothing, and reopening the file store gives back the same datoms.

use datahike::{edn::read_str, Config, Db, Edn, IndexOrder};
use proptest::prelude::*;
use std::collections::BTreeSet;

#[derive(Clone, Debug)]
struct AttrSpec {
    many: bool,
    string: bool,
    unique: bool,
    index: bool,
}

#[derive(Clone, Debug)]
enum Op {
    Add(i64, usize, i64),
    Retract(i64, usize, i64),
    RetractAttr(i64, usize),
    RetractEntity(i64),
}

fn attr_name(i: usize) -> String {
    format!("a{i}")
}

fn value_edn(spec: &AttrSpec, v: i64) -> String {
    if spec.string {
        format!("\"s{v}\"")
    } else {
        v.to_string()
    }
}

fn op_strategy(n_attrs: usize) -> impl Strategy<Value = Op> {
    // Entity ids above the schema entities (1..=3), so ops never touch attribute definitions.
    let e = 100i64..108;
    let a = 0..n_attrs;
    let v = 0i64..6;
    prop_oneof![
        6 => (e.clone(), a.clone(), v.clone()).prop_map(|(e, a, v)| Op::Add(e, a, v)),
        2 => (e.clone(), a.clone(), v).prop_map(|(e, a, v)| Op::Retract(e, a, v)),
        1 => (e.clone(), a).prop_map(|(e, a)| Op::RetractAttr(e, a)),
        1 => e.prop_map(Op::RetractEntity),
    ]
}

type Model = BTreeSet<(i64, usize, i64)>;

/// Applies one transaction to the model; `Err` when Datahike would reject it.
fn model_apply(model: &Model, specs: &[AttrSpec], tx: &[Op]) -> Result<Model, ()> {
    let mut m = model.clone();
    for op in tx {
        match op {
            Op::Add(e, a, v) => {
                if specs[*a].unique && m.iter().any(|(e2, a2, v2)| a2 == a && v2 == v && e2 != e) {
                    return Err(());
                }
                if !specs[*a].many {
                    m.retain(|(e2, a2, _)| !(e2 == e && a2 == a));
                }
                m.insert((*e, *a, *v));
            }
            Op::Retract(e, a, v) => {
                m.remove(&(*e, *a, *v));
            }
            Op::RetractAttr(e, a) => m.retain(|(e2, a2, _)| !(e2 == e && a2 == a)),
            Op::RetractEntity(e) => m.retain(|(e2, _, _)| e2 != e),
        }
    }
    Ok(m)
}

fn tx_edn(specs: &[AttrSpec], tx: &[Op]) -> String {
    let mut s = String::from("[");
    for op in tx {
        match op {
            Op::Add(e, a, v) => s += &format!("[:db/add {e} :{} {}]", attr_name(*a), value_edn(&specs[*a], *v)),
            Op::Retract(e, a, v) => s += &format!("[:db/retract {e} :{} {}]", attr_name(*a), value_edn(&specs[*a], *v)),
            Op::RetractAttr(e, a) => s += &format!("[:db/retract {e} :{}]", attr_name(*a)),
            Op::RetractEntity(e) => s += &format!("[:db/retractEntity {e}]"),
        }
    }
    s + "]"
}

/// The user datoms of `db` as (e, attr index, v) in each index order, checked for agreement.
fn db_facts(db: &Db, specs: &[AttrSpec]) -> Model {
    let decode = |d: &datahike::Datom| -> Option<(i64, usize, i64)> {
        let name = d.a.as_str();
        let i: usize = name.strip_prefix('a')?.parse().ok()?;
        let v = match &d.v {
            datahike::Value::Long(x) => *x,
            datahike::Value::String(s) => s.strip_prefix('s')?.parse().ok()?,
            _ => return None,
        };
        Some((d.e, i, v))
    };
    let eavt: Vec<_> = db.datoms(IndexOrder::Eavt, &[]).unwrap().iter().filter_map(decode).collect();
    let aevt: Vec<_> = db.datoms(IndexOrder::Aevt, &[]).unwrap().iter().filter_map(decode).collect();
    let avet: Vec<_> = db.datoms(IndexOrder::Avet, &[]).unwrap().iter().filter_map(decode).collect();
    let set: Model = eavt.iter().copied().collect();
    assert_eq!(set.len(), eavt.len(), "EAVT holds duplicates");
    assert_eq!(aevt.iter().copied().collect::<Model>(), set, "AEVT disagrees with EAVT");
    let indexed: Model = set.iter().filter(|(_, a, _)| specs[*a].unique || specs[*a].index).copied().collect();
    assert_eq!(avet.iter().copied().collect::<Model>(), indexed, "AVET disagrees with EAVT");
    // Each index is sorted in its own order.
    for order in IndexOrder::ALL {
        let ds = db.datoms(order, &[]).unwrap();
        assert!(ds.windows(2).all(|w| order.cmp_eav(&w[0], &w[1]) == std::cmp::Ordering::Less), "{order:?} unsorted");
    }
    set
}

fn schema_edn(specs: &[AttrSpec]) -> String {
    let mut s = String::from("[");
    for (i, spec) in specs.iter().enumerate() {
        s += &format!(
            "{{:db/ident :{} :db/valueType {} :db/cardinality {}{}{}}}",
            attr_name(i),
            if spec.string { ":db.type/string" } else { ":db.type/long" },
            if spec.many { ":db.cardinality/many" } else { ":db.cardinality/one" },
            if spec.unique { " :db/unique :db.unique/value" } else { "" },
            if spec.index { " :db/index true" } else { "" },
        );
    }
    s + "]"
}

fn spec_strategy() -> impl Strategy<Value = Vec<AttrSpec>> {
    prop::collection::vec(
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(many, string, unique, index)| AttrSpec { many: many && !unique, string, unique, index }),
        1..4,
    )
}

fn scenario() -> impl Strategy<Value = (Vec<AttrSpec>, Vec<Vec<Op>>, Vec<bool>)> {
    spec_strategy().prop_flat_map(|specs| {
        let n = specs.len();
        (
            Just(specs),
            prop::collection::vec(prop::collection::vec(op_strategy(n), 1..6), 1..25),
            prop::collection::vec(any::<bool>(), 25),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn transactions_match_the_model((specs, txs, flushes) in scenario()) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db").display().to_string();
        let config = Config::parse(&format!("{{:store {{:backend :file :path {path:?}}} :index-config {{:branching-factor 4}}}}")).unwrap();
        datahike::create_database(&config).unwrap();
        let conn = datahike::connect(&config).unwrap();
        conn.transact(&read_str(&schema_edn(&specs)).unwrap()).unwrap();
        let mut model = Model::new();
        for (i, tx) in txs.iter().enumerate() {
            let before = conn.db();
            let result = conn.transact(&read_str(&tx_edn(&specs, tx)).unwrap());
            match model_apply(&model, &specs, tx) {
                Ok(next) => {
                    prop_assert!(result.is_ok(), "tx {} rejected: {:?}", tx_edn(&specs, tx), result.err());
                    model = next;
                }
                Err(()) => {
                    let err = result.expect_err("a unique violation must be rejected");
                    prop_assert_eq!(err.code(), "transact/unique");
                    prop_assert_eq!(conn.db().max_tx(), before.max_tx(), "a rejected tx changed the database");
                }
            }
            prop_assert_eq!(&db_facts(&conn.db(), &specs), &model);
            if flushes[i % flushes.len()] {
                conn.flush().unwrap();
            }
        }
        conn.release().unwrap();
        let conn = datahike::connect(&config).unwrap();
        prop_assert_eq!(&db_facts(&conn.db(), &specs), &model, "reopened database differs");
        conn.release().unwrap();
        let _ = Edn::Nil;
    }
}
