//! End-to-end tests of the temporal argument prefixes of `dthk`: `history:FILE`,
//! `asof:MILLIS:FILE` and `since:MILLIS:FILE` (epoch milliseconds compared with
//! `:db/txInstant`, as-of inclusive, since exclusive), with every read command; and purging
//! history through `transact`.

use datahike::edn::read_str;
use datahike::Edn;
mod common;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// `cfg.edn`: a file database (history kept, the default) where Alice (entity 3) is 20,
    /// then 21, and Bob (entity 4) is added then retracted: transactions 1 (schema), 2 (Alice
    /// 20), 3 (Alice 21, Bob), 4 (Bob retracted). `nohist.edn`: `:keep-history? false`.
    fn new() -> Env {
        let env = Env { dir: tempfile::tempdir().unwrap() };
        for (file, store, extra) in
            [("cfg.edn", "a", ""), ("nohist.edn", "b", ":keep-history? false :schema-flexibility :read")]
        {
            let path = env.dir.path().join(store);
            let config = format!("{{:store {{:backend :file :path {:?}}} {extra}}}", path.display().to_string());
            std::fs::write(env.dir.path().join(file), config).unwrap();
            env.ok(&["create-database", &format!("edn:{file}")]);
        }
        env.ok(&[
            "transact",
            "conn:cfg.edn",
            "[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
              {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one}]",
        ]);
        env.ok(&["transact", "conn:cfg.edn", r#"[{:name "Alice" :age 20}]"#]);
        env.ok(&["transact", "conn:cfg.edn", r#"[{:name "Alice" :age 21} {:name "Bob" :age 30}]"#]);
        env.ok(&["transact", "conn:cfg.edn", r#"[[:db/retractEntity [:name "Bob"]]]"#]);
        env.ok(&["transact", "conn:nohist.edn", r#"[{:name "Alice"}]"#]);
        env
    }

    fn ok(&self, args: &[&str]) -> String {
        common::ok(self.dir.path(), args)
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = common::run(self.dir.path(), args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "dthk {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }

    /// The output read back as EDN.
    fn edn(&self, args: &[&str]) -> Edn {
        read_str(&self.ok(args)).unwrap()
    }

    /// `:db/txInstant` of the n-th transaction (1-based), in epoch milliseconds.
    fn instant(&self, n: i64) -> i64 {
        let tx = (0x2000_0000 + n).to_string();
        match self.edn(&["query", "[:find ?t . :in $ ?tx :where [?tx :db/txInstant ?t]]", "db:cfg.edn", &tx]) {
            Edn::Inst(ms) => ms,
            other => panic!("no instant for tx {tx}: {other}"),
        }
    }
}

const AGES: &str = "[:find ?n ?a :where [?e :name ?n] [?e :age ?a]]";

#[test]
fn query_with_temporal_prefixes() {
    let env = Env::new();
    let (t2, t3, t4) = (env.instant(2), env.instant(3), env.instant(4));
    assert!(t2 < t3 && t3 < t4, "instants strictly increase: {t2} {t3} {t4}");
    let read = |text: &str| read_str(text).unwrap();
    assert_eq!(env.edn(&["query", AGES, "db:cfg.edn"]), read(r#"#{["Alice" 21]}"#));
    assert_eq!(env.edn(&["query", AGES, "history:cfg.edn"]), read(r#"#{["Alice" 20] ["Alice" 21] ["Bob" 30]}"#));
    assert_eq!(
        env.edn(&["query", "[:find ?a ?added :where [3 :age ?a _ ?added]]", "history:cfg.edn"]),
        read("#{[20 true] [20 false] [21 true]}")
    );
    // As-of is inclusive: the instant of transaction 2 sees it, one millisecond earlier does not.
    assert_eq!(env.edn(&["query", AGES, &format!("asof:{t2}:cfg.edn")]), read(r#"#{["Alice" 20]}"#));
    assert_eq!(env.edn(&["query", AGES, &format!("asof:{}:cfg.edn", t2 - 1)]), read("#{}"));
    assert_eq!(env.edn(&["query", AGES, &format!("asof:{t3}:cfg.edn")]), read(r#"#{["Alice" 21] ["Bob" 30]}"#));
    assert_eq!(env.edn(&["query", AGES, &format!("asof:{t4}:cfg.edn")]), read(r#"#{["Alice" 21]}"#));
    // Since is exclusive.
    assert_eq!(env.edn(&["query", "[:find ?a :where [_ :age ?a]]", &format!("since:{t2}:cfg.edn")]), read("#{[21]}"));
    assert_eq!(env.edn(&["query", "[:find ?a :where [_ :age ?a]]", &format!("since:{t3}:cfg.edn")]), read("#{}"));
    assert_eq!(
        env.edn(&["query", "[:find ?a :where [_ :age ?a]]", &format!("since:{}:cfg.edn", t3 - 1)]),
        read("#{[21]}")
    );
    // Two sources: the database now and as of transaction 2.
    assert_eq!(
        env.edn(&[
            "query",
            "[:find ?old ?new :in $now $then :where [$now ?e :age ?new] [$then ?e :age ?old]]",
            "db:cfg.edn",
            &format!("asof:{t2}:cfg.edn"),
        ]),
        read("#{[20 21]}")
    );
}

#[test]
fn read_commands_with_temporal_prefixes() {
    let env = Env::new();
    let t2 = env.instant(2);
    let asof = format!("asof:{t2}:cfg.edn");
    let datoms = env.ok(&["datoms", "history:cfg.edn", "{:index :eavt :components [3 :age]}"]);
    assert_eq!(datoms.matches("#datahike/Datom").count(), 3, "{datoms}");
    assert!(datoms.contains("20 536870915 false]"), "{datoms}");
    let datoms = env.ok(&["datoms", &asof, "{:index :eavt :components [3 :age]}"]);
    assert_eq!(datoms.trim(), "[#datahike/Datom [3 :age 20 536870914 true]]");
    assert_eq!(env.edn(&["pull", &asof, "[:name :age]", "3"]), read_str(r#"{:name "Alice" :age 20}"#).unwrap());
    assert_eq!(env.edn(&["pull", "db:cfg.edn", "[:name :age]", "4"]), Edn::Nil);
    assert_eq!(
        env.edn(&["pull", &format!("asof:{}:cfg.edn", env.instant(3)), "[:name]", "4"]),
        read_str(r#"{:name "Bob"}"#).unwrap()
    );
    let seek = env.ok(&["seek-datoms", &asof, "{:index :aevt :components [:name]}"]);
    assert!(seek.starts_with("[#datahike/Datom [3 :name \"Alice\""), "{seek}");
    assert!(!seek.contains("Bob"), "{seek}");
    let range = env.ok(&["index-range", "history:cfg.edn", "{:attrid :name :start \"A\" :end \"Z\"}"]);
    assert_eq!(range.matches("#datahike/Datom").count(), 3, "{range}");
    let since = env.ok(&["datoms", &format!("since:{t2}:cfg.edn"), ":aevt", ":age"]);
    assert_eq!(since.trim(), "[#datahike/Datom [3 :age 21 536870915 true]]");
}

#[test]
fn temporal_prefix_errors() {
    let env = Env::new();
    let err = env.fails(&["query", AGES, "history:nohist.edn"]);
    assert!(err.contains("history is only allowed on temporal indexed databases"), "{err}");
    let err = env.fails(&["query", AGES, "asof:1700000000000:nohist.edn"]);
    assert!(err.contains(":keep-history? false"), "{err}");
    let err = env.fails(&["query", AGES, "since:soon:cfg.edn"]);
    assert!(err.contains("\"soon\" is not a time in epoch milliseconds") && err.contains("since:MILLIS:FILE"), "{err}");
    let err = env.fails(&["query", AGES, "asof:1700000000000:missing.edn"]);
    assert!(err.contains("missing.edn"), "{err}");
    // A view is not a connection: transact needs conn:.
    let err = env.fails(&["transact", "history:cfg.edn", r#"[{:name "Carol"}]"#]);
    assert!(err.contains("Invalid arguments for 'transact'"), "{err}");
}

#[test]
fn transact_purges() {
    let env = Env::new();
    let report = env.edn(&["transact", "conn:cfg.edn", "[[:db/purge 3 :age 20] [:db.purge/entity 4]]"]);
    // As in Datahike, a purge reports only the transaction's own :db/txInstant.
    let Some(Edn::Vector(tx_data)) = report.get_kw("tx-data") else { panic!("no tx-data in {report}") };
    assert_eq!(tx_data.len(), 1, "{report}");
    assert!(tx_data[0].to_string().contains(":db/txInstant"), "{report}");
    let read = |text: &str| read_str(text).unwrap();
    assert_eq!(env.edn(&["query", AGES, "db:cfg.edn"]), read(r#"#{["Alice" 21]}"#));
    assert_eq!(env.edn(&["query", AGES, "history:cfg.edn"]), read(r#"#{["Alice" 21]}"#));
    assert_eq!(env.edn(&["query", "[:find ?e :where [?e :name]]", "history:cfg.edn"]), read("#{[3]}"));
    let datoms = env.ok(&["datoms", "history:cfg.edn", "{:index :eavt :components [3 :age]}"]);
    assert_eq!(datoms.trim(), "[#datahike/Datom [3 :age 21 536870915 true]]");
    let err = env.fails(&["transact", "conn:nohist.edn", "[[:db.purge/entity 1]]"]);
    assert!(err.contains("Purge entity is only available in temporal databases"), "{err}");
    let err = env.fails(&["transact", "conn:cfg.edn", r#"[[:db.purge/entity [:name "Bob"]]]"#]);
    assert!(err.contains(r#"Can't find entity with ID [:name "Bob"] to be purged"#), "{err}");
}
