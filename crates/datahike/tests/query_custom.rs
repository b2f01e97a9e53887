//! Functions and aggregates written in Rust: registered under namespace-qualified names, or
//! passed as `:in` inputs, on a file database; their results, their errors and the errors of
//! using them wrongly.

mod common;

use common::{edn, transact};
use datahike::query::{register_aggregate, register_function, FnResult, QueryInput};
use datahike::{q, Config, Conn, Edn, Value};

fn file_db(dir: &tempfile::TempDir) -> Conn {
    let path = dir.path().join("db").display().to_string();
    let config =
        Config::parse(&format!("{{:store {{:backend :file :path {path:?}}} :schema-flexibility :read}}")).unwrap();
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    transact(
        &conn,
        r#"[{:db/id 1 :name "Ivan" :age 30 :dept "a"} {:db/id 2 :name "Petr" :age 15 :dept "a"}
            {:db/id 3 :name "Oleg" :age 40 :dept "b"} {:db/id 4 :name "Anna" :age 30 :dept "b"}]"#,
    );
    conn
}

fn run(conn: &Conn, query: &str, inputs: Vec<QueryInput>) -> datahike::Result<Edn> {
    let mut all = vec![QueryInput::Db(conn.db())];
    all.extend(inputs);
    q(&edn(query), &all)
}

fn ok(conn: &Conn, query: &str, inputs: Vec<QueryInput>) -> Edn {
    run(conn, query, inputs).unwrap_or_else(|e| panic!("{query} failed: {e}"))
}

fn err(conn: &Conn, query: &str, inputs: Vec<QueryInput>) -> (&'static str, String) {
    match run(conn, query, inputs) {
        Ok(r) => panic!("{query} should fail, gave {r}"),
        Err(e) => (e.code(), e.to_string()),
    }
}

fn long(args: &[Value], name: &str) -> FnResult<i64> {
    match args {
        [Value::Long(x)] => Ok(*x),
        _ => Err(format!("{name} takes one long, got {} arguments", args.len()).into()),
    }
}

fn longs(vals: &[Value]) -> Vec<i64> {
    vals.iter().filter_map(Value::as_long).collect()
}

#[test]
fn registered_functions() {
    let dir = tempfile::tempdir().unwrap();
    let c = file_db(&dir);
    register_function("test.custom/double", |args: &[Value]| Ok(Value::Long(long(args, "double")? * 2))).unwrap();
    register_function("test.custom/adult?", |args: &[Value]| Ok(Value::Boolean(long(args, "adult?")? >= 18))).unwrap();
    register_function("test.custom/initials", |args: &[Value]| {
        let text: String =
            args.iter().filter_map(|v| if let Value::String(s) = v { s.chars().next() } else { None }).collect();
        Ok(Value::Tuple(vec![Value::str(&text), Value::Long(text.len() as i64)].into()))
    })
    .unwrap();

    let doubled = ok(&c, "[:find ?n ?d :where [?e :name ?n] [?e :age ?a] [(test.custom/double ?a) ?d]]", vec![]);
    assert_eq!(doubled, edn(r#"#{["Ivan" 60] ["Petr" 30] ["Oleg" 80] ["Anna" 60]}"#));
    let adults = ok(&c, "[:find [?n ...] :where [?e :name ?n] [?e :age ?a] [(test.custom/adult? ?a)]]", vec![]);
    assert_eq!(adults.as_seq().unwrap().len(), 3, "{adults}");
    // Inside not, with a tuple binding.
    let minors = ok(&c, "[:find ?n :where [?e :name ?n] [?e :age ?a] (not [(test.custom/adult? ?a)])]", vec![]);
    assert_eq!(minors, edn(r#"#{["Petr"]}"#));
    let tuple = ok(&c, r#"[:find [?i ?k] :where [(test.custom/initials "Ivan" "Oleg") [?i ?k]]]"#, vec![]);
    assert_eq!(tuple, edn(r#"["IO" 2]"#));
    // In a rule.
    let rules = edn("[[(grown ?e) [?e :age ?a] [(test.custom/adult? ?a)]]]");
    let grown =
        q(&edn("[:find (count ?e) . :in $ % :where (grown ?e)]"), &[c.db().into(), QueryInput::Edn(rules)]).unwrap();
    assert_eq!(grown, Edn::Int(3));

    // An error the function returns fails the query and names the function.
    let (code, m) = err(&c, "[:find ?d :where [?e :name ?n] [(test.custom/double ?n) ?d]]", vec![]);
    assert_eq!(code, "query/eval");
    assert!(
        m.contains("test.custom/double failed: double takes one long") && m.contains("[(test.custom/double ?n) ?d]"),
        "{m}"
    );
    // Also as a predicate: only the built-ins' type errors count as false.
    let (code, m) = err(&c, "[:find ?n :where [?e :name ?n] [(test.custom/adult? ?n)]]", vec![]);
    assert_eq!(code, "query/eval", "{m}");
    let (code, m) = err(&c, "[:find ?d :where [(test.custom/double $) ?d]]", vec![]);
    assert!(code == "query/eval" && m.contains("a source cannot be passed"), "{m}");
    let (code, m) = err(&c, "[:find ?d :where [(test.custom/nope 1) ?d]]", vec![]);
    assert!(code == "query/syntax" && m.contains("Unknown function 'test.custom/nope"), "{m}");

    // Registering again replaces; built-ins keep their names.
    register_function("test.custom/twice", |_: &[Value]| Ok(Value::Long(1))).unwrap();
    register_function("test.custom/twice", |args: &[Value]| Ok(Value::Long(long(args, "twice")? * 2))).unwrap();
    assert_eq!(ok(&c, "[:find ?x . :where [(test.custom/twice 4) ?x]]", vec![]), Edn::Int(8));
    register_function("clojure.core/inc", |_: &[Value]| Ok(Value::Long(-1))).unwrap();
    assert_eq!(ok(&c, "[:find ?x . :where [(clojure.core/inc 4) ?x]]", vec![]), Edn::Int(5));
    // Only qualified names resolve to registered functions, as only qualified symbols resolve to vars.
    for bad in ["double", "/double", "test.custom/"] {
        let e = register_function(bad, |_: &[Value]| Ok(Value::Nil)).unwrap_err();
        assert!(e.to_string().contains("namespace-qualified"), "{bad}: {e}");
    }
    c.release().unwrap();
}

#[test]
fn functions_as_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let c = file_db(&dir);
    let triple = QueryInput::function(|args: &[Value]| Ok(Value::Long(long(args, "triple")? * 3)));
    let r = ok(&c, "[:find ?t . :in $ ?f :where [?e :name \"Petr\"] [?e :age ?a] [(?f ?a) ?t]]", vec![triple.clone()]);
    assert_eq!(r, Edn::Int(45));
    let older_than = QueryInput::function(|args: &[Value]| match args {
        [Value::Long(a), Value::Long(min)] => Ok(Value::Boolean(a > min)),
        _ => Err("older-than takes two longs".into()),
    });
    let r = ok(
        &c,
        "[:find ?n :in $ ?older? ?min :where [?e :name ?n] [?e :age ?a] [(?older? ?a ?min)]]",
        vec![older_than.clone(), QueryInput::Edn(Edn::Int(30))],
    );
    assert_eq!(r, edn(r#"#{["Oleg"]}"#));

    let (code, m) = err(&c, "[:find ?t :in $ ?f :where [(?f \"x\") ?t]]", vec![triple.clone()]);
    assert!(code == "query/eval" && m.contains("?f failed: triple takes one long"), "{m}");
    // ?f bound to a value, or not bound at all.
    let (code, m) = err(&c, "[:find ?t :in $ ?f :where [(?f 1) ?t]]", vec![QueryInput::Edn(Edn::Int(1))]);
    assert!(code == "query/binding" && m.contains("?f is not bound to a function"), "{m}");
    let (code, m) = err(&c, "[:find ?t :where [(?g 1) ?t]]", vec![]);
    assert!(code == "query/binding" && m.contains("?g is not bound to a function"), "{m}");
    // A function for a source, a collection or a tuple binding.
    for query in ["[:find ?x :in $ $2 :where [$2 ?x]]", "[:find ?x :in $ [?x ...]]", "[:find ?x :in $ [?x ?y]]"] {
        let (code, m) = err(&c, query, vec![triple.clone()]);
        assert!(code == "query/inputs" && m.contains("scalar :in variable"), "{query}: {m}");
    }
    c.release().unwrap();
}

#[test]
fn aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let c = file_db(&dir);
    register_aggregate("test.custom/spread", |_: &[Value], vals: &[Value]| {
        let xs = longs(vals);
        Ok(Edn::Int(xs.iter().max().unwrap_or(&0) - xs.iter().min().unwrap_or(&0)))
    })
    .unwrap();
    register_aggregate("test.custom/top", |args: &[Value], vals: &[Value]| {
        let n = match args {
            [Value::Long(n)] => *n as usize,
            _ => return Err("top takes a count".into()),
        };
        let mut xs = longs(vals);
        xs.sort_unstable_by(|a, b| b.cmp(a));
        Ok(Edn::Vector(xs.into_iter().take(n).map(Edn::Int).collect()))
    })
    .unwrap();
    register_aggregate("test.custom/n", |_: &[Value], vals: &[Value]| Ok(Edn::Int(vals.len() as i64))).unwrap();

    let spread = ok(&c, "[:find ?d (test.custom/spread ?a) :where [?e :dept ?d] [?e :age ?a]]", vec![]);
    let mut rows: Vec<String> = spread.as_seq().unwrap().iter().map(|r| r.to_string()).collect();
    rows.sort();
    assert_eq!(rows, [r#"["a" 15]"#, r#"["b" 10]"#]);
    assert_eq!(ok(&c, "[:find (test.custom/top 2 ?a) . :where [_ :age ?a]]", vec![]), edn("[40 30]"));
    // The values are the distinct tuples over the find and :with variables.
    assert_eq!(ok(&c, "[:find (test.custom/n ?a) . :where [_ :age ?a]]", vec![]), Edn::Int(3));
    assert_eq!(ok(&c, "[:find (test.custom/n ?a) . :with ?e :where [?e :age ?a]]", vec![]), Edn::Int(4));
    // An argument may come from :in, for built-in aggregates too.
    let top =
        ok(&c, "[:find (test.custom/top ?k ?a) . :in $ ?k :where [_ :age ?a]]", vec![QueryInput::Edn(Edn::Int(1))]);
    assert_eq!(top, edn("[40]"));
    // Ascending, as Datahike's -max (its query_aggregates_test: `(max ?amount ?x)` is `[3 4 5]`).
    let max = ok(&c, "[:find (max ?k ?a) . :in $ ?k :where [_ :age ?a]]", vec![QueryInput::Edn(Edn::Int(2))]);
    assert_eq!(max, edn("[30 40]"));

    // Aggregates passed as inputs.
    let sum = QueryInput::aggregate(|_: &[Value], vals: &[Value]| Ok(Edn::Int(longs(vals).iter().sum())));
    let total = ok(&c, "[:find (aggregate ?sum ?a) . :in $ ?sum :with ?e :where [?e :age ?a]]", vec![sum.clone()]);
    assert_eq!(total, Edn::Int(115));
    let scaled = QueryInput::aggregate(|args: &[Value], vals: &[Value]| match args {
        [Value::Long(k)] => Ok(Edn::Int(k * vals.len() as i64)),
        _ => Err("scaled takes a factor".into()),
    });
    assert_eq!(ok(&c, "[:find (aggregate ?f 10 ?e) . :in $ ?f :where [?e :age]]", vec![scaled.clone()]), Edn::Int(40));

    // Errors.
    let (code, m) = err(&c, "[:find (test.custom/top ?a) . :where [_ :age ?a]]", vec![]);
    assert!(code == "query/eval" && m.contains("Aggregate test.custom/top failed: top takes a count"), "{m}");
    let (code, m) = err(&c, "[:find (test.custom/nope ?a) . :where [_ :age ?a]]", vec![]);
    assert!(code == "query/syntax" && m.contains("Unknown aggregate function test.custom/nope"), "{m}");
    let (code, m) =
        err(&c, "[:find (aggregate ?f ?a) . :in $ ?f :where [_ :age ?a]]", vec![QueryInput::Edn(Edn::Int(1))]);
    assert!(code == "query/binding" && m.contains("?f in (aggregate ?f ?a) is not bound to an aggregate"), "{m}");
    let (code, m) = err(&c, "[:find (aggregate 1 ?a) . :where [_ :age ?a]]", vec![]);
    assert!(code == "query/syntax" && m.contains("expected (aggregate ?f"), "{m}");
    let (code, m) = err(&c, "[:find (max ?k ?a) . :where [_ :age ?a]]", vec![]);
    assert!(code == "query/binding" && m.contains("?k of (max ?k ?a) is not bound"), "{m}");
    let e = register_aggregate("spread", |_: &[Value], _: &[Value]| Ok(Edn::Nil)).unwrap_err();
    assert!(e.to_string().contains("namespace-qualified"), "{e}");
    c.release().unwrap();
}
