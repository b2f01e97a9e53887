//! What the JSON and transit codecs share: a JSON text parser (RFC 8259) whose values keep
//! the byte offset they start at, so that every error names a line and column; JSON string
//! escaping; base64; and the `#bytes` form byte arrays take in [`Edn`].
//!
//! The parser does not recurse: nesting deeper than [`MAX_DEPTH`] arrays and objects is an
//! error, so the values it returns can be walked recursively. It keeps duplicate object keys;
//! the callers decide which one wins.

use super::reader::MAX_DEPTH;
use super::{Edn, EdnError, Symbol};
use num_bigint::BigInt;
use std::borrow::Cow;
use std::fmt::Write;
use std::sync::Arc;

/// A parsed JSON value and the byte offset in the text where it starts.
#[derive(Debug)]
pub(crate) struct Json<'a> {
    /// Byte offset of the value's first character.
    pub offset: usize,
    /// The value.
    pub value: JsonValue<'a>,
}

/// The kinds of JSON value.
#[derive(Debug)]
pub(crate) enum JsonValue<'a> {
    Null,
    Bool(bool),
    /// A number as written; `integer` when it has neither fraction nor exponent.
    Number {
        text: &'a str,
        integer: bool,
    },
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Members in order, each key with the offset of its opening quote.
    Object(Vec<Member<'a>>),
}

/// An object member: key offset, key, value.
pub(crate) type Member<'a> = (usize, Cow<'a, str>, Json<'a>);

/// An error at a byte offset of `text`, with its 1-based line and column (in characters).
pub(crate) fn error_at(text: &str, offset: usize, message: String) -> EdnError {
    let before = text.as_bytes().get(..offset).unwrap_or(text.as_bytes());
    let line = 1 + before.iter().filter(|b| **b == b'\n').count();
    let line_start = before.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    // Characters, not bytes: count the bytes that start a UTF-8 sequence.
    let column = 1 + before.get(line_start..).unwrap_or_default().iter().filter(|b| (**b & 0xC0) != 0x80).count();
    EdnError { line, column, offset, message }
}

/// Parses one JSON value; anything but whitespace after it is an error.
pub(crate) fn parse(text: &str) -> Result<Json<'_>, EdnError> {
    Parser { text, pos: 0 }.document()
}

/// An array or object being filled.
enum Frame<'a> {
    Array { offset: usize, items: Vec<Json<'a>> },
    Object { offset: usize, members: Vec<Member<'a>>, key: (usize, Cow<'a, str>) },
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, offset: usize, message: String) -> EdnError {
        error_at(self.text, offset, format!("invalid JSON: {message}"))
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// What is at the current position, for messages: a quoted character or "the end of input".
    fn found(&self) -> String {
        match self.text.get(self.pos..).and_then(|rest| rest.chars().next()) {
            Some(c) => format!("{c:?}"),
            None => "the end of input".to_string(),
        }
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn document(&mut self) -> Result<Json<'a>, EdnError> {
        let mut stack: Vec<Frame<'a>> = Vec::new();
        loop {
            // Read the start of a value: a scalar, an empty container, or an opened container
            // whose first element comes next.
            self.skip_whitespace();
            let start = self.pos;
            let mut done = match self.peek() {
                Some(open @ (b'[' | b'{')) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(self.error(start, format!("nesting deeper than {MAX_DEPTH} arrays and objects")));
                    }
                    self.pos += 1;
                    self.skip_whitespace();
                    match (open, self.peek()) {
                        (b'[', Some(b']')) => {
                            self.pos += 1;
                            Json { offset: start, value: JsonValue::Array(Vec::new()) }
                        }
                        (b'{', Some(b'}')) => {
                            self.pos += 1;
                            Json { offset: start, value: JsonValue::Object(Vec::new()) }
                        }
                        (b'[', _) => {
                            stack.push(Frame::Array { offset: start, items: Vec::new() });
                            continue;
                        }
                        _ => {
                            let key = self.key()?;
                            stack.push(Frame::Object { offset: start, members: Vec::new(), key });
                            continue;
                        }
                    }
                }
                _ => self.scalar()?,
            };
            // Hand the value to the enclosing container; close every container that ends here.
            loop {
                let Some(frame) = stack.last_mut() else {
                    self.skip_whitespace();
                    if self.pos < self.text.len() {
                        return Err(self.error(self.pos, format!("unexpected {} after the value", self.found())));
                    }
                    return Ok(done);
                };
                self.skip_whitespace();
                let next = self.peek();
                match frame {
                    Frame::Array { items, .. } => {
                        items.push(done);
                        match next {
                            Some(b',') => {
                                self.pos += 1;
                                break;
                            }
                            Some(b']') => self.pos += 1,
                            _ => {
                                return Err(self.error(self.pos, format!("expected ',' or ']', found {}", self.found())))
                            }
                        }
                    }
                    Frame::Object { members, key, .. } => {
                        let (key_offset, key_text) = std::mem::take(key);
                        members.push((key_offset, key_text, done));
                        match next {
                            Some(b',') => {
                                self.pos += 1;
                                self.skip_whitespace();
                                *key = self.key()?;
                                break;
                            }
                            Some(b'}') => self.pos += 1,
                            _ => {
                                return Err(
                                    self.error(self.pos, format!("expected ',' or '}}', found {}", self.found()))
                                )
                            }
                        }
                    }
                }
                done = match stack.pop() {
                    Some(Frame::Array { offset, items }) => Json { offset, value: JsonValue::Array(items) },
                    Some(Frame::Object { offset, members, .. }) => Json { offset, value: JsonValue::Object(members) },
                    None => return Err(self.error(self.pos, "internal: container stack underflow".into())),
                };
            }
        }
    }

    /// An object key and the colon after it.
    fn key(&mut self) -> Result<(usize, Cow<'a, str>), EdnError> {
        let offset = self.pos;
        if self.peek() != Some(b'"') {
            return Err(self.error(offset, format!("expected a string key or '}}', found {}", self.found())));
        }
        let key = self.string()?;
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(self.error(self.pos, format!("expected ':' after an object key, found {}", self.found())));
        }
        self.pos += 1;
        Ok((offset, key))
    }

    fn scalar(&mut self) -> Result<Json<'a>, EdnError> {
        let offset = self.pos;
        let value = match self.peek() {
            Some(b'"') => JsonValue::Str(self.string()?),
            Some(b'-' | b'0'..=b'9') => match number_end(self.text.as_bytes(), offset) {
                Some((end, integer)) => {
                    self.pos = end;
                    JsonValue::Number { text: self.text.get(offset..end).unwrap_or_default(), integer }
                }
                None => return Err(self.error(offset, "malformed number".into())),
            },
            _ => {
                let rest = self.text.get(offset..).unwrap_or_default();
                let literal =
                    [("true", JsonValue::Bool(true)), ("false", JsonValue::Bool(false)), ("null", JsonValue::Null)]
                        .into_iter()
                        .find(|(word, _)| rest.starts_with(word));
                match literal {
                    Some((word, value)) => {
                        self.pos += word.len();
                        value
                    }
                    None if rest.is_empty() => {
                        return Err(self.error(offset, "expected a value, found the end of input".into()))
                    }
                    None => return Err(self.error(offset, format!("expected a value, found {}", self.found()))),
                }
            }
        };
        Ok(Json { offset, value })
    }

    /// A string starting at the current `"`; borrowed when it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, EdnError> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        self.pos += 1;
        let mut owned: Option<String> = None;
        let mut chunk_start = self.pos;
        loop {
            let Some(&b) = bytes.get(self.pos) else {
                return Err(self.error(start, "unterminated string".into()));
            };
            match b {
                b'"' => {
                    let tail = self.text.get(chunk_start..self.pos).unwrap_or_default();
                    self.pos += 1;
                    return Ok(match owned {
                        Some(mut s) => {
                            s.push_str(tail);
                            Cow::Owned(s)
                        }
                        None => Cow::Borrowed(tail),
                    });
                }
                b'\\' => {
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(self.text.get(chunk_start..self.pos).unwrap_or_default());
                    let escape_at = self.pos;
                    let c = match bytes.get(self.pos + 1) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 2;
                            let c = self.unicode_escape(escape_at)?;
                            s.push(c);
                            chunk_start = self.pos;
                            continue;
                        }
                        _ => {
                            self.pos += 1;
                            return Err(self.error(escape_at, format!("invalid escape \\{} in a string", self.found())));
                        }
                    };
                    s.push(c);
                    self.pos += 2;
                    chunk_start = self.pos;
                }
                0..=0x1f => {
                    return Err(self.error(self.pos, format!("control character U+{b:04X} in a string must be escaped")))
                }
                _ => self.pos += 1,
            }
        }
    }

    /// The character of a `\uXXXX` escape (and of the low surrogate escape that must follow a
    /// high one); the position is just after `\u`.
    fn unicode_escape(&mut self, escape_at: usize) -> Result<char, EdnError> {
        let high = self.hex4(escape_at)?;
        let code = if (0xD800..0xDC00).contains(&high) {
            let bytes = self.text.as_bytes();
            if bytes.get(self.pos) != Some(&b'\\') || bytes.get(self.pos + 1) != Some(&b'u') {
                return Err(self.error(escape_at, format!("\\u{high:04X} is a lone high surrogate")));
            }
            self.pos += 2;
            let low = self.hex4(escape_at)?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(self.error(escape_at, format!("\\u{high:04X} is not followed by a low surrogate")));
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| self.error(escape_at, format!("\\u{code:04X} is a lone low surrogate")))
    }

    fn hex4(&mut self, escape_at: usize) -> Result<u32, EdnError> {
        let digits = self.text.get(self.pos..self.pos + 4).filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(code) = digits.and_then(|d| u32::from_str_radix(d, 16).ok()) else {
            return Err(self.error(escape_at, "\\u must be followed by four hexadecimal digits".into()));
        };
        self.pos += 4;
        Ok(code)
    }
}

/// One step of a conversion of a parsed JSON tree: an array element or object member value,
/// or an object key (with its offset).
pub(crate) enum Child<'j, 'a> {
    /// A value; `as_key` when it stands in a map key's place (transit's `["^ ", k, v]`).
    Node(&'j Json<'a>, bool),
    /// An object key, with the offset of its opening quote.
    Key(usize, &'j str),
}

/// What a converter makes of a child: a finished value, or a container whose children are
/// converted next (after the values in `results`, already converted), then handed to
/// [`Converter::finish`].
pub(crate) enum Step<'j, 'a, F> {
    Done(Edn),
    Open { children: Vec<Child<'j, 'a>>, results: Vec<Edn>, finish: F },
}

/// A conversion of a JSON tree into EDN, driven by [`convert`] without recursion.
pub(crate) trait Converter<'j, 'a> {
    /// What a container needs to know to be finished.
    type Finish;
    /// Converts a scalar, or opens a container.
    fn enter(&mut self, child: Child<'j, 'a>) -> Result<Step<'j, 'a, Self::Finish>, EdnError>;
    /// The value of a container from its children's values, in order.
    fn finish(&mut self, finish: Self::Finish, results: Vec<Edn>) -> Result<Edn, EdnError>;
}

/// Converts a tree depth first, children in document order, with an explicit stack: the
/// tree's depth is bounded by [`MAX_DEPTH`], but each level of recursion would cost far more
/// stack than a level of the parser.
pub(crate) fn convert<'j, 'a, C: Converter<'j, 'a>>(converter: &mut C, root: &'j Json<'a>) -> Result<Edn, EdnError> {
    struct Open<'j, 'a, F> {
        children: std::vec::IntoIter<Child<'j, 'a>>,
        results: Vec<Edn>,
        finish: F,
    }
    let mut stack: Vec<Open<'j, 'a, C::Finish>> = Vec::new();
    let mut step = converter.enter(Child::Node(root, false))?;
    loop {
        match step {
            Step::Done(value) => match stack.last_mut() {
                Some(top) => top.results.push(value),
                None => return Ok(value),
            },
            Step::Open { children, results, finish } => {
                stack.push(Open { children: children.into_iter(), results, finish });
            }
        }
        // Enter the next child of the innermost open container, closing those that are done.
        loop {
            let Some(top) = stack.last_mut() else {
                return Err(error_at("", 0, "internal: conversion ended without a value".into()));
            };
            if let Some(child) = top.children.next() {
                step = converter.enter(child)?;
                break;
            }
            let Some(Open { results, finish, .. }) = stack.pop() else { continue };
            let value = converter.finish(finish, results)?;
            match stack.last_mut() {
                Some(parent) => parent.results.push(value),
                None => return Ok(value),
            }
        }
    }
}

/// The end of the JSON number starting at `start` and whether it is an integer, or `None`
/// when no number of RFC 8259's grammar starts there:
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`.
fn number_end(bytes: &[u8], start: usize) -> Option<(usize, bool)> {
    let digits =
        |from: usize| bytes.get(from..).map_or(0, |rest| rest.iter().take_while(|b| b.is_ascii_digit()).count());
    let mut pos = start;
    if bytes.get(pos) == Some(&b'-') {
        pos += 1;
    }
    match bytes.get(pos) {
        Some(b'0') => pos += 1,
        Some(b'1'..=b'9') => pos += digits(pos),
        _ => return None,
    }
    let mut integer = true;
    if bytes.get(pos) == Some(&b'.') {
        let n = digits(pos + 1);
        if n == 0 {
            return None;
        }
        pos += 1 + n;
        integer = false;
    }
    if matches!(bytes.get(pos), Some(b'e' | b'E')) {
        pos += 1;
        if matches!(bytes.get(pos), Some(b'+' | b'-')) {
            pos += 1;
        }
        let n = digits(pos);
        if n == 0 {
            return None;
        }
        pos += n;
        integer = false;
    }
    Some((pos, integer))
}

/// Whether `text` is exactly one JSON number.
pub(crate) fn is_json_number(text: &str) -> bool {
    number_end(text.as_bytes(), 0).is_some_and(|(end, _)| end == text.len())
}

/// A JSON number as EDN: a long when it is an integer that fits, a big integer when it is an
/// integer that does not (as Jackson reads it), otherwise a double.
pub(crate) fn number_to_edn(text: &str, integer: bool) -> Edn {
    let float = || Edn::Float(text.parse().unwrap_or(f64::NAN));
    if !integer {
        return float();
    }
    match text.parse::<i64>() {
        Ok(i) => Edn::Int(i),
        Err(_) => BigInt::parse_bytes(text.as_bytes(), 10).map_or_else(float, |i| Edn::BigInt(Arc::new(i))),
    }
}

/// Flat `[k1 v1 k2 v2 ..]` values as pairs; an odd last value is dropped (callers hand an
/// even number).
pub(crate) fn pairs(flat: Vec<Edn>) -> Vec<(Edn, Edn)> {
    let mut entries = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        entries.push((k, v));
    }
    entries
}

/// Appends `text` as a JSON string, escaped as serde_json and Jackson escape: `"` and `\`,
/// the control characters (`\b \f \n \r \t` by name, others as `\u00XX`); everything else,
/// non-ASCII included, as it is.
pub(crate) fn write_json_string(out: &mut String, text: &str) {
    out.push('"');
    let mut chunk_start = 0;
    for (i, b) in text.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(text.get(chunk_start..i).unwrap_or_default());
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        chunk_start = i + 1;
    }
    out.push_str(text.get(chunk_start..).unwrap_or_default());
    out.push('"');
}

/// Appends a finite double as a JSON number with the shortest digits that read back the same
/// double, always with a fraction or exponent so that it reads back as a double (`1.0`).
pub(crate) fn write_json_float(out: &mut String, x: f64) {
    out.push_str(&serde_json::Value::from(x).to_string());
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4), no line breaks.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64; padding is optional, whitespace and other characters are errors.
pub(crate) fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 {
        return Err("too much padding".into());
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc = 0u32;
    let mut n_bits = 0;
    for c in body.bytes() {
        let Some(v) = BASE64.iter().position(|&b| b == c) else {
            return Err(format!("{:?} is not a base64 character", char::from(c)));
        };
        acc = (acc << 6) | v as u32;
        n_bits += 6;
        if n_bits >= 8 {
            n_bits -= 8;
            out.push((acc >> n_bits) as u8);
            acc &= (1 << n_bits) - 1;
        }
    }
    if n_bits >= 6 {
        return Err("its length is not possible for base64".into());
    }
    Ok(out)
}

/// The bytes of a `#bytes [..]` value (as [`crate::Value::to_edn`] prints a byte array: each
/// byte a signed long), or `None` for any other value.
pub(crate) fn edn_bytes(value: &Edn) -> Option<Vec<u8>> {
    let Edn::Tagged(tag, inner) = value else { return None };
    let Edn::Vector(items) = inner.as_ref() else { return None };
    if tag.as_str() != "bytes" {
        return None;
    }
    items
        .iter()
        .map(|x| match x {
            Edn::Int(i) => i8::try_from(*i).ok().map(|b| b as u8),
            _ => None,
        })
        .collect()
}

/// Bytes as `#bytes [..]`, each byte a signed long.
pub(crate) fn bytes_edn(bytes: &[u8]) -> Edn {
    Edn::Tagged(
        Symbol::new("bytes"),
        Box::new(Edn::Vector(bytes.iter().map(|b| Edn::Int(i64::from(*b as i8))).collect())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn err(text: &str) -> EdnError {
        parse(text).unwrap_err()
    }

    #[test]
    fn parses_rfc_8259_values() {
        let v = parse(" {\"a\" : [1, -0.5e3, true, false, null, \"x\\u00e9\\ud83d\\ude00\\n\"], \"\": {}} ").unwrap();
        let JsonValue::Object(members) = &v.value else { panic!("{v:?}") };
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].0, 2);
        let JsonValue::Array(items) = &members[0].2.value else { panic!() };
        assert!(matches!(items[1].value, JsonValue::Number { text: "-0.5e3", integer: false }));
        assert!(matches!(&items[5].value, JsonValue::Str(s) if s == "xé😀\n"));
        assert_eq!(items[5].offset, 39);
    }

    #[test]
    fn errors_name_line_column_and_problem() {
        let e = err("[1,\n 2");
        assert_eq!((e.line, e.column), (2, 3));
        assert!(e.message.contains("expected ',' or ']', found the end of input"), "{e}");
        let e = err("{\"a\" 1}");
        assert!(e.message.contains("expected ':'"), "{e}");
        assert_eq!((e.line, e.column), (1, 6));
        for (text, needle) in [
            ("", "found the end of input"),
            ("[01]", "expected ',' or ']'"),
            ("[1.]", "malformed number"),
            ("-", "malformed number"),
            ("\"abc", "unterminated string"),
            ("\"a\u{1}\"", "control character U+0001"),
            ("\"\\x\"", "invalid escape \\'x'"),
            ("\"\\ud800\"", "lone high surrogate"),
            ("\"\\udc00\"", "lone low surrogate"),
            ("\"\\u12\"", "four hexadecimal digits"),
            ("[1] 2", "unexpected '2' after the value"),
            ("{1: 2}", "expected a string key"),
            ("NaN", "expected a value, found 'N'"),
            ("[1,]", "expected a value, found ']'"),
        ] {
            let e = err(text);
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
        let e = err("[\"é\", x]");
        assert_eq!(e.column, 7, "columns count characters: {e}");
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(err(&deep).message.contains("nesting deeper than 1000"));
        let very_deep = "[{\"a\":".repeat(100_000);
        assert!(err(&very_deep).message.contains("nesting deeper"));
    }

    #[test]
    fn numbers() {
        assert_eq!(number_to_edn("12", true), Edn::Int(12));
        assert_eq!(
            number_to_edn("-9223372036854775809", true),
            Edn::BigInt(Arc::new("-9223372036854775809".parse().unwrap()))
        );
        assert_eq!(number_to_edn("1e2", false), Edn::Float(100.0));
        assert!(is_json_number("-1.5E+10") && !is_json_number("1.5M") && !is_json_number("01"));
    }

    #[test]
    fn base64_round_trips_and_rejects_garbage() {
        for (bytes, text) in [(&b""[..], ""), (b"f", "Zg=="), (b"fo", "Zm8="), (b"foo", "Zm9v"), (b"foob", "Zm9vYg==")]
        {
            assert_eq!(base64_encode(bytes), text);
            assert_eq!(base64_decode(text).unwrap(), bytes);
        }
        assert!(base64_decode("Zm9v!").is_err());
        assert!(base64_decode("Z").is_err());
        assert!(base64_decode("Zg===").is_err());
    }

    proptest! {
        #[test]
        fn strings_escape_as_serde_json_does(s in any::<String>()) {
            let mut out = String::new();
            write_json_string(&mut out, &s);
            prop_assert_eq!(&out, &serde_json::to_string(&s).unwrap_or_default());
            let parsed = parse(&out).unwrap();
            prop_assert!(matches!(&parsed.value, JsonValue::Str(back) if *back == s));
        }

        #[test]
        fn base64_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(base64_decode(&base64_encode(&bytes)).unwrap(), bytes);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in "[\\[\\]{}\",:0-9a-z.eE+ \\\\-]{0,40}") {
            let _ = parse(&text);
        }
    }
}
