//! End-to-end tests of `dthk pull`, `dthk pull-many` and `dthk entity` against a file store in a
//! temporary directory: printed EDN and JSON, the argument forms, errors and exit codes.

mod common;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// A file database with a small social graph: 1 Alice (friend 2, 3), 2 Bob, 3 Carol.
    fn new() -> Env {
        let env = Env { dir: tempfile::tempdir().unwrap() };
        let path = env.dir.path().join("db");
        let config =
            format!("{{:store {{:backend :file :path {:?}}} :keep-history? false}}", path.display().to_string());
        std::fs::write(env.dir.path().join("cfg.edn"), config).unwrap();
        env.ok(&["create-database", "edn:cfg.edn"]);
        env.ok(&[
            "transact",
            "conn:cfg.edn",
            r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
                {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
                {:db/ident :email :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
                {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]"#,
        ]);
        env.ok(&[
            "transact",
            "conn:cfg.edn",
            r#"[{:db/id 1001 :name "Alice" :age 20 :email "alice@x" :friend [1002 1003]}
                {:db/id 1002 :name "Bob" :age 30}
                {:db/id 1003 :name "Carol" :age 40 :friend [1001]}]"#,
        ]);
        env
    }

    fn ok(&self, args: &[&str]) -> String {
        common::ok(self.dir.path(), args)
    }

    fn fails(&self, args: &[&str], code: i32) -> String {
        common::fails(self.dir.path(), args, code)
    }
}

#[test]
fn pull_prints_datahike_maps() {
    let env = Env::new();
    assert_eq!(
        env.ok(&["pull", "db:cfg.edn", "[:db/id :name {:friend [:name]}]", "1001"]),
        "{:db/id 1001, :name \"Alice\", :friend [{:name \"Bob\"} {:name \"Carol\"}]}\n"
    );
    assert_eq!(
        env.ok(&["pull", "db:cfg.edn", "[*]", "1001"]),
        "{:db/id 1001, :age 20, :email \"alice@x\", :friend [{:db/id 1002} {:db/id 1003}], :name \"Alice\"}\n"
    );
    assert_eq!(
        env.ok(&["pull", "db:cfg.edn", "[:name {:friend ...}]", "[:email \"alice@x\"]"]),
        // The root is not on the recursion path (Datahike): Alice is pulled again below Carol.
        "{:name \"Alice\", :friend [{:name \"Bob\"} {:name \"Carol\", :friend [{:name \"Alice\", :friend [{:name \"Bob\"} {:db/id 1003}]}]}]}\n"
    );
    assert_eq!(
        env.ok(&["pull", "db:cfg.edn", "[:name :_friend]", "1002"]),
        "{:name \"Bob\", :_friend [{:db/id 1001}]}\n"
    );
    assert_eq!(env.ok(&["pull", "db:cfg.edn", "{:selector [:age] :eid 1003}"]), "{:age 40}\n");
    assert_eq!(env.ok(&["pull", "db:cfg.edn", "[:name]", "4242"]), "nil\n");
    assert_eq!(
        env.ok(&["pull", "db:cfg.edn", "[[:name :as \"n\"] (default :email \"-\")]", "1002"]),
        "{\"n\" \"Bob\", :email \"-\"}\n"
    );
    assert_eq!(
        env.ok(&["-f", "json", "pull", "db:cfg.edn", "[:name :age]", "1002"]),
        "{\"name\":\"Bob\",\"age\":30}\n"
    );
}

#[test]
fn pull_many_prints_a_vector() {
    let env = Env::new();
    assert_eq!(env.ok(&["pull-many", "db:cfg.edn", "[:name]", "[1001 1002]"]), "[{:name \"Alice\"} {:name \"Bob\"}]\n");
    assert_eq!(
        env.ok(&["pull-many", "db:cfg.edn", "[:name :age]", "[[:email \"alice@x\"] 4242 1003]"]),
        "[{:name \"Alice\", :age 20} {:name \"Carol\", :age 40}]\n"
    );
    assert_eq!(env.ok(&["pull-many", "db:cfg.edn", "[:name]", "[]"]), "[]\n");
}

#[test]
fn entity_prints_every_attribute() {
    let env = Env::new();
    assert_eq!(env.ok(&["entity", "db:cfg.edn", "1002"]), "{:db/id 1002, :age 30, :name \"Bob\"}\n");
    assert_eq!(
        env.ok(&["entity", "db:cfg.edn", "[:email \"alice@x\"]"]),
        "{:db/id 1001, :age 20, :email \"alice@x\", :friend #{{:db/id 1002} {:db/id 1003}}, :name \"Alice\"}\n"
    );
    assert!(env.ok(&["entity", "db:cfg.edn", ":name"]).contains(":db/ident :name"));
    assert_eq!(env.ok(&["entity", "db:cfg.edn", "[:email \"nobody\"]"]), "nil\n");
    assert_eq!(env.ok(&["entity", "db:cfg.edn", "4242"]), "{:db/id 4242}\n");
}

#[test]
fn errors_go_to_stderr() {
    let env = Env::new();
    let err = env.fails(&["pull", "db:cfg.edn", "[:name]", "[:email \"nobody\"]"], 1);
    assert!(err.starts_with("❌ Error executing command: Nothing found for entity id [:email \"nobody\"]"), "{err}");
    let err = env.fails(&["pull", "db:cfg.edn", "[:name :unknown]", "1001"], 1);
    assert!(err.contains("not defined in current schema"), "{err}");
    let err = env.fails(&["pull", "db:cfg.edn", "[(limit :friend -1)]", "1001"], 1);
    assert!(err.contains("Expected [\"limit\" attr-name (positive-number | nil)]"), "{err}");
    let err = env.fails(&["pull", "db:cfg.edn", ":name", "1001"], 1);
    assert!(err.contains("Invalid arguments for 'pull'") && err.contains("a pull pattern"), "{err}");
    let err = env.fails(&["pull", "db:cfg.edn", "[:name]", "\"x\""], 1);
    assert!(err.contains("Invalid arguments for 'pull'") && err.contains("an entity id"), "{err}");
    let err = env.fails(&["pull-many", "db:cfg.edn", "[:name]", "1001"], 1);
    assert!(err.contains("Invalid arguments for 'pull-many'") && err.contains("a vector of entity ids"), "{err}");
    let err = env.fails(&["entity", "db:cfg.edn", "[:name \"Bob\"]"], 1);
    assert!(err.contains("should be marked as :db/unique"), "{err}");
    let err = env.fails(&["entity", "db:cfg.edn"], 1);
    assert!(err.contains("expected 2 arguments, got 1"), "{err}");
}

#[test]
fn help_lists_the_commands() {
    let env = Env::new();
    let help = env.ok(&["--help"]);
    for command in ["pull", "pull-many", "entity"] {
        assert!(help.contains(&format!("\n    {command} db:CONFIG")), "{command} missing from help:\n{help}");
    }
    assert!(env.ok(&["help", "pull"]).contains("dthk pull db:CONFIG PATTERN EID"));
}
