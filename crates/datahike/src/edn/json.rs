//! JSON in the two dialects Datahike speaks: the plain JSON `dthk -f json` prints
//! ([`to_json`]), and the *tagged* JSON of Datahike's HTTP server and its JSON clients
//! ([`to_tagged_json`], [`from_tagged_json`]), which `dthk ... json:FILE` arguments are read
//! with too.
//!
//! ```
//! use datahike::edn::{json, read_str};
//! let value = read_str(r#"{:db/id 1 :tags #{:a} :at #inst "2024-01-01T00:00:00.000-00:00"}"#).unwrap();
//! assert_eq!(json::to_json(&value), r#"{"db/id":1,"tags":["a"],"at":"2024-01-01T00:00:00.000-00:00"}"#);
//! let tagged = json::to_tagged_json(&value);
//! assert_eq!(tagged, r#"{"db/id":1,"tags":["!set",[["!kw","a"]]],"at":["!date","1704067200000"]}"#);
//! assert_eq!(json::from_tagged_json(&tagged).unwrap(), value);
//! ```
//!
//! # Plain JSON
//!
//! [`to_json`] follows what Datahike's `dthk` gets from jsonista's default object mapper,
//! written here by hand so that map order is kept:
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
//! # Tagged JSON
//!
//! `datahike.json`'s object mapper: jsonista with its tagged-value module. A value JSON has no
//! type for is a two-element array of a `!tag` string and the value's representation:
//!
//! | EDN | tagged JSON |
//! |---|---|
//! | `:db/id` | `["!kw","db/id"]` |
//! | `?e` | `["!sym","?e"]` |
//! | `#{1 2}` | `["!set",[1,2]]` |
//! | `#uuid "…"` | `["!uuid","…"]` |
//! | `#inst "…"` | `["!date","1704067200000"]`: epoch milliseconds, as a string |
//! | `#datahike/Datom [e a v tx added]` | `["!datahike/Datom",[e,["!kw","a"],v,tx,added]]` |
//! | `#datahike/DB {..}`, any `#ns/tag value` | `["!datahike/DB",{..}]`, `["!ns/tag",value]` |
//!
//! Datahike's server tags what it writes the same way: `!datahike/TxReport` around a
//! transaction report's map, `!datahike/DB` (and `HistoricalDB`, `SinceDB`, `AsOfDB`) around
//! a database handle `{"store-id":..,"commit-id":..,"max-eid":..,"max-tx":..}`,
//! `!datahike/Connection` around a connection's store id, `!datahike/Entity` around an
//! entity's map. Here those are [`Edn::Tagged`] values with the tag without `!`; it is up to
//! the caller to build and resolve them.
//!
//! Everything else is plain JSON: `nil`, booleans, strings, numbers; lists and vectors are
//! arrays, maps objects.
//!
//! Object keys: jsonista writes a keyword key as its text without the colon (`"db/id"`), a
//! string key as itself, and any other key as Java's `toString` would (`1` as `"1"`, a uuid
//! as its text); here other keys are written as in plain JSON above. On reading, *every*
//! object key becomes a keyword, as `datahike.json` decodes them (`:decode-key-fn true`); a
//! leading colon is dropped (`":name"` reads as `:name`, where Clojure's `keyword` would make
//! the odd keyword `::name`).
//!
//! What does not survive the round trip, as with Datahike's own mapper:
//! - map keys that are not keywords come back as keywords (`{"a" 1}` and `{1 2}` read back as
//!   `{:a 1}` and `{:1 2}`), so a transaction report's `:tempids` keys change kind;
//! - lists read back as vectors, characters as strings;
//! - big decimals are written as JSON numbers and read back as doubles; integers read back as
//!   longs when they fit one, as big integers otherwise;
//! - NaN and the infinities are written as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`
//!   (Jackson's default) and read back as strings;
//! - a byte array `#bytes [..]` is written as a base64 string (as Jackson writes `byte[]`) and
//!   reads back as that string;
//! - an array that happens to look tagged reads back as the tagged value: the vector
//!   `["!kw" "a"]` reads back as `:a`. Arrays of two elements whose first is a string
//!   beginning with `!` are read as tagged when the tag is one of the five above or a
//!   namespaced tag (`!ns/name`); any other array stays an array.
//!
//! Malformed input is an [`EdnError`] naming the line and column and what is wrong there;
//! nesting deeper than [`MAX_DEPTH`](super::MAX_DEPTH) arrays and objects is refused.

use super::reader::{distinct_entries, distinct_items};
use super::wire::{self, error_at, Child, Json, JsonValue, Step};
use super::{pr_str, Edn, EdnError, Keyword, Symbol};
use std::fmt::Write;

/// A value as one line of plain JSON, as `dthk -f json` prints it (see the module docs).
pub fn to_json(value: &Edn) -> String {
    let mut out = String::new();
    write_json(&mut out, value);
    out
}

/// Writes plain JSON on a heap stack, so that a value as deep as a recursive pull makes
/// (a chain of 100,000 maps) prints without stack growth.
fn write_json(out: &mut String, value: &Edn) {
    /// Work left to do, innermost last.
    enum Job<'a> {
        Value(&'a Edn),
        Key(&'a Edn),
        Text(&'static str),
    }
    let mut jobs = vec![Job::Value(value)];
    while let Some(job) = jobs.pop() {
        let value = match job {
            Job::Text(text) => {
                out.push_str(text);
                continue;
            }
            Job::Key(key) => {
                wire::write_json_string(out, &key_text(key));
                out.push(':');
                continue;
            }
            Job::Value(value) => value,
        };
        match value {
            Edn::List(items) | Edn::Vector(items) | Edn::Set(items) => {
                out.push('[');
                jobs.push(Job::Text("]"));
                for (i, item) in items.iter().enumerate().rev() {
                    jobs.push(Job::Value(item));
                    if i > 0 {
                        jobs.push(Job::Text(","));
                    }
                }
            }
            Edn::Map(entries) => {
                out.push('{');
                jobs.push(Job::Text("}"));
                for (i, (key, val)) in entries.iter().enumerate().rev() {
                    jobs.push(Job::Value(val));
                    jobs.push(Job::Key(key));
                    if i > 0 {
                        jobs.push(Job::Text(","));
                    }
                }
            }
            Edn::Tagged(_, inner) => jobs.push(Job::Value(inner)),
            leaf => write_json_leaf(out, leaf),
        }
    }
}

/// Writes a value that is no collection nor tagged value as plain JSON.
fn write_json_leaf(out: &mut String, value: &Edn) {
    match value {
        Edn::Nil => out.push_str("null"),
        Edn::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Edn::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Edn::BigInt(i) => {
            let _ = write!(out, "{i}");
        }
        Edn::Float(x) if x.is_finite() => wire::write_json_float(out, *x),
        Edn::Float(_) => out.push_str("null"),
        Edn::BigDec(_) => wire::write_json_string(out, &decimal_text(value)),
        Edn::Str(s) => wire::write_json_string(out, s),
        Edn::Char(c) => wire::write_json_string(out, c.encode_utf8(&mut [0; 4])),
        Edn::Keyword(k) => wire::write_json_string(out, k.as_str()),
        Edn::Symbol(s) => wire::write_json_string(out, s.as_str()),
        Edn::Uuid(u) => wire::write_json_string(out, &u.hyphenated().to_string()),
        Edn::Inst(_) => wire::write_json_string(out, &inst_text(value)),
        Edn::List(_) | Edn::Vector(_) | Edn::Set(_) | Edn::Map(_) | Edn::Tagged(..) => {
            unreachable!("collections are written by write_json")
        }
    }
}

/// Writes a map as a JSON object, keys as [`key_text`], values with `write`.
fn write_object(out: &mut String, entries: &[(Edn, Edn)], write: fn(&mut String, &Edn)) {
    out.push('{');
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        wire::write_json_string(out, &key_text(k));
        out.push(':');
        write(out, v);
    }
    out.push('}');
}

/// The ISO 8601 text of an instant, taken from its EDN form `#inst "..."`.
fn inst_text(inst: &Edn) -> String {
    let printed = pr_str(inst);
    printed.trim_start_matches("#inst ").trim_matches('"').to_string()
}

/// A big decimal's digits as Java's `BigDecimal.toString` writes them (`1.50`, `1E+3`).
fn decimal_text(decimal: &Edn) -> String {
    let mut text = pr_str(decimal);
    if text.ends_with('M') {
        text.pop();
    }
    text
}

/// The text of a map key: strings as they are, keywords and symbols without colon, uuids
/// and instants as their text, anything else as EDN.
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

/// A value as tagged JSON, as Datahike's HTTP server and JSON clients write it (see the module
/// docs): one line, map order kept.
pub fn to_tagged_json(value: &Edn) -> String {
    let mut out = String::new();
    write_tagged(&mut out, value);
    out
}

/// Writes `["!tag",` and the representation `write` appends, then `]`.
fn write_tag(out: &mut String, tag: &str, write: impl FnOnce(&mut String)) {
    out.push_str("[\"!");
    // Tags are symbols: nothing in them needs escaping but `"` and `\`, which the string
    // writer handles; write it whole and splice out its opening quote.
    let mut quoted = String::new();
    wire::write_json_string(&mut quoted, tag);
    out.push_str(quoted.get(1..).unwrap_or_default());
    out.push(',');
    write(out);
    out.push(']');
}

fn write_tagged(out: &mut String, value: &Edn) {
    match value {
        Edn::Nil | Edn::Bool(_) | Edn::Int(_) | Edn::BigInt(_) | Edn::Str(_) | Edn::Char(_) => write_json(out, value),
        Edn::Float(x) if x.is_finite() => wire::write_json_float(out, *x),
        Edn::Float(x) => {
            let text = match x {
                x if x.is_nan() => "NaN",
                x if *x > 0.0 => "Infinity",
                _ => "-Infinity",
            };
            wire::write_json_string(out, text);
        }
        Edn::BigDec(_) => {
            let text = decimal_text(value);
            if wire::is_json_number(&text) {
                out.push_str(&text);
            } else {
                wire::write_json_string(out, &text);
            }
        }
        Edn::Keyword(k) => write_tag(out, "kw", |out| wire::write_json_string(out, k.as_str())),
        Edn::Symbol(s) => write_tag(out, "sym", |out| wire::write_json_string(out, s.as_str())),
        Edn::Uuid(u) => write_tag(out, "uuid", |out| wire::write_json_string(out, &u.hyphenated().to_string())),
        Edn::Inst(ms) => write_tag(out, "date", |out| wire::write_json_string(out, &ms.to_string())),
        Edn::Set(items) => write_tag(out, "set", |out| write_array(out, items)),
        Edn::List(items) | Edn::Vector(items) => write_array(out, items),
        Edn::Map(entries) => write_object(out, entries, write_tagged),
        Edn::Tagged(..) => match wire::edn_bytes(value) {
            Some(bytes) => wire::write_json_string(out, &wire::base64_encode(&bytes)),
            None => {
                if let Edn::Tagged(tag, inner) = value {
                    write_tag(out, tag.as_str(), |out| write_tagged(out, inner));
                }
            }
        },
    }
}

fn write_array(out: &mut String, items: &[Edn]) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_tagged(out, item);
    }
    out.push(']');
}

/// Reads tagged JSON as `datahike.json`'s mapper does (see the module docs): object keys
/// become keywords, tagged arrays the values they tag. Plain JSON reads too.
pub fn from_tagged_json(text: &str) -> Result<Edn, EdnError> {
    let json = wire::parse(text)?;
    wire::convert(&mut Reader { text }, &json)
}

/// The tagged JSON reader, a [`wire::Converter`].
struct Reader<'t> {
    text: &'t str,
}

/// How the reader finishes a container.
enum Finish {
    Vector,
    Set,
    Map,
    Tagged(Symbol),
}

impl<'j, 'a> wire::Converter<'j, 'a> for Reader<'_> {
    type Finish = Finish;

    fn enter(&mut self, child: Child<'j, 'a>) -> Result<Step<'j, 'a, Finish>, EdnError> {
        let json = match child {
            Child::Key(_, key) => return Ok(Step::Done(Edn::Keyword(Keyword::new(key_name(key))))),
            Child::Node(json, _) => json,
        };
        Ok(match &json.value {
            JsonValue::Null => Step::Done(Edn::Nil),
            JsonValue::Bool(b) => Step::Done(Edn::Bool(*b)),
            JsonValue::Number { text, integer } => Step::Done(wire::number_to_edn(text, *integer)),
            JsonValue::Str(s) => Step::Done(Edn::str(s)),
            JsonValue::Array(items) => match self.tagged(items)? {
                Some(step) => step,
                None => open(items.iter().map(|x| Child::Node(x, false)).collect(), Finish::Vector),
            },
            JsonValue::Object(members) => open(
                members
                    .iter()
                    .flat_map(|(offset, key, value)| [Child::Key(*offset, key), Child::Node(value, false)])
                    .collect(),
                Finish::Map,
            ),
        })
    }

    fn finish(&mut self, finish: Finish, results: Vec<Edn>) -> Result<Edn, EdnError> {
        Ok(match finish {
            Finish::Vector => Edn::Vector(results),
            Finish::Set => Edn::Set(distinct_items(results)),
            Finish::Map => Edn::Map(distinct_entries(wire::pairs(results))),
            Finish::Tagged(tag) => Edn::Tagged(tag, Box::new(results.into_iter().next().unwrap_or(Edn::Nil))),
        })
    }
}

/// A container whose children are all still to convert.
fn open<'j, 'a>(children: Vec<Child<'j, 'a>>, finish: Finish) -> Step<'j, 'a, Finish> {
    Step::Open { results: Vec::with_capacity(children.len()), children, finish }
}

impl Reader<'_> {
    fn error(&self, offset: usize, message: String) -> EdnError {
        error_at(self.text, offset, format!("invalid tagged JSON: {message}"))
    }

    /// How to read a tagged array `["!tag", representation]`, `None` when the array is not one.
    fn tagged<'j, 'a>(&self, items: &'j [Json<'a>]) -> Result<Option<Step<'j, 'a, Finish>>, EdnError> {
        let [Json { value: JsonValue::Str(tag), .. }, representation] = items else {
            return Ok(None);
        };
        let Some(tag) = tag.strip_prefix('!') else { return Ok(None) };
        let text = match &representation.value {
            JsonValue::Str(s) => Some(s.as_ref()),
            _ => None,
        };
        let offset = representation.offset;
        let expected = |what: &str| self.error(offset, format!("!{tag} expects {what}"));
        let value =
            match tag {
                "kw" => Edn::Keyword(Keyword::new(&self.ident(tag, representation)?)),
                "sym" => Edn::Symbol(Symbol::new(&self.ident(tag, representation)?)),
                "uuid" => {
                    let text = text.ok_or_else(|| expected("a uuid string"))?;
                    Edn::Uuid(
                        uuid::Uuid::try_parse(text)
                            .map_err(|e| self.error(offset, format!("!uuid {text:?} is not a uuid: {e}")))?,
                    )
                }
                "date" => match &representation.value {
                    JsonValue::Str(text) => Edn::Inst(text.parse().map_err(|_| {
                        self.error(offset, format!("!date {text:?} is not a whole number of epoch milliseconds"))
                    })?),
                    JsonValue::Number { text, integer: true } => Edn::Inst(text.parse().map_err(|_| {
                        self.error(offset, format!("!date {text} is out of range for epoch milliseconds"))
                    })?),
                    _ => return Err(expected("epoch milliseconds as a string")),
                },
                "set" => match &representation.value {
                    JsonValue::Array(elements) => {
                        return Ok(Some(open(elements.iter().map(|x| Child::Node(x, false)).collect(), Finish::Set)))
                    }
                    _ => return Err(expected("an array of elements")),
                },
                _ if is_namespaced_tag(tag) => {
                    return Ok(Some(open(vec![Child::Node(representation, false)], Finish::Tagged(Symbol::new(tag)))))
                }
                _ => return Ok(None),
            };
        Ok(Some(Step::Done(value)))
    }

    /// The text of a `!kw` or `!sym`: a string (`"db/id"`), or the `["db", "id"]` / `["id"]`
    /// arrays newer jsonista versions write.
    fn ident(&self, tag: &str, representation: &Json<'_>) -> Result<String, EdnError> {
        let text = match &representation.value {
            JsonValue::Str(s) => Some(s.to_string()),
            JsonValue::Array(parts) => match parts.as_slice() {
                [Json { value: JsonValue::Str(name), .. }] => Some(name.to_string()),
                [Json { value: JsonValue::Str(ns), .. }, Json { value: JsonValue::Str(name), .. }] => {
                    Some(format!("{ns}/{name}"))
                }
                _ => None,
            },
            _ => None,
        };
        let Some(text) = text else {
            return Err(self.error(representation.offset, format!("!{tag} expects a name as a string")));
        };
        let name = if tag == "kw" { key_name(&text) } else { &text };
        if name.is_empty() {
            return Err(self.error(representation.offset, format!("!{tag} with an empty name")));
        }
        Ok(name.to_string())
    }
}

/// A keyword's text from a JSON string: the string without a leading colon.
fn key_name(text: &str) -> &str {
    text.strip_prefix(':').unwrap_or(text)
}

/// Whether a tag is `ns/name` with both parts non-empty and starting with a letter, as EDN
/// requires of user tags.
fn is_namespaced_tag(tag: &str) -> bool {
    match tag.split_once('/') {
        Some((ns, name)) => {
            ns.starts_with(|c: char| c.is_alphabetic())
                && !name.is_empty()
                && !tag.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '[' | ']' | '{' | '}' | '(' | ')'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests;
