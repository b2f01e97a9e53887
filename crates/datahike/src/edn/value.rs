//! The [`Edn`] value type. It imports nothing of the crate but the interned keywords and
//! symbols, so that `error` can carry values without depending on the reader or printer.

use super::kw::{Keyword, Symbol};
use bigdecimal::BigDecimal;
use num_bigint::BigInt;
use std::sync::Arc;

/// An EDN value. Maps and sets keep insertion order (as Clojure's small array maps do) so that
/// printing is deterministic; equality ignores that order.
#[derive(Debug, Default)]
pub enum Edn {
    /// `nil`
    #[default]
    Nil,
    /// `true` / `false`
    Bool(bool),
    /// A string.
    Str(Arc<str>),
    /// A character such as `\a` or `\newline`.
    Char(char),
    /// An integer that fits a signed 64-bit long.
    Int(i64),
    /// An integer written with `N` or too large for a long.
    BigInt(Arc<BigInt>),
    /// A floating point number (a Clojure double).
    Float(f64),
    /// A decimal written with `M`.
    BigDec(Arc<BigDecimal>),
    /// A keyword such as `:db/id`.
    Keyword(Keyword),
    /// A symbol such as `?e`.
    Symbol(Symbol),
    /// `( ... )`
    List(Vec<Edn>),
    /// `[ ... ]`
    Vector(Vec<Edn>),
    /// `{ ... }` as key/value pairs in reading order, keys distinct.
    Map(Vec<(Edn, Edn)>),
    /// `#{ ... }` in reading order, elements distinct.
    Set(Vec<Edn>),
    /// `#inst "..."` as milliseconds since the Unix epoch (a `java.util.Date`).
    Inst(i64),
    /// `#uuid "..."`
    Uuid(uuid::Uuid),
    /// Any other tagged literal `#tag value`.
    Tagged(Symbol, Box<Edn>),
}

impl Edn {
    /// `nil` behind a `'static` reference, for lookups that default to `nil`.
    pub const NIL: &'static Edn = &Edn::Nil;

    /// The deepest value the recursive writers (CBOR, transit, tagged JSON) are given: the
    /// EDN printer, plain JSON, drop, clone and comparison work at any depth, but these
    /// recurse once per level. Callers with values of unbounded depth (a recursive pull down
    /// a long chain) check [`Edn::nests_deeper_than`] first, as the server and `dthk` do.
    pub const WRITE_DEPTH_MAX: usize = 1000;

    /// Whether collections nest more than `max` levels deep in this value (found without
    /// recursion).
    pub fn nests_deeper_than(&self, max: usize) -> bool {
        let mut pending = vec![(self, 0usize)];
        while let Some((value, depth)) = pending.pop() {
            if depth > max {
                return true;
            }
            match value {
                Edn::List(items) | Edn::Vector(items) | Edn::Set(items) => {
                    pending.extend(items.iter().map(|x| (x, depth + 1)));
                }
                Edn::Map(entries) => {
                    pending.extend(entries.iter().flat_map(|(k, v)| [(k, depth + 1), (v, depth + 1)]));
                }
                Edn::Tagged(_, inner) => pending.push((inner, depth + 1)),
                _ => {}
            }
        }
        false
    }

    /// A keyword value from its text without colon.
    pub fn kw(text: &str) -> Edn {
        Edn::Keyword(Keyword::new(text))
    }
    /// A string value.
    pub fn str(text: &str) -> Edn {
        Edn::Str(text.into())
    }
    /// Looks a key up in a map; `None` for other values or absent keys.
    pub fn get(&self, key: &Edn) -> Option<&Edn> {
        match self {
            Edn::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    /// Looks a keyword key up in a map.
    pub fn get_kw(&self, key: &str) -> Option<&Edn> {
        self.get(&Edn::kw(key))
    }
    /// The elements of a list, vector or set.
    pub fn as_seq(&self) -> Option<&[Edn]> {
        match self {
            Edn::List(xs) | Edn::Vector(xs) | Edn::Set(xs) => Some(xs),
            _ => None,
        }
    }
    /// The keyword, if this is one.
    pub fn as_keyword(&self) -> Option<Keyword> {
        match self {
            Edn::Keyword(k) => Some(*k),
            _ => None,
        }
    }
    /// The symbol, if this is one.
    pub fn as_symbol(&self) -> Option<Symbol> {
        match self {
            Edn::Symbol(s) => Some(*s),
            _ => None,
        }
    }
}

impl PartialEq for Edn {
    /// Clojure's `=`. Lists, vectors, map values and tagged values are compared on a heap
    /// stack, so that a value nested as deep as a recursive pull makes it (a chain of 100,000
    /// maps) compares without stack growth; map keys and set elements, which the reader bounds
    /// to [`super::MAX_DEPTH`] levels, are compared by a nested call.
    fn eq(&self, other: &Self) -> bool {
        use Edn::*;
        let mut pending: Vec<(&Edn, &Edn)> = vec![(self, other)];
        while let Some(pair) = pending.pop() {
            let equal = match pair {
                (Nil, Nil) => true,
                (Bool(a), Bool(b)) => a == b,
                (Str(a), Str(b)) => a == b,
                (Char(a), Char(b)) => a == b,
                (Int(a), Int(b)) => a == b,
                (BigInt(a), BigInt(b)) => a == b,
                // Clojure's `=` on doubles; NaN is unequal to itself there too.
                (Float(a), Float(b)) => a == b,
                (BigDec(a), BigDec(b)) => a == b,
                (Keyword(a), Keyword(b)) => a == b,
                (Symbol(a), Symbol(b)) => a == b,
                // Lists and vectors with equal elements are equal, as in Clojure.
                (List(a) | Vector(a), List(b) | Vector(b)) => {
                    pending.extend(a.iter().zip(b.iter()));
                    a.len() == b.len()
                }
                // Keys are distinct within a map: each key of `a` has at most one partner in `b`.
                (Map(a), Map(b)) => {
                    a.len() == b.len()
                        && a.iter().all(|(k, v)| match b.iter().find(|(k2, _)| k == k2) {
                            Some((_, v2)) => {
                                pending.push((v, v2));
                                true
                            }
                            None => false,
                        })
                }
                (Set(a), Set(b)) => a.len() == b.len() && a.iter().all(|x| b.contains(x)),
                (Inst(a), Inst(b)) => a == b,
                (Uuid(a), Uuid(b)) => a == b,
                (Tagged(t, a), Tagged(u, b)) => {
                    pending.push((a, b));
                    t == u
                }
                _ => false,
            };
            if !equal {
                return false;
            }
        }
        true
    }
}

impl Clone for Edn {
    /// A deep copy made on a heap stack: the derived clone would recurse once per nesting
    /// level and overflow the stack on a value as deep as a recursive pull makes.
    fn clone(&self) -> Edn {
        /// Work left to do, innermost last: copy a value, or assemble a collection from the
        /// copies of its elements on top of `done`.
        enum Job<'a> {
            Copy(&'a Edn),
            Assemble(&'a Edn),
        }
        let mut jobs = vec![Job::Copy(self)];
        let mut done: Vec<Edn> = Vec::new();
        while let Some(job) = jobs.pop() {
            match job {
                Job::Copy(x) => match x {
                    Edn::List(xs) | Edn::Vector(xs) | Edn::Set(xs) => {
                        jobs.push(Job::Assemble(x));
                        jobs.extend(xs.iter().rev().map(Job::Copy));
                    }
                    Edn::Map(entries) => {
                        jobs.push(Job::Assemble(x));
                        jobs.extend(entries.iter().rev().flat_map(|(k, v)| [Job::Copy(v), Job::Copy(k)]));
                    }
                    Edn::Tagged(_, inner) => {
                        jobs.push(Job::Assemble(x));
                        jobs.push(Job::Copy(inner));
                    }
                    leaf => done.push(copy_leaf(leaf)),
                },
                Job::Assemble(x) => {
                    let copy = match x {
                        Edn::List(xs) => Edn::List(done.split_off(done.len() - xs.len())),
                        Edn::Vector(xs) => Edn::Vector(done.split_off(done.len() - xs.len())),
                        Edn::Set(xs) => Edn::Set(done.split_off(done.len() - xs.len())),
                        Edn::Map(entries) => {
                            let mut flat = done.split_off(done.len() - 2 * entries.len()).into_iter();
                            let mut pairs = Vec::with_capacity(entries.len());
                            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                                pairs.push((k, v));
                            }
                            Edn::Map(pairs)
                        }
                        Edn::Tagged(tag, _) => Edn::Tagged(*tag, Box::new(done.pop().unwrap_or_default())),
                        leaf => copy_leaf(leaf),
                    };
                    done.push(copy);
                }
            }
        }
        done.pop().unwrap_or_default()
    }
}

/// A copy of a value that is no collection nor tagged value.
fn copy_leaf(x: &Edn) -> Edn {
    match x {
        Edn::Nil => Edn::Nil,
        Edn::Bool(b) => Edn::Bool(*b),
        Edn::Str(s) => Edn::Str(s.clone()),
        Edn::Char(c) => Edn::Char(*c),
        Edn::Int(i) => Edn::Int(*i),
        Edn::BigInt(i) => Edn::BigInt(i.clone()),
        Edn::Float(f) => Edn::Float(*f),
        Edn::BigDec(d) => Edn::BigDec(d.clone()),
        Edn::Keyword(k) => Edn::Keyword(*k),
        Edn::Symbol(s) => Edn::Symbol(*s),
        Edn::Inst(t) => Edn::Inst(*t),
        Edn::Uuid(u) => Edn::Uuid(*u),
        Edn::List(_) | Edn::Vector(_) | Edn::Map(_) | Edn::Set(_) | Edn::Tagged(..) => {
            unreachable!("collections are copied by Edn::clone")
        }
    }
}

/// Whether dropping `x` drops further values that may be collections.
fn holds_collections(x: &Edn) -> bool {
    let nested = |x: &Edn| matches!(x, Edn::List(_) | Edn::Vector(_) | Edn::Map(_) | Edn::Set(_) | Edn::Tagged(..));
    match x {
        Edn::List(xs) | Edn::Vector(xs) | Edn::Set(xs) => xs.iter().any(nested),
        Edn::Map(entries) => entries.iter().any(|(k, v)| nested(k) || nested(v)),
        Edn::Tagged(_, inner) => nested(inner),
        _ => false,
    }
}

/// Moves the elements of a collection (or the value of a tagged value) onto `stack`.
fn take_children(x: &mut Edn, stack: &mut Vec<Edn>) {
    match x {
        Edn::List(xs) | Edn::Vector(xs) | Edn::Set(xs) => stack.append(xs),
        Edn::Map(entries) => {
            for (k, v) in entries.drain(..) {
                stack.push(k);
                stack.push(v);
            }
        }
        Edn::Tagged(_, inner) => stack.push(std::mem::replace(&mut **inner, Edn::Nil)),
        _ => {}
    }
}

impl Drop for Edn {
    /// The derived drop would recurse once per nesting level, and a value as deep as a
    /// recursive pull makes (100,000 nested maps) would overflow the stack. A value holding
    /// collections is taken apart on a heap stack instead: every value dropped from there
    /// holds no collection any more and so drops without recursing.
    fn drop(&mut self) {
        if !holds_collections(self) {
            return;
        }
        let mut stack = Vec::new();
        take_children(self, &mut stack);
        while let Some(mut x) = stack.pop() {
            if holds_collections(&x) {
                take_children(&mut x, &mut stack);
            }
        }
    }
}
