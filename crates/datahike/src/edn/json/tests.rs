//! Tests of plain and tagged JSON: literal examples in the shapes Datahike's server and
//! clients exchange, errors, and round trips over random values.

use super::*;
use crate::edn::tests::edn_value;
use crate::edn::{read_str, MAX_DEPTH};
use proptest::prelude::*;
use std::sync::Arc;

fn edn(text: &str) -> Edn {
    read_str(text).unwrap()
}

fn json_of(text: &str) -> String {
    to_json(&edn(text))
}

fn tagged_of(text: &str) -> String {
    to_tagged_json(&edn(text))
}

fn read_tagged(json: &str) -> Edn {
    from_tagged_json(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn tagged_error(json: &str) -> EdnError {
    from_tagged_json(json).expect_err(json)
}

#[test]
fn writes_like_jsonista() {
    assert_eq!(
        json_of(r#"{:name "A" :db/id 1 :tags #{:a/b} :x nil}"#),
        r#"{"name":"A","db/id":1,"tags":["a/b"],"x":null}"#
    );
    assert_eq!(json_of("{1 2.5 [1] (true)}"), r#"{"1":2.5,"[1]":[true]}"#);
    assert_eq!(json_of(r#"#inst "2024-01-02T03:04:05.006-00:00""#), r#""2024-01-02T03:04:05.006-00:00""#);
    assert_eq!(json_of(r#"#datahike/Datom [1 :name "x" 536870913 true]"#), r#"[1,"name","x",536870913,true]"#);
    assert_eq!(json_of(r#""a\"b\n""#), r#""a\"b\n""#);
    assert_eq!(json_of("##NaN"), "null");
    assert_eq!(json_of("12345678901234567890N"), "12345678901234567890");
    assert_eq!(json_of(r"[1.50M \c 1.0 1e300]"), r#"["1.50","c",1.0,1e+300]"#);
}

#[test]
fn reads_like_datahike_json() {
    let v = read_tagged(r#"[{"name": "A", "age": 3, "k": ["!kw", "db/id"], "s": ["!set", [1, 1, 2]]}, [1.5, null]]"#);
    assert_eq!(v, edn(r#"[{:name "A" :age 3 :k :db/id :s #{1 2}} [1.5 nil]]"#));
    let e = from_tagged_json("[1,\n 2").unwrap_err();
    assert_eq!((e.line(), e.column()), (2, 3), "{e}");
}

#[test]
fn writes_tagged_values_as_datahike_does() {
    for (value, json) in [
        (":db/id", r#"["!kw","db/id"]"#),
        (":name", r#"["!kw","name"]"#),
        ("?e", r#"["!sym","?e"]"#),
        ("#{:a}", r#"["!set",[["!kw","a"]]]"#),
        (r#"#uuid "550e8400-e29b-41d4-a716-446655440000""#, r#"["!uuid","550e8400-e29b-41d4-a716-446655440000"]"#),
        (r#"#inst "2024-01-01T00:00:00.001-00:00""#, r#"["!date","1704067200001"]"#),
        (r#"#inst "1969-12-31T23:59:59.999-00:00""#, r#"["!date","-1"]"#),
        ("(1 [2])", "[1,[2]]"),
        ("[nil true 1.5 -7 \"s\"]", r#"[null,true,1.5,-7,"s"]"#),
        ("99999999999999999999N", "99999999999999999999"),
        ("1.50M", "1.50"),
        ("\\c", r#""c""#),
        ("[##NaN ##Inf ##-Inf]", r#"["NaN","Infinity","-Infinity"]"#),
        ("#bytes [1 2 -1]", r#""AQL/""#),
        ("#my/tag {:a 1}", r#"["!my/tag",{"a":1}]"#),
        (r#"{"s" 1, 2 3, :k/w 4, sym 5}"#, r#"{"s":1,"2":3,"k/w":4,"sym":5}"#),
    ] {
        assert_eq!(tagged_of(value), json, "{value}");
    }
}

#[test]
fn writes_datoms_reports_and_db_handles_in_datahike_shapes() {
    assert_eq!(
        tagged_of(r#"#datahike/Datom [1 :name "Alice" 536870913 true]"#),
        r#"["!datahike/Datom",[1,["!kw","name"],"Alice",536870913,true]]"#
    );
    let db = r#"#datahike/DB {:store-id [[:mem "test"] :db] :commit-id #uuid "00000000-0000-0000-0000-000000000001" :max-eid 1 :max-tx 536870913}"#;
    let db_json = r#"["!datahike/DB",{"store-id":[[["!kw","mem"],"test"],["!kw","db"]],"commit-id":["!uuid","00000000-0000-0000-0000-000000000001"],"max-eid":1,"max-tx":536870913}]"#;
    assert_eq!(tagged_of(db), db_json);
    assert_eq!(read_tagged(db_json), edn(db));
    let report = format!(
        "#datahike/TxReport {{:db-before {db} :db-after {db} :tx-data [#datahike/Datom [1 :name \"Alice\" 536870913 true]] :tempids {{:db/current-tx 536870913}} :tx-meta nil}}"
    );
    let report_json = tagged_of(&report);
    assert!(
        report_json.starts_with(r#"["!datahike/TxReport",{"db-before":["!datahike/DB",{"store-id""#),
        "{report_json}"
    );
    assert!(report_json.contains(r#""tempids":{"db/current-tx":536870913}"#), "{report_json}");
    assert_eq!(read_tagged(&report_json), edn(&report));
    let as_of = format!("#datahike/AsOfDB {{:origin {db} :time-point 536870913}}");
    assert_eq!(read_tagged(&tagged_of(&as_of)), edn(&as_of));
}

#[test]
fn reads_what_datahike_clients_send() {
    // `transact` with a connection handle and tx data, as `request-json` writes `(vec args)`.
    let body = r#"[["!datahike/Connection",[[["!kw","mem"],"test"],["!kw","db"]]],
                   [{"name":"Alice","age":20,"db/id":-1},["!kw","db/add"]]]"#;
    assert_eq!(
        read_tagged(body),
        edn(r#"[#datahike/Connection [[:mem "test"] :db] [{:name "Alice" :age 20 :db/id -1} :db/add]]"#)
    );
    // A query as EDN text (the server reads a first string argument as EDN) with a db handle.
    let body = r#"["[:find ?e :where [?e :name]]",["!datahike/DB",{"store-id":[[["!kw","file"],"/tmp/x"],["!kw","db"]],"max-tx":536870913,"max-eid":1,"commit-id":null}]]"#;
    let value = read_tagged(body);
    assert_eq!(value.as_seq().unwrap()[0], Edn::str("[:find ?e :where [?e :name]]"));
    assert_eq!(
        value.as_seq().unwrap()[1],
        edn(r#"#datahike/DB {:store-id [[:file "/tmp/x"] :db] :max-tx 536870913 :max-eid 1 :commit-id nil}"#)
    );
    // Keys with a colon, symbols, dates as numbers, newer jsonista keyword arrays.
    assert_eq!(
        read_tagged(r#"{":a": ["!sym", "?x"], "b": ["!date", 5]}"#),
        edn(r#"{:a ?x :b #inst "1970-01-01T00:00:00.005-00:00"}"#)
    );
    assert_eq!(read_tagged(r#"[["!kw", ["db", "id"]], ["!kw", ["name"]], ["!kw", ":x"]]"#), edn("[:db/id :name :x]"));
    // Repeated keys: the last value wins, as in Jackson.
    assert_eq!(read_tagged(r#"{"a": 1, "b": 2, "a": 3}"#), edn("{:a 3 :b 2}"));
    // Arrays that only look tagged stay arrays.
    for json in [r#"["!foo", 1]"#, r#"["!kw", "a", "b"]"#, r#"["kw", "a"]"#, r#"["!/x", 1]"#, r#"["!1a/b", 1]"#] {
        assert!(matches!(read_tagged(json), Edn::Vector(_)), "{json}");
    }
    assert_eq!(read_tagged(r#"" !kw""#), Edn::str(" !kw"));
}

#[test]
fn malformed_tagged_values_are_errors_that_say_why() {
    for (json, line, column, needle) in [
        (r#"["!uuid", "nope"]"#, 1, 11, r#"!uuid "nope" is not a uuid"#),
        (r#"["!uuid", 1]"#, 1, 11, "!uuid expects a uuid string"),
        (r#"["!date", "12x"]"#, 1, 11, "not a whole number of epoch milliseconds"),
        (r#"["!date", 1.5]"#, 1, 11, "!date expects epoch milliseconds"),
        (r#"["!date", 99999999999999999999]"#, 1, 11, "out of range"),
        ("[\"!set\",\n {}]", 2, 2, "!set expects an array"),
        (r#"["!kw", 1]"#, 1, 9, "!kw expects a name as a string"),
        (r#"["!kw", ""]"#, 1, 9, "!kw with an empty name"),
        (r#"["!sym", [1]]"#, 1, 10, "!sym expects a name"),
        (r#"{"a": ["!set", [["!uuid", "x"]]]}"#, 1, 27, "is not a uuid"),
    ] {
        let e = tagged_error(json);
        assert!(e.message().starts_with("invalid tagged JSON: "), "{json}: {e}");
        assert!(e.message().contains(needle), "{json}: {e}");
        assert_eq!((e.line(), e.column()), (line, column), "{json}: {e}");
    }
    let e = tagged_error("{\"a\": tru}");
    assert!(e.message().starts_with("invalid JSON: expected a value"), "{e}");
    assert!(e.to_string().contains("1:7"), "{e}");
}

#[test]
fn nesting_is_bounded() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let value = from_tagged_json(&deep(MAX_DEPTH)).unwrap();
    assert!(matches!(value, Edn::Vector(_)));
    assert!(tagged_error(&deep(MAX_DEPTH + 1)).message().contains("nesting deeper than 1000"));
    assert!(tagged_error(&"[\"!set\",".repeat(MAX_DEPTH + 1)).message().contains("nesting deeper"));
}

/// What a value reads back as after tagged JSON, by the rules of the module docs.
fn after_tagged_json(value: &Edn) -> Edn {
    match value {
        Edn::BigInt(i) => i64::try_from(i.as_ref()).map_or_else(|_| value.clone(), Edn::Int),
        Edn::Float(x) if x.is_nan() => Edn::str("NaN"),
        Edn::Float(x) if x.is_infinite() => Edn::str(if *x > 0.0 { "Infinity" } else { "-Infinity" }),
        Edn::BigDec(_) => {
            let text = decimal_text(value);
            if text.contains(['.', 'e', 'E']) {
                Edn::Float(text.parse().unwrap())
            } else {
                after_tagged_json(&read_str(&format!("{text}N")).unwrap())
            }
        }
        Edn::Char(c) => Edn::Str(c.to_string().into()),
        Edn::List(items) | Edn::Vector(items) => Edn::Vector(items.iter().map(after_tagged_json).collect()),
        Edn::Set(items) => Edn::Set(distinct_items(items.iter().map(after_tagged_json).collect())),
        Edn::Map(entries) => Edn::Map(distinct_entries(
            entries.iter().map(|(k, v)| (Edn::kw(key_name(&key_text(k))), after_tagged_json(v))).collect(),
        )),
        Edn::Tagged(..) if wire::edn_bytes(value).is_some() => {
            Edn::str(&wire::base64_encode(&wire::edn_bytes(value).unwrap_or_default()))
        }
        Edn::Tagged(tag, inner) if is_namespaced_tag(tag.as_str()) => {
            Edn::Tagged(*tag, Box::new(after_tagged_json(inner)))
        }
        Edn::Tagged(tag, inner) => Edn::Vector(vec![Edn::str(&format!("!{tag}")), after_tagged_json(inner)]),
        _ => value.clone(),
    }
}

/// Whether a value holds an array that reads back as a tagged value although it is none: two
/// elements, the first a string `!tag` that the reader takes for a tag.
fn looks_tagged(value: &Edn) -> bool {
    match value {
        Edn::List(items) | Edn::Vector(items) => {
            let suspicious = match items.as_slice() {
                [Edn::Str(s), _] => s.starts_with('!'),
                _ => false,
            };
            suspicious || items.iter().any(looks_tagged)
        }
        Edn::Set(items) => items.iter().any(looks_tagged),
        Edn::Map(entries) => entries.iter().any(|(k, v)| looks_tagged(k) || looks_tagged(v)),
        Edn::Tagged(tag, inner) => {
            matches!(tag.as_str(), "kw" | "sym" | "uuid" | "date" | "set") || looks_tagged(inner)
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn tagged_json_round_trips(value in edn_value()) {
        prop_assume!(!looks_tagged(&value));
        let json = to_tagged_json(&value);
        let back = from_tagged_json(&json).map_err(|e| TestCaseError::fail(format!("{json}: {e}")))?;
        let expected = after_tagged_json(&value);
        prop_assert_eq!(&back, &expected, "written as {}", json);
        // What survives tagged JSON survives it exactly.
        let again = to_tagged_json(&expected);
        prop_assert_eq!(from_tagged_json(&again).map_err(|e| TestCaseError::fail(e.to_string()))?, expected);
    }

    #[test]
    fn plain_json_is_valid_json(value in edn_value()) {
        let json = to_json(&value);
        prop_assert!(wire::parse(&json).is_ok(), "{}", json);
    }

    #[test]
    fn reading_arbitrary_text_never_panics(text in "[\\[\\]{}\",:0-9a-z!/ .-]{0,60}") {
        let _ = from_tagged_json(&text);
    }
}

#[test]
fn big_integers_read_back_by_size() {
    assert_eq!(read_tagged("9223372036854775807"), Edn::Int(i64::MAX));
    assert_eq!(read_tagged("9223372036854775808"), Edn::BigInt(Arc::new(9_223_372_036_854_775_808u64.into())));
}
