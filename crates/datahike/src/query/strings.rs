//! String built-ins: the printing functions, regular expressions (`re-find`, `re-matches`,
//! `re-seq`, `re-pattern`) and the common `clojure.string` functions, with Clojure's
//! semantics on strings of `char`s.
//!
//! EDN has no regex literal and a datom value no pattern type, so a pattern is a string:
//! `re-pattern` checks that it compiles and returns it, and the `re-*` functions compile their
//! string argument (compiled patterns are cached). The syntax is the `regex` crate's, which
//! is Java's for the common cases but has no backreferences or lookaround.

use super::builtins::{arity, one, str_of, val, Arg, FnError, R};
use crate::value::Value;
use regex::Regex;
use std::sync::OnceLock;

// ------------------------------------------------------------------ printing

/// `print`'s text of a value: strings without quotes, inside tuples too.
fn print_of(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Tuple(xs) => {
            out.push('[');
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_of(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_edn().to_string()),
    }
}

/// `print`'s text of the arguments, separated by spaces.
fn print_text(args: &[Arg]) -> Result<String, FnError> {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        print_of(val(a)?, &mut out);
    }
    Ok(out)
}

pub(crate) fn print_str(args: &[Arg]) -> R {
    Ok(Value::String(print_text(args)?.into()))
}

pub(crate) fn println_str(args: &[Arg]) -> R {
    Ok(Value::String(format!("{}\n", print_text(args)?).into()))
}

pub(crate) fn prn_str(args: &[Arg]) -> R {
    let parts = args.iter().map(|a| val(a).map(|v| v.to_edn().to_string())).collect::<Result<Vec<_>, _>>()?;
    Ok(Value::String(format!("{}\n", parts.join(" ")).into()))
}

// ------------------------------------------------------------------ regular expressions

/// The compiled pattern of `text`, from the cache when it was compiled before.
fn pattern(text: &str, name: &str) -> Result<Regex, FnError> {
    static CACHE: OnceLock<quick_cache::sync::Cache<String, Regex>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| quick_cache::sync::Cache::new(512));
    if let Some(re) = cache.get(text) {
        return Ok(re);
    }
    let re =
        Regex::new(text).map_err(|e| FnError::Other(format!("{name}: invalid regular expression {text:?}: {e}")))?;
    cache.insert(text.to_string(), re.clone());
    Ok(re)
}

/// A string argument; nil is Java's NullPointerException (an error), another type a
/// ClassCastException (a false predicate).
fn string_arg<'a>(a: &'a Arg, name: &str) -> Result<&'a str, FnError> {
    match val(a)? {
        Value::String(s) => Ok(s),
        Value::Nil => Err(FnError::Other(format!("{name}: nil where a string is expected"))),
        other => Err(FnError::Type(format!("{name}: {} is not a string", other.to_edn()))),
    }
}

/// The pattern and the string of `(re-* re s)`.
fn regex_args(args: &[Arg], name: &str) -> Result<(Regex, String), FnError> {
    arity(args, 2, name)?;
    let re = pattern(string_arg(&args[0], name)?, name)?;
    Ok((re, string_arg(&args[1], name)?.to_string()))
}

/// A match as Clojure's `re-groups` gives it: the matched text, or with groups a tuple of the
/// match and each group (nil when a group did not take part).
fn groups(re: &Regex, caps: &regex::Captures) -> Value {
    let text = |m: Option<regex::Match>| m.map_or(Value::Nil, |m| Value::str(m.as_str()));
    if re.captures_len() == 1 {
        return text(caps.get(0));
    }
    Value::Tuple((0..re.captures_len()).map(|i| text(caps.get(i))).collect::<Vec<_>>().into())
}

pub(crate) fn re_find(args: &[Arg]) -> R {
    let (re, s) = regex_args(args, "re-find")?;
    Ok(re.captures(&s).map_or(Value::Nil, |caps| groups(&re, &caps)))
}

pub(crate) fn re_matches(args: &[Arg]) -> R {
    let (re, s) = regex_args(args, "re-matches")?;
    // The whole string must match: the first match from the start that ends at the end.
    let whole = pattern(&format!("^(?:{})$", re.as_str()), "re-matches")?;
    Ok(whole.captures(&s).map_or(Value::Nil, |caps| groups(&re, &caps)))
}

pub(crate) fn re_seq(args: &[Arg]) -> R {
    let (re, s) = regex_args(args, "re-seq")?;
    let found: Vec<Value> = re.captures_iter(&s).map(|caps| groups(&re, &caps)).collect();
    Ok(if found.is_empty() { Value::Nil } else { Value::Tuple(found.into()) })
}

pub(crate) fn re_pattern(args: &[Arg]) -> R {
    arity(args, 1, "re-pattern")?;
    let text = string_arg(&args[0], "re-pattern")?;
    pattern(text, "re-pattern")?;
    Ok(Value::str(text))
}

// ------------------------------------------------------------------ clojure.string

/// Java's `Character.isWhitespace`, which `clojure.string` uses: Unicode white space except
/// the no-break spaces, plus the information separators.
fn is_java_whitespace(c: char) -> bool {
    (c.is_whitespace() && !matches!(c, '\u{a0}' | '\u{2007}' | '\u{202f}')) || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn string_fn(args: &[Arg], name: &str, f: fn(&str) -> String) -> R {
    arity(args, 1, name)?;
    Ok(Value::String(f(string_arg(&args[0], name)?).into()))
}

fn string_pred(args: &[Arg], name: &str, f: fn(&str, &str) -> bool) -> R {
    arity(args, 2, name)?;
    Ok(Value::Boolean(f(string_arg(&args[0], name)?, string_arg(&args[1], name)?)))
}

fn starts_with(args: &[Arg]) -> R {
    string_pred(args, "clojure.string/starts-with?", |s, p| s.starts_with(p))
}
fn ends_with(args: &[Arg]) -> R {
    string_pred(args, "clojure.string/ends-with?", |s, p| s.ends_with(p))
}
fn includes(args: &[Arg]) -> R {
    string_pred(args, "clojure.string/includes?", |s, p| s.contains(p))
}
fn lower_case(args: &[Arg]) -> R {
    string_fn(args, "clojure.string/lower-case", str::to_lowercase)
}
fn upper_case(args: &[Arg]) -> R {
    string_fn(args, "clojure.string/upper-case", str::to_uppercase)
}
fn trim(args: &[Arg]) -> R {
    string_fn(args, "clojure.string/trim", |s| s.trim_matches(is_java_whitespace).to_string())
}
fn triml(args: &[Arg]) -> R {
    string_fn(args, "clojure.string/triml", |s| s.trim_start_matches(is_java_whitespace).to_string())
}
fn trimr(args: &[Arg]) -> R {
    string_fn(args, "clojure.string/trimr", |s| s.trim_end_matches(is_java_whitespace).to_string())
}
fn reverse(args: &[Arg]) -> R {
    string_fn(args, "clojure.string/reverse", |s| s.chars().rev().collect())
}
fn capitalize(args: &[Arg]) -> R {
    string_fn(args, "clojure.string/capitalize", |s| {
        let mut chars = s.chars();
        match chars.next() {
            Some(c) => c.to_uppercase().chain(chars.as_str().to_lowercase().chars()).collect(),
            None => String::new(),
        }
    })
}
fn blank(args: &[Arg]) -> R {
    let v = one(args, "clojure.string/blank?")?;
    if matches!(v, Value::Nil) {
        return Ok(Value::Boolean(true));
    }
    Ok(Value::Boolean(string_arg(&args[0], "clojure.string/blank?")?.chars().all(is_java_whitespace)))
}

/// `(index-of s value)` / `(index-of s value from)`, in characters; nil when absent.
fn find_index(args: &[Arg], name: &str, last: bool) -> R {
    let (s, needle, from) = match args {
        [s, n] => (string_arg(s, name)?, string_arg(n, name)?, None),
        [s, n, Arg::Val(Value::Long(from))] => (string_arg(s, name)?, string_arg(n, name)?, Some(*from)),
        [_, _, from] => return Err(FnError::Type(format!("{name}: index {} is not an integer", val(from)?.to_edn()))),
        _ => return Err(FnError::Other(format!("Wrong number of args ({}) passed to {name}", args.len()))),
    };
    let n_chars = s.chars().count() as i64;
    // Byte offset of a character index.
    let byte_at = |i: i64| s.char_indices().nth(i.clamp(0, n_chars) as usize).map_or(s.len(), |(b, _)| b);
    let char_index = |b: usize| Value::Long(s[..b].chars().count() as i64);
    Ok(if last {
        if from.is_some_and(|f| f < 0) {
            return Ok(Value::Nil);
        }
        // The last occurrence starting at or before `from`.
        let end = from.map_or(s.len(), |f| (byte_at(f) + needle.len()).min(s.len()));
        let end = (0..=end).rev().find(|e| s.is_char_boundary(*e)).unwrap_or(0);
        s[..end].rfind(needle).map_or(Value::Nil, char_index)
    } else {
        let start = from.map_or(0, byte_at);
        s[start..].find(needle).map_or(Value::Nil, |b| char_index(start + b))
    })
}
fn index_of(args: &[Arg]) -> R {
    find_index(args, "clojure.string/index-of", false)
}
fn last_index_of(args: &[Arg]) -> R {
    find_index(args, "clojure.string/last-index-of", true)
}

fn join(args: &[Arg]) -> R {
    let name = "clojure.string/join";
    let (sep, coll) = match args {
        [coll] => (String::new(), val(coll)?),
        [sep, coll] => (str_of(val(sep)?), val(coll)?),
        _ => return Err(FnError::Other(format!("Wrong number of args ({}) passed to {name}", args.len()))),
    };
    let parts: Vec<String> = match coll {
        Value::Nil => Vec::new(),
        Value::Tuple(xs) => xs.iter().map(str_of).collect(),
        Value::String(s) => s.chars().map(String::from).collect(),
        other => return Err(FnError::Type(format!("{name}: Don't know how to create ISeq from {}", other.to_edn()))),
    };
    Ok(Value::String(parts.join(&sep).into()))
}

/// `(split s re)` / `(split s re limit)`, as Java's `Pattern.split`: a positive limit caps the
/// number of parts, zero (the default) drops trailing empty parts, a negative one keeps them.
fn split(args: &[Arg]) -> R {
    let name = "clojure.string/split";
    let (s, re, limit) = match args {
        [s, re] => (string_arg(s, name)?, string_arg(re, name)?, 0),
        [s, re, Arg::Val(Value::Long(limit))] => (string_arg(s, name)?, string_arg(re, name)?, *limit),
        [_, _, limit] => {
            return Err(FnError::Type(format!("{name}: limit {} is not an integer", val(limit)?.to_edn())))
        }
        _ => return Err(FnError::Other(format!("Wrong number of args ({}) passed to {name}", args.len()))),
    };
    let re = pattern(re, name)?;
    let mut parts: Vec<&str> = Vec::new();
    let mut index = 0;
    for m in re.find_iter(s) {
        if limit > 0 && parts.len() as i64 >= limit - 1 {
            break;
        }
        // A zero-width match at the start makes no leading empty part.
        if index == 0 && m.start() == 0 && m.end() == 0 {
            continue;
        }
        parts.push(&s[index..m.start()]);
        index = m.end();
    }
    if index == 0 && parts.is_empty() {
        return Ok(Value::Tuple(vec![Value::str(s)].into()));
    }
    parts.push(&s[index..]);
    if limit == 0 {
        while parts.last() == Some(&"") {
            parts.pop();
        }
    }
    Ok(Value::Tuple(parts.into_iter().map(Value::str).collect::<Vec<_>>().into()))
}

/// The `clojure.string` function `name`.
pub(crate) fn lookup(name: &str) -> Option<super::builtins::BuiltinFn> {
    Some(match name {
        "starts-with?" => starts_with,
        "ends-with?" => ends_with,
        "includes?" => includes,
        "lower-case" => lower_case,
        "upper-case" => upper_case,
        "blank?" => blank,
        "trim" => trim,
        "triml" => triml,
        "trimr" => trimr,
        "capitalize" => capitalize,
        "reverse" => reverse,
        "index-of" => index_of,
        "last-index-of" => last_index_of,
        "join" => join,
        "split" => split,
        _ => return None,
    })
}
