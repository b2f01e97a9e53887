//! End-to-end tests of `dthk query` against file stores in a temporary directory: the query
//! forms, inputs from `db:`, `edn:`, `json:` and plain EDN arguments, several databases,
//! paging, output formats, errors and exit codes.

mod common;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// Two file databases: `cfg.edn` with 30 people `p10`..`p39` aged 10..39 and "Judea"
    /// (entity 31, aged 50, friend of the first), and `b.edn` with only "Judea", at entity 31
    /// with the same transaction id.
    fn new() -> Env {
        let env = Env { dir: tempfile::tempdir().unwrap() };
        let schema = r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
            {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
            {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]"#;
        let people: String =
            (10..40).map(|age| format!("{{:db/id {} :name \"p{age}\" :age {age}}}", age - 9)).collect();
        for (file, store) in [("cfg.edn", "a"), ("b.edn", "b")] {
            let path = env.dir.path().join(store);
            let config =
                format!("{{:store {{:backend :file :path {:?}}} :keep-history? false}}", path.display().to_string());
            std::fs::write(env.dir.path().join(file), config).unwrap();
            env.ok(&["create-database", &format!("edn:{file}")]);
            env.ok(&["transact", &format!("conn:{file}"), schema]);
        }
        env.ok(&["transact", "conn:cfg.edn", &format!("[{people} {{:db/id 31 :name \"Judea\" :age 50 :friend [1]}}]")]);
        env.ok(&["transact", "conn:b.edn", "[{:db/id 31 :name \"Judea\" :age 50}]"]);
        env
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.dir.path().join(file), text).unwrap();
    }

    fn ok(&self, args: &[&str]) -> String {
        common::ok(self.dir.path(), args)
    }

    /// The result read back as EDN, so that sets compare regardless of order.
    fn query(&self, args: &[&str]) -> datahike::Edn {
        let mut all = vec!["query"];
        all.extend(args);
        let out = self.ok(&all);
        assert!(out.ends_with('\n') && out.lines().count() == 1, "{out}");
        datahike::edn::read_str(&out).unwrap_or_else(|e| panic!("{out} does not read back: {e}"))
    }

    fn fails(&self, args: &[&str], code: i32) -> String {
        common::fails(self.dir.path(), args, code)
    }
}

fn edn(text: &str) -> datahike::Edn {
    datahike::edn::read_str(text).unwrap()
}

#[test]
fn relation_scalar_and_pull_results() {
    let env = Env::new();
    let rel = env.query(&["[:find ?n ?a :where [?e :name ?n] [?e :age ?a] [(< ?a 13)]]", "db:cfg.edn"]);
    assert_eq!(rel, edn(r#"#{["p10" 10] ["p11" 11] ["p12" 12]}"#));
    // Printed as Clojure prints: a set of vectors.
    let printed = env.ok(&["query", "[:find ?n :where [?e :age 10] [?e :name ?n]]", "db:cfg.edn"]);
    assert_eq!(printed, "#{[\"p10\"]}\n");

    let pulled =
        env.ok(&["query", "[:find (pull ?e [*]) . :in $ ?name :where [?e :name ?name]]", "db:cfg.edn", "\"Judea\""]);
    assert_eq!(pulled, "{:db/id 31, :age 50, :friend [{:db/id 1}], :name \"Judea\"}\n");
    let nested = env.query(&[
        "[:find (pull ?e [:name {:friend [:name]}]) . :in $ ?name :where [?e :name ?name]]",
        "db:cfg.edn",
        "\"Judea\"",
    ]);
    assert_eq!(nested, edn(r#"{:name "Judea" :friend [{:name "p10"}]}"#));
    assert_eq!(env.ok(&["query", "[:find ?a . :where [?e :name \"Nobody\"] [?e :age ?a]]", "db:cfg.edn"]), "nil\n");
    assert_eq!(env.ok(&["query", "[:find (count ?e) . :where [?e :age ?a] [(>= ?a 30)]]", "db:cfg.edn"]), "11\n");
    // The query may be given as a string and in map form.
    let as_string = env.query(&["\"[:find ?e :where [?e :age 11]]\"", "db:cfg.edn"]);
    let as_map = env.query(&["{:find [?e] :where [[?e :age 11]]}", "db:cfg.edn"]);
    assert_eq!(as_string, edn("#{[2]}"));
    assert_eq!(as_map, as_string);
}

#[test]
fn two_databases_diff() {
    let env = Env::new();
    let diff = env.query(&[
        "[:find ?e ?a ?v ?t :in $ $2 :where [$ ?e ?a ?v ?t] [(= ?e 31)] (not [$2 ?e ?a ?v ?t])]",
        "db:cfg.edn",
        "db:b.edn",
    ]);
    // Judea's name and age are the same datoms in both databases (same entity, same tx); only
    // the friend differs.
    assert_eq!(diff, edn("#{[31 :friend 1 536870914]}"));
    let all = env.query(&[
        "[:find ?e ?a ?v ?t :in $ $2 :where [$ ?e ?a ?v ?t] (not [$2 ?e ?a ?v ?t])]",
        "db:cfg.edn",
        "db:b.edn",
    ]);
    let n = all.as_seq().unwrap().len();
    // 30 people with two datoms each and the friend datom (no transaction datoms without
    // history).
    assert_eq!(n, 61, "{all}");
}

#[test]
fn paging_with_an_arg_map() {
    let env = Env::new();
    let page =
        env.query(&["{:query {:find [?e] :where [[?e :age ?a] [(> ?a 18)]]} :offset 10 :limit 5}", "db:cfg.edn"]);
    let rows = page.as_seq().unwrap();
    assert!(matches!(page, datahike::Edn::Set(_)) && rows.len() == 5, "{page}");
    for row in rows {
        let e = match row.as_seq() {
            Some([datahike::Edn::Int(e)]) => *e,
            _ => panic!("{row}"),
        };
        assert!((10..=31).contains(&e), "{e} is not a person older than 18");
    }
    // 22 people are older than 18: an offset of 20 leaves 2.
    let rest = env.query(&["{:query [:find ?e :where [?e :age ?a] [(> ?a 18)]] :offset 20 :limit 5}", "db:cfg.edn"]);
    assert_eq!(rest.as_seq().unwrap().len(), 2, "{rest}");
    // An arg map may carry its inputs in :args.
    let args = env.query(&["{:query [:find ?x ?y :in [?x ...] ?y] :args [[1 2] :k]}"]);
    assert_eq!(args, edn("#{[1 :k] [2 :k]}"));
}

#[test]
fn inputs_from_files_and_edn_arguments() {
    let env = Env::new();
    env.write("names.edn", "[\"p20\" \"Judea\" \"Nobody\"]");
    env.write("names.json", "[\"p21\", \"Nobody\"]");
    env.write("rules.edn", "[[(knows ?a ?b) [?a :friend ?b]] [(knows ?a ?b) [?b :friend ?a]]]");
    let query = "[:find ?a :in $ [?n ...] :where [?e :name ?n] [?e :age ?a]]";
    assert_eq!(env.query(&[query, "db:cfg.edn", "edn:names.edn"]), edn("#{[20] [50]}"));
    assert_eq!(env.query(&[query, "db:cfg.edn", "json:names.json"]), edn("#{[21]}"));
    assert_eq!(env.query(&[query, "db:cfg.edn", "[\"p30\" \"p31\"]"]), edn("#{[30] [31]}"));
    let rules = env.query(&[
        "[:find ?n :in $ % :where [?j :name \"p10\"] (knows ?j ?x) [?x :name ?n]]",
        "db:cfg.edn",
        "edn:rules.edn",
    ]);
    assert_eq!(rules, edn("#{[\"Judea\"]}"));
    // Relations, tuples and collections as sources, without any database.
    let tuples = env.query(&["[:find ?x ?y :in [[?x ?y]] :where [(> ?y 1)]]", "[[:a 1] [:b 2] [:c 3]]"]);
    assert_eq!(tuples, edn("#{[:b 2] [:c 3]}"));
    let coll_source = env.query(&[
        "[:find ?n :in $ $ages :where [$ages ?a] [?e :age ?a] [?e :name ?n]]",
        "db:cfg.edn",
        "[[12] [13]]",
    ]);
    assert_eq!(coll_source, edn("#{[\"p12\"] [\"p13\"]}"));
    // A keyword argument, as in `dthk query ... ":db/add"` of Datahike's merge recipe.
    let added = env.query(&["[:find ?op ?e :in $ ?op :where [?e :age 15]]", "db:cfg.edn", ":db/add"]);
    assert_eq!(added, edn("#{[:db/add 6]}"));
}

#[test]
fn output_formats() {
    let env = Env::new();
    let query = "[:find ?n ?a :where [?e :name ?n] [?e :age ?a] [(< ?a 12)]]";
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["-f", "json", "query", query, "db:cfg.edn"])).unwrap();
    let mut rows = json.as_array().unwrap().clone();
    rows.sort_by_key(|r| r[1].as_i64());
    assert_eq!(rows, vec![serde_json::json!(["p10", 10]), serde_json::json!(["p11", 11])]);
    let pretty = env.ok(&["-f", "pprint", "query", "[:find (pull ?e [*]) . :where [?e :age 50]]", "db:cfg.edn"]);
    assert_eq!(edn(&pretty), edn(r#"{:db/id 31 :age 50 :friend [{:db/id 1}] :name "Judea"}"#));
    let cbor = common::run(
        env.dir.path(),
        &["-f", "cbor", "query", "[:find ?a . :where [?e :name \"p10\"] [?e :age ?a]]", "db:cfg.edn"],
    );
    assert!(cbor.status.success());
    assert_eq!(cbor.stdout, [10]);
}

#[test]
fn errors_go_to_stderr_with_exit_code_1() {
    let env = Env::new();
    let err = env.fails(&["query", "[:find ?n :where [?e :name ?n]"], 1);
    assert!(
        err.contains("Invalid arguments for 'query'") && err.contains("is not valid EDN") && err.contains("1:"),
        "{err}"
    );
    let err = env.fails(&["query", "[:find ?n :where [?e :name ?n]]", "conn:cfg.edn"], 1);
    assert!(err.contains("argument 2 is #datahike/Connection") && err.contains("expected a query input"), "{err}");
    let err = env.fails(&["query", ":find", "db:cfg.edn"], 1);
    assert!(err.contains("argument 1 is :find, expected a query"), "{err}");
    let err = env.fails(&["query"], 1);
    assert!(err.contains("expected 1 or more arguments, got 0"), "{err}");
    let err = env.fails(&["query", "[:find ?n :in $ ?x :where [?e :name ?n]]", "db:cfg.edn"], 1);
    assert_eq!(err, "❌ Error executing command: Wrong number of inputs: :in has 2 bindings ($ ?x), 1 given\n");
    let err = env.fails(&["query", "[:find ?n :where [?e :name ?n] [(frob ?n)]]", "db:cfg.edn"], 1);
    assert!(err.starts_with("❌ Error executing command: Unknown function 'frob"), "{err}");
    let err = env.fails(&["query", "[:find ?x :where [?e :name ?n]]", "db:cfg.edn"], 1);
    assert!(err.contains("Query for unknown vars: [?x]"), "{err}");
    let err = env.fails(&["query", "{:query [:find ?x :in ?x] :args [1]}", "db:cfg.edn"], 1);
    assert!(err.contains(":args") && err.contains("one way"), "{err}");
    let err = env.fails(&["query", "[:find ?n :where [?e :name ?n]]", "db:missing.edn"], 1);
    assert!(err.starts_with("❌ Error executing command: cannot read file missing.edn"), "{err}");
}

#[test]
fn query_stats_and_explain() {
    let env = Env::new();
    let query = "[:find ?n :in $ ?min :where [?e :age ?a] [(> ?a ?min)] [?e :name ?n]]";
    let stats = edn(&env.ok(&["query-stats", query, "db:cfg.edn", "37"]));
    assert_eq!(stats.get_kw("ret"), Some(&edn(r#"#{["p38"] ["p39"] ["Judea"]}"#)));
    assert_eq!(stats.get_kw("query"), Some(&edn(query)));
    let clauses = stats.get_kw("stats").and_then(datahike::Edn::as_seq).expect(":stats");
    let order: Vec<&datahike::Edn> = clauses.iter().filter_map(|c| c.get_kw("clause")).collect();
    assert_eq!(order, [&edn("[?e :age ?a]"), &edn("[(> ?a ?min)]"), &edn("[?e :name ?n]")]);
    assert_eq!(clauses[1].get_kw("rows-out"), Some(&edn("3")));
    // JSON output of the same map.
    let json = env.ok(&["query-stats", query, "db:cfg.edn", "37", "-f", "json"]);
    assert!(json.starts_with('{') && json.contains("\"stats\""), "{json}");

    let plan =
        env.ok(&["explain", "[:find ?n :where [?e :name \"Judea\"] [?e :friend ?f] [?f :name ?n]]", "db:cfg.edn"]);
    let lines: Vec<&str> = plan.lines().collect();
    assert_eq!(lines[0], "=== Query Plan ===");
    assert_eq!(lines[1], "find: [?n]");
    assert!(lines[2].starts_with("1. LOOKUP") || lines[2].starts_with("1. SCAN :avet [:name \"Judea\"]"), "{plan}");
    assert!(lines[2].contains("rows 1 -> 1"), "{plan}");
    assert_eq!(lines.len(), 6, "{plan}");
    let err = env.fails(&["explain", "[:find ?x :where [(> ?x 1)]]", "db:cfg.edn"], 1);
    assert!(err.contains("Insufficient bindings"), "{err}");
}

#[test]
fn set_and_map_results_print_as_clojure_prints() {
    let env = Env::new();
    let m = env.ok(&[
        "query",
        "[:find ?m . :where [?e :name \"Judea\"] [?e :age ?a] [(hash-map :name \"Judea\" :age ?a) ?m]]",
        "db:cfg.edn",
    ]);
    assert_eq!(m, "{:age 50, :name \"Judea\"}\n");
    let s = env.ok(&["query", "[:find ?s . :where [(set [3 1 3]) ?s]]", "db:cfg.edn"]);
    assert_eq!(s, "#{1 3}\n");
    let n = env.query(&[
        "[:find [?n ...] :in $ ?ok :where [?e :age ?a] [(contains? ?ok ?a)] [?e :name ?n]]",
        "db:cfg.edn",
        "#{10 50}",
    ]);
    let mut names: Vec<String> = n.as_seq().unwrap().iter().map(datahike::edn::pr_str).collect();
    names.sort();
    assert_eq!(names, ["\"Judea\"", "\"p10\""]);
}

/// A query whose clauses need no database runs with no input (issue 15, item 1); duplicate
/// `:in` names are refused (item 7).
#[test]
fn queries_without_a_database_and_duplicate_in_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = common::ok(d, &["query", "[:find ?v :where [(ground [:a :e :i]) [?v ...]]]"]);
    assert_eq!(out.trim(), "#{[:a] [:e] [:i]}");
    let out = common::ok(d, &["query", "[:find ?n :where [(identity 1) ?n] [(identity 2) ?n]]"]);
    assert_eq!(out.trim(), "#{}");
    let err = common::fails(d, &["query", "[:find ?x :in $ $ :where [(ground 1) ?x]]"], 1);
    assert!(err.contains("Duplicate :in binding $"), "{err}");
}
