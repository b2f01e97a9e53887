//! Dumps written the way Datahike writes them (`tests/fixtures/datahike-export/`, made by its
//! `generate.py` from Datahike's and boring's writer code, not by datahike-rs) import with
//! every value's type, ids, instants and history; exporting the result again gives the same
//! record bytes, so a database moves between Datahike and datahike-rs both ways. The legacy
//! single-file dump follows clj-cbor's `spit-all` as Datahike 0.7 wrote it.

use datahike::datom::TX0;
use datahike::edn::{pr_str, read_str};
use datahike::migrate::{self, Compression, ExportOptions, ImportOptions};
use datahike::{Config, Conn, Db, Edn, IndexOrder};
use std::io::Read;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datahike-export").join(name)
}

fn create(extra: &str, name: &str) -> Conn {
    let config = Config::parse(&format!(
        "{{:store {{:backend :memory :id \"fixture-{name}-{}\"}} {extra}}}",
        std::process::id()
    ))
    .unwrap();
    datahike::create_database(&config).unwrap();
    datahike::connect(&config).unwrap()
}

/// The current values of entity `e`, attribute by attribute, with their Rust types.
fn entity(db: &Db, e: i64) -> Vec<String> {
    db.datoms(IndexOrder::Eavt, &[Edn::Int(e)])
        .unwrap()
        .iter()
        .map(|d| format!(":{} {:?}", d.a.as_str(), d.v))
        .collect()
}

/// The uncompressed records of every chunk of a dump, in order.
fn records(dir: &Path) -> Vec<Vec<u8>> {
    let manifest = read_str(&std::fs::read_to_string(dir.join("manifest.edn")).unwrap()).unwrap();
    let gz = manifest.get_kw("compression") == Some(&Edn::kw("gzip"));
    let chunks = manifest.get_kw("chunks").unwrap().as_seq().unwrap().to_vec();
    chunks
        .iter()
        .map(|c| {
            let Some(Edn::Str(file)) = c.get_kw("file") else { panic!("{c}") };
            let bytes = std::fs::read(dir.join(file.as_ref())).unwrap();
            if gz {
                let mut raw = Vec::new();
                flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_end(&mut raw).unwrap();
                raw
            } else {
                bytes
            }
        })
        .collect()
}

#[test]
fn a_datahike_dump_with_history_imports_type_exact_and_exports_byte_identical() {
    let dump = fixture("history");
    let summary = migrate::verify(&dump).unwrap();
    assert_eq!((summary.datom_count, summary.tx_count, summary.chunk_count), (79, 3, 2));
    let conn = create("", "history");
    let report = migrate::import_db(&conn, &dump, &ImportOptions::default()).unwrap();
    assert_eq!((report.datom_count, report.tx_count, report.max_tx), (79, 3, TX0 + 3));
    let db = conn.db();
    assert_eq!(db.max_eid(), 18);
    assert_eq!(db.last_tx_instant(), 1_704_240_000_100);
    assert_eq!(
        entity(&db, 17),
        [
            ":age Long(21)",
            ":big BigInt(5)",
            ":blob Bytes([1, 2, 255, 0])",
            ":born Instant(915246245678)",
            ":dec BigDec(BigDecimal(sign=Plus, scale=2, digits=[150]))",
            ":friend Long(18)",
            ":kw Keyword(:a/b)",
            ":name String(\"Alice\")",
            ":ok Boolean(true)",
            ":pair Tuple([Long(1), String(\"x\")])",
            ":ratio Float(0.25)",
            ":score Double(1.5)",
            ":sym Symbol(foo/bar)",
            ":tags String(\"a\")",
            ":uid Uuid(11111111-2222-3333-4444-555555555555)",
        ]
    );
    assert_eq!(
        entity(&db, 18),
        [
            ":big BigInt(-123456789012345678901234567890)",
            ":dec BigDec(BigDecimal(sign=Minus, scale=3, digits=[1]))",
            ":name String(\"Bob\")",
            ":score Double(-25000000000.0)",
        ]
    );
    let history = db.history().unwrap();
    let ages: Vec<String> = history
        .datoms(IndexOrder::Eavt, &[Edn::Int(17), Edn::kw("age")])
        .unwrap()
        .iter()
        .map(|d| pr_str(&d.to_edn_vector()))
        .collect();
    assert_eq!(ages, ["[17 :age 20 536870914 true]", "[17 :age 20 536870915 false]", "[17 :age 21 536870915 true]"]);
    let q = read_str("[:find ?s ?t :where [?tx :source ?s] [?tx :db/txInstant ?t]]").unwrap();
    assert_eq!(
        pr_str(&datahike::q(&q, &[db.clone().into()]).unwrap()),
        r#"#{["datahike" #inst "2024-01-02T03:04:05.678-00:00"]}"#
    );

    // Back out: the same records, byte for byte, in the same chunks.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let exported = migrate::export_db(
        &db,
        &out,
        &ExportOptions { chunk_size: 40, compression: Compression::None, ..Default::default() },
    )
    .unwrap();
    assert_eq!(records(&out), records(&dump));
    let theirs = read_str(&std::fs::read_to_string(dump.join("manifest.edn")).unwrap()).unwrap();
    assert_eq!(exported.manifest.get_kw("semantic-digest"), theirs.get_kw("semantic-digest"));
    assert_eq!(exported.manifest.get_kw("stats"), theirs.get_kw("stats"));
    assert_eq!(exported.manifest.get_kw("requires"), theirs.get_kw("requires"));
    let shas = |m: &Edn| -> Vec<Option<Edn>> {
        m.get_kw("chunks").unwrap().as_seq().unwrap().iter().map(|c| c.get_kw("sha256").cloned()).collect()
    };
    assert_eq!(shas(&exported.manifest), shas(&theirs));
}

#[test]
fn an_attribute_refs_dump_resolves_system_references() {
    let dump = fixture("attribute-refs");
    let conn = create(":attribute-refs? true", "attr-refs");
    migrate::import_db(&conn, &dump, &ImportOptions::default()).unwrap();
    let db = conn.db();
    let q = read_str("[:find ?n ?f :where [?a :name ?n] [?a :friend ?b] [?b :name ?f]]").unwrap();
    assert_eq!(pr_str(&datahike::q(&q, &[db.clone().into()]).unwrap()), r#"#{["Alice" "Bob"]}"#);
    assert!(db.schema().is_identity(datahike::Keyword::new("name")));
    // Schema enums are presented as the system entities' ids, as Datahike does.
    let d = db.datoms(IndexOrder::Eavt, &[Edn::Int(55)]).unwrap();
    assert!(d.iter().any(|d| pr_str(&db.datom_edn(d)).contains("[55 2 ")), "{d:?}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    migrate::export_db(&db, &out, &ExportOptions { compression: Compression::None, ..Default::default() }).unwrap();
    assert_eq!(records(&out), records(&dump));
    // Not into a database without attribute references.
    let plain = create("", "attr-refs-plain");
    let err = migrate::import_db(&plain, &dump, &ImportOptions::default()).unwrap_err();
    assert_eq!(err.code(), "import/config-mismatch");
}

#[test]
fn a_legacy_single_file_dump_imports_with_its_ids_instants_and_doubles() {
    let dump = fixture("legacy-dump.cbor");
    let summary = migrate::verify(&dump).unwrap();
    assert!(summary.legacy && summary.history);
    let conn = create("", "legacy");
    let report = migrate::import_db(&conn, &dump, &ImportOptions::default()).unwrap();
    assert!(report.legacy);
    assert_eq!((report.tx_count, report.max_tx), (3, TX0 + 3));
    let db = conn.db();
    assert_eq!(
        entity(&db, 5),
        [":born Instant(915246245678)", ":name String(\"Alice\")", ":score Double(1.5)", ":tags Keyword(:a)"]
    );
    assert_eq!(entity(&db, 6), [":name String(\"Bob\")", ":score Double(2.25)"]);
    // The double 0.0 that clj-cbor wrote as a float16 is a double again.
    let scores: Vec<String> = db
        .history()
        .unwrap()
        .datoms(IndexOrder::Eavt, &[Edn::Int(6), Edn::kw("score")])
        .unwrap()
        .iter()
        .map(|d| format!("{:?} {} {}", d.v, d.tx(), d.added()))
        .collect();
    assert_eq!(scores, ["Double(0.0) 536870914 true", "Double(0.0) 536870915 false", "Double(2.25) 536870915 true"]);
    assert_eq!(db.last_tx_instant(), 1_704_067_202_500);
}

#[test]
fn a_file_that_is_not_a_dump_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "hello").unwrap();
    let conn = create("", "not-a-dump");
    let err = migrate::import_db(&conn, &path, &ImportOptions::default()).unwrap_err();
    assert_eq!(err.code(), "import/not-a-dump", "{err}");
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert_eq!(conn.db().max_tx(), TX0);
}
