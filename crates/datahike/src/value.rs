//! Datom values: every Datahike value type, with one total order across types that the
//! indices use. The cross-type order comes from the type alone (`Value::type_tag`, with the
//! query-only sets and maps ranked where their Clojure classes sort).

use crate::edn::{Edn, Keyword, Symbol};
use bigdecimal::BigDecimal;
use num_bigint::BigInt;
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// An entity id (also used for transaction ids, which live in the same space).
pub type Eid = i64;

/// A value in the `v` slot of a datom. Refs are stored as [`Value::Long`] entity ids, as in
/// Datahike. `Nil` only occurs inside tuples.
#[derive(Clone, Debug)]
pub enum Value {
    /// `nil`, only as a tuple element.
    Nil,
    /// `:db.type/bytes`
    Bytes(Arc<[u8]>),
    /// `:db.type/bigint`
    BigInt(Arc<BigInt>),
    /// `:db.type/keyword`
    Keyword(Keyword),
    /// `:db.type/tuple`
    Tuple(Arc<[Value]>),
    /// `:db.type/symbol`
    Symbol(Symbol),
    /// `:db.type/boolean`
    Boolean(bool),
    /// `:db.type/double`
    Double(f64),
    /// `:db.type/float`
    Float(f32),
    /// `:db.type/long` and `:db.type/ref`
    Long(i64),
    /// `:db.type/string`
    String(Arc<str>),
    /// `:db.type/bigdec`
    BigDec(Arc<BigDecimal>),
    /// `:db.type/instant`, milliseconds since the Unix epoch.
    Instant(i64),
    /// `:db.type/uuid`
    Uuid(uuid::Uuid),
    /// A set, as query functions make it (`set`): distinct elements in value order. Not a
    /// datom value.
    Set(Arc<[Value]>),
    /// A map, as query functions make it (`hash-map`, `array-map`): entries with distinct
    /// keys in key order. Not a datom value.
    Map(Arc<[(Value, Value)]>),
}

/// How deeply tuples (and the query-only sets and maps) may nest in a value: a tuple of
/// scalars is 1. The one limit of what a transaction accepts and what the index codec reads
/// back ([`crate::index::codec::MAX_TUPLE_DEPTH`] is this), so that everything written can be
/// read.
pub const MAX_VALUE_DEPTH: usize = 32;

/// How deeply vectors, lists, sets and maps nest in `edn` (a scalar is 0).
pub fn edn_depth(edn: &Edn) -> usize {
    // An explicit stack: the EDN reader bounds nesting, but values built in code need not be.
    let mut deepest = 0;
    let mut stack = vec![(edn, 0usize)];
    while let Some((edn, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match edn {
            Edn::Vector(xs) | Edn::List(xs) | Edn::Set(xs) => stack.extend(xs.iter().map(|x| (x, depth + 1))),
            Edn::Map(entries) => {
                stack.extend(entries.iter().flat_map(|(k, v)| [(k, depth + 1), (v, depth + 1)]));
            }
            Edn::Tagged(_, inner) => stack.push((inner, depth)),
            _ => {}
        }
    }
    deepest
}

impl Value {
    /// The byte that orders values of different types. The order follows the JVM class names
    /// Datahike compares by (`[B` < `clojure.lang.BigInt` < ... < `java.util.UUID`), with nil
    /// first, so that mixed-type attributes sort as they do in Datahike.
    pub fn type_tag(&self) -> u8 {
        match self {
            Value::Nil => 0,
            Value::Bytes(_) => 1,
            Value::BigInt(_) => 2,
            Value::Keyword(_) => 3,
            Value::Tuple(_) => 4,
            Value::Symbol(_) => 5,
            Value::Boolean(_) => 6,
            Value::Double(_) => 7,
            Value::Float(_) => 8,
            Value::Long(_) => 9,
            Value::String(_) => 10,
            Value::BigDec(_) => 11,
            Value::Instant(_) => 12,
            Value::Uuid(_) => 13,
            Value::Map(_) => 14,
            Value::Set(_) => 15,
        }
    }

    /// The rank of the value's type in the order across types: the JVM class names Datahike
    /// compares by, where `clojure.lang.PersistentArrayMap`/`PersistentHashMap` and
    /// `PersistentHashSet` fall between `Keyword` and `PersistentVector` (tuples).
    fn class_rank(&self) -> u8 {
        match self {
            Value::Map(_) => 10,
            Value::Set(_) => 11,
            other => {
                let tag = other.type_tag();
                if tag <= 3 {
                    tag * 3
                } else {
                    tag * 3 + 3
                }
            }
        }
    }

    /// A set of `items` (duplicates dropped).
    pub fn set(items: impl IntoIterator<Item = Value>) -> Value {
        let mut xs: Vec<Value> = items.into_iter().collect();
        xs.sort();
        xs.dedup();
        Value::Set(xs.into())
    }

    /// A map of `entries`; a later entry wins over an earlier one with an equal key.
    pub fn map(entries: impl IntoIterator<Item = (Value, Value)>) -> Value {
        let mut xs: Vec<(Value, Value)> = entries.into_iter().collect();
        // Stable: equal keys keep their order, and the last of each run is kept.
        xs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Value, Value)> = Vec::with_capacity(xs.len());
        for (k, v) in xs {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => out.push((k, v)),
            }
        }
        Value::Map(out.into())
    }

    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::String(s.into())
    }

    /// A keyword value from its text without colon.
    pub fn kw(s: &str) -> Value {
        Value::Keyword(Keyword::new(s))
    }

    /// The long inside, if any (refs are longs).
    pub fn as_long(&self) -> Option<i64> {
        match self {
            Value::Long(x) => Some(*x),
            _ => None,
        }
    }

    /// The keyword inside, if any.
    pub fn as_keyword(&self) -> Option<Keyword> {
        match self {
            Value::Keyword(k) => Some(*k),
            _ => None,
        }
    }

    /// Converts an EDN scalar into a value without schema knowledge: integers become longs,
    /// floats doubles, vectors tuples. Maps, sets, lists, chars and other tags are not values,
    /// nor are tuples nested deeper than [`MAX_VALUE_DEPTH`] (the stored form could not be
    /// read back).
    pub fn from_edn(edn: &Edn) -> Option<Value> {
        if edn_depth(edn) > MAX_VALUE_DEPTH {
            return None;
        }
        Value::from_edn_unchecked(edn)
    }

    fn from_edn_unchecked(edn: &Edn) -> Option<Value> {
        Some(match edn {
            Edn::Nil => Value::Nil,
            Edn::Bool(b) => Value::Boolean(*b),
            Edn::Str(s) => Value::String(s.clone()),
            Edn::Int(i) => Value::Long(*i),
            Edn::BigInt(b) => Value::BigInt(b.clone()),
            Edn::Float(f) => Value::Double(*f),
            Edn::BigDec(d) => Value::BigDec(d.clone()),
            Edn::Keyword(k) => Value::Keyword(*k),
            Edn::Symbol(s) => Value::Symbol(*s),
            Edn::Inst(ms) => Value::Instant(*ms),
            Edn::Uuid(u) => Value::Uuid(*u),
            Edn::Vector(xs) => {
                Value::Tuple(xs.iter().map(Value::from_edn_unchecked).collect::<Option<Vec<_>>>()?.into())
            }
            Edn::Tagged(tag, inner) if tag.as_str() == "bytes" => match inner.as_ref() {
                Edn::Vector(xs) => Value::Bytes(
                    xs.iter()
                        .map(|x| match x {
                            Edn::Int(i) => u8::try_from(*i).ok().or_else(|| i8::try_from(*i).ok().map(|b| b as u8)),
                            _ => None,
                        })
                        .collect::<Option<Vec<u8>>>()?
                        .into(),
                ),
                _ => return None,
            },
            _ => return None,
        })
    }

    /// Converts to EDN for printing. Bytes print as `#bytes [..]`, a tag our reader reads back.
    pub fn to_edn(&self) -> Edn {
        match self {
            Value::Nil => Edn::Nil,
            Value::Bytes(b) => Edn::Tagged(
                Symbol::new("bytes"),
                Box::new(Edn::Vector(b.iter().map(|x| Edn::Int(i64::from(*x as i8))).collect())),
            ),
            Value::BigInt(b) => Edn::BigInt(b.clone()),
            Value::Keyword(k) => Edn::Keyword(*k),
            Value::Tuple(xs) => Edn::Vector(xs.iter().map(Value::to_edn).collect()),
            Value::Symbol(s) => Edn::Symbol(*s),
            Value::Boolean(b) => Edn::Bool(*b),
            Value::Double(d) => Edn::Float(*d),
            Value::Float(f) => Edn::Float(f64::from(*f)),
            Value::Long(l) => Edn::Int(*l),
            Value::String(s) => Edn::Str(s.clone()),
            Value::BigDec(d) => Edn::BigDec(d.clone()),
            Value::Instant(ms) => Edn::Inst(*ms),
            Value::Uuid(u) => Edn::Uuid(*u),
            Value::Set(xs) => Edn::Set(xs.iter().map(Value::to_edn).collect()),
            Value::Map(xs) => Edn::Map(xs.iter().map(|(k, v)| (k.to_edn(), v.to_edn())).collect()),
        }
    }
}

fn cmp_f64(a: f64, b: f64) -> Ordering {
    // Total order; -0.0 == 0.0 as in Java's Double.compare would differ, but datoms must agree
    // with equality, and Clojure's `=` treats them as equal numbers.
    if a == b {
        Ordering::Equal
    } else {
        a.total_cmp(&b)
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Long(a), Value::Long(b)) => a.cmp(b),
            (Value::String(a), Value::String(b)) => a.cmp(b),
            (Value::Keyword(a), Value::Keyword(b)) => a.cmp(b),
            (Value::Instant(a), Value::Instant(b)) => a.cmp(b),
            (Value::Boolean(a), Value::Boolean(b)) => a.cmp(b),
            (Value::Double(a), Value::Double(b)) => cmp_f64(*a, *b),
            (Value::Float(a), Value::Float(b)) => cmp_f64(f64::from(*a), f64::from(*b)),
            (Value::Uuid(a), Value::Uuid(b)) => a.cmp(b),
            (Value::Symbol(a), Value::Symbol(b)) => a.cmp(b),
            (Value::BigInt(a), Value::BigInt(b)) => a.cmp(b),
            (Value::BigDec(a), Value::BigDec(b)) => a.cmp(b),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            (Value::Tuple(a), Value::Tuple(b)) => a.cmp(b),
            (Value::Nil, Value::Nil) => Ordering::Equal,
            // Clojure compares neither sets nor maps; any total order consistent with
            // equality serves the query's hash tables and sorting.
            (Value::Set(a), Value::Set(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            (Value::Map(a), Value::Map(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            _ => self.class_rank().cmp(&other.class_rank()),
        }
    }
}
impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Value {}
impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(self.type_tag());
        match self {
            Value::Nil => {}
            Value::Bytes(b) => b.hash(state),
            Value::BigInt(b) => b.hash(state),
            Value::Keyword(k) => k.hash(state),
            Value::Tuple(xs) => xs.hash(state),
            Value::Symbol(s) => s.hash(state),
            Value::Boolean(b) => b.hash(state),
            // 0.0 and -0.0 compare equal, so they must hash alike.
            Value::Double(d) => (if *d == 0.0 { 0.0 } else { *d }).to_bits().hash(state),
            Value::Float(f) => (if *f == 0.0 { 0.0 } else { *f }).to_bits().hash(state),
            Value::Long(l) => l.hash(state),
            Value::String(s) => s.hash(state),
            // BigDecimal equality ignores scale (1.0M == 1.00M), so hash the normalized form.
            Value::BigDec(d) => d.normalized().hash(state),
            Value::Instant(ms) => ms.hash(state),
            Value::Uuid(u) => u.hash(state),
            Value::Set(xs) => xs.hash(state),
            Value::Map(xs) => xs.hash(state),
        }
    }
}

impl From<i64> for Value {
    fn from(x: i64) -> Self {
        Value::Long(x)
    }
}
impl From<&str> for Value {
    fn from(x: &str) -> Self {
        Value::str(x)
    }
}
impl From<bool> for Value {
    fn from(x: bool) -> Self {
        Value::Boolean(x)
    }
}
impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Double(x)
    }
}
impl From<Keyword> for Value {
    fn from(x: Keyword) -> Self {
        Value::Keyword(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_within_and_across_types() {
        assert!(Value::Long(1) < Value::Long(2));
        assert!(Value::str("a") < Value::str("b"));
        // Double sorts before Long (class-name order), whatever the numbers.
        assert!(Value::Double(100.0) < Value::Long(1));
        assert!(Value::Nil < Value::Bytes(Arc::from(&b""[..])));
        assert_eq!(Value::Double(0.0), Value::Double(-0.0));
        let t1 = Value::Tuple(vec![Value::Nil, Value::Long(2)].into());
        let t2 = Value::Tuple(vec![Value::Long(1), Value::Long(0)].into());
        assert!(t1 < t2);
    }
}
