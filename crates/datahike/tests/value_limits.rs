//! Whatever a transaction accepts, the database reads back: generated values (deeply nested
//! tuples among them) are either refused by `transact` with an error naming the limit, or
//! read back equal from the log and from flushed index nodes after a reopen.

use datahike::edn::{pr_str, read_str};
use datahike::value::MAX_VALUE_DEPTH;
use datahike::{Config, Edn, QueryInput};
use proptest::prelude::*;

/// A value nested `depth` vectors deep around `leaf`.
fn nested(depth: usize, leaf: Edn) -> Edn {
    (0..depth).fold(leaf, |inner, _| Edn::Vector(vec![inner]))
}

fn leaf() -> impl Strategy<Value = Edn> {
    prop_oneof![
        any::<i64>().prop_map(Edn::Int),
        "[a-z]{0,8}".prop_map(|s| Edn::str(&s)),
        any::<bool>().prop_map(Edn::Bool),
        (-1e9f64..1e9).prop_map(Edn::Float),
        "[a-z]{1,6}".prop_map(|s| Edn::kw(&s)),
    ]
}

/// Vectors of scalars and vectors, up to 40 deep, with siblings.
fn value() -> impl Strategy<Value = Edn> {
    (0usize..40, leaf(), prop::collection::vec(leaf(), 0..3)).prop_map(|(depth, leaf, siblings)| {
        let mut v = nested(depth, leaf);
        if let (Edn::Vector(xs), false) = (&mut v, siblings.is_empty()) {
            xs.extend(siblings);
        }
        v
    })
}

fn config(dir: &tempfile::TempDir) -> Config {
    Config::parse(&format!(
        "{{:store {{:backend :file :path {:?}}} :schema-flexibility :read}}",
        dir.path().join("db").display().to_string()
    ))
    .unwrap()
}

fn stored(config: &Config, e: i64) -> Edn {
    let conn = datahike::connect(config).unwrap();
    let v = datahike::q(&read_str(&format!("[:find ?v . :where [{e} :v ?v]]")).unwrap(), &[QueryInput::Db(conn.db())])
        .unwrap();
    conn.release().unwrap();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn every_accepted_value_reads_back(values in prop::collection::vec(value(), 1..12)) {
        let dir = tempfile::tempdir().unwrap();
        let config = config(&dir);
        datahike::create_database(&config).unwrap();
        let conn = datahike::connect(&config).unwrap();
        let mut accepted = Vec::new();
        for v in &values {
            let depth = datahike::value::edn_depth(v);
            match conn.transact(&Edn::Vector(vec![Edn::Map(vec![(Edn::kw("v"), v.clone())])])) {
                Ok(report) => {
                    prop_assert!(depth <= MAX_VALUE_DEPTH, "accepted a value {depth} deep");
                    let e = report.tx_data.iter().find(|d| d.a.as_str() == "v").map(|d| d.e).unwrap();
                    accepted.push((e, v.clone()));
                }
                Err(e) => {
                    prop_assert!(depth > MAX_VALUE_DEPTH, "refused a value {depth} deep: {e}");
                    prop_assert!(e.to_string().contains(&format!("nests {depth} levels deep")), "{e}");
                    prop_assert_eq!(e.code(), "transact/syntax");
                }
            }
        }
        // From the log (no flush yet) in another connection, then from index nodes.
        conn.release().unwrap();
        for (e, v) in &accepted {
            prop_assert_eq!(pr_str(&stored(&config, *e)), pr_str(v));
        }
        let conn = datahike::connect(&config).unwrap();
        conn.flush().unwrap();
        conn.release().unwrap();
        for (e, v) in &accepted {
            prop_assert_eq!(pr_str(&stored(&config, *e)), pr_str(v));
        }
    }
}

#[test]
fn the_limit_is_exact_and_refusal_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir);
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    let before = conn.db().max_tx();
    let too_deep = nested(MAX_VALUE_DEPTH + 1, Edn::Int(1));
    let err = conn.transact(&Edn::Vector(vec![Edn::Map(vec![(Edn::kw("v"), too_deep)])])).unwrap_err();
    assert_eq!(err.data().get_kw("depth"), Some(&Edn::Int(MAX_VALUE_DEPTH as i64 + 1)));
    assert_eq!(conn.db().max_tx(), before, "nothing of the refused transaction is in effect");
    // Through a declared tuple attribute and a transaction's metadata too.
    conn.transact(&read_str("[{:db/ident :t :db/valueType :db.type/tuple :db/tupleType :db.type/long :db/cardinality :db.cardinality/one}]").unwrap())
        .unwrap();
    let meta = Edn::Map(vec![(Edn::kw("why"), nested(MAX_VALUE_DEPTH + 1, Edn::Int(2)))]);
    assert!(conn.transact_with_meta(&read_str("[{:name \"x\"}]").unwrap(), Some(&meta)).is_err());
    let deepest = nested(MAX_VALUE_DEPTH, Edn::Int(7));
    conn.transact(&Edn::Vector(vec![Edn::Map(vec![(Edn::kw("v"), deepest.clone())])])).unwrap();
    conn.flush().unwrap();
    conn.release().unwrap();
    let conn = datahike::connect(&config).unwrap();
    let found =
        datahike::q(&read_str("[:find [?v ...] :where [_ :v ?v]]").unwrap(), &[QueryInput::Db(conn.db())]).unwrap();
    assert_eq!(found, Edn::Vector(vec![deepest]));
    conn.release().unwrap();
}
