//! Queries: find specs, inputs, patterns, predicates, functions, not/or, aggregates and errors,
//! on memory and file databases, with results compared as EDN.

mod common;

use common::{edn, transact, write_db};
use datahike::{q, Config, Conn, Edn, QueryInput};

const SCHEMA: &str = r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
 {:db/ident :email :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
 {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
 {:db/ident :tag :db/valueType :db.type/keyword :db/cardinality :db.cardinality/many}]"#;

const DATA: &str = r#"[{:db/id 100 :name "Ivan" :age 30 :email "ivan@x" :friend [101 102] :tag [:a :b]}
 {:db/id 101 :name "Petr" :age 15 :email "petr@x" :friend [102]}
 {:db/id 102 :name "Oleg" :age 40 :email "oleg@x" :tag [:a]}
 {:db/id 103 :name "Ivan" :age 15 :email "ivan2@x"}]"#;

fn mem() -> Conn {
    let conn = write_db(SCHEMA);
    transact(&conn, DATA);
    conn
}

fn file(dir: &tempfile::TempDir) -> Conn {
    let path = dir.path().join("db").display().to_string();
    let config =
        Config::parse(&format!("{{:store {{:backend :file :path {path:?}}} :schema-flexibility :write}}")).unwrap();
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    transact(&conn, SCHEMA);
    transact(&conn, DATA);
    conn
}

fn run(conn: &Conn, query: &str, extra: &[&str]) -> Edn {
    let mut inputs = vec![QueryInput::Db(conn.db())];
    inputs.extend(extra.iter().map(|x| QueryInput::Edn(edn(x))));
    q(&edn(query), &inputs).unwrap_or_else(|e| panic!("query failed: {e}: {query}"))
}

fn check(conn: &Conn, query: &str, extra: &[&str], expected: &str) {
    let got = run(conn, query, extra);
    assert_eq!(got, edn(expected), "query {query}\n got {got}\nwant {expected}");
}

fn err(conn: &Conn, query: &str, extra: &[&str]) -> (String, &'static str) {
    let mut inputs = vec![QueryInput::Db(conn.db())];
    inputs.extend(extra.iter().map(|x| QueryInput::Edn(edn(x))));
    match q(&edn(query), &inputs) {
        Ok(r) => panic!("query should fail: {query}, got {r}"),
        Err(e) => (e.to_string(), e.code()),
    }
}

fn suite(c: &Conn) {
    // Find specs.
    check(c, r#"[:find ?e :where [?e :name "Ivan"]]"#, &[], "#{[100] [103]}");
    check(c, r#"[:find [?e ...] :where [?e :name "Oleg"]]"#, &[], "[102]");
    check(c, r#"[:find ?a . :where [?e :name "Oleg"] [?e :age ?a]]"#, &[], "40");
    check(c, r#"[:find ?a . :where [?e :name "Nobody"] [?e :age ?a]]"#, &[], "nil");
    check(c, r#"[:find [?n ?a] :where [?e :email "petr@x"] [?e :name ?n] [?e :age ?a]]"#, &[], r#"["Petr" 15]"#);
    check(
        c,
        "[:find ?n ?a :where [?e :name ?n] [?e :age ?a]]",
        &[],
        r#"#{["Ivan" 30] ["Petr" 15] ["Oleg" 40] ["Ivan" 15]}"#,
    );
    check(c, "{:find [?n] :where [[?e :age 15] [?e :name ?n]]}", &[], r#"#{["Petr"] ["Ivan"]}"#);
    check(
        c,
        r#"[:find ?n ?a :keys name age :where [?e :email "oleg@x"] [?e :name ?n] [?e :age ?a]]"#,
        &[],
        r#"[{:name "Oleg" :age 40}]"#,
    );
    check(c, r#"[:find ?n :strs n :where [?e :email "oleg@x"] [?e :name ?n]]"#, &[], r#"[{"n" "Oleg"}]"#);
    // Query as a string and arg map.
    check(c, "\"[:find ?e :where [?e :age 40]]\"", &[], "#{[102]}");
    let r = run(c, "{:query [:find ?e :where [?e :age ?a]] :offset 1 :limit 2}", &[]);
    assert!(matches!(&r, Edn::Set(xs) if xs.len() == 2), "{r}");
    // An arg map's :args are the inputs; giving inputs besides is an error.
    let r = q(&edn("{:query [:find ?x ?y :in [?x ...] ?y] :args [[1 2] :k]}"), &[]).unwrap();
    assert_eq!(r, edn("#{[1 :k] [2 :k]}"));
    assert_eq!(err(c, "{:query [:find ?e :in $ :where [?e :age 40]] :args []}", &[]).1, "query/inputs");
    assert_eq!(err(c, "{:query [:find ?e :where [?e :age 40]] :args 1}", &[]).1, "query/inputs");
    // Patterns: blanks, constants, refs, lookup refs, idents, tx.
    check(c, "[:find ?f :where [100 :friend ?f]]", &[], "#{[101] [102]}");
    check(c, r#"[:find ?f :where [[:email "ivan@x"] :friend ?f] [?f :age 15]]"#, &[], "#{[101]}");
    check(c, "[:find ?e :where [?e :friend [:email \"oleg@x\"]]]", &[], "#{[100] [101]}");
    // A lookup ref bound by :in also names the entity in a ref attribute's value (found by the
    // DataScript differential test), for every binding form and both ways of evaluating.
    check(c, "[:find ?e :in $ ?f :where [?e :friend ?f]]", &[r#"[:email "oleg@x"]"#], "#{[100] [101]}");
    check(c, "[:find ?e :in $ [?f ...] :where [?e :friend ?f]]", &[r#"[[:email "oleg@x"] 101]"#], "#{[100] [101]}");
    check(c, "[:find ?e :in $ ?f :where [?f :age 40] [?e :friend ?f]]", &[r#"[:email "oleg@x"]"#], "#{[100] [101]}");
    check(c, "[:find ?e :where [?e :tag :a]]", &[], "#{[100] [102]}");
    check(c, "[:find ?e :where [?e :friend _] [?e :tag _]]", &[], "#{[100]}");
    check(c, "[:find ?a :where [102 ?a 40]]", &[], "#{[:age]}");
    check(c, "[:find ?v :where [?e :db/ident :name] [?e :db/valueType ?v]]", &[], "#{[:db.type/string]}");
    check(c, "[:find (count ?tx) . :where [100 :name _ ?tx]]", &[], "1");
    check(c, "[:find ?e :where [?e :age ?a] [?e :nosuch ?a]]", &[], "#{}");
    // Inputs.
    check(c, "[:find ?e :in $ ?n :where [?e :name ?n]]", &["\"Petr\""], "#{[101]}");
    check(c, "[:find ?e :in $ [?n ...] :where [?e :name ?n]]", &["[\"Petr\" \"Oleg\"]"], "#{[101] [102]}");
    check(
        c,
        "[:find ?e ?x :in $ [[?n ?x]] :where [?e :name ?n]]",
        &["[[\"Petr\" 1] [\"Oleg\" 2]]"],
        "#{[101 1] [102 2]}",
    );
    check(c, "[:find ?e :in $ [?n ?a] :where [?e :name ?n] [?e :age ?a]]", &["[\"Ivan\" 15]"], "#{[103]}");
    check(c, "[:find ?e :in $ _ ?a :where [?e :age ?a]]", &["1", "40"], "#{[102]}");
    check(c, "[:find ?n :in $ ?e :where [?e :name ?n]]", &["[:email \"oleg@x\"]"], "#{[\"Oleg\"]}");
    check(c, "[:find ?x ?y :in $ $t :where [$t ?x ?y] [$ ?x :age 40]]", &["[[102 :a] [103 :b]]"], "#{[102 :a]}");
    check(c, "[:find ?x :in $ [?x ...] :where [(> ?x 1)]]", &["[1 2 3]"], "#{[2] [3]}");
    // Predicates and functions.
    check(c, "[:find ?e :where [?e :age ?a] [(> ?a 18)]]", &[], "#{[100] [102]}");
    check(c, "[:find ?e :where [?e :age ?a] [(< 10 ?a 31)]]", &[], "#{[100] [101] [103]}");
    check(c, "[:find ?e :where [?e :name ?n] [(< ?n \"J\")]]", &[], "#{[100] [103]}");
    check(c, "[:find ?e :where [?e :name ?n] [(> ?n 1)]]", &[], "#{}");
    check(c, "[:find ?e :where [?e :age ?a] [(even? ?a)] [(not= ?a 30)]]", &[], "#{[102]}");
    check(c, "[:find ?b . :where [?e :email \"petr@x\"] [?e :age ?a] [(* ?a 2) ?b]]", &[], "30");
    check(
        c,
        "[:find ?s . :where [?e :email \"petr@x\"] [?e :name ?n] [?e :age ?a] [(str ?n \"-\" ?a) ?s]]",
        &[],
        "\"Petr-15\"",
    );
    check(c, "[:find ?s . :where [?e :email \"petr@x\"] [?e :name ?n] [(subs ?n 1 3) ?s]]", &[], "\"et\"");
    check(c, "[:find ?x :where [(range 3) [?x ...]]]", &[], "#{[0] [1] [2]}");
    check(c, "[:find ?a ?b :where [(tuple 1 2) ?t] [(untuple ?t) [?a ?b]]]", &[], "#{[1 2]}");
    check(c, "[:find ?x :where [(ground [1 2]) [?x ...]]]", &[], "#{[1] [2]}");
    check(
        c,
        "[:find ?e ?t :where [?e :age ?a] [(get-else $ ?e :nick \"-\") ?t] [(< ?a 20)]]",
        &[],
        "#{[101 \"-\"] [103 \"-\"]}",
    );
    check(c, "[:find ?e :where [?e :age _] [(missing? $ ?e :tag)]]", &[], "#{[101] [103]}");
    check(c, "[:find ?r . :where [(get-some $ 102 :email :name) ?r]]", &[], "[:email \"oleg@x\"]");
    // A nil result binds nothing, for a tuple or collection binding too (found by the
    // DataScript differential test: the tuple binding failed).
    check(c, "[:find ?e :where [?e :age 15] [(get-some $ ?e :tag) [?a ?v]]]", &[], "#{}");
    check(c, "[:find ?e ?v :where [?e :age 40] [(get-some $ ?e :friend :tag) [_ ?v]]]", &[], "#{[102 :a]}");
    check(c, "[:find ?e :where [?e :age 15] [(get-some $ ?e :tag) [?x ...]]]", &[], "#{}");
    check(c, "[:find ?x . :where [(quot 7 2) ?q] [(mod -7 2) ?m] [(+ ?q ?m) ?x]]", &[], "4");
    check(c, "[:find ?x . :where [(/ 7 2) ?x]]", &[], "3.5");
    check(c, "[:find ?x . :where [(name :a/b) ?x]]", &[], "\"b\"");
    check(c, "[:find ?x . :where [(keyword \"a\" \"b\") ?x]]", &[], ":a/b");
    check(c, "[:find ?x . :where [(max 1 5 3) ?x]]", &[], "5");
    check(c, "[:find ?x . :where [(compare \"a\" \"b\") ?x]]", &[], "-1");
    // not / not-join / or / or-join / and.
    check(c, "[:find ?e :where [?e :name _] (not [?e :age 15])]", &[], "#{[100] [102]}");
    check(c, "[:find ?e :where [?e :name _] (not [?e :friend ?f] [?f :age 40])]", &[], "#{[102] [103]}");
    check(
        c,
        "[:find ?e :where [?e :name _] (not-join [?e] [?e :friend ?f] [?f :age 15])]",
        &[],
        "#{[101] [102] [103]}",
    );
    check(c, "[:find ?e :where (or [?e :age 40] [?e :email \"petr@x\"])]", &[], "#{[101] [102]}");
    check(
        c,
        "[:find ?e :where [?e :name \"Ivan\"] (or [?e :age 15] (and [?e :tag :a] [?e :age 30]))]",
        &[],
        "#{[100] [103]}",
    );
    check(c, "[:find ?e :where (or-join [?e] [?e :friend ?x] [?e :tag ?x])]", &[], "#{[100] [101] [102]}");
    check(c, "[:find ?e :where [?e :age ?a] (or-join [[?a] ?e] [(> ?a 35)] [(< ?a 20)])]", &[], "#{[101] [102] [103]}");
    // Aggregates and :with.
    check(c, "[:find (count ?e) . :where [?e :name _]]", &[], "4");
    check(c, "[:find ?n (count ?e) :where [?e :name ?n]]", &[], r#"[["Ivan" 2] ["Petr" 1] ["Oleg" 1]]"#);
    check(c, "[:find (sum ?a) . :where [?e :age ?a]]", &[], "85");
    check(c, "[:find (sum ?a) . :with ?e :where [?e :age ?a]]", &[], "100");
    check(
        c,
        "[:find (avg ?a) (min ?a) (max ?a) (count-distinct ?a) :with ?e :where [?e :age ?a]]",
        &[],
        "[[25.0 15 40 3]]",
    );
    check(
        c,
        "[:find (median ?a) (variance ?a) (stddev ?a) :where [?e :age ?a] [(< ?a 35)]]",
        &[],
        "[[22.5 56.25 7.5]]",
    );
    // As Datahike's -max/-min: ascending, and a value repeated by :with counts twice (found by
    // the DataScript differential test).
    check(c, "[:find (max 2 ?a) (min 2 ?a) :with ?e :where [?e :age ?a]]", &[], "[[[30 40] [15 15]]]");
    check(c, "[:find (max 3 ?a) (min 2 ?a) :where [?e :age ?a]]", &[], "[[[15 30 40] [15 30]]]");
    check(c, "[:find ?n (max 5 ?a) :where [?e :name ?n] [?e :age ?a] [(= ?n \"Ivan\")]]", &[], r#"[["Ivan" [15 30]]]"#);
    check(c, "[:find (distinct ?a) . :with ?e :where [?e :age ?a]]", &[], "#{15 30 40}");
    check(c, "[:find ?a :with ?e :where [?e :age ?a] [(< ?a 20)]]", &[], "[[15] [15]]");
    check(c, "[:find (count ?e) . :where [?e :name \"Nobody\"]]", &[], "nil");
}

#[test]
fn queries_on_memory_db() {
    let conn = mem();
    suite(&conn);
    conn.release().unwrap();
}

#[test]
fn queries_on_file_db() {
    let dir = tempfile::tempdir().unwrap();
    let conn = file(&dir);
    suite(&conn);
    conn.release().unwrap();
}

#[test]
fn errors_name_the_clause() {
    let c = mem();
    let (m, code) = err(&c, "[:find ?e :where [?e :age ?a] [(> ?b 1)]]", &[]);
    assert_eq!(code, "query/binding");
    assert!(m.contains("?b") && m.contains("[(> ?b 1)]"), "{m}");
    let (m, code) = err(&c, "[:find ?e :where [?e :age ?a] {:a 1}]", &[]);
    assert_eq!(code, "query/syntax");
    assert!(m.contains("Cannot parse clause") && m.contains("{:a 1}"), "{m}");
    let (m, _) = err(&c, "[:find ?x :where [?e :age ?a]]", &[]);
    assert!(m.contains("Query for unknown vars: [?x]"), "{m}");
    let (m, _) = err(&c, "[:find ?e ... :where [?e :age ?a]]", &[]);
    assert!(m.contains("Cannot parse :find"), "{m}");
    let (m, _) = err(&c, "[:find ?e :where [?e :age ?a] [(frobnicate ?a)]]", &[]);
    assert!(m.contains("Unknown function 'frobnicate"), "{m}");
    let (m, _) = err(&c, "[:find ?e :where (not [?x :age 1]) [?e :age ?a]]", &[]);
    assert!(m.contains("Insufficient bindings") && m.contains("(not [?x :age 1])"), "{m}");
    let (m, _) = err(&c, "[:find ?e :where (not-join [?z] [?z :age 1]) [?e :age ?a]]", &[]);
    assert!(m.contains("Insufficient bindings") && m.contains("not-join"), "{m}");
    let (m, _) = err(&c, "[:find ?e :where (or [?e :age 1] [?x :age 2])]", &[]);
    assert!(m.contains("same set of free vars"), "{m}");
    let (m, code) = err(&c, "[:find ?e :in $ ?x :where [?e :age ?x]]", &[]);
    assert_eq!(code, "query/inputs");
    assert!(m.contains("Wrong number of inputs"), "{m}");
    let (m, _) = err(&c, "[:find ?e :where (myrule ?e)]", &[]);
    assert!(m.contains("Unknown rule 'myrule"), "{m}");
    // A pull pattern passed as an input must be bound by :in.
    let (m, _) = err(&c, "[:find (pull ?e ?p) :where [?e :age _]]", &[]);
    assert!(m.contains("?p"), "{m}");
    let (m, _) = err(&c, "[:find (frob ?e) :where [?e :age _]]", &[]);
    assert!(m.contains("Unknown aggregate"), "{m}");
    let (m, _) = err(&c, "[:where [?e :age _]]", &[]);
    assert!(m.contains(":find"), "{m}");
    let (m, _) = err(&c, "[:find ?e :where [?e :age ?a] [(inc ?a ?a) ?b]]", &[]);
    assert!(m.contains("Wrong number of args"), "{m}");
    let (m, _) = err(&c, "[:find ?e :where [?e :age ?a] [(= ?a)] :foo]", &[]);
    assert!(m.contains("Unknown query section :foo"), "{m}");
    // Found by the DataScript differential test: Datahike's parser rejects a :with variable that
    // :find uses, also as an aggregate's argument.
    let (m, code) = err(&c, "[:find ?a (count ?e) :with ?e :where [?e :age ?a]]", &[]);
    assert_eq!(code, "query/syntax");
    assert!(m.contains(":find and :with should not use same variables: [?e]"), "{m}");
    let (m, _) = err(&c, "[:find ?e :with ?a ?e :where [?e :age ?a]]", &[]);
    assert!(m.contains(":find and :with should not use same variables: [?e]"), "{m}");
    // Also found by it: a `not` needs variables, and a not-join's variables must be used inside.
    let (m, code) = err(&c, "[:find ?e :where [?e :age ?a] (not [100 :friend _])]", &[]);
    assert_eq!(code, "query/syntax");
    assert!(m.contains("Join variables should not be empty"), "{m}");
    let (m, _) = err(&c, "[:find ?e :where [?e :age ?a] (not-join [] [?e :friend _])]", &[]);
    assert!(m.contains("Join variables should not be empty"), "{m}");
    let (m, _) = err(&c, "[:find ?e :where [?e :age ?a] (not-join [?e ?a] [?e :friend _])]", &[]);
    assert!(m.contains("Join variable not declared inside clauses: [?a]"), "{m}");
    let (m, _) = err(&c, "[:find ?e :in $ % :where [?e :age _] (r ?e)]", &["[[(r ?x) (not [100 :age 1])]]"]);
    assert!(m.contains("Join variables should not be empty"), "{m}");
    check(&c, "[:find ?e :where [?e :age ?a] (not [?e :friend _])]", &[], "#{[102] [103]}");
    c.release().unwrap();
}

/// `:order-by` as Datahike has it: a variable, a column index, or a vector of them with
/// `:asc`/`:desc`, in the query map or the arg map; sorts, then pages, and returns a vector.
#[test]
fn order_by() {
    let c = mem();
    let arg_map = |order: &str, extra: &str| {
        format!("{{:query [:find ?n ?a :where [?e :name ?n] [?e :age ?a]] :order-by {order} {extra}}}")
    };
    let all = r#"[["Ivan" 15] ["Petr" 15] ["Ivan" 30] ["Oleg" 40]]"#;
    check(&c, &arg_map("[?a ?n]", ""), &[], all);
    check(&c, &arg_map("[1 :asc 0 :asc]", ""), &[], all);
    check(&c, &arg_map("[?a :desc ?n]", ""), &[], r#"[["Oleg" 40] ["Ivan" 30] ["Ivan" 15] ["Petr" 15]]"#);
    check(&c, &arg_map("[?n :desc ?a :desc]", ":offset 1 :limit 2"), &[], r#"[["Oleg" 40] ["Ivan" 30]]"#);
    // In the query map itself, and with return maps.
    check(
        &c,
        "{:find [?n ?a] :keys [name age] :where [[?e :name ?n] [?e :age ?a] [(> ?a 20)]] :order-by [?a :desc]}",
        &[],
        r#"[{:name "Oleg", :age 40} {:name "Ivan", :age 30}]"#,
    );
    // Only relation finds are ordered.
    check(&c, &arg_map("?x", "").replace("?n ?a :where", "[?n ...] :where"), &[], r#"["Ivan" "Petr" "Oleg"]"#);
    for (order, message) in [
        ("?x", ":order-by variable ?x not found"),
        ("5", ":order-by column index 5 out of bounds, :find has 2 elements"),
        ("[:desc ?a]", "a direction must follow"),
        ("[?a :down]", "Invalid :order-by direction :down"),
        ("\"a\"", ":order-by element must be a variable or a column index"),
    ] {
        let (msg, code) = err(&c, &arg_map(order, ""), &[]);
        assert_eq!(code, "query/syntax", "{msg}");
        assert!(msg.contains(message), "{order}: {msg}");
    }
}
