//! Hostile and careless input through the library, on the file backend: deep nesting, huge
//! strings, wrong value types, cyclic components, lookup refs to missing entities, a bounded
//! cross product, configs pointing at missing, foreign or read-only places. Each case gives a
//! clear error naming the offending input (attribute, value or path) and changes nothing: the
//! datoms and the store's files (names and sizes) are the same before and after.
//!
//! Unbounded cross products are left to the query memory budget's own tests.

mod common;

use common::{all_datoms, edn};
use datahike::edn::{pr_str, read_str};
use datahike::{pull, Config, Conn, Edn, QueryInput};
use std::path::{Path, PathBuf};

/// Every file under `dir` with its size, sorted.
fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                out.push((entry.path(), meta.len()));
            }
        }
    }
    out.sort();
    out
}

const SCHEMA: &str = r#"[
 {:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
 {:db/ident :long :db/valueType :db.type/long :db/cardinality :db.cardinality/one}
 {:db/ident :string :db/valueType :db.type/string :db/cardinality :db.cardinality/one}
 {:db/ident :double :db/valueType :db.type/double :db/cardinality :db.cardinality/one}
 {:db/ident :float :db/valueType :db.type/float :db/cardinality :db.cardinality/one}
 {:db/ident :boolean :db/valueType :db.type/boolean :db/cardinality :db.cardinality/one}
 {:db/ident :keyword :db/valueType :db.type/keyword :db/cardinality :db.cardinality/one}
 {:db/ident :symbol :db/valueType :db.type/symbol :db/cardinality :db.cardinality/one}
 {:db/ident :instant :db/valueType :db.type/instant :db/cardinality :db.cardinality/one}
 {:db/ident :uuid :db/valueType :db.type/uuid :db/cardinality :db.cardinality/one}
 {:db/ident :bigint :db/valueType :db.type/bigint :db/cardinality :db.cardinality/one}
 {:db/ident :bigdec :db/valueType :db.type/bigdec :db/cardinality :db.cardinality/one}
 {:db/ident :ref :db/valueType :db.type/ref :db/cardinality :db.cardinality/one}
 {:db/ident :pair :db/valueType :db.type/tuple :db/tupleTypes [:db.type/long :db.type/string] :db/cardinality :db.cardinality/one}
 {:db/ident :part :db/valueType :db.type/ref :db/isComponent true :db/cardinality :db.cardinality/many}]"#;

/// A `:write` file database in `dir/db` with [`SCHEMA`] and one entity `{:name "a"}`.
fn file_db(dir: &Path) -> (Config, Conn) {
    let path = dir.join("db").display().to_string();
    let config =
        Config::parse(&format!("{{:store {{:backend :file :path {path:?}}} :schema-flexibility :write}}")).unwrap();
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    conn.transact(&edn(SCHEMA)).unwrap();
    conn.transact(&edn(r#"[{:name "a" :long 1}]"#)).unwrap();
    (config, conn)
}

/// What must not change: the datoms and the store's files.
fn state(conn: &Conn, dir: &Path) -> (Vec<Vec<String>>, Vec<(PathBuf, u64)>) {
    (all_datoms(&conn.db()), listing(&dir.join("db")))
}

/// Runs `f`, which must fail; checks the message names every one of `named` and that nothing
/// changed. Returns the message.
fn refused<T: std::fmt::Debug>(
    conn: &Conn,
    dir: &Path,
    what: &str,
    named: &[&str],
    f: impl FnOnce() -> datahike::Result<T>,
) -> String {
    let before = state(conn, dir);
    let err = match f() {
        Ok(v) => panic!("{what} should fail, gave {v:?}"),
        Err(e) => e.to_string(),
    };
    for name in named {
        assert!(err.contains(name), "{what}: the error does not name {name}: {err}");
    }
    assert!(state(conn, dir) == before, "{what} changed the database or its files: {err}");
    err
}

fn nested_vector(depth: usize) -> Edn {
    (0..depth).fold(Edn::Int(1), |inner, _| Edn::Vector(vec![inner]))
}

#[test]
fn text_nested_10000_deep_is_refused_by_the_reader() {
    let deep = |open: &str, close: &str| format!("{}1{}", open.repeat(10_000), close.repeat(10_000));
    let cases = [
        ("tx data", format!("[{{:name {}}}]", deep("[", "]"))),
        ("a query", format!("[:find ?e :where [?e :name {}]]", deep("[", "]"))),
        ("a pull pattern", format!("[:name {}]", deep("{:ref [", "]}"))),
        ("a config", format!("{{:store {{:backend :memory :id \"x\"}} :extra {}}}", deep("{:a ", "}"))),
    ];
    for (what, text) in cases {
        let err = read_str(&text).expect_err(what).to_string();
        assert!(err.contains("nesting deeper than 1000 levels"), "{what}: {err}");
        assert!(err.contains("1:"), "{what}: the error gives line:column: {err}");
        let err = Config::parse(&text).expect_err(what).to_string();
        assert!(err.contains("nesting deeper than 1000 levels"), "{what} as a config: {err}");
    }
}

#[test]
fn values_nested_10000_deep_in_code_are_refused_or_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (_, conn) = file_db(dir.path());
    let d = dir.path();
    let deep = nested_vector(10_000);
    // A value: refused with its depth, before anything is written.
    let tx = Edn::Vector(vec![Edn::Map(vec![(Edn::kw("name"), Edn::str("deep")), (Edn::kw("pair"), deep.clone())])]);
    refused(&conn, d, "a 10,000-deep value", &["nests 10000 levels deep, more than the 32", ":pair"], || {
        conn.transact(&tx)
    });
    // A query and a pull pattern of that depth: an error naming the depth, not a crash.
    let sym = |s: &str| Edn::Symbol(datahike::edn::Symbol::new(s));
    let pattern = Edn::Vector(vec![sym("?e"), Edn::kw("name"), deep.clone()]);
    let query = Edn::Vector(vec![Edn::kw("find"), sym("?e"), Edn::kw("where"), pattern]);
    refused(&conn, d, "a 10,000-deep query", &["The query nests 10002 levels deep, more than the 1000"], || {
        datahike::q(&query, &[QueryInput::Db(conn.db())])
    });
    let pattern = (0..10_000).fold(Edn::Vector(vec![Edn::kw("name")]), |inner, _| {
        Edn::Vector(vec![Edn::Map(vec![(Edn::kw("ref"), inner)])])
    });
    refused(
        &conn,
        d,
        "a 10,000-deep pattern",
        &["The pull pattern nests 20001 levels deep, more than the 200"],
        || pull(&conn.db(), &pattern, &edn("[:name \"a\"]")),
    );
    // A config: a store id must be a string, keyword or uuid, however deep the value given.
    let store = Edn::Map(vec![(Edn::kw("backend"), Edn::kw("memory")), (Edn::kw("id"), deep)]);
    let err = Config::from_edn(&Edn::Map(vec![(Edn::kw("store"), store)])).map(|_| ()).expect_err("a vector id");
    assert!(err.to_string().contains(":id"), "{err}");
}

#[test]
fn query_as_deep_as_the_reader_allows_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (_, conn) = file_db(dir.path());
    // 999 levels inside the query vector: the deepest text the reader reads.
    let query = format!("[:find ?e :where [?e :name {}\"a\"{}]]", "[".repeat(997), "]".repeat(997));
    let answer = datahike::q(&edn(&query), &[QueryInput::Db(conn.db())]).expect("a deep constant matches nothing");
    assert!(answer == Edn::Set(Vec::new()), "{answer}");
}

#[test]
fn pull_pattern_as_deep_as_the_reader_allows_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (_, conn) = file_db(dir.path());
    // 100 nested subpatterns (200 levels) pull; one more is refused with the depth.
    let nested = |n: usize| format!("[:name {}:name{}]", "{:ref [".repeat(n), "]}".repeat(n));
    let pulled = pull(&conn.db(), &edn(&nested(99)), &edn("[:name \"a\"]")).expect("a deep pattern pulls");
    assert!(pulled == edn("{:name \"a\"}"), "{pulled}");
    let err = pull(&conn.db(), &edn(&nested(499)), &edn("[:name \"a\"]")).expect_err("too deep").to_string();
    assert!(err.contains("nests 999 levels deep, more than the 200 a pattern may"), "{err}");
}

#[test]
fn a_64_mib_string_transacts_and_reads_back_after_reopening() {
    // Nothing limits a string below the 4 GiB a log record or node may hold.
    let dir = tempfile::tempdir().unwrap();
    let (config, conn) = file_db(dir.path());
    let huge: String = (0..64 << 20).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    conn.transact(&Edn::Vector(vec![Edn::Map(vec![
        (Edn::kw("name"), Edn::str("huge")),
        (Edn::kw("string"), Edn::str(&huge)),
    ])]))
    .expect("a 64 MiB string transacts");
    conn.release().unwrap();
    let conn = datahike::connect(&config).unwrap();
    let found = pull(&conn.db(), &edn("[:string]"), &edn("[:name \"huge\"]")).unwrap();
    match found.get_kw("string") {
        Some(Edn::Str(s)) => assert!(**s == *huge, "the string read back differs (length {})", s.len()),
        other => panic!("no string read back: {:?}", other.map(pr_str)),
    }
}

#[test]
fn every_value_type_refuses_a_value_of_another_type() {
    let dir = tempfile::tempdir().unwrap();
    let (_, conn) = file_db(dir.path());
    let d = dir.path();
    let cases = [
        (":long", r#""12""#),
        (":string", "12"),
        (":double", "12"),
        (":float", r#""1.5""#),
        (":boolean", r#""true""#),
        (":keyword", r#""kw""#),
        (":symbol", r#""sym""#),
        (":instant", "1700000000000"),
        (":uuid", r#""not-a-uuid""#),
        (":bigint", "1.5"),
        (":bigdec", r#""1.5""#),
        (":pair", r#"[1 "a" 3]"#),
        (":pair", r#"["a" 1]"#),
        (":pair", "12"),
    ];
    for (attr, value) in cases {
        let tx = format!(r#"[[:db/add [:name "a"] {attr} {value}]]"#);
        let what = format!("{attr} given {value}");
        refused(&conn, d, &what, &[attr, value], || conn.transact(&edn(&tx)));
    }
    // (A string in a ref's place is a tempid, and one no entity uses becomes a new entity, as
    // in Datahike.) An ident that names nothing is refused.
    refused(&conn, d, "a ref given an unknown ident", &[":no-such-ident"], || {
        conn.transact(&edn(r#"[[:db/add [:name "a"] :ref :no-such-ident]]"#))
    });
}

#[test]
fn cyclic_components_pull_and_retract_in_finite_time() {
    let dir = tempfile::tempdir().unwrap();
    let (_, conn) = file_db(dir.path());
    conn.transact(&edn(r#"[{:db/id "x" :name "x" :part ["y"]} {:db/id "y" :name "y" :part ["x" "y"]}]"#)).unwrap();
    let pulled = pull(&conn.db(), &edn("[*]"), &edn("[:name \"x\"]")).unwrap();
    let x = pulled.get_kw("db/id").cloned().unwrap();
    let y = pull(&conn.db(), &edn("[:db/id]"), &edn("[:name \"y\"]")).unwrap().get_kw("db/id").cloned().unwrap();
    // x's component y expands; inside it, x and y are already on the path.
    let expected =
        format!("{{:db/id {x} :name \"x\" :part [{{:db/id {y} :name \"y\" :part [{{:db/id {x}}} {{:db/id {y}}}]}}]}}");
    assert!(pulled == edn(&expected), "{pulled}");
    conn.transact(&edn("[[:db/retractEntity [:name \"x\"]]]")).unwrap();
    let left = datahike::q(&edn("[:find ?n :where [_ :name ?n]]"), &[QueryInput::Db(conn.db())]).unwrap();
    assert!(left == edn("#{[\"a\"]}"), "retracting x retracts its component y: {left}");
}

#[test]
fn lookup_refs_to_missing_entities_are_errors_naming_the_ref() {
    let dir = tempfile::tempdir().unwrap();
    let (_, conn) = file_db(dir.path());
    let d = dir.path();
    let missing = r#"[:name "nobody"]"#;
    refused(&conn, d, "a missing lookup ref as entity id", &[missing], || {
        conn.transact(&edn(&format!("[[:db/add {missing} :long 2]]")))
    });
    refused(&conn, d, "a missing lookup ref as ref value", &[missing], || {
        conn.transact(&edn(&format!("[[:db/add [:name \"a\"] :ref {missing}]]")))
    });
    refused(&conn, d, "a missing lookup ref in pull", &[missing], || pull(&conn.db(), &edn("[*]"), &edn(missing)));
    // `entity` of a lookup ref that names nothing is nil, as in Datahike; a query input used
    // as an entity is an error naming it, as in Datahike (issue 15, item 8).
    let before = state(&conn, d);
    assert!(datahike::entity(&conn.db(), &edn(missing)).unwrap().is_none());
    assert!(state(&conn, d) == before);
    refused(&conn, d, "a missing lookup ref as a query input", &[missing], || {
        datahike::q(
            &edn("[:find ?v :in $ ?e :where [?e :long ?v]]"),
            &[QueryInput::Db(conn.db()), QueryInput::from(edn(missing))],
        )
    });
}

#[test]
fn a_bounded_cross_product_answers() {
    // Unbounded ones are refused by the query memory budget, tested with it.
    let dir = tempfile::tempdir().unwrap();
    let (_, conn) = file_db(dir.path());
    let people: Vec<String> = (0..100).map(|i| format!("{{:name \"p{i}\" :long {i}}}")).collect();
    conn.transact(&edn(&format!("[{}]", people.join(" ")))).unwrap();
    let n = datahike::q(
        &edn("[:find (count ?a) . :with ?b :where [?a :long ?x] [?b :long ?y]]"),
        &[QueryInput::Db(conn.db())],
    )
    .unwrap();
    assert!(n == Edn::Int(101 * 101), "{n}");
}

fn file_config(path: &Path) -> Config {
    Config::parse(&format!("{{:store {{:backend :file :path {:?}}}}}", path.display().to_string())).unwrap()
}

/// `connect` to `path` fails naming it, and leaves the files there as they were.
fn connect_refused(path: &Path, what: &str, words: &[&str]) -> String {
    let before = listing(path);
    let err = match datahike::connect(&file_config(path)) {
        Ok(_) => panic!("connect to {what} should fail"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&path.display().to_string()), "{what}: the error does not name the path: {err}");
    for word in words {
        assert!(err.contains(word), "{what}: {err}");
    }
    assert_eq!(listing(path), before, "connect to {what} changed its files");
    err
}

#[test]
fn configs_pointing_at_missing_or_foreign_places() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A missing directory: connect says the database does not exist and creates nothing.
    let missing = d.join("missing");
    connect_refused(&missing, "a missing directory", &["does not exist"]);
    assert!(!missing.exists(), "connect created the missing directory");
    // A directory of unrelated files.
    let foreign = d.join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "not a database").unwrap();
    std::fs::create_dir(foreign.join("sub")).unwrap();
    std::fs::write(foreign.join("sub/data.bin"), [0u8, 1, 2, 3]).unwrap();
    connect_refused(&foreign, "a foreign directory", &["does not exist"]);
    // An LMDB environment's files (another backend's store).
    let lmdb = d.join("lmdb");
    std::fs::create_dir(&lmdb).unwrap();
    std::fs::write(lmdb.join("data.mdb"), vec![0u8; 8192]).unwrap();
    std::fs::write(lmdb.join("lock.mdb"), vec![0u8; 8192]).unwrap();
    connect_refused(&lmdb, "another backend's directory", &["does not exist"]);
    // A file where the directory should be: for connect and for create-database.
    let file = d.join("file");
    std::fs::write(&file, "x").unwrap();
    connect_refused(&file, "a file", &[]);
    let err = datahike::create_database(&file_config(&file)).expect_err("create over a file").to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"x", "create-database changed the file");
}

/// A read-only bind mount of a directory, unmounted when dropped.
struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    fn new(source: &Path, target: &Path) -> Option<ReadOnlyMount> {
        std::fs::create_dir_all(target).unwrap();
        let run = |args: &[&str]| std::process::Command::new("mount").args(args).status().is_ok_and(|s| s.success());
        let (source, target_text) = (source.to_str().unwrap(), target.to_str().unwrap());
        if !run(&["--bind", source, target_text]) {
            return None;
        }
        let mount = ReadOnlyMount(target.to_path_buf());
        run(&["-o", "remount,bind,ro", target_text]).then_some(mount)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        // A connection's background work may still hold the mount for a moment.
        for _ in 0..50 {
            let status = std::process::Command::new("umount").arg(&self.0).stderr(std::process::Stdio::null()).status();
            if status.is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_directory_refuses_writes_naming_the_path_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let (_, conn) = file_db(dir.path());
    conn.release().unwrap();
    let ro = dir.path().join("ro");
    let Some(_mount) = ReadOnlyMount::new(&dir.path().join("db"), &ro) else {
        assert!(std::env::var_os("CI").is_none(), "CI must be able to bind-mount read-only (run as root)");
        eprintln!("note: cannot bind-mount read-only here (not root?); the read-only test did not run");
        return;
    };
    let before = listing(&ro);
    let config = file_config(&ro);
    let outcome = datahike::connect(&config).and_then(|conn| {
        let datoms = all_datoms(&conn.db());
        conn.transact(&edn(r#"[{:name "b"}]"#)).map(|_| datoms)
    });
    let err = outcome.expect_err("a write to a read-only directory").to_string();
    assert!(err.contains(&ro.display().to_string()), "the error does not name the path: {err}");
    assert!(err.to_lowercase().contains("read-only"), "{err}");
    assert_eq!(listing(&ro), before);
}
