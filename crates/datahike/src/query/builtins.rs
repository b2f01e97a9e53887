//! Built-in functions and predicates of `:where` clauses, named as in Datahike's `built-ins`,
//! with Clojure's semantics: numbers compare across types, `<` and friends are variadic and
//! also order strings, instants and other comparable values of one type; a comparison of
//! incomparable values is a type error, which a predicate treats as false.

use super::exec::Source;
use crate::edn::{Keyword, Symbol};
use crate::value::Value;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::OnceLock;

/// A function argument: a value or a source (`$`).
pub(crate) enum Arg<'a> {
    Val(Value),
    Src(&'a Source),
}

/// Why a function failed.
#[derive(Debug)]
pub(crate) enum FnError {
    /// Clojure's ClassCastException / IllegalArgumentException: a predicate is false.
    Type(String),
    /// Anything else (arity, arithmetic overflow...): the query fails.
    Other(String),
}

pub(crate) type BuiltinFn = fn(&[Arg]) -> Result<Value, FnError>;
type R = Result<Value, FnError>;

/// Clojure truthiness.
pub(crate) fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Nil | Value::Boolean(false))
}

fn val<'a>(a: &'a Arg) -> Result<&'a Value, FnError> {
    match a {
        Arg::Val(v) => Ok(v),
        Arg::Src(_) => Err(FnError::Type("a source is not a value".into())),
    }
}

fn arity(args: &[Arg], n: usize, name: &str) -> Result<(), FnError> {
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

fn one<'a>(args: &'a [Arg], name: &str) -> Result<&'a Value, FnError> {
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
        Value::Tuple(xs) => xs.len() as i64,
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

fn attr_of(v: &Value) -> Result<Keyword, FnError> {
    v.as_keyword().ok_or_else(|| FnError::Other(format!("attribute should be a keyword, got {}", v.to_edn())))
}

fn first_value(db: &crate::db::Db, e: &Value, a: Keyword) -> Result<Option<Value>, FnError> {
    let eid = match e {
        Value::Long(x) => Some(*x),
        other => db.entid(&other.to_edn()).map_err(|err| FnError::Other(err.to_string()))?,
    };
    let Some(eid) = eid else { return Ok(None) };
    let key = crate::datom::DatomKey { e: Some(eid), a: Some(a), ..Default::default() };
    let datoms = db.datoms_key(crate::datom::IndexOrder::Eavt, &key).map_err(|err| FnError::Other(err.to_string()))?;
    Ok(datoms.into_iter().next().map(|d| d.v))
}

fn get_else(args: &[Arg]) -> R {
    arity(args, 4, "get-else")?;
    let db = db_of(&args[0])?;
    let a = attr_of(val(&args[2])?)?;
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
        let a = attr_of(val(a)?)?;
        if let Some(v) = first_value(db, e, a)? {
            return Ok(Value::Tuple(vec![Value::Keyword(a), v].into()));
        }
    }
    Ok(Value::Nil)
}

fn missing(args: &[Arg]) -> R {
    arity(args, 3, "missing?")?;
    let db = db_of(&args[0])?;
    let a = attr_of(val(&args[2])?)?;
    Ok(Value::Boolean(first_value(db, val(&args[1])?, a)?.is_none()))
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
        ];
        entries.iter().copied().collect()
    })
}

/// The built-in named `name` (also as `clojure.core/name`).
pub(crate) fn lookup(name: Symbol) -> Option<BuiltinFn> {
    let n = match name.namespace() {
        Some("clojure.core") => name.name(),
        Some(_) => return None,
        None => name.as_str(),
    };
    table().get(n).copied()
}
