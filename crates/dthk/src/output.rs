//! Printing a command's result in the format chosen with `-f`: `edn` (one line, Clojure's
//! `(println (pr-str result))`), `pprint` (multi-line EDN), `json` (one line) and `cbor` (raw
//! bytes, no newline).

use datahike::edn::json;
use datahike::edn::{pr_str, Edn};
use std::io::Write;

/// An output format of `-f/--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One line of EDN.
    Edn,
    /// One line of JSON.
    Json,
    /// Pretty-printed EDN.
    Pprint,
    /// CBOR bytes.
    Cbor,
}

impl Format {
    /// Every format, in the order help lists them.
    pub const ALL: [(&'static str, Format); 4] =
        [("edn", Format::Edn), ("json", Format::Json), ("pprint", Format::Pprint), ("cbor", Format::Cbor)];

    /// The format of a name, with or without a leading colon (`:json` as Clojure would read it).
    pub fn parse(text: &str) -> Option<Format> {
        let name = text.strip_prefix(':').unwrap_or(text);
        Format::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }
}

/// The bytes to print for a result.
pub fn render(format: Format, value: &Edn) -> Vec<u8> {
    match format {
        Format::Edn => format!("{}\n", pr_str(value)).into_bytes(),
        Format::Json => format!("{}\n", json::to_json(value)).into_bytes(),
        // `pretty` recurses and prints each level flat to measure it: a value as deep as a
        // recursive pull down a long chain prints on one line instead.
        Format::Pprint if value.nests_deeper_than(PRETTY_DEPTH_MAX) => format!("{}\n", pr_str(value)).into_bytes(),
        Format::Pprint => {
            let mut out = String::new();
            pretty(&mut out, value, 0);
            out.push('\n');
            out.into_bytes()
        }
        Format::Cbor => datahike::cbor::edn_to_cbor(value),
    }
}

/// Writes a result to standard output.
pub fn write(format: Format, value: &Edn) -> std::io::Result<()> {
    // The CBOR writer recurses once per level (EDN, pprint and JSON do not).
    if format == Format::Cbor && value.nests_deeper_than(Edn::WRITE_DEPTH_MAX) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the result nests more than {} levels deep, too deep for -f cbor; print it with -f edn or -f json",
                Edn::WRITE_DEPTH_MAX
            ),
        ));
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&render(format, value))?;
    stdout.flush()
}

/// The deepest value `pprint` lays out over lines.
const PRETTY_DEPTH_MAX: usize = 64;

/// The line width `pprint` fills, as Clojure's `*print-right-margin*`.
const WIDTH: usize = 72;

/// Prints `value` at column `indent`: on one line when it fits, otherwise one element (or map
/// entry) per line, aligned after the opening bracket as Clojure's `pprint` does.
fn pretty(out: &mut String, value: &Edn, indent: usize) {
    let flat = pr_str(value);
    if indent + flat.len() <= WIDTH {
        out.push_str(&flat);
        return;
    }
    let newline = |out: &mut String, column: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', column));
    };
    match value {
        Edn::List(items) | Edn::Vector(items) | Edn::Set(items) if !items.is_empty() => {
            let (open, close) = match value {
                Edn::List(_) => ("(", ")"),
                Edn::Vector(_) => ("[", "]"),
                _ => ("#{", "}"),
            };
            out.push_str(open);
            let column = indent + open.len();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    newline(out, column);
                }
                pretty(out, item, column);
            }
            out.push_str(close);
        }
        Edn::Map(entries) if !entries.is_empty() => {
            out.push('{');
            let column = indent + 1;
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    newline(out, column);
                }
                let key = pr_str(k);
                out.push_str(&key);
                let value_flat = pr_str(v);
                if column + key.len() + 1 + value_flat.len() <= WIDTH || !is_collection(v) {
                    out.push(' ');
                    pretty(out, v, column + key.len() + 1);
                } else {
                    newline(out, column + 1);
                    pretty(out, v, column + 1);
                }
            }
            out.push('}');
        }
        Edn::Tagged(tag, inner) => {
            let prefix = format!("#{tag} ");
            out.push_str(&prefix);
            pretty(out, inner, indent + prefix.len());
        }
        _ => out.push_str(&flat),
    }
}

fn is_collection(value: &Edn) -> bool {
    matches!(value, Edn::List(_) | Edn::Vector(_) | Edn::Set(_) | Edn::Map(_) | Edn::Tagged(..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datahike::edn::read_str;

    #[test]
    fn pretty_prints_long_values_over_lines_and_reads_back() {
        let text = r#"{:db-before #datahike/DB {:max-tx 536870912 :max-eid 0} :tx-data [#datahike/Datom [1 :name "Alice" 536870913 true] #datahike/Datom [1 :age 20 536870913 true]] :tempids {-1 2, :db/current-tx 536870913}}"#;
        let value = read_str(text).unwrap();
        let printed = String::from_utf8(render(Format::Pprint, &value)).unwrap();
        assert!(printed.lines().count() > 3, "{printed}");
        assert!(printed.lines().all(|l| l.len() <= WIDTH), "{printed}");
        assert_eq!(read_str(&printed).unwrap(), value);
        assert_eq!(render(Format::Pprint, &Edn::Int(1)), b"1\n");
    }

    #[test]
    fn formats_parse() {
        assert_eq!(Format::parse("json"), Some(Format::Json));
        assert_eq!(Format::parse(":cbor"), Some(Format::Cbor));
        assert_eq!(Format::parse("xml"), None);
    }
}
