//! The EDN printer: [`Edn`] values to text exactly as Clojure's `pr-str` prints them, so that
//! the reader reads every printed value back as an equal value (NaN aside, which equals
//! nothing). Printing does not recurse, so deeply nested values print without stack growth.
//!
//! Where we differ from a JVM: doubles print with the shortest digits that read back (as
//! Java 19 and later do), except that for subnormal doubles whose shortest form has one digit
//! Java prints a second digit (`4.9E-324` where we print `5.0E-324`); both read back alike.

use super::reader::civil_from_days;
use super::Edn;
use bigdecimal::BigDecimal;
use std::fmt::{self, Write};

/// Clojure's `pr-str` of a value.
pub fn pr_str(value: &Edn) -> String {
    let mut out = String::new();
    write_edn(&mut out, value).expect("writing to a String cannot fail");
    out
}

/// Writes a value as Clojure's `pr` does.
pub fn write_edn<W: Write + ?Sized>(out: &mut W, value: &Edn) -> fmt::Result {
    /// Work left to do, innermost last.
    enum Job<'a> {
        Value(&'a Edn),
        Text(&'static str),
    }
    let mut jobs = vec![Job::Value(value)];
    while let Some(job) = jobs.pop() {
        let value = match job {
            Job::Text(text) => {
                out.write_str(text)?;
                continue;
            }
            Job::Value(value) => value,
        };
        // Collections push their closer, then their elements in reverse with separators.
        match value {
            Edn::List(items) | Edn::Vector(items) | Edn::Set(items) => {
                let (open, close) = match value {
                    Edn::List(_) => ("(", ")"),
                    Edn::Vector(_) => ("[", "]"),
                    _ => ("#{", "}"),
                };
                out.write_str(open)?;
                jobs.push(Job::Text(close));
                for (i, item) in items.iter().enumerate().rev() {
                    jobs.push(Job::Value(item));
                    if i > 0 {
                        jobs.push(Job::Text(" "));
                    }
                }
            }
            Edn::Map(entries) => {
                out.write_str("{")?;
                jobs.push(Job::Text("}"));
                for (i, (key, val)) in entries.iter().enumerate().rev() {
                    jobs.push(Job::Value(val));
                    jobs.push(Job::Text(" "));
                    jobs.push(Job::Value(key));
                    if i > 0 {
                        jobs.push(Job::Text(", "));
                    }
                }
            }
            Edn::Tagged(tag, inner) => {
                write!(out, "#{tag} ")?;
                jobs.push(Job::Value(inner));
            }
            leaf => write_leaf(out, leaf)?,
        }
    }
    Ok(())
}

/// Writes a value that is not a collection nor tagged.
fn write_leaf<W: Write + ?Sized>(out: &mut W, value: &Edn) -> fmt::Result {
    match value {
        Edn::Nil => out.write_str("nil"),
        Edn::Bool(b) => write!(out, "{b}"),
        Edn::Str(s) => write_string(out, s),
        Edn::Char(c) => write_char(out, *c),
        Edn::Int(i) => write!(out, "{i}"),
        Edn::BigInt(i) => write!(out, "{i}N"),
        Edn::Float(x) => write_double(out, *x),
        Edn::BigDec(d) => {
            write_big_decimal(out, d)?;
            out.write_str("M")
        }
        Edn::Keyword(k) => write!(out, "{k}"),
        Edn::Symbol(s) => write!(out, "{s}"),
        Edn::Inst(millis) => write_inst(out, *millis),
        Edn::Uuid(u) => write!(out, "#uuid \"{}\"", u.hyphenated()),
        Edn::List(_) | Edn::Vector(_) | Edn::Map(_) | Edn::Set(_) | Edn::Tagged(..) => {
            unreachable!("collections and tagged values are printed by write_edn")
        }
    }
}

/// A string in quotes with Clojure's escapes; every other character is printed as is.
fn write_string<W: Write + ?Sized>(out: &mut W, text: &str) -> fmt::Result {
    out.write_char('"')?;
    let mut plain_from = 0;
    for (i, c) in text.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\t' => "\\t",
            '\r' => "\\r",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            _ => continue,
        };
        out.write_str(&text[plain_from..i])?;
        out.write_str(escape)?;
        plain_from = i + c.len_utf8();
    }
    out.write_str(&text[plain_from..])?;
    out.write_char('"')
}

/// A character as Clojure prints it: named for the six named ones, else `\` and itself.
fn write_char<W: Write + ?Sized>(out: &mut W, c: char) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\newline"),
        ' ' => out.write_str("\\space"),
        '\t' => out.write_str("\\tab"),
        '\r' => out.write_str("\\return"),
        '\u{8}' => out.write_str("\\backspace"),
        '\u{c}' => out.write_str("\\formfeed"),
        c => write!(out, "\\{c}"),
    }
}

/// A double as Java's `Double.toString` prints it, with Clojure's `##Inf`, `##-Inf`, `##NaN`:
/// plain decimal notation with at least one fraction digit for magnitudes in [10^-3, 10^7),
/// else `d.dddE±n`.
fn write_double<W: Write + ?Sized>(out: &mut W, x: f64) -> fmt::Result {
    if x.is_nan() {
        return out.write_str("##NaN");
    }
    if x.is_infinite() {
        return out.write_str(if x > 0.0 { "##Inf" } else { "##-Inf" });
    }
    if x.is_sign_negative() {
        out.write_char('-')?;
    }
    if x == 0.0 {
        return out.write_str("0.0");
    }
    // Rust's `{:e}` gives the shortest digits that read back: `d[.ddd]e[-]n`.
    let scientific = format!("{:e}", x.abs());
    let (mantissa, exponent) = scientific.split_once('e').expect("{:e} always has an exponent");
    let exponent: i32 = exponent.parse().expect("{:e} exponent is an integer");
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    if (-3..7).contains(&exponent) {
        if exponent < 0 {
            let zeros = usize::try_from(-exponent - 1).expect("exponent is negative");
            write!(out, "0.{}{digits}", "0".repeat(zeros))
        } else {
            let n_integer = usize::try_from(exponent + 1).expect("exponent is not negative");
            if digits.len() > n_integer {
                write!(out, "{}.{}", &digits[..n_integer], &digits[n_integer..])
            } else {
                write!(out, "{digits}{}.0", "0".repeat(n_integer - digits.len()))
            }
        }
    } else {
        let fraction = if digits.len() > 1 { &digits[1..] } else { "0" };
        write!(out, "{}.{fraction}E{exponent}", &digits[..1])
    }
}

/// A decimal as Java's `BigDecimal.toString` prints it: plain when the scale is not negative
/// and the adjusted exponent is at least -6, else scientific `d.dddE±n`.
fn write_big_decimal<W: Write + ?Sized>(out: &mut W, value: &BigDecimal) -> fmt::Result {
    let (unscaled, scale) = value.as_bigint_and_scale();
    let text = unscaled.to_string();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(digits) => ("-", digits),
        None => ("", text.as_str()),
    };
    out.write_str(sign)?;
    if scale == 0 {
        return out.write_str(digits);
    }
    let n_digits = i64::try_from(digits.len()).expect("digit count fits i64");
    let adjusted = n_digits - 1 - scale;
    if scale > 0 && adjusted >= -6 {
        if scale >= n_digits {
            let zeros = usize::try_from(scale - n_digits).expect("checked non-negative");
            write!(out, "0.{}{digits}", "0".repeat(zeros))
        } else {
            let n_integer = usize::try_from(n_digits - scale).expect("checked positive");
            write!(out, "{}.{}", &digits[..n_integer], &digits[n_integer..])
        }
    } else {
        out.write_str(&digits[..1])?;
        if digits.len() > 1 {
            write!(out, ".{}", &digits[1..])?;
        }
        match adjusted {
            0 => Ok(()),
            a if a > 0 => write!(out, "E+{a}"),
            a => write!(out, "E{a}"),
        }
    }
}

/// `#inst "yyyy-MM-ddThh:mm:ss.fff-00:00"` in UTC, as Clojure prints a `java.util.Date`.
/// Years outside 0000-9999 print with more digits or a sign, which the reader rejects.
fn write_inst<W: Write + ?Sized>(out: &mut W, millis: i64) -> fmt::Result {
    let days = millis.div_euclid(86_400_000);
    let millis_of_day = millis.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (millis_of_day / 3_600_000, millis_of_day / 60_000 % 60);
    let (second, milli) = (millis_of_day / 1000 % 60, millis_of_day % 1000);
    write!(out, "#inst \"{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}-00:00\"")
}

impl Edn {
    /// Clojure's `pr-str` of this value.
    pub fn to_edn_string(&self) -> String {
        pr_str(self)
    }
}

impl std::fmt::Display for Edn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_edn(f, self)
    }
}

/// [`pr_str`] cut to `max_chars` characters (then ending in `...`): a value as an error
/// message shows it.
pub fn pr_str_short(value: &Edn, max_chars: usize) -> String {
    let text = pr_str(value);
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}
