//! CBOR (RFC 8949) output (`-f cbor`) and input (`cbor:FILE`), for any consumer of standard
//! output, like Datahike's `:interop` profile. Our mapping of EDN:
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
//! | datom, db summary | their value: `[e a v tx added]`, the summary map |
//! | other tagged literal | tag 27 `["tag" value]` (a generic serialised object) |
//!
//! The decoder reads this mapping back, and also tag 0 (RFC 3339 date text), tag 13 sets
//! (clj-cbor), byte strings (as a vector of longs), float16/float32 and indefinite lengths.

use datahike::edn::{read_str, Edn, Keyword, Symbol};
use num_bigint::{BigInt, Sign};
use std::sync::Arc;

/// How deeply arrays, maps and tags may nest, as for the EDN reader.
const MAX_DEPTH: usize = 1_000;

/// A value as CBOR bytes.
pub fn to_cbor(value: &Edn) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&mut out, value);
    out
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
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

fn text(out: &mut Vec<u8>, s: &str) {
    head(out, 3, s.len() as u64);
    out.extend(s.as_bytes());
}

fn float(out: &mut Vec<u8>, x: f64) {
    out.push(0xfb);
    out.extend(x.to_be_bytes());
}

fn int(out: &mut Vec<u8>, i: i64) {
    if i >= 0 {
        head(out, 0, i as u64);
    } else {
        // -1 - n, computed without overflow for i64::MIN.
        head(out, 1, !(i as u64));
    }
}

fn bigint(out: &mut Vec<u8>, i: &BigInt) {
    if let Ok(small) = i64::try_from(i) {
        return int(out, small);
    }
    let (tag, magnitude) = match i.sign() {
        Sign::Minus => (3, -i - 1u8),
        _ => (2, i.clone()),
    };
    if let Ok(u) = u64::try_from(&magnitude) {
        return head(out, if tag == 2 { 0 } else { 1 }, u);
    }
    head(out, 6, tag);
    let bytes = magnitude.to_bytes_be().1;
    head(out, 2, bytes.len() as u64);
    out.extend(bytes);
}

fn encode(out: &mut Vec<u8>, value: &Edn) {
    match value {
        Edn::Nil => out.push(0xf6),
        Edn::Bool(false) => out.push(0xf4),
        Edn::Bool(true) => out.push(0xf5),
        Edn::Int(i) => int(out, *i),
        Edn::BigInt(i) => bigint(out, i),
        Edn::Float(x) => float(out, *x),
        Edn::BigDec(d) => {
            let (mantissa, scale) = d.as_bigint_and_exponent();
            head(out, 6, 4);
            head(out, 4, 2);
            int(out, -scale);
            bigint(out, &mantissa);
        }
        Edn::Str(s) => text(out, s),
        Edn::Char(c) => text(out, c.encode_utf8(&mut [0; 4])),
        Edn::Keyword(k) => {
            head(out, 6, 39);
            text(out, &format!(":{}", k.as_str()));
        }
        Edn::Symbol(s) => {
            head(out, 6, 39);
            text(out, s.as_str());
        }
        Edn::List(items) | Edn::Vector(items) => {
            head(out, 4, items.len() as u64);
            items.iter().for_each(|x| encode(out, x));
        }
        Edn::Set(items) => {
            head(out, 6, 258);
            head(out, 4, items.len() as u64);
            items.iter().for_each(|x| encode(out, x));
        }
        Edn::Map(entries) => {
            head(out, 5, entries.len() as u64);
            for (k, v) in entries {
                encode(out, k);
                encode(out, v);
            }
        }
        Edn::Inst(ms) => {
            head(out, 6, 1);
            if ms % 1000 == 0 {
                int(out, ms / 1000);
            } else {
                float(out, *ms as f64 / 1000.0);
            }
        }
        Edn::Uuid(u) => {
            head(out, 6, 37);
            head(out, 2, 16);
            out.extend(u.as_bytes());
        }
        Edn::Tagged(tag, inner) if matches!(tag.as_str(), "datahike/Datom" | "datahike/DB") => encode(out, inner),
        Edn::Tagged(tag, inner) => {
            head(out, 6, 27);
            head(out, 4, 2);
            text(out, tag.as_str());
            encode(out, inner);
        }
    }
}

/// Reads one CBOR item; trailing bytes are an error.
pub fn from_cbor(bytes: &[u8]) -> Result<Edn, String> {
    let mut decoder = Decoder { bytes, pos: 0, depth: 0 };
    let value = decoder.item()?;
    if decoder.pos != bytes.len() {
        return Err(format!("{} bytes after the CBOR value at byte {}", bytes.len() - decoder.pos, decoder.pos));
    }
    Ok(value)
}

/// A marker for the `break` byte (0xff) that ends an indefinite-length item.
enum Item {
    Value(Edn),
    Break,
}

struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Decoder<'_> {
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("invalid CBOR at byte {}: {what}", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        match self.bytes.get(self.pos..self.pos.saturating_add(n)) {
            Some(slice) => {
                self.pos += n;
                Ok(slice)
            }
            None => self.err("unexpected end of input"),
        }
    }

    fn uint(&mut self, info: u8) -> Result<u64, String> {
        Ok(match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take(1)?[0]),
            25 => u64::from(u16::from_be_bytes(self.take(2)?.try_into().unwrap_or_default())),
            26 => u64::from(u32::from_be_bytes(self.take(4)?.try_into().unwrap_or_default())),
            27 => u64::from_be_bytes(self.take(8)?.try_into().unwrap_or_default()),
            _ => return self.err("reserved additional information"),
        })
    }

    fn item(&mut self) -> Result<Edn, String> {
        match self.item_or_break()? {
            Item::Value(v) => Ok(v),
            Item::Break => self.err("unexpected break"),
        }
    }

    fn length(&mut self, info: u8) -> Result<Option<usize>, String> {
        if info == 31 {
            return Ok(None);
        }
        let n = self.uint(info)?;
        // Every element takes at least one byte, so a longer count is a lie.
        match usize::try_from(n) {
            Ok(n) if n <= self.bytes.len() - self.pos => Ok(Some(n)),
            _ => self.err("length beyond the end of input"),
        }
    }

    fn items(&mut self, len: Option<usize>) -> Result<Vec<Edn>, String> {
        let mut items = Vec::new();
        match len {
            Some(n) => {
                for _ in 0..n {
                    items.push(self.item()?);
                }
            }
            None => {
                while let Item::Value(v) = self.item_or_break()? {
                    items.push(v);
                }
            }
        }
        Ok(items)
    }

    fn chunks(&mut self, major: u8, len: Option<usize>) -> Result<Vec<u8>, String> {
        match len {
            Some(n) => Ok(self.take(n)?.to_vec()),
            None => {
                let mut all = Vec::new();
                loop {
                    let b = self.take(1)?[0];
                    if b == 0xff {
                        return Ok(all);
                    }
                    if b >> 5 != major || b & 31 == 31 {
                        return self.err("bad chunk in an indefinite-length string");
                    }
                    let n = self.length(b & 31)?.unwrap_or(0);
                    all.extend(self.take(n)?);
                }
            }
        }
    }

    fn text(&mut self, len: Option<usize>) -> Result<String, String> {
        let bytes = self.chunks(3, len)?;
        String::from_utf8(bytes).or_else(|_| self.err("text string is not UTF-8"))
    }

    fn item_or_break(&mut self) -> Result<Item, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("nested too deeply");
        }
        let result = self.item_inner();
        self.depth -= 1;
        result
    }

    fn item_inner(&mut self) -> Result<Item, String> {
        let initial = self.take(1)?[0];
        let (major, info) = (initial >> 5, initial & 31);
        let value = match major {
            0 => {
                let n = self.uint(info)?;
                i64::try_from(n).map_or_else(|_| Edn::BigInt(Arc::new(n.into())), Edn::Int)
            }
            1 => {
                let n = self.uint(info)?;
                i64::try_from(n).map_or_else(|_| Edn::BigInt(Arc::new(-BigInt::from(n) - 1u8)), |n| Edn::Int(-1 - n))
            }
            2 => {
                let len = self.length(info)?;
                Edn::Vector(self.chunks(2, len)?.into_iter().map(|b| Edn::Int(i64::from(b))).collect())
            }
            3 => {
                let len = self.length(info)?;
                Edn::Str(self.text(len)?.into())
            }
            4 => {
                let len = self.length(info)?;
                Edn::Vector(self.items(len)?)
            }
            5 => {
                let len = self.length(info)?;
                let flat = self.items(len.map(|n| n * 2))?;
                if flat.len() % 2 != 0 {
                    return self.err("map with a key and no value");
                }
                let mut entries: Vec<(Edn, Edn)> = Vec::new();
                let mut it = flat.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    entries.retain(|(k2, _)| *k2 != k);
                    entries.push((k, v));
                }
                Edn::Map(entries)
            }
            6 => {
                let tag = self.uint(info)?;
                let inner = self.item()?;
                self.tagged(tag, inner)?
            }
            _ => match info {
                20 => Edn::Bool(false),
                21 => Edn::Bool(true),
                22 | 23 => Edn::Nil,
                25 => Edn::Float(f16_to_f64(u16::from_be_bytes(self.take(2)?.try_into().unwrap_or_default()))),
                26 => Edn::Float(f64::from(f32::from_be_bytes(self.take(4)?.try_into().unwrap_or_default()))),
                27 => Edn::Float(f64::from_be_bytes(self.take(8)?.try_into().unwrap_or_default())),
                31 => return Ok(Item::Break),
                _ => return self.err("unsupported simple value"),
            },
        };
        Ok(Item::Value(value))
    }

    fn tagged(&self, tag: u64, inner: Edn) -> Result<Edn, String> {
        Ok(match (tag, inner) {
            (39, Edn::Str(s)) => match s.strip_prefix(':') {
                Some(k) if !k.is_empty() => Edn::Keyword(Keyword::new(k)),
                _ => Edn::Symbol(Symbol::new(&s)),
            },
            (258 | 13, Edn::Vector(items)) => {
                let mut set: Vec<Edn> = Vec::new();
                for x in items {
                    if !set.contains(&x) {
                        set.push(x);
                    }
                }
                Edn::Set(set)
            }
            (37, Edn::Vector(bytes)) if bytes.len() == 16 => {
                let raw: Vec<u8> = bytes
                    .iter()
                    .filter_map(|b| if let Edn::Int(i) = b { u8::try_from(*i).ok() } else { None })
                    .collect();
                Edn::Uuid(uuid::Uuid::from_slice(&raw).or_else(|_| self.err("bad uuid"))?)
            }
            (37, Edn::Str(s)) => Edn::Uuid(uuid::Uuid::try_parse(&s).or_else(|_| self.err("bad uuid text"))?),
            (0, Edn::Str(s)) => {
                read_str(&format!("#inst {:?}", s.as_ref())).or_else(|e| self.err(&format!("bad date {s:?}: {e}")))?
            }
            (1, Edn::Int(secs)) => Edn::Inst(secs.saturating_mul(1000)),
            (1, Edn::Float(secs)) => Edn::Inst((secs * 1000.0).round() as i64),
            (2 | 3, Edn::Vector(bytes)) => {
                let raw: Vec<u8> = bytes
                    .iter()
                    .filter_map(|b| if let Edn::Int(i) = b { u8::try_from(*i).ok() } else { None })
                    .collect();
                let magnitude = BigInt::from_bytes_be(Sign::Plus, &raw);
                Edn::BigInt(Arc::new(if tag == 2 { magnitude } else { -magnitude - 1u8 }))
            }
            (4, Edn::Vector(parts)) if parts.len() == 2 => {
                let (exponent, mantissa) = (&parts[0], &parts[1]);
                let (Edn::Int(exponent), Edn::Int(_) | Edn::BigInt(_)) = (exponent, mantissa) else {
                    return self.err("bad decimal fraction");
                };
                let digits = datahike::edn::pr_str(mantissa);
                read_str(&format!("{}E{exponent}M", digits.trim_end_matches('N')))
                    .or_else(|e| self.err(&format!("bad decimal: {e}")))?
            }
            (27, Edn::Vector(parts)) if parts.len() == 2 && matches!(parts[0], Edn::Str(_)) => {
                let Edn::Str(name) = &parts[0] else {
                    return self.err("bad tag 27");
                };
                Edn::Tagged(Symbol::new(name), Box::new(parts[1].clone()))
            }
            (_, inner) => Edn::Tagged(Symbol::new(&format!("cbor/tag-{tag}")), Box::new(inner)),
        })
    }
}

fn f16_to_f64(bits: u16) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let text = r#"[nil true false 0 23 24 -1 -25 9223372036854775807 -9223372036854775808
            123456789012345678901234567890N -123456789012345678901234567890N 1.5 "héllo" :db/id :a
            sym {:a [1 2] "k" #{1 2}} #inst "2024-01-02T03:04:05.006-00:00" #inst "2024-01-02T03:04:05.000-00:00"
            #uuid "550e8400-e29b-41d4-a716-446655440000" 1.25M #my/tag [1]]"#;
        let value = read_str(text).unwrap();
        let bytes = to_cbor(&value);
        assert_eq!(from_cbor(&bytes).unwrap(), value);
    }

    #[test]
    fn known_encodings() {
        assert_eq!(to_cbor(&Edn::kw("a")), [0xd8, 39, 0x62, b':', b'a']);
        assert_eq!(to_cbor(&Edn::Int(-1)), [0x20]);
        assert_eq!(to_cbor(&Edn::Int(500)), [0x19, 0x01, 0xf4]);
        assert_eq!(to_cbor(&read_str("#{}").unwrap()), [0xd9, 0x01, 0x02, 0x80]);
        assert_eq!(from_cbor(&[0xf9, 0x3c, 0x00]).unwrap(), Edn::Float(1.0));
        assert_eq!(from_cbor(&[0x9f, 0x01, 0xff]).unwrap(), read_str("[1]").unwrap());
    }

    #[test]
    fn rejects_garbage() {
        assert!(from_cbor(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(from_cbor(&[0x01, 0x02]).is_err());
        assert!(from_cbor(&[]).is_err());
        assert!(from_cbor(&[0xff]).is_err());
    }
}
