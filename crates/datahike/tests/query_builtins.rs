//! Built-in functions of `:where` clauses beyond arithmetic and comparison: random numbers,
//! identity and type functions, collections, printing, regular expressions, `clojure.string`,
//! nested queries, and their errors, on a memory database.

mod common;

use common::{edn, transact, write_db};
use datahike::{q, Conn, Edn, QueryInput};

fn db() -> Conn {
    let conn = write_db(
        r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
            {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}]"#,
    );
    transact(
        &conn,
        r#"[{:db/id 1 :name "Ivan" :age 30} {:db/id 2 :name "Petr" :age 15} {:db/id 3 :name "Oleg" :age 40}]"#,
    );
    conn
}

fn query(conn: &Conn, query: &str, extra: &[&str]) -> datahike::Result<Edn> {
    let mut inputs = vec![QueryInput::Db(conn.db())];
    inputs.extend(extra.iter().map(|x| QueryInput::Edn(edn(x))));
    q(&edn(query), &inputs)
}

/// The value `[(expr) ?x]` binds, or nil when it binds nothing.
fn call(conn: &Conn, expr: &str) -> Edn {
    let text = format!("[:find ?x . :where [{expr} ?x]]");
    query(conn, &text, &[]).unwrap_or_else(|e| panic!("{text} failed: {e}"))
}

/// Checks that `expr` binds the value `expected` (EDN text).
fn check(conn: &Conn, expr: &str, expected: &str) {
    assert_eq!(call(conn, expr), edn(expected), "{expr}");
}

/// Whether `[(expr)]` holds as a predicate.
fn holds(conn: &Conn, expr: &str) -> bool {
    let text = format!("[:find ?t . :where [(ground true) ?t] [{expr}]]");
    match query(conn, &text, &[]).unwrap_or_else(|e| panic!("{text} failed: {e}")) {
        Edn::Bool(true) => true,
        Edn::Nil => false,
        other => panic!("{text} gave {other}"),
    }
}

/// The error of binding `expr`: its code and message. The message must name the function.
fn fails(conn: &Conn, expr: &str, function: &str) -> (&'static str, String) {
    let text = format!("[:find ?x . :where [{expr} ?x]]");
    match query(conn, &text, &[]) {
        Ok(r) => panic!("{text} should fail, gave {r}"),
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains(function), "{message} does not name {function}");
            (e.code(), message)
        }
    }
}

fn fails_eval(conn: &Conn, expr: &str, function: &str) -> String {
    let (code, message) = fails(conn, expr, function);
    assert_eq!(code, "query/eval", "{expr}: {message}");
    message
}

#[test]
fn random_numbers() {
    let c = db();
    for _ in 0..20 {
        let Edn::Float(x) = call(&c, "(rand)") else { panic!() };
        assert!((0.0..1.0).contains(&x), "{x}");
        let Edn::Float(x) = call(&c, "(rand 10)") else { panic!() };
        assert!((0.0..10.0).contains(&x), "{x}");
        let Edn::Int(n) = call(&c, "(rand-int 5)") else { panic!() };
        assert!((0..5).contains(&n), "{n}");
    }
    // Each row draws its own number.
    let distinct = query(
        &c,
        "[:find (count-distinct ?r) . :in $ [?i ...] :where [(rand-int 1000000) ?r]]",
        &["[1 2 3 4 5 6 7 8]"],
    )
    .unwrap();
    assert!(matches!(distinct, Edn::Int(n) if n > 1), "{distinct}");
    fails_eval(&c, "(rand 1 2)", "rand");
    fails_eval(&c, "(rand-int)", "rand-int");
    fails_eval(&c, "(rand-int \"5\")", "rand-int");
}

#[test]
fn identity_meta_and_type() {
    let c = db();
    // A value from the database is identical to itself; small longs and keywords are interned.
    let same = query(&c, "[:find ?n :where [?e :name ?n] [(identical? ?n ?n)]]", &[]).unwrap();
    assert_eq!(same.as_seq().unwrap().len(), 3);
    assert!(holds(&c, "(identical? :a :a)"));
    assert!(holds(&c, "(identical? 7 7)"));
    assert!(!holds(&c, "(identical? 1000 1000)"));
    assert!(!holds(&c, "(identical? 1.5 1.5)"));
    assert!(!holds(&c, "(identical? :a :b)"));
    fails_eval(&c, "(identical? 1)", "identical?");

    assert_eq!(call(&c, "(meta [1 2])"), Edn::Nil);
    assert!(!holds(&c, "(meta \"x\")"));
    fails_eval(&c, "(meta)", "meta");

    check(&c, "(type 1)", "java.lang.Long");
    check(&c, "(type 1.5)", "java.lang.Double");
    check(&c, "(type \"a\")", "java.lang.String");
    check(&c, "(type :a)", "clojure.lang.Keyword");
    check(&c, "(type [1])", "clojure.lang.PersistentVector");
    check(&c, "(type #inst \"2020-01-01\")", "java.util.Date");
    check(&c, "(type 1N)", "clojure.lang.BigInt");
    assert_eq!(call(&c, "(type nil)"), Edn::Nil);
    let types = query(&c, "[:find ?t :where [?e :age ?a] [(type ?a) ?t]]", &[]).unwrap();
    assert_eq!(types, edn("#{[java.lang.Long]}"));
    fails_eval(&c, "(type 1 2)", "type");
}

#[test]
fn collections() {
    let c = db();
    assert_eq!(call(&c, "(not-empty \"\")"), Edn::Nil);
    check(&c, "(not-empty \"ab\")", "\"ab\"");
    assert_eq!(call(&c, "(not-empty [])"), Edn::Nil);
    check(&c, "(not-empty [1])", "[1]");
    assert!(!holds(&c, "(not-empty 5)"));
    let m = fails_eval(&c, "(not-empty 5)", "not-empty");
    assert!(m.contains("Don't know how to create ISeq from: java.lang.Long"), "{m}");

    // Datahike binds `empty?` to `clojure.core/empty`: true for any vector, false otherwise.
    check(&c, "(empty? [1 2])", "[]");
    assert!(holds(&c, "(empty? [1 2])"));
    assert!(!holds(&c, "(empty? \"\")"));
    assert!(!holds(&c, "(empty? 1)"));
    // The qualified symbol is the real `empty?`.
    assert!(holds(&c, "(clojure.core/empty? \"\")"));
    assert!(holds(&c, "(clojure.core/empty? [])"));
    assert!(!holds(&c, "(clojure.core/empty? [1])"));
    fails_eval(&c, "(clojure.core/empty? 3)", "empty?");
    fails_eval(&c, "(empty? 1 2)", "empty?");

    assert!(holds(&c, "(contains? [1 2] 1)"));
    assert!(!holds(&c, "(contains? [1 2] 2)"));
    assert!(!holds(&c, "(contains? [1 2] :a)"));
    assert!(holds(&c, "(contains? \"abc\" 0)"));
    assert!(!holds(&c, "(contains? nil 0)"));
    assert!(!holds(&c, "(contains? 5 0)"));
    let m = fails_eval(&c, "(contains? 5 0)", "contains?");
    assert!(m.contains("contains? not supported on type: java.lang.Long"), "{m}");
    fails_eval(&c, "(contains? [1])", "contains?");

    check(&c, "(first [1 2 3])", "1");
    check(&c, "(second [1 2 3])", "2");
    check(&c, "(last [1 2 3])", "3");
    assert_eq!(call(&c, "(first [])"), Edn::Nil);
    check(&c, "(nth [1 2 3] 2)", "3");
    check(&c, "(nth [1 2 3] 5 :none)", ":none");
    check(&c, "(get [1 2 3] 0)", "1");
    check(&c, "(get [1 2 3] 9 :none)", ":none");
    check(&c, "(get 5 0 :none)", ":none");
    fails_eval(&c, "(nth [1 2 3] 5)", "nth");
    fails_eval(&c, "(nth [1 2 3] :a)", "nth");
    fails_eval(&c, "(first \"abc\")", "first");
    fails_eval(&c, "(get [1])", "get");
}

#[test]
fn type_predicates_and_abs() {
    let c = db();
    for (pred, yes, no) in [
        ("string?", "\"a\"", ":a"),
        ("keyword?", ":a", "\"a\""),
        ("symbol?", "my-sym", "1"),
        ("number?", "1.5M", "\"1\""),
        ("int?", "1", "1N"),
        ("integer?", "1N", "1.0"),
        ("double?", "1.0", "1"),
        ("float?", "1.0", "1"),
        ("boolean?", "false", "nil"),
        ("uuid?", "#uuid \"00000000-0000-0000-0000-000000000001\"", "\"u\""),
        ("inst?", "#inst \"2020-01-01\"", "1"),
        ("vector?", "[1]", "\"[1]\""),
        ("coll?", "[]", "1"),
    ] {
        assert!(holds(&c, &format!("({pred} {yes})")), "({pred} {yes})");
        assert!(!holds(&c, &format!("({pred} {no})")), "({pred} {no})");
        fails_eval(&c, &format!("({pred} 1 2)"), pred);
    }
    check(&c, "(abs -3)", "3");
    check(&c, "(abs -2.5)", "2.5");
    check(&c, "(abs -5N)", "5N");
    check(&c, "(abs -1.50M)", "1.50M");
    fails_eval(&c, "(abs \"x\")", "abs");
}

#[test]
fn printing() {
    let c = db();
    check(&c, r#"(print-str "a" :b ["c" 1] nil)"#, r#""a :b [c 1] nil""#);
    check(&c, r#"(println-str "a" 1)"#, r#""a 1\n""#);
    check(&c, r#"(prn-str "a" 1)"#, r#""\"a\" 1\n""#);
    check(&c, r#"(pr-str "a" 1)"#, r#""\"a\" 1""#);
    check(&c, "(print-str)", "\"\"");
    let names = query(&c, "[:find ?s :where [?e :age 15] [?e :name ?n] [(print-str ?n ?e) ?s]]", &[]).unwrap();
    assert_eq!(names, edn("#{[\"Petr 2\"]}"));
}

#[test]
fn regular_expressions() {
    let c = db();
    check(&c, r#"(re-find "\\d+" "ab123cd45")"#, r#""123""#);
    check(&c, r#"(re-find "(\\w)(\\d)?" "a")"#, r#"["a" "a" nil]"#);
    assert_eq!(call(&c, r#"(re-find "\\d" "abc")"#), Edn::Nil);
    check(&c, r#"(re-matches "a+" "aaa")"#, r#""aaa""#);
    assert_eq!(call(&c, r#"(re-matches "a+" "aab")"#), Edn::Nil);
    check(&c, r#"(re-matches "(a)(b)?" "a")"#, r#"["a" "a" nil]"#);
    check(&c, r#"(re-matches "a|ab" "ab")"#, r#""ab""#);
    check(&c, r#"(re-seq "\\d" "a1b2")"#, r#"["1" "2"]"#);
    check(&c, r#"(re-seq "(\\w)(\\d)" "a1b2")"#, r#"[["a1" "a" "1"] ["b2" "b" "2"]]"#);
    assert_eq!(call(&c, r#"(re-seq "\\d" "ab")"#), Edn::Nil);
    let digits = query(&c, r#"[:find ?d :where [(re-seq "\\d" "a1b2") [?d ...]]]"#, &[]).unwrap();
    assert_eq!(digits, edn(r#"#{["1"] ["2"]}"#));
    // As predicates over the database, with a pattern given directly or made by re-pattern.
    let found = query(&c, r#"[:find ?n :where [?e :name ?n] [(re-find "^[IO]" ?n)]]"#, &[]).unwrap();
    assert_eq!(found, edn(r#"#{["Ivan"] ["Oleg"]}"#));
    let found = query(
        &c,
        r#"[:find ?n :in $ ?p :where [(re-pattern ?p) ?re] [?e :name ?n] [(re-matches ?re ?n)]]"#,
        &["\"P.*\""],
    )
    .unwrap();
    assert_eq!(found, edn(r#"#{["Petr"]}"#));
    check(&c, r#"(re-pattern "a.c")"#, r#""a.c""#);
    // A type error is a false predicate, an error when bound.
    assert!(!holds(&c, r#"(re-find 1 "a")"#));
    fails_eval(&c, r#"(re-find 1 "a")"#, "re-find");
    fails_eval(&c, r#"(re-find "a" 1)"#, "re-find");
    fails_eval(&c, r#"(re-find "a" nil)"#, "re-find");
    let m = fails_eval(&c, r#"(re-pattern "a(")"#, "re-pattern");
    assert!(m.contains("invalid regular expression"), "{m}");
    fails_eval(&c, r#"(re-matches "[" "a")"#, "re-matches");
    fails_eval(&c, r#"(re-seq "a")"#, "re-seq");
    fails_eval(&c, r#"(re-find "a" "b" "c")"#, "re-find");
}

#[test]
fn clojure_string() {
    let c = db();
    assert!(holds(&c, r#"(clojure.string/starts-with? "Ivan" "Iv")"#));
    assert!(!holds(&c, r#"(clojure.string/starts-with? "Ivan" "van")"#));
    assert!(holds(&c, r#"(clojure.string/ends-with? "Ivan" "van")"#));
    assert!(holds(&c, r#"(clojure.string/includes? "Ivan" "va")"#));
    assert!(!holds(&c, r#"(clojure.string/includes? "Ivan" 1)"#));
    let found = query(&c, r#"[:find ?n :where [?e :name ?n] [(clojure.string/includes? ?n "e")]]"#, &[]).unwrap();
    assert_eq!(found, edn(r#"#{["Petr"] ["Oleg"]}"#));
    check(&c, r#"(clojure.string/lower-case "ÄbC")"#, r#""äbc""#);
    check(&c, r#"(clojure.string/upper-case "äbc")"#, r#""ÄBC""#);
    assert!(holds(&c, "(clojure.string/blank? nil)"));
    assert!(holds(&c, "(clojure.string/blank? \" \\t\\n\")"));
    assert!(!holds(&c, "(clojure.string/blank? \" a\")"));
    check(&c, r#"(clojure.string/trim "  a b \n")"#, r#""a b""#);
    check(&c, r#"(clojure.string/triml "  a ")"#, r#""a ""#);
    check(&c, r#"(clojure.string/trimr "  a ")"#, r#""  a""#);
    check(&c, r#"(clojure.string/capitalize "hELLO")"#, r#""Hello""#);
    check(&c, r#"(clojure.string/reverse "abc")"#, r#""cba""#);
    check(&c, r#"(clojure.string/index-of "abcabc" "c")"#, "2");
    check(&c, r#"(clojure.string/index-of "abcabc" "c" 3)"#, "5");
    assert_eq!(call(&c, r#"(clojure.string/index-of "abc" "x")"#), Edn::Nil);
    check(&c, r#"(clojure.string/last-index-of "abcabc" "c")"#, "5");
    check(&c, r#"(clojure.string/last-index-of "abcabc" "c" 4)"#, "2");
    check(&c, r#"(clojure.string/index-of "äbä" "ä" 1)"#, "2");
    check(&c, r#"(clojure.string/join ", " [1 "a" :b])"#, r#""1, a, :b""#);
    check(&c, r#"(clojure.string/join ["a" "b"])"#, r#""ab""#);
    check(&c, r#"(clojure.string/split "a,b,,c,," ",")"#, r#"["a" "b" "" "c"]"#);
    check(&c, r#"(clojure.string/split "a,b,,c,," "," 2)"#, r#"["a" "b,,c,,"]"#);
    check(&c, r#"(clojure.string/split "a,b,,c,," "," -1)"#, r#"["a" "b" "" "c" "" ""]"#);
    check(&c, r#"(clojure.string/split "abc" ",")"#, r#"["abc"]"#);
    check(&c, r#"(clojure.string/split "a1b22c" "\\d+")"#, r#"["a" "b" "c"]"#);
    // Errors name the function.
    fails_eval(&c, "(clojure.string/lower-case 5)", "clojure.string/lower-case");
    fails_eval(&c, "(clojure.string/trim nil)", "clojure.string/trim");
    fails_eval(&c, "(clojure.string/starts-with? \"a\")", "clojure.string/starts-with?");
    fails_eval(&c, "(clojure.string/split \"a\" \"(\")", "clojure.string/split");
    fails_eval(&c, "(clojure.string/join 1 2 3)", "clojure.string/join");
    // As in Clojure, the functions need their namespace: unqualified or aliased names are unknown.
    for (unknown, name) in [
        ("(starts-with? \"a\" \"a\")", "starts-with?"),
        ("(str/starts-with? \"a\" \"a\")", "str/starts-with?"),
        ("(clojure.string/frob \"a\")", "clojure.string/frob"),
    ] {
        let (code, m) = fails(&c, unknown, name);
        assert_eq!(code, "query/syntax", "{m}");
        assert!(m.starts_with("Unknown function"), "{m}");
    }
}

#[test]
fn differ() {
    let c = db();
    assert!(!holds(&c, "(-differ? 1 2 1 2)"));
    assert!(holds(&c, "(-differ? 1 2 1 3)"));
    assert!(holds(&c, "(-differ? 1 2 3)"));
    assert!(!holds(&c, "(-differ?)"));
}

#[test]
fn nested_queries() {
    let c = db();
    check(&c, "(q [:find (count ?e) . :where [?e :name]] $)", "3");
    check(&c, "(datahike.query/q [:find (max ?a) . :where [_ :age ?a]] $)", "40");
    check(&c, r#"(q "[:find ?a . :in $ ?n :where [?e :name ?n] [?e :age ?a]]" $ "Petr")"#, "15");
    // The result binds as a relation; lists and predicates inside the nested query keep their meaning.
    let older = query(
        &c,
        "[:find ?n :in $ ?min :where [(q [:find ?e :in $ ?m :where [?e :age ?a] [(> ?a ?m)]] $ ?min) [[?e]]] [?e :name ?n]]",
        &["20"],
    )
    .unwrap();
    assert_eq!(older, edn(r#"#{["Ivan"] ["Oleg"]}"#));
    // A nested query over a collection source.
    check(&c, "(q [:find (sum ?x) . :in [?x ...]] [1 2 3])", "6");
    // The nested query's own error comes through with its code.
    let (code, m) = fails(&c, "(q [:find ?x :where [?e :name ?n]] $)", "?x");
    assert_eq!(code, "query/syntax", "{m}");
    // Pulled maps come back as map values.
    let x = query(
        &c,
        "[:find ?n . :where [(q [:find (pull ?e [:name]) . :where [?e :age 15]] $) ?m] [(get ?m :name) ?n]]",
        &[],
    )
    .unwrap();
    assert_eq!(x, edn(r#""Petr""#));
    fails_eval(&c, "(q)", "q");
}
