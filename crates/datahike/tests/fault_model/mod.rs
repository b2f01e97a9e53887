//! The workload and the model shared by `fault_injection.rs` and `simulation.rs`: a few kinds
//! of transaction over entities named by a unique `:k`, and a plain map that says what the
//! database must hold after exactly the acknowledged transactions.
#![allow(dead_code)]

use datahike::edn::read_str;
use datahike::{Db, Edn, IndexOrder, Value};
use std::collections::{BTreeMap, BTreeSet};

pub use datahike::store::fault::SplitMix64;

/// `:k` identifies an entity (unique identity); `:name` is card one; `:tags` card many and
/// indexed; `:score` card one and indexed.
pub const SCHEMA: &str = r#"[{:db/ident :k :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
  {:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
  {:db/ident :tags :db/valueType :db.type/long :db/cardinality :db.cardinality/many :db/index true}
  {:db/ident :score :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}]"#;

/// One transaction of the workload.
#[derive(Clone, Debug)]
pub enum Tx {
    /// `{:k k :name name :tags tags}`: creates or updates entity `k` (upsert).
    Upsert { k: i64, name: String, tags: Vec<i64> },
    /// `[:db/add [:k k] :score score]`: overwrites the card-one score.
    Score { k: i64, score: i64 },
    /// `[:db/retract [:k k] :tags tag]`.
    RetractTag { k: i64, tag: i64 },
    /// `[:db/retractEntity [:k k]]`.
    RetractEntity { k: i64 },
}

impl Tx {
    /// The transaction as EDN.
    pub fn edn(&self) -> Edn {
        let text = match self {
            Tx::Upsert { k, name, tags } => {
                let tags: Vec<String> = tags.iter().map(i64::to_string).collect();
                format!("[{{:k {k} :name {name:?} :tags [{}]}}]", tags.join(" "))
            }
            Tx::Score { k, score } => format!("[[:db/add [:k {k}] :score {score}]]"),
            Tx::RetractTag { k, tag } => format!("[[:db/retract [:k {k}] :tags {tag}]]"),
            Tx::RetractEntity { k } => format!("[[:db/retractEntity [:k {k}]]]"),
        };
        read_str(&text).expect("workload EDN")
    }

    /// A random transaction over entities `0..n_keys`.
    pub fn random(rng: &mut SplitMix64, n_keys: u64) -> Tx {
        let k = i64::try_from(rng.below(n_keys)).unwrap_or(0);
        let small = |rng: &mut SplitMix64| i64::try_from(rng.below(6)).unwrap_or(0);
        match rng.below(10) {
            0..=3 => {
                let tags = (0..rng.below(3)).map(|_| small(rng)).collect();
                Tx::Upsert { k, name: format!("n{}", rng.below(4)), tags }
            }
            4..=6 => Tx::Score { k, score: small(rng) },
            7..=8 => Tx::RetractTag { k, tag: small(rng) },
            _ => Tx::RetractEntity { k },
        }
    }
}

/// The facts of one entity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entity {
    pub name: Option<String>,
    pub tags: BTreeSet<i64>,
    pub score: Option<i64>,
}

/// What the database must hold: entities by `:k`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model(pub BTreeMap<i64, Entity>);

/// How a transaction must end on the model.
#[derive(Debug, PartialEq, Eq)]
pub enum Expect {
    /// Accepted, giving this model.
    Accepted(Model),
    /// Refused (an assertion through a lookup ref that names no entity); changes nothing.
    Refused,
}

impl Model {
    /// What `tx` does to the model.
    pub fn apply(&self, tx: &Tx) -> Expect {
        let mut next = self.clone();
        match tx {
            Tx::Upsert { k, name, tags } => {
                let e = next.0.entry(*k).or_default();
                e.name = Some(name.clone());
                e.tags.extend(tags.iter().copied());
            }
            Tx::Score { k, score } => match next.0.get_mut(k) {
                Some(e) => e.score = Some(*score),
                None => return Expect::Refused,
            },
            // Retracting from an entity a lookup ref does not find does nothing (Datahike's
            // `entid`, not `entid-strict`, for retractions).
            Tx::RetractTag { k, tag } => {
                if let Some(e) = next.0.get_mut(k) {
                    e.tags.remove(tag);
                }
            }
            Tx::RetractEntity { k } => {
                next.0.remove(k);
            }
        }
        Expect::Accepted(next)
    }

    /// The model as `(k, attribute, value)` facts, as [`facts`] reads them from a database.
    pub fn facts(&self) -> BTreeSet<Fact> {
        let mut out = BTreeSet::new();
        for (k, e) in &self.0 {
            out.insert((*k, "k", k.to_string()));
            if let Some(name) = &e.name {
                out.insert((*k, "name", name.clone()));
            }
            for t in &e.tags {
                out.insert((*k, "tags", t.to_string()));
            }
            if let Some(s) = e.score {
                out.insert((*k, "score", s.to_string()));
            }
        }
        out
    }
}

/// `(k of the entity, attribute, value as text)`.
pub type Fact = (i64, &'static str, String);

fn attr(name: &str) -> Option<&'static str> {
    ["k", "name", "tags", "score"].into_iter().find(|a| *a == name)
}

fn text(v: &Value) -> String {
    match v {
        Value::Long(n) => n.to_string(),
        Value::String(s) => s.to_string(),
        other => format!("{other:?}"),
    }
}

/// The workload's facts in `db`, read through every index; an error when the indices
/// disagree (EAVT, AEVT, and AVET over the indexed attributes), are unsorted, or an entity
/// has facts but no `:k`.
pub fn facts(db: &Db) -> Result<BTreeSet<Fact>, String> {
    let read = |order: IndexOrder| -> Result<Vec<datahike::Datom>, String> {
        let all = db.datoms(order, &[]).map_err(|e| format!("reading {order:?}: {e}"))?;
        if !all.windows(2).all(|w| order.cmp_eav(&w[0], &w[1]) == std::cmp::Ordering::Less) {
            return Err(format!("{order:?} is not sorted or holds duplicates"));
        }
        Ok(all.into_iter().filter(|d| attr(d.a.as_str()).is_some()).collect())
    };
    let eavt = read(IndexOrder::Eavt)?;
    let ks: BTreeMap<i64, i64> = eavt
        .iter()
        .filter(|d| d.a.as_str() == "k")
        .map(|d| match d.v {
            Value::Long(k) => Ok((d.e, k)),
            _ => Err(format!("a :k that is not a long: {d:?}")),
        })
        .collect::<Result<_, _>>()?;
    let to_facts = |datoms: &[datahike::Datom]| -> Result<BTreeSet<Fact>, String> {
        let mut out = BTreeSet::new();
        for d in datoms {
            let k = ks.get(&d.e).ok_or_else(|| format!("entity {} has facts but no :k: {d:?}", d.e))?;
            let a = attr(d.a.as_str()).ok_or("not a workload attribute")?;
            if !out.insert((*k, a, text(&d.v))) {
                return Err(format!("fact {d:?} twice"));
            }
        }
        Ok(out)
    };
    let from_eavt = to_facts(&eavt)?;
    let from_aevt = to_facts(&read(IndexOrder::Aevt)?)?;
    if from_aevt != from_eavt {
        return Err(format!("AEVT disagrees with EAVT: {from_aevt:?} vs {from_eavt:?}"));
    }
    let from_avet = to_facts(&read(IndexOrder::Avet)?)?;
    let indexed: BTreeSet<Fact> = from_eavt.iter().filter(|(_, a, _)| *a != "name").cloned().collect();
    if from_avet != indexed {
        return Err(format!("AVET disagrees with EAVT: {from_avet:?} vs {indexed:?}"));
    }
    Ok(from_eavt)
}

/// The `:k` of every entity, by query, for the query part of the workloads.
pub fn query_keys(db: &Db) -> datahike::Result<BTreeSet<i64>> {
    let query = read_str("[:find ?k :where [?e :k ?k]]").expect("query EDN");
    let result = datahike::q(&query, &[datahike::QueryInput::Db(db.clone())])?;
    let mut out = BTreeSet::new();
    if let Edn::Set(rows) = &result {
        for row in rows {
            if let Edn::Vector(cols) = row {
                if let Some(Edn::Int(k)) = cols.first() {
                    out.insert(*k);
                }
            }
        }
    }
    Ok(out)
}
