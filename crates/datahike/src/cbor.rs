//! CBOR (RFC 8949): a data model ([`Cbor`]), an encoder and a decoder that never panics, and
//! the mapping of EDN that `dthk` uses for `-f cbor` and `cbor:FILE` ([`edn_to_cbor`],
//! [`edn_from_cbor`]). The dump format of [`crate::migrate`] builds on the same model.
//!
//! The model keeps what EDN cannot say: float widths (`Float16`/`Float32`/`Float64`), byte
//! strings, tags (RFC 8746 typed arrays, tag 27 records...) and definite or indefinite
//! lengths are all decoded; the encoder writes definite lengths and the shortest heads, and
//! [`encode_canonical`] sorts map keys bytewise (RFC 8949 §4.2.1), which with
//! preserved float widths is the "archival" profile Datahike's dumps use.
//!
//! The EDN mapping:
//!
//! | EDN | CBOR |
//! |---|---|
//! | nil, booleans | simple values 22, 20/21 |
//! | long | major type 0/1 |
//! | big integer (`N`) | tag 2/3 over the magnitude bytes when it does not fit 64 bits |
//! | double | float64 (major type 7) |
//! | big decimal (`M`) | tag 4 `[exponent mantissa]` |
//! | string, character | text string |
//! | keyword | tag 39 over its text with the colon, `":db/id"` (clj-cbor's convention) |
//! | symbol | tag 39 over its text, `"?e"` |
//! | list, vector | array |
//! | set | tag 258 over an array (the IANA set tag) |
//! | map | map, keys in order |
//! | `#inst` | tag 1 over epoch seconds: an integer when whole, else a float64 |
//! | `#uuid` | tag 37 over the 16 bytes |
//! | `#bytes [..]` (a byte array) | byte string |
//! | datom, db summary | their value: `[e a v tx added]`, the summary map |
//! | other tagged literal | tag 27 `["tag" value]` (a generic serialised object) |
//!
//! [`edn_from_cbor`] reads this mapping back, and also what Datahike's CBOR clients and server
//! send (the `boring` library's encoding): tag 0 (RFC 3339 date text, as boring writes
//! instants), stringrefs (tags 256 and 25, <http://cbor.schmorp.de/stringref>, which boring
//! uses by default; the decoder resolves them, so no [`Cbor`] item holds one), tag 30
//! rationals (as the EDN reader reads `1/3`: an integer or the nearest double), tag 27
//! objects (`["datahike.datom/Datom", [e a v tx added]]` as `#datahike/Datom`; boring's
//! `clojure/char`, `clojure/with-meta` (the metadata dropped), `clojure/sorted-map`,
//! `clojure/sorted-set`, `clojure/queue` as the value they mark; any other name, such as
//! Datahike's `datahike/DB` or `datahike/TxReport`, as `#name argument`), boring's shaped
//! arrays (tag 39649), tag 13 sets (clj-cbor), float16/float32 and indefinite lengths. Byte
//! strings read as `#bytes [..]`. Any other tag reads as `#cbor/tag-N item`.

use crate::edn::reader::{distinct_entries, distinct_items};
use crate::edn::wire::{bytes_edn, edn_bytes};
use crate::edn::{pr_str, read_str, Edn, Keyword, Symbol};
use num_bigint::{BigInt, Sign};
use std::sync::Arc;

/// How deeply arrays, maps and tags may nest, as for the EDN reader.
pub const MAX_DEPTH: usize = 1_000;

/// One CBOR data item.
#[derive(Clone, Debug, PartialEq)]
pub enum Cbor {
    /// Major type 0: an unsigned integer.
    Unsigned(u64),
    /// Major type 1: the integer `-1 - n`.
    Negative(u64),
    /// Major type 2: a byte string.
    Bytes(Vec<u8>),
    /// Major type 3: a text string.
    Text(String),
    /// Major type 4: an array.
    Array(Vec<Cbor>),
    /// Major type 5: a map, entries in order.
    Map(Vec<(Cbor, Cbor)>),
    /// Major type 6: a tagged item.
    Tag(u64, Box<Cbor>),
    /// `false` / `true`.
    Bool(bool),
    /// `null`.
    Null,
    /// `undefined`.
    Undefined,
    /// A half-precision float, as its bits.
    Float16(u16),
    /// A single-precision float.
    Float32(f32),
    /// A double-precision float.
    Float64(f64),
    /// Any other simple value.
    Simple(u8),
}

impl Cbor {
    /// An integer item: major type 0 or 1.
    pub fn int(i: i64) -> Cbor {
        if i >= 0 {
            Cbor::Unsigned(i as u64)
        } else {
            // -1 - i, computed without overflow for i64::MIN.
            Cbor::Negative(!(i as u64))
        }
    }

    /// A text item.
    pub fn text(s: &str) -> Cbor {
        Cbor::Text(s.to_string())
    }

    /// The item as an `i64`, when it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Cbor::Unsigned(n) => i64::try_from(*n).ok(),
            Cbor::Negative(n) => i64::try_from(*n).ok().map(|n| -1 - n),
            _ => None,
        }
    }

    /// A float item of any width as an `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cbor::Float16(bits) => Some(f16_to_f64(*bits)),
            Cbor::Float32(x) => Some(f64::from(*x)),
            Cbor::Float64(x) => Some(*x),
            _ => None,
        }
    }

    /// A short description for error messages: the major type and, for a tag, its number.
    pub fn kind(&self) -> String {
        match self {
            Cbor::Unsigned(_) | Cbor::Negative(_) => "an integer".into(),
            Cbor::Bytes(_) => "a byte string".into(),
            Cbor::Text(_) => "a text string".into(),
            Cbor::Array(_) => "an array".into(),
            Cbor::Map(_) => "a map".into(),
            Cbor::Tag(t, _) => format!("tag {t}"),
            Cbor::Bool(_) => "a boolean".into(),
            Cbor::Null => "null".into(),
            Cbor::Undefined => "undefined".into(),
            Cbor::Float16(_) => "a float16".into(),
            Cbor::Float32(_) => "a float32".into(),
            Cbor::Float64(_) => "a float64".into(),
            Cbor::Simple(s) => format!("simple value {s}"),
        }
    }
}

/// Writes the head of an item: major type and argument, in the shortest form.
pub fn write_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if let Ok(n) = u8::try_from(n) {
        out.extend([m | 24, n]);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(m | 25);
        out.extend(n.to_be_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        out.push(m | 26);
        out.extend(n.to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend(n.to_be_bytes());
    }
}

/// Writes an integer (major type 0 or 1).
pub fn write_int(out: &mut Vec<u8>, i: i64) {
    if i >= 0 {
        write_head(out, 0, i as u64);
    } else {
        write_head(out, 1, !(i as u64));
    }
}

/// Writes a text string.
pub fn write_text(out: &mut Vec<u8>, s: &str) {
    write_head(out, 3, s.len() as u64);
    out.extend(s.as_bytes());
}

/// Writes a byte string.
pub fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_head(out, 2, b.len() as u64);
    out.extend(b);
}

/// Writes a double-precision float (never narrowed).
pub fn write_f64(out: &mut Vec<u8>, x: f64) {
    out.push(0xfb);
    out.extend(x.to_bits().to_be_bytes());
}

/// Writes a single-precision float (never widened).
pub fn write_f32(out: &mut Vec<u8>, x: f32) {
    out.push(0xfa);
    out.extend(x.to_bits().to_be_bytes());
}

/// Writes a tag head.
pub fn write_tag(out: &mut Vec<u8>, tag: u64) {
    write_head(out, 6, tag);
}

/// Encodes `item`, map entries in their order.
pub fn encode(item: &Cbor, out: &mut Vec<u8>) {
    encode_with(item, out, false);
}

/// Encodes `item` with every map's entries sorted by the bytes of their encoded keys
/// (RFC 8949 §4.2.1); floats keep their width.
pub fn encode_canonical(item: &Cbor, out: &mut Vec<u8>) {
    encode_with(item, out, true);
}

/// `item` as bytes.
pub fn to_vec(item: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    encode(item, &mut out);
    out
}

fn encode_with(item: &Cbor, out: &mut Vec<u8>, canonical: bool) {
    match item {
        Cbor::Unsigned(n) => write_head(out, 0, *n),
        Cbor::Negative(n) => write_head(out, 1, *n),
        Cbor::Bytes(b) => write_bytes(out, b),
        Cbor::Text(s) => write_text(out, s),
        Cbor::Array(items) => {
            write_head(out, 4, items.len() as u64);
            items.iter().for_each(|x| encode_with(x, out, canonical));
        }
        Cbor::Map(entries) => {
            write_head(out, 5, entries.len() as u64);
            if canonical {
                let mut encoded: Vec<(Vec<u8>, Vec<u8>)> = entries
                    .iter()
                    .map(|(k, v)| {
                        let (mut kb, mut vb) = (Vec::new(), Vec::new());
                        encode_with(k, &mut kb, true);
                        encode_with(v, &mut vb, true);
                        (kb, vb)
                    })
                    .collect();
                encoded.sort_by(|a, b| a.0.cmp(&b.0));
                for (k, v) in encoded {
                    out.extend(k);
                    out.extend(v);
                }
            } else {
                for (k, v) in entries {
                    encode_with(k, out, canonical);
                    encode_with(v, out, canonical);
                }
            }
        }
        Cbor::Tag(tag, inner) => {
            write_tag(out, *tag);
            encode_with(inner, out, canonical);
        }
        Cbor::Bool(false) => out.push(0xf4),
        Cbor::Bool(true) => out.push(0xf5),
        Cbor::Null => out.push(0xf6),
        Cbor::Undefined => out.push(0xf7),
        Cbor::Float16(bits) => {
            out.push(0xf9);
            out.extend(bits.to_be_bytes());
        }
        Cbor::Float32(x) => write_f32(out, *x),
        Cbor::Float64(x) => write_f64(out, *x),
        Cbor::Simple(s) => {
            if *s < 24 {
                out.push(0xe0 | s);
            } else {
                out.extend([0xf8, *s]);
            }
        }
    }
}

/// A CBOR decoding error: what was wrong and at which byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CborError {
    /// The byte offset at which decoding failed.
    pub offset: usize,
    /// What was wrong.
    pub message: String,
}

impl std::fmt::Display for CborError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid CBOR at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for CborError {}

/// Decodes exactly one item; trailing bytes are an error.
pub fn decode(bytes: &[u8]) -> Result<Cbor, CborError> {
    let mut decoder = Decoder::new(bytes);
    let item = decoder.item()?;
    if decoder.pos != bytes.len() {
        return Err(decoder.error(format!("{} bytes after the item", bytes.len() - decoder.pos)));
    }
    Ok(item)
}

/// Reads the items of a CBOR sequence (RFC 8742) one at a time.
pub struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    /// The string tables of the open stringref namespaces (tag 256), innermost last.
    stringrefs: Vec<Vec<Cbor>>,
    /// Bytes of strings copied by stringrefs so far (see [`Decoder::copy_budget`]).
    copied: usize,
}

/// A marker for the `break` byte (0xff) that ends an indefinite-length item.
enum Step {
    Item(Cbor),
    Break,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Decoder<'a> {
        Decoder { bytes, pos: 0, depth: 0, stringrefs: Vec::new(), copied: 0 }
    }

    /// The offset of the next item.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether every byte has been read.
    pub fn is_at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// The next item of the sequence, `None` at the end.
    pub fn next_item(&mut self) -> Option<Result<Cbor, CborError>> {
        if self.is_at_end() {
            return None;
        }
        Some(self.item())
    }

    fn error(&self, message: impl Into<String>) -> CborError {
        CborError { offset: self.pos, message: message.into() }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CborError> {
        match self.bytes.get(self.pos..self.pos.saturating_add(n)) {
            Some(slice) => {
                self.pos += n;
                Ok(slice)
            }
            None => Err(self.error("unexpected end of input")),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CborError> {
        let slice = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(slice);
        Ok(a)
    }

    fn uint(&mut self, info: u8) -> Result<u64, CborError> {
        Ok(match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.array::<1>()?[0]),
            25 => u64::from(u16::from_be_bytes(self.array()?)),
            26 => u64::from(u32::from_be_bytes(self.array()?)),
            27 => u64::from_be_bytes(self.array()?),
            _ => return Err(self.error("reserved additional information")),
        })
    }

    /// The next item (a `break` here is an error).
    pub fn item(&mut self) -> Result<Cbor, CborError> {
        match self.step()? {
            Step::Item(v) => Ok(v),
            Step::Break => Err(self.error("unexpected break")),
        }
    }

    fn length(&mut self, info: u8) -> Result<Option<usize>, CborError> {
        if info == 31 {
            return Ok(None);
        }
        let n = self.uint(info)?;
        // Every element takes at least one byte, so a longer count is a lie.
        match usize::try_from(n) {
            Ok(n) if n <= self.bytes.len() - self.pos => Ok(Some(n)),
            _ => Err(self.error("length beyond the end of input")),
        }
    }

    fn items(&mut self, len: Option<usize>) -> Result<Vec<Cbor>, CborError> {
        let mut items = Vec::with_capacity(len.unwrap_or(0).min(1024));
        match len {
            Some(n) => {
                for _ in 0..n {
                    items.push(self.item()?);
                }
            }
            None => {
                while let Step::Item(v) = self.step()? {
                    items.push(v);
                }
            }
        }
        Ok(items)
    }

    fn chunks(&mut self, major: u8, len: Option<usize>) -> Result<Vec<u8>, CborError> {
        match len {
            Some(n) => Ok(self.take(n)?.to_vec()),
            None => {
                let mut all = Vec::new();
                loop {
                    let b = self.array::<1>()?[0];
                    if b == 0xff {
                        return Ok(all);
                    }
                    if b >> 5 != major || b & 31 == 31 {
                        return Err(self.error("bad chunk in an indefinite-length string"));
                    }
                    let n = self.length(b & 31)?.unwrap_or(0);
                    all.extend(self.take(n)?);
                }
            }
        }
    }

    fn step(&mut self) -> Result<Step, CborError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        let result = self.step_inner();
        self.depth -= 1;
        result
    }

    fn step_inner(&mut self) -> Result<Step, CborError> {
        let initial = self.array::<1>()?[0];
        let (major, info) = (initial >> 5, initial & 31);
        let item = match major {
            0 => Cbor::Unsigned(self.uint(info)?),
            1 => Cbor::Negative(self.uint(info)?),
            2 => {
                let len = self.length(info)?;
                let item = Cbor::Bytes(self.chunks(2, len)?);
                self.remember_string(len, &item);
                item
            }
            3 => {
                let len = self.length(info)?;
                let start = self.pos;
                let bytes = self.chunks(3, len)?;
                let item = Cbor::Text(
                    String::from_utf8(bytes)
                        .map_err(|_| CborError { offset: start, message: "text string is not UTF-8".into() })?,
                );
                self.remember_string(len, &item);
                item
            }
            4 => {
                let len = self.length(info)?;
                Cbor::Array(self.items(len)?)
            }
            5 => {
                let len = self.length(info)?;
                let flat = self.items(len.map(|n| n * 2))?;
                if flat.len() % 2 != 0 {
                    return Err(self.error("map with a key and no value"));
                }
                let mut entries = Vec::with_capacity(flat.len() / 2);
                let mut it = flat.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    entries.push((k, v));
                }
                Cbor::Map(entries)
            }
            6 => match self.uint(info)? {
                TAG_STRINGREF_NAMESPACE => {
                    self.stringrefs.push(Vec::new());
                    let item = self.item();
                    self.stringrefs.pop();
                    item?
                }
                TAG_STRINGREF => {
                    let at = self.pos;
                    let index = self.item()?;
                    let error = |message: String| CborError { offset: at, message };
                    let Some(table) = self.stringrefs.last() else {
                        return Err(error("a stringref (tag 25) outside any stringref namespace (tag 256)".into()));
                    };
                    let found = match &index {
                        Cbor::Unsigned(i) => usize::try_from(*i).ok().and_then(|i| table.get(i)),
                        _ => return Err(error(format!("a stringref (tag 25) over {}, not an index", index.kind()))),
                    };
                    match found {
                        Some(string) => {
                            let len = match string {
                                Cbor::Text(t) => t.len(),
                                Cbor::Bytes(b) => b.len(),
                                _ => 0,
                            };
                            self.copied = self.copied.saturating_add(len);
                            if self.copied > self.copy_budget() {
                                return Err(error(format!(
                                    "stringrefs copy more than {} bytes of strings out of {} bytes of input",
                                    self.copy_budget(),
                                    self.bytes.len()
                                )));
                            }
                            string.clone()
                        }
                        None => {
                            return Err(error(format!(
                                "stringref {index:?} is not among the {} strings of its namespace",
                                table.len()
                            )))
                        }
                    }
                }
                tag => Cbor::Tag(tag, Box::new(self.item()?)),
            },
            _ => match info {
                0..=19 => Cbor::Simple(info),
                20 => Cbor::Bool(false),
                21 => Cbor::Bool(true),
                22 => Cbor::Null,
                23 => Cbor::Undefined,
                24 => Cbor::Simple(self.array::<1>()?[0]),
                25 => Cbor::Float16(u16::from_be_bytes(self.array()?)),
                26 => Cbor::Float32(f32::from_be_bytes(self.array()?)),
                27 => Cbor::Float64(f64::from_be_bytes(self.array()?)),
                31 => return Ok(Step::Break),
                _ => return Err(self.error("reserved simple value")),
            },
        };
        Ok(Step::Item(item))
    }
}

/// Tag 256: the enclosed item is a stringref namespace (<http://cbor.schmorp.de/stringref>).
const TAG_STRINGREF_NAMESPACE: u64 = 256;
/// Tag 25: a reference to a string of the current stringref namespace, by index.
const TAG_STRINGREF: u64 = 25;

/// Bytes stringrefs may copy regardless of the input's size...
const STRINGREF_COPY_BASE: usize = 16 << 20;
/// ...and per byte of input. A reference takes at least 3 bytes, so each one copying a string
/// of 3 to 48 bytes stays within this; without a bound, N bytes of input (one string and
/// N / 3 references to it) decode to about N * N / 6 bytes.
const STRINGREF_COPY_PER_INPUT_BYTE: usize = 16;

impl Decoder<'_> {
    /// The most bytes stringrefs may copy while decoding this input.
    fn copy_budget(&self) -> usize {
        STRINGREF_COPY_BASE.saturating_add(self.bytes.len().saturating_mul(STRINGREF_COPY_PER_INPUT_BYTE))
    }

    /// Adds a definite-length string just read to the innermost stringref namespace, when it
    /// is at least as long as a reference to it would be (the spec's rule, which a writer
    /// follows too, so that both sides number the strings alike).
    fn remember_string(&mut self, len: Option<usize>, item: &Cbor) {
        let (Some(len), Some(table)) = (len, self.stringrefs.last_mut()) else { return };
        let min_len = match table.len() {
            0..=23 => 3,
            24..=255 => 4,
            256..=65_535 => 5,
            65_536..=4_294_967_295 => 7,
            _ => 11,
        };
        if len >= min_len {
            table.push(item.clone());
        }
    }
}

/// The value of half-precision float bits.
pub fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits >> 15 == 1 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x3ff);
    sign * match exponent {
        0 => fraction * 2f64.powi(-24),
        31 if fraction == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + fraction / 1024.0) * 2f64.powi(e - 15),
    }
}

/// A big integer as tag 2/3 over its magnitude, or a plain integer when it fits 64 bits.
fn bigint_item(i: &BigInt) -> Cbor {
    if let Ok(small) = i64::try_from(i) {
        return Cbor::int(small);
    }
    let (tag, magnitude) = match i.sign() {
        Sign::Minus => (3, -i - 1u8),
        _ => (2, i.clone()),
    };
    if let Ok(u) = u64::try_from(&magnitude) {
        return if tag == 2 { Cbor::Unsigned(u) } else { Cbor::Negative(u) };
    }
    Cbor::Tag(tag, Box::new(Cbor::Bytes(magnitude.to_bytes_be().1)))
}

/// The EDN mapping of the module docs, as an item.
pub fn edn_item(value: &Edn) -> Cbor {
    match value {
        Edn::Nil => Cbor::Null,
        Edn::Bool(b) => Cbor::Bool(*b),
        Edn::Int(i) => Cbor::int(*i),
        Edn::BigInt(i) => bigint_item(i),
        Edn::Float(x) => Cbor::Float64(*x),
        Edn::BigDec(d) => {
            let (mantissa, scale) = d.as_bigint_and_exponent();
            Cbor::Tag(4, Box::new(Cbor::Array(vec![Cbor::int(-scale), bigint_item(&mantissa)])))
        }
        Edn::Str(s) => Cbor::Text(s.to_string()),
        Edn::Char(c) => Cbor::Text(c.to_string()),
        Edn::Keyword(k) => Cbor::Tag(39, Box::new(Cbor::Text(format!(":{}", k.as_str())))),
        Edn::Symbol(s) => Cbor::Tag(39, Box::new(Cbor::text(s.as_str()))),
        Edn::List(items) | Edn::Vector(items) => Cbor::Array(items.iter().map(edn_item).collect()),
        Edn::Set(items) => Cbor::Tag(258, Box::new(Cbor::Array(items.iter().map(edn_item).collect()))),
        Edn::Map(entries) => Cbor::Map(entries.iter().map(|(k, v)| (edn_item(k), edn_item(v))).collect()),
        Edn::Inst(ms) => Cbor::Tag(
            1,
            Box::new(if ms % 1000 == 0 { Cbor::int(ms / 1000) } else { Cbor::Float64(*ms as f64 / 1000.0) }),
        ),
        Edn::Uuid(u) => Cbor::Tag(37, Box::new(Cbor::Bytes(u.as_bytes().to_vec()))),
        Edn::Tagged(..) if edn_bytes(value).is_some() => Cbor::Bytes(edn_bytes(value).unwrap_or_default()),
        Edn::Tagged(tag, inner) if matches!(tag.as_str(), "datahike/Datom" | "datahike/DB") => edn_item(inner),
        Edn::Tagged(tag, inner) => {
            Cbor::Tag(27, Box::new(Cbor::Array(vec![Cbor::text(tag.as_str()), edn_item(inner)])))
        }
    }
}

/// An EDN value as CBOR bytes (the mapping of the module docs).
pub fn edn_to_cbor(value: &Edn) -> Vec<u8> {
    to_vec(&edn_item(value))
}

/// Reads one CBOR item as EDN; trailing bytes are an error.
pub fn edn_from_cbor(bytes: &[u8]) -> Result<Edn, String> {
    let item = decode(bytes).map_err(|e| e.to_string())?;
    item_to_edn(item)
}

/// The big integer a tag 2/3 payload names.
pub fn bignum(tag: u64, magnitude: &[u8]) -> BigInt {
    let magnitude = BigInt::from_bytes_be(Sign::Plus, magnitude);
    if tag == 2 {
        magnitude
    } else {
        -magnitude - 1u8
    }
}

/// An item as EDN, with the mapping of the module docs read back.
pub fn item_to_edn(item: Cbor) -> Result<Edn, String> {
    Ok(match item {
        Cbor::Unsigned(n) => i64::try_from(n).map_or_else(|_| Edn::BigInt(Arc::new(n.into())), Edn::Int),
        Cbor::Negative(n) => {
            i64::try_from(n).map_or_else(|_| Edn::BigInt(Arc::new(-BigInt::from(n) - 1u8)), |n| Edn::Int(-1 - n))
        }
        Cbor::Bytes(b) => bytes_edn(&b),
        Cbor::Text(s) => Edn::Str(s.into()),
        Cbor::Array(items) => Edn::Vector(items.into_iter().map(item_to_edn).collect::<Result<_, _>>()?),
        Cbor::Map(entries) => Edn::Map(distinct_entries(
            entries.into_iter().map(|(k, v)| Ok((item_to_edn(k)?, item_to_edn(v)?))).collect::<Result<_, String>>()?,
        )),
        Cbor::Tag(tag, inner) => tagged_edn(tag, *inner)?,
        Cbor::Bool(b) => Edn::Bool(b),
        Cbor::Null | Cbor::Undefined => Edn::Nil,
        Cbor::Float16(bits) => Edn::Float(f16_to_f64(bits)),
        Cbor::Float32(x) => Edn::Float(f64::from(x)),
        Cbor::Float64(x) => Edn::Float(x),
        Cbor::Simple(s) => return Err(format!("unsupported simple value {s}")),
    })
}

fn tagged_edn(tag: u64, inner: Cbor) -> Result<Edn, String> {
    Ok(match (tag, inner) {
        (39, Cbor::Text(s)) if s.is_empty() => {
            return Err("tag 39 over an empty string: a keyword or symbol needs a name".to_string())
        }
        (39, Cbor::Text(s)) => match s.strip_prefix(':') {
            Some(k) if !k.is_empty() => Edn::Keyword(Keyword::new(k)),
            _ => Edn::Symbol(Symbol::new(&s)),
        },
        (258 | 13, Cbor::Array(items)) => {
            Edn::Set(distinct_items(items.into_iter().map(item_to_edn).collect::<Result<_, _>>()?))
        }
        (30, Cbor::Array(parts)) => {
            let digits = |part: Option<&Cbor>| match part.cloned().map(item_to_edn) {
                Some(Ok(Edn::Int(i))) => Some(i.to_string()),
                Some(Ok(Edn::BigInt(ref i))) => Some(i.to_string()),
                _ => None,
            };
            match (parts.len(), digits(parts.first()), digits(parts.get(1))) {
                (2, Some(numerator), Some(denominator)) if !denominator.starts_with('-') => {
                    read_str(&format!("{numerator}/{denominator}")).map_err(|e| format!("bad rational: {e}"))?
                }
                _ => return Err("bad rational: expected [numerator, positive denominator]".into()),
            }
        }
        (SHAPED_ARRAY, Cbor::Array(parts)) => shaped_array(parts)?,
        (37, Cbor::Bytes(raw)) => Edn::Uuid(uuid::Uuid::from_slice(&raw).map_err(|_| "bad uuid".to_string())?),
        (37, Cbor::Text(s)) => Edn::Uuid(uuid::Uuid::try_parse(&s).map_err(|_| "bad uuid text".to_string())?),
        (0, Cbor::Text(s)) => read_str(&format!("#inst {s:?}")).map_err(|e| format!("bad date {s:?}: {e}"))?,
        (1, secs) => match (secs.as_i64(), secs.as_f64()) {
            (Some(secs), _) => Edn::Inst(secs.saturating_mul(1000)),
            (_, Some(secs)) => Edn::Inst((secs * 1000.0).round() as i64),
            _ => return Err("bad epoch time".into()),
        },
        (2 | 3, Cbor::Bytes(raw)) => Edn::BigInt(Arc::new(bignum(tag, &raw))),
        (4, Cbor::Array(parts)) if parts.len() == 2 => {
            let mut parts = parts.into_iter();
            let (Some(exponent), Some(mantissa)) = (parts.next(), parts.next()) else {
                return Err("bad decimal fraction".into());
            };
            let (Edn::Int(exponent), mantissa @ (Edn::Int(_) | Edn::BigInt(_))) =
                (item_to_edn(exponent)?, item_to_edn(mantissa)?)
            else {
                return Err("bad decimal fraction".into());
            };
            let digits = pr_str(&mantissa);
            read_str(&format!("{}E{exponent}M", digits.trim_end_matches('N')))
                .map_err(|e| format!("bad decimal: {e}"))?
        }
        (27, Cbor::Array(parts)) if parts.len() >= 2 && matches!(parts.first(), Some(Cbor::Text(_))) => {
            let mut parts = parts.into_iter();
            let Some(Cbor::Text(name)) = parts.next() else {
                return Err("bad tag 27".into());
            };
            let mut arguments = parts.map(item_to_edn).collect::<Result<Vec<_>, _>>()?;
            let argument = match arguments.len() {
                1 => arguments.pop().unwrap_or(Edn::Nil),
                _ => Edn::Vector(arguments),
            };
            object_edn(&name, argument)?
        }
        (_, inner) => Edn::Tagged(Symbol::new(&format!("cbor/tag-{tag}")), Box::new(item_to_edn(inner)?)),
    })
}

/// Tag 39649: boring's shaped array `[keys, rows]`, an array of maps whose keys are written
/// once; in a row, `undefined` or a short row means the key is absent.
const SHAPED_ARRAY: u64 = 39649;

fn shaped_array(parts: Vec<Cbor>) -> Result<Edn, String> {
    let bad = || "bad shaped array: expected [[keys..], [[values..]..]]".to_string();
    let mut parts = parts.into_iter();
    let (Some(Cbor::Array(keys)), Some(Cbor::Array(rows)), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let keys = keys.into_iter().map(item_to_edn).collect::<Result<Vec<_>, _>>()?;
    let mut maps = Vec::with_capacity(rows.len());
    for row in rows {
        let Cbor::Array(values) = row else { return Err(bad()) };
        if values.len() > keys.len() {
            return Err(format!("bad shaped array: a row of {} values for {} keys", values.len(), keys.len()));
        }
        let mut entries = Vec::with_capacity(values.len());
        for (key, value) in keys.iter().zip(values) {
            if value != Cbor::Undefined {
                entries.push((key.clone(), item_to_edn(value)?));
            }
        }
        maps.push(Edn::Map(distinct_entries(entries)));
    }
    Ok(Edn::Vector(maps))
}

/// A tag 27 object `[name, argument]` as EDN: Datahike's datom (`datahike.datom/Datom`, as
/// its CBOR clients write it) as `#datahike/Datom`; boring's markers for what CBOR has no
/// type for as that value (`clojure/char`, `clojure/with-meta` without its metadata,
/// `clojure/sorted-map`, `clojure/sorted-set`, `clojure/queue`); anything else, Datahike's
/// `datahike/DB`, `datahike/TxReport`.. included, as the tagged value `#name argument`.
fn object_edn(name: &str, mut argument: Edn) -> Result<Edn, String> {
    Ok(match (name, &mut argument) {
        ("datahike.datom/Datom", _) => Edn::Tagged(Symbol::new("datahike/Datom"), Box::new(argument)),
        ("clojure/char", Edn::Str(s)) => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Edn::Char(c),
                _ => return Err(format!("bad clojure/char {s:?}: expected one character")),
            }
        }
        ("clojure/with-meta", Edn::Vector(parts)) if parts.len() == 2 => parts.pop().unwrap_or(Edn::Nil),
        ("clojure/sorted-map", Edn::Map(_)) => argument,
        ("clojure/sorted-set", Edn::Vector(items)) => Edn::Set(distinct_items(std::mem::take(items))),
        ("clojure/queue", Edn::Vector(items)) => Edn::List(std::mem::take(items)),
        (
            name @ ("clojure/char" | "clojure/with-meta" | "clojure/sorted-map" | "clojure/sorted-set"
            | "clojure/queue"),
            other,
        ) => return Err(format!("bad {name}: unexpected argument {}", pr_str(other))),
        (name, _) => Edn::Tagged(Symbol::new(name), Box::new(argument)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edn_round_trips() {
        let text = r#"[nil true false 0 23 24 -1 -25 9223372036854775807 -9223372036854775808
            123456789012345678901234567890N -123456789012345678901234567890N 1.5 "héllo" :db/id :a
            sym {:a [1 2] "k" #{1 2}} #inst "2024-01-02T03:04:05.006-00:00" #inst "2024-01-02T03:04:05.000-00:00"
            #uuid "550e8400-e29b-41d4-a716-446655440000" 1.25M #my/tag [1] #bytes [1 -1 0]]"#;
        let value = read_str(text).unwrap();
        let bytes = edn_to_cbor(&value);
        assert_eq!(edn_from_cbor(&bytes).unwrap(), value);
    }

    /// Bytes written by `write` into a fresh buffer.
    fn bytes_of(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out);
        out
    }

    fn keyword(out: &mut Vec<u8>, text: &str) {
        write_tag(out, 39);
        write_text(out, text);
    }

    fn stringref(out: &mut Vec<u8>, index: u64) {
        write_tag(out, TAG_STRINGREF);
        write_head(out, 0, index);
    }

    fn read(bytes: &[u8]) -> Edn {
        edn_from_cbor(bytes).unwrap_or_else(|e| panic!("{bytes:02x?}: {e}"))
    }

    #[test]
    fn stringrefs_resolve_as_the_spec_numbers_them() {
        // Strings shorter than a reference to them take no index; byte strings take one.
        let bytes = bytes_of(|out| {
            write_tag(out, TAG_STRINGREF_NAMESPACE);
            write_head(out, 4, 8);
            write_text(out, "ab");
            write_text(out, "name");
            stringref(out, 0);
            keyword(out, ":name");
            write_tag(out, 39);
            stringref(out, 1);
            write_bytes(out, &[1, 2, 3]);
            write_text(out, "abc");
            stringref(out, 3);
        });
        assert_eq!(read(&bytes), read_str(r#"["ab" "name" "name" :name :name #bytes [1 2 3] "abc" "abc"]"#).unwrap());
        // A nested namespace shadows the outer one, which is back after it.
        let bytes = bytes_of(|out| {
            write_tag(out, TAG_STRINGREF_NAMESPACE);
            write_head(out, 4, 3);
            write_text(out, "abcd");
            write_tag(out, TAG_STRINGREF_NAMESPACE);
            write_head(out, 4, 2);
            write_text(out, "wxyz");
            stringref(out, 0);
            stringref(out, 0);
        });
        assert_eq!(read(&bytes), read_str(r#"["abcd" ["wxyz" "wxyz"] "abcd"]"#).unwrap());
        // Indefinite-length strings take no index.
        let bytes = bytes_of(|out| {
            write_tag(out, TAG_STRINGREF_NAMESPACE);
            write_head(out, 4, 3);
            out.extend([0x7f, 0x64]);
            out.extend(b"abcd");
            out.push(0xff);
            write_text(out, "efgh");
            stringref(out, 0);
        });
        assert_eq!(read(&bytes), read_str(r#"["abcd" "efgh" "efgh"]"#).unwrap());
    }

    /// Found by the request_body fuzz target: tag 39 over "" read as a symbol without a name,
    /// which no other format can write (transit refuses `"~$"`, EDN prints nothing).
    #[test]
    fn a_keyword_or_symbol_needs_a_name() {
        let empty = bytes_of(|out| {
            write_tag(out, 39);
            write_text(out, "");
        });
        assert!(edn_from_cbor(&empty).unwrap_err().contains("tag 39 over an empty string"));
        assert_eq!(read(&bytes_of(|out| keyword(out, ":a"))), Edn::kw("a"));
    }

    #[test]
    fn bad_stringrefs_are_errors() {
        let outside = bytes_of(|out| stringref(out, 0));
        assert!(edn_from_cbor(&outside).unwrap_err().contains("outside any stringref namespace"));
        let missing = bytes_of(|out| {
            write_tag(out, TAG_STRINGREF_NAMESPACE);
            write_head(out, 4, 2);
            write_text(out, "abc");
            stringref(out, 1);
        });
        assert!(edn_from_cbor(&missing).unwrap_err().contains("not among the 1 strings"));
        let not_an_index = bytes_of(|out| {
            write_tag(out, TAG_STRINGREF_NAMESPACE);
            write_tag(out, TAG_STRINGREF);
            write_text(out, "x");
        });
        assert!(edn_from_cbor(&not_an_index).unwrap_err().contains("over a text string, not an index"));
    }

    /// A decompression bomb: one string of 64 KiB and 100,000 references to it (300 KB of
    /// input) decoded to 6.5 GB before the copies were bounded; a 16 MiB request body to the
    /// server could ask for terabytes.
    #[test]
    fn stringrefs_cannot_copy_without_bound() {
        let n_refs = 100_000;
        let bytes = bytes_of(|out| {
            write_tag(out, TAG_STRINGREF_NAMESPACE);
            write_head(out, 4, 1 + n_refs);
            write_text(out, &"x".repeat(64 << 10));
            for _ in 0..n_refs {
                stringref(out, 0);
            }
        });
        let err = decode(&bytes).unwrap_err().to_string();
        assert!(
            err.contains("stringrefs copy more than") && err.contains(&format!("{} bytes of input", bytes.len())),
            "{err}"
        );
        // Ordinary sharing stays well within the bound: 10,000 references to a 40-byte string.
        let bytes = bytes_of(|out| {
            write_tag(out, TAG_STRINGREF_NAMESPACE);
            write_head(out, 4, 10_001);
            write_text(out, &"y".repeat(40));
            for _ in 0..10_000 {
                stringref(out, 0);
            }
        });
        assert!(matches!(decode(&bytes), Ok(Cbor::Array(items)) if items.len() == 10_001));
    }

    #[test]
    fn reads_what_datahike_cbor_clients_send() {
        // `transact`'s arguments as boring writes them: a connection handle and tx data, in one
        // stringref namespace.
        let bytes = bytes_of(|out| {
            write_tag(out, TAG_STRINGREF_NAMESPACE);
            write_head(out, 4, 2);
            write_tag(out, 27);
            write_head(out, 4, 2);
            write_text(out, "datahike/Connection"); // 0
            write_head(out, 4, 2);
            write_head(out, 4, 2);
            keyword(out, ":mem"); // 1
            write_text(out, "test"); // 2
            keyword(out, ":db"); // 3
            write_head(out, 4, 2);
            write_head(out, 5, 1);
            keyword(out, ":name"); // 4
            write_text(out, "Alice"); // 5
            write_head(out, 5, 1);
            write_tag(out, 39);
            stringref(out, 4);
            write_text(out, "Bob"); // 6
        });
        assert_eq!(
            read(&bytes),
            read_str(r#"[#datahike/Connection [[:mem "test"] :db] [{:name "Alice"} {:name "Bob"}]]"#).unwrap()
        );
        // A datom, under the name Datahike's CBOR codec gives it.
        let datom = bytes_of(|out| {
            write_tag(out, 27);
            write_head(out, 4, 2);
            write_text(out, "datahike.datom/Datom");
            write_head(out, 4, 5);
            write_int(out, 1);
            keyword(out, ":name");
            write_text(out, "Alice");
            write_int(out, 536_870_913);
            out.push(0xf5);
        });
        assert_eq!(read(&datom), read_str(r#"#datahike/Datom [1 :name "Alice" 536870913 true]"#).unwrap());
        // A database handle.
        let db = bytes_of(|out| {
            write_tag(out, 27);
            write_head(out, 4, 2);
            write_text(out, "datahike/DB");
            write_head(out, 5, 1);
            keyword(out, ":max-tx");
            write_int(out, 536_870_913);
        });
        assert_eq!(read(&db), read_str("#datahike/DB {:max-tx 536870913}").unwrap());
    }

    #[test]
    fn reads_boring_markers_rationals_dates_and_shapes() {
        let object = |name: &str, write_argument: &dyn Fn(&mut Vec<u8>)| {
            bytes_of(|out| {
                write_tag(out, 27);
                write_head(out, 4, 2);
                write_text(out, name);
                write_argument(out);
            })
        };
        assert_eq!(read(&object("clojure/char", &|out| write_text(out, "a"))), Edn::Char('a'));
        let with_meta = object("clojure/with-meta", &|out| {
            write_head(out, 4, 2);
            write_head(out, 5, 1);
            keyword(out, ":line");
            write_int(out, 1);
            write_head(out, 4, 1);
            write_int(out, 7);
        });
        assert_eq!(read(&with_meta), read_str("[7]").unwrap());
        let sorted_set = object("clojure/sorted-set", &|out| {
            write_head(out, 4, 2);
            write_int(out, 1);
            write_int(out, 2);
        });
        assert_eq!(read(&sorted_set), read_str("#{1 2}").unwrap());
        let queue = object("clojure/queue", &|out| write_head(out, 4, 0));
        assert!(matches!(&read(&queue), Edn::List(items) if items.is_empty()));
        assert!(edn_from_cbor(&object("clojure/char", &|out| write_text(out, "ab")))
            .unwrap_err()
            .contains("one character"));
        let rational = |n: i64, d: i64| {
            bytes_of(|out| {
                write_tag(out, 30);
                write_head(out, 4, 2);
                write_int(out, n);
                write_int(out, d);
            })
        };
        assert_eq!(read(&rational(1, 3)), Edn::Float(1.0 / 3.0));
        assert_eq!(read(&rational(-4, 2)), Edn::Int(-2));
        assert!(edn_from_cbor(&rational(1, 0)).unwrap_err().contains("bad rational"));
        for (text, instant) in [
            ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05.000-00:00"),
            ("2024-01-02T03:04:05.006Z", "2024-01-02T03:04:05.006-00:00"),
            ("2024-01-02T03:04:05.006789123Z", "2024-01-02T03:04:05.006-00:00"),
        ] {
            let bytes = bytes_of(|out| {
                write_tag(out, 0);
                write_text(out, text);
            });
            assert_eq!(read(&bytes), read_str(&format!("#inst {instant:?}")).unwrap(), "{text}");
        }
        // [{:a nil :b 1} {:b 2} {:a 3}]: undefined and a short row mean absent, null is nil.
        let shaped = bytes_of(|out| {
            write_tag(out, SHAPED_ARRAY);
            write_head(out, 4, 2);
            write_head(out, 4, 2);
            keyword(out, ":a");
            keyword(out, ":b");
            write_head(out, 4, 3);
            write_head(out, 4, 2);
            out.push(0xf6);
            write_int(out, 1);
            write_head(out, 4, 2);
            out.push(0xf7);
            write_int(out, 2);
            write_head(out, 4, 1);
            write_int(out, 3);
        });
        assert_eq!(read(&shaped), read_str("[{:a nil :b 1} {:b 2} {:a 3}]").unwrap());
    }

    #[test]
    fn known_encodings() {
        assert_eq!(edn_to_cbor(&Edn::kw("a")), [0xd8, 39, 0x62, b':', b'a']);
        assert_eq!(edn_to_cbor(&Edn::Int(-1)), [0x20]);
        assert_eq!(edn_to_cbor(&Edn::Int(500)), [0x19, 0x01, 0xf4]);
        assert_eq!(edn_to_cbor(&read_str("#{}").unwrap()), [0xd9, 0x01, 0x02, 0x80]);
        assert_eq!(edn_from_cbor(&[0xf9, 0x3c, 0x00]).unwrap(), Edn::Float(1.0));
        assert_eq!(edn_from_cbor(&[0x9f, 0x01, 0xff]).unwrap(), read_str("[1]").unwrap());
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = edn_from_cbor(&bytes);
            // With a stringref namespace open, so that tags 25 have a table to look in.
            let _ = edn_from_cbor(&[&[0xd9, 0x01, 0x00][..], &bytes].concat());
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(decode(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode(&[0x01, 0x02]).is_err());
        assert!(decode(&[]).is_err());
        assert!(decode(&[0xff]).is_err());
        assert!(decode(&[0x7f, 0x61]).is_err());
    }

    #[test]
    fn items_round_trip_with_widths() {
        let item = Cbor::Array(vec![
            Cbor::Float32(1.5),
            Cbor::Float64(1.5),
            Cbor::Float16(0x3c00),
            Cbor::Bytes(vec![0, 255]),
            Cbor::Tag(85, Box::new(Cbor::Bytes(vec![0, 0, 0xc0, 0x3f]))),
            Cbor::Map(vec![(Cbor::text("b"), Cbor::Null), (Cbor::text("a"), Cbor::Undefined)]),
            Cbor::Simple(5),
            Cbor::int(i64::MIN),
        ]);
        let bytes = to_vec(&item);
        assert_eq!(decode(&bytes).unwrap(), item);
        let mut canonical = Vec::new();
        encode_canonical(
            &Cbor::Map(vec![(Cbor::text("b"), Cbor::Null), (Cbor::text("a"), Cbor::Null)]),
            &mut canonical,
        );
        assert_eq!(canonical, [0xa2, 0x61, b'a', 0xf6, 0x61, b'b', 0xf6]);
    }

    #[test]
    fn a_sequence_reads_item_by_item() {
        let mut bytes = Vec::new();
        write_int(&mut bytes, 1);
        write_text(&mut bytes, "x");
        let mut d = Decoder::new(&bytes);
        assert_eq!(d.next_item().unwrap().unwrap(), Cbor::Unsigned(1));
        assert_eq!(d.next_item().unwrap().unwrap(), Cbor::text("x"));
        assert!(d.next_item().is_none());
    }
}
