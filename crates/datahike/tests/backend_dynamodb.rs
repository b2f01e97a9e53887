//! The `:dynamodb` backend (cargo feature `dynamodb`) against a DynamoDB emulator (moto): the
//! store conformance suite, the database end to end, table creation, chunked values, and
//! secrets kept out of printed configs and errors.
//!
//! The endpoint comes from `DATAHIKE_TEST_DYNAMODB_ENDPOINT` (e.g. `http://127.0.0.1:55000`,
//! what `.ci/services.sh env` exports); credentials are testing/testing, region us-east-1.
//! Unset, each test fails under CI (`CI` set) and otherwise prints a note and passes; the
//! conformance checks then run on a memory store. Every test uses a prefix of its own in one
//! shared table, or a table of its own where it tests tables.
#![cfg(feature = "dynamodb")]

use datahike::edn::read_str;
use datahike::store::backend::open_store;
use datahike::store::conformance::Subject;
use datahike::store::dynamodb::INLINE_MAX;
use datahike::store::{MemoryStore, OpenMode};
use datahike::{Config, Edn, QueryInput};
use std::sync::Arc;

const SECRET: &str = "testing-secret-value-9f3c";
const TOKEN: &str = "testing-session-token-77ab";

/// The emulator's endpoint, or `None` (with a note) when none is configured.
fn endpoint() -> Option<String> {
    let Ok(endpoint) = std::env::var("DATAHIKE_TEST_DYNAMODB_ENDPOINT") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "DATAHIKE_TEST_DYNAMODB_ENDPOINT is unset under CI: start the test services (.ci/services.sh start) and \
             export their settings (eval \"$(.ci/services.sh env)\")"
        );
        eprintln!(
            "note: DATAHIKE_TEST_DYNAMODB_ENDPOINT is unset; the DynamoDB backend is not tested against a server"
        );
        return None;
    };
    Some(endpoint)
}

fn fresh(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4().simple())
}

/// The `:store` map of a store under `prefix` in `table`. moto checks no signature, so the
/// secret is one the tests can look for in printed text.
fn store_text(endpoint: &str, table: &str, prefix: &str) -> String {
    format!(
        r#"{{:backend :dynamodb :endpoint {endpoint:?} :region "us-east-1" :table {table:?} :prefix {prefix:?}
            :access-key-id "testing" :secret-access-key {SECRET:?} :session-token {TOKEN:?}}}"#
    )
}

/// The table most tests share (each under its own prefix).
const SHARED_TABLE: &str = "datahike-tests";

fn subject() -> Subject {
    let Some(endpoint) = endpoint() else {
        let id = fresh("dynamodb-fallback");
        return Subject::new(Arc::new(MemoryStore::open(&id)), move || Arc::new(MemoryStore::open(&id)));
    };
    let map = read_str(&store_text(&endpoint, SHARED_TABLE, &fresh("suite"))).unwrap();
    let store = open_store(&map, OpenMode::Create).unwrap().expect("created");
    Subject::new(store, move || open_store(&map, OpenMode::Open).unwrap().expect("exists"))
}

mod conformance {
    datahike::store_conformance_tests!(super::subject);
}

fn config(store: &str) -> Config {
    Config::parse(&format!("{{:store {store}}}")).unwrap()
}

#[test]
fn database_conformance() {
    let Some(endpoint) = endpoint() else { return };
    datahike::store::conformance::database(&config(&store_text(&endpoint, SHARED_TABLE, &fresh("db"))));
}

/// `create-database` creates a missing table (and waits for it); before, the database does
/// not exist and opening finds nothing; `delete-database` deletes the store's items, not the
/// table, and another store in the table is left alone.
#[test]
fn create_database_creates_the_table() {
    let Some(endpoint) = endpoint() else { return };
    let table = fresh("datahike-table");
    let a = config(&store_text(&endpoint, &table, "a"));
    let b =
        Config { schema_flexibility: datahike::SchemaFlexibility::Read, ..config(&store_text(&endpoint, &table, "b")) };
    assert!(!datahike::database_exists(&a).unwrap(), "no table, no database");
    let map = read_str(&store_text(&endpoint, &table, "a")).unwrap();
    assert!(open_store(&map, OpenMode::Open).unwrap().is_none());
    assert!(open_store(&map, OpenMode::ReadOnly).unwrap().is_none());
    let returned = datahike::create_database(&a).unwrap();
    let printed = format!("{:?} {}", returned, datahike::edn::pr_str(&returned.store.to_edn()));
    assert!(!printed.contains(SECRET) && !printed.contains(TOKEN), "{printed}");
    assert!(datahike::database_exists(&a).unwrap());
    assert!(!datahike::database_exists(&b).unwrap(), "another prefix in the same table is another store");
    datahike::create_database(&b).unwrap();
    let conn = datahike::connect(&b).unwrap();
    conn.transact(&read_str("[{:n 1} {:n 2}]").unwrap()).unwrap();
    conn.release().unwrap();
    datahike::delete_database(&a).unwrap();
    assert!(!datahike::database_exists(&a).unwrap());
    assert!(open_store(&map, OpenMode::Open).unwrap().is_none(), "the marker went with the store");
    let conn = datahike::connect(&b).unwrap();
    let n =
        datahike::q(&read_str("[:find (count ?e) . :where [?e :n]]").unwrap(), &[QueryInput::from(conn.db())]).unwrap();
    assert_eq!(n, Edn::Int(2), "deleting store a left store b");
    conn.release().unwrap();
    datahike::delete_database(&b).unwrap();
}

/// Values around and far above the item limit are split and read back whole, replaced
/// (chunked by small and back), swapped by compare-and-set on a chunked expectation, and
/// deleted with their chunks.
#[test]
fn chunked_values() {
    let Some(endpoint) = endpoint() else { return };
    let map = read_str(&store_text(&endpoint, SHARED_TABLE, &fresh("chunks"))).unwrap();
    let st = open_store(&map, OpenMode::Create).unwrap().unwrap();
    let other = open_store(&map, OpenMode::Open).unwrap().unwrap();
    let value =
        |len: usize, seed: u8| -> Vec<u8> { (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect() };
    for len in [INLINE_MAX, INLINE_MAX + 1, 3 * INLINE_MAX + 17] {
        let key = format!("blobs/{len}");
        st.put_batch(&[(key.clone(), value(len, 1))]).unwrap();
        assert_eq!(other.get(&key).unwrap(), Some(value(len, 1)), "{len} bytes");
    }
    let key = "heads/big";
    let big = value(2 * INLINE_MAX + 5, 2);
    let bigger = value(4 * INLINE_MAX + 1, 3);
    assert!(st.put_if_absent(key, &big).unwrap());
    assert!(!other.put_if_absent(key, &bigger).unwrap(), "put-if-absent on a chunked value");
    assert!(!st.compare_and_set(key, Some(&bigger), b"x").unwrap(), "a wrong chunked expectation");
    assert!(!st.compare_and_set(key, Some(b"small"), b"x").unwrap(), "a small expectation of a chunked value");
    assert!(other.compare_and_set(key, Some(&big), &bigger).unwrap());
    assert_eq!(st.get(key).unwrap(), Some(bigger.clone()));
    assert!(st.compare_and_set(key, Some(&bigger), b"small").unwrap(), "chunked to inline");
    assert!(st.compare_and_set(key, Some(b"small"), &big).unwrap(), "inline to chunked");
    let got = other.get_many(&[key.to_string(), "blobs/none".into(), key.to_string()]).unwrap();
    assert_eq!(got, vec![Some(big.clone()), None, Some(big.clone())]);
    let listed = {
        let mut keys = st.list("").unwrap();
        keys.sort();
        keys
    };
    let mut expected: Vec<String> =
        [INLINE_MAX, INLINE_MAX + 1, 3 * INLINE_MAX + 17].iter().map(|len| format!("blobs/{len}")).collect();
    expected.push(key.to_string());
    expected.sort();
    assert_eq!(listed, expected, "chunks are never listed");
    st.delete_batch(&listed).unwrap();
    assert_eq!(other.get(key).unwrap(), None);
    assert!(st.list("").unwrap().is_empty());
    st.destroy().unwrap();
}

/// Secrets appear in no printed config and no error.
#[test]
fn secrets_never_printed() {
    let text = store_text("http://127.0.0.1:9", "t", "p");
    let config = config(&text);
    for printed in [format!("{config:?}"), format!("{:?}", config.store), datahike::edn::pr_str(&config.store.to_edn())]
    {
        assert!(!printed.contains(SECRET) && !printed.contains(TOKEN), "{printed}");
        assert!(printed.contains("testing"), "the key id is no secret: {printed}");
    }
    // A refused connection (nothing listens on port 9): the error names the backend, not the
    // secret. The SDK retries a few times first.
    let err = datahike::database_exists(&config).unwrap_err().to_string();
    assert!(err.contains("dynamodb") && !err.contains(SECRET) && !err.contains(TOKEN), "{err}");
    // Bad configs are refused by name, redacted.
    let bad = text.replace(":table \"t\"", ":table 7");
    let err = datahike::create_database(&self::config(&bad)).unwrap_err().to_string();
    assert!(err.contains(":table") && !err.contains(SECRET), "{err}");
    let half = format!(r#"{{:backend :dynamodb :region "us-east-1" :table "t" :secret-access-key {SECRET:?}}}"#);
    let err = datahike::create_database(&self::config(&half)).unwrap_err().to_string();
    assert!(err.contains(":access-key-id") && !err.contains(SECRET), "{err}");
}

/// The database under a tiered store whose backend is DynamoDB, the frontend in memory.
#[test]
fn tiered_over_dynamodb() {
    let Some(endpoint) = endpoint() else { return };
    let backend = store_text(&endpoint, SHARED_TABLE, &fresh("tiered"));
    let text = format!("{{:backend :tiered :frontend-config {{:backend :memory}} :backend-config {backend}}}");
    let config = Config { schema_flexibility: datahike::SchemaFlexibility::Read, ..config(&text) };
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    for i in 0..1100 {
        conn.transact(&read_str(&format!("[{{:n {i}}}]")).unwrap()).unwrap();
    }
    conn.release().unwrap();
    let conn = datahike::connect(&config).unwrap();
    let n =
        datahike::q(&read_str("[:find (count ?e) . :where [?e :n]]").unwrap(), &[QueryInput::from(conn.db())]).unwrap();
    assert_eq!(n, Edn::Int(1100));
    conn.release().unwrap();
    datahike::delete_database(&config).unwrap();
}
