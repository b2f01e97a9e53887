//! Datoms `[e a v tx added]` and the component orders of the three indices.

use crate::edn::{Edn, Keyword, Symbol};
use crate::value::{Eid, Value};
use std::cmp::Ordering;
use std::fmt;

/// The first transaction entity id (`0x20000000`); user entity ids stay below it.
pub const TX0: Eid = 0x2000_0000;
/// The largest entity or transaction id.
pub const EMAX: Eid = 0x7FFF_FFFF;

/// One fact. `tx` is signed as in Datahike: positive for an assertion, negative for a
/// retraction; [`Datom::tx`] and [`Datom::added`] read it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Datom {
    /// Entity id.
    pub e: Eid,
    /// Attribute.
    pub a: Keyword,
    /// Value.
    pub v: Value,
    /// Transaction id, negated for a retraction.
    pub signed_tx: i64,
}

impl Datom {
    /// An assertion or retraction.
    pub fn new(e: Eid, a: Keyword, v: Value, tx: Eid, added: bool) -> Datom {
        Datom { e, a, v, signed_tx: if added { tx } else { -tx } }
    }
    /// The transaction id.
    pub fn tx(&self) -> Eid {
        self.signed_tx.abs()
    }
    /// Whether this datom asserts (true) or retracts (false).
    pub fn added(&self) -> bool {
        self.signed_tx > 0
    }
    /// `[e a v tx added]` as EDN.
    pub fn to_edn_vector(&self) -> Edn {
        Edn::Vector(vec![
            Edn::Int(self.e),
            Edn::Keyword(self.a),
            self.v.to_edn(),
            Edn::Int(self.tx()),
            Edn::Bool(self.added()),
        ])
    }
    /// `#datahike/Datom [e a v tx added]`, as Datahike prints a datom.
    pub fn to_edn(&self) -> Edn {
        tagged(self.to_edn_vector())
    }
}

/// `#datahike/Datom` around a datom's `[e a v tx added]`.
pub(crate) fn tagged(vector: Edn) -> Edn {
    Edn::Tagged(Symbol::new("datahike/Datom"), Box::new(vector))
}

impl fmt::Debug for Datom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_edn())
    }
}
impl fmt::Display for Datom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_edn())
    }
}

/// The order of an index: which components sort first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IndexOrder {
    /// Entity, attribute, value, tx.
    Eavt,
    /// Attribute, entity, value, tx.
    Aevt,
    /// Attribute, value, entity, tx.
    Avet,
}

impl IndexOrder {
    /// All three orders.
    pub const ALL: [IndexOrder; 3] = [IndexOrder::Eavt, IndexOrder::Aevt, IndexOrder::Avet];

    /// Datahike's keyword for the index, e.g. `:eavt`.
    pub fn name(self) -> &'static str {
        match self {
            IndexOrder::Eavt => "eavt",
            IndexOrder::Aevt => "aevt",
            IndexOrder::Avet => "avet",
        }
    }

    /// Parses `eavt`, `aevt` or `avet` (also with a leading colon).
    pub fn parse(text: &str) -> Option<IndexOrder> {
        match text.trim_start_matches(':') {
            "eavt" => Some(IndexOrder::Eavt),
            "aevt" => Some(IndexOrder::Aevt),
            "avet" => Some(IndexOrder::Avet),
            _ => None,
        }
    }

    /// Compares two datoms by (e, a, v) in this order. Current indices hold one datom per
    /// (e, a, v) and use this comparator.
    pub fn cmp_eav(self, x: &Datom, y: &Datom) -> Ordering {
        match self {
            IndexOrder::Eavt => x.e.cmp(&y.e).then_with(|| x.a.cmp(&y.a)).then_with(|| x.v.cmp(&y.v)),
            IndexOrder::Aevt => x.a.cmp(&y.a).then_with(|| x.e.cmp(&y.e)).then_with(|| x.v.cmp(&y.v)),
            IndexOrder::Avet => x.a.cmp(&y.a).then_with(|| x.v.cmp(&y.v)).then_with(|| x.e.cmp(&y.e)),
        }
    }

    /// Compares two datoms fully: (e, a, v) in this order, then tx, then assertion before
    /// retraction. History (temporal) indices use this comparator.
    pub fn cmp(self, x: &Datom, y: &Datom) -> Ordering {
        self.cmp_eav(x, y).then_with(|| x.tx().cmp(&y.tx())).then_with(|| y.added().cmp(&x.added()))
    }

    /// Compares a datom with a partial key. Missing trailing components match anything, so
    /// the result is `Equal` for every datom that has the key as a prefix.
    pub fn cmp_prefix(self, d: &Datom, key: &DatomKey) -> Ordering {
        let e = || key.e.map_or(Ordering::Equal, |e| d.e.cmp(&e));
        let a = || key.a.map_or(Ordering::Equal, |a| d.a.cmp(&a));
        let v = || key.v.as_ref().map_or(Ordering::Equal, |v| d.v.cmp(v));
        let t = || key.tx.map_or(Ordering::Equal, |t| d.tx().cmp(&t));
        match self {
            IndexOrder::Eavt => e().then_with(a).then_with(v).then_with(t),
            IndexOrder::Aevt => a().then_with(e).then_with(v).then_with(t),
            IndexOrder::Avet => a().then_with(v).then_with(e).then_with(t),
        }
    }
}

/// A partial datom used to address index ranges: the components given, in index order, must
/// form a prefix (later components are ignored once one is missing).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatomKey {
    /// Entity.
    pub e: Option<Eid>,
    /// Attribute.
    pub a: Option<Keyword>,
    /// Value.
    pub v: Option<Value>,
    /// Transaction.
    pub tx: Option<Eid>,
}

impl DatomKey {
    /// Normalises the key so that only a prefix in `order` is kept: `[e _ v]` in EAVT is `[e]`.
    pub fn prefix_for(mut self, order: IndexOrder) -> DatomKey {
        let present = match order {
            IndexOrder::Eavt => [self.e.is_some(), self.a.is_some(), self.v.is_some(), self.tx.is_some()],
            IndexOrder::Aevt => [self.a.is_some(), self.e.is_some(), self.v.is_some(), self.tx.is_some()],
            IndexOrder::Avet => [self.a.is_some(), self.v.is_some(), self.e.is_some(), self.tx.is_some()],
        };
        let len = present.iter().take_while(|p| **p).count();
        let keep = |pos: usize| pos < len;
        let (pe, pa, pv) = match order {
            IndexOrder::Eavt => (0, 1, 2),
            IndexOrder::Aevt => (1, 0, 2),
            IndexOrder::Avet => (2, 0, 1),
        };
        if !keep(pe) {
            self.e = None;
        }
        if !keep(pa) {
            self.a = None;
        }
        if !keep(pv) {
            self.v = None;
        }
        if !keep(3) {
            self.tx = None;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_prefixes() {
        let name = Keyword::new("name");
        let age = Keyword::new("age");
        let d1 = Datom::new(1, name, Value::str("b"), TX0 + 1, true);
        let d2 = Datom::new(2, age, Value::Long(5), TX0 + 1, true);
        assert_eq!(IndexOrder::Eavt.cmp(&d1, &d2), Ordering::Less);
        assert_eq!(IndexOrder::Aevt.cmp(&d1, &d2), Ordering::Greater);
        let key = DatomKey { e: Some(1), ..Default::default() };
        assert_eq!(IndexOrder::Eavt.cmp_prefix(&d1, &key), Ordering::Equal);
        assert_eq!(IndexOrder::Eavt.cmp_prefix(&d2, &key), Ordering::Greater);
        let key = DatomKey { e: Some(1), v: Some(Value::Long(3)), ..Default::default() };
        assert_eq!(key.prefix_for(IndexOrder::Eavt), DatomKey { e: Some(1), ..Default::default() });
        assert!(!Datom::new(1, name, Value::Nil, TX0 + 2, false).added());
    }
}
