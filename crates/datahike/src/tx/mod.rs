//! The transaction pipeline: EDN transaction data in, datoms out, with Datahike's semantics.
//!
//! Stages: the data is a queue of items (entity maps, op vectors); maps are resolved (tempids,
//! lookup refs, upserts) and exploded into `:db/add` ops; every op is checked against the
//! schema and the working state and emits datoms into `tx-data`. The result, [`TxOutcome`],
//! is applied to the indices by [`crate::db::Db::apply_tx`], the same function that replays
//! the log, so a replayed database equals the one that was committed.

mod purge;
mod report;

pub use report::TxReport;

use crate::config::SchemaFlexibility;
use crate::datom::{Datom, DatomKey, IndexOrder, TX0};
use crate::db::Db;
use crate::edn::{Edn, Keyword};
use crate::error::{Detail, Error, Result, TxError};
use crate::schema::{is_schema_attr, is_system_ident, Attribute, Schema, Unique, ValueType};
use crate::value::{Eid, Value};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::VecDeque;
use std::sync::Arc;

/// What a transaction produced, before it is applied to the indices.
#[derive(Clone, Debug)]
pub struct TxOutcome {
    /// The transaction id.
    pub tx: Eid,
    /// Every datom asserted or retracted, in order.
    pub tx_data: Vec<Datom>,
    /// The largest user entity id after the transaction.
    pub max_eid: Eid,
    /// The transaction's `:db/txInstant` in epoch milliseconds.
    pub tx_instant: i64,
    /// Tempids and the ids they resolved to, in order of allocation.
    pub tempids: Vec<(Edn, Eid)>,
    /// The transaction metadata map (with `:db/txInstant`).
    pub tx_meta: Vec<(Keyword, Edn)>,
    /// Datoms excised by `:db/purge` and friends: each exactly as stored (with its tx and
    /// added flag), removed from the current or history indices without leaving history.
    pub purged: Vec<Datom>,
    /// The commit this transaction makes (set by the connection; `None` for `with`).
    pub commit: Option<Commit>,
}

/// A commit's identity: its id and its parents' ids (one parent, or several for a merge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// The commit id.
    pub id: uuid::Uuid,
    /// The parent commits, the branch's own previous commit first.
    pub parents: Vec<uuid::Uuid>,
}

/// A tempid as written in the transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum TempKey {
    Int(i64),
    Str(Arc<str>),
    CurrentTx(&'static str),
}

impl TempKey {
    fn of(x: &Edn) -> Option<TempKey> {
        match x {
            Edn::Int(i) if *i < 0 => Some(TempKey::Int(*i)),
            Edn::Str(s) => match s.as_ref() {
                ":db/current-tx" => Some(TempKey::CurrentTx(":db/current-tx")),
                "datomic.tx" => Some(TempKey::CurrentTx("datomic.tx")),
                "datahike.tx" => Some(TempKey::CurrentTx("datahike.tx")),
                _ => Some(TempKey::Str(s.clone())),
            },
            Edn::Keyword(k) if k.as_str() == "db/current-tx" => Some(TempKey::CurrentTx("db/current-tx")),
            _ => None,
        }
    }
    fn to_edn(&self) -> Edn {
        match self {
            TempKey::Int(i) => Edn::Int(*i),
            TempKey::Str(s) => Edn::Str(s.clone()),
            TempKey::CurrentTx("db/current-tx") => Edn::kw("db/current-tx"),
            TempKey::CurrentTx(s) => Edn::str(s),
        }
    }
}

fn is_tx_id(x: &Edn) -> bool {
    match x {
        Edn::Str(s) => matches!(s.as_ref(), ":db/current-tx" | "datomic.tx" | "datahike.tx"),
        Edn::Keyword(k) => k.as_str() == "db/current-tx",
        _ => false,
    }
}

fn is_tempid(x: &Edn) -> bool {
    matches!(x, Edn::Int(i) if *i < 0) || matches!(x, Edn::Str(_))
}

/// `:ns/_attr` <-> `:ns/attr`.
fn reverse_ref(a: Keyword) -> Keyword {
    let name = a.name();
    let flipped = match name.strip_prefix('_') {
        Some(rest) => rest.to_string(),
        None => format!("_{name}"),
    };
    Keyword::from_parts(a.namespace(), &flipped)
}

fn is_reverse(a: Keyword) -> bool {
    a.name().starts_with('_') && a.name().len() > 1
}

/// Prints a slice of EDN values as a vector, for error messages, without cloning it.
struct ShowVec<'a>(&'a [Edn]);

impl std::fmt::Display for ShowVec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[")?;
        for (i, x) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{x}")?;
        }
        f.write_str("]")
    }
}

/// Prints map entries as a map, for error messages, without cloning them.
struct ShowMap<'a>(&'a [(Edn, Edn)]);

impl std::fmt::Display for ShowMap<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k} {v}")?;
        }
        f.write_str("}")
    }
}

/// Prints `[:db/add e a v]` for error messages.
struct ShowAdd<'a>(&'a Edn, Keyword, &'a Edn);

impl std::fmt::Display for ShowAdd<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[:db/add {} {} {}]", self.0, self.1, self.2)
    }
}

/// Prints `{:db/id e, attr value}` for error messages about one attribute of an entity map.
struct ShowEntry<'a>(Eid, &'a Edn, &'a Edn);

impl std::fmt::Display for ShowEntry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{:db/id {}, {} {}}}", self.0, self.1, self.2)
    }
}

/// Where an attribute or value appeared: printed in an error's message, and in its data as
/// `:context` and `:entity-id`. The EDN is built only when an error is.
trait Context: std::fmt::Display {
    /// The operation or map.
    fn to_edn(&self) -> Edn;
    /// The entity it is about, as written, when it names one.
    fn entity_id(&self) -> Option<Edn>;
}

impl Context for ShowVec<'_> {
    fn to_edn(&self) -> Edn {
        Edn::Vector(self.0.to_vec())
    }
    fn entity_id(&self) -> Option<Edn> {
        match self.0.first().and_then(Edn::as_keyword) {
            Some(op) if op.as_str() == "db.history.purge/before" => None,
            _ => self.0.get(1).cloned(),
        }
    }
}

impl Context for ShowMap<'_> {
    fn to_edn(&self) -> Edn {
        Edn::Map(self.0.to_vec())
    }
    fn entity_id(&self) -> Option<Edn> {
        self.0.iter().find(|(k, _)| k.as_keyword().is_some_and(|k| k.as_str() == "db/id")).map(|(_, v)| v.clone())
    }
}

impl Context for ShowAdd<'_> {
    fn to_edn(&self) -> Edn {
        Edn::Vector(vec![Edn::kw("db/add"), self.0.clone(), Edn::Keyword(self.1), self.2.clone()])
    }
    fn entity_id(&self) -> Option<Edn> {
        Some(self.0.clone())
    }
}

impl Context for ShowEntry<'_> {
    fn to_edn(&self) -> Edn {
        Edn::Map(vec![(Edn::kw("db/id"), Edn::Int(self.0)), (self.1.clone(), self.2.clone())])
    }
    fn entity_id(&self) -> Option<Edn> {
        Some(Edn::Int(self.0))
    }
}

/// A lookup ref whose value is at fault; it is also the entity.
struct LookupRef<'a>(&'a Edn);

impl std::fmt::Display for LookupRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Context for LookupRef<'_> {
    fn to_edn(&self) -> Edn {
        self.0.clone()
    }
    fn entity_id(&self) -> Option<Edn> {
        Some(self.0.clone())
    }
}

/// Adds `:context` and, unless the detail names one already, `:entity-id`.
fn in_context(detail: Detail, ctx: &dyn Context) -> Detail {
    let detail = match ctx.entity_id() {
        Some(e) if detail.get("entity-id").is_none() => detail.entity_id(e),
        _ => detail,
    };
    detail.context(ctx.to_edn())
}

/// The operations a transaction may hold, in the order error messages list them.
const OPERATIONS: [&str; 11] = [
    "db/add",
    "db/retract",
    "db.fn/retractAttribute",
    "db/retractEntity",
    "db.fn/retractEntity",
    "db/cas",
    "db.fn/cas",
    "db/purge",
    "db.purge/attribute",
    "db.purge/entity",
    "db.history.purge/before",
];

/// An error about a whole operation: its `:operation` keyword and the op as `:tx-data`.
fn op_detail(message: String, op_vec: &[Edn]) -> Detail {
    let detail = Detail::new(message);
    let detail = match op_vec.first() {
        Some(op @ Edn::Keyword(_)) => detail.with("operation", op.clone()),
        _ => detail,
    };
    detail.tx_data(Edn::Vector(op_vec.to_vec()))
}

/// A tempid where only `:db/add` allows one; the op's entity is the tempid.
fn tempid_detail(op_vec: &[Edn]) -> Detail {
    let message = format!("Can't use tempid in '{}'. Tempids are allowed in :db/add only", ShowVec(op_vec));
    let detail = op_detail(message, op_vec);
    match op_vec.get(1) {
        Some(e) => detail.entity_id(e.clone()),
        None => detail,
    }
}

/// The data of conflicting upserts: this `[e a v]` against the `[e a v]` resolved first.
fn upsert_conflict(
    message: String,
    entity: &dyn Context,
    this: (Eid, Keyword, Edn),
    first: (Eid, Keyword, &Edn),
) -> Detail {
    Detail::new(message)
        .attribute(this.1)
        .value(this.2)
        .entity_id(Edn::Int(this.0))
        .entity(entity.to_edn())
        .with("conflict", Edn::Vector(vec![Edn::Int(first.0), Edn::Keyword(first.1), first.2.clone()]))
}

/// The valid values of a schema-property type (`:db/valueType`, `:db/cardinality`,
/// `:db/unique`), for errors.
fn type_choices(t: ValueType) -> Option<Vec<&'static str>> {
    match t {
        ValueType::ValueTypeKw => Some(ValueType::USER.iter().map(|(_, name)| *name).collect()),
        ValueType::CardinalityKw => Some(vec!["db.cardinality/one", "db.cardinality/many"]),
        ValueType::UniqueKw => Some(vec!["db.unique/identity", "db.unique/value"]),
        _ => None,
    }
}

/// One unit of work in the queue: borrowed from the transaction data, or generated.
enum Item<'t> {
    MapRef(&'t [(Edn, Edn)]),
    OpRef(&'t [Edn]),
    Map(Vec<(Edn, Edn)>),
    Op(Vec<Edn>),
    /// `[:db/add e a v]` with the attribute checked; the flag exempts generated tuple writes.
    Add(Edn, Keyword, Edn, bool),
    /// A `:db/add` generated for a composite tuple, exempt from the direct-write check.
    TupleOp(Vec<Edn>),
    FlushTuples,
}

/// Restart the transaction with this tempid bound to this entity (Datahike's
/// `retry-with-tempid`).
struct Retry(TempKey, Eid);

enum Fail {
    Retry(Retry),
    Error(Error),
}

impl From<TxError> for Fail {
    fn from(e: TxError) -> Self {
        Fail::Error(Error::Tx(e))
    }
}
impl From<crate::index::IndexError> for Fail {
    fn from(e: crate::index::IndexError) -> Self {
        Fail::Error(Error::Index(e))
    }
}
impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Error(e)
    }
}

type Step<T> = std::result::Result<T, Fail>;

/// Runs a transaction against `db` and returns what it produced. `now_ms` is the wall clock;
/// the instant used is `max(now, last + 1)` unless the metadata sets `:db/txInstant`.
pub fn run(db: &Db, tx_data: &Edn, tx_meta: Option<&Edn>, now_ms: i64) -> Result<TxOutcome> {
    let normalized;
    let tx_data = if db.attr_refs() {
        normalized = ids_to_idents(db, tx_data);
        &normalized
    } else {
        tx_data
    };
    let items: &[Edn] = match tx_data {
        Edn::Nil => &[],
        Edn::Vector(xs) | Edn::List(xs) => xs,
        other => {
            return Err(TxError::Syntax(
                Detail::new(format!("Bad transaction data {other}, expected sequential collection"))
                    .tx_data(other.clone()),
            )
            .into())
        }
    };
    let meta = match tx_meta {
        None | Some(Edn::Nil) => Vec::new(),
        Some(Edn::Map(m)) => m
            .iter()
            .map(|(k, v)| match k {
                Edn::Keyword(k) => Ok((*k, v.clone())),
                _ => Err(Error::Tx(TxError::Syntax(
                    Detail::new(format!("Bad transaction meta attribute {k}, expected a keyword"))
                        .with("attribute", k.clone())
                        .context(Edn::Map(m.clone())),
                ))),
            })
            .collect::<Result<Vec<_>>>()?,
        Some(other) => {
            return Err(TxError::Syntax(
                Detail::new(format!("Bad transaction meta {other}, expected a map")).value(other.clone()),
            )
            .into())
        }
    };
    let mut prebound: HashMap<TempKey, Eid> = HashMap::default();
    // The tempids a retry resolved by upsert: only these are fixed. A tempid that merely got a
    // new id in a failed attempt may still upsert in a later one (DataScript's and Datahike's
    // rule), as when an entity refers to a tempid before the map that upserts it.
    let mut upserted: HashMap<TempKey, Eid> = HashMap::default();
    loop {
        let mut state = TxState::new(db, prebound.clone(), now_ms, &meta)?;
        match state.process(items) {
            Ok(()) => return state.finish(),
            Err(Fail::Error(e)) => return Err(e),
            Err(Fail::Retry(Retry(key, eid))) => {
                if let Some(&before) = upserted.get(&key) {
                    let message = format!("Conflicting upsert: {} resolves both to {eid} and {before}", key.to_edn());
                    return Err(TxError::Upsert(
                        Detail::new(message)
                            .entity_id(key.to_edn())
                            .with("conflict", Edn::Vector(vec![Edn::Int(eid), Edn::Int(before)])),
                    )
                    .into());
                }
                // Datahike restarts with every tempid of the failed attempt kept.
                prebound = state.tempids.clone();
                prebound.insert(key.clone(), eid);
                upserted.insert(key, eid);
            }
        }
    }
}

/// Under `:attribute-refs? true`, transaction data may name an attribute (and a schema enum
/// such as `:db.type/string`) by its entity id: rewrites those ids to the idents the pipeline
/// works with. (Lookup refs resolve attribute ids themselves, through `Db::attr_of`.) Anything
/// else is left for the pipeline to accept or reject.
fn ids_to_idents(db: &Db, tx_data: &Edn) -> Edn {
    let schema = db.schema();
    let attr = |a: &Edn| match a {
        Edn::Int(e) => schema.eid_ident(*e).map_or_else(|| a.clone(), Edn::Keyword),
        _ => a.clone(),
    };
    let enum_value = |a: &Edn, v: &Edn| match (a, v) {
        (Edn::Keyword(a), Edn::Int(e)) if crate::attr_refs::is_enum_attr(*a) => {
            schema.eid_ident(*e).map_or_else(|| v.clone(), Edn::Keyword)
        }
        _ => v.clone(),
    };
    fn map(m: &[(Edn, Edn)], attr: &dyn Fn(&Edn) -> Edn, enum_value: &dyn Fn(&Edn, &Edn) -> Edn) -> Edn {
        Edn::Map(
            m.iter()
                .map(|(k, v)| {
                    let k = attr(k);
                    let v = match v {
                        Edn::Map(inner) => map(inner, attr, enum_value),
                        Edn::Vector(xs) if xs.iter().any(|x| matches!(x, Edn::Map(_))) => Edn::Vector(
                            xs.iter()
                                .map(|x| if let Edn::Map(inner) = x { map(inner, attr, enum_value) } else { x.clone() })
                                .collect(),
                        ),
                        _ => enum_value(&k, v),
                    };
                    (k, v)
                })
                .collect(),
        )
    }
    let item = |x: &Edn| match x {
        Edn::Map(m) => map(m, &attr, &enum_value),
        Edn::Vector(op) | Edn::List(op) if op.len() >= 3 => {
            let name = op[0].as_keyword().map_or("", Keyword::as_str);
            let mut out = op.clone();
            if matches!(
                name,
                "db/add"
                    | "db/retract"
                    | "db/cas"
                    | "db.fn/cas"
                    | "db.fn/retractAttribute"
                    | "db/purge"
                    | "db.purge/attribute"
            ) {
                out[2] = attr(&op[2]);
                let a = out[2].clone();
                for v in out.iter_mut().skip(3) {
                    *v = enum_value(&a, v);
                }
            }
            match x {
                Edn::List(_) => Edn::List(out),
                _ => Edn::Vector(out),
            }
        }
        other => other.clone(),
    };
    match tx_data {
        Edn::Vector(xs) => Edn::Vector(xs.iter().map(item).collect()),
        Edn::List(xs) => Edn::List(xs.iter().map(item).collect()),
        other => other.clone(),
    }
}

/// The current datoms of one (e, a): inline for the common zero or one value, so a load does
/// not allocate per attribute.
#[derive(Clone, Debug, Default)]
enum Vals {
    #[default]
    Empty,
    One(Datom),
    Many(Vec<Datom>),
}

impl Vals {
    fn from_vec(mut v: Vec<Datom>) -> Vals {
        match v.len() {
            0 => Vals::Empty,
            1 => Vals::One(v.pop().expect("one element")),
            _ => Vals::Many(v),
        }
    }
    fn as_slice(&self) -> &[Datom] {
        match self {
            Vals::Empty => &[],
            Vals::One(d) => std::slice::from_ref(d),
            Vals::Many(v) => v,
        }
    }
    fn first(&self) -> Option<&Datom> {
        self.as_slice().first()
    }
    fn iter(&self) -> std::slice::Iter<'_, Datom> {
        self.as_slice().iter()
    }
    fn to_vec(&self) -> Vec<Datom> {
        self.as_slice().to_vec()
    }
    fn push(&mut self, d: Datom) {
        *self = match std::mem::take(self) {
            Vals::Empty => Vals::One(d),
            Vals::One(x) => Vals::Many(vec![x, d]),
            Vals::Many(mut v) => {
                v.push(d);
                Vals::Many(v)
            }
        }
    }
    fn remove_value(&mut self, value: &Value) {
        match self {
            Vals::Empty => {}
            Vals::One(x) => {
                if x.v == *value {
                    *self = Vals::Empty;
                }
            }
            Vals::Many(v) => v.retain(|x| x.v != *value),
        }
    }
}

/// The working `(e, a) -> datoms` state: per entity, a short list of its touched attributes.
/// One hash lookup per entity (none for consecutive operations on the same entity, the common
/// case when maps are exploded), then a scan of a few attributes.
#[derive(Default)]
struct Working {
    index: HashMap<Eid, u32>,
    entities: Vec<(Eid, Vec<(Keyword, Vals)>)>,
    last: Option<(Eid, u32)>,
}

impl Working {
    fn slot(&mut self, e: Eid) -> usize {
        if let Some((last_e, slot)) = self.last {
            if last_e == e {
                return slot as usize;
            }
        }
        let entities = &mut self.entities;
        let slot = *self.index.entry(e).or_insert_with(|| {
            entities.push((e, Vec::new()));
            u32::try_from(entities.len() - 1).unwrap_or(u32::MAX)
        });
        self.last = Some((e, slot));
        slot as usize
    }

    fn get(&self, e: Eid, a: Keyword) -> Option<&Vals> {
        let slot = *self.index.get(&e)? as usize;
        self.entities.get(slot)?.1.iter().find(|(k, _)| *k == a).map(|(_, v)| v)
    }

    fn attrs_of(&self, e: Eid) -> Vec<Keyword> {
        match self.index.get(&e).and_then(|slot| self.entities.get(*slot as usize)) {
            Some((_, attrs)) => attrs.iter().map(|(k, _)| *k).collect(),
            None => Vec::new(),
        }
    }
}

/// The working state of one transaction attempt.
struct TxState<'a> {
    db: &'a Db,
    schema: Schema,
    write_schema: bool,
    tx: Eid,
    max_eid: Eid,
    tx_instant: i64,
    meta: Vec<(Keyword, Edn)>,
    tempids: HashMap<TempKey, Eid>,
    tempid_order: Vec<TempKey>,
    /// Current datoms of each touched (e, a), initialised from the database on first touch.
    work: Working,
    /// Unique (a, v) -> entity after this transaction's changes so far (`None` = gone).
    unique: HashMap<(Keyword, Value), Option<Eid>>,
    tx_data: Vec<Datom>,
    queued_tuples: Vec<(Eid, Keyword, Vec<Value>)>,
    /// Datoms stored before the transaction that its purges excised, in order.
    purged: Vec<Datom>,
    /// The same, for membership tests.
    purged_set: HashSet<Datom>,
}

impl<'a> TxState<'a> {
    fn new(db: &'a Db, prebound: HashMap<TempKey, Eid>, now_ms: i64, meta: &[(Keyword, Edn)]) -> Result<TxState<'a>> {
        let tx = db.max_tx() + 1;
        let mut tx_instant = now_ms.max(db.last_tx_instant() + 1);
        let mut meta_out = vec![(Keyword::new("db/txInstant"), Edn::Inst(tx_instant))];
        for (k, v) in meta {
            if k.as_str() == "db/txInstant" {
                let Edn::Inst(ms) = v else {
                    return Err(TxError::Schema(
                        Detail::new(format!("Bad transaction meta :db/txInstant {v}, expected an instant"))
                            .attribute(*k)
                            .value(v.clone())
                            .expected(Edn::kw("db.type/instant")),
                    )
                    .into());
                };
                if *ms < db.last_tx_instant() {
                    let last = Edn::Inst(db.last_tx_instant());
                    return Err(TxError::Syntax(
                        Detail::new(format!(
                            "Bad transaction meta :db/txInstant {v}: earlier than the last transaction's instant {last}"
                        ))
                        .attribute(*k)
                        .value(v.clone())
                        .with("last", last),
                    )
                    .into());
                }
                tx_instant = *ms;
                meta_out[0].1 = v.clone();
            } else if let Some(slot) = meta_out.iter_mut().find(|(mk, _)| mk == k) {
                slot.1 = v.clone();
            } else {
                meta_out.push((*k, v.clone()));
            }
        }
        let mut tempid_order: Vec<TempKey> = prebound.keys().cloned().collect();
        tempid_order.sort_by_key(|k| format!("{:?}", k));
        // New ids that an earlier attempt gave its tempids stay taken: a fresh tempid must
        // never get one of them, whatever order this attempt meets them in.
        let max_eid = prebound.values().copied().filter(|e| *e < TX0).fold(db.max_eid(), Eid::max);
        Ok(TxState {
            db,
            schema: db.schema().clone(),
            write_schema: db.config().schema_flexibility == SchemaFlexibility::Write,
            tx,
            max_eid,
            tx_instant,
            meta: meta_out,
            tempids: prebound,
            tempid_order,
            work: Working::default(),
            unique: HashMap::default(),
            tx_data: Vec::new(),
            queued_tuples: Vec::new(),
            purged: Vec::new(),
            purged_set: HashSet::default(),
        })
    }

    fn finish(mut self) -> Result<TxOutcome> {
        self.check_ident_changes()?;
        // Freeing the working state of a large transaction takes a while; do it off the
        // caller's path.
        if self.work.entities.len() > 2_000 {
            let ea = std::mem::take(&mut self.work);
            let unique = std::mem::take(&mut self.unique);
            std::thread::spawn(move || drop((ea, unique)));
        }
        let mut tempids: Vec<(Edn, Eid)> = Vec::new();
        // `to_edn` is one-to-one, so distinct keys are distinct tempids; a set keeps this
        // linear in the number of tempids (100,000 in one transaction were minutes before).
        let mut listed: HashSet<&TempKey> = HashSet::default();
        for key in &self.tempid_order {
            if let Some(eid) = self.tempids.get(key) {
                if listed.insert(key) {
                    tempids.push((key.to_edn(), *eid));
                }
            }
        }
        tempids.push((Edn::kw("db/current-tx"), self.tx));
        Ok(TxOutcome {
            tx: self.tx,
            tx_data: self.tx_data,
            max_eid: self.max_eid,
            tx_instant: self.tx_instant,
            tempids,
            tx_meta: self.meta,
            purged: self.purged,
            commit: None,
        })
    }

    // ---------------------------------------------------------------- driver

    fn process<'t>(&mut self, items: &'t [Edn]) -> Step<()> {
        // A load of n entity maps touches about n * attributes (e, a) pairs.
        let maps = items.iter().filter(|x| matches!(x, Edn::Map(_))).count();
        if maps > 1000 {
            let attrs = items.iter().find_map(|x| if let Edn::Map(m) = x { Some(m.len()) } else { None }).unwrap_or(1);
            self.work.entities.reserve(maps);
            self.work.index.reserve(maps);
            let _ = attrs;
            self.tx_data.reserve(maps * attrs);
        }
        let mut queue: VecDeque<Item<'t>> = VecDeque::new();
        if self.db.config().keep_history {
            for (k, v) in self.meta.clone() {
                self.check_attr(k, &ShowAdd(&Edn::Int(self.tx), k, &v)).map_err(|_| {
                    let meta = Edn::Map(self.meta.iter().map(|(k, v)| (Edn::Keyword(*k), v.clone())).collect());
                    Fail::from(TxError::Schema(
                        Detail::new(format!(
                            "Bad transaction meta attribute {k}, not defined in system or current schema"
                        ))
                        .attribute(k)
                        .context(meta),
                    ))
                })?;
                queue.push_back(Item::Add(Edn::Int(self.tx), k, v, false));
            }
        }
        let has_tuples = self.schema.has_tuples();
        for item in items {
            match item {
                Edn::Map(m) => queue.push_back(Item::MapRef(m)),
                Edn::Vector(xs) | Edn::List(xs) => queue.push_back(Item::OpRef(xs)),
                Edn::Nil => {}
                Edn::Tagged(tag, inner) if tag.as_str() == "datahike/Datom" => match inner.as_ref() {
                    Edn::Vector(xs) if xs.len() >= 3 => {
                        let added = !matches!(xs.get(4), Some(Edn::Bool(false)));
                        let op = if added { "db/add" } else { "db/retract" };
                        let mut v = vec![Edn::kw(op)];
                        v.extend(xs.iter().take(3).cloned());
                        queue.push_back(Item::Op(v));
                    }
                    _ => {
                        return Err(TxError::Syntax(
                            Detail::new(format!("Bad datom {item}, expected [e a v tx added]")).tx_data(item.clone()),
                        )
                        .into())
                    }
                },
                other => {
                    return Err(TxError::Syntax(
                        Detail::new(format!("Bad entity type at {other}, expected map or vector"))
                            .tx_data(other.clone()),
                    )
                    .into())
                }
            }
            if has_tuples {
                queue.push_back(Item::FlushTuples);
            }
        }
        while let Some(item) = queue.pop_front() {
            match item {
                Item::FlushTuples => {
                    let ops = self.flush_tuples()?;
                    for op in ops.into_iter().rev() {
                        queue.push_front(Item::TupleOp(op));
                    }
                }
                Item::MapRef(m) => {
                    let produced = self.explode_map(m)?;
                    for it in produced.into_iter().rev() {
                        queue.push_front(it);
                    }
                }
                Item::OpRef(op) => {
                    let produced = self.apply_op(op, false)?;
                    for it in produced.into_iter().rev() {
                        queue.push_front(it);
                    }
                }
                Item::Map(m) => {
                    let produced = self.explode_map(&m)?;
                    for it in produced.into_iter().rev() {
                        queue.push_front(it);
                    }
                }
                Item::Op(op) => {
                    let produced = self.apply_op(&op, false)?;
                    for it in produced.into_iter().rev() {
                        queue.push_front(it);
                    }
                    // Schema maps transacted mid-way may declare tuples.
                }
                Item::Add(e, a, v, internal) => {
                    if let Some(next) = self.add_op(e, a, v, internal)? {
                        queue.push_front(next);
                    }
                }
                Item::TupleOp(op) => {
                    self.apply_op(&op, true)?;
                }
            }
        }
        // Tuples touched by the last items (when no schema tuples existed at the start but
        // the transaction declared some) are flushed too.
        let ops = self.flush_tuples()?;
        for op in ops {
            self.apply_op(&op, true)?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- ids

    fn next_eid(&self) -> Eid {
        self.max_eid + 1
    }

    fn advance_max_eid(&mut self, e: Eid) {
        if e > self.max_eid && e < TX0 {
            self.max_eid = e;
        }
    }

    fn allocate(&mut self, key: Option<TempKey>, eid: Eid) {
        if let Some(key) = key {
            if !self.tempids.contains_key(&key) {
                self.tempid_order.push(key.clone());
            }
            self.tempids.insert(key, eid);
        }
        self.advance_max_eid(eid);
    }

    /// Resolves an entity id that must exist: a number, an ident keyword or a lookup ref.
    fn entid_strict(&mut self, x: &Edn) -> Step<Eid> {
        match self.entid(x)? {
            Some(e) => Ok(e),
            None => Err(TxError::EntityIdMissing(
                Detail::new(format!("Nothing found for entity id {x}")).entity_id(x.clone()),
            )
            .into()),
        }
    }

    /// Resolves an entity id; `None` when a lookup ref or ident names nothing.
    fn entid(&mut self, x: &Edn) -> Step<Option<Eid>> {
        match x {
            Edn::Int(i) if *i >= 0 => Ok(Some(*i)),
            Edn::Keyword(k) => Ok(self.schema.ident_eid(*k)),
            Edn::Vector(xs) | Edn::List(xs) => {
                if xs.len() != 2 {
                    return Err(TxError::LookupRefSyntax(
                        Detail::new(format!("Lookup ref should contain 2 elements: {x}")).entity_id(x.clone()),
                    )
                    .into());
                }
                let Some(a) = self.db.attr_of(&xs[0]) else {
                    return Err(TxError::LookupRefSyntax(
                        Detail::new(format!("Lookup ref attribute should be a keyword: {x}"))
                            .entity_id(x.clone())
                            .with("attribute", xs[0].clone()),
                    )
                    .into());
                };
                if self.schema.attr(a).is_none_or(|attr| attr.unique.is_none()) {
                    return Err(TxError::LookupRefUnique(
                        Detail::new(format!("Lookup ref attribute should be marked as :db/unique: {x}"))
                            .entity_id(x.clone())
                            .attribute(a),
                    )
                    .into());
                }
                if xs[1] == Edn::Nil {
                    return Ok(None);
                }
                let v = self.coerce_value(a, &xs[1], &LookupRef(x))?;
                Ok(self.unique_lookup(a, &v)?)
            }
            _ => Err(TxError::EntityIdSyntax(
                Detail::new(format!("Expected number, string, keyword or lookup ref for entity id, got {x}"))
                    .entity_id(x.clone()),
            )
            .into()),
        }
    }

    // ---------------------------------------------------------------- working state

    fn base_may_have(&self, e: Eid) -> bool {
        e <= self.db.max_eid() || (e >= TX0 && e <= self.db.max_tx())
    }

    fn ea_datoms(&mut self, e: Eid, a: Keyword) -> Step<&mut Vals> {
        let slot = self.work.slot(e);
        if let Some(pos) = self.work.entities[slot].1.iter().position(|(k, _)| *k == a) {
            return Ok(&mut self.work.entities[slot].1[pos].1);
        }
        let base = if self.base_may_have(e) {
            self.db.datoms_key(IndexOrder::Eavt, &DatomKey { e: Some(e), a: Some(a), ..Default::default() })?
        } else {
            Vec::new()
        };
        let attrs = &mut self.work.entities[slot].1;
        attrs.push((a, Vals::from_vec(base)));
        match attrs.last_mut() {
            Some((_, vals)) => Ok(vals),
            None => unreachable!("pushed above"),
        }
    }

    fn unique_lookup(&mut self, a: Keyword, v: &Value) -> Result<Option<Eid>> {
        if let Some(found) = self.unique.get(&(a, v.clone())) {
            return Ok(*found);
        }
        let key = DatomKey { a: Some(a), v: Some(v.clone()), ..Default::default() };
        let found = self.db.datoms_key(IndexOrder::Avet, &key)?.first().map(|d| d.e);
        Ok(found)
    }

    /// Records a datom in the working state and in tx-data.
    fn emit(&mut self, d: Datom) -> Step<()> {
        let (e, a) = (d.e, d.a);
        if self.db.attr_refs() && crate::attr_refs::is_system_entity(e) {
            let datom = self.db.datom_edn(&d);
            return Err(TxError::Schema(
                Detail::new(format!("System schema entity {e} cannot be changed: {datom}"))
                    .entity_id(Edn::Int(e))
                    .attribute(a)
                    .datom(datom),
            )
            .into());
        }
        let unique = self.schema.attr(a).and_then(|x| x.unique).is_some();
        {
            let vals = self.ea_datoms(e, a)?;
            if d.added() {
                vals.push(d.clone());
            } else {
                vals.remove_value(&d.v);
            }
        }
        if unique {
            self.unique.insert((a, d.v.clone()), if d.added() { Some(e) } else { None });
        }
        if is_schema_attr(a) {
            self.schema.apply_datom(&d);
        }
        if d.added() {
            self.advance_max_eid(e);
        }
        let tuples: Vec<(Keyword, usize)> =
            if self.schema.has_tuples() { self.schema.tuples_of(a).to_vec() } else { Vec::new() };
        for (tuple, idx) in tuples {
            let v = if d.added() { d.v.clone() } else { Value::Nil };
            self.queue_tuple(e, tuple, idx, v)?;
        }
        self.tx_data.push(d);
        Ok(())
    }

    // ---------------------------------------------------------------- tuples

    fn queue_tuple(&mut self, e: Eid, tuple: Keyword, idx: usize, v: Value) -> Step<()> {
        let pos = self.queued_tuples.iter().position(|(qe, qt, _)| *qe == e && *qt == tuple);
        let n = self.schema.attr(tuple).and_then(|t| t.tuple_attrs.as_ref()).map_or(0, Vec::len);
        let current = match pos {
            Some(p) => self.queued_tuples[p].2.clone(),
            None => match self.ea_datoms(e, tuple)?.first() {
                Some(Datom { v: Value::Tuple(xs), .. }) => xs.to_vec(),
                _ => vec![Value::Nil; n],
            },
        };
        let mut value = current;
        if value.len() < n {
            value.resize(n, Value::Nil);
        }
        if idx < value.len() {
            value[idx] = v;
        }
        match pos {
            Some(p) => self.queued_tuples[p].2 = value,
            None => self.queued_tuples.push((e, tuple, value)),
        }
        Ok(())
    }

    fn flush_tuples(&mut self) -> Step<Vec<Vec<Edn>>> {
        let queued = std::mem::take(&mut self.queued_tuples);
        let mut ops = Vec::new();
        for (e, tuple, value) in queued {
            let current = self.ea_datoms(e, tuple)?.first().map(|d| d.v.clone());
            let value = if value.iter().all(|v| *v == Value::Nil) { None } else { Some(Value::Tuple(value.into())) };
            match (value, current) {
                (v, c) if v == c => {}
                (None, Some(c)) => ops.push(vec![Edn::kw("db/retract"), Edn::Int(e), Edn::Keyword(tuple), c.to_edn()]),
                (Some(v), _) => ops.push(vec![Edn::kw("db/add"), Edn::Int(e), Edn::Keyword(tuple), v.to_edn()]),
                (None, None) => {}
            }
        }
        Ok(ops)
    }

    // ---------------------------------------------------------------- values

    fn check_attr(&self, a: Keyword, context: &dyn Context) -> Step<()> {
        if self.write_schema && self.schema.attr(a).is_none() {
            let known = self.schema.user_attrs().into_iter().map(|x| Edn::Keyword(x.ident));
            let detail = Detail::new(format!("Bad entity attribute {a} at {context}, not defined in current schema"))
                .attribute(a)
                .choices(known);
            return Err(TxError::Schema(in_context(detail, context)).into());
        }
        Ok(())
    }

    /// Converts an EDN value for attribute `a` (refs must already be resolved to ids).
    fn coerce_value(&self, a: Keyword, v: &Edn, context: &dyn Context) -> Step<Value> {
        if *v == Edn::Nil {
            let detail = Detail::new(format!("Cannot store nil as a value at {context}")).attribute(a).value(Edn::Nil);
            return Err(TxError::Syntax(in_context(detail, context)).into());
        }
        let depth = crate::value::edn_depth(v);
        if depth > crate::value::MAX_VALUE_DEPTH {
            let detail = Detail::new(format!(
                "Bad entity value at {context}: it nests {depth} levels deep, more than the {} a stored value may",
                crate::value::MAX_VALUE_DEPTH
            ))
            .attribute(a)
            .with("depth", Edn::Int(depth as i64))
            .expected(Edn::Int(crate::value::MAX_VALUE_DEPTH as i64));
            return Err(TxError::Syntax(in_context(detail, context)).into());
        }
        let attr = self.schema.attr(a);
        let declared = attr.and_then(|x| x.value_type);
        if let Some(t) = declared {
            if let Some(value) = t.coerce(v) {
                return Ok(value);
            }
            if self.write_schema || crate::schema::is_system_ident(a) {
                let detail = Detail::new(format!(
                    "Bad entity value {v} at {context}, value does not match schema definition. Must be conform to: :{}",
                    t.keyword()
                ))
                .attribute(a)
                .value(v.clone())
                .expected(Edn::kw(t.keyword()));
                let detail = match type_choices(t) {
                    Some(choices) => detail.choices(choices.iter().map(|c| Edn::kw(c))),
                    None => detail,
                };
                return Err(TxError::Schema(in_context(detail, context)).into());
            }
        }
        Value::from_edn(v).ok_or_else(|| {
            let detail = Detail::new(format!("Bad entity value {v} at {context}: not a storable value"))
                .attribute(a)
                .value(v.clone());
            Fail::from(TxError::Syntax(in_context(detail, context)))
        })
    }

    fn check_tuple_value(&self, attr: &Attribute, v: &Value, context: &dyn Context) -> Step<()> {
        let Value::Tuple(xs) = v else { return Ok(()) };
        let fail = |message: String, expected: Edn| -> Step<()> {
            let detail = Detail::new(message).attribute(attr.ident).value(v.to_edn()).expected(expected);
            Err(TxError::Syntax(in_context(detail, context)).into())
        };
        if let Some(t) = attr.tuple_type {
            let expected = Edn::Map(vec![(Edn::kw("db/tupleType"), Edn::kw(t.keyword()))]);
            if xs.len() > 8 {
                return fail(format!("Cannot store more than 8 values for homogeneous tuple: {context}"), expected);
            }
            // As Datahike compares `(map type v)`, nil counts as a type of its own.
            let mut tags = xs.iter().map(Value::type_tag);
            if tags.next().is_some_and(|first| tags.any(|t| t != first)) {
                return fail(
                    format!("Cannot store homogeneous tuple with values of different type: {context}"),
                    expected,
                );
            }
            if !xs.iter().all(|x| t.accepts(x)) {
                return fail(format!("Cannot store homogeneous tuple. Values are of wrong type: {context}"), expected);
            }
        }
        if let Some(types) = &attr.tuple_types {
            let types_edn = Edn::Vector(types.iter().map(|t| Edn::kw(t.keyword())).collect());
            let expected = Edn::Map(vec![(Edn::kw("db/tupleTypes"), types_edn.clone())]);
            if xs.len() != types.len() {
                return fail(
                    format!(
                        "Cannot store heterogeneous tuple: expecting {} values, got {} at {context}",
                        types.len(),
                        xs.len()
                    ),
                    expected,
                );
            }
            if !xs.iter().zip(types).all(|(x, t)| *x == Value::Nil || t.accepts(x)) {
                return fail(
                    format!(
                        "Cannot store heterogeneous tuple: there is a mismatch between values {} and their types {types_edn} at {context}",
                        v.to_edn()
                    ),
                    expected,
                );
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- maps

    fn explode_map(&mut self, entity: &[(Edn, Edn)]) -> Step<Vec<Item<'static>>> {
        let entity_edn = ShowMap(entity);
        let id_kw = Edn::kw("db/id");
        let old_id = entity.iter().find(|(k, _)| *k == id_kw).map(|(_, v)| v.clone()).filter(|v| *v != Edn::Nil);
        // Resolve :db/id.
        let resolved: Option<Edn> = match &old_id {
            Some(x) if is_tx_id(x) => {
                self.allocate(TempKey::of(x), self.tx);
                Some(Edn::Int(self.tx))
            }
            Some(x @ (Edn::Vector(_) | Edn::List(_))) => Some(Edn::Int(self.entid_strict(x)?)),
            Some(Edn::Keyword(k)) => Some(Edn::Int(self.entid_strict(&Edn::Keyword(*k))?)),
            Some(x @ (Edn::Int(_) | Edn::Str(_))) => Some(x.clone()),
            Some(x) => {
                return Err(TxError::EntityIdSyntax(
                    Detail::new(format!("Expected number, string, keyword or lookup ref for :db/id, got {x}"))
                        .entity_id(x.clone())
                        .entity(entity_edn.to_edn()),
                )
                .into())
            }
            None => None,
        };
        let resolved_key = resolved.as_ref().and_then(|r| if is_tempid(r) { TempKey::of(r) } else { None });
        let resolved_tempid = resolved_key.as_ref().and_then(|k| self.tempids.get(k).copied());
        let upserted = self.upsert_eid(entity, resolved.as_ref(), &entity_edn)?;
        if let (Some(up), Some(prev), Some(key)) = (upserted, resolved_tempid, resolved_key.clone()) {
            if up != prev {
                return Err(Fail::Retry(Retry(key, up)));
            }
        }
        let new_eid = match (&upserted, &resolved) {
            (Some(up), _) => *up,
            (None, None) => self.next_eid(),
            (None, Some(r)) if is_tempid(r) => resolved_tempid.unwrap_or_else(|| self.next_eid()),
            (None, Some(Edn::Int(i))) => *i,
            (None, Some(other)) => {
                return Err(TxError::EntityIdSyntax(
                    Detail::new(format!("Expected number, string, keyword or lookup ref for :db/id, got {other}"))
                        .entity_id(other.clone())
                        .entity(entity_edn.to_edn()),
                )
                .into())
            }
        };
        self.check_schema_update(entity, new_eid, &entity_edn)?;
        self.allocate(resolved_key, new_eid);
        if resolved.is_none() {
            self.advance_max_eid(new_eid);
        }
        // Explode into ops.
        let mut out = Vec::new();
        for (k, vs) in entity {
            if *k == id_kw || k.as_keyword().is_some_and(|k| k.as_str() == "db/ensure") {
                continue;
            }
            let Some(a) = k.as_keyword() else {
                return Err(TxError::Syntax(
                    Detail::new(format!("Bad entity attribute {k} at {entity_edn}, expected keyword or string"))
                        .with("attribute", k.clone())
                        .entity_id(Edn::Int(new_eid))
                        .context(entity_edn.to_edn()),
                )
                .into());
            };
            let reverse = is_reverse(a);
            let straight = if reverse { reverse_ref(a) } else { a };
            self.check_attr(straight, &ShowEntry(new_eid, k, vs))?;
            if reverse && !self.schema.is_ref(straight) {
                let detail = Detail::new(format!(
                    "Bad attribute {a}: reverse attribute name requires {{:db/valueType :db.type/ref}} in schema"
                ))
                .attribute(a);
                return Err(TxError::Syntax(in_context(detail, &ShowEntry(new_eid, k, vs))).into());
            }
            for v in self.wrap_multival(a, straight, reverse, vs) {
                if self.schema.is_ref(straight) {
                    if let Edn::Map(nested) = &v {
                        let mut nested = nested.clone();
                        nested.push((Edn::Keyword(reverse_ref(a)), Edn::Int(new_eid)));
                        out.push(Item::Map(nested));
                        continue;
                    }
                }
                if reverse {
                    out.push(Item::Add(v, straight, Edn::Int(new_eid), false));
                } else {
                    out.push(Item::Add(Edn::Int(new_eid), straight, v, false));
                }
            }
        }
        Ok(out)
    }

    fn wrap_multival(&self, a: Keyword, straight: Keyword, reverse: bool, vs: &Edn) -> Vec<Edn> {
        if !(reverse || self.schema.is_many(a)) {
            return vec![vs.clone()];
        }
        match vs {
            Edn::Vector(xs) | Edn::List(xs) | Edn::Set(xs) => {
                let lookup_ref = xs.len() == 2 && xs[0].as_keyword().is_some_and(|k| self.schema.is_identity(k));
                if lookup_ref && !(vs.as_seq().is_some() && matches!(vs, Edn::Set(_))) {
                    let _ = straight;
                    vec![vs.clone()]
                } else {
                    xs.clone()
                }
            }
            _ => vec![vs.clone()],
        }
    }

    fn upsert_eid(
        &mut self,
        entity: &[(Edn, Edn)],
        resolved: Option<&Edn>,
        context: &dyn Context,
    ) -> Step<Option<Eid>> {
        let mut found: Option<(Eid, Keyword, Edn)> = None;
        for (k, v) in entity {
            let Some(a) = k.as_keyword() else { continue };
            if !self.schema.is_identity(a) {
                continue;
            }
            let v = if self.schema.is_ref(a) && is_tempid(v) {
                match TempKey::of(v).and_then(|t| self.tempids.get(&t).copied()) {
                    Some(e) => Edn::Int(e),
                    None => continue,
                }
            } else {
                v.clone()
            };
            let value = if self.schema.is_ref(a) {
                match self.entid(&v)? {
                    Some(e) => Value::Long(e),
                    None => continue,
                }
            } else {
                self.coerce_value(a, &v, context)?
            };
            if let Some(e) = self.unique_lookup(a, &value)? {
                match &found {
                    None => found = Some((e, a, v.clone())),
                    Some((fe, _, _)) if *fe == e => {}
                    Some((fe, fa, fv)) => {
                        let message =
                            format!("Conflicting upserts: [{fa} {fv}] resolves to {fe}, but [{a} {v}] resolves to {e}");
                        return Err(TxError::Upsert(upsert_conflict(
                            message,
                            context,
                            (e, a, v.clone()),
                            (*fe, *fa, fv),
                        ))
                        .into());
                    }
                }
            }
        }
        // Composite unique tuples fully present in the map.
        let tuple_attrs: Vec<(Keyword, Vec<Keyword>)> = self.schema.identity_tuples().to_vec();
        for (tuple, parts) in tuple_attrs {
            let mut values = Vec::new();
            for p in &parts {
                match entity.iter().find(|(k, _)| k.as_keyword() == Some(*p)) {
                    Some((_, v)) if self.schema.is_ref(*p) && is_tempid(v) => break,
                    Some((_, v)) if self.schema.is_ref(*p) => values.push(Value::Long(self.entid_strict(v)?)),
                    Some((_, v)) => values.push(self.coerce_value(*p, v, context)?),
                    None => break,
                }
            }
            if values.len() != parts.len() {
                continue;
            }
            let value = Value::Tuple(values.into());
            if let Some(e) = self.unique_lookup(tuple, &value)? {
                match &found {
                    None => found = Some((e, tuple, value.to_edn())),
                    Some((fe, _, _)) if *fe == e => {}
                    Some((fe, fa, fv)) => {
                        let message = format!(
                            "Conflicting upserts: [{fa} {fv}] resolves to {fe}, but [{tuple} {}] resolves to {e}",
                            value.to_edn()
                        );
                        let this = (e, tuple, value.to_edn());
                        return Err(TxError::Upsert(upsert_conflict(message, context, this, (*fe, *fa, fv))).into());
                    }
                }
            }
        }
        if let (Some((e, a, v)), Some(Edn::Int(id))) = (&found, resolved) {
            if *id >= 0 && id != e {
                let message =
                    format!("Conflicting upsert: [{a} {v}] resolves to {e}, but entity already has :db/id {id}");
                let detail = Detail::new(message)
                    .attribute(*a)
                    .value(v.clone())
                    .entity_id(Edn::Int(*id))
                    .entity(context.to_edn())
                    .with("conflict", Edn::Vector(vec![Edn::Int(*e), Edn::Keyword(*a), v.clone()]));
                return Err(TxError::Upsert(detail).into());
            }
        }
        Ok(found.map(|(e, _, _)| e))
    }

    fn check_schema_update(&self, entity: &[(Edn, Edn)], eid: Eid, context: &dyn Context) -> Step<()> {
        let keys: Vec<Keyword> = entity.iter().filter_map(|(k, _)| k.as_keyword()).collect();
        if !keys.iter().any(|k| is_schema_attr(*k) && k.as_str() != "db/doc" || k.as_str() == "db/ident") {
            return Ok(());
        }
        let get = |name: &str| {
            entity.iter().find(|(k, _)| k.as_keyword().is_some_and(|k| k.as_str() == name)).map(|(_, v)| v)
        };
        if let Some(Edn::Keyword(ident)) = get("db/ident") {
            if is_system_ident(*ident) {
                return Err(TxError::Schema(
                    Detail::new(format!("Using namespace 'db' for attribute identifiers is not allowed: {context}"))
                        .attribute(*ident)
                        .entity(context.to_edn()),
                )
                .into());
            }
        }
        let existing = self.schema.eid_ident(eid).and_then(|i| self.schema.attr(i)).filter(|a| a.eid == eid).cloned();
        if let Some(old) = existing {
            let mut invalid = Vec::new();
            let mut invalid_data = Vec::new();
            for (k, v) in entity {
                let Some(k) = k.as_keyword() else { continue };
                let old_v = old_prop(&old, k);
                if old_v.as_ref() == Some(v) {
                    continue;
                }
                let ok = match k.as_str() {
                    "db/id" | "db/doc" | "db/noHistory" | "db/isComponent" | "db/maxLength" | "db.attr/preds"
                    | "db/ident" => true,
                    "db/cardinality" => !(v == &Edn::kw("db.cardinality/many") && old.unique.is_some()),
                    "db/unique" => !old.many && self.attr_unused(old.ident),
                    "db/index" => v == &Edn::Bool(true) && (old.index || self.attr_unused(old.ident)),
                    "db/valueType" | "db/tupleAttrs" | "db/tupleTypes" | "db/tupleType" => self.attr_unused(old.ident),
                    _ => true,
                };
                if !ok {
                    let old_v = old_v.unwrap_or(Edn::Nil);
                    invalid.push(format!("{k} {old_v} -> {v}"));
                    invalid_data.push((Edn::Keyword(k), Edn::Vector(vec![old_v, v.clone()])));
                }
            }
            if !invalid.is_empty() {
                let detail = Detail::new(format!(
                    "Update not supported for these schema attributes: {} in {context}",
                    invalid.join(", ")
                ))
                .attribute(old.ident)
                .entity_id(Edn::Int(eid))
                .entity(context.to_edn())
                .with("invalid-updates", Edn::Map(invalid_data));
                return Err(TxError::Schema(detail).into());
            }
        } else if self.write_schema && (get("db/cardinality").is_some() || get("db/valueType").is_some()) {
            let complete =
                get("db/ident").is_some() && get("db/valueType").is_some() && get("db/cardinality").is_some();
            if !complete {
                let required = ["db/ident", "db/valueType", "db/cardinality"];
                return Err(TxError::Schema(
                    Detail::new(format!(
                        "Incomplete schema transaction attributes, expected :db/ident, :db/valueType, :db/cardinality in {context}"
                    ))
                    .entity(context.to_edn())
                    .expected(Edn::Vector(required.iter().map(|k| Edn::kw(k)).collect())),
                )
                .into());
            }
        }
        Ok(())
    }

    /// Refuses renaming (or retracting the ident of) an attribute that has datoms, current or
    /// historical: the indices store the ident in every datom, so the data would not follow
    /// and the attribute would be split across two names. Datahike refuses the same without
    /// `:attribute-refs?`; under it Datahike allows the rename, which this layout cannot.
    fn check_ident_changes(&self) -> Result<()> {
        let ident = Keyword::new("db/ident");
        for d in &self.tx_data {
            let (true, false, Value::Keyword(old)) = (d.a == ident, d.added(), &d.v) else { continue };
            if self.db.schema().attr(*old).is_none_or(|a| a.eid != d.e) {
                continue;
            }
            let now = self.schema.eid_ident(d.e);
            if now == Some(*old) {
                continue;
            }
            let key = DatomKey { a: Some(*old), ..Default::default() };
            let in_history = match self.db.history_index(IndexOrder::Aevt) {
                Some(h) => h.count_range(&key, &key)? > 0,
                None => false,
            };
            if self.attr_unused(*old) && !in_history {
                continue;
            }
            let change = match now {
                Some(new) => format!("Cannot rename {old} to {new}"),
                None => format!("Cannot retract the :db/ident of attribute {old}"),
            };
            let why = if self.db.attr_refs() {
                "datahike-rs keeps the attribute's ident in every datom, also under :attribute-refs? true, so \
                 the data would not follow"
            } else {
                "without :attribute-refs? the attribute keyword is stored in every datom, so the data would \
                 not follow"
            };
            let detail = Detail::new(format!(
                "{change} while it has existing (or history) datoms: {why}. Migrate the data to a new \
                 attribute instead."
            ))
            .attribute(*old)
            .entity_id(Edn::Int(d.e));
            let detail = match now {
                Some(new) => detail.with("new-attribute", Edn::Keyword(new)),
                None => detail,
            };
            return Err(TxError::Schema(detail).into());
        }
        Ok(())
    }

    /// Whether attribute `a` has no datoms, current or pending.
    fn attr_unused(&self, a: Keyword) -> bool {
        let key = DatomKey { a: Some(a), ..Default::default() };
        let none_in_db = self.db.count_key(IndexOrder::Aevt, &key).map(|n| n == 0).unwrap_or(false);
        none_in_db && !self.tx_data.iter().any(|d| d.a == a && d.added())
    }

    // ---------------------------------------------------------------- ops

    fn apply_op(&mut self, op_vec: &[Edn], internal: bool) -> Step<Vec<Item<'static>>> {
        let ctx = ShowVec(op_vec);
        let Some(op) = op_vec.first().and_then(Edn::as_keyword) else {
            let message = format!("Bad entity type at {ctx}, expected an operation keyword first");
            return Err(TxError::Syntax(op_detail(message, op_vec)).into());
        };
        let arg = |i: usize| op_vec.get(i).cloned().unwrap_or(Edn::Nil);
        let (mut e, a, v) = (arg(1), arg(2), arg(3));
        if op.as_str() != "db/add" && is_tx_id(&e) {
            // As in Datahike, `:db/current-tx` / "datomic.tx" name this transaction in any op.
            self.allocate(TempKey::of(&e), self.tx);
            e = Edn::Int(self.tx);
        }
        match op.as_str() {
            "db/add" => {
                if op_vec.len() != 4 {
                    return Err(TxError::Syntax(op_detail(
                        format!("Bad :db/add {ctx}, expected [:db/add e a v]"),
                        op_vec,
                    ))
                    .into());
                }
                let a_kw = self.attr_of(&a, &ctx)?;
                Ok(self.add_op(e, a_kw, v, internal)?.into_iter().collect())
            }
            "db/retract" => {
                if !(3..=4).contains(&op_vec.len()) {
                    let message = format!("Bad :db/retract {ctx}, expected [:db/retract e a] or [:db/retract e a v]");
                    return Err(TxError::Syntax(op_detail(message, op_vec)).into());
                }
                if is_tempid(&e) {
                    return Err(TxError::Syntax(tempid_detail(op_vec)).into());
                }
                let a_kw = self.attr_of(&a, &ctx)?;
                if !internal && self.schema.attr(a_kw).is_some_and(|attr| attr.tuple_attrs.is_some()) {
                    return Err(TxError::Syntax(
                        op_detail(format!("Can’t modify tuple attrs directly: {ctx}"), op_vec).attribute(a_kw),
                    )
                    .into());
                }
                let Some(eid) = self.entid(&e)? else { return Ok(Vec::new()) };
                let targets: Vec<Datom> = if op_vec.len() == 3 {
                    self.ea_datoms(eid, a_kw)?.to_vec()
                } else {
                    let value = self.resolve_value(a_kw, &v, &ctx)?;
                    self.ea_datoms(eid, a_kw)?.iter().filter(|d| d.v == value).cloned().collect()
                };
                for d in targets {
                    self.emit(Datom::new(d.e, d.a, d.v, self.tx, false))?;
                }
                Ok(Vec::new())
            }
            "db.fn/retractAttribute" => {
                if is_tempid(&e) {
                    return Err(TxError::Syntax(tempid_detail(op_vec)).into());
                }
                let a_kw = self.attr_of(&a, &ctx)?;
                if self.schema.attr(a_kw).is_some_and(|attr| attr.tuple_attrs.is_some()) {
                    return Err(TxError::Syntax(
                        op_detail(format!("Can’t modify tuple attrs directly: {ctx}"), op_vec).attribute(a_kw),
                    )
                    .into());
                }
                let Some(eid) = self.entid(&e)? else { return Ok(Vec::new()) };
                let targets = self.ea_datoms(eid, a_kw)?.to_vec();
                let mut out = Vec::new();
                let component = self.schema.attr(a_kw).is_some_and(|x| x.component);
                for d in targets {
                    if component {
                        if let Value::Long(child) = d.v {
                            out.push(Item::Op(vec![Edn::kw("db.fn/retractEntity"), Edn::Int(child)]));
                        }
                    }
                    self.emit(Datom::new(d.e, d.a, d.v, self.tx, false))?;
                }
                Ok(out)
            }
            "db/retractEntity" | "db.fn/retractEntity" => {
                if is_tempid(&e) {
                    return Err(TxError::Syntax(tempid_detail(op_vec)).into());
                }
                let Some(eid) = self.entid(&e)? else { return Ok(Vec::new()) };
                self.retract_entity(eid)
            }
            "db/cas" | "db.fn/cas" => {
                if op_vec.len() != 5 {
                    return Err(TxError::Syntax(op_detail(
                        format!("Bad {op} {ctx}, expected [{op} e a old new]"),
                        op_vec,
                    ))
                    .into());
                }
                if is_tempid(&e) {
                    return Err(TxError::Syntax(tempid_detail(op_vec)).into());
                }
                let a_kw = self.attr_of(&a, &ctx)?;
                let eid = self.entid_strict(&e)?;
                let old = arg(3);
                let new = arg(4);
                let current: Vec<Value> = self.ea_datoms(eid, a_kw)?.iter().map(|d| d.v.clone()).collect();
                let show = |vals: &[Value], many: bool| -> String {
                    if many {
                        Edn::List(vals.iter().map(Value::to_edn).collect()).to_string()
                    } else {
                        vals.first().map_or("nil".to_string(), |v| v.to_edn().to_string())
                    }
                };
                let many = self.schema.is_many(a_kw);
                let failed = |message: String| {
                    let current = match many {
                        true => Edn::Vector(current.iter().map(Value::to_edn).collect()),
                        false => current.first().map_or(Edn::Nil, Value::to_edn),
                    };
                    let detail = op_detail(message, op_vec)
                        .entity_id(Edn::Int(eid))
                        .attribute(a_kw)
                        .with("old", current)
                        .expected(old.clone())
                        .with("new", new.clone());
                    Fail::from(TxError::Cas(detail))
                };
                if old == Edn::Nil {
                    if !current.is_empty() {
                        let message =
                            format!(":db.fn/cas failed on datom [{eid} {a_kw} {}], expected nil", show(&current, many));
                        return Err(failed(message));
                    }
                } else {
                    let old_v = self.resolve_value(a_kw, &old, &ctx)?;
                    if !current.contains(&old_v) || (!many && current.first() != Some(&old_v)) {
                        let message = format!(
                            ":db.fn/cas failed on datom [{eid} {a_kw} {}], expected {old}",
                            show(&current, many)
                        );
                        return Err(failed(message));
                    }
                }
                Ok(vec![Item::Op(vec![Edn::kw("db/add"), Edn::Int(eid), a, new])])
            }
            "db/purge" | "db.purge/attribute" | "db.purge/entity" | "db.history.purge/before" => {
                self.purge_op(op, &e, op_vec)
            }
            "db.fn/call" => Err(TxError::Syntax(op_detail(
                format!(":db.fn/call needs a function value, which EDN transaction data cannot carry: {ctx}"),
                op_vec,
            ))
            .into()),
            _ => {
                let choices = OPERATIONS.iter().map(|op| format!(":{op}")).collect::<Vec<_>>().join(", ");
                let message = format!("Unknown operation at {ctx}, expected {choices}");
                Err(TxError::Syntax(op_detail(message, op_vec).choices(OPERATIONS.iter().map(|op| Edn::kw(op)))).into())
            }
        }
    }

    /// `[:db/add e a v]` with `a` already checked: binds tempids and the current-tx forms,
    /// then asserts. Returns the op to run next when an id had to be resolved first.
    fn add_op(&mut self, e: Edn, a: Keyword, v: Edn, internal: bool) -> Step<Option<Item<'static>>> {
        let ctx = ShowAdd(&e, a, &v);
        if is_tx_id(&e) {
            self.allocate(TempKey::of(&e), self.tx);
            return Ok(Some(Item::Add(Edn::Int(self.tx), a, v, internal)));
        }
        if self.schema.is_ref(a) && is_tx_id(&v) {
            self.allocate(TempKey::of(&v), self.tx);
            return Ok(Some(Item::Add(e, a, Edn::Int(self.tx), internal)));
        }
        if let Some(key) = if is_tempid(&e) { TempKey::of(&e) } else { None } {
            let upserted = if self.schema.is_identity(a) && v != Edn::Nil {
                let value = if self.schema.is_ref(a) {
                    self.entid(&v)?.map(Value::Long)
                } else {
                    Some(self.coerce_value(a, &v, &ctx)?)
                };
                match value {
                    Some(value) => self.unique_lookup(a, &value)?,
                    None => None,
                }
            } else {
                None
            };
            let allocated = self.tempids.get(&key).copied();
            if let (Some(up), Some(al)) = (upserted, allocated) {
                if up != al {
                    return Err(Fail::Retry(Retry(key, up)));
                }
            }
            let eid = upserted.or(allocated).unwrap_or_else(|| self.next_eid());
            self.allocate(Some(key), eid);
            return Ok(Some(Item::Add(Edn::Int(eid), a, v, internal)));
        }
        if let Some(key) = if self.schema.is_ref(a) && is_tempid(&v) { TempKey::of(&v) } else { None } {
            let vid = match self.tempids.get(&key) {
                Some(id) => *id,
                None => {
                    let id = self.next_eid();
                    self.allocate(Some(key), id);
                    id
                }
            };
            return Ok(Some(Item::Add(e, a, Edn::Int(vid), internal)));
        }
        if !internal && self.schema.attr(a).is_some_and(|attr| attr.tuple_attrs.is_some()) {
            // A composite tuple is computed from its parts. Given with the value its entity
            // holds already (a map that upserts through it, as DataScript and Datahike allow),
            // it changes nothing; any other value is an attempt to set it directly.
            if self.tuple_holds(&e, a, &v, &ctx)? {
                return Ok(None);
            }
            let detail = Detail::new(format!("Can’t modify tuple attrs directly: {ctx}"))
                .with("operation", Edn::kw("db/add"))
                .tx_data(ctx.to_edn())
                .attribute(a);
            return Err(TxError::Syntax(detail).into());
        }
        self.transact_add(&e, a, &v, &ctx)?;
        Ok(None)
    }

    /// Whether entity `e` holds the composite tuple `v` of attribute `a` already, every part
    /// present.
    fn tuple_holds(&mut self, e: &Edn, a: Keyword, v: &Edn, ctx: &dyn Context) -> Step<bool> {
        if v.as_seq().is_none_or(|parts| parts.contains(&Edn::Nil)) {
            return Ok(false);
        }
        let Some(eid) = self.entid(e)? else { return Ok(false) };
        let Ok(value) = self.coerce_value(a, v, ctx) else { return Ok(false) };
        Ok(self.ea_datoms(eid, a)?.first().is_some_and(|d| d.v == value))
    }

    fn attr_of(&self, a: &Edn, ctx: &dyn Context) -> Step<Keyword> {
        let Some(k) = a.as_keyword() else {
            let detail = Detail::new(format!("Bad entity attribute {a} at {ctx}, expected keyword or string"))
                .with("attribute", a.clone());
            return Err(TxError::Syntax(in_context(detail, ctx)).into());
        };
        self.check_attr(k, ctx)?;
        Ok(k)
    }

    /// A value for attribute `a`, resolving refs (ids, idents, lookup refs).
    fn resolve_value(&mut self, a: Keyword, v: &Edn, ctx: &dyn Context) -> Step<Value> {
        if self.schema.is_ref(a) {
            if *v == Edn::Nil {
                let detail = Detail::new(format!("Cannot store nil as a value at {ctx}")).attribute(a).value(Edn::Nil);
                return Err(TxError::Syntax(in_context(detail, ctx)).into());
            }
            return Ok(Value::Long(self.entid_strict(v)?));
        }
        self.coerce_value(a, v, ctx)
    }

    fn transact_add(&mut self, e: &Edn, a: Keyword, v: &Edn, ctx: &dyn Context) -> Step<()> {
        let eid = self.entid_strict(e)?;
        let value = self.resolve_value(a, v, ctx)?;
        if a.as_str() == "db/txInstant" && self.set_tx_instant(eid, &value, ctx)? {
            return Ok(());
        }
        let (many, unique) = match self.schema.attr(a) {
            Some(attr) => {
                if attr.tuple_type.is_some() || attr.tuple_types.is_some() {
                    self.check_tuple_value(attr, &value, ctx)?;
                }
                (attr.many, attr.unique.is_some())
            }
            None => (false, false),
        };
        let old = {
            let current = self.ea_datoms(eid, a)?;
            if many {
                if current.iter().any(|d| d.v == value) {
                    return Ok(());
                }
                None
            } else {
                match current.first() {
                    Some(old) if old.v == value => return Ok(()),
                    old => old.cloned(),
                }
            }
        };
        let new = Datom::new(eid, a, value, self.tx, true);
        if unique {
            if let Some(other) = self.unique_lookup(a, &new.v)? {
                if other != eid {
                    let value = new.v.to_edn();
                    let detail =
                        Detail::new(format!("Cannot add {new} because of unique constraint: [{other} {a} {value}]"))
                            .attribute(a)
                            .value(value.clone())
                            .entity_id(Edn::Int(eid))
                            .datom(new.to_edn_vector())
                            .with("conflict", Edn::Vector(vec![Edn::Int(other), Edn::Keyword(a), value]));
                    return Err(TxError::Unique(detail).into());
                }
            }
        }
        if let Some(old) = old {
            self.emit(Datom::new(old.e, old.a, old.v, self.tx, false))?;
        }
        self.emit(new)
    }

    /// `[:db/add tx :db/txInstant v]`: the transaction sets its own instant, which must not be
    /// earlier than the last transaction's, so that instants never decrease and as-of/since
    /// by instant name a prefix of the transactions. Replaces the automatic instant in place
    /// (no retraction is reported) and returns true when there was one.
    fn set_tx_instant(&mut self, eid: Eid, value: &Value, ctx: &dyn Context) -> Step<bool> {
        let detail = |message: String| {
            let detail = Detail::new(message).attribute(Keyword::new("db/txInstant")).value(value.to_edn());
            in_context(detail, ctx).entity_id(Edn::Int(eid))
        };
        if eid != self.tx {
            return Err(TxError::Syntax(detail(format!(
                "Bad :db/txInstant at {ctx}: only the transaction's own entity (\"datomic.tx\", :db/current-tx) can be given an instant"
            )))
            .into());
        }
        let Value::Instant(ms) = *value else {
            let message = format!("Bad :db/txInstant at {ctx}, expected an instant");
            return Err(TxError::Schema(detail(message).expected(Edn::kw("db.type/instant"))).into());
        };
        let last = self.db.last_tx_instant();
        if ms < last {
            return Err(TxError::Syntax(
                detail(format!(
                    "Bad :db/txInstant at {ctx}: {} is earlier than the last transaction's instant {}",
                    Edn::Inst(ms),
                    Edn::Inst(last)
                ))
                .with("last", Edn::Inst(last)),
            )
            .into());
        }
        self.tx_instant = ms;
        if let Some(slot) = self.meta.iter_mut().find(|(k, _)| k.as_str() == "db/txInstant") {
            slot.1 = Edn::Inst(ms);
        }
        let tx = self.tx;
        let is_auto = |d: &Datom| d.e == tx && d.a.as_str() == "db/txInstant" && d.added();
        let Some(auto) = self.tx_data.iter_mut().find(|d| is_auto(d)) else { return Ok(false) };
        let a = auto.a;
        auto.v = value.clone();
        if let Vals::One(d) = self.ea_datoms(tx, a)? {
            d.v = value.clone();
        }
        Ok(true)
    }

    fn retract_entity(&mut self, eid: Eid) -> Step<Vec<Item<'static>>> {
        // Datoms of the entity: the database's plus this transaction's.
        let mut attrs: Vec<Keyword> = Vec::new();
        if self.base_may_have(eid) {
            for d in self.db.datoms_key(IndexOrder::Eavt, &DatomKey { e: Some(eid), ..Default::default() })? {
                if !attrs.contains(&d.a) {
                    attrs.push(d.a);
                }
            }
        }
        for a in self.work.attrs_of(eid) {
            if !attrs.contains(&a) {
                attrs.push(a);
            }
        }
        let mut e_datoms = Vec::new();
        for a in attrs {
            e_datoms.extend(self.ea_datoms(eid, a)?.iter().cloned());
        }
        // Datoms pointing at the entity through ref attributes.
        let mut v_datoms = Vec::new();
        let ref_attrs: Vec<Keyword> = self.schema.user_attrs().iter().filter(|a| a.is_ref()).map(|a| a.ident).collect();
        for a in ref_attrs {
            let key = DatomKey { a: Some(a), v: Some(Value::Long(eid)), ..Default::default() };
            let mut sources: Vec<Eid> = self.db.datoms_key(IndexOrder::Avet, &key)?.iter().map(|d| d.e).collect();
            for (e, attrs) in &self.work.entities {
                for (ta, vals) in attrs {
                    if *ta == a && vals.iter().any(|d| d.v == Value::Long(eid)) && !sources.contains(e) {
                        sources.push(*e);
                    }
                }
            }
            for src in sources {
                v_datoms.extend(self.ea_datoms(src, a)?.iter().filter(|d| d.v == Value::Long(eid)).cloned());
            }
        }
        let mut components = Vec::new();
        for d in &e_datoms {
            if self.schema.attr(d.a).is_some_and(|x| x.component) {
                if let Value::Long(child) = d.v {
                    components.push(Item::Op(vec![Edn::kw("db.fn/retractEntity"), Edn::Int(child)]));
                }
            }
        }
        for d in e_datoms.into_iter().chain(v_datoms) {
            // A datom may be listed twice (a self reference); retract it once.
            if self.work.get(d.e, d.a).is_some_and(|vals| vals.iter().any(|x| x.v == d.v)) {
                self.emit(Datom::new(d.e, d.a, d.v, self.tx, false))?;
            }
        }
        Ok(components)
    }
}

fn old_prop(a: &Attribute, k: Keyword) -> Option<Edn> {
    Some(match k.as_str() {
        "db/ident" => Edn::Keyword(a.ident),
        "db/valueType" => Edn::kw(a.value_type?.keyword()),
        "db/cardinality" => Edn::kw(if a.many { "db.cardinality/many" } else { "db.cardinality/one" }),
        "db/unique" => Edn::kw(match a.unique? {
            Unique::Identity => "db.unique/identity",
            Unique::Value => "db.unique/value",
        }),
        "db/index" => Edn::Bool(a.index),
        "db/isComponent" => Edn::Bool(a.component),
        "db/noHistory" => Edn::Bool(a.no_history),
        "db/tupleAttrs" => Edn::Vector(a.tuple_attrs.as_ref()?.iter().map(|k| Edn::Keyword(*k)).collect()),
        "db/tupleTypes" => Edn::Vector(a.tuple_types.as_ref()?.iter().map(|t| Edn::kw(t.keyword())).collect()),
        "db/tupleType" => Edn::kw(a.tuple_type?.keyword()),
        _ => return None,
    })
}
