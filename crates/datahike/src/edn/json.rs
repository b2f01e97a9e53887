//! JSON: the output of `dthk -f json` and the input of `dthk ... json:FILE`.
//!
//! Output ([`to_json`]) follows what Datahike's `dthk` gets from jsonista's default object mapper, written
//! here by hand so that map order is kept:
//! - keywords and symbols become their text without the colon, namespace kept (`"db/id"`);
//! - map keys become strings the same way; keys that are not strings, keywords or symbols are
//!   printed as EDN (`1` becomes `"1"`);
//! - lists, vectors and sets become arrays; characters, uuids and big decimals strings;
//! - instants become ISO 8601 strings (`"2024-01-01T00:00:00.000Z"`). Jackson would write a
//!   `java.util.Date` as epoch milliseconds; a string is unambiguous and reads back with any
//!   date parser, so we deliberately differ;
//! - tagged values print their value: a datom `#datahike/Datom [e a v tx added]` is the array
//!   `[e, "a", v, tx, added]`, a database summary `#datahike/DB {..}` its map;
//! - NaN and the infinities, which JSON cannot express, become `null`.
//!
//! Input ([`from_json`]) follows `datahike.json`'s mapper, which `json:FILE` arguments are read with: object
//! keys become keywords, and jsonista's tagged values `["!kw", "name"]`, `["!sym", ..]`,
//! `["!set", [..]]`, `["!uuid", ".."]` and `["!date", "millis"]` become the EDN values they
//! tag. Every other string stays a string.

use super::{pr_str, Edn, Keyword, Symbol};
use serde_json::Value as Json;
use std::fmt::Write;

/// A value as one line of JSON.
pub fn to_json(value: &Edn) -> String {
    let mut out = String::new();
    write_json(&mut out, value);
    out
}

fn write_json(out: &mut String, value: &Edn) {
    match value {
        Edn::Nil => out.push_str("null"),
        Edn::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Edn::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Edn::BigInt(i) => {
            let _ = write!(out, "{i}");
        }
        Edn::Float(x) if x.is_finite() => {
            // serde_json prints the shortest digits that read back, and always a number.
            out.push_str(&Json::from(*x).to_string());
        }
        Edn::Float(_) => out.push_str("null"),
        Edn::BigDec(_) => {
            let text = pr_str(value);
            write_string(out, text.trim_end_matches('M'));
        }
        Edn::Str(s) => write_string(out, s),
        Edn::Char(c) => write_string(out, c.encode_utf8(&mut [0; 4])),
        Edn::Keyword(k) => write_string(out, k.as_str()),
        Edn::Symbol(s) => write_string(out, s.as_str()),
        Edn::Uuid(u) => write_string(out, &u.hyphenated().to_string()),
        Edn::Inst(_) => write_string(out, &inst_text(value)),
        Edn::List(items) | Edn::Vector(items) | Edn::Set(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Edn::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, &key_text(k));
                out.push(':');
                write_json(out, v);
            }
            out.push('}');
        }
        Edn::Tagged(_, inner) => write_json(out, inner),
    }
}

/// The ISO 8601 text of an instant, taken from its EDN form `#inst "..."`.
pub fn inst_text(inst: &Edn) -> String {
    let printed = pr_str(inst);
    printed.trim_start_matches("#inst ").trim_matches('"').to_string()
}

fn key_text(key: &Edn) -> String {
    match key {
        Edn::Str(s) => s.to_string(),
        Edn::Keyword(k) => k.as_str().to_string(),
        Edn::Symbol(s) => s.as_str().to_string(),
        Edn::Uuid(u) => u.hyphenated().to_string(),
        Edn::Inst(_) => inst_text(key),
        other => pr_str(other),
    }
}

fn write_string(out: &mut String, text: &str) {
    out.push_str(&Json::from(text).to_string());
}

/// Reads JSON text as `datahike.json` does for `json:FILE` arguments.
pub fn from_json(text: &str) -> Result<Edn, String> {
    let json: Json =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON at {}:{}: {e}", e.line(), e.column()))?;
    convert(&json)
}

fn convert(json: &Json) -> Result<Edn, String> {
    Ok(match json {
        Json::Null => Edn::Nil,
        Json::Bool(b) => Edn::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Edn::Int(i)
            } else if let Some(u) = n.as_u64() {
                Edn::BigInt(std::sync::Arc::new(u.into()))
            } else {
                Edn::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Edn::str(s),
        Json::Array(items) => match tagged(items)? {
            Some(value) => value,
            None => Edn::Vector(items.iter().map(convert).collect::<Result<_, _>>()?),
        },
        Json::Object(entries) => Edn::Map(
            entries
                .iter()
                .map(|(k, v)| Ok((Edn::Keyword(Keyword::new(k.strip_prefix(':').unwrap_or(k))), convert(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// jsonista's tagged encoding: a two-element array whose first element is a `!tag` string.
fn tagged(items: &[Json]) -> Result<Option<Edn>, String> {
    let [Json::String(tag), value] = items else {
        return Ok(None);
    };
    let text = value.as_str();
    Ok(Some(match (tag.as_str(), text) {
        ("!kw", Some(t)) => Edn::Keyword(Keyword::new(t.strip_prefix(':').unwrap_or(t))),
        ("!sym", Some(t)) => Edn::Symbol(Symbol::new(t)),
        ("!uuid", Some(t)) => Edn::Uuid(uuid::Uuid::try_parse(t).map_err(|e| format!("bad !uuid {t:?}: {e}"))?),
        ("!date", Some(t)) => {
            Edn::Inst(t.parse().map_err(|_| format!("bad !date {t:?}: expected epoch milliseconds"))?)
        }
        ("!set", _) => {
            let Json::Array(elements) = value else {
                return Err(format!("bad !set {value}: expected an array"));
            };
            let mut set: Vec<Edn> = Vec::new();
            for element in elements {
                let element = convert(element)?;
                if !set.contains(&element) {
                    set.push(element);
                }
            }
            Edn::Set(set)
        }
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::read_str;

    fn json_of(edn: &str) -> String {
        to_json(&read_str(edn).unwrap())
    }

    #[test]
    fn writes_like_jsonista() {
        assert_eq!(
            json_of(r#"{:name "A" :db/id 1 :tags #{:a/b} :x nil}"#),
            r#"{"name":"A","db/id":1,"tags":["a/b"],"x":null}"#
        );
        assert_eq!(json_of("{1 2.5 [1] (true)}"), r#"{"1":2.5,"[1]":[true]}"#);
        assert_eq!(json_of(r#"#inst "2024-01-02T03:04:05.006-00:00""#), r#""2024-01-02T03:04:05.006-00:00""#);
        assert_eq!(json_of(r#"#datahike/Datom [1 :name "x" 536870913 true]"#), r#"[1,"name","x",536870913,true]"#);
        assert_eq!(json_of(r#""a\"b\n""#), r#""a\"b\n""#);
        assert_eq!(json_of("##NaN"), "null");
        assert_eq!(json_of("12345678901234567890N"), "12345678901234567890");
    }

    #[test]
    fn reads_like_datahike_json() {
        let v = from_json(r#"[{"name": "A", "age": 3, "k": ["!kw", "db/id"], "s": ["!set", [1, 1, 2]]}, [1.5, null]]"#)
            .unwrap();
        assert_eq!(v, read_str(r#"[{:name "A" :age 3 :k :db/id :s #{1 2}} [1.5 nil]]"#).unwrap());
        let e = from_json("[1,\n 2").unwrap_err();
        assert!(e.contains("2:"), "{e}");
    }
}
