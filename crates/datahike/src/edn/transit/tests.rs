//! Tests of transit+json: the spec's encodings and cache, Datahike's tagged types, errors, and
//! round trips over random values, cached and verbose.

use super::*;
use crate::edn::tests::edn_value;
use crate::edn::MAX_DEPTH;
use proptest::prelude::*;

fn edn(text: &str) -> Edn {
    read_str(text).unwrap()
}

fn write(text: &str) -> String {
    to_transit_json(&edn(text))
}

fn read(transit: &str) -> Edn {
    from_transit_json(transit).unwrap_or_else(|e| panic!("{transit}: {e}"))
}

fn read_error(transit: &str) -> EdnError {
    from_transit_json(transit).expect_err(transit)
}

#[test]
fn writes_scalars_quoted_and_escaped() {
    for (value, transit) in [
        ("nil", r#"["~#'",null]"#),
        ("true", r#"["~#'",true]"#),
        ("1", r#"["~#'",1]"#),
        ("-9007199254740991", r#"["~#'",-9007199254740991]"#),
        ("9007199254740992", r#"["~#'","~i9007199254740992"]"#),
        ("1N", r#"["~#'","~n1"]"#),
        ("1.5", r#"["~#'",1.5]"#),
        ("1.0", r#"["~#'",1.0]"#),
        ("##NaN", r#"["~#'","~zNaN"]"#),
        ("##-Inf", r#"["~#'","~z-INF"]"#),
        ("1.50M", r#"["~#'","~f1.50"]"#),
        ("\"foo\"", r#"["~#'","foo"]"#),
        ("\"~foo\"", r#"["~#'","~~foo"]"#),
        ("\"^foo\"", r#"["~#'","~^foo"]"#),
        ("\"`foo\"", r#"["~#'","~`foo"]"#),
        ("\\x", r#"["~#'","~cx"]"#),
        (":db/id", r#"["~#'","~:db/id"]"#),
        ("?e", r#"["~#'","~$?e"]"#),
        (r#"#uuid "531a379e-31bb-4ce1-8690-158dceb64be6""#, r#"["~#'","~u531a379e-31bb-4ce1-8690-158dceb64be6"]"#),
        (r#"#inst "2014-01-01T00:00:00.000-00:00""#, r#"["~#'","~m1388534400000"]"#),
        ("#bytes [97 98 99]", r#"["~#'","~bYWJj"]"#),
    ] {
        assert_eq!(write(value), transit, "{value}");
        // NaN equals nothing, itself included: compare what it prints as.
        assert_eq!(pr_str(&read(transit)), pr_str(&edn(value)), "{transit}");
    }
}

#[test]
fn writes_collections() {
    for (value, transit) in [
        ("[]", "[]"),
        ("[1 [2]]", "[1,[2]]"),
        ("(1 2)", r#"["~#list",[1,2]]"#),
        ("#{}", r#"["~#set",[]]"#),
        ("{}", r#"["^ "]"#),
        (
            r#"{:a 1 "b" 2 3 4 nil 5 true 6 2.5 7 \c 8}"#,
            r#"["^ ","~:a",1,"b",2,"~i3",4,"~_",5,"~?t",6,"~d2.5",7,"~cc",8]"#,
        ),
        ("{[1] 2 {} 3}", r#"["~#cmap",[[1],2,["^ "],3]]"#),
        ("#my/tag 1", r#"["~#my/tag",1]"#),
    ] {
        assert_eq!(write(value), transit, "{value}");
        assert_eq!(read(transit), edn(value), "{transit}");
    }
}

#[test]
fn the_cache_holds_keys_keywords_symbols_and_tags_of_four_or_more() {
    let value = edn(r#"[{:aaaa 1 "name" 2 :a 3} {:aaaa 4 "name" 5 :a 6} :aaaa "name" ?sym ?sym #{1} #{2}]"#);
    let transit = to_transit_json(&value);
    assert_eq!(
        transit,
        r#"[["^ ","~:aaaa",1,"name",2,"~:a",3],["^ ","^0",4,"^1",5,"~:a",6],"^0","name","~$?sym","^2",["~#set",[1]],["^3",[2]]]"#
    );
    assert_eq!(read(&transit), value);
    // Lengths count UTF-16 units, as Java strings do.
    assert!(!is_cacheable("abé", true));
    assert!(is_cacheable("ab😀", true));
    assert!(!is_cacheable("😀", true));
    assert!(is_cacheable("~:ab", false) && !is_cacheable("~:a", false) && !is_cacheable("abcd", false));
    assert_eq!(
        [cache_code(0), cache_code(43), cache_code(44), cache_code(1935)],
        ["^0", "^[", "^10", "^[["].map(String::from)
    );
    for i in [0, 43, 44, 100, 1935] {
        assert_eq!(cache_index(&cache_code(i)), Some(i));
    }
}

#[test]
fn the_cache_starts_afresh_when_full_on_both_sides() {
    let keywords: Vec<Edn> = (0..MAX_CACHE_ENTRIES).map(|i| Edn::kw(&format!("kw-{i}"))).collect();
    let mut items = keywords.clone();
    items.extend(keywords.iter().cloned());
    items.extend([Edn::kw("kw-new"), Edn::kw("kw-0"), Edn::kw("kw-0")]);
    let value = Edn::Vector(items);
    let transit = to_transit_json(&value);
    // The second pass is all codes, up to the last one; a new keyword then fills the cache
    // past its end, so it starts afresh and `kw-0` is written out again.
    assert!(transit.contains(r#""^[[","~:kw-new","~:kw-0","^1"]"#), "{}", &transit[transit.len() - 80..]);
    assert_eq!(read(&transit), value);
}

#[test]
fn reads_what_transit_clj_writes_for_datahike() {
    // Two datoms: the tag and the attribute are cached after their first use.
    let datoms = r#"[["~#datahike/Datom",[1,"~:name","Alice",536870913,true]],["^0",[2,"^1","Bob",536870913,false]]]"#;
    let value =
        edn(r#"[#datahike/Datom [1 :name "Alice" 536870913 true] #datahike/Datom [2 :name "Bob" 536870913 false]]"#);
    assert_eq!(read(datoms), value);
    assert_eq!(to_transit_json(&value), datoms);
    // A transaction report with database handles.
    let report = r#"["~#datahike/TxReport",["^ ","~:db-before",["~#datahike/DB",["^ ","~:store-id",[["~:mem","test"],"~:db"],"~:commit-id","~u00000000-0000-0000-0000-000000000001","~:max-eid",0,"~:max-tx",536870912]],"~:db-after",["^2",["^ ","^3",[["^4","test"],"^5"],"^6","~u00000000-0000-0000-0000-000000000002","^7",1,"^8",536870913]],"~:tx-data",[["~#datahike/Datom",[1,"~:name","Alice",536870913,true]]],"~:tempids",["^ ","~i-1",1,"~:db/current-tx",536870913],"~:tx-meta",null]]"#;
    let expected = edn(
        r#"#datahike/TxReport {:db-before #datahike/DB {:store-id [[:mem "test"] :db] :commit-id #uuid "00000000-0000-0000-0000-000000000001" :max-eid 0 :max-tx 536870912}
           :db-after #datahike/DB {:store-id [[:mem "test"] :db] :commit-id #uuid "00000000-0000-0000-0000-000000000002" :max-eid 1 :max-tx 536870913}
           :tx-data [#datahike/Datom [1 :name "Alice" 536870913 true]]
           :tempids {-1 1 :db/current-tx 536870913}
           :tx-meta nil}"#,
    );
    assert_eq!(read(report), expected);
    assert_eq!(to_transit_json(&expected), report);
    // A request: the arguments of `q`, a query with a list in it and a database handle.
    let request = r#"[["~:find",["~#list",["~$pull","~$?e",["~$*"]]],"~:where",["~$?e","~:name"]],["~#datahike/AsOfDB",["^ ","~:origin",["~#datahike/DB",["^ ","~:store-id",[["~:file","/tmp/db"],"~:db"],"~:max-tx",536870913,"~:max-eid",1,"~:commit-id",null]],"~:time-point",536870913]]]"#;
    assert_eq!(
        read(request),
        edn(
            r#"[[:find (pull ?e [*]) :where [?e :name]] #datahike/AsOfDB {:origin #datahike/DB {:store-id [[:file "/tmp/db"] :db] :max-tx 536870913 :max-eid 1 :commit-id nil} :time-point 536870913}]"#
        )
    );
}

#[test]
fn reads_verbose_transit() {
    assert_eq!(read(r#"{"~#'":1}"#), Edn::Int(1));
    assert_eq!(
        read(r#"{"~:a":{"~#set":[1]},"~i1":{"~#list":[]},"b":"~t2014-01-01T00:00:00.000Z"}"#),
        edn(r#"{:a #{1} 1 () "b" #inst "2014-01-01T00:00:00.000-00:00"}"#)
    );
    assert_eq!(read(r#"{"~#cmap":[[1],2]}"#), edn("{[1] 2}"));
    assert_eq!(read(r#"{"~#datahike/Datom":[1,"~:a",2,3,true]}"#), edn("#datahike/Datom [1 :a 2 3 true]"));
    let value = edn(r#"{:a [1 #{:b}] "k" (2) :t #inst "2024-05-06T07:08:09.010-00:00" [1] 2}"#);
    let verbose = to_transit_json_verbose(&value);
    assert_eq!(
        verbose,
        r#"{"~#cmap":["~:a",[1,{"~#set":["~:b"]}],"k",{"~#list":[2]},"~:t","~t2024-05-06T07:08:09.010Z",[1],2]}"#
    );
    assert_eq!(read(&verbose), value);
    assert_eq!(to_transit_json_verbose(&edn("{:a 1}")), r#"{"~:a":1}"#);
    assert_eq!(to_transit_json_verbose(&edn("1")), r#"{"~#'":1}"#);
}

#[test]
fn reads_other_writers_forms() {
    assert_eq!(read(r#"["~#u",[-1,1]]"#), edn(r#"#uuid "ffffffff-ffff-ffff-0000-000000000001""#));
    assert_eq!(read(r#"["~#ratio",["~n1","~n3"]]"#), Edn::Float(1.0 / 3.0));
    assert_eq!(read(r#"["~#ratio",["~n4","~n2"]]"#), Edn::Int(2));
    assert_eq!(read(r#"["~rhttp://example.com/"]"#), edn(r#"["http://example.com/"]"#));
    assert_eq!(read(r#"["~xabc"]"#), Edn::Vector(vec![Edn::Tagged(Symbol::new("x"), Box::new(Edn::str("abc")))]));
    assert_eq!(
        read(r#"["~i123456789012345678901234567890","~d1e3","~zINF","~?f","~_"]"#),
        edn("[123456789012345678901234567890N 1000.0 ##Inf false nil]")
    );
    assert_eq!(read(r#"[1,"^ "]"#), edn(r#"[1 "^ "]"#));
    assert_eq!(read(r#"["^ ","~:a",1,"~:a",2]"#), edn("{:a 2}"));
    assert_eq!(read(r#"["~#set",[1,1,2]]"#), edn("#{1 2}"));
    assert_eq!(read("1"), Edn::Int(1));
}

#[test]
fn malformed_transit_is_an_error_that_says_why() {
    for (transit, column, needle) in [
        (r#"["^ ","~:a"]"#, 7, "has a key without a value"),
        (r#"["~#set",1,2]"#, 2, "has 2 values after its tag, not one"),
        (r#"["~#set",1]"#, 10, "~#set expects an array"),
        (r#"["~#cmap",[1]]"#, 11, "keys and values, alternating"),
        (r#"["~#u",1]"#, 8, "~#u expects a uuid string"),
        (r#"["~#ratio",[1,0]]"#, 12, "non-zero denominator"),
        (r#"[1,"~#set"]"#, 4, "the tag ~#set stands where a value belongs"),
        (r#"["^0"]"#, 2, "cache code ^0 refers to entry 0, but only 0 are cached so far"),
        (r#"["^{"]"#, 2, "is not a cache code"),
        (r#"["^"]"#, 2, "is not a cache code"),
        (r#"["~#"]"#, 2, "the tag is empty"),
        (r#"["~i12a"]"#, 2, "\"~i12a\" is not an integer"),
        (r#"["~i0x10"]"#, 2, "is not an integer"),
        (r#"["~n1.5"]"#, 2, "is not a big integer"),
        (r#"["~fabc"]"#, 2, "is not a big decimal"),
        (r#"["~d"]"#, 2, "is not a double"),
        (r#"["~?x"]"#, 2, "is not a boolean"),
        (r#"["~zNAN"]"#, 2, "is not a special number"),
        (r#"["~:"]"#, 2, "the name is empty"),
        (r#"["~$"]"#, 2, "the name is empty"),
        (r#"["~unope"]"#, 2, "is not a uuid"),
        (r#"["~mabc"]"#, 2, "is not an instant in epoch milliseconds"),
        (r#"["~t2014-13-01T00:00:00Z"]"#, 2, "is not an instant in ISO 8601"),
        (r#"["~t\" x"]"#, 2, "is not an instant in ISO 8601"),
        (r#"["~cab"]"#, 2, "is not a character"),
        (r#"["~b!!"]"#, 2, "is not base64 bytes"),
        (r#"{"~#set":[1],"a":1}"#, 2, "a verbose tagged value has one"),
        (r#"{"a":1,"~#set":[1]}"#, 8, "a verbose tagged value has one"),
    ] {
        let e = read_error(transit);
        assert!(e.message().starts_with("invalid transit: "), "{transit}: {e}");
        assert!(e.message().contains(needle), "{transit}: {e}");
        assert_eq!((e.line(), e.column()), (1, column), "{transit}: {e}");
    }
    assert!(read_error("[1,").message().starts_with("invalid JSON: "));
    let deep = format!("{}1{}", r#"["~#list","#.repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    assert!(read_error(&deep).message().contains("nesting deeper than 1000"));
    let ok = format!("{}1{}", r#"["~#list",["#.repeat(MAX_DEPTH / 2 - 1), "]]".repeat(MAX_DEPTH / 2 - 1));
    assert!(matches!(read(&ok), Edn::List(_)));
}

/// Whether a value holds a tagged value whose tag transit reads as its own.
fn uses_transit_tag(value: &Edn) -> bool {
    match value {
        Edn::List(items) | Edn::Vector(items) | Edn::Set(items) => items.iter().any(uses_transit_tag),
        Edn::Map(entries) => entries.iter().any(|(k, v)| uses_transit_tag(k) || uses_transit_tag(v)),
        Edn::Tagged(tag, inner) => {
            matches!(tag.as_str(), "'" | "set" | "list" | "cmap" | "u" | "ratio") || uses_transit_tag(inner)
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn transit_round_trips(value in edn_value()) {
        prop_assume!(!uses_transit_tag(&value));
        for (text, verbose) in [(to_transit_json(&value), false), (to_transit_json_verbose(&value), true)] {
            let back = from_transit_json(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(&back, &value, "verbose: {}, written as {}", verbose, text);
        }
    }

    #[test]
    fn reading_arbitrary_text_never_panics(text in "[\\[\\]{}\",:0-9a-z~^#'_ .-]{0,60}") {
        let _ = from_transit_json(&text);
    }
}
