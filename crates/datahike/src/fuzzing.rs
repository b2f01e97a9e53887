//! The checks the fuzz targets in `fuzz/` run, one per kind of input, public behind the cargo
//! feature `fuzzing` so that the targets and the corpus replay test
//! (`tests/fuzz_corpus.rs`) run the same code.
//!
//! Each `check_*` function takes arbitrary bytes, feeds them to one reader or decoder, and
//! panics when the law of that input is broken: a reader may refuse input with an error, but
//! never panic, and what it accepts must survive encoding again. The private decoders of
//! stored bytes are reached through thin wrappers in their own modules; nothing else of the
//! crate's internals is exposed. Not part of the stable API.

use crate::config::Config;
use crate::datom::IndexOrder;
use crate::db::Db;
use crate::edn::{pr_str, read_all, read_str, Edn};
use crate::store::file_fuzzing::{frame_at, scan, DamageRule};
use crate::store::{MemoryStore, PackedStore, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A check: panics when the input breaks a law of its reader.
pub type Check = fn(&[u8]);

/// The checks, by target name (the name of the fuzz target and of its corpus directory).
pub const CHECKS: &[(&str, Check)] = &[
    ("edn_reader", check_edn_reader),
    ("query_parser", check_query_parser),
    ("pull_pattern", check_pull_pattern),
    ("tx_data", check_tx_data),
    ("config", check_config),
    ("cbor_import", check_cbor_import),
    ("index_node", check_index_node),
    ("node_pack", check_node_pack),
    ("log_record", check_log_record),
    ("head", check_head),
    ("log_segment", check_log_segment),
];

/// The schema of the database that tx data and pull patterns are tried against: one
/// attribute of each kind that changes how a transaction or a pull runs.
pub const SCHEMA: &str = r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
 {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :email :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/value}
 {:db/ident :tag :db/valueType :db.type/keyword :db/cardinality :db.cardinality/many}
 {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
 {:db/ident :part :db/valueType :db.type/ref :db/cardinality :db.cardinality/many :db/isComponent true}
 {:db/ident :pair :db/valueType :db.type/tuple :db/tupleTypes [:db.type/long :db.type/string] :db/cardinality :db.cardinality/one}
 {:db/ident :name+age :db/valueType :db.type/tuple :db/tupleAttrs [:name :age] :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}]"#;

/// The entities the pull target reads (it pulls every entity id up to the database's max-eid).
pub const DATA: &str = r#"[{:db/id -1 :name "Ann" :age 30 :email "ann@example.com" :tag [:a :b] :friend [-2] :part [{:name "Ann's part" :age 1}]}
 {:db/id -2 :name "Bob" :age 40 :friend [-1 -3] :pair [1 "x"]}
 {:db/id -3 :name "Cid" :friend [-2]}]"#;

/// Text of the input, or `None` when it is not UTF-8 (the text readers take `&str`).
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A fresh in-memory config no other check uses.
fn fresh_memory_config(what: &str) -> Config {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    Config::memory(&format!("fuzz-{what}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)))
}

/// Every datom of `db`, printed: what "changes nothing" compares.
fn contents(db: &Db) -> String {
    let datoms = db.datoms(IndexOrder::Eavt, &[]).expect("reading a memory database");
    format!("{} {} {datoms:?}", db.max_tx(), db.max_eid())
}

/// Runs `body` on a connection to a new memory database holding [`SCHEMA`]; `body` returns
/// the connection it leaves open (it may have reconnected), which is released before the
/// database is deleted.
fn with_schema_db(what: &str, body: impl FnOnce(&Config, crate::Conn) -> crate::Conn) {
    let config = fresh_memory_config(what);
    crate::create_database(&config).expect("creating a memory database");
    let conn = crate::connect(&config).expect("connecting to a memory database");
    conn.transact(&read_str(SCHEMA).expect("the schema reads")).expect("the schema transacts");
    body(&config, conn).release().expect("releasing a memory connection");
    crate::delete_database(&config).expect("deleting a memory database");
}

/// The database of [`SCHEMA`] and [`DATA`], built once (a `Db` never changes).
pub fn sample_db() -> &'static Db {
    static DB: OnceLock<Db> = OnceLock::new();
    DB.get_or_init(|| {
        let config = fresh_memory_config("sample");
        crate::create_database(&config).expect("creating a memory database");
        let conn = crate::connect(&config).expect("connecting to a memory database");
        conn.transact(&read_str(SCHEMA).expect("the schema reads")).expect("the schema transacts");
        conn.transact(&read_str(DATA).expect("the data reads")).expect("the data transacts");
        conn.db()
    })
}

/// EDN text: every value read prints as text that reads back as an equal value and prints the
/// same again.
pub fn check_edn_reader(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(values) = read_all(text) else { return };
    for value in values {
        let printed = pr_str(&value);
        let reread = match read_str(&printed) {
            Ok(reread) => reread,
            Err(e) => panic!("{text:?} read as {value:?} printed as {printed:?}, which fails to read: {e}"),
        };
        assert_eq!(pr_str(&reread), printed, "printing {text:?} is not stable");
        // NaN equals nothing, itself included; the printed text was compared above.
        if !printed.contains("##NaN") {
            assert_eq!(reread, value, "{text:?} printed as {printed:?}");
        }
    }
}

/// Query text: the query parser and the rules parser answer with a value or an error.
pub fn check_query_parser(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(query) = read_str(text) else { return };
    let _ = crate::query::parser::parse_query(&query);
    let _ = crate::query::parser::parse_rules(&query);
}

/// Pull pattern text: parsed against a database with a schema, and every entity pulled with
/// it when it parses.
pub fn check_pull_pattern(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(pattern) = read_str(text) else { return };
    let db = sample_db();
    if crate::PullPattern::parse(&pattern, db).is_err() {
        return;
    }
    let eids: Vec<Edn> = (1..=db.max_eid()).map(Edn::Int).collect();
    for eid in &eids {
        let _ = crate::pull(db, &pattern, eid);
    }
    let _ = crate::pull_many(db, &pattern, &Edn::Vector(eids));
}

/// Transaction data: transacted into a database with [`SCHEMA`]; a transaction that fails
/// leaves the database as it was, in this connection and after reconnecting.
pub fn check_tx_data(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(tx) = read_str(text) else { return };
    with_schema_db("tx", |config, conn| {
        let before = contents(&conn.db());
        if conn.transact(&tx).is_ok() {
            // What was accepted reads back, also from the store.
            let _ = contents(&conn.db());
            conn.release().expect("releasing");
            let again = crate::connect(config).expect("reconnecting after an accepted transaction");
            let _ = contents(&again.db());
            return again;
        }
        assert_eq!(contents(&conn.db()), before, "the failed transaction {text:?} changed the database");
        // Released (the last reference: flushed and closed), then opened again from the store.
        conn.release().expect("releasing");
        let again = crate::connect(config).expect("reconnecting");
        assert_eq!(contents(&again.db()), before, "the failed transaction {text:?} changed the stored database");
        again
    });
}

/// Config text: `Config::parse` answers with a config or an error; a config it accepts prints
/// as a map it accepts again, and that prints the same.
pub fn check_config(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(config) = Config::parse(text) else { return };
    let printed = pr_str(&config.to_edn());
    let again =
        Config::parse(&printed).unwrap_or_else(|e| panic!("{text:?} parsed, but its print {printed} does not: {e}"));
    assert_eq!(pr_str(&again.to_edn()), printed, "the config {text:?} does not print stably");
}

/// CBOR: an item that decodes encodes to bytes that decode to the same item; EDN from CBOR
/// (the server's `application/cbor` bodies) round-trips through CBOR; a legacy dump imports
/// into a memory database or fails leaving it empty.
pub fn check_cbor_import(data: &[u8]) {
    if let Ok(item) = crate::cbor::decode(data) {
        let bytes = crate::cbor::to_vec(&item);
        let again = crate::cbor::decode(&bytes).unwrap_or_else(|e| panic!("{item:?} encodes to bytes that fail: {e}"));
        assert_eq!(crate::cbor::to_vec(&again), bytes, "{item:?} does not encode stably");
    }
    if let Ok(edn) = crate::cbor::edn_from_cbor(data) {
        let printed = pr_str(&edn);
        let again = crate::cbor::edn_from_cbor(&crate::cbor::edn_to_cbor(&edn))
            .unwrap_or_else(|e| panic!("{printed} from CBOR does not read back from its CBOR: {e}"));
        assert_eq!(pr_str(&again), printed, "{printed} does not round-trip through CBOR");
    }
    check_import(data);
}

fn check_import(data: &[u8]) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "datahike-fuzz-dump-{}-{}.cbor",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, data).expect("writing a temporary dump");
    let _ = crate::migrate::verify(&path);
    let config = fresh_memory_config("import");
    crate::create_database(&config).expect("creating a memory database");
    let conn = crate::connect(&config).expect("connecting to a memory database");
    let before = contents(&conn.db());
    if crate::migrate::import_db(&conn, &path, &crate::migrate::ImportOptions::default()).is_err() {
        assert_eq!(contents(&conn.db()), before, "a failed import changed the database");
    } else {
        let _ = contents(&conn.db());
    }
    conn.release().expect("releasing a memory connection");
    crate::delete_database(&config).expect("deleting a memory database");
    let _ = std::fs::remove_file(&path);
}

/// An index node (and the codec's datom lists): what decodes encodes to bytes that decode to
/// the same bytes again.
pub fn check_index_node(data: &[u8]) {
    if let Ok(encoded) = crate::index::reencode_node(data) {
        let again = crate::index::reencode_node(&encoded)
            .unwrap_or_else(|e| panic!("a node decoded from {data:?} encodes to bytes that fail: {e}"));
        assert_eq!(again, encoded, "the node of {data:?} does not encode stably");
    }
    if let Ok(datoms) = crate::index::codec::decode_datoms(data) {
        let mut bytes = Vec::new();
        crate::index::codec::encode_datoms(&datoms, &mut bytes);
        let again = crate::index::codec::decode_datoms(&bytes)
            .unwrap_or_else(|e| panic!("datoms {datoms:?} encode to bytes that fail: {e}"));
        let mut rebytes = Vec::new();
        crate::index::codec::encode_datoms(&again, &mut rebytes);
        assert_eq!(rebytes, bytes, "datoms {datoms:?} do not encode stably");
    }
    let mut reader = crate::index::codec::Reader::new(data);
    while !reader.is_at_end() && reader.value().is_ok() {}
}

/// A node pack stored under `nodepacks/`: listing its nodes and reading them answer with
/// bytes or an error.
pub fn check_node_pack(data: &[u8]) {
    let memory = MemoryStore::new();
    memory
        .put_batch(&[("nodepacks/000000000000000000000001-00000001-000001.pack".to_string(), data.to_vec())])
        .expect("a memory put");
    let store = PackedStore::new(memory);
    let Ok(keys) = store.list("nodes/") else { return };
    for key in &keys {
        if let Ok(Some(bytes)) = store.get(key) {
            assert!(bytes.len() <= data.len(), "node {key} is longer than its pack");
        }
    }
    let _ = store.get_many(&keys);
    let _ = store.get("nodes/00000000000000000000000000000000");
}

/// A log record and a commit pack: what decodes encodes to bytes that decode and encode the
/// same.
pub fn check_log_record(data: &[u8]) {
    if let Ok(encoded) = crate::conn::fuzzing::reencode_log_record(data) {
        let again = crate::conn::fuzzing::reencode_log_record(&encoded)
            .unwrap_or_else(|e| panic!("a log record decoded from {data:?} encodes to bytes that fail: {e}"));
        assert_eq!(again, encoded, "the log record of {data:?} does not encode stably");
    }
    let _ = crate::conn::fuzzing::reencode_pack("packs/fuzz", data);
}

/// A branch head or snapshot commit record: what decodes encodes to bytes that decode and
/// encode the same.
pub fn check_head(data: &[u8]) {
    if let Ok(encoded) = crate::conn::fuzzing::reencode_head("heads/fuzz", data) {
        let again = crate::conn::fuzzing::reencode_head("heads/fuzz", &encoded)
            .unwrap_or_else(|e| panic!("a head decoded from {data:?} encodes to bytes that fail: {e}"));
        assert_eq!(again, encoded, "the head of {data:?} does not encode stably");
    }
}

/// A segment of the file store's log: under every damage rule, the scan answers with frames
/// in increasing order inside its valid prefix, or an error.
pub fn check_log_segment(data: &[u8]) {
    for is_last in [true, false] {
        for rule in [DamageRule::Skip, DamageRule::SkipThrough(0), DamageRule::SkipThrough(u64::MAX)] {
            let Ok((frames, end)) = scan(data, is_last, rule) else { continue };
            assert!(end <= data.len(), "the valid prefix ends after the segment");
            for pair in frames.windows(2) {
                if let [a, b] = pair {
                    assert!(a.0 < b.0, "frames out of order: {} then {}", a.0, b.0);
                    assert!(a.1.end <= b.1.start, "frames overlap");
                }
            }
            for (seq, payload) in &frames {
                assert!(payload.end <= end, "a frame after the valid prefix");
                let start = payload.start.checked_sub(16).expect("a frame has a 16-byte header");
                assert_eq!(frame_at(data, start), Some((*seq, payload.clone())), "a frame found by the scan");
            }
        }
    }
}
