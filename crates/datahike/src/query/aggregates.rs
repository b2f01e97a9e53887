//! Aggregates of `:find`, with Datahike's result types: `avg`, `variance`, `stddev` and numeric
//! `median` are doubles (population variance), `sum`, `min`, `max` and `count` are exact.

use super::builtins::compare;
use super::QueryError;
use crate::edn::{Edn, Symbol};
use crate::value::Value;
use std::cmp::Ordering;

type R = Result<Edn, QueryError>;

fn err(msg: String) -> QueryError {
    QueryError::Eval(msg.into())
}

pub(crate) fn as_f64(v: &Value, name: &str) -> Result<f64, QueryError> {
    match v {
        Value::Long(x) => Ok(*x as f64),
        Value::Double(x) => Ok(*x),
        Value::Float(x) => Ok(f64::from(*x)),
        Value::BigInt(b) => b.to_string().parse().map_err(|_| err(format!("{name}: bad number"))),
        Value::BigDec(d) => d.to_string().parse().map_err(|_| err(format!("{name}: bad number"))),
        other => Err(err(format!("{name}: {} is not a number", other.to_edn()))),
    }
}

fn sum(vals: &[Value]) -> Result<Value, QueryError> {
    let mut long: i64 = 0;
    let mut double: Option<f64> = None;
    for v in vals {
        match (v, double) {
            (Value::Long(x), None) => {
                long = long.checked_add(*x).ok_or_else(|| err("sum: integer overflow".into()))?;
            }
            (other, d) => {
                let x = as_f64(other, "sum")?;
                double = Some(d.unwrap_or(long as f64) + x);
            }
        }
    }
    Ok(double.map_or(Value::Long(long), Value::Double))
}

fn avg(vals: &[Value]) -> Result<f64, QueryError> {
    if vals.is_empty() {
        return Err(err("avg of no values".into()));
    }
    Ok(as_f64(&sum(vals)?, "avg")? / vals.len() as f64)
}

fn variance(vals: &[Value]) -> Result<f64, QueryError> {
    let mean = avg(vals)?;
    let mut acc = 0.0;
    for v in vals {
        let d = as_f64(v, "variance")? - mean;
        acc += d * d;
    }
    Ok(acc / vals.len() as f64)
}

fn sort(vals: &mut [Value]) {
    vals.sort_by(|a, b| compare(a, b).unwrap_or_else(|_| a.cmp(b)));
}

fn extreme(vals: &[Value], want: Ordering) -> Value {
    let mut best: Option<&Value> = None;
    for v in vals {
        best = Some(match best {
            Some(b) if compare(v, b).unwrap_or_else(|_| v.cmp(b)) != want => b,
            _ => v,
        });
    }
    best.cloned().unwrap_or(Value::Nil)
}

fn n_arg(name: Symbol, args: &[Edn]) -> Result<usize, QueryError> {
    match args {
        [Edn::Int(n)] if *n >= 0 => Ok(*n as usize),
        _ => Err(err(format!("({name} n ?x) needs a non-negative integer n, got {args:?}"))),
    }
}

/// A small xorshift generator seeded from the clock, for `rand` and `sample`.
fn rng() -> impl FnMut(usize) -> usize {
    let mut s =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0x9E37_79B9, |d| d.as_nanos() as u64)
            | 1;
    move |n| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % n.max(1) as u64) as usize
    }
}

/// The built-in aggregates.
pub(crate) const BUILTIN: [&str; 12] = [
    "count",
    "count-distinct",
    "sum",
    "avg",
    "median",
    "variance",
    "stddev",
    "min",
    "max",
    "distinct",
    "rand",
    "sample",
];

/// Whether `name` is a built-in aggregate.
pub(crate) fn is_aggregate(name: Symbol) -> bool {
    BUILTIN.contains(&name.as_str())
}

/// Applies aggregate `name` (with constant `args`) to the values of one group.
pub(crate) fn aggregate(name: Symbol, args: &[Edn], mut vals: Vec<Value>) -> R {
    let edn = |v: Value| v.to_edn();
    Ok(match (name.as_str(), args.len()) {
        ("count", 0) => Edn::Int(vals.len() as i64),
        ("count-distinct", 0) => {
            let set: std::collections::HashSet<&Value> = vals.iter().collect();
            Edn::Int(set.len() as i64)
        }
        ("sum", 0) => edn(sum(&vals)?),
        ("avg", 0) => Edn::Float(avg(&vals)?),
        ("variance", 0) => Edn::Float(variance(&vals)?),
        ("stddev", 0) => Edn::Float(variance(&vals)?.sqrt()),
        ("median", 0) => {
            if vals.is_empty() {
                return Err(err("median of no values".into()));
            }
            sort(&mut vals);
            let mid = vals.len() / 2;
            if vals.len().is_multiple_of(2) {
                Edn::Float((as_f64(&vals[mid - 1], "median")? + as_f64(&vals[mid], "median")?) / 2.0)
            } else {
                match &vals[mid] {
                    v @ (Value::Long(_) | Value::Double(_) | Value::Float(_) | Value::BigInt(_) | Value::BigDec(_)) => {
                        Edn::Float(as_f64(v, "median")?)
                    }
                    other => edn(other.clone()),
                }
            }
        }
        ("min", 0) => edn(extreme(&vals, Ordering::Less)),
        ("max", 0) => edn(extreme(&vals, Ordering::Greater)),
        ("min", 1) | ("max", 1) => {
            // Datahike's `-min`/`-max` with n: the n smallest or largest values, repeated values
            // kept, in ascending order.
            let n = n_arg(name, args)?;
            sort(&mut vals);
            let skip = if name.as_str() == "max" { vals.len().saturating_sub(n) } else { 0 };
            Edn::Vector(vals.into_iter().skip(skip).take(n).map(edn).collect())
        }
        ("distinct", 0) => {
            let mut seen = std::collections::HashSet::new();
            Edn::Set(vals.into_iter().filter(|v| seen.insert(v.clone())).map(edn).collect())
        }
        ("rand", 0) => {
            let mut r = rng();
            let i = r(vals.len());
            vals.get(i).cloned().map_or(Edn::Nil, edn)
        }
        ("rand", 1) => {
            let n = n_arg(name, args)?;
            let mut r = rng();
            Edn::Vector((0..n).filter(|_| !vals.is_empty()).map(|_| edn(vals[r(vals.len())].clone())).collect())
        }
        ("sample", 1) => {
            let n = n_arg(name, args)?;
            let mut r = rng();
            let mut distinct: Vec<Value> = Vec::new();
            for v in vals {
                if !distinct.contains(&v) {
                    distinct.push(v);
                }
            }
            let mut out = Vec::new();
            while out.len() < n && !distinct.is_empty() {
                let i = r(distinct.len());
                out.push(edn(distinct.swap_remove(i)));
            }
            Edn::Vector(out)
        }
        _ => {
            let message = format!("Unknown aggregate ({name} ...) with {} constant arguments", args.len());
            return Err(QueryError::Syntax(
                crate::error::Detail::new(message)
                    .with("function", Edn::Symbol(name))
                    .value(Edn::Vector(args.to_vec())),
            ));
        }
    })
}
