//! A compact, versioned binary encoding of values and datoms, used by index nodes, log records
//! and branch heads.
//!
//! Layout (all multi-byte fixed-width numbers little-endian):
//! - varint: unsigned LEB128, at most 10 bytes; ivarint: zigzag then varint;
//! - bytes and strings: varint length, then the bytes (strings are UTF-8);
//! - a value: one tag byte (see the `TAG_*` constants), then the payload of that type;
//! - datoms ([`encode_datoms`]): format version byte, then the datom body: an attribute
//!   dictionary (count, names in first-use order), the datom count, and per datom the
//!   zigzag delta of `e` from the previous datom, the attribute's dictionary index, the
//!   value, and the zigzag delta of the signed tx from the previous datom.
//!
//! Decoders never panic and never allocate more than the input can justify: every length is
//! checked against the bytes that remain before anything is allocated.
//!
//! Out-of-line values (index nodes only): an encoder given a sink ([`put_datoms_body_outlined`])
//! writes a string or byte array of at least [`OUT_OF_LINE_MIN_BYTES`] as a reference, tag
//! `TAG_REF_STRING`/`TAG_REF_BYTES` then the 16-byte BLAKE3-128 hash of its bytes and their
//! varint length, and hands the value to the sink, which stores it once under
//! [`value_key`]. A reader resolves references only when given a [`ResolveRef`]; log records
//! and heads are read without one, so a reference there is an error.

#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::datom::Datom;
use crate::edn::{Keyword, Symbol};
pub use crate::error::CodecError;
use crate::value::Value;
use bigdecimal::BigDecimal;
use num_bigint::BigInt;
use std::collections::HashMap;
use std::sync::Arc;

/// The version byte that starts an [`encode_datoms`] encoding.
pub const FORMAT_VERSION: u8 = 1;

/// Deepest tuple nesting a decoder accepts; guards the stack against crafted input. It is the
/// limit transactions enforce ([`crate::value::MAX_VALUE_DEPTH`]): what is accepted is read.
pub const MAX_TUPLE_DEPTH: usize = crate::value::MAX_VALUE_DEPTH;

const TAG_NIL: u8 = 0;
const TAG_BYTES: u8 = 1;
const TAG_BIGINT: u8 = 2;
const TAG_KEYWORD: u8 = 3;
const TAG_TUPLE: u8 = 4;
const TAG_SYMBOL: u8 = 5;
const TAG_FALSE: u8 = 6;
const TAG_TRUE: u8 = 7;
const TAG_DOUBLE: u8 = 8;
const TAG_FLOAT: u8 = 9;
const TAG_LONG: u8 = 10;
const TAG_STRING: u8 = 11;
const TAG_BIGDEC: u8 = 12;
const TAG_INSTANT: u8 = 13;
const TAG_UUID: u8 = 14;
/// A set (query values; written only so that encoding is total).
const TAG_SET: u8 = 15;
/// A map (query values; written only so that encoding is total).
const TAG_MAP: u8 = 16;

/// A reference to a string of at least [`OUT_OF_LINE_MIN_BYTES`].
const TAG_REF_STRING: u8 = 17;
/// A reference to a byte array of at least [`OUT_OF_LINE_MIN_BYTES`].
const TAG_REF_BYTES: u8 = 18;

/// Strings and byte arrays of at least this many bytes are stored out of line by index nodes:
/// once, under [`value_key`], so that a node holding one stays small and a new version of the
/// node (a small transaction touching its leaf) does not copy the value again. Encoder and
/// decoder share it: a reference to a shorter value is refused as corrupt.
pub const OUT_OF_LINE_MIN_BYTES: usize = 4 * 1024;

/// The BLAKE3-128 hash of an out-of-line value's bytes, which names its store key.
pub type ValueHash = [u8; 16];

/// A value stored out of line, as a node encoding refers to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueRef {
    /// BLAKE3-128 of the bytes (UTF-8 for a string).
    pub hash: ValueHash,
    /// Length of the bytes.
    pub len: u64,
    /// A string (else a byte array).
    pub string: bool,
}

impl ValueRef {
    /// The store key of the value.
    pub fn key(&self) -> String {
        value_key(&self.hash)
    }
}

/// The store key of an out-of-line value: `values/<32 lowercase hex>`.
pub fn value_key(hash: &ValueHash) -> String {
    use std::fmt::Write;
    let mut key = String::with_capacity(7 + 32);
    key.push_str("values/");
    for b in hash {
        let _ = write!(key, "{b:02x}");
    }
    key
}

/// The hash of `key` when it is a [`value_key`].
pub fn parse_value_key(key: &str) -> Option<ValueHash> {
    let hex = key.strip_prefix("values/")?;
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut hash = [0u8; 16];
    for (i, out) in hash.iter_mut().enumerate() {
        *out = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(hash)
}

/// The BLAKE3-128 hash of `bytes`.
pub fn value_hash(bytes: &[u8]) -> ValueHash {
    let mut hash = [0u8; 16];
    hash.copy_from_slice(&blake3::hash(bytes).as_bytes()[..16]);
    hash
}

/// The bytes a value is stored out of line as, when it is: a string or byte array of at
/// least [`OUT_OF_LINE_MIN_BYTES`].
pub fn out_of_line_bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::String(s) if s.len() >= OUT_OF_LINE_MIN_BYTES => Some(s.as_bytes()),
        Value::Bytes(b) if b.len() >= OUT_OF_LINE_MIN_BYTES => Some(b),
        _ => None,
    }
}

/// The value an out-of-line reference names, from the bytes stored under its key (checked
/// against the reference's length and hash, and UTF-8 for a string). `Err` says what is wrong.
pub fn value_from_stored(r: &ValueRef, bytes: &[u8]) -> Result<Value, String> {
    if u64::try_from(bytes.len()).ok() != Some(r.len) {
        return Err(format!("{} bytes stored where the index node expects {}", bytes.len(), r.len));
    }
    if value_hash(bytes) != r.hash {
        return Err(format!("the hash of its {} bytes does not match its key", bytes.len()));
    }
    if r.string {
        std::str::from_utf8(bytes)
            .map(|s| Value::String(Arc::from(s)))
            .map_err(|e| format!("a string value that is not UTF-8 ({e})"))
    } else {
        Ok(Value::Bytes(Arc::from(bytes)))
    }
}

/// Resolves the out-of-line references a [`Reader`] meets (see [`Reader::with_refs`]).
pub trait ResolveRef {
    /// The value `r` names; `Err` with a phrase saying what is wrong (the resolver keeps the
    /// full error for its caller).
    fn resolve(&self, r: &ValueRef) -> Result<Value, String>;
}

/// Receives each out-of-line value an outlining encoder writes as a reference.
pub type OutlineSink<'a> = &'a mut dyn FnMut(ValueRef, &Value);

/// Result of decoding.
pub type CodecResult<T> = Result<T, CodecError>;

/// Appends `x` as an unsigned LEB128 varint.
pub fn put_varint(mut x: u64, out: &mut Vec<u8>) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// Appends `x` zigzag-encoded as a varint, so that small negative numbers stay short.
pub fn put_ivarint(x: i64, out: &mut Vec<u8>) {
    put_varint(((x << 1) ^ (x >> 63)) as u64, out);
}

/// Appends `bytes` prefixed with their length.
pub fn put_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    put_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Appends `s` as length-prefixed UTF-8.
pub fn put_str(s: &str, out: &mut Vec<u8>) {
    put_bytes(s.as_bytes(), out);
}

/// Appends one value: its tag byte and payload.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    put_value(value, out, &mut None);
}

/// [`encode_value`], with long strings and byte arrays (at any depth) written as references
/// when `outline` is given.
fn put_value(value: &Value, out: &mut Vec<u8>, outline: &mut Option<OutlineSink<'_>>) {
    if let (Some(sink), Some(bytes)) = (outline.as_mut(), out_of_line_bytes(value)) {
        let r = ValueRef {
            hash: value_hash(bytes),
            len: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            string: matches!(value, Value::String(_)),
        };
        out.push(if r.string { TAG_REF_STRING } else { TAG_REF_BYTES });
        out.extend_from_slice(&r.hash);
        put_varint(r.len, out);
        sink(r, value);
        return;
    }
    match value {
        Value::Nil => out.push(TAG_NIL),
        Value::Bytes(b) => {
            out.push(TAG_BYTES);
            put_bytes(b, out);
        }
        Value::BigInt(b) => {
            out.push(TAG_BIGINT);
            put_bytes(&b.to_signed_bytes_le(), out);
        }
        Value::Keyword(k) => {
            out.push(TAG_KEYWORD);
            put_str(k.as_str(), out);
        }
        Value::Tuple(xs) => put_values(TAG_TUPLE, xs, out, outline),
        Value::Symbol(s) => {
            out.push(TAG_SYMBOL);
            put_str(s.as_str(), out);
        }
        Value::Boolean(b) => out.push(if *b { TAG_TRUE } else { TAG_FALSE }),
        Value::Double(d) => {
            out.push(TAG_DOUBLE);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Value::Float(f) => {
            out.push(TAG_FLOAT);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Long(l) => {
            out.push(TAG_LONG);
            put_ivarint(*l, out);
        }
        Value::String(s) => {
            out.push(TAG_STRING);
            put_str(s, out);
        }
        Value::BigDec(d) => {
            out.push(TAG_BIGDEC);
            let (mantissa, scale) = d.as_bigint_and_exponent();
            put_bytes(&mantissa.to_signed_bytes_le(), out);
            put_ivarint(scale, out);
        }
        Value::Instant(ms) => {
            out.push(TAG_INSTANT);
            put_ivarint(*ms, out);
        }
        Value::Uuid(u) => {
            out.push(TAG_UUID);
            out.extend_from_slice(u.as_bytes());
        }
        Value::Set(xs) => put_values(TAG_SET, xs, out, outline),
        Value::Map(xs) => {
            out.push(TAG_MAP);
            put_varint(xs.len() as u64, out);
            for (k, v) in xs.iter() {
                put_value(k, out, outline);
                put_value(v, out, outline);
            }
        }
    }
}

/// A tag, a count and the values (a tuple or a set).
fn put_values(tag: u8, xs: &[Value], out: &mut Vec<u8>, outline: &mut Option<OutlineSink<'_>>) {
    out.push(tag);
    put_varint(xs.len() as u64, out);
    for x in xs {
        put_value(x, out, outline);
    }
}

/// Appends `datoms` with a leading [`FORMAT_VERSION`] byte; read back with [`decode_datoms`].
pub fn encode_datoms(datoms: &[Datom], out: &mut Vec<u8>) {
    out.push(FORMAT_VERSION);
    put_datoms_body(datoms, out);
}

/// Decodes the whole of `bytes` as written by [`encode_datoms`]; trailing bytes are an error.
pub fn decode_datoms(bytes: &[u8]) -> CodecResult<Vec<Datom>> {
    let mut r = Reader::new(bytes);
    let offset = r.position();
    let version = r.u8()?;
    if version != FORMAT_VERSION {
        return Err(CodecError {
            expected: "datom format version 1",
            offset,
            found: format!("found version {version}"),
        });
    }
    let datoms = r.datoms()?;
    r.finish()?;
    Ok(datoms)
}

/// Appends the datom body (no version byte): attribute dictionary, count, delta-coded datoms.
pub fn put_datoms_body(datoms: &[Datom], out: &mut Vec<u8>) {
    put_datoms(datoms, out, &mut None);
}

/// [`put_datoms_body`] for an index node: values of at least [`OUT_OF_LINE_MIN_BYTES`] are
/// written as references and handed to `sink`. Read back with [`Reader::with_refs`].
pub fn put_datoms_body_outlined(datoms: &[Datom], out: &mut Vec<u8>, sink: OutlineSink<'_>) {
    put_datoms(datoms, out, &mut Some(sink));
}

fn put_datoms(datoms: &[Datom], out: &mut Vec<u8>, outline: &mut Option<OutlineSink<'_>>) {
    let mut attr_index: HashMap<Keyword, u64> = HashMap::new();
    let mut attrs: Vec<Keyword> = Vec::new();
    for d in datoms {
        attr_index.entry(d.a).or_insert_with(|| {
            attrs.push(d.a);
            attrs.len() as u64 - 1
        });
    }
    put_varint(attrs.len() as u64, out);
    for a in &attrs {
        put_str(a.as_str(), out);
    }
    put_varint(datoms.len() as u64, out);
    let (mut prev_e, mut prev_tx) = (0i64, 0i64);
    for d in datoms {
        put_ivarint(d.e.wrapping_sub(prev_e), out);
        put_varint(attr_index.get(&d.a).copied().unwrap_or(0), out);
        put_value(&d.v, out, outline);
        put_ivarint(d.signed_tx.wrapping_sub(prev_tx), out);
        prev_e = d.e;
        prev_tx = d.signed_tx;
    }
}

/// A cursor over encoded bytes. Every read checks bounds and reports the offset on failure.
#[derive(Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    refs: Option<&'a dyn ResolveRef>,
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("len", &self.buf.len()).field("pos", &self.pos).finish()
    }
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`; an out-of-line reference in it is an error.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0, refs: None }
    }

    /// A reader of an index node's bytes, which resolves out-of-line references with `refs`.
    pub fn with_refs(buf: &'a [u8], refs: &'a dyn ResolveRef) -> Self {
        Reader { buf, pos: 0, refs: Some(refs) }
    }

    /// Offset of the next byte to read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Number of bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Whether every byte has been read.
    pub fn is_at_end(&self) -> bool {
        self.remaining() == 0
    }

    /// An error unless every byte has been read.
    pub fn finish(&self) -> CodecResult<()> {
        if self.is_at_end() {
            Ok(())
        } else {
            Err(self.error("the end of the input", format!("found {} trailing bytes", self.remaining())))
        }
    }

    fn error(&self, expected: &'static str, found: String) -> CodecError {
        CodecError { expected, offset: self.pos, found }
    }

    fn eof(&self, expected: &'static str) -> CodecError {
        self.error(expected, "but the input ends".to_string())
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, expected: &'static str) -> CodecResult<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.eof(expected))?;
        let slice = self.buf.get(self.pos..end).ok_or_else(|| self.eof(expected))?;
        self.pos = end;
        Ok(slice)
    }

    /// The next `n` bytes (a fixed-width field such as an address or UUID).
    pub fn fixed(&mut self, n: usize) -> CodecResult<&'a [u8]> {
        self.take(n, "a fixed-width field")
    }

    /// Every byte not yet read; the reader is then at the end.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        rest
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, expected: &'static str) -> CodecResult<[u8; N]> {
        let slice = self.take(N, expected)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> CodecResult<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.eof("a byte"))?;
        self.pos += 1;
        Ok(b)
    }

    /// An unsigned LEB128 varint of at most 10 bytes.
    pub fn varint(&mut self) -> CodecResult<u64> {
        let start = self.pos;
        let mut x: u64 = 0;
        for i in 0..10u32 {
            let b = *self.buf.get(self.pos).ok_or_else(|| self.eof("a varint"))?;
            self.pos += 1;
            if i == 9 && b > 1 {
                self.pos = start;
                return Err(self.error("a varint", "but it overflows 64 bits".to_string()));
            }
            x |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(x);
            }
        }
        self.pos = start;
        Err(self.error("a varint", "but it is longer than 10 bytes".to_string()))
    }

    /// A zigzag-encoded signed varint.
    pub fn ivarint(&mut self) -> CodecResult<i64> {
        let z = self.varint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    /// A varint that is a count or length of items each at least `min_item_bytes` long; checked
    /// against the remaining input so that callers may allocate that many items.
    pub fn count(&mut self, min_item_bytes: usize, expected: &'static str) -> CodecResult<usize> {
        let start = self.pos;
        let n = self.varint()?;
        let limit = self.remaining() / min_item_bytes.max(1);
        match usize::try_from(n) {
            Ok(n) if n <= limit => Ok(n),
            _ => {
                self.pos = start;
                Err(self
                    .error(expected, format!("but {n} exceeds what the remaining {} bytes can hold", self.remaining())))
            }
        }
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self) -> CodecResult<&'a [u8]> {
        let n = self.count(1, "a byte string length")?;
        self.take(n, "byte string contents")
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self) -> CodecResult<&'a str> {
        let start = self.pos;
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes).map_err(|e| CodecError {
            expected: "a UTF-8 string",
            offset: start,
            found: format!("found invalid UTF-8 ({e})"),
        })
    }

    /// One value as written by [`encode_value`].
    pub fn value(&mut self) -> CodecResult<Value> {
        self.value_at_depth(0)
    }

    fn value_at_depth(&mut self, depth: usize) -> CodecResult<Value> {
        let start = self.pos;
        let tag = self.u8()?;
        Ok(match tag {
            TAG_NIL => Value::Nil,
            TAG_BYTES => Value::Bytes(Arc::from(self.bytes()?)),
            TAG_BIGINT => Value::BigInt(Arc::new(BigInt::from_signed_bytes_le(self.bytes()?))),
            TAG_KEYWORD => Value::Keyword(Keyword::new(self.str()?)),
            TAG_TUPLE => {
                if depth >= MAX_TUPLE_DEPTH {
                    self.pos = start;
                    return Err(self.error("a value", format!("but tuples nest deeper than {MAX_TUPLE_DEPTH}")));
                }
                let n = self.count(1, "a tuple length")?;
                let mut xs = Vec::with_capacity(n);
                for _ in 0..n {
                    xs.push(self.value_at_depth(depth + 1)?);
                }
                Value::Tuple(xs.into())
            }
            TAG_SET | TAG_MAP => {
                if depth >= MAX_TUPLE_DEPTH {
                    self.pos = start;
                    return Err(self.error("a value", format!("but collections nest deeper than {MAX_TUPLE_DEPTH}")));
                }
                let per = if tag == TAG_SET { 1 } else { 2 };
                let n = self.count(per, "a collection length")?;
                let mut xs = Vec::with_capacity(n * per);
                for _ in 0..n * per {
                    xs.push(self.value_at_depth(depth + 1)?);
                }
                if tag == TAG_SET {
                    Value::set(xs)
                } else {
                    let mut it = xs.into_iter();
                    let mut pairs = Vec::with_capacity(n);
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    Value::map(pairs)
                }
            }
            TAG_SYMBOL => Value::Symbol(Symbol::new(self.str()?)),
            TAG_FALSE => Value::Boolean(false),
            TAG_TRUE => Value::Boolean(true),
            TAG_DOUBLE => Value::Double(f64::from_bits(u64::from_le_bytes(self.array("a double")?))),
            TAG_FLOAT => Value::Float(f32::from_bits(u32::from_le_bytes(self.array("a float")?))),
            TAG_LONG => Value::Long(self.ivarint()?),
            TAG_STRING => Value::String(Arc::from(self.str()?)),
            TAG_BIGDEC => {
                let mantissa = BigInt::from_signed_bytes_le(self.bytes()?);
                let scale_at = self.pos;
                let scale = self.ivarint()?;
                // Java's BigDecimal scale is an int; a larger one can only come from garbage.
                if i32::try_from(scale).is_err() {
                    self.pos = scale_at;
                    return Err(self.error("a decimal scale", format!("but {scale} is outside the 32-bit range")));
                }
                Value::BigDec(Arc::new(BigDecimal::new(mantissa, scale)))
            }
            TAG_INSTANT => Value::Instant(self.ivarint()?),
            TAG_UUID => Value::Uuid(uuid::Uuid::from_bytes(self.array("a UUID")?)),
            TAG_REF_STRING | TAG_REF_BYTES => {
                let Some(refs) = self.refs else {
                    self.pos = start;
                    return Err(self.error("a value tag", "found an out-of-line value outside an index node".into()));
                };
                let hash = self.array("an out-of-line value's hash")?;
                let len_at = self.pos;
                let len = self.varint()?;
                if len < OUT_OF_LINE_MIN_BYTES as u64 {
                    self.pos = len_at;
                    return Err(self.error(
                        "an out-of-line value's length",
                        format!("found {len}, below the out-of-line minimum of {OUT_OF_LINE_MIN_BYTES}"),
                    ));
                }
                let r = ValueRef { hash, len, string: tag == TAG_REF_STRING };
                refs.resolve(&r).map_err(|found| CodecError {
                    expected: "an out-of-line value",
                    offset: start,
                    found: format!("but {}: {found}", r.key()),
                })?
            }
            other => {
                self.pos = start;
                return Err(self.error("a value tag", format!("found tag {other:#04x}")));
            }
        })
    }

    /// A datom body as written by [`put_datoms_body`].
    pub fn datoms(&mut self) -> CodecResult<Vec<Datom>> {
        let n_attrs = self.count(1, "an attribute count")?;
        let mut attrs = Vec::with_capacity(n_attrs);
        for _ in 0..n_attrs {
            attrs.push(Keyword::new(self.str()?));
        }
        // A datom takes at least 4 bytes: e delta, attribute index, value tag, tx delta.
        let n = self.count(4, "a datom count")?;
        let mut datoms = Vec::with_capacity(n);
        let (mut e, mut tx) = (0i64, 0i64);
        for _ in 0..n {
            e = e.wrapping_add(self.ivarint()?);
            let attr_at = self.pos;
            let idx = self.varint()?;
            let a = usize::try_from(idx).ok().and_then(|i| attrs.get(i)).copied().ok_or_else(|| CodecError {
                expected: "an attribute index",
                offset: attr_at,
                found: format!("found {idx} with {} attributes", attrs.len()),
            })?;
            let v = self.value()?;
            tx = tx.wrapping_add(self.ivarint()?);
            datoms.push(Datom { e, a, v, signed_tx: tx });
        }
        Ok(datoms)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use proptest::prelude::*;

    pub(crate) fn arb_leaf_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Nil),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(|b| Value::Bytes(b.into())),
            any::<i128>().prop_map(|i| Value::BigInt(Arc::new(BigInt::from(i)))),
            "[a-z]{1,3}(/[a-z]{1,3})?".prop_map(|s| Value::Keyword(Keyword::new(&s))),
            "[a-z?]{1,4}".prop_map(|s| Value::Symbol(Symbol::new(&s))),
            any::<bool>().prop_map(Value::Boolean),
            any::<f64>().prop_map(Value::Double),
            any::<f32>().prop_map(Value::Float),
            any::<i64>().prop_map(Value::Long),
            ".{0,12}".prop_map(|s| Value::str(&s)),
            (any::<i64>(), any::<i32>())
                .prop_map(|(m, s)| Value::BigDec(Arc::new(BigDecimal::new(BigInt::from(m), i64::from(s))))),
            any::<i64>().prop_map(Value::Instant),
            any::<u128>().prop_map(|u| Value::Uuid(uuid::Uuid::from_u128(u))),
        ]
    }

    pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
        arb_leaf_value().prop_recursive(3, 16, 4, |inner| {
            proptest::collection::vec(inner, 0..4).prop_map(|xs| Value::Tuple(xs.into()))
        })
    }

    fn arb_datom() -> impl Strategy<Value = Datom> {
        (any::<i64>(), "[a-c]{1,2}", arb_value(), any::<i64>()).prop_map(|(e, a, v, tx)| Datom {
            e,
            a: Keyword::new(&a),
            v,
            signed_tx: tx,
        })
    }

    /// Values compare equal after a round trip, and NaN payloads and zero signs survive too.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
            (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
            (Value::Tuple(xs), Value::Tuple(ys)) => {
                xs.len() == ys.len() && xs.iter().zip(ys.iter()).all(|(x, y)| same(x, y))
            }
            (Value::BigDec(x), Value::BigDec(y)) => x.as_bigint_and_exponent() == y.as_bigint_and_exponent(),
            _ => a == b && a.type_tag() == b.type_tag(),
        }
    }

    proptest! {
        #[test]
        fn value_round_trip(v in arb_value()) {
            let mut buf = Vec::new();
            encode_value(&v, &mut buf);
            let mut r = Reader::new(&buf);
            let back = r.value().unwrap();
            prop_assert!(r.is_at_end());
            prop_assert!(same(&v, &back), "{:?} != {:?}", v, back);
        }

        #[test]
        fn set_and_map_values_round_trip(
            xs in proptest::collection::vec(arb_leaf_value(), 0..8),
            ks in proptest::collection::vec(arb_leaf_value(), 0..8),
        ) {
            let set = Value::set(xs.clone());
            let map = Value::map(ks.into_iter().zip(xs).collect::<Vec<_>>());
            for v in [set, map, Value::set([Value::map([(Value::Long(1), Value::set([]))])])] {
                let mut buf = Vec::new();
                encode_value(&v, &mut buf);
                let mut r = Reader::new(&buf);
                let back = r.value().unwrap();
                prop_assert!(r.is_at_end());
                prop_assert_eq!(back, v);
            }
        }

        #[test]
        fn datoms_round_trip(ds in proptest::collection::vec(arb_datom(), 0..40)) {
            let mut buf = Vec::new();
            encode_datoms(&ds, &mut buf);
            let back = decode_datoms(&buf).unwrap();
            prop_assert_eq!(ds.len(), back.len());
            for (x, y) in ds.iter().zip(back.iter()) {
                prop_assert!(x.e == y.e && x.a == y.a && x.signed_tx == y.signed_tx && same(&x.v, &y.v));
            }
        }

        #[test]
        fn primitives_round_trip(u in any::<u64>(), i in any::<i64>(), b in proptest::collection::vec(any::<u8>(), 0..40), s in ".{0,20}") {
            let mut buf = Vec::new();
            put_varint(u, &mut buf);
            put_ivarint(i, &mut buf);
            put_bytes(&b, &mut buf);
            put_str(&s, &mut buf);
            buf.push(7);
            let mut r = Reader::new(&buf);
            prop_assert_eq!(r.varint().unwrap(), u);
            prop_assert_eq!(r.ivarint().unwrap(), i);
            prop_assert_eq!(r.bytes().unwrap(), &b[..]);
            prop_assert_eq!(r.str().unwrap(), &s[..]);
            prop_assert_eq!(r.fixed(1).unwrap(), &[7][..]);
            prop_assert!(r.finish().is_ok());
            prop_assert!(r.fixed(1).is_err());
            prop_assert_eq!(r.rest(), &[0u8; 0][..]);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_datoms(&bytes);
            let mut r = Reader::new(&bytes);
            let _ = r.value();
            let mut r = Reader::new(&bytes);
            let _ = r.datoms();
        }

        #[test]
        fn truncations_and_flips_never_panic(ds in proptest::collection::vec(arb_datom(), 1..10), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut buf = Vec::new();
            encode_datoms(&ds, &mut buf);
            let cut = cut.index(buf.len());
            prop_assert!(decode_datoms(&buf[..cut]).is_err());
            let i = flip.index(buf.len());
            buf[i] ^= 1 << bit;
            let _ = decode_datoms(&buf);
        }
    }

    /// Resolves references from a map of stored values.
    struct MapRefs(HashMap<String, Vec<u8>>);

    impl ResolveRef for MapRefs {
        fn resolve(&self, r: &ValueRef) -> Result<Value, String> {
            let bytes = self.0.get(&r.key()).ok_or("missing")?;
            value_from_stored(r, bytes)
        }
    }

    #[test]
    fn long_values_go_out_of_line_only_when_asked() {
        let long = Value::str(&"x".repeat(OUT_OF_LINE_MIN_BYTES));
        let bytes = Value::Bytes(vec![1u8; OUT_OF_LINE_MIN_BYTES + 1].into());
        let short = Value::str(&"y".repeat(OUT_OF_LINE_MIN_BYTES - 1));
        let ds = vec![
            Datom::new(1, Keyword::new("a"), long.clone(), 5, true),
            Datom::new(2, Keyword::new("a"), Value::Tuple(vec![bytes.clone(), short.clone()].into()), 5, true),
        ];
        let mut stored = HashMap::new();
        let mut buf = Vec::new();
        put_datoms_body_outlined(&ds, &mut buf, &mut |r, v| {
            stored.insert(r.key(), out_of_line_bytes(v).unwrap().to_vec());
        });
        assert_eq!(stored.len(), 2);
        assert!(buf.len() < OUT_OF_LINE_MIN_BYTES + 200, "{} bytes", buf.len());
        assert!(stored.keys().all(|k| parse_value_key(k).is_some_and(|h| value_key(&h) == *k)));
        let refs = MapRefs(stored);
        let mut r = Reader::with_refs(&buf, &refs);
        assert_eq!(r.datoms().unwrap(), ds);
        assert!(r.is_at_end());
        // Without a resolver (a log record, a head) a reference is an error.
        let err = Reader::new(&buf).datoms().unwrap_err();
        assert!(err.to_string().contains("out-of-line value outside an index node"), "{err}");
        // A missing value names its key.
        let empty = MapRefs(HashMap::new());
        let err = Reader::with_refs(&buf, &empty).datoms().unwrap_err().to_string();
        assert!(err.contains("values/") && err.contains("missing"), "{err}");
        // A reference claiming a length below the threshold is refused.
        let mut forged = vec![TAG_REF_STRING];
        forged.extend_from_slice(&value_hash(b"abc"));
        put_varint(3, &mut forged);
        let err = Reader::with_refs(&forged, &refs).value().unwrap_err();
        assert!(err.to_string().contains("below the out-of-line minimum"), "{err}");
        // The plain encoding is unchanged: everything inline.
        let mut plain = Vec::new();
        put_datoms_body(&ds, &mut plain);
        assert_eq!(Reader::new(&plain).datoms().unwrap(), ds);
        assert!(plain.len() > 2 * OUT_OF_LINE_MIN_BYTES);
        assert_eq!(parse_value_key("values/xyz"), None);
        assert_eq!(parse_value_key("nodes/00000000000000000000000000000000"), None);
    }

    #[test]
    fn small_numbers_are_short() {
        let mut buf = Vec::new();
        put_varint(127, &mut buf);
        assert_eq!(buf.len(), 1);
        buf.clear();
        put_ivarint(-64, &mut buf);
        assert_eq!(buf.len(), 1);
        buf.clear();
        put_varint(u64::MAX, &mut buf);
        assert_eq!(buf.len(), 10);
        assert_eq!(Reader::new(&buf).varint().unwrap(), u64::MAX);
    }

    #[test]
    fn errors_name_what_and_where() {
        let err = Reader::new(&[0x80, 0x80]).varint().unwrap_err();
        assert_eq!(err.to_string(), "expected a varint at byte offset 2, but the input ends");
        let err = Reader::new(&[0xff; 11]).varint().unwrap_err();
        assert_eq!(err.offset, 0);
        let err = Reader::new(&[99]).value().unwrap_err();
        assert_eq!(err.to_string(), "expected a value tag at byte offset 0, found tag 0x63");
        // A huge length is refused before any allocation.
        let mut buf = Vec::new();
        put_varint(u64::MAX >> 1, &mut buf);
        assert!(Reader::new(&buf).bytes().is_err());
        let mut buf = vec![TAG_TUPLE];
        put_varint(1 << 40, &mut buf);
        assert!(Reader::new(&buf).value().is_err());
        // Deep tuple nesting is refused, not a stack overflow.
        let buf: Vec<u8> = [TAG_TUPLE, 1].repeat(10_000);
        assert!(Reader::new(&buf).value().is_err());
        assert!(decode_datoms(&[2, 0, 0]).unwrap_err().to_string().contains("version"));
    }

    #[test]
    fn datoms_are_compact() {
        let name = Keyword::new("person/name");
        let ds: Vec<Datom> =
            (0..100).map(|i| Datom::new(1000 + i, name, Value::Long(i), crate::datom::TX0 + 1, true)).collect();
        let mut buf = Vec::new();
        encode_datoms(&ds, &mut buf);
        // Per datom: 1 byte e delta, 1 attr index, 2-3 value, 1 tx delta.
        assert!(buf.len() < 100 * 6 + 40, "{} bytes", buf.len());
        assert_eq!(decode_datoms(&buf).unwrap(), ds);
    }
}
