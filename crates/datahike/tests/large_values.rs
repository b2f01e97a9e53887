//! Large values on the file backend (issue 14, finding 8). A string of at least
//! `OUT_OF_LINE_MIN_BYTES` is stored once under `values/<hash>` and index nodes refer to it,
//! so that small transactions after it write small nodes, the value reads back exactly (also
//! through AVET), garbage collection deletes it once no retained commit reaches it, and a
//! damaged or missing value is an error naming its key.
//!
//! The issue measured a 50 MB string; these tests use 8 MB to stay fast (the mechanism does
//! not depend on the size above the threshold).

mod common;

use common::{edn, splitmix64};
use datahike::{q, Config, Conn, Edn, QueryInput};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const BIG_BYTES: usize = 8 << 20;

/// A string of `len` letters drawn from a seeded generator (not compressible to nothing, and
/// different per seed).
fn big_string(seed: u64, len: usize) -> String {
    let mut state = seed;
    let mut s = String::with_capacity(len);
    while s.len() < len {
        let x = splitmix64(&mut state);
        for i in 0..8 {
            if s.len() < len {
                s.push(char::from(b'a' + ((x >> (8 * i)) as u8 % 26)));
            }
        }
    }
    s
}

fn file_config(path: &Path, extra: &str) -> Config {
    Config::parse(&format!(
        r#"{{:store {{:backend :file :path {:?}}}
             :schema-flexibility :write {extra}}}"#,
        path.display().to_string()
    ))
    .unwrap()
}

const SCHEMA: &str = r#"[{:db/ident :doc/n :db/valueType :db.type/long :db/cardinality :db.cardinality/one
                          :db/unique :db.unique/identity}
                         {:db/ident :doc/body :db/valueType :db.type/string :db/cardinality :db.cardinality/one
                          :db/unique :db.unique/value}]"#;

/// Every file under `dir` with its size and modification time.
fn files(dir: &Path) -> HashMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut found = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                found.insert(entry.path(), (meta.len(), meta.modified().unwrap()));
            }
        }
    }
    found
}

/// Bytes written between two listings: every new file whole, and what files that existed
/// before grew by (log segments are appended to; packs, heads and records are new files).
fn bytes_written(
    before: &HashMap<PathBuf, (u64, std::time::SystemTime)>,
    after: &HashMap<PathBuf, (u64, std::time::SystemTime)>,
) -> u64 {
    after
        .iter()
        .map(|(path, (size, modified))| match before.get(path) {
            None => *size,
            Some((old, old_modified)) if old_modified != modified => size.saturating_sub(*old).max(1),
            Some(_) => 0,
        })
        .sum()
}

/// The store keys of out-of-line values: files `kv/values%2F<hex>`.
fn value_files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("kv"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("values%2F"))
        .collect();
    found.sort();
    found
}

fn body_of(conn: &Conn, n: i64) -> Option<String> {
    let rows = q(
        &edn("[:find ?v . :in $ ?n :where [?e :doc/n ?n] [?e :doc/body ?v]]"),
        &[QueryInput::Db(conn.db()), QueryInput::Edn(Edn::Int(n))],
    )
    .unwrap();
    match &rows {
        Edn::Str(s) => Some(s.to_string()),
        Edn::Nil => None,
        other => panic!("unexpected answer {other:?}"),
    }
}

/// The entity whose `:doc/body` is `body`, found through AVET (the value is bound).
fn entity_by_body(conn: &Conn, body: &str) -> Option<i64> {
    let db = conn.db();
    let datoms = db.datoms(datahike::IndexOrder::Avet, &[edn(":doc/body"), Edn::str(body)]).unwrap();
    assert!(datoms.len() <= 1, "a unique value names one entity");
    let by_query = q(
        &edn("[:find ?e . :in $ ?v :where [?e :doc/body ?v]]"),
        &[QueryInput::Db(db), QueryInput::Edn(Edn::str(body))],
    )
    .unwrap();
    let from_index = datoms.first().map(|d| d.e);
    assert_eq!(by_query, from_index.map_or(Edn::Nil, Edn::Int), "query and AVET agree");
    from_index
}

/// `{:doc/n n :doc/body body}` as transaction data.
fn doc(n: i64, body: &str) -> Edn {
    Edn::Vector(vec![Edn::Map(vec![(edn(":doc/n"), Edn::Int(n)), (edn(":doc/body"), Edn::str(body))])])
}

/// A file database at `path` (config `extra`) with the schema and document 0 holding a string
/// of `len` bytes from `seed`: its config, the connection and the string.
fn with_large_value(path: &Path, extra: &str, seed: u64, len: usize) -> (Config, Conn, String) {
    let config = file_config(path, extra);
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    conn.transact(&edn(SCHEMA)).unwrap();
    let big = big_string(seed, len);
    conn.transact(&doc(0, &big)).unwrap();
    (config, conn, big)
}

#[test]
fn small_transactions_after_a_large_value_write_small_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (config, conn, big) = with_large_value(&path, "", 7, BIG_BYTES);
    conn.flush().unwrap();
    let values = value_files(&path);
    assert_eq!(values.len(), 1, "the value is stored once, out of line: {values:?}");
    assert_eq!(std::fs::metadata(&values[0]).unwrap().len(), BIG_BYTES as u64);

    // Ten small transactions, each flushed as `dthk` does per command.
    let before = files(&path);
    for i in 1..=10 {
        conn.transact(&edn(&format!(r#"[{{:doc/n {i} :doc/body "small {i}"}}]"#))).unwrap();
        conn.flush().unwrap();
    }
    let written = bytes_written(&before, &files(&path));
    assert!(written < 1 << 20, "ten small transactions after an 8 MB value wrote {written} bytes");
    assert_eq!(value_files(&path), values, "no new copy of the value");

    conn.release().unwrap();
    let conn = datahike::connect(&config).unwrap();
    assert_eq!(body_of(&conn, 0).as_deref(), Some(big.as_str()), "the value reads back exactly after reopening");
    assert_eq!(body_of(&conn, 3).as_deref(), Some("small 3"));
    let e = entity_by_body(&conn, &big).expect("AVET finds the large value");
    assert_eq!(entity_by_body(&conn, "small 3").map(|x| x != e), Some(true));
    // A string of the same length that differs in its last byte is another value.
    let mut near = big.clone();
    near.pop();
    near.push(if big.ends_with('a') { 'b' } else { 'a' });
    assert_eq!(entity_by_body(&conn, &near), None);
    // Unique: the same large value on another entity is refused.
    let again = doc(99, &big);
    let err = conn.transact(&again).unwrap_err();
    assert_eq!(err.code(), "transact/unique", "{err}");
    assert!(conn.verify_storage().unwrap() > 0);
    conn.release().unwrap();
}

#[test]
fn gc_deletes_a_large_value_no_retained_commit_reaches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (config, conn, big) = with_large_value(&path, ":keep-history? false", 11, BIG_BYTES);
    conn.flush().unwrap();
    let values = value_files(&path);
    assert_eq!(values.len(), 1);
    let key = format!("values/{}", values[0].file_name().unwrap().to_string_lossy().trim_start_matches("values%2F"));

    conn.transact(&Edn::Vector(vec![Edn::Vector(vec![
        edn(":db/retract"),
        edn("[:doc/n 0]"),
        edn(":doc/body"),
        Edn::str(&big),
    ])]))
    .unwrap();
    for i in 1..=3 {
        conn.transact(&edn(&format!("[{{:doc/n {i}}}]"))).unwrap();
        conn.flush().unwrap();
    }
    assert_eq!(body_of(&conn, 0), None, "retracted");

    // The defaults keep every commit of a live branch (Datahike's remove-before is the epoch),
    // and the commits before the retraction still hold the value.
    let report = conn.gc_storage(None).unwrap();
    assert!(!report.deleted.contains(&key), "a retained commit still reaches {key}");
    assert_eq!(value_files(&path), values);

    // A cutoff after the retraction: the commits holding the value go, and so does the value.
    std::thread::sleep(std::time::Duration::from_millis(2));
    let cutoff = conn.db().last_tx_instant() + 1;
    std::thread::sleep(std::time::Duration::from_millis(2));
    conn.transact(&edn("[{:doc/n 10}]")).unwrap();
    let report = conn.gc_storage(Some(cutoff)).unwrap();
    assert!(report.deleted.contains(&key), "{key} is deleted: {:?}", report.deleted);
    assert_eq!(report.kept_values, 0);
    assert_eq!(value_files(&path), Vec::<PathBuf>::new(), "the value's file is gone");
    conn.verify_storage().unwrap();

    // The same connection asserts the value again: it knew the value as stored, but the
    // collection changed the GC epoch, so its flush writes the value again.
    conn.transact(&doc(0, &big)).unwrap();
    conn.flush().unwrap();
    assert_eq!(value_files(&path), values, "stored again after the collection");
    conn.verify_storage().unwrap();
    conn.transact(&Edn::Vector(vec![Edn::Vector(vec![
        edn(":db/retract"),
        edn("[:doc/n 0]"),
        edn(":doc/body"),
        Edn::str(&big),
    ])]))
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let cutoff = conn.db().last_tx_instant() + 1;
    std::thread::sleep(std::time::Duration::from_millis(2));
    conn.transact(&edn("[{:doc/n 11}]")).unwrap();
    let report = conn.gc_storage(Some(cutoff)).unwrap();
    assert!(report.deleted.contains(&key), "{key} is deleted again: {:?}", report.deleted);
    conn.release().unwrap();

    // The store holds none of the value's bytes any more (logs and commit packs included).
    let probe = &big.as_bytes()[1000..1064];
    for (file, _) in files(&path) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(!bytes.windows(probe.len()).any(|w| w == probe), "{} still holds the value", file.display());
    }
    let conn = datahike::connect(&config).unwrap();
    assert_eq!(body_of(&conn, 0), None);
    assert!(entity_by_body(&conn, &big).is_none());
    // The same value again is stored again.
    conn.transact(&doc(0, &big)).unwrap();
    conn.flush().unwrap();
    assert_eq!(value_files(&path), values);
    conn.release().unwrap();
    let conn = datahike::connect(&config).unwrap();
    assert_eq!(body_of(&conn, 0).as_deref(), Some(big.as_str()));
    conn.verify_storage().unwrap();
    conn.release().unwrap();
}

#[test]
fn damaged_or_missing_value_is_an_error_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (config, conn, big) = with_large_value(&path, "", 13, 64 << 10);
    conn.transact(&edn(r#"[{:doc/n 1 :doc/body "small"}]"#)).unwrap();
    conn.release().unwrap();
    let values = value_files(&path);
    assert_eq!(values.len(), 1);
    let file = values[0].clone();
    let key = format!("values/{}", file.file_name().unwrap().to_string_lossy().trim_start_matches("values%2F"));
    let good = std::fs::read(&file).unwrap();

    // Opening may already read the value (a database this small is one leaf, which holds the
    // schema too); if it does not, the first read of the value does, and so does verification.
    let read = |what: &str| -> String {
        let err = match datahike::connect(&config) {
            Err(e) => e.to_string(),
            Ok(conn) => {
                let err = q(&edn("[:find ?v :where [?e :doc/body ?v]]"), &[QueryInput::Db(conn.db())])
                    .unwrap_err()
                    .to_string();
                let verify = conn.verify_storage().unwrap_err().to_string();
                assert!(verify.contains(&key), "{what}: verification names {key}: {verify}");
                conn.release().unwrap();
                err
            }
        };
        assert!(err.contains(&key), "{what}: the error names {key}: {err}");
        err
    };

    let mut flipped = good.clone();
    flipped[100] ^= 0x01;
    std::fs::write(&file, &flipped).unwrap();
    let err = read("a flipped byte");
    assert!(err.contains("hash"), "{err}");

    std::fs::write(&file, &good[..good.len() - 1]).unwrap();
    let err = read("a truncated value");
    assert!(err.contains("bytes"), "{err}");

    std::fs::remove_file(&file).unwrap();
    let err = read("a missing value");
    assert!(err.contains("missing"), "{err}");

    // Restored, everything reads again.
    std::fs::write(&file, &good).unwrap();
    let conn = datahike::connect(&config).unwrap();
    assert_eq!(body_of(&conn, 0).as_deref(), Some(big.as_str()));
    assert_eq!(body_of(&conn, 1).as_deref(), Some("small"));
    conn.verify_storage().unwrap();
    conn.release().unwrap();
}
