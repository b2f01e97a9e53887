//! The EDN reader: text to [`Edn`] values, as Clojure's `clojure.edn/read-string` reads them,
//! with 1-based line:column errors and no recursion (nesting is bounded by [`MAX_DEPTH`]).
//!
//! Deliberate choices, where Clojure gives us latitude or we cannot follow it exactly:
//! - Ratios: `4/2` reads as the integer `2` (Clojure reduces it too); a ratio that is not an
//!   integer, such as `1/3`, reads as the nearest [`Edn::Float`], since `Edn` has no ratio.
//! - `#inst` follows `clojure.instant`'s grammar (4-digit year, optional month, day, time,
//!   fraction and offset) with the proleptic Gregorian calendar; Java uses the Julian calendar
//!   before 1582-10-15, so instants that early differ from Clojure's by some days. Fractions
//!   beyond milliseconds are truncated. Instants outside the years 0000-9999 in UTC are
//!   rejected, because they could not be printed in a form that reads back.
//! - `#uuid` accepts what `uuid::Uuid::try_parse` accepts (hyphenated, simple, braced, urn).
//! - Metadata (`^:foo x`, `^{..} x`, `^Sym x`, `^"tag" x`) is validated and dropped.
//! - Namespaced maps (`#:ns{:a 1}`) read as `{:ns/a 1}`, as `clojure.edn` does.
//! - `::auto` keywords, `#::{}`, regexes, `#(..)`, `#'var`, `#=` and reader conditionals are
//!   not EDN and are errors.

use super::{Edn, Keyword, Symbol};
pub use crate::error::EdnError;
use bigdecimal::BigDecimal;
use num_bigint::{BigInt, Sign};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// How deeply collections, tagged literals, discards and metadata may nest. Deeper input is
/// an error rather than a value: dropping, comparing and hashing a value recurse (and so will
/// much code that walks values), and in an unoptimized build comparing two values 5,000 deep
/// already overflows a test thread's 2 MiB stack. Datahike's own data nests a few levels.
/// The JSON and transit readers ([`super::json`], [`super::transit`]) bound the nesting of
/// JSON arrays and objects by the same number.
pub const MAX_DEPTH: usize = 1_000;

/// Reads exactly one form; anything but whitespace, comments and `#_` discards after it is an
/// error, and so is an input without a form.
pub fn read_str(text: &str) -> Result<Edn, EdnError> {
    let mut reader = Reader::new(text);
    let Some(value) = reader.read_form()? else {
        return Err(reader.error_at(reader.pos, "expected a form, found end of input".into()));
    };
    let after = reader.pos;
    match reader.read_form()? {
        None => Ok(value),
        Some(_) => {
            let start = reader.last_form_start;
            Err(reader.error_at(
                start,
                format!("unexpected form after the first one (which ended at {})", reader.place(after)),
            ))
        }
    }
}

/// Reads every form of `text`, in order.
pub fn read_all(text: &str) -> Result<Vec<Edn>, EdnError> {
    let mut reader = Reader::new(text);
    let mut forms = Vec::new();
    while let Some(form) = reader.read_form()? {
        forms.push(form);
    }
    Ok(forms)
}

/// Below this many elements duplicates are found by a linear scan; above, by hashing.
const LINEAR_SCAN_MAX: usize = 16;

/// Finds duplicate keys of a map or elements of a set in expected constant time.
#[derive(Default)]
struct Distinct {
    by_hash: HashMap<u64, Vec<usize>>,
    n_indexed: usize,
}

impl Distinct {
    /// Whether `candidate` equals none of `items` (whose `key` is compared).
    fn is_new<T>(&mut self, items: &[T], key: fn(&T) -> &Edn, candidate: &Edn) -> bool {
        if items.len() < LINEAR_SCAN_MAX {
            return !items.iter().any(|item| key(item) == candidate);
        }
        while self.n_indexed < items.len() {
            let hash = edn_hash(key(&items[self.n_indexed]));
            self.by_hash.entry(hash).or_default().push(self.n_indexed);
            self.n_indexed += 1;
        }
        match self.by_hash.get(&edn_hash(candidate)) {
            Some(indices) => !indices.iter().any(|&i| key(&items[i]) == candidate),
            None => true,
        }
    }
}

/// Set elements without those equal to an earlier one, as Clojure's `(into #{} ..)` keeps
/// them; for decoders of formats that do not forbid duplicates.
pub(crate) fn distinct_items(items: Vec<Edn>) -> Vec<Edn> {
    let mut distinct = Distinct::default();
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        if distinct.is_new(&kept, |x| x, &item) {
            kept.push(item);
        }
    }
    kept
}

/// Map entries with one entry per key: a later value replaces an earlier one in its place,
/// as Clojure's `assoc` (and Jackson) do; for decoders of formats that allow repeated keys.
pub(crate) fn distinct_entries(entries: Vec<(Edn, Edn)>) -> Vec<(Edn, Edn)> {
    let mut positions: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut kept: Vec<(Edn, Edn)> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let same_hash = positions.entry(edn_hash(&key)).or_default();
        match same_hash.iter().find(|&&i| kept.get(i).is_some_and(|(k, _)| *k == key)) {
            Some(&i) => {
                if let Some(entry) = kept.get_mut(i) {
                    entry.1 = value;
                }
            }
            None => {
                same_hash.push(kept.len());
                kept.push((key, value));
            }
        }
    }
    kept
}

/// A hash consistent with `Edn`'s `PartialEq`: lists and vectors hash alike, maps and sets
/// ignore order, `0.0` and `-0.0` hash alike, decimals hash by value.
fn edn_hash(value: &Edn) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    hash_into(value, &mut hasher);
    hasher.finish()
}

fn hash_into(value: &Edn, state: &mut impl Hasher) {
    match value {
        Edn::Nil => 0u8.hash(state),
        Edn::Bool(b) => (1u8, b).hash(state),
        Edn::Str(s) => (2u8, s).hash(state),
        Edn::Char(c) => (3u8, c).hash(state),
        Edn::Int(i) => (4u8, i).hash(state),
        Edn::BigInt(i) => (5u8, i).hash(state),
        Edn::Float(x) => (6u8, if *x == 0.0 { 0 } else { x.to_bits() }).hash(state),
        Edn::BigDec(d) => {
            let (digits, scale) = d.normalized().into_bigint_and_scale();
            (7u8, digits, scale).hash(state);
        }
        Edn::Keyword(k) => (8u8, k.as_str()).hash(state),
        Edn::Symbol(s) => (9u8, s.as_str()).hash(state),
        Edn::List(xs) | Edn::Vector(xs) => {
            (10u8, xs.len()).hash(state);
            xs.iter().for_each(|x| hash_into(x, state));
        }
        Edn::Map(entries) => {
            let sum = entries.iter().fold(0u64, |sum, (k, v)| {
                let mut entry = std::collections::hash_map::DefaultHasher::new();
                hash_into(k, &mut entry);
                hash_into(v, &mut entry);
                sum.wrapping_add(entry.finish())
            });
            (11u8, entries.len(), sum).hash(state);
        }
        Edn::Set(xs) => {
            let sum = xs.iter().fold(0u64, |sum, x| sum.wrapping_add(edn_hash(x)));
            (12u8, xs.len(), sum).hash(state);
        }
        Edn::Inst(ms) => (13u8, ms).hash(state),
        Edn::Uuid(u) => (14u8, u).hash(state),
        Edn::Tagged(tag, x) => {
            (15u8, tag.as_str()).hash(state);
            hash_into(x, state);
        }
    }
}

/// A form under construction: an open collection, or a prefix waiting for its form.
enum Frame {
    List {
        start: usize,
        items: Vec<Edn>,
    },
    Vector {
        start: usize,
        items: Vec<Edn>,
    },
    Set {
        start: usize,
        items: Vec<Edn>,
        distinct: Distinct,
    },
    Map {
        start: usize,
        entries: Vec<(Edn, Edn)>,
        pending_key: Option<(Edn, usize)>,
        distinct: Distinct,
    },
    /// `#tag` waiting for its value.
    Tagged {
        start: usize,
        tag: Symbol,
    },
    /// `#:ns` waiting for its map.
    NamespacedMap {
        start: usize,
        namespace: String,
    },
    /// `#_` waiting for the form to drop.
    Discard {
        start: usize,
    },
    /// `^` waiting for the metadata (`seen_meta == false`), then for the form it annotates.
    Meta {
        start: usize,
        seen_meta: bool,
    },
}

impl Frame {
    fn start(&self) -> usize {
        match self {
            Frame::List { start, .. }
            | Frame::Vector { start, .. }
            | Frame::Set { start, .. }
            | Frame::Map { start, .. }
            | Frame::Tagged { start, .. }
            | Frame::NamespacedMap { start, .. }
            | Frame::Discard { start }
            | Frame::Meta { start, .. } => *start,
        }
    }
    /// What the frame is, for messages.
    fn describe(&self) -> String {
        match self {
            Frame::List { .. } => "list".into(),
            Frame::Vector { .. } => "vector".into(),
            Frame::Set { .. } => "set".into(),
            Frame::Map { .. } => "map".into(),
            Frame::Tagged { tag, .. } => format!("#{tag}"),
            Frame::NamespacedMap { namespace, .. } => format!("#:{namespace}"),
            Frame::Discard { .. } => "#_".into(),
            Frame::Meta { .. } => "^".into(),
        }
    }
    fn closer(&self) -> Option<char> {
        match self {
            Frame::List { .. } => Some(')'),
            Frame::Vector { .. } => Some(']'),
            Frame::Set { .. } | Frame::Map { .. } => Some('}'),
            _ => None,
        }
    }
}

/// Java's `Character.isWhitespace`, plus the comma, as Clojure's reader defines whitespace.
fn is_whitespace(c: char) -> bool {
    match c {
        ' ' | ',' | '\t' | '\n' | '\r' | '\u{b}' | '\u{c}' | '\u{1c}'..='\u{1f}' => true,
        '\u{85}' | '\u{a0}' | '\u{2007}' | '\u{202f}' => false,
        c => c > '\u{7f}' && c.is_whitespace(),
    }
}

/// Characters that end a token (a symbol, keyword, number or character name).
fn ends_token(c: char) -> bool {
    is_whitespace(c) || matches!(c, '"' | ';' | '^' | '(' | ')' | '[' | ']' | '{' | '}' | '\\')
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
    stack: Vec<Frame>,
    /// Where the most recently started top-level form began, for messages.
    last_form_start: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader { text, pos: 0, stack: Vec::new(), last_form_start: 0 }
    }

    /// `(line, column)`, both 1-based, of a byte offset.
    fn line_column(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// `line:column` of a byte offset, for messages.
    fn place(&self, offset: usize) -> String {
        let (line, column) = self.line_column(offset);
        format!("{line}:{column}")
    }

    fn error_at(&self, offset: usize, message: String) -> EdnError {
        let (line, column) = self.line_column(offset);
        EdnError { line, column, offset, message }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        let mut chars = self.text[self.pos..].chars();
        chars.next();
        chars.next()
    }

    fn skip_whitespace_and_comments(&mut self) {
        while let Some(c) = self.peek() {
            if c == ';' {
                self.pos = self.text[self.pos..].find('\n').map_or(self.text.len(), |i| self.pos + i);
            } else if is_whitespace(c) {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    /// Reads the token starting at the current position: up to whitespace or a delimiter.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        let rest = &self.text[start..];
        let len = rest.find(ends_token).unwrap_or(rest.len());
        self.pos = start + len;
        &rest[..len]
    }

    fn push(&mut self, frame: Frame) -> Result<(), EdnError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error_at(
                frame.start(),
                format!("nesting deeper than {MAX_DEPTH} levels (collections, tags, discards)"),
            ));
        }
        self.stack.push(frame);
        Ok(())
    }

    /// Reads the next top-level form; `None` at the end of the input.
    fn read_form(&mut self) -> Result<Option<Edn>, EdnError> {
        debug_assert!(self.stack.is_empty());
        loop {
            self.skip_whitespace_and_comments();
            let mut start = self.pos;
            if self.stack.is_empty() {
                self.last_form_start = start;
            }
            let Some(c) = self.peek() else {
                return match self.stack.last() {
                    None => Ok(None),
                    Some(frame) => Err(self.error_at(
                        start,
                        match frame.closer() {
                            Some(_) => format!(
                                "unterminated {} starting at {} (reached end of input)",
                                frame.describe(),
                                self.place(frame.start())
                            ),
                            None => format!(
                                "expected a form after {} at {}, found end of input",
                                frame.describe(),
                                self.place(frame.start())
                            ),
                        },
                    )),
                };
            };
            let value = match c {
                '(' | '[' | '{' => {
                    self.pos += 1;
                    let frame = match c {
                        '(' => Frame::List { start, items: Vec::new() },
                        '[' => Frame::Vector { start, items: Vec::new() },
                        _ => {
                            Frame::Map { start, entries: Vec::new(), pending_key: None, distinct: Distinct::default() }
                        }
                    };
                    self.push(frame)?;
                    continue;
                }
                ')' | ']' | '}' => {
                    self.pos += 1;
                    let (value, collection_start) = self.close(c, start)?;
                    start = collection_start;
                    value
                }
                '"' => Edn::Str(self.string()?.into()),
                '\\' => Edn::Char(self.character()?),
                ':' => self.keyword()?,
                '^' => {
                    self.pos += 1;
                    self.push(Frame::Meta { start, seen_meta: false })?;
                    continue;
                }
                '#' => match self.dispatch(start)? {
                    Some(value) => value,
                    None => continue,
                },
                '0'..='9' => self.number()?,
                '+' | '-' if self.peek_second().is_some_and(|c| c.is_ascii_digit()) => self.number()?,
                _ => self.symbolic()?,
            };
            if let Some(value) = self.deliver(value, start)? {
                return Ok(Some(value));
            }
        }
    }

    /// Hands a complete form to the frame on top of the stack, completing as many frames as
    /// it completes. Returns the form if it completed a top-level form.
    fn deliver(&mut self, mut value: Edn, mut start: usize) -> Result<Option<Edn>, EdnError> {
        loop {
            let Some(frame) = self.stack.last_mut() else {
                return Ok(Some(value));
            };
            match frame {
                Frame::List { items, .. } | Frame::Vector { items, .. } => {
                    items.push(value);
                    return Ok(None);
                }
                Frame::Set { items, distinct, .. } => {
                    if !distinct.is_new(items, |x| x, &value) {
                        return Err(self.error_at(start, format!("duplicate element {} in set", brief(&value))));
                    }
                    items.push(value);
                    return Ok(None);
                }
                Frame::Map { entries, pending_key, distinct, .. } => {
                    match pending_key.take() {
                        None => {
                            if !distinct.is_new(entries, |(k, _)| k, &value) {
                                return Err(self.error_at(start, format!("duplicate key {} in map", brief(&value))));
                            }
                            *pending_key = Some((value, start));
                        }
                        Some((key, _)) => entries.push((key, value)),
                    }
                    return Ok(None);
                }
                Frame::Discard { .. } => {
                    self.stack.pop();
                    return Ok(None);
                }
                Frame::Meta { seen_meta, start: meta_start } => {
                    let meta_start = *meta_start;
                    if !*seen_meta {
                        if !matches!(value, Edn::Map(_) | Edn::Keyword(_) | Edn::Symbol(_) | Edn::Str(_)) {
                            return Err(self.error_at(
                                start,
                                format!("metadata must be a map, keyword, symbol or string, found {}", brief(&value)),
                            ));
                        }
                        *seen_meta = true;
                        return Ok(None);
                    }
                    if !matches!(value, Edn::Symbol(_) | Edn::List(_) | Edn::Vector(_) | Edn::Map(_) | Edn::Set(_)) {
                        return Err(self.error_at(
                            start,
                            format!(
                                "metadata at {} can only be applied to a symbol or collection, not {}",
                                self.place(meta_start),
                                brief(&value)
                            ),
                        ));
                    }
                    self.stack.pop();
                    start = meta_start;
                }
                Frame::Tagged { tag, start: tag_start } => {
                    let (tag, tag_start) = (*tag, *tag_start);
                    self.stack.pop();
                    value = self.tagged(tag, value, start)?;
                    start = tag_start;
                }
                Frame::NamespacedMap { namespace, start: ns_start } => {
                    let ns_start = *ns_start;
                    let namespace = std::mem::take(namespace);
                    self.stack.pop();
                    value = self.namespaced_map(&namespace, value, start)?;
                    start = ns_start;
                }
            }
        }
    }

    /// Closes the innermost collection with `closer`, found at `at`. Returns the collection
    /// and where it started.
    fn close(&mut self, closer: char, at: usize) -> Result<(Edn, usize), EdnError> {
        let Some(frame) = self.stack.pop() else {
            return Err(self.error_at(at, format!("unmatched {closer}")));
        };
        match frame.closer() {
            Some(expected) if expected == closer => {}
            Some(expected) => {
                return Err(self.error_at(
                    at,
                    format!(
                        "unmatched {closer}: the {} starting at {} must be closed with {expected}",
                        frame.describe(),
                        self.place(frame.start())
                    ),
                ))
            }
            None => {
                return Err(self.error_at(
                    at,
                    format!(
                        "expected a form after {} at {}, found {closer}",
                        frame.describe(),
                        self.place(frame.start())
                    ),
                ))
            }
        }
        let start = frame.start();
        let value = match frame {
            Frame::List { items, .. } => Edn::List(items),
            Frame::Vector { items, .. } => Edn::Vector(items),
            Frame::Set { items, .. } => Edn::Set(items),
            Frame::Map { start, entries, pending_key, .. } => {
                if let Some((key, key_start)) = pending_key {
                    return Err(self.error_at(
                        at,
                        format!(
                            "map literal must contain an even number of forms: the map starting at {} has no \
                             value for key {} at {}",
                            self.place(start),
                            brief(&key),
                            self.place(key_start)
                        ),
                    ));
                }
                Edn::Map(entries)
            }
            _ => unreachable!("only collections have closers"),
        };
        Ok((value, start))
    }

    /// After `#`: sets, discards, symbolic values, namespaced maps and tags. `None` when a
    /// frame was pushed and the form continues.
    fn dispatch(&mut self, start: usize) -> Result<Option<Edn>, EdnError> {
        self.pos += 1;
        let Some(c) = self.peek() else {
            return Err(self.error_at(start, "expected a dispatch character after #, found end of input".into()));
        };
        match c {
            '{' => {
                self.pos += 1;
                self.push(Frame::Set { start, items: Vec::new(), distinct: Distinct::default() })?;
                Ok(None)
            }
            '_' => {
                self.pos += 1;
                self.push(Frame::Discard { start })?;
                Ok(None)
            }
            '#' => {
                self.pos += 1;
                let token = self.token();
                match token {
                    "Inf" => Ok(Some(Edn::Float(f64::INFINITY))),
                    "-Inf" => Ok(Some(Edn::Float(f64::NEG_INFINITY))),
                    "NaN" => Ok(Some(Edn::Float(f64::NAN))),
                    _ => Err(self.error_at(
                        start,
                        format!("unknown symbolic value ##{token} (expected ##Inf, ##-Inf or ##NaN)"),
                    )),
                }
            }
            ':' => {
                self.pos += 1;
                if self.peek() == Some(':') {
                    return Err(self.error_at(start, "auto-resolved namespaced maps (#::) are not EDN".into()));
                }
                let token = self.token();
                let namespace = match parse_symbol(token) {
                    Some(sym) if sym.namespace().is_none() => token.to_string(),
                    _ => {
                        return Err(self.error_at(
                            start,
                            format!("namespaced map needs a namespace without / after #:, found {token:?}"),
                        ))
                    }
                };
                self.push(Frame::NamespacedMap { start, namespace })?;
                Ok(None)
            }
            '"' => Err(self.error_at(start, "regular expressions (#\"...\") are not EDN".into())),
            '(' => Err(self.error_at(start, "anonymous functions (#(...)) are not EDN".into())),
            '\'' => Err(self.error_at(start, "var quotes (#') are not EDN".into())),
            '=' => Err(self.error_at(start, "read-time evaluation (#=) is not EDN".into())),
            '?' => Err(self.error_at(start, "reader conditionals (#?) are not EDN".into())),
            '<' => Err(self.error_at(start, "unreadable form #<...>".into())),
            '!' => Err(self.error_at(start, "#! comments are not EDN".into())),
            c if ends_token(c) => Err(self.error_at(start, format!("expected a tag symbol after #, found {c:?}"))),
            _ => {
                let token = self.token();
                let tag = match token.chars().next() {
                    Some(first) if first.is_alphabetic() => parse_symbol(token),
                    _ => None,
                };
                let Some(tag) = tag else {
                    return Err(
                        self.error_at(start, format!("a tag must be a symbol starting with a letter, found #{token}"))
                    );
                };
                self.push(Frame::Tagged { start, tag })?;
                Ok(None)
            }
        }
    }

    /// Builds the value of `#tag value`; `value_start` is where `value` begins.
    fn tagged(&self, tag: Symbol, value: Edn, value_start: usize) -> Result<Edn, EdnError> {
        match tag.as_str() {
            "inst" => {
                let Edn::Str(text) = &value else {
                    return Err(self.error_at(value_start, format!("#inst needs a string, found {}", brief(&value))));
                };
                parse_inst(text)
                    .map(Edn::Inst)
                    .map_err(|why| self.error_at(value_start, format!("invalid #inst {text:?}: {why}")))
            }
            "uuid" => {
                let Edn::Str(text) = &value else {
                    return Err(self.error_at(value_start, format!("#uuid needs a string, found {}", brief(&value))));
                };
                uuid::Uuid::try_parse(text)
                    .map(Edn::Uuid)
                    .map_err(|why| self.error_at(value_start, format!("invalid #uuid {text:?}: {why}")))
            }
            _ => Ok(Edn::Tagged(tag, Box::new(value))),
        }
    }

    /// Qualifies the keys of the map after `#:namespace`.
    fn namespaced_map(&self, namespace: &str, mut value: Edn, value_start: usize) -> Result<Edn, EdnError> {
        let entries = match &mut value {
            Edn::Map(entries) => std::mem::take(entries),
            other => {
                return Err(self
                    .error_at(value_start, format!("#:{namespace} must be followed by a map, found {}", brief(other))))
            }
        };
        let qualify = |ns: Option<&str>, name: &str| match ns {
            None => Some(format!("{namespace}/{name}")),
            Some("_") => Some(name.to_string()),
            Some(_) => None,
        };
        let mut qualified: Vec<(Edn, Edn)> = Vec::with_capacity(entries.len());
        let mut distinct = Distinct::default();
        for (key, val) in entries {
            // The qualified text must read back: `#:a{:2 x}` would make `:a/2`, which does not.
            let key = match &key {
                Edn::Keyword(k) => match qualify(k.namespace(), k.name()) {
                    None => key,
                    Some(text) if parse_symbol(&format!(":{text}")).is_some() => Edn::Keyword(Keyword::new(&text)),
                    Some(text) => {
                        return Err(self.error_at(
                            value_start,
                            format!("namespaced map makes the invalid keyword :{text} of {key}"),
                        ))
                    }
                },
                Edn::Symbol(sym) => match qualify(sym.namespace(), sym.name()) {
                    None => key,
                    Some(text) if parse_symbol(&text).is_some() => Edn::Symbol(Symbol::new(&text)),
                    Some(text) => {
                        return Err(self
                            .error_at(value_start, format!("namespaced map makes the invalid symbol {text} of {key}")))
                    }
                },
                _ => key,
            };
            if !distinct.is_new(&qualified, |(k, _)| k, &key) {
                return Err(self.error_at(value_start, format!("duplicate key {} in namespaced map", brief(&key))));
            }
            qualified.push((key, val));
        }
        Ok(Edn::Map(qualified))
    }

    /// Reads a string literal; the current character is the opening quote.
    fn string(&mut self) -> Result<String, EdnError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(special) = rest.find(['"', '\\']) else {
                return Err(
                    self.error_at(self.text.len(), format!("unterminated string starting at {}", self.place(start)))
                );
            };
            out.push_str(&rest[..special]);
            self.pos += special;
            if rest.as_bytes()[special] == b'"' {
                self.pos += 1;
                return Ok(out);
            }
            let escape_start = self.pos;
            self.pos += 1;
            let Some(c) = self.peek() else {
                return Err(
                    self.error_at(self.text.len(), format!("unterminated string starting at {}", self.place(start)))
                );
            };
            self.pos += c.len_utf8();
            let decoded = match c {
                '"' => '"',
                '\\' => '\\',
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'u' => self.string_unicode_escape(escape_start)?,
                '0'..='7' => {
                    let mut code = c as u32 - '0' as u32;
                    for _ in 0..2 {
                        match self.peek() {
                            Some(d @ '0'..='7') => {
                                code = code * 8 + (d as u32 - '0' as u32);
                                self.pos += 1;
                            }
                            _ => break,
                        }
                    }
                    if code > 0o377 {
                        return Err(self.error_at(
                            escape_start,
                            "octal escape in string must be in the range \\0 to \\377".into(),
                        ));
                    }
                    char::from_u32(code).expect("an octal escape below 0o400 is a valid char")
                }
                other => {
                    return Err(self.error_at(escape_start, format!("unsupported escape \\{other} in string")));
                }
            };
            out.push(decoded);
        }
    }

    /// Reads the 4 hex digits after `\u` in a string; a high surrogate must be followed by an
    /// escaped low surrogate, and the pair makes one character.
    fn string_unicode_escape(&mut self, escape_start: usize) -> Result<char, EdnError> {
        let first = self.four_hex_digits(escape_start)?;
        match first {
            0xD800..=0xDBFF => {
                let low_start = self.pos;
                if !self.text[self.pos..].starts_with("\\u") {
                    return Err(self.error_at(
                        escape_start,
                        format!("unpaired surrogate \\u{first:04x} in string (expected a low surrogate \\uDC00-\\uDFFF after it)"),
                    ));
                }
                self.pos += 2;
                let second = self.four_hex_digits(low_start)?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error_at(
                        escape_start,
                        format!("unpaired surrogate \\u{first:04x} in string (followed by \\u{second:04x})"),
                    ));
                }
                let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                Ok(char::from_u32(code).expect("a surrogate pair decodes to a valid char"))
            }
            0xDC00..=0xDFFF => Err(self.error_at(
                escape_start,
                format!("unpaired surrogate \\u{first:04x} in string (a low surrogate without a high one)"),
            )),
            code => Ok(char::from_u32(code).expect("a non-surrogate below 0x10000 is a valid char")),
        }
    }

    fn four_hex_digits(&mut self, escape_start: usize) -> Result<u32, EdnError> {
        let digits = self.text.get(self.pos..self.pos + 4).filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(digits) = digits else {
            let shown: String = self.text[self.pos..].chars().take(4).collect();
            return Err(
                self.error_at(escape_start, format!("invalid unicode escape \\u{shown} (expected 4 hex digits)"))
            );
        };
        self.pos += 4;
        Ok(u32::from_str_radix(digits, 16).expect("4 hex digits parse"))
    }

    /// Reads a character literal; the current character is the backslash.
    fn character(&mut self) -> Result<char, EdnError> {
        let start = self.pos;
        self.pos += 1;
        let Some(first) = self.peek() else {
            return Err(self.error_at(start, "expected a character after \\, found end of input".into()));
        };
        // The first character is taken whatever it is (`\(` and `\;` are characters), then
        // the token runs on to a delimiter.
        self.pos += first.len_utf8();
        let rest = self.token();
        if rest.is_empty() {
            return Ok(first);
        }
        let token = &self.text[start + 1..self.pos];
        match token {
            "newline" => return Ok('\n'),
            "space" => return Ok(' '),
            "tab" => return Ok('\t'),
            "return" => return Ok('\r'),
            "backspace" => return Ok('\u{8}'),
            "formfeed" => return Ok('\u{c}'),
            _ => {}
        }
        if let Some(hex) = token.strip_prefix('u') {
            let code = (hex.len() == 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(hex, 16).expect("4 hex digits parse"));
            return match code {
                None => Err(self
                    .error_at(start, format!("invalid unicode character \\{token} (expected \\u and 4 hex digits)"))),
                Some(code @ 0xD800..=0xDFFF) => {
                    Err(self
                        .error_at(start, format!("invalid character \\u{code:04x}: a surrogate is not a character")))
                }
                Some(code) => Ok(char::from_u32(code).expect("a non-surrogate below 0x10000 is a valid char")),
            };
        }
        if let Some(octal) = token.strip_prefix('o') {
            let code = (octal.len() <= 3 && octal.bytes().all(|b| (b'0'..=b'7').contains(&b)))
                .then(|| u32::from_str_radix(octal, 8).expect("octal digits parse"));
            return match code {
                Some(code) if code <= 0o377 => Ok(char::from_u32(code).expect("below 0o400 is a valid char")),
                Some(_) => Err(self.error_at(
                    start,
                    format!("invalid character \\{token}: octal must be in the range \\o0 to \\o377"),
                )),
                None => {
                    Err(self
                        .error_at(start, format!("invalid character \\{token} (expected \\o and 1 to 3 octal digits)")))
                }
            };
        }
        Err(self.error_at(start, format!("unsupported character \\{token}")))
    }

    /// Reads a keyword; the current character is the colon.
    fn keyword(&mut self) -> Result<Edn, EdnError> {
        let start = self.pos;
        let token = self.token();
        if token.starts_with("::") {
            return Err(
                self.error_at(start, format!("auto-resolved keyword {token} is not EDN (it needs a namespace alias)"))
            );
        }
        match parse_symbol(token) {
            Some(_) if token.len() > 1 => Ok(Edn::Keyword(Keyword::new(&token[1..]))),
            _ => Err(self.error_at(start, format!("invalid keyword {token}"))),
        }
    }

    /// Reads `nil`, `true`, `false` or a symbol.
    fn symbolic(&mut self) -> Result<Edn, EdnError> {
        let start = self.pos;
        let token = self.token();
        match token {
            "nil" => Ok(Edn::Nil),
            "true" => Ok(Edn::Bool(true)),
            "false" => Ok(Edn::Bool(false)),
            _ => match parse_symbol(token) {
                Some(sym) => Ok(Edn::Symbol(sym)),
                None => Err(self.error_at(start, format!("invalid symbol {token}"))),
            },
        }
    }

    /// Reads a number; the token starts with a digit or a sign and a digit.
    fn number(&mut self) -> Result<Edn, EdnError> {
        let start = self.pos;
        let rest = &self.text[start..];
        // Numbers also end at `#`, as in Clojure.
        let len = rest.find(|c| ends_token(c) || c == '#').unwrap_or(rest.len());
        self.pos = start + len;
        let token = &rest[..len];
        parse_number(token).map_err(|why| self.error_at(start, format!("invalid number {token}{why}")))
    }
}

/// A short printed form of a value for messages.
fn brief(value: &Edn) -> String {
    let mut text = super::pr_str(value);
    if text.chars().count() > 60 {
        text = text.chars().take(57).collect::<String>() + "...";
    }
    text
}

/// Checks a symbol or keyword token as Clojure's reader does (its pattern
/// `[:]?([\D&&[^/]].*/)?(/|[\D&&[^/]][^/]*)` plus the checks after it) and interns it without
/// any leading colon. `None` if it is not a valid symbol or keyword.
fn parse_symbol(token: &str) -> Option<Symbol> {
    let starts_ok = |s: &str| s.chars().next().is_some_and(|c| !c.is_ascii_digit() && c != '/');
    let name_ok = |name: &str| name == "/" || (starts_ok(name) && !name.contains('/'));
    // The pattern's parts for `text` (which has no optional leading colon left): the
    // namespace with its trailing slash (if any) and the name.
    let split = |text: &str| -> Option<(Option<usize>, usize)> {
        if name_ok(text) {
            return Some((None, 0));
        }
        // The namespace ends at the last slash, or at the one before a final `/` name.
        let candidates = [text.rfind('/'), text.strip_suffix('/').and_then(|t| t.rfind('/'))];
        candidates.into_iter().flatten().find_map(|slash| {
            (starts_ok(text) && slash > 0 && name_ok(&text[slash + 1..])).then_some((Some(slash), slash + 1))
        })
    };
    let matched = match token.strip_prefix(':') {
        Some(rest) => split(rest).map(|(ns, name)| (1, ns.map(|n| n + 1), name + 1)),
        None => None,
    }
    .or_else(|| split(token).map(|(ns, name)| (0, ns, name)))?;
    let (_, ns_slash, name_start) = matched;
    let name = &token[name_start..];
    if ns_slash.is_some_and(|slash| token[..slash].ends_with(':'))
        || name.ends_with(':')
        || token.match_indices("::").any(|(i, _)| i >= 1)
    {
        return None;
    }
    Some(Symbol::new(token.strip_prefix(':').unwrap_or(token)))
}

/// Parses a number token as Clojure does: integers (`N`, hex, octal, radix), then decimals
/// (`M`), then ratios. The error is appended to "invalid number TOKEN".
fn parse_number(token: &str) -> Result<Edn, String> {
    if let Some(value) = parse_integer(token)? {
        return Ok(value);
    }
    if let Some(value) = parse_decimal(token)? {
        return Ok(value);
    }
    if let Some(value) = parse_ratio(token)? {
        return Ok(value);
    }
    Err(String::new())
}

fn split_sign(token: &str) -> (bool, &str) {
    match token.as_bytes().first() {
        Some(b'-') => (true, &token[1..]),
        Some(b'+') => (false, &token[1..]),
        _ => (false, token),
    }
}

fn all_digits(text: &str, radix: u32) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_digit(radix))
}

/// An integer as Clojure reads it: a long if it fits and has no `N`, else a big integer.
fn integer_value(negative: bool, digits: &str, radix: u32, big: bool) -> Edn {
    if let Ok(magnitude) = u64::from_str_radix(digits, radix) {
        let value = if negative { -i128::from(magnitude) } else { i128::from(magnitude) };
        if let (false, Ok(long)) = (big, i64::try_from(value)) {
            return Edn::Int(long);
        }
        return Edn::BigInt(Arc::new(BigInt::from(value)));
    }
    let magnitude = BigInt::parse_bytes(digits.as_bytes(), radix).expect("digits were checked");
    let value = if negative { -magnitude } else { magnitude };
    match (big, i64::try_from(&value)) {
        (false, Ok(long)) => Edn::Int(long),
        _ => Edn::BigInt(Arc::new(value)),
    }
}

/// `[-+]?(0|[1-9][0-9]*|0[xX][0-9A-Fa-f]+|0[0-7]+|[1-9][0-9]?[rR][0-9A-Za-z]+|0[0-9]+)N?`;
/// the last alternative matches but is invalid. `Ok(None)` when the token is no integer.
fn parse_integer(token: &str) -> Result<Option<Edn>, String> {
    let (negative, body) = split_sign(token);
    // Radix first: its digits may end in `N` (a digit in bases above 23).
    if let Some(r) = body.find(['r', 'R']) {
        let (radix, digits) = (&body[..r], &body[r + 1..]);
        let radix_ok = (1..=2).contains(&radix.len()) && all_digits(radix, 10) && !radix.starts_with('0');
        if radix_ok && !digits.is_empty() && digits.chars().all(|c| c.is_ascii_alphanumeric()) {
            let radix: u32 = radix.parse().expect("1 or 2 digits parse");
            if !(2..=36).contains(&radix) {
                return Err(format!(" (radix {radix} is outside 2 to 36)"));
            }
            if !all_digits(digits, radix) {
                return Err(format!(" ({digits} is not a number in base {radix})"));
            }
            return Ok(Some(integer_value(negative, digits, radix, false)));
        }
        return Ok(None);
    }
    let (body, big) = match body.strip_suffix('N') {
        Some(body) => (body, true),
        None => (body, false),
    };
    if body == "0" {
        return Ok(Some(integer_value(negative, body, 10, big)));
    }
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        return Ok(all_digits(hex, 16).then(|| integer_value(negative, hex, 16, big)));
    }
    if let Some(octal) = body.strip_prefix('0') {
        if all_digits(octal, 8) {
            return Ok(Some(integer_value(negative, octal, 8, big)));
        }
        if all_digits(octal, 10) {
            return Err(" (a leading 0 means octal, and 8 and 9 are not octal digits)".into());
        }
        return Ok(None);
    }
    Ok(all_digits(body, 10).then(|| integer_value(negative, body, 10, big)))
}

/// `[-+]?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?M?`. `Ok(None)` when the token is no decimal.
fn parse_decimal(token: &str) -> Result<Option<Edn>, String> {
    let (negative, body) = split_sign(token);
    let (body, big) = match body.strip_suffix('M') {
        Some(body) => (body, true),
        None => (body, false),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(e) => (&body[..e], Some(&body[e + 1..])),
        None => (body, None),
    };
    let (integer, fraction) = match mantissa.find('.') {
        Some(dot) => (&mantissa[..dot], &mantissa[dot + 1..]),
        None => (mantissa, ""),
    };
    let exponent_ok = exponent.is_none_or(|e| all_digits(split_sign(e).1, 10));
    if !all_digits(integer, 10) || !(fraction.is_empty() || all_digits(fraction, 10)) || !exponent_ok {
        return Ok(None);
    }
    if !big {
        let value: f64 = token.parse().map_err(|_| String::new())?;
        return Ok(Some(Edn::Float(value)));
    }
    // As Java's `new BigDecimal(..)`: the digits are the unscaled value, the scale is the
    // number of fraction digits minus the exponent, and must fit an int.
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => e.parse().map_err(|_| " (exponent out of range)".to_string())?,
    };
    let scale = i64::try_from(fraction.len())
        .ok()
        .and_then(|n| n.checked_sub(exponent))
        .filter(|s| i32::try_from(*s).is_ok())
        .ok_or_else(|| " (exponent out of range)".to_string())?;
    let digits = format!("{integer}{fraction}");
    let magnitude = BigInt::parse_bytes(digits.as_bytes(), 10).expect("digits were checked");
    let unscaled = if negative { -magnitude } else { magnitude };
    Ok(Some(Edn::BigDec(Arc::new(BigDecimal::new(unscaled, scale)))))
}

/// `[-+]?[0-9]+/[0-9]+`: an integer when it divides evenly, else the nearest double.
fn parse_ratio(token: &str) -> Result<Option<Edn>, String> {
    let Some((numerator, denominator)) = token.split_once('/') else {
        return Ok(None);
    };
    let (negative, numerator_digits) = split_sign(numerator);
    if !all_digits(numerator_digits, 10) || !all_digits(denominator, 10) {
        return Ok(None);
    }
    let numerator = BigInt::parse_bytes(numerator_digits.as_bytes(), 10).expect("digits were checked");
    let numerator = if negative { -numerator } else { numerator };
    let denominator = BigInt::parse_bytes(denominator.as_bytes(), 10).expect("digits were checked");
    if denominator.sign() == Sign::NoSign {
        return Err(" (divide by zero)".into());
    }
    if (&numerator % &denominator).sign() == Sign::NoSign {
        let quotient = numerator / denominator;
        return Ok(Some(match i64::try_from(&quotient) {
            Ok(long) => Edn::Int(long),
            Err(_) => Edn::BigInt(Arc::new(quotient)),
        }));
    }
    // Exact operands below 2^53 make one correctly rounded division; otherwise go through
    // a decimal quotient of 60 significant digits, which is far below a double's resolution.
    let exact = |n: &BigInt| i64::try_from(n).ok().filter(|n| n.unsigned_abs() < 1 << 53);
    if let (Some(n), Some(d)) = (exact(&numerator), exact(&denominator)) {
        return Ok(Some(Edn::Float(n as f64 / d as f64)));
    }
    let quotient = BigDecimal::from(numerator) / BigDecimal::from(denominator);
    let (unscaled, scale) = quotient.with_prec(60).into_bigint_and_scale();
    let value: f64 = format!("{unscaled}e{}", -scale).parse().map_err(|_| String::new())?;
    Ok(Some(Edn::Float(value)))
}

/// Parses an RFC 3339 timestamp as `clojure.instant` does, to milliseconds since the epoch:
/// `yyyy[-MM[-dd[Thh[:mm[:ss[.fff...]]]]]][Z|(+|-)hh:mm]`.
fn parse_inst(text: &str) -> Result<i64, String> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let number = |pos: &mut usize, n: usize| -> Option<i64> {
        let digits = bytes.get(*pos..*pos + n)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        *pos += n;
        Some(digits.iter().fold(0, |acc, d| acc * 10 + i64::from(d - b'0')))
    };
    let syntax = || "expected yyyy-MM-ddThh:mm:ss.fff+hh:mm or a prefix of it".to_string();
    let year = number(&mut pos, 4).ok_or_else(syntax)?;
    let (mut month, mut day, mut hour, mut minute, mut second, mut nanos) = (1, 1, 0, 0, 0, 0);
    // Each part is only allowed when the one before it was present.
    'parts: {
        if bytes.get(pos) != Some(&b'-') || !bytes.get(pos + 1).is_some_and(u8::is_ascii_digit) {
            break 'parts;
        }
        pos += 1;
        month = number(&mut pos, 2).ok_or_else(syntax)?;
        if bytes.get(pos) != Some(&b'-') || !bytes.get(pos + 1).is_some_and(u8::is_ascii_digit) {
            break 'parts;
        }
        pos += 1;
        day = number(&mut pos, 2).ok_or_else(syntax)?;
        if bytes.get(pos) != Some(&b'T') {
            break 'parts;
        }
        pos += 1;
        hour = number(&mut pos, 2).ok_or_else(syntax)?;
        if bytes.get(pos) != Some(&b':') {
            break 'parts;
        }
        pos += 1;
        minute = number(&mut pos, 2).ok_or_else(syntax)?;
        if bytes.get(pos) != Some(&b':') {
            break 'parts;
        }
        pos += 1;
        second = number(&mut pos, 2).ok_or_else(syntax)?;
        if bytes.get(pos) != Some(&b'.') {
            break 'parts;
        }
        pos += 1;
        let digits = bytes[pos..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(syntax());
        }
        // Nanoseconds from the first 9 digits, zero-filled on the right.
        nanos = bytes[pos..pos + digits.min(9)].iter().fold(0, |acc, d| acc * 10 + i64::from(d - b'0'));
        nanos *= 10i64.pow(9 - digits.min(9) as u32);
        pos += digits;
    }
    let offset_minutes = match bytes.get(pos) {
        None => 0,
        Some(b'Z') => {
            pos += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            pos += 1;
            let hours = number(&mut pos, 2).ok_or_else(syntax)?;
            if bytes.get(pos) != Some(&b':') {
                return Err(syntax());
            }
            pos += 1;
            let minutes = number(&mut pos, 2).ok_or_else(syntax)?;
            if hours > 23 || minutes > 59 {
                return Err(format!("offset {hours:02}:{minutes:02} out of range"));
            }
            let total = hours * 60 + minutes;
            if sign == b'-' {
                -total
            } else {
                total
            }
        }
        Some(_) => return Err(syntax()),
    };
    if pos != bytes.len() {
        return Err(syntax());
    }
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} out of range"));
    }
    if !(1..=days_in_month(year, month)).contains(&day) {
        return Err(format!("day {day} out of range for {year:04}-{month:02}"));
    }
    if hour > 23 || minute > 59 {
        return Err(format!("time {hour:02}:{minute:02} out of range"));
    }
    // A leap second is allowed at the end of a minute 59 and rolls over, as in Clojure.
    if second > 59 && !(second == 60 && minute == 59) {
        return Err(format!("second {second} out of range"));
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    let millis = seconds * 1000 + nanos / 1_000_000;
    const MIN: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    if !(MIN..=MAX).contains(&millis) {
        return Err("the instant is outside the years 0000 to 9999 in UTC".into());
    }
    Ok(millis)
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar. Counts in 400-year
/// eras of 146,097 days, with years starting in March so that the leap day comes last.
pub(super) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`]: `(year, month, day)` of a day count since 1970-01-01.
pub(super) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
