//! Datom values in a dump: written as boring's `:archival` profile writes the JVM classes
//! Datahike stores, read back from that profile and from clj-cbor's legacy dumps.
//!
//! | value | CBOR |
//! |---|---|
//! | long (and ref) | major type 0/1 |
//! | double / float | float64 / float32, never narrowed or widened |
//! | string | text string |
//! | keyword / symbol | tag 39 over `":ns/name"` / `"ns/name"` |
//! | boolean | simple value 20/21 |
//! | bytes | byte string (major type 2) |
//! | big integer | tag 2/3 over the magnitude, always (width preserved, even when it fits a long) |
//! | big decimal | tag 4 `[-scale unscaled]`, the unscaled value a plain integer below 2^62 |
//! | instant | tag 0 over `java.time.format.DateTimeFormatter/ISO_INSTANT` text (`...T03:04:05.678Z`) |
//! | uuid | tag 37 over the 16 bytes |
//! | tuple | array (nil elements as null) |
//! | ref to a system entity (`:attribute-refs? true`) | tag 27 `["datahike.migrate.cbor.SysRef" {:ident :db.type/string}]` |
//!
//! Legacy (clj-cbor) dumps add instants as tag 1 over epoch seconds (integer or float) and
//! doubles narrowed to float16; a reader cannot undo that narrowing on its own, so the
//! importer widens floats of `:db.type/double` attributes back (see `coerce_legacy`).

use crate::cbor::{self, Cbor};
use crate::edn::{pr_str, read_str, Edn, Keyword, Symbol};
use crate::value::Value;
use bigdecimal::BigDecimal;
use num_bigint::{BigInt, Sign};
use std::sync::Arc;

/// The tag-27 type name of a system-entity reference, as boring writes the defrecord
/// `datahike.migrate.cbor/SysRef`.
pub const SYSREF_NAME: &str = "datahike.migrate.cbor.SysRef";

/// A value as a record holds it.
#[derive(Clone, Debug, PartialEq)]
pub enum DumpValue {
    /// A datom value.
    Value(Value),
    /// A reference to the system entity with this ident (`:attribute-refs? true` dumps).
    SysRef(Keyword),
}

/// Writes a keyword as tag 39 over its text with the colon.
pub fn write_keyword(out: &mut Vec<u8>, k: Keyword) {
    cbor::write_tag(out, 39);
    let s = k.as_str();
    cbor::write_head(out, 3, s.len() as u64 + 1);
    out.push(b':');
    out.extend(s.as_bytes());
}

/// `java.math.BigInteger.bitLength`: the bits of the magnitude, of `-x - 1` for negatives.
fn java_bit_length(i: &BigInt) -> u64 {
    if i.sign() == Sign::Minus {
        (-i - 1u8).bits()
    } else {
        i.bits()
    }
}

/// Tag 2/3 over the unsigned magnitude, as boring writes every big integer.
fn write_bignum(out: &mut Vec<u8>, i: &BigInt) {
    let (tag, magnitude) = if i.sign() == Sign::Minus { (3, -i - 1u8) } else { (2, i.clone()) };
    cbor::write_tag(out, tag);
    cbor::write_bytes(out, &magnitude.to_bytes_be().1);
}

/// The ISO_INSTANT text of epoch milliseconds (`2024-01-02T03:04:05Z`, `...05.100Z`), or
/// `None` for a year outside 0000-9999, which RFC 3339 cannot write.
pub fn iso_instant(ms: i64) -> Option<String> {
    let printed = pr_str(&Edn::Inst(ms));
    // `#inst "yyyy-MM-ddThh:mm:ss.fff-00:00"`
    let inner = printed.strip_prefix("#inst \"")?.strip_suffix("-00:00\"")?;
    let (date_time, millis) = inner.split_once('.')?;
    if date_time.len() != 19 || !date_time.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(if millis == "000" { format!("{date_time}Z") } else { format!("{date_time}.{millis}Z") })
}

/// Writes a value. Sets and maps are not datom values and are refused.
pub fn write_value(out: &mut Vec<u8>, v: &Value) -> Result<(), String> {
    match v {
        Value::Nil => out.push(0xf6),
        Value::Long(i) => cbor::write_int(out, *i),
        Value::String(s) => cbor::write_text(out, s),
        Value::Keyword(k) => write_keyword(out, *k),
        Value::Symbol(s) => {
            cbor::write_tag(out, 39);
            cbor::write_text(out, s.as_str());
        }
        Value::Boolean(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Double(x) => cbor::write_f64(out, *x),
        Value::Float(x) => cbor::write_f32(out, *x),
        Value::Bytes(b) => cbor::write_bytes(out, b),
        Value::BigInt(i) => write_bignum(out, i),
        Value::BigDec(d) => {
            let (unscaled, scale) = d.as_bigint_and_exponent();
            cbor::write_tag(out, 4);
            cbor::write_head(out, 4, 2);
            cbor::write_int(out, -scale);
            match i64::try_from(&unscaled) {
                Ok(small) if java_bit_length(&unscaled) < 63 => cbor::write_int(out, small),
                _ => write_bignum(out, &unscaled),
            }
        }
        Value::Instant(ms) => {
            let text = iso_instant(*ms).ok_or_else(|| {
                format!(
                    "the instant {} has a year outside 0000-9999, which a dump cannot hold",
                    pr_str(&Edn::Inst(*ms))
                )
            })?;
            cbor::write_tag(out, 0);
            cbor::write_text(out, &text);
        }
        Value::Uuid(u) => {
            cbor::write_tag(out, 37);
            cbor::write_bytes(out, u.as_bytes());
        }
        Value::Tuple(items) => {
            cbor::write_head(out, 4, items.len() as u64);
            for x in items.iter() {
                write_value(out, x)?;
            }
        }
        Value::Set(_) | Value::Map(_) => return Err(format!("{} is not a datom value", v.to_edn())),
    }
    Ok(())
}

/// Writes a system-entity reference.
pub fn write_sysref(out: &mut Vec<u8>, ident: Keyword) {
    cbor::write_tag(out, 27);
    cbor::write_head(out, 4, 2);
    cbor::write_text(out, SYSREF_NAME);
    cbor::write_head(out, 5, 1);
    write_keyword(out, Keyword::new("ident"));
    write_keyword(out, ident);
}

/// A keyword or symbol from tag 39 text.
fn ident_of(text: &str) -> Value {
    match text.strip_prefix(':') {
        Some(k) if !k.is_empty() => Value::Keyword(Keyword::new(k)),
        _ => Value::Symbol(Symbol::new(text)),
    }
}

/// Reads a value written by boring (`:archival`) or clj-cbor.
pub fn read_value(item: Cbor) -> Result<DumpValue, String> {
    Ok(match item {
        Cbor::Tag(27, inner) => {
            let Cbor::Array(parts) = *inner else { return Err("tag 27 over something else than an array".into()) };
            let mut parts = parts.into_iter();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(Cbor::Text(name)), Some(Cbor::Map(fields)), None) if name == SYSREF_NAME => {
                    let ident = fields.into_iter().find_map(|(k, v)| match (k, v) {
                        (Cbor::Tag(39, k), Cbor::Tag(39, v)) if *k == Cbor::text(":ident") => match *v {
                            Cbor::Text(t) => t.strip_prefix(':').map(Keyword::new),
                            _ => None,
                        },
                        _ => None,
                    });
                    DumpValue::SysRef(ident.ok_or("a SysRef record without an :ident keyword")?)
                }
                (Some(Cbor::Text(name)), ..) => {
                    return Err(format!("a record of type {name}, which datahike-rs cannot store as a datom value"))
                }
                _ => return Err("a malformed tag 27 record".into()),
            }
        }
        other => DumpValue::Value(plain_value(other)?),
    })
}

/// Reads a value that is not a system-entity reference.
fn plain_value(item: Cbor) -> Result<Value, String> {
    Ok(match item {
        Cbor::Unsigned(_) | Cbor::Negative(_) => match item.as_i64() {
            Some(i) => Value::Long(i),
            None => return Err("an integer beyond 64 bits without a bignum tag".into()),
        },
        Cbor::Text(s) => Value::String(s.into()),
        Cbor::Bool(b) => Value::Boolean(b),
        Cbor::Float64(x) => Value::Double(x),
        Cbor::Float32(x) => Value::Float(x),
        // Only clj-cbor writes float16: zero, NaN and infinities of doubles (Datahike #633).
        Cbor::Float16(bits) => Value::Double(cbor::f16_to_f64(bits)),
        Cbor::Bytes(b) => Value::Bytes(b.into()),
        Cbor::Null | Cbor::Undefined => Value::Nil,
        Cbor::Array(items) => Value::Tuple(items.into_iter().map(plain_value).collect::<Result<Vec<_>, _>>()?.into()),
        Cbor::Tag(tag, inner) => match (tag, *inner) {
            (39, Cbor::Text(s)) => ident_of(&s),
            (2 | 3, Cbor::Bytes(m)) => Value::BigInt(Arc::new(cbor::bignum(tag, &m))),
            (4, Cbor::Array(parts)) if parts.len() == 2 => {
                let mut parts = parts.into_iter();
                let (Some(exponent), Some(mantissa)) = (parts.next(), parts.next()) else {
                    return Err("a malformed decimal fraction".into());
                };
                let exponent = exponent.as_i64().ok_or("a decimal fraction whose exponent is not an integer")?;
                let unscaled = match mantissa {
                    Cbor::Tag(t @ (2 | 3), m) => match *m {
                        Cbor::Bytes(m) => cbor::bignum(t, &m),
                        _ => return Err("a malformed decimal mantissa".into()),
                    },
                    m => BigInt::from(m.as_i64().ok_or("a decimal fraction whose mantissa is not an integer")?),
                };
                Value::BigDec(Arc::new(BigDecimal::new(unscaled, -exponent)))
            }
            (0, Cbor::Text(s)) => match read_str(&format!("#inst {s:?}")) {
                Ok(Edn::Inst(ms)) => Value::Instant(ms),
                _ => return Err(format!("{s:?} is not an RFC 3339 instant")),
            },
            (1, secs) => match (secs.as_i64(), secs.as_f64()) {
                (Some(s), _) => Value::Instant(s.saturating_mul(1000)),
                (_, Some(s)) if s.is_finite() => Value::Instant((s * 1000.0).round() as i64),
                _ => return Err("a tag 1 instant that is not a number of seconds".into()),
            },
            (37, Cbor::Bytes(b)) => {
                Value::Uuid(uuid::Uuid::from_slice(&b).map_err(|_| "a uuid of other than 16 bytes")?)
            }
            (37, Cbor::Text(s)) => Value::Uuid(uuid::Uuid::try_parse(&s).map_err(|_| format!("bad uuid text {s:?}"))?),
            (64..=87, _) => {
                return Err(format!(
                    "an RFC 8746 typed array (tag {tag}: a :db.type/float-array or :db.type/double-array value), \
                     which datahike-rs does not support"
                ))
            }
            (tag, inner) => return Err(format!("tag {tag} over {}, which is not a datom value", inner.kind())),
        },
        Cbor::Map(_) => return Err("a map, which is not a datom value".into()),
        Cbor::Simple(s) => return Err(format!("simple value {s}, which is not a datom value")),
    })
}

/// `(str v)` as Clojure prints it, for the tie-break of Datahike's dump order. Exact for
/// strings, integers, keywords, symbols, booleans and uuids; close (shortest digits) for
/// floats; instants in UTC; bytes by their hex (Datahike hashes them with hasch).
pub fn clojure_str(v: &Value) -> String {
    match v {
        Value::Nil => String::new(),
        Value::String(s) => s.to_string(),
        Value::Long(i) => i.to_string(),
        Value::Keyword(k) => format!(":{}", k.as_str()),
        Value::Symbol(s) => s.as_str().to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Double(x) => java_float(*x, format!("{x:e}")),
        Value::Float(x) => java_float(f64::from(*x), format!("{x:e}")),
        Value::BigInt(i) => i.to_string(),
        Value::BigDec(d) => d.to_string(),
        Value::Instant(ms) => pr_str(&Edn::Inst(*ms)),
        Value::Uuid(u) => u.to_string(),
        Value::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        other => pr_str(&other.to_edn()),
    }
}

/// `Double.toString`: plain between 10^-3 and 10^7, else `d.dddE±n`; `scientific` is Rust's
/// shortest `{:e}` form of the same number.
fn java_float(x: f64, scientific: String) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-3..7).contains(&exponent) {
        let point = exponent + 1;
        if point <= 0 {
            format!("{sign}0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else {
            let point = point as usize;
            if digits.len() > point {
                format!("{sign}{}.{}", &digits[..point], &digits[point..])
            } else {
                format!("{sign}{digits}{}.0", "0".repeat(point - digits.len()))
            }
        }
    } else {
        let rest = if digits.len() > 1 { &digits[1..] } else { "0" };
        format!("{sign}{}.{rest}E{exponent}", &digits[..1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        write_value(&mut out, v).unwrap();
        out
    }

    #[test]
    fn boring_archival_bytes() {
        assert_eq!(bytes(&Value::Double(1.5)), [0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes(&Value::Float(1.5)), [0xfa, 0x3f, 0xc0, 0, 0]);
        assert_eq!(bytes(&Value::BigInt(Arc::new(BigInt::from(0)))), [0xc2, 0x41, 0x00]);
        assert_eq!(bytes(&Value::BigInt(Arc::new(BigInt::from(-1)))), [0xc3, 0x41, 0x00]);
        assert_eq!(bytes(&Value::BigInt(Arc::new(BigInt::from(256)))), [0xc2, 0x42, 0x01, 0x00]);
        let d: BigDecimal = "1.50".parse().unwrap();
        assert_eq!(bytes(&Value::BigDec(Arc::new(d))), [0xc4, 0x82, 0x21, 0x18, 150]);
        assert_eq!(bytes(&Value::kw("db/id")), b"\xd8\x27\x66:db/id");
        let inst = bytes(&Value::Instant(915_246_245_678));
        assert_eq!(&inst[..2], [0xc0, 0x78]);
        assert_eq!(&inst[3..], b"1999-01-02T03:04:05.678Z");
        assert_eq!(iso_instant(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(iso_instant(100).unwrap(), "1970-01-01T00:00:00.100Z");
    }

    #[test]
    fn values_read_back() {
        for v in [
            Value::Double(-0.0),
            Value::Double(f64::INFINITY),
            Value::Float(0.1),
            Value::BigInt(Arc::new("123456789012345678901234567890".parse().unwrap())),
            Value::BigDec(Arc::new("-12345678901234567890.00012".parse().unwrap())),
            Value::BigDec(Arc::new("1E+3".parse().unwrap())),
            Value::Instant(-1),
            Value::Uuid(uuid::Uuid::new_v4()),
            Value::Bytes(vec![1, 2, 255].into()),
            Value::Symbol(Symbol::new("a/b")),
            Value::Tuple(vec![Value::Long(1), Value::Nil, Value::str("x")].into()),
        ] {
            let item = cbor::decode(&bytes(&v)).unwrap();
            assert_eq!(read_value(item).unwrap(), DumpValue::Value(v.clone()), "{v:?}");
        }
        let mut out = Vec::new();
        write_sysref(&mut out, Keyword::new("db.type/string"));
        assert_eq!(read_value(cbor::decode(&out).unwrap()).unwrap(), DumpValue::SysRef(Keyword::new("db.type/string")));
    }

    #[test]
    fn java_double_text() {
        assert_eq!(clojure_str(&Value::Double(1.0)), "1.0");
        assert_eq!(clojure_str(&Value::Double(1.5e10)), "1.5E10");
        assert_eq!(clojure_str(&Value::Double(0.001)), "0.001");
        assert_eq!(clojure_str(&Value::Double(1.0e-4)), "1.0E-4");
        assert_eq!(clojure_str(&Value::Double(1234567.0)), "1234567.0");
        assert_eq!(clojure_str(&Value::Double(-0.25)), "-0.25");
    }
}
