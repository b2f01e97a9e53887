//! Built-in functions and predicates of `:where` clauses, named as in Datahike's `built-ins`,
//! with Clojure's semantics: numbers compare across types, `<` and friends are variadic and
//! also order strings, instants and other comparable values of one type; a comparison of
//! incomparable values is a type error, which a predicate treats as false.
//!
//! Besides Datahike's `built-ins`, Datahike calls any public `clojure.core` function and any
//! function a namespace-qualified symbol names; of those this table has the type predicates,
//! `abs`, `first`/`second`/`last`/`nth`/`get` on tuples, `re-pattern` and, in `strings`, the
//! common `clojure.string` functions. `set`, `hash-map` and `array-map` make set and map
//! values (`Value::Set`, `Value::Map`), which the collection functions here take as Clojure
//! does; `complement` makes a function, which a relation cannot hold: it is an error that
//! says so.

use super::exec::Source;
use super::strings;
use crate::attr_refs::Idents;
use crate::edn::{Edn, Keyword, Symbol};
use crate::value::Value;
use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// A function argument: a value, a source (`$`), or a constant as written (for nested `q`).
pub(crate) enum Arg<'a> {
    Val(Value),
    Src(&'a Source),
    Form(&'a Edn),
}

/// Why a function failed.
#[derive(Debug)]
pub(crate) enum FnError {
    /// Clojure's ClassCastException / IllegalArgumentException: a predicate is false.
    Type(String),
    /// Anything else (arity, arithmetic overflow...): the query fails.
    Other(String),
    /// An error to pass on unchanged (from a nested query).
    Fail(crate::error::Error),
}

pub(crate) type BuiltinFn = fn(&[Arg]) -> Result<Value, FnError>;
pub(crate) type R = Result<Value, FnError>;

/// Clojure truthiness.
pub(crate) fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Nil | Value::Boolean(false))
}

pub(crate) fn val<'a>(a: &'a Arg) -> Result<&'a Value, FnError> {
    match a {
        Arg::Val(v) => Ok(v),
        Arg::Src(_) => Err(FnError::Type("a source is not a value".into())),
        Arg::Form(f) => Err(FnError::Other(format!("{f} is not a value"))),
    }
}

pub(crate) fn arity(args: &[Arg], n: usize, name: &str) -> Result<(), FnError> {
    if args.len() != n {
        return Err(FnError::Other(format!("Wrong number of args ({}) passed to {name}", args.len())));
    }
    Ok(())
}

// ------------------------------------------------------------------ numbers

#[derive(Clone, Copy, Debug)]
enum Num {
    Long(i64),
    Double(f64),
}

fn num(v: &Value) -> Option<Num> {
    match v {
        Value::Long(x) => Some(Num::Long(*x)),
        Value::Double(x) => Some(Num::Double(*x)),
        Value::Float(x) => Some(Num::Double(f64::from(*x))),
        Value::BigInt(b) => i64::try_from(b.as_ref()).ok().map(Num::Long),
        Value::BigDec(d) => d.to_string().parse::<f64>().ok().map(Num::Double),
        _ => None,
    }
}

fn num_arg(a: &Arg) -> Result<Num, FnError> {
    let v = val(a)?;
    num(v).ok_or_else(|| FnError::Type(format!("{} is not a number", v.to_edn())))
}

fn as_f64(n: Num) -> f64 {
    match n {
        Num::Long(x) => x as f64,
        Num::Double(x) => x,
    }
}

fn num_value(n: Num) -> Value {
    match n {
        Num::Long(x) => Value::Long(x),
        Num::Double(x) => Value::Double(x),
    }
}

fn cmp_num(a: Num, b: Num) -> Ordering {
    match (a, b) {
        (Num::Long(x), Num::Long(y)) => x.cmp(&y),
        _ => as_f64(a).partial_cmp(&as_f64(b)).unwrap_or(Ordering::Equal),
    }
}

fn arith(args: &[Arg], name: &str, unit: i64, op: fn(i64, i64) -> Option<i64>, fop: fn(f64, f64) -> f64) -> R {
    let mut acc = Num::Long(unit);
    for (i, a) in args.iter().enumerate() {
        let x = num_arg(a)?;
        if i == 0 && args.len() > 1 {
            acc = x;
            continue;
        }
        acc = match (acc, x) {
            (Num::Long(p), Num::Long(q)) => {
                Num::Long(op(p, q).ok_or_else(|| FnError::Other(format!("integer overflow in {name}")))?)
            }
            (p, q) => Num::Double(fop(as_f64(p), as_f64(q))),
        };
    }
    Ok(num_value(acc))
}

fn plus(args: &[Arg]) -> R {
    arith(args, "+", 0, i64::checked_add, |a, b| a + b)
}
fn times(args: &[Arg]) -> R {
    arith(args, "*", 1, i64::checked_mul, |a, b| a * b)
}
fn minus(args: &[Arg]) -> R {
    if args.is_empty() {
        return Err(FnError::Other("Wrong number of args (0) passed to -".into()));
    }
    if args.len() == 1 {
        return match num_arg(&args[0])? {
            Num::Long(x) => {
                x.checked_neg().map(Value::Long).ok_or_else(|| FnError::Other("integer overflow in -".into()))
            }
            Num::Double(x) => Ok(Value::Double(-x)),
        };
    }
    arith(args, "-", 0, i64::checked_sub, |a, b| a - b)
}
fn divide(args: &[Arg]) -> R {
    if args.is_empty() {
        return Err(FnError::Other("Wrong number of args (0) passed to /".into()));
    }
    let mut acc = if args.len() == 1 { Num::Long(1) } else { num_arg(&args[0])? };
    let rest = if args.len() == 1 { args } else { &args[1..] };
    for a in rest {
        let x = num_arg(a)?;
        acc = match (acc, x) {
            (Num::Long(_), Num::Long(0)) => return Err(FnError::Other("Divide by zero".into())),
            (Num::Long(p), Num::Long(q)) if p % q == 0 => Num::Long(p / q),
            // Clojure would make a ratio; there is no ratio type here, so a double.
            (p, q) => Num::Double(as_f64(p) / as_f64(q)),
        };
    }
    Ok(num_value(acc))
}

fn int_op(args: &[Arg], name: &str, op: fn(i64, i64) -> i64) -> R {
    arity(args, 2, name)?;
    match (num_arg(&args[0])?, num_arg(&args[1])?) {
        (_, Num::Long(0)) => Err(FnError::Other("Divide by zero".into())),
        (Num::Long(a), Num::Long(b)) => Ok(Value::Long(op(a, b))),
        (a, b) => {
            let (a, b) = (as_f64(a), as_f64(b));
            Ok(Value::Double(match name {
                "quot" => (a / b).trunc(),
                "rem" => a % b,
                _ => ((a % b) + b) % b,
            }))
        }
    }
}
fn quot(args: &[Arg]) -> R {
    int_op(args, "quot", |a, b| a.wrapping_div(b))
}
fn rem(args: &[Arg]) -> R {
    int_op(args, "rem", |a, b| a.wrapping_rem(b))
}
fn modulo(args: &[Arg]) -> R {
    int_op(args, "mod", |a, b| a.wrapping_rem(b).wrapping_add(b).wrapping_rem(b))
}
fn inc(args: &[Arg]) -> R {
    arity(args, 1, "inc")?;
    match num_arg(&args[0])? {
        Num::Long(x) => {
            x.checked_add(1).map(Value::Long).ok_or_else(|| FnError::Other("integer overflow in inc".into()))
        }
        Num::Double(x) => Ok(Value::Double(x + 1.0)),
    }
}
fn dec(args: &[Arg]) -> R {
    arity(args, 1, "dec")?;
    match num_arg(&args[0])? {
        Num::Long(x) => {
            x.checked_sub(1).map(Value::Long).ok_or_else(|| FnError::Other("integer overflow in dec".into()))
        }
        Num::Double(x) => Ok(Value::Double(x - 1.0)),
    }
}

fn num_pred(args: &[Arg], name: &str, p: fn(Num) -> Result<bool, FnError>) -> R {
    arity(args, 1, name)?;
    Ok(Value::Boolean(p(num_arg(&args[0])?)?))
}
fn zero(args: &[Arg]) -> R {
    num_pred(args, "zero?", |n| Ok(as_f64(n) == 0.0))
}
fn pos(args: &[Arg]) -> R {
    num_pred(args, "pos?", |n| Ok(as_f64(n) > 0.0))
}
fn neg(args: &[Arg]) -> R {
    num_pred(args, "neg?", |n| Ok(as_f64(n) < 0.0))
}
fn even(args: &[Arg]) -> R {
    num_pred(args, "even?", |n| match n {
        Num::Long(x) => Ok(x % 2 == 0),
        Num::Double(_) => Err(FnError::Other("Argument must be an integer".into())),
    })
}
fn odd(args: &[Arg]) -> R {
    num_pred(args, "odd?", |n| match n {
        Num::Long(x) => Ok(x % 2 != 0),
        Num::Double(_) => Err(FnError::Other("Argument must be an integer".into())),
    })
}

// ------------------------------------------------------------------ comparison

/// Clojure's `compare`: numbers numerically, nil first, values of one type by their order;
/// values of different types are not comparable.
pub(crate) fn compare(a: &Value, b: &Value) -> Result<Ordering, FnError> {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return Ok(cmp_num(x, y));
    }
    match (a, b) {
        (Value::Nil, Value::Nil) => Ok(Ordering::Equal),
        (Value::Nil, _) => Ok(Ordering::Less),
        (_, Value::Nil) => Ok(Ordering::Greater),
        // Clojure's sets and maps are not Comparable.
        (Value::Set(_) | Value::Map(_), _) | (_, Value::Set(_) | Value::Map(_)) => {
            Err(FnError::Type(format!("{} cannot be compared with {}", a.to_edn(), b.to_edn())))
        }
        _ if a.type_tag() == b.type_tag() => Ok(a.cmp(b)),
        _ => Err(FnError::Type(format!("{} cannot be compared with {}", a.to_edn(), b.to_edn()))),
    }
}

/// Clojure's `=` on values (numbers of different kinds are not equal, as in Clojure: `(= 1 1.0)`
/// is false).
fn equal(a: &Value, b: &Value) -> bool {
    a == b
}

fn chain(args: &[Arg], ok: fn(Ordering) -> bool) -> R {
    if args.is_empty() {
        return Err(FnError::Other("Wrong number of args (0) passed to comparison".into()));
    }
    for w in args.windows(2) {
        if !ok(compare(val(&w[0])?, val(&w[1])?)?) {
            return Ok(Value::Boolean(false));
        }
    }
    Ok(Value::Boolean(true))
}
fn lt(args: &[Arg]) -> R {
    chain(args, |o| o == Ordering::Less)
}
fn gt(args: &[Arg]) -> R {
    chain(args, |o| o == Ordering::Greater)
}
fn le(args: &[Arg]) -> R {
    chain(args, |o| o != Ordering::Greater)
}
fn ge(args: &[Arg]) -> R {
    chain(args, |o| o != Ordering::Less)
}
fn eq(args: &[Arg]) -> R {
    let vals = args.iter().map(val).collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Boolean(vals.windows(2).all(|w| equal(w[0], w[1]))))
}
fn not_eq(args: &[Arg]) -> R {
    Ok(Value::Boolean(!truthy(&eq(args)?)))
}
fn num_eq(args: &[Arg]) -> R {
    let nums = args.iter().map(num_arg).collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Boolean(nums.windows(2).all(|w| cmp_num(w[0], w[1]) == Ordering::Equal)))
}
fn compare_fn(args: &[Arg]) -> R {
    arity(args, 2, "compare")?;
    Ok(Value::Long(match compare(val(&args[0])?, val(&args[1])?)? {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }))
}
fn extreme(args: &[Arg], want: Ordering) -> R {
    let mut best: Option<&Value> = None;
    for a in args {
        let v = val(a)?;
        best = Some(match best {
            Some(b) if compare(v, b)? != want => b,
            _ => v,
        });
    }
    best.cloned().ok_or_else(|| FnError::Other("Wrong number of args (0) passed to min/max".into()))
}
fn max(args: &[Arg]) -> R {
    extreme(args, Ordering::Greater)
}
fn min(args: &[Arg]) -> R {
    extreme(args, Ordering::Less)
}

// ------------------------------------------------------------------ logic and types

pub(crate) fn one<'a>(args: &'a [Arg], name: &str) -> Result<&'a Value, FnError> {
    arity(args, 1, name)?;
    val(&args[0])
}
fn is_nil(args: &[Arg]) -> R {
    Ok(Value::Boolean(matches!(one(args, "nil?")?, Value::Nil)))
}
fn is_some(args: &[Arg]) -> R {
    Ok(Value::Boolean(!matches!(one(args, "some?")?, Value::Nil)))
}
fn is_true(args: &[Arg]) -> R {
    Ok(Value::Boolean(matches!(one(args, "true?")?, Value::Boolean(true))))
}
fn is_false(args: &[Arg]) -> R {
    Ok(Value::Boolean(matches!(one(args, "false?")?, Value::Boolean(false))))
}
fn not(args: &[Arg]) -> R {
    Ok(Value::Boolean(!truthy(one(args, "not")?)))
}
fn and(args: &[Arg]) -> R {
    let mut last = Value::Boolean(true);
    for a in args {
        last = val(a)?.clone();
        if !truthy(&last) {
            return Ok(last);
        }
    }
    Ok(last)
}
fn or(args: &[Arg]) -> R {
    let mut last = Value::Nil;
    for a in args {
        last = val(a)?.clone();
        if truthy(&last) {
            return Ok(last);
        }
    }
    Ok(last)
}
fn identity(args: &[Arg]) -> R {
    Ok(one(args, "identity")?.clone())
}
fn vector(args: &[Arg]) -> R {
    Ok(Value::Tuple(args.iter().map(|a| val(a).cloned()).collect::<Result<Vec<_>, _>>()?.into()))
}
fn count(args: &[Arg]) -> R {
    Ok(Value::Long(match one(args, "count")? {
        Value::Nil => 0,
        Value::String(s) => s.chars().count() as i64,
        Value::Tuple(xs) | Value::Set(xs) => xs.len() as i64,
        Value::Map(xs) => xs.len() as i64,
        Value::Bytes(b) => b.len() as i64,
        other => return Err(FnError::Other(format!("count not supported on {}", other.to_edn()))),
    }))
}
fn range(args: &[Arg]) -> R {
    let ns = args.iter().map(num_arg).collect::<Result<Vec<_>, _>>()?;
    let longs: Vec<i64> = ns
        .iter()
        .map(|n| match n {
            Num::Long(x) => Ok(*x),
            Num::Double(_) => Err(FnError::Other("range needs integers".into())),
        })
        .collect::<Result<_, _>>()?;
    let (start, end, step) = match longs.as_slice() {
        [end] => (0, *end, 1),
        [start, end] => (*start, *end, 1),
        [start, end, step] if *step != 0 => (*start, *end, *step),
        _ => return Err(FnError::Other("range takes 1 to 3 arguments (and a non-zero step)".into())),
    };
    let mut out = Vec::new();
    let mut x = start;
    while (step > 0 && x < end) || (step < 0 && x > end) {
        out.push(Value::Long(x));
        if out.len() > 10_000_000 {
            return Err(FnError::Other("range too large".into()));
        }
        x += step;
    }
    Ok(Value::Tuple(out.into()))
}
fn name_fn(args: &[Arg]) -> R {
    Ok(match one(args, "name")? {
        Value::Keyword(k) => Value::str(k.name()),
        Value::Symbol(s) => Value::str(s.name()),
        Value::String(s) => Value::String(s.clone()),
        other => return Err(FnError::Type(format!("Doesn't support name: {}", other.to_edn()))),
    })
}
fn namespace_fn(args: &[Arg]) -> R {
    Ok(match one(args, "namespace")? {
        Value::Keyword(k) => k.namespace().map_or(Value::Nil, Value::str),
        Value::Symbol(s) => s.namespace().map_or(Value::Nil, Value::str),
        other => return Err(FnError::Type(format!("Doesn't support namespace: {}", other.to_edn()))),
    })
}
fn keyword_fn(args: &[Arg]) -> R {
    let parts = args.iter().map(val).collect::<Result<Vec<_>, _>>()?;
    let text = |v: &Value| match v {
        Value::String(s) => Ok(s.to_string()),
        Value::Keyword(k) => Ok(k.as_str().to_string()),
        Value::Symbol(s) => Ok(s.as_str().to_string()),
        other => Err(FnError::Type(format!("Cannot make a keyword of {}", other.to_edn()))),
    };
    match parts.as_slice() {
        [x] => Ok(Value::Keyword(Keyword::new(&text(x)?))),
        [Value::Nil, n] => Ok(Value::Keyword(Keyword::new(&text(n)?))),
        [ns, n] => Ok(Value::Keyword(Keyword::from_parts(Some(&text(ns)?), &text(n)?))),
        _ => Err(FnError::Other("Wrong number of args passed to keyword".into())),
    }
}

/// Clojure's `str` of one value.
pub(crate) fn str_of(v: &Value) -> String {
    match v {
        Value::Nil => String::new(),
        Value::String(s) => s.to_string(),
        Value::Instant(_) | Value::Uuid(_) => {
            // `str` of a Date/UUID is its toString, close to the printed form without the tag.
            let printed = v.to_edn().to_string();
            match printed.find('"') {
                Some(i) => printed[i + 1..printed.len().saturating_sub(1)].to_string(),
                None => printed,
            }
        }
        other => other.to_edn().to_string(),
    }
}
fn str_fn(args: &[Arg]) -> R {
    let mut s = String::new();
    for a in args {
        s.push_str(&str_of(val(a)?));
    }
    Ok(Value::String(s.into()))
}
fn pr_str_fn(args: &[Arg]) -> R {
    let parts = args.iter().map(|a| val(a).map(|v| v.to_edn().to_string())).collect::<Result<Vec<_>, _>>()?;
    Ok(Value::String(parts.join(" ").into()))
}
fn subs(args: &[Arg]) -> R {
    let (s, start, end) = match args {
        [s, start] => (val(s)?, num_arg(start)?, None),
        [s, start, end] => (val(s)?, num_arg(start)?, Some(num_arg(end)?)),
        _ => return Err(FnError::Other(format!("Wrong number of args ({}) passed to subs", args.len()))),
    };
    let Value::String(s) = s else { return Err(FnError::Type(format!("subs needs a string, got {}", s.to_edn()))) };
    let chars: Vec<char> = s.chars().collect();
    let idx = |n: Num| match n {
        Num::Long(x) if x >= 0 => Ok(x as usize),
        _ => Err(FnError::Other("String index out of range".into())),
    };
    let start = idx(start)?;
    let end = match end {
        Some(e) => idx(e)?,
        None => chars.len(),
    };
    if start > end || end > chars.len() {
        return Err(FnError::Other(format!(
            "String index out of range: begin {start}, end {end}, length {}",
            chars.len()
        )));
    }
    Ok(Value::String(chars[start..end].iter().collect::<String>().into()))
}

// ------------------------------------------------------------------ database functions

fn db_of<'a>(a: &'a Arg) -> Result<&'a crate::db::Db, FnError> {
    match a {
        Arg::Src(Source::Db(db)) => Ok(db),
        _ => Err(FnError::Other("the first argument must be a database source ($)".into())),
    }
}

/// An attribute argument: its ident, or under `:attribute-refs? true` also its id.
fn attr_of(db: &crate::db::Db, v: &Value) -> Result<Keyword, FnError> {
    let found = match v {
        Value::Long(e) if db.attr_refs() => db.schema().eid_ident(*e),
        _ => v.as_keyword(),
    };
    found.ok_or_else(|| FnError::Other(format!("attribute should be a keyword, got {}", v.to_edn())))
}

/// The entity an id, ident or lookup ref names, if any.
fn eid_of(db: &crate::db::Db, e: &Value) -> Result<Option<crate::value::Eid>, FnError> {
    match e {
        Value::Long(x) => Ok(Some(*x)),
        other => db.entid(&other.to_edn()).map_err(|err| FnError::Other(err.to_string())),
    }
}

fn first_value(db: &crate::db::Db, e: &Value, a: Keyword) -> Result<Option<Value>, FnError> {
    let Some(eid) = eid_of(db, e)? else { return Ok(None) };
    let key = crate::datom::DatomKey { e: Some(eid), a: Some(a), ..Default::default() };
    let datoms = db.datoms_key(crate::datom::IndexOrder::Eavt, &key).map_err(|err| FnError::Other(err.to_string()))?;
    Ok(datoms.into_iter().next().map(|d| d.v))
}

fn get_else(args: &[Arg]) -> R {
    arity(args, 4, "get-else")?;
    let db = db_of(&args[0])?;
    let a = attr_of(db, val(&args[2])?)?;
    if db.schema().is_many(a) {
        return Err(FnError::Other(format!("{a} is a cardinality-many attribute; get-else needs cardinality one")));
    }
    let default = val(&args[3])?;
    if matches!(default, Value::Nil) {
        return Err(FnError::Other("get-else: nil default value is not supported".into()));
    }
    Ok(first_value(db, val(&args[1])?, a)?.unwrap_or_else(|| default.clone()))
}

fn get_some(args: &[Arg]) -> R {
    if args.len() < 3 {
        return Err(FnError::Other(format!("Wrong number of args ({}) passed to get-some", args.len())));
    }
    let db = db_of(&args[0])?;
    let e = val(&args[1])?;
    for a in &args[2..] {
        let a = attr_of(db, val(a)?)?;
        if let Some(v) = first_value(db, e, a)? {
            // The attribute as the datom shows it: an id under :attribute-refs? true.
            let shown = if db.attr_refs() { db.schema().present_attr(a) } else { Value::Keyword(a) };
            return Ok(Value::Tuple(vec![shown, v].into()));
        }
    }
    Ok(Value::Nil)
}

fn missing(args: &[Arg]) -> R {
    arity(args, 3, "missing?")?;
    let db = db_of(&args[0])?;
    let a = attr_of(db, val(&args[2])?)?;
    // A reverse attribute `:ns/_attr` (not itself in the schema): missing when nothing refers
    // to the entity through `:ns/attr`, as Datahike's entity lookup answers it.
    if let Some(forward) = reverse_attr(db, a) {
        let Some(eid) = eid_of(db, val(&args[1])?)? else { return Ok(Value::Boolean(true)) };
        if !db.schema().attr(forward).is_some_and(|x| x.is_ref()) {
            return Ok(Value::Boolean(true));
        }
        let key = crate::datom::DatomKey { a: Some(forward), v: Some(Value::Long(eid)), ..Default::default() };
        let referrer = db.index(crate::datom::IndexOrder::Avet).range(&key, &key).next();
        let referrer = referrer.transpose().map_err(|err| FnError::Other(err.to_string()))?;
        return Ok(Value::Boolean(referrer.is_none()));
    }
    Ok(Value::Boolean(first_value(db, val(&args[1])?, a)?.is_none()))
}

/// The forward attribute of a reverse attribute `:ns/_attr` that the schema does not define
/// under its own name.
fn reverse_attr(db: &crate::db::Db, a: Keyword) -> Option<Keyword> {
    let name = a.name().strip_prefix('_').filter(|rest| !rest.is_empty())?;
    if db.schema().attr(a).is_some() {
        return None;
    }
    Some(Keyword::from_parts(a.namespace(), name))
}

// ------------------------------------------------------------------ random numbers

thread_local! {
    /// Xorshift state for `rand` and `rand-int`, seeded from the clock and the thread.
    static RNG: Cell<u64> = Cell::new({
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let thread = std::thread::current().id();
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&thread, &mut h);
        (nanos ^ std::hash::Hasher::finish(&h)) | 1
    });
}

/// A uniform double in [0, 1).
fn next_f64() -> f64 {
    RNG.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

fn rand(args: &[Arg]) -> R {
    match args {
        [] => Ok(Value::Double(next_f64())),
        [n] => Ok(Value::Double(next_f64() * as_f64(num_arg(n)?))),
        _ => Err(FnError::Other(format!("Wrong number of args ({}) passed to rand", args.len()))),
    }
}

fn rand_int(args: &[Arg]) -> R {
    arity(args, 1, "rand-int")?;
    // `(int (rand n))`: truncation towards zero.
    Ok(Value::Long((next_f64() * as_f64(num_arg(&args[0])?)) as i64))
}

// ------------------------------------------------------------------ identity, types, collections

/// `identical?`: the same object. Values shared through an `Arc` are identical when they
/// share it, as a JVM object is identical to itself; nil, booleans and keywords are interned,
/// and the JVM caches the longs -128 to 127. Other numbers, instants and uuids are boxed anew.
fn identical(args: &[Arg]) -> R {
    arity(args, 2, "identical?")?;
    Ok(Value::Boolean(match (val(&args[0])?, val(&args[1])?) {
        (Value::Nil, Value::Nil) => true,
        (Value::Boolean(a), Value::Boolean(b)) => a == b,
        (Value::Keyword(a), Value::Keyword(b)) => a == b,
        (Value::Long(a), Value::Long(b)) => a == b && (-128..=127).contains(a),
        (Value::String(a), Value::String(b)) => Arc::ptr_eq(a, b),
        (Value::Tuple(a), Value::Tuple(b)) => Arc::ptr_eq(a, b),
        (Value::Bytes(a), Value::Bytes(b)) => Arc::ptr_eq(a, b),
        (Value::BigInt(a), Value::BigInt(b)) => Arc::ptr_eq(a, b),
        (Value::BigDec(a), Value::BigDec(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }))
}

/// `meta`: no value here carries metadata.
fn meta(args: &[Arg]) -> R {
    one(args, "meta")?;
    Ok(Value::Nil)
}

/// The JVM class Datahike's `type` returns for a value, as a symbol.
fn class_name(v: &Value) -> Option<&'static str> {
    Some(match v {
        Value::Nil => return None,
        Value::Bytes(_) => "[B",
        Value::BigInt(_) => "clojure.lang.BigInt",
        Value::Keyword(_) => "clojure.lang.Keyword",
        Value::Tuple(_) => "clojure.lang.PersistentVector",
        Value::Symbol(_) => "clojure.lang.Symbol",
        Value::Boolean(_) => "java.lang.Boolean",
        Value::Double(_) => "java.lang.Double",
        Value::Float(_) => "java.lang.Float",
        Value::Long(_) => "java.lang.Long",
        Value::String(_) => "java.lang.String",
        Value::BigDec(_) => "java.math.BigDecimal",
        Value::Instant(_) => "java.util.Date",
        Value::Uuid(_) => "java.util.UUID",
        Value::Set(_) => "clojure.lang.PersistentHashSet",
        // Clojure's small maps are array maps.
        Value::Map(xs) if xs.len() <= 8 => "clojure.lang.PersistentArrayMap",
        Value::Map(_) => "clojure.lang.PersistentHashMap",
    })
}

fn type_fn(args: &[Arg]) -> R {
    Ok(class_name(one(args, "type")?).map_or(Value::Nil, |c| Value::Symbol(Symbol::new(c))))
}

/// The number of elements `seq` would give, or a type error for values that are not seqable.
fn seq_len(v: &Value, name: &str) -> Result<usize, FnError> {
    match v {
        Value::Nil => Ok(0),
        Value::String(s) => Ok(s.chars().count()),
        Value::Tuple(xs) | Value::Set(xs) => Ok(xs.len()),
        Value::Map(xs) => Ok(xs.len()),
        Value::Bytes(b) => Ok(b.len()),
        other => Err(FnError::Type(format!(
            "{name}: Don't know how to create ISeq from: {}",
            class_name(other).unwrap_or("nil")
        ))),
    }
}

fn not_empty(args: &[Arg]) -> R {
    let v = one(args, "not-empty")?;
    Ok(if seq_len(v, "not-empty")? == 0 { Value::Nil } else { v.clone() })
}

/// Datahike binds `empty?` to `clojure.core/empty`: an empty collection of the same type (a
/// vector for a tuple), nil for anything else. So `[(empty? ?x)]` holds for every tuple.
fn empty(args: &[Arg]) -> R {
    Ok(match one(args, "empty?")? {
        Value::Tuple(_) => Value::Tuple(Vec::new().into()),
        Value::Set(_) => Value::set([]),
        Value::Map(_) => Value::map([]),
        _ => Value::Nil,
    })
}

/// `clojure.core/empty?` itself.
fn is_empty(args: &[Arg]) -> R {
    Ok(Value::Boolean(seq_len(one(args, "empty?")?, "empty?")? == 0))
}

fn contains(args: &[Arg]) -> R {
    arity(args, 2, "contains?")?;
    let (coll, key) = (val(&args[0])?, val(&args[1])?);
    let len = match coll {
        Value::Nil => return Ok(Value::Boolean(false)),
        Value::Set(xs) => return Ok(Value::Boolean(xs.binary_search(key).is_ok())),
        Value::Map(xs) => return Ok(Value::Boolean(xs.binary_search_by(|(k, _)| k.cmp(key)).is_ok())),
        Value::String(s) => s.chars().count(),
        Value::Tuple(xs) => xs.len(),
        Value::Bytes(b) => b.len(),
        other => {
            return Err(FnError::Type(format!(
                "contains? not supported on type: {}",
                class_name(other).unwrap_or("nil")
            )))
        }
    };
    // Vectors, strings and arrays are keyed by index.
    Ok(Value::Boolean(matches!(key, Value::Long(i) if *i >= 0 && (*i as usize) < len)))
}

/// `(-differ? & xs)`: whether the first half of the arguments differs from the second.
fn differ(args: &[Arg]) -> R {
    let vals = args.iter().map(val).collect::<Result<Vec<_>, _>>()?;
    let half = vals.len().div_ceil(2);
    Ok(Value::Boolean(vals[..half] != vals[half..]))
}

fn type_pred(args: &[Arg], name: &str, p: fn(&Value) -> bool) -> R {
    Ok(Value::Boolean(p(one(args, name)?)))
}
fn is_string(args: &[Arg]) -> R {
    type_pred(args, "string?", |v| matches!(v, Value::String(_)))
}
fn is_keyword(args: &[Arg]) -> R {
    type_pred(args, "keyword?", |v| matches!(v, Value::Keyword(_)))
}
fn is_symbol(args: &[Arg]) -> R {
    type_pred(args, "symbol?", |v| matches!(v, Value::Symbol(_)))
}
fn is_number(args: &[Arg]) -> R {
    type_pred(args, "number?", |v| {
        matches!(v, Value::Long(_) | Value::Double(_) | Value::Float(_) | Value::BigInt(_) | Value::BigDec(_))
    })
}
fn is_int(args: &[Arg]) -> R {
    type_pred(args, "int?", |v| matches!(v, Value::Long(_)))
}
fn is_integer(args: &[Arg]) -> R {
    type_pred(args, "integer?", |v| matches!(v, Value::Long(_) | Value::BigInt(_)))
}
fn is_double(args: &[Arg]) -> R {
    type_pred(args, "double?", |v| matches!(v, Value::Double(_)))
}
fn is_float(args: &[Arg]) -> R {
    type_pred(args, "float?", |v| matches!(v, Value::Double(_) | Value::Float(_)))
}
fn is_boolean(args: &[Arg]) -> R {
    type_pred(args, "boolean?", |v| matches!(v, Value::Boolean(_)))
}
fn is_uuid(args: &[Arg]) -> R {
    type_pred(args, "uuid?", |v| matches!(v, Value::Uuid(_)))
}
fn is_inst(args: &[Arg]) -> R {
    type_pred(args, "inst?", |v| matches!(v, Value::Instant(_)))
}
fn is_vector(args: &[Arg]) -> R {
    type_pred(args, "vector?", |v| matches!(v, Value::Tuple(_)))
}
fn is_coll(args: &[Arg]) -> R {
    type_pred(args, "coll?", |v| matches!(v, Value::Tuple(_) | Value::Set(_) | Value::Map(_)))
}
fn is_set(args: &[Arg]) -> R {
    type_pred(args, "set?", |v| matches!(v, Value::Set(_)))
}
fn is_map(args: &[Arg]) -> R {
    type_pred(args, "map?", |v| matches!(v, Value::Map(_)))
}

/// `(set coll)`: the distinct elements of a tuple, set or map (its `[k v]` entries).
fn set(args: &[Arg]) -> R {
    Ok(match one(args, "set")? {
        Value::Nil => Value::set([]),
        s @ Value::Set(_) => s.clone(),
        Value::Tuple(xs) => Value::set(xs.iter().cloned()),
        Value::Map(xs) => Value::set(xs.iter().map(|(k, v)| Value::Tuple(vec![k.clone(), v.clone()].into()))),
        Value::Bytes(b) => Value::set(b.iter().map(|x| Value::Long(i64::from(*x as i8)))),
        other => {
            return Err(FnError::Type(format!(
                "set: Don't know how to create ISeq from: {}",
                class_name(other).unwrap_or("nil")
            )))
        }
    })
}

/// `(hash-map k v ...)` and `(array-map k v ...)`: a map of the pairs, later keys winning.
fn hash_map(args: &[Arg]) -> R {
    if !args.len().is_multiple_of(2) {
        return Err(FnError::Other(format!(
            "No value supplied for key: {}",
            args.last().map(val).transpose()?.map_or(Edn::Nil, Value::to_edn)
        )));
    }
    let vals = args.iter().map(|a| val(a).cloned()).collect::<Result<Vec<_>, _>>()?;
    let mut it = vals.into_iter();
    let mut pairs = Vec::with_capacity(args.len() / 2);
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        pairs.push((k, v));
    }
    Ok(Value::map(pairs))
}

/// `complement` returns a function; a query relation holds values only.
fn complement(_: &[Arg]) -> R {
    Err(FnError::Other(
        "complement returns a function, which a query cannot bind; negate the predicate with \
         (not [(pred ?x)]) instead"
            .into(),
    ))
}

fn abs(args: &[Arg]) -> R {
    Ok(match one(args, "abs")? {
        // Clojure's abs of Long/MIN_VALUE is Long/MIN_VALUE.
        Value::Long(x) => Value::Long(x.wrapping_abs()),
        Value::Double(x) => Value::Double(x.abs()),
        Value::Float(x) => Value::Float(x.abs()),
        Value::BigInt(b) if b.sign() == num_bigint::Sign::Minus => Value::BigInt(Arc::new(-b.as_ref())),
        Value::BigDec(d) => Value::BigDec(Arc::new(d.abs())),
        v @ Value::BigInt(_) => v.clone(),
        other => return Err(FnError::Type(format!("abs: {} is not a number", other.to_edn()))),
    })
}

/// The elements of a tuple or set (none for nil; a map's `[k v]` entries), for the sequence
/// functions.
fn elements<'a>(v: &'a Value, name: &str) -> Result<std::borrow::Cow<'a, [Value]>, FnError> {
    use std::borrow::Cow;
    match v {
        Value::Nil => Ok(Cow::Borrowed(&[])),
        Value::Tuple(xs) | Value::Set(xs) => Ok(Cow::Borrowed(xs)),
        Value::Map(xs) => {
            Ok(Cow::Owned(xs.iter().map(|(k, v)| Value::Tuple(vec![k.clone(), v.clone()].into())).collect()))
        }
        other => Err(FnError::Type(format!("{name} takes a collection here, got {}", other.to_edn()))),
    }
}
fn first(args: &[Arg]) -> R {
    Ok(elements(one(args, "first")?, "first")?.first().cloned().unwrap_or(Value::Nil))
}
fn second(args: &[Arg]) -> R {
    Ok(elements(one(args, "second")?, "second")?.get(1).cloned().unwrap_or(Value::Nil))
}
fn last(args: &[Arg]) -> R {
    Ok(elements(one(args, "last")?, "last")?.last().cloned().unwrap_or(Value::Nil))
}
fn index_of(v: &Value) -> Option<usize> {
    match v {
        Value::Long(i) => usize::try_from(*i).ok(),
        _ => None,
    }
}
fn nth(args: &[Arg]) -> R {
    let (coll, i, default) = match args {
        [c, i] => (val(c)?, val(i)?, None),
        [c, i, d] => (val(c)?, val(i)?, Some(val(d)?)),
        _ => return Err(FnError::Other(format!("Wrong number of args ({}) passed to nth", args.len()))),
    };
    if matches!(coll, Value::Set(_) | Value::Map(_)) {
        return Err(FnError::Other(format!("nth not supported on this type: {}", class_name(coll).unwrap_or("nil"))));
    }
    let xs = elements(coll, "nth")?;
    if !matches!(i, Value::Long(_)) {
        return Err(FnError::Type(format!("nth: index {} is not an integer", i.to_edn())));
    }
    match (index_of(i).and_then(|i| xs.get(i)), default) {
        (Some(x), _) => Ok(x.clone()),
        (None, Some(d)) => Ok(d.clone()),
        // `(nth nil i)` is nil.
        (None, None) if matches!(coll, Value::Nil) => Ok(Value::Nil),
        (None, None) => Err(FnError::Other(format!("nth: index {} out of bounds for {}", i.to_edn(), coll.to_edn()))),
    }
}
fn get(args: &[Arg]) -> R {
    let (coll, key, default) = match args {
        [c, k] => (val(c)?, val(k)?, Value::Nil),
        [c, k, d] => (val(c)?, val(k)?, val(d)?.clone()),
        _ => return Err(FnError::Other(format!("Wrong number of args ({}) passed to get", args.len()))),
    };
    // `get` on anything but a tuple, set or map finds nothing.
    Ok(match coll {
        Value::Tuple(xs) => index_of(key).and_then(|i| xs.get(i)).cloned().unwrap_or(default),
        Value::Set(xs) => xs.binary_search(key).map_or(default, |i| xs[i].clone()),
        Value::Map(xs) => xs.binary_search_by(|(k, _)| k.cmp(key)).map_or(default, |i| xs[i].1.clone()),
        _ => default,
    })
}

// ------------------------------------------------------------------ nested queries

/// `(q query inputs...)`: runs a query inside a query. The query and constant inputs arrive as
/// written; the result is bound as a value, sets and vectors as tuples.
fn nested_q(args: &[Arg]) -> R {
    let Some((query, rest)) = args.split_first() else {
        return Err(FnError::Other("Wrong number of args (0) passed to q".into()));
    };
    let query = match query {
        Arg::Form(form) => (*form).clone(),
        Arg::Val(v) => v.to_edn(),
        Arg::Src(_) => return Err(FnError::Type("q: the first argument should be a query, got a source".into())),
    };
    let inputs: Vec<super::QueryInput> = rest
        .iter()
        .map(|a| match a {
            Arg::Src(Source::Db(db)) => super::QueryInput::Db(db.clone()),
            Arg::Src(Source::Coll(tuples)) => super::QueryInput::Edn(Edn::Vector(
                tuples.iter().map(|t| Edn::Vector(t.iter().map(Value::to_edn).collect())).collect(),
            )),
            Arg::Val(v) => super::QueryInput::Edn(v.to_edn()),
            Arg::Form(form) => super::QueryInput::Edn((*form).clone()),
        })
        .collect();
    let result = super::q(&query, &inputs).map_err(FnError::Fail)?;
    result_value(&result)
}

/// A nested query's result as a value.
fn result_value(x: &Edn) -> R {
    match x {
        Edn::Vector(xs) | Edn::List(xs) => {
            Ok(Value::Tuple(xs.iter().map(result_value).collect::<Result<Vec<_>, _>>()?.into()))
        }
        Edn::Set(xs) => Ok(Value::set(xs.iter().map(result_value).collect::<Result<Vec<_>, _>>()?)),
        Edn::Map(kvs) => Ok(Value::map(
            kvs.iter().map(|(k, v)| Ok((result_value(k)?, result_value(v)?))).collect::<Result<Vec<_>, FnError>>()?,
        )),
        other => Value::from_edn(other).ok_or_else(|| {
            FnError::Other(format!("q: the nested query returned {other}, which cannot be bound as a value"))
        }),
    }
}

fn table() -> &'static HashMap<&'static str, BuiltinFn> {
    static TABLE: OnceLock<HashMap<&'static str, BuiltinFn>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let entries: &[(&str, BuiltinFn)] = &[
            ("=", eq),
            ("==", num_eq),
            ("not=", not_eq),
            ("!=", not_eq),
            ("<", lt),
            (">", gt),
            ("<=", le),
            (">=", ge),
            ("before?", lt),
            ("after?", gt),
            ("+", plus),
            ("-", minus),
            ("*", times),
            ("/", divide),
            ("quot", quot),
            ("rem", rem),
            ("mod", modulo),
            ("inc", inc),
            ("dec", dec),
            ("max", max),
            ("min", min),
            ("zero?", zero),
            ("pos?", pos),
            ("neg?", neg),
            ("even?", even),
            ("odd?", odd),
            ("compare", compare_fn),
            ("true?", is_true),
            ("false?", is_false),
            ("nil?", is_nil),
            ("some?", is_some),
            ("not", not),
            ("and", and),
            ("or", or),
            ("identity", identity),
            ("ground", identity),
            ("untuple", identity),
            ("vector", vector),
            ("list", vector),
            ("tuple", vector),
            ("count", count),
            ("range", range),
            ("name", name_fn),
            ("namespace", namespace_fn),
            ("keyword", keyword_fn),
            ("str", str_fn),
            ("pr-str", pr_str_fn),
            ("subs", subs),
            ("get-else", get_else),
            ("get-some", get_some),
            ("missing?", missing),
            ("rand", rand),
            ("rand-int", rand_int),
            ("identical?", identical),
            ("meta", meta),
            ("type", type_fn),
            ("not-empty", not_empty),
            ("empty?", empty),
            ("empty", empty),
            ("contains?", contains),
            ("print-str", strings::print_str),
            ("println-str", strings::println_str),
            ("prn-str", strings::prn_str),
            ("re-find", strings::re_find),
            ("re-matches", strings::re_matches),
            ("re-seq", strings::re_seq),
            ("re-pattern", strings::re_pattern),
            ("-differ?", differ),
            ("q", nested_q),
            // Further clojure.core functions, which Datahike calls too.
            ("string?", is_string),
            ("keyword?", is_keyword),
            ("symbol?", is_symbol),
            ("number?", is_number),
            ("int?", is_int),
            ("integer?", is_integer),
            ("double?", is_double),
            ("float?", is_float),
            ("boolean?", is_boolean),
            ("uuid?", is_uuid),
            ("inst?", is_inst),
            ("vector?", is_vector),
            ("coll?", is_coll),
            ("set?", is_set),
            ("map?", is_map),
            ("set", set),
            ("hash-map", hash_map),
            ("array-map", hash_map),
            ("complement", complement),
            ("abs", abs),
            ("first", first),
            ("second", second),
            ("last", last),
            ("nth", nth),
            ("get", get),
        ];
        entries.iter().copied().collect()
    })
}

/// A function a query can call.
pub(crate) enum Func {
    /// A built-in taking values.
    Builtin(BuiltinFn),
    /// A built-in taking its constant arguments as written (nested `q`).
    Forms(BuiltinFn),
    /// A function written in Rust: registered under this name, or an `:in` variable's.
    User(Symbol, super::custom::QueryFn),
}

impl Func {
    /// Whether constants should be passed as [`Arg::Form`].
    pub fn wants_forms(&self) -> bool {
        matches!(self, Func::Forms(_))
    }

    pub fn call(&self, args: &[Arg]) -> R {
        match self {
            Func::Builtin(f) | Func::Forms(f) => f(args),
            Func::User(name, f) => {
                let values = args
                    .iter()
                    .map(|a| match a {
                        Arg::Val(v) => Ok(v.clone()),
                        _ => Err(FnError::Other(format!("{name} takes values; a source cannot be passed to it"))),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                f(&values).map_err(|e| FnError::Other(format!("{name} failed: {e}")))
            }
        }
    }
}

/// The built-in named `name`: a name of Datahike's `built-ins` or of the clojure.core
/// functions here (also as `clojure.core/name`), `clojure.string/...`, or `datahike.query/q`.
pub(crate) fn lookup(name: Symbol) -> Option<Func> {
    let n = match name.namespace() {
        // Datahike's `empty?` is `empty`, but the qualified symbol resolves to the real one.
        Some("clojure.core") if name.name() == "empty?" => return Some(Func::Builtin(is_empty)),
        Some("clojure.core") => name.name(),
        Some("clojure.string") => return strings::lookup(name.name()).map(Func::Builtin),
        Some("datahike.query") if name.name() == "q" => "q",
        Some(_) => return None,
        None => name.as_str(),
    };
    let f = table().get(n).copied()?;
    Some(if n == "q" { Func::Forms(f) } else { Func::Builtin(f) })
}
