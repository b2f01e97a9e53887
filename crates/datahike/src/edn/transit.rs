//! Transit over JSON (`application/transit+json`), the default format of Datahike's HTTP
//! client and server, as the transit format specification defines it
//! (<https://github.com/cognitect/transit-format>).
//!
//! ```
//! use datahike::edn::{read_str, transit};
//! let value = read_str(r#"[{:db/id 1 :name "Alice"} {:db/id 2 :name "~Bob"}]"#).unwrap();
//! let text = transit::to_transit_json(&value);
//! assert_eq!(text, r#"[["^ ","~:db/id",1,"~:name","Alice"],["^ ","^0",2,"^1","~~Bob"]]"#);
//! assert_eq!(transit::from_transit_json(&text).unwrap(), value);
//! ```
//!
//! | EDN | transit+json |
//! |---|---|
//! | `nil`, `true`, `"s"` | `null`, `true`, `"s"`; a string starting with `~`, `^` or `` ` `` gets a `~` in front |
//! | long | a JSON number within ±(2^53 − 1), else `"~i<digits>"` |
//! | `1N`, `1.5M` | `"~n1"`, `"~f1.5"` |
//! | double | a JSON number; `"~zNaN"`, `"~zINF"`, `"~z-INF"` |
//! | `\c` | `"~cc"` |
//! | `:db/id`, `?e` | `"~:db/id"`, `"~$?e"` |
//! | `#uuid "…"` | `"~u…"` (also read: `["~#u", [high, low]]`) |
//! | `#inst "…"` | `"~m<epoch ms>"`; verbose: `"~t<ISO 8601>"` |
//! | vector | array |
//! | list, set | `["~#list", [..]]`, `["~#set", [..]]` |
//! | map | `["^ ", k1, v1, ..]` when every key is a scalar, else `["~#cmap", [k1, v1, ..]]`; verbose: an object |
//! | `#bytes [..]` (a byte array) | `"~b<base64>"` |
//! | `#datahike/Datom [e a v tx added]`, any `#tag value` | `["~#datahike/Datom", [..]]`, `["~#tag", value]`; verbose: `{"~#tag": value}` |
//!
//! Map keys that are scalars are written as strings: `1` as `"~i1"`, `1.5` as `"~d1.5"`,
//! `true` as `"~?t"`, `nil` as `"~_"`. A scalar at the top is quoted: `["~#'", 1]`.
//!
//! Datahike writes its own types as tagged values, which are [`Edn::Tagged`] here with the
//! same tag: `datahike/Datom` (`[e a v tx added]`), `datahike/DB`, `datahike/HistoricalDB`,
//! `datahike/SinceDB`, `datahike/AsOfDB` (database handles, maps), `datahike/Connection`
//! (`[store-identity branch]`), `datahike/Entity` and `datahike/TxReport` (maps).
//!
//! # The cache
//!
//! [`to_transit_json`] writes what transit-clj's `:json` writer does, cache included: a map
//! key, or a keyword, symbol or tag, at least four UTF-16 units long is written in full the
//! first time and as a cache code (`"^0"`, `"^1"`, .. `"^[["`) after that; the 1936th entry
//! starts the cache afresh. [`from_transit_json`] keeps the same cache while reading, so it
//! reads what transit-clj, transit-js and transit-java write. [`to_transit_json_verbose`]
//! writes the verbose form (no cache, maps as objects, instants as ISO text), which the reader
//! reads too.
//!
//! # What does not survive
//!
//! The reader also accepts transit's `~r` URIs, as strings, `["~#ratio", [n, d]]`, as the
//! integer or nearest double (as the EDN reader reads `1/3`), and unknown one-letter scalar
//! tags `"~x…"` as `#x "…"`. [`Edn::Tagged`] values whose tag is one transit gives meaning to
//! (`'`, `set`, `list`, `cmap`, `u`, `ratio`) do not read back as themselves; EDN reserves
//! tags without a namespace, so such values do not arise from EDN text.
//!
//! Malformed input is an [`EdnError`] naming the line and column of the JSON value at fault
//! and what is wrong with it; nesting deeper than [`MAX_DEPTH`](super::MAX_DEPTH) JSON arrays
//! and objects is refused.

use super::reader::{distinct_entries, distinct_items};
use super::wire::{self, error_at, Child, Json, JsonValue, Step};
use super::{pr_str, read_str, Edn, EdnError, Keyword, Symbol};
use std::collections::HashMap;
use std::fmt::Write;

/// Cache codes are `^` and one or two digits of this base, counted from `BASE_CHAR`.
const CACHE_CODE_DIGITS: usize = 44;
/// The cache holds this many entries and then starts afresh.
const MAX_CACHE_ENTRIES: usize = CACHE_CODE_DIGITS * CACHE_CODE_DIGITS;
/// The character of cache digit 0 (`'0'`).
const BASE_CHAR: u8 = b'0';
/// The largest long written as a JSON number; larger ones are strings, for JavaScript.
const JSON_INT_MAX: i64 = (1 << 53) - 1;
/// The marker that starts a map written as an array.
const MAP_AS_ARRAY: &str = "^ ";

/// A value as transit+json, as transit-clj's `:json` writer writes it (with the cache).
pub fn to_transit_json(value: &Edn) -> String {
    Writer::new(false).top(value)
}

/// A value as verbose transit+json (`:json-verbose`): no cache, maps as JSON objects, tagged
/// values as one-key objects, instants as ISO 8601 text.
pub fn to_transit_json_verbose(value: &Edn) -> String {
    Writer::new(true).top(value)
}

/// Whether a transit string goes into the cache: four UTF-16 units or more, and a map key or
/// a keyword, symbol or tag.
fn is_cacheable(text: &str, as_key: bool) -> bool {
    if text.len() < 4 || !(as_key || text.starts_with("~:") || text.starts_with("~$") || text.starts_with("~#")) {
        return false;
    }
    let mut n_units = 0;
    text.chars().any(|c| {
        n_units += c.len_utf16();
        n_units >= 4
    })
}

/// The cache code of an entry.
fn cache_code(index: usize) -> String {
    let digit = |d: usize| char::from(BASE_CHAR + (d % CACHE_CODE_DIGITS) as u8);
    match index / CACHE_CODE_DIGITS {
        0 => format!("^{}", digit(index)),
        high => format!("^{}{}", digit(high), digit(index)),
    }
}

/// The entry a cache code names, `None` for a malformed code.
fn cache_index(code: &str) -> Option<usize> {
    let digit = |b: u8| b.checked_sub(BASE_CHAR).map(usize::from).filter(|d| *d < CACHE_CODE_DIGITS);
    match code.as_bytes() {
        [b'^', d] => digit(*d),
        [b'^', high, low] => Some(digit(*high)? * CACHE_CODE_DIGITS + digit(*low)?),
        _ => None,
    }
}

/// The transit writer: JSON text, and the cache of strings written so far.
struct Writer {
    out: String,
    verbose: bool,
    cache: HashMap<String, usize>,
}

impl Writer {
    fn new(verbose: bool) -> Writer {
        Writer { out: String::new(), verbose, cache: HashMap::new() }
    }

    /// The whole text of one value; a scalar is quoted, as a transit document is a container.
    fn top(mut self, value: &Edn) -> String {
        if is_scalar(value) {
            self.tagged("'", |w| w.value(value, false));
        } else {
            self.value(value, false);
        }
        self.out
    }

    /// Writes a transit string, or its cache code when it was written before.
    fn string(&mut self, text: &str, as_key: bool) {
        if !self.verbose && is_cacheable(text, as_key) {
            if let Some(&index) = self.cache.get(text) {
                let code = cache_code(index);
                wire::write_json_string(&mut self.out, &code);
                return;
            }
            if self.cache.len() == MAX_CACHE_ENTRIES {
                self.cache.clear();
            }
            self.cache.insert(text.to_string(), self.cache.len());
        }
        wire::write_json_string(&mut self.out, text);
    }

    /// Writes `~<tag><text>`.
    fn scalar(&mut self, tag: char, text: &str, as_key: bool) {
        let mut s = String::with_capacity(text.len() + 2);
        s.push('~');
        s.push(tag);
        s.push_str(text);
        self.string(&s, as_key);
    }

    /// Writes a tagged value `["~#tag", representation]` (`{"~#tag": ..}` when verbose).
    fn tagged(&mut self, tag: &str, representation: impl FnOnce(&mut Writer)) {
        let text = format!("~#{tag}");
        if self.verbose {
            self.out.push('{');
            wire::write_json_string(&mut self.out, &text);
            self.out.push(':');
            representation(self);
            self.out.push('}');
        } else {
            self.out.push('[');
            self.string(&text, false);
            self.out.push(',');
            representation(self);
            self.out.push(']');
        }
    }

    fn array(&mut self, items: &[Edn]) {
        self.out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.value(item, false);
        }
        self.out.push(']');
    }

    fn value(&mut self, value: &Edn, as_key: bool) {
        match value {
            Edn::Nil if as_key => self.string("~_", true),
            Edn::Nil => self.out.push_str("null"),
            Edn::Bool(b) if as_key => self.string(if *b { "~?t" } else { "~?f" }, true),
            Edn::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Edn::Int(i) if as_key || !(-JSON_INT_MAX..=JSON_INT_MAX).contains(i) => {
                self.scalar('i', &i.to_string(), as_key);
            }
            Edn::Int(i) => {
                let _ = write!(self.out, "{i}");
            }
            Edn::BigInt(i) => self.scalar('n', &i.to_string(), as_key),
            Edn::Float(x) if x.is_nan() => self.string("~zNaN", as_key),
            Edn::Float(x) if x.is_infinite() => self.string(if *x > 0.0 { "~zINF" } else { "~z-INF" }, as_key),
            Edn::Float(x) if as_key => {
                let mut text = String::new();
                wire::write_json_float(&mut text, *x);
                self.scalar('d', &text, true);
            }
            Edn::Float(x) => wire::write_json_float(&mut self.out, *x),
            Edn::BigDec(_) => {
                let mut text = pr_str(value);
                if text.ends_with('M') {
                    text.pop();
                }
                self.scalar('f', &text, as_key);
            }
            Edn::Str(s) if s.starts_with(['~', '^', '`']) => {
                let escaped = format!("~{s}");
                self.string(&escaped, as_key);
            }
            Edn::Str(s) => self.string(s, as_key),
            Edn::Char(c) => self.scalar('c', c.encode_utf8(&mut [0; 4]), as_key),
            Edn::Keyword(k) => self.scalar(':', k.as_str(), as_key),
            Edn::Symbol(s) => self.scalar('$', s.as_str(), as_key),
            Edn::Uuid(u) => self.scalar('u', &u.hyphenated().to_string(), as_key),
            Edn::Inst(_) if self.verbose => {
                let printed = pr_str(value);
                let iso = printed.trim_start_matches("#inst \"").trim_end_matches('"').replace("-00:00", "Z");
                self.scalar('t', &iso, as_key);
            }
            Edn::Inst(ms) => self.scalar('m', &ms.to_string(), as_key),
            Edn::Vector(items) => self.array(items),
            Edn::List(items) => self.tagged("list", |w| w.array(items)),
            Edn::Set(items) => self.tagged("set", |w| w.array(items)),
            Edn::Map(entries) if entries.iter().all(|(k, _)| is_scalar(k)) => {
                if self.verbose {
                    self.out.push('{');
                    for (i, (k, v)) in entries.iter().enumerate() {
                        if i > 0 {
                            self.out.push(',');
                        }
                        self.value(k, true);
                        self.out.push(':');
                        self.value(v, false);
                    }
                    self.out.push('}');
                } else {
                    self.out.push('[');
                    wire::write_json_string(&mut self.out, MAP_AS_ARRAY);
                    for (k, v) in entries {
                        self.out.push(',');
                        self.value(k, true);
                        self.out.push(',');
                        self.value(v, false);
                    }
                    self.out.push(']');
                }
            }
            Edn::Map(entries) => self.tagged("cmap", |w| {
                w.out.push('[');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        w.out.push(',');
                    }
                    w.value(k, false);
                    w.out.push(',');
                    w.value(v, false);
                }
                w.out.push(']');
            }),
            Edn::Tagged(tag, inner) => match wire::edn_bytes(value) {
                Some(bytes) => self.scalar('b', &wire::base64_encode(&bytes), as_key),
                None => self.tagged(tag.as_str(), |w| w.value(inner, false)),
            },
        }
    }
}

/// Whether transit writes a value as a string or JSON scalar (its tag is one character):
/// such values may be map keys of `["^ ", ..]` maps and are quoted at the top.
fn is_scalar(value: &Edn) -> bool {
    match value {
        Edn::List(_) | Edn::Vector(_) | Edn::Set(_) | Edn::Map(_) => false,
        Edn::Tagged(..) => wire::edn_bytes(value).is_some(),
        _ => true,
    }
}

/// Reads transit+json, verbose or not, with the cache transit writers use (see the module
/// docs).
pub fn from_transit_json(text: &str) -> Result<Edn, EdnError> {
    let json = wire::parse(text)?;
    wire::convert(&mut Reader { text, cache: Vec::new() }, &json)
}

/// What a transit string stands for.
#[derive(Clone, Debug)]
enum Parsed {
    Value(Edn),
    /// `~#tag`: the tag of the tagged value it starts.
    Tag(String),
    /// `^ `: the start of a map written as an array.
    MapMarker,
}

/// The transit reader, a [`wire::Converter`]; `cache` holds what each cache code stands for.
struct Reader<'t> {
    text: &'t str,
    cache: Vec<Parsed>,
}

/// How the reader finishes a container.
enum Finish {
    Vector,
    Map,
    /// A tagged value: the tag, and the offset of its representation for errors.
    Tagged(String, usize),
}

impl<'j, 'a> wire::Converter<'j, 'a> for Reader<'_> {
    type Finish = Finish;

    fn enter(&mut self, child: Child<'j, 'a>) -> Result<Step<'j, 'a, Finish>, EdnError> {
        let (json, as_key) = match child {
            Child::Key(offset, key) => return self.key(offset, key).map(Step::Done),
            Child::Node(json, as_key) => (json, as_key),
        };
        Ok(match &json.value {
            JsonValue::Null => Step::Done(Edn::Nil),
            JsonValue::Bool(b) => Step::Done(Edn::Bool(*b)),
            JsonValue::Number { text, integer } => Step::Done(wire::number_to_edn(text, *integer)),
            JsonValue::Str(s) => match self.string(s, as_key, json.offset)? {
                Parsed::Value(value) => Step::Done(value),
                Parsed::MapMarker => Step::Done(Edn::str(MAP_AS_ARRAY)),
                Parsed::Tag(tag) => return Err(self.misplaced_tag(&tag, json.offset)),
            },
            JsonValue::Array(items) => self.array(items)?,
            JsonValue::Object(members) => self.object(members)?,
        })
    }

    fn finish(&mut self, finish: Finish, results: Vec<Edn>) -> Result<Edn, EdnError> {
        Ok(match finish {
            Finish::Vector => Edn::Vector(results),
            Finish::Map => Edn::Map(distinct_entries(wire::pairs(results))),
            Finish::Tagged(tag, offset) => {
                let representation = results.into_iter().next().unwrap_or(Edn::Nil);
                self.tagged(&tag, representation, offset)?
            }
        })
    }
}

/// A container whose children are still to convert, after the values already in `results`.
fn open<'j, 'a>(children: Vec<Child<'j, 'a>>, results: Vec<Edn>, finish: Finish) -> Step<'j, 'a, Finish> {
    Step::Open { children, results, finish }
}

impl Reader<'_> {
    fn error(&self, offset: usize, message: String) -> EdnError {
        error_at(self.text, offset, format!("invalid transit: {message}"))
    }

    fn misplaced_tag(&self, tag: &str, offset: usize) -> EdnError {
        self.error(offset, format!("the tag ~#{tag} stands where a value belongs (a tag starts an array [tag, value])"))
    }

    /// Reads a string through the cache: a cache code is replaced by what it stands for; a
    /// cacheable string is parsed and remembered.
    fn string(&mut self, text: &str, as_key: bool, offset: usize) -> Result<Parsed, EdnError> {
        if text.starts_with('^') && text != MAP_AS_ARRAY {
            let Some(index) = cache_index(text) else {
                return Err(self.error(
                    offset,
                    format!("{text:?} is not a cache code (^ and one or two of 0-9 : ; < = > ? @ A-Z [)"),
                ));
            };
            return match self.cache.get(index) {
                Some(parsed) => Ok(parsed.clone()),
                None => Err(self.error(
                    offset,
                    format!(
                        "cache code {text} refers to entry {index}, but only {} are cached so far",
                        self.cache.len()
                    ),
                )),
            };
        }
        let parsed = self.parse(text, offset)?;
        if is_cacheable(text, as_key) {
            if self.cache.len() == MAX_CACHE_ENTRIES {
                self.cache.clear();
            }
            self.cache.push(parsed.clone());
        }
        Ok(parsed)
    }

    /// What a transit string (not a cache code) stands for.
    fn parse(&self, text: &str, offset: usize) -> Result<Parsed, EdnError> {
        if text == MAP_AS_ARRAY {
            return Ok(Parsed::MapMarker);
        }
        let mut chars = text.chars();
        let (Some('~'), Some(tag)) = (chars.next(), chars.next()) else {
            return Ok(Parsed::Value(Edn::str(text)));
        };
        let rest = chars.as_str();
        let bad = |what: &str| self.error(offset, format!("{text:?} is not {what}"));
        let value = match tag {
            '~' | '^' | '`' => Edn::str(text.get(1..).unwrap_or_default()),
            '#' if rest.is_empty() => return Err(bad("a tag: the tag is empty")),
            '#' => return Ok(Parsed::Tag(rest.to_string())),
            '_' if rest.is_empty() => Edn::Nil,
            '?' => match rest {
                "t" => Edn::Bool(true),
                "f" => Edn::Bool(false),
                _ => return Err(bad("a boolean (~?t or ~?f)")),
            },
            'i' => match read_number(rest) {
                Some(value @ (Edn::Int(_) | Edn::BigInt(_))) if is_plain_integer(rest) => value,
                _ => return Err(bad("an integer")),
            },
            'n' => match read_number(&format!("{rest}N")) {
                Some(value @ Edn::BigInt(_)) if is_plain_integer(rest) => value,
                _ => return Err(bad("a big integer")),
            },
            'd' => match rest.parse::<f64>() {
                Ok(x) if !rest.is_empty() && !rest.starts_with('+') => Edn::Float(x),
                _ => return Err(bad("a double")),
            },
            'f' => match read_number(&format!("{rest}M")) {
                Some(value @ Edn::BigDec(_)) => value,
                _ => return Err(bad("a big decimal")),
            },
            'z' => match rest {
                "NaN" => Edn::Float(f64::NAN),
                "INF" => Edn::Float(f64::INFINITY),
                "-INF" => Edn::Float(f64::NEG_INFINITY),
                _ => return Err(bad("a special number (~zNaN, ~zINF, ~z-INF)")),
            },
            ':' if rest.is_empty() => return Err(bad("a keyword: the name is empty")),
            ':' => Edn::Keyword(Keyword::new(rest)),
            '$' if rest.is_empty() => return Err(bad("a symbol: the name is empty")),
            '$' => Edn::Symbol(Symbol::new(rest)),
            'u' => Edn::Uuid(uuid::Uuid::try_parse(rest).map_err(|e| bad(&format!("a uuid ({e})")))?),
            'm' => Edn::Inst(rest.parse().map_err(|_| bad("an instant in epoch milliseconds"))?),
            't' => read_instant(rest).ok_or_else(|| bad("an instant in ISO 8601 (RFC 3339)"))?,
            'c' => {
                let mut cs = rest.chars();
                match (cs.next(), cs.next()) {
                    (Some(c), None) => Edn::Char(c),
                    _ => return Err(bad("a character (one character after ~c)")),
                }
            }
            'b' => wire::bytes_edn(&wire::base64_decode(rest).map_err(|e| bad(&format!("base64 bytes ({e})")))?),
            // A URI: `Edn` has none, and a string is how it is used.
            'r' => Edn::str(rest),
            // An extension scalar this reader does not know, kept with its tag as transit's
            // readers keep unknown tags.
            other => Edn::Tagged(Symbol::new(&other.to_string()), Box::new(Edn::str(rest))),
        };
        Ok(Parsed::Value(value))
    }

    /// A JSON object key (of a verbose map).
    fn key(&mut self, offset: usize, key: &str) -> Result<Edn, EdnError> {
        match self.string(key, true, offset)? {
            Parsed::Value(value) => Ok(value),
            Parsed::MapMarker => Ok(Edn::str(MAP_AS_ARRAY)),
            Parsed::Tag(tag) => Err(self.error(
                offset,
                format!(
                    "the tag ~#{tag} is a key of an object with more than one key (a verbose tagged value has one)"
                ),
            )),
        }
    }

    /// An array: a map `["^ ", k, v, ..]`, a tagged value `["~#tag", rep]`, or an array.
    fn array<'j, 'a>(&mut self, items: &'j [Json<'a>]) -> Result<Step<'j, 'a, Finish>, EdnError> {
        let Some((first, rest)) = items.split_first() else {
            return Ok(Step::Done(Edn::Vector(Vec::new())));
        };
        let JsonValue::Str(text) = &first.value else {
            return Ok(open(
                items.iter().map(|x| Child::Node(x, false)).collect(),
                Vec::with_capacity(items.len()),
                Finish::Vector,
            ));
        };
        Ok(match self.string(text, false, first.offset)? {
            Parsed::MapMarker => {
                if rest.len() % 2 != 0 {
                    let last = rest.last().map_or(first.offset, |x| x.offset);
                    return Err(self.error(last, "a map [\"^ \", k1, v1, ..] has a key without a value".into()));
                }
                let children = rest.iter().enumerate().map(|(i, x)| Child::Node(x, i % 2 == 0)).collect();
                open(children, Vec::with_capacity(rest.len()), Finish::Map)
            }
            Parsed::Tag(tag) => match rest {
                [representation] => open(
                    vec![Child::Node(representation, false)],
                    Vec::new(),
                    Finish::Tagged(tag, representation.offset),
                ),
                _ => {
                    return Err(self.error(
                        first.offset,
                        format!("the tagged value ~#{tag} has {} values after its tag, not one", rest.len()),
                    ))
                }
            },
            Parsed::Value(value) => {
                let mut results = Vec::with_capacity(items.len());
                results.push(value);
                open(rest.iter().map(|x| Child::Node(x, false)).collect(), results, Finish::Vector)
            }
        })
    }

    /// An object: a verbose tagged value `{"~#tag": rep}` or a verbose map.
    fn object<'j, 'a>(&mut self, members: &'j [wire::Member<'a>]) -> Result<Step<'j, 'a, Finish>, EdnError> {
        let Some(((offset, key, value), rest)) = members.split_first() else {
            return Ok(Step::Done(Edn::Map(Vec::new())));
        };
        let first_key = match self.string(key, true, *offset)? {
            Parsed::Value(k) => k,
            Parsed::MapMarker => Edn::str(MAP_AS_ARRAY),
            Parsed::Tag(tag) if rest.is_empty() => {
                return Ok(open(vec![Child::Node(value, false)], Vec::new(), Finish::Tagged(tag, value.offset)));
            }
            Parsed::Tag(tag) => {
                return Err(self.error(
                    *offset,
                    format!(
                        "the tag ~#{tag} is a key of an object with more than one key (a verbose tagged value has one)"
                    ),
                ))
            }
        };
        let mut children = Vec::with_capacity(members.len() * 2);
        children.push(Child::Node(value, false));
        for (offset, key, value) in rest {
            children.push(Child::Key(*offset, key));
            children.push(Child::Node(value, false));
        }
        let mut results = Vec::with_capacity(members.len() * 2);
        results.push(first_key);
        Ok(open(children, results, Finish::Map))
    }

    /// The value of a tagged value from its tag and representation.
    fn tagged(&self, tag: &str, mut representation: Edn, offset: usize) -> Result<Edn, EdnError> {
        let expected = |what: &str| self.error(offset, format!("the tagged value ~#{tag} expects {what}"));
        Ok(match (tag, &mut representation) {
            ("'", _) => representation,
            ("set", Edn::Vector(items) | Edn::List(items)) => Edn::Set(distinct_items(std::mem::take(items))),
            ("set", _) => return Err(expected("an array of elements")),
            ("list", Edn::Vector(items) | Edn::List(items)) => Edn::List(std::mem::take(items)),
            ("list", _) => return Err(expected("an array of elements")),
            ("cmap", Edn::Vector(items)) if items.len() % 2 == 0 => {
                Edn::Map(distinct_entries(wire::pairs(std::mem::take(items))))
            }
            ("cmap", _) => return Err(expected("an array of keys and values, alternating")),
            ("u", Edn::Str(text)) => {
                Edn::Uuid(uuid::Uuid::try_parse(text).map_err(|e| expected(&format!("a uuid, not {text:?} ({e})")))?)
            }
            ("u", Edn::Vector(halves)) => match halves.as_slice() {
                [Edn::Int(high), Edn::Int(low)] => Edn::Uuid(uuid::Uuid::from_u64_pair(*high as u64, *low as u64)),
                _ => return Err(expected("a uuid's high and low 64 bits as two longs")),
            },
            ("u", _) => return Err(expected("a uuid string")),
            ("ratio", Edn::Vector(parts)) => match parts.as_slice() {
                [numerator @ (Edn::Int(_) | Edn::BigInt(_)), denominator @ (Edn::Int(_) | Edn::BigInt(_))] => {
                    let text = format!("{}/{}", integer_digits(numerator), integer_digits(denominator));
                    read_number(&text).ok_or_else(|| expected("a numerator and a non-zero denominator"))?
                }
                _ => return Err(expected("a numerator and a denominator")),
            },
            ("ratio", _) => return Err(expected("a numerator and a denominator")),
            (tag, _) => Edn::Tagged(Symbol::new(tag), Box::new(representation)),
        })
    }
}

/// The digits of an integer value, with sign, without the `N` of a big integer.
fn integer_digits(value: &Edn) -> String {
    match value {
        Edn::Int(i) => i.to_string(),
        Edn::BigInt(i) => i.to_string(),
        _ => String::new(),
    }
}

/// Whether `text` is `-?[0-9]+`, the integer syntax transit writes.
fn is_plain_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A number written in EDN syntax, or `None` when `text` is not one number.
fn read_number(text: &str) -> Option<Edn> {
    if !text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.' | b'/')) {
        return None;
    }
    match read_str(text) {
        Ok(value @ (Edn::Int(_) | Edn::BigInt(_) | Edn::Float(_) | Edn::BigDec(_))) => Some(value),
        _ => None,
    }
}

/// An ISO 8601 instant as the EDN reader reads `#inst` text, or `None`.
fn read_instant(text: &str) -> Option<Edn> {
    if !text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b':' | b'.')) {
        return None;
    }
    match read_str(&format!("#inst \"{text}\"")) {
        Ok(value @ Edn::Inst(_)) => Some(value),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
