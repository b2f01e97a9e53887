//! Python values and [`Edn`], both ways, by the rules of Datahike's Python binding.
//!
//! Python to EDN (`docs/edn-conversion.md` in Datahike): dict keys always become keywords (a
//! leading `:` is dropped); a string value that starts with `:` becomes a keyword, one that
//! starts with `\:` or carries the `edn.string` marker stays a string; `None` is nil, lists
//! and tuples vectors, sets sets, `uuid.UUID` a uuid, `datetime` an instant (a naive one is
//! read as UTC), `decimal.Decimal` a big decimal, `bytes` a byte array, and any object with
//! a `to_edn()` method (the `edn.Keyword`, `Symbol`, `UUID`, `Inst` helpers) the EDN text it
//! returns.
//!
//! EDN to Python is what Datahike's binding hands back for its default `cbor` output, built
//! here from the [`Edn`] directly: keywords become `':name'` strings (clj-cbor's identifier
//! tag), symbols their name, vectors and lists lists, maps dicts, a set a Python `set`, or a
//! list when its elements are collections (a query's relation comes back as a list of
//! lists), instants `datetime` in UTC, uuids `uuid.UUID`, big decimals `decimal.Decimal`,
//! byte arrays `bytes`, datoms `[e, a, v, tx, added]` and database handles their map.

use datahike::edn::read_str;
use datahike::{Edn, Keyword, Symbol};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple, PyType};
use std::str::FromStr;

/// The marker `datahike.edn.string` puts before a string that must stay a string.
pub const STRING_MARKER: &str = "<STRING>";

static UUID: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DATETIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DATE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMEDELTA: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DECIMAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static EPOCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static UTC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn utc(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    UTC.get_or_try_init(py, || Ok(py.import("datetime")?.getattr("timezone")?.getattr("utc")?.unbind()))
        .map(|u| u.bind(py))
}

/// `datetime(1970, 1, 1, tzinfo=timezone.utc)`.
fn epoch(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    EPOCH
        .get_or_try_init(py, || {
            let datetime = DATETIME.import(py, "datetime", "datetime")?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("tzinfo", utc(py)?)?;
            Ok(datetime.call((1970, 1, 1), Some(&kwargs))?.unbind())
        })
        .map(|e| e.bind(py))
}

/// How strings are read where a value is expected.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Datahike's rule: `":kw"` is a keyword, anything else a string.
    Value,
    /// A pull pattern: every string names an attribute (`"name"` and `":name"` alike),
    /// except `"*"` and `"..."`, the symbols of a pattern.
    Pattern,
    /// A query written as Python data: `"?e"`, `"$"`, `"%"`, `"_"`, `"..."` are symbols.
    Query,
}

/// The EDN of a Python value read by `mode`.
pub fn to_edn(obj: &Bound<'_, PyAny>, mode: Mode) -> PyResult<Edn> {
    convert(obj, mode, 0)
}

/// A keyword from text, with or without the leading colon.
pub fn keyword(text: &str) -> Edn {
    Edn::Keyword(Keyword::new(text.strip_prefix(':').unwrap_or(text)))
}

fn string_value(s: &str, mode: Mode) -> Edn {
    if let Some(rest) = s.strip_prefix(STRING_MARKER) {
        return Edn::str(rest);
    }
    if let Some(rest) = s.strip_prefix('\\') {
        if rest.starts_with(':') {
            return Edn::str(rest);
        }
    }
    match mode {
        Mode::Pattern if s == "*" || s == "..." => Edn::Symbol(Symbol::new(s)),
        Mode::Pattern if !s.is_empty() => keyword(s),
        Mode::Query if s.starts_with(['?', '$', '%']) || s == "_" || s == "..." => Edn::Symbol(Symbol::new(s)),
        _ => match s.strip_prefix(':') {
            Some(name) if !name.is_empty() && !name.contains(char::is_whitespace) => keyword(name),
            _ => Edn::str(s),
        },
    }
}

/// The deepest Python value converted: far deeper than data and patterns nest, and
/// shallow enough that the recursion fits any thread's stack (a value that contains itself
/// would recurse forever).
const DEPTH_MAX: usize = 256;

fn too_deep() -> PyErr {
    PyValueError::new_err(format!("the value nests more than {DEPTH_MAX} levels deep (does it contain itself?)"))
}

fn convert(obj: &Bound<'_, PyAny>, mode: Mode, depth: usize) -> PyResult<Edn> {
    if depth > DEPTH_MAX {
        return Err(too_deep());
    }
    let py = obj.py();
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(string_value(&s.to_cow()?, mode));
    }
    if obj.is_none() {
        return Ok(Edn::Nil);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Edn::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        return match obj.extract::<i64>() {
            Ok(i) => Ok(Edn::Int(i)),
            Err(_) => {
                let text = obj.str()?.to_string();
                let big = num_bigint::BigInt::from_str(&text)
                    .map_err(|e| PyValueError::new_err(format!("integer {text}: {e}")))?;
                Ok(Edn::BigInt(big.into()))
            }
        };
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Edn::Float(f.value()));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut entries = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            entries.push((key(&k, mode, depth + 1)?, convert(&v, mode, depth + 1)?));
        }
        return Ok(Edn::Map(entries));
    }
    if let Ok(list) = obj.cast::<PyList>() {
        return list.iter().map(|x| convert(&x, mode, depth + 1)).collect::<PyResult<_>>().map(Edn::Vector);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return tuple.iter().map(|x| convert(&x, mode, depth + 1)).collect::<PyResult<_>>().map(Edn::Vector);
    }
    if obj.is_instance_of::<PySet>() || obj.is_instance_of::<PyFrozenSet>() {
        let mut items: Vec<Edn> = Vec::new();
        for x in obj.try_iter()? {
            let x = convert(&x?, mode, depth + 1)?;
            if !items.contains(&x) {
                items.push(x);
            }
        }
        return Ok(Edn::Set(items));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(bytes(b.as_bytes()));
    }
    if obj.is_instance(UUID.import(py, "uuid", "UUID")?)? {
        let text = obj.str()?.to_string();
        return text.parse().map(Edn::Uuid).map_err(|e| PyValueError::new_err(format!("uuid {text}: {e}")));
    }
    if obj.is_instance(DATETIME.import(py, "datetime", "datetime")?)? {
        return Ok(Edn::Inst(datetime_ms(obj)?));
    }
    if obj.is_instance(DATE.import(py, "datetime", "date")?)? {
        let datetime = DATETIME.import(py, "datetime", "datetime")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("tzinfo", utc(py)?)?;
        let midnight =
            datetime.call((obj.getattr("year")?, obj.getattr("month")?, obj.getattr("day")?), Some(&kwargs))?;
        return Ok(Edn::Inst(datetime_ms(&midnight)?));
    }
    if obj.is_instance(DECIMAL.import(py, "decimal", "Decimal")?)? {
        let text = obj.str()?.to_string();
        let decimal = bigdecimal::BigDecimal::from_str(&text)
            .map_err(|e| PyValueError::new_err(format!("decimal {text} has no EDN form: {e}")))?;
        return Ok(Edn::BigDec(decimal.into()));
    }
    if let Ok(method) = obj.getattr("to_edn") {
        let text: String = method.call0()?.extract()?;
        return read_str(&text).map_err(|e| PyValueError::new_err(format!("{text:?} is not EDN: {e}")));
    }
    Err(PyTypeError::new_err(format!(
        "a {} has no EDN form (use str, int, float, bool, None, list, tuple, dict, set, bytes, uuid.UUID, datetime, decimal.Decimal or the datahike.edn helpers)",
        obj.get_type().name()?
    )))
}

/// A dict key: a string is always a keyword; anything else converts as a value.
fn key(obj: &Bound<'_, PyAny>, mode: Mode, depth: usize) -> PyResult<Edn> {
    if let Ok(s) = obj.cast::<PyString>() {
        let s = s.to_cow()?;
        let s: &str = &s;
        return Ok(match s.strip_prefix(STRING_MARKER) {
            Some(rest) => Edn::str(rest),
            None if s.is_empty() => Edn::str(s),
            None => keyword(s),
        });
    }
    convert(obj, mode, depth)
}

/// A byte array as the library holds it: `#bytes [..]` of signed bytes.
fn bytes(b: &[u8]) -> Edn {
    Edn::Tagged(Symbol::new("bytes"), Box::new(Edn::Vector(b.iter().map(|x| Edn::Int(i64::from(*x as i8))).collect())))
}

/// Epoch milliseconds of a `datetime`; a naive one is taken as UTC.
fn datetime_ms(obj: &Bound<'_, PyAny>) -> PyResult<i64> {
    let py = obj.py();
    let aware = if obj.getattr("tzinfo")?.is_none() {
        let kwargs = PyDict::new(py);
        kwargs.set_item("tzinfo", utc(py)?)?;
        obj.call_method("replace", (), Some(&kwargs))?
    } else {
        obj.clone()
    };
    let one_ms = TIMEDELTA.import(py, "datetime", "timedelta")?.call1((0, 0, 0, 1))?;
    aware.sub(epoch(py)?)?.floor_div(one_ms)?.extract()
}

/// The Python value of `edn`.
pub fn to_py<'py>(py: Python<'py>, edn: &Edn) -> PyResult<Bound<'py, PyAny>> {
    Ok(match edn {
        Edn::Nil => py.None().into_bound(py),
        Edn::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Edn::Str(s) => PyString::new(py, s).into_any(),
        Edn::Char(c) => PyString::new(py, c.encode_utf8(&mut [0; 4])).into_any(),
        Edn::Int(i) => i.into_pyobject(py)?.into_any(),
        Edn::BigInt(b) => py.get_type::<PyInt>().call1((b.to_string(),))?,
        Edn::Float(f) => PyFloat::new(py, *f).into_any(),
        Edn::BigDec(d) => DECIMAL.import(py, "decimal", "Decimal")?.call1((d.to_string(),))?,
        Edn::Keyword(k) => PyString::new(py, &format!(":{}", k.as_str())).into_any(),
        Edn::Symbol(s) => PyString::new(py, s.as_str()).into_any(),
        Edn::List(xs) | Edn::Vector(xs) => list(py, xs)?,
        Edn::Map(entries) => {
            let dict = PyDict::new(py);
            for (k, v) in entries {
                dict.set_item(hashable(py, k)?, to_py(py, v)?)?;
            }
            dict.into_any()
        }
        Edn::Set(xs) if xs.iter().all(is_scalar) => {
            PySet::new(py, xs.iter().map(|x| to_py(py, x)).collect::<PyResult<Vec<_>>>()?)?.into_any()
        }
        Edn::Set(xs) => list(py, xs)?,
        Edn::Inst(ms) => {
            let delta = TIMEDELTA.import(py, "datetime", "timedelta")?.call1((0, 0, 0, *ms))?;
            epoch(py)?.add(delta)?
        }
        Edn::Uuid(u) => UUID.import(py, "uuid", "UUID")?.call1((u.to_string(),))?,
        Edn::Tagged(tag, inner) => match (tag.as_str(), inner.as_ref()) {
            ("bytes", Edn::Vector(xs)) => match byte_values(xs) {
                Some(b) => PyBytes::new(py, &b).into_any(),
                None => to_py(py, inner)?,
            },
            _ => to_py(py, inner)?,
        },
    })
}

/// A Python list of the values of `xs`.
pub fn list<'py>(py: Python<'py>, xs: &[Edn]) -> PyResult<Bound<'py, PyAny>> {
    let items = xs.iter().map(|x| to_py(py, x)).collect::<PyResult<Vec<_>>>()?;
    Ok(PyList::new(py, items)?.into_any())
}

/// Whether `edn` converts to a hashable Python value as it is.
fn is_scalar(edn: &Edn) -> bool {
    match edn {
        Edn::List(_) | Edn::Vector(_) | Edn::Map(_) | Edn::Set(_) => false,
        Edn::Tagged(tag, _) => tag.as_str() == "bytes",
        _ => true,
    }
}

/// A map key or set element as a hashable value: vectors become tuples, sets frozensets,
/// maps tuples of their pairs.
fn hashable<'py>(py: Python<'py>, edn: &Edn) -> PyResult<Bound<'py, PyAny>> {
    Ok(match edn {
        Edn::List(xs) | Edn::Vector(xs) => {
            PyTuple::new(py, xs.iter().map(|x| hashable(py, x)).collect::<PyResult<Vec<_>>>()?)?.into_any()
        }
        Edn::Set(xs) => {
            PyFrozenSet::new(py, xs.iter().map(|x| hashable(py, x)).collect::<PyResult<Vec<_>>>()?)?.into_any()
        }
        Edn::Map(entries) => PyTuple::new(
            py,
            entries
                .iter()
                .map(|(k, v)| PyTuple::new(py, [hashable(py, k)?, hashable(py, v)?]))
                .collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any(),
        Edn::Tagged(tag, inner) if tag.as_str() != "bytes" => hashable(py, inner)?,
        other => to_py(py, other)?,
    })
}

fn byte_values(xs: &[Edn]) -> Option<Vec<u8>> {
    xs.iter()
        .map(|x| match x {
            Edn::Int(i) => i8::try_from(*i).ok().map(|b| b as u8).or_else(|| u8::try_from(*i).ok()),
            _ => None,
        })
        .collect()
}
