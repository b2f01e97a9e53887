//! Helpers shared by the transaction integration tests, so that a test reads like Datahike's:
//! transact EDN text, then compare datoms written as EDN text.
#![allow(dead_code)]

pub mod backends;
pub mod history;

use datahike::datom::TX0;
use datahike::edn::{pr_str, read_str};
use datahike::{Config, Conn, Db, Edn, Error, IndexOrder, TxReport};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The first transaction id, `tx0 + 1`.
pub const TX1: i64 = TX0 + 1;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh in-memory database with the given extra config keys, e.g.
/// `":schema-flexibility :read"`, and a connection to it.
pub fn mem_db(extra: &str) -> Conn {
    let id = format!("txtests-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    let config = Config::parse(&format!("{{:store {{:backend :memory :id {id:?}}} {extra}}}")).expect("config");
    datahike::create_database(&config).expect("create");
    datahike::connect(&config).expect("connect")
}

/// A fresh `:read` database.
pub fn read_db() -> Conn {
    mem_db(":schema-flexibility :read")
}

/// A fresh `:write` database with `schema` (EDN text of entity maps) transacted.
pub fn write_db(schema: &str) -> Conn {
    let conn = mem_db(":schema-flexibility :write");
    transact(&conn, schema);
    conn
}

pub fn edn(text: &str) -> Edn {
    read_str(text).unwrap_or_else(|e| panic!("bad EDN in test: {e}: {text}"))
}

/// Transacts EDN text; panics with the error on failure.
pub fn transact(conn: &Conn, text: &str) -> TxReport {
    conn.transact(&edn(text)).unwrap_or_else(|e| panic!("transaction failed: {e} ({}): {text}", e.code()))
}

/// Transacts EDN text that must fail with error `code`, and checks that the database is unchanged
/// (same ids and the same datoms in every index). Returns the error message.
pub fn transact_err(conn: &Conn, text: &str, code: &str) -> String {
    let before = conn.db();
    let snapshot = all_datoms(&before);
    let err = match conn.transact(&edn(text)) {
        Ok(report) => panic!("transaction should fail with {code}: {text}\ntx-data: {:?}", report.tx_data),
        Err(e) => e,
    };
    assert_eq!(err.code(), code, "wrong error code for {text}: {err}");
    let after = conn.db();
    assert_eq!(after.max_tx(), before.max_tx(), "failed tx advanced max-tx: {text}");
    assert_eq!(after.max_eid(), before.max_eid(), "failed tx advanced max-eid: {text}");
    assert_eq!(all_datoms(&after), snapshot, "failed tx changed datoms: {text}");
    err.to_string()
}

/// `Db::with` that must fail with `code`; returns the message.
pub fn with_err(db: &Db, text: &str, code: &str) -> String {
    match db.with(&edn(text)) {
        Ok(report) => panic!("with should fail with {code}: {text}\ntx-data: {:?}", report.tx_data),
        Err(e) => {
            assert_eq!(e.code(), code, "wrong error code for {text}: {e}");
            e.to_string()
        }
    }
}

pub fn with(db: &Db, text: &str) -> TxReport {
    db.with(&edn(text)).unwrap_or_else(|e| panic!("with failed: {e} ({}): {text}", e.code()))
}

/// Every datom of every index, for before/after comparisons.
pub fn all_datoms(db: &Db) -> Vec<Vec<String>> {
    IndexOrder::ALL
        .iter()
        .map(|o| db.datoms(*o, &[]).unwrap().iter().map(|d| pr_str(&d.to_edn_vector())).collect())
        .collect()
}

fn eav(d: &datahike::Datom) -> String {
    pr_str(&Edn::Vector(vec![Edn::Int(d.e), Edn::Keyword(d.a), d.v.to_edn()]))
}

fn eav_added(d: &datahike::Datom) -> String {
    pr_str(&Edn::Vector(vec![Edn::Int(d.e), Edn::Keyword(d.a), d.v.to_edn(), Edn::Bool(d.added())]))
}

/// Substitutes `?tx` (the given tx id) and parses a vector of datom vectors into printed form.
fn expected(text: &str, tx: i64) -> Vec<String> {
    let text = text.replace("?tx", &tx.to_string());
    match &edn(&text) {
        Edn::Vector(xs) | Edn::List(xs) | Edn::Set(xs) => xs.iter().map(pr_str).collect(),
        other => panic!("expected a collection of datoms, got {other}"),
    }
}

/// The `[e a v]` of every current datom of entities below tx0 (user and schema entities),
/// sorted, compared with `text` (a vector or set of `[e a v]`; order does not matter).
pub fn assert_eav(db: &Db, text: &str) {
    let mut actual: Vec<String> =
        db.datoms(IndexOrder::Eavt, &[]).unwrap().iter().filter(|d| d.e < TX0).map(eav).collect();
    let mut want = expected(text, db.max_tx());
    actual.sort();
    want.sort();
    assert_eq!(actual, want);
}

/// Like [`assert_eav`] for the given entities only.
pub fn assert_entities(db: &Db, es: &[i64], text: &str) {
    let mut actual: Vec<String> = Vec::new();
    for e in es {
        actual.extend(db.datoms(IndexOrder::Eavt, &[Edn::Int(*e)]).unwrap().iter().map(eav));
    }
    let mut want = expected(text, db.max_tx());
    actual.sort();
    want.sort();
    assert_eq!(actual, want);
}

/// The `[e a v]` of current datoms of one entity, in index order.
pub fn entity(db: &Db, e: i64) -> Vec<String> {
    db.datoms(IndexOrder::Eavt, &[Edn::Int(e)]).unwrap().iter().map(eav).collect()
}

/// The report's tx-data as `[e a v added]`, in order, compared with `text` (`?tx` = the tx id).
pub fn assert_tx_data(report: &TxReport, text: &str) {
    let actual: Vec<String> = report.tx_data.iter().map(eav_added).collect();
    assert_eq!(actual, expected(text, report.db_after.max_tx()));
}

/// The report's tx-data without the tx entity's own datoms (`:db/txInstant`...).
pub fn assert_tx_data_user(report: &TxReport, text: &str) {
    let actual: Vec<String> = report.tx_data.iter().filter(|d| d.e < TX0).map(eav_added).collect();
    assert_eq!(actual, expected(text, report.db_after.max_tx()));
}

/// Tempids without `:db/current-tx`, as printed `(k, v)` pairs sorted by key (Datahike's
/// `:tempids` is a map).
pub fn tempids(report: &TxReport) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> =
        report.tempids.iter().filter(|(k, _)| *k != Edn::kw("db/current-tx")).map(|(k, e)| (pr_str(k), *e)).collect();
    out.sort();
    out
}

pub fn tempid(report: &TxReport, text: &str) -> i64 {
    report.tempid(&edn(text)).unwrap_or_else(|| panic!("no tempid {text} in {:?}", report.tempids))
}

pub fn entid(db: &Db, text: &str) -> Option<i64> {
    db.entid(&edn(text)).unwrap()
}

pub fn code(e: &Error) -> &'static str {
    e.code()
}

/// The next number of a SplitMix64 sequence (the benchmark generator's RNG): small, seedable
/// and the same on every platform.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The backends the tests of a capability run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Memory,
    File,
}

pub const BACKENDS: [Backend; 2] = [Backend::Memory, Backend::File];

/// The `:store` map of a fresh database on `backend`: a memory id unique in this process
/// (starting with `prefix`), or a path in a new temporary directory, returned to keep it alive.
pub fn fresh_store(backend: Backend, prefix: &str) -> (String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Memory => {
            let id = format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
            (format!("{{:backend :memory :id {id:?}}}"), None)
        }
        Backend::File => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db").display().to_string();
            (format!("{{:backend :file :path {path:?}}}"), Some(dir))
        }
    }
}

/// Copies the directory `from` to `to` recursively, lock files left out: a store opened
/// afresh, e.g. while the original's connection stays open in this process.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" && entry.file_name() != "lock" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
