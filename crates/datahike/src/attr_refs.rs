//! `:attribute-refs? true`: attributes (and the schema enums `:db.type/*`,
//! `:db.cardinality/*`, `:db.unique/*`) are entities with ids.
//!
//! Datahike stores the attribute's entity id in a datom's `a` slot under this option. Here
//! the indices keep the attribute's ident in every database (one datom layout, one index
//! code path), and the ids appear wherever a user sees the datom: the datom printed or
//! returned as EDN, the `a` (and schema-enum `v`) a query binds, transaction data that names
//! an attribute or enum by id. The ids are those Datahike gives: the system entities have
//! the fixed ids of [`SYSTEM`], user entities (attributes first, as they are transacted)
//! count up from [`UE0`] + 1.
//!
//! Differences from Datahike, by design of this layer: an index orders the datoms of several
//! attributes by ident, not by id (the datom read functions re-sort their result, so
//! `datoms` and friends answer in id order), and an attribute's `:db/ident` cannot be renamed
//! once datoms use it (Datahike allows it under this option).

use crate::datom::{Datom, IndexOrder, TX0};
use crate::edn::{Edn, Keyword};
use crate::value::{Eid, Value};
use std::sync::OnceLock;

/// The largest system entity id; user entities start after it.
pub const UE0: Eid = 54;

/// One system entity: its fixed id, ident and (for attributes) definition.
struct SystemEntity {
    id: Eid,
    ident: &'static str,
    attr: Option<SystemAttr>,
}

/// The definition of a system attribute.
struct SystemAttr {
    value_type: &'static str,
    many: bool,
    unique: Option<&'static str>,
    index: bool,
    no_history: bool,
    doc: &'static str,
}

const fn ent(id: Eid, ident: &'static str) -> SystemEntity {
    SystemEntity { id, ident, attr: None }
}

const fn attr(
    id: Eid,
    ident: &'static str,
    value_type: &'static str,
    many: bool,
    unique: Option<&'static str>,
    index: bool,
    doc: &'static str,
) -> SystemEntity {
    SystemEntity { id, ident, attr: Some(SystemAttr { value_type, many, unique, index, no_history: false, doc }) }
}

/// The system entities with Datahike's ids (`datahike.constants/system-schema`).
const SYSTEM: [SystemEntity; 54] = [
    attr(1, "db/ident", "db.type/keyword", false, Some("db.unique/value"), false, "Names an attribute or enum"),
    attr(2, "db/valueType", "db.type/valueType", false, None, false, "The type of an attribute's values"),
    attr(3, "db/cardinality", "db.type/cardinality", false, None, false, "One value or many"),
    attr(4, "db/doc", "db.type/string", false, None, false, "Documentation"),
    attr(5, "db/index", "db.type/boolean", false, None, false, "Whether the attribute is in AVET"),
    attr(6, "db/unique", "db.type/unique", false, None, false, "Uniqueness of the attribute's values"),
    attr(7, "db/noHistory", "db.type/boolean", false, None, false, "Whether the attribute keeps no history"),
    attr(8, "db.install/attribute", "db.type.install/attribute", false, None, false, "Datomic interoperability"),
    SystemEntity {
        id: 9,
        ident: "db/txInstant",
        attr: Some(SystemAttr {
            value_type: "db.type/instant",
            many: false,
            unique: None,
            index: true,
            no_history: true,
            doc: "When the transaction happened",
        }),
    },
    ent(10, "db.cardinality/many"),
    ent(11, "db.cardinality/one"),
    ent(12, "db.part/sys"),
    ent(13, "db.part/tx"),
    ent(14, "db.part/user"),
    ent(15, "db.type/bigdec"),
    ent(16, "db.type/bigint"),
    ent(17, "db.type/boolean"),
    ent(18, "db.type/double"),
    ent(19, "db.type/cardinality"),
    ent(20, "db.type/float"),
    ent(21, "db.type/number"),
    ent(22, "db.type/instant"),
    ent(23, "db.type/keyword"),
    ent(24, "db.type/long"),
    ent(25, "db.type/ref"),
    ent(26, "db.type/string"),
    ent(27, "db.type/symbol"),
    ent(28, "db.type/unique"),
    ent(29, "db.type/uuid"),
    ent(30, "db.type/valueType"),
    ent(31, "db.type.install/attribute"),
    ent(32, "db.unique/identity"),
    ent(33, "db.unique/value"),
    ent(34, "db/isComponent"),
    ent(35, "db/tupleType"),
    ent(36, "db/tupleTypes"),
    ent(37, "db/tupleAttrs"),
    ent(38, "db.type/tuple"),
    attr(39, "db.valid/from", "db.type/instant", false, None, true, "Start of the valid time (inclusive)"),
    attr(40, "db.valid/to", "db.type/instant", false, None, true, "End of the valid time (exclusive)"),
    ent(41, "db.secondary/type"),
    ent(42, "db.secondary/attrs"),
    ent(43, "db.secondary/config"),
    ent(44, "db.secondary/status"),
    ent(45, "db.secondary/building-since-tx"),
    ent(46, "db.secondary/only"),
    attr(47, "dh.ref/db", "db.type/uuid", false, None, true, "Referenced database"),
    attr(48, "dh.ref/attr", "db.type/keyword", false, None, false, "Unique attribute of the referenced entity"),
    attr(49, "dh.ref/value", "db.type/string", false, None, true, "Lookup value of the referenced entity"),
    attr(50, "dh.ref/temporal", "db.type/string", false, None, false, "Point in time of the reference"),
    attr(51, "dh.ref/type", "db.type/keyword", false, None, false, "Kind of the reference"),
    ent(52, "db.type/store-ref"),
    attr(53, "db/maxLength", "db.type/long", false, None, false, "Largest allowed value length"),
    attr(54, "db.attr/preds", "db.type/symbol", true, None, false, "Predicates the values must satisfy"),
];

fn idents() -> &'static [Keyword; 54] {
    static IDENTS: OnceLock<[Keyword; 54]> = OnceLock::new();
    IDENTS.get_or_init(|| std::array::from_fn(|i| Keyword::new(SYSTEM[i].ident)))
}

/// The fixed id of system ident `k`.
pub fn system_eid(k: Keyword) -> Option<Eid> {
    // Every system ident lives in a `db` or `dh` namespace: reject the rest without a search.
    let ns = k.namespace()?;
    if !(ns.starts_with("db") || ns.starts_with("dh")) {
        return None;
    }
    idents().iter().position(|x| *x == k).map(|i| SYSTEM[i].id)
}

/// The ident of system entity `e`.
pub fn system_ident(e: Eid) -> Option<Keyword> {
    usize::try_from(e).ok().filter(|i| (1..=SYSTEM.len()).contains(i)).map(|i| idents()[i - 1])
}

/// Whether `e` is a system entity (which transactions may not change).
pub fn is_system_entity(e: Eid) -> bool {
    (1..=UE0).contains(&e)
}

/// Whether datoms of attribute `a` hold a schema enum (a value type, cardinality or
/// uniqueness keyword), which this option presents as the enum's entity id.
pub fn is_enum_attr(a: Keyword) -> bool {
    matches!(a.as_str(), "db/valueType" | "db/cardinality" | "db/unique" | "db/tupleType")
}

/// The datoms a new `:attribute-refs? true` database starts with, at transaction `tx0`:
/// every system entity's ident and attribute definition, and the `tx0` instant.
pub fn system_datoms() -> Vec<Datom> {
    let kw = Keyword::new;
    let mut out = Vec::new();
    for s in &SYSTEM {
        out.push(Datom::new(s.id, kw("db/ident"), Value::kw(s.ident), TX0, true));
        let Some(a) = &s.attr else { continue };
        out.push(Datom::new(s.id, kw("db/valueType"), Value::kw(a.value_type), TX0, true));
        let card = if a.many { "db.cardinality/many" } else { "db.cardinality/one" };
        out.push(Datom::new(s.id, kw("db/cardinality"), Value::kw(card), TX0, true));
        out.push(Datom::new(s.id, kw("db/doc"), Value::str(a.doc), TX0, true));
        if let Some(u) = a.unique {
            out.push(Datom::new(s.id, kw("db/unique"), Value::kw(u), TX0, true));
        }
        if a.index {
            out.push(Datom::new(s.id, kw("db/index"), Value::Boolean(true), TX0, true));
        }
        if a.no_history {
            out.push(Datom::new(s.id, kw("db/noHistory"), Value::Boolean(true), TX0, true));
        }
    }
    out.push(Datom::new(TX0, kw("db/txInstant"), Value::Instant(0), TX0, true));
    out
}

/// Translation between idents and ids for one database value: the system table plus the
/// database's own idents.
pub trait Idents {
    /// The entity carrying ident `k`.
    fn eid_of(&self, k: Keyword) -> Option<Eid>;
    /// The ident of entity `e`.
    fn ident_of(&self, e: Eid) -> Option<Keyword>;

    /// The attribute as a user of this option sees it: its id (its ident if it has none).
    fn present_attr(&self, a: Keyword) -> Value {
        self.eid_of(a).map_or(Value::Keyword(a), Value::Long)
    }

    /// The value of a datom of attribute `a` as a user sees it: schema enums as their ids.
    fn present_value(&self, a: Keyword, v: &Value) -> Value {
        match v {
            Value::Keyword(k) if is_enum_attr(a) => self.eid_of(*k).map_or_else(|| v.clone(), Value::Long),
            _ => v.clone(),
        }
    }

    /// An attribute given by a user: an ident, or an id naming one.
    fn attr_from_value(&self, v: &Value) -> Option<Keyword> {
        match v {
            Value::Keyword(k) => Some(*k),
            Value::Long(e) => self.ident_of(*e),
            _ => None,
        }
    }

    /// `[e a v tx added]` with the attribute (and a schema enum value) as ids.
    fn datom_edn(&self, d: &Datom) -> Edn {
        Edn::Vector(vec![
            Edn::Int(d.e),
            self.present_attr(d.a).to_edn(),
            self.present_value(d.a, &d.v).to_edn(),
            Edn::Int(d.tx()),
            Edn::Bool(d.added()),
        ])
    }

    /// Sorts datoms read from index `order` into the order that index has when its attributes
    /// are ids (Datahike's order under this option).
    fn sort_presented(&self, order: IndexOrder, datoms: &mut [Datom]) {
        let a = |d: &Datom| self.eid_of(d.a).unwrap_or(Eid::MAX);
        let v = |d: &Datom| self.present_value(d.a, &d.v);
        match order {
            IndexOrder::Eavt => datoms.sort_by_cached_key(|d| (d.e, a(d), v(d), d.tx())),
            IndexOrder::Aevt => datoms.sort_by_cached_key(|d| (a(d), d.e, v(d), d.tx())),
            IndexOrder::Avet => datoms.sort_by_cached_key(|d| (a(d), v(d), d.e, d.tx())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_ids_match_datahike() {
        assert_eq!(system_eid(Keyword::new("db/ident")), Some(1));
        assert_eq!(system_eid(Keyword::new("db/txInstant")), Some(9));
        assert_eq!(system_eid(Keyword::new("db.type/string")), Some(26));
        assert_eq!(system_eid(Keyword::new("db/isComponent")), Some(34));
        assert_eq!(system_eid(Keyword::new("db.attr/preds")), Some(54));
        assert_eq!(system_eid(Keyword::new("name")), None);
        assert_eq!(system_ident(23), Some(Keyword::new("db.type/keyword")));
        assert_eq!(system_ident(0), None);
        assert_eq!(system_ident(55), None);
        for (i, s) in SYSTEM.iter().enumerate() {
            assert_eq!(s.id, i as Eid + 1, "ids are dense and in order");
        }
        let datoms = system_datoms();
        assert!(datoms.iter().all(|d| d.tx() == TX0 && d.added()));
        assert_eq!(datoms.iter().filter(|d| d.a.as_str() == "db/ident").count(), 54);
    }
}
