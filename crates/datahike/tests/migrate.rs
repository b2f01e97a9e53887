//! Export and import (`datahike::migrate`): a database with history moves between backends
//! with identical datoms in every index, every value type keeps its type, and interrupted
//! exports and imports are detected.

mod common;

use common::history::{assert_identical, fill, fingerprint, SCHEMA};
use common::{edn, transact};
use datahike::datom::TX0;
use datahike::migrate::{self, Compression, ExportOptions, ImportOptions};
use datahike::{Config, Conn, Db, Edn, IndexOrder, TimePoint};
use proptest::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn mem_config(extra: &str) -> Config {
    let id = format!("migrate-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    Config::parse(&format!("{{:store {{:backend :memory :id {id:?}}} {extra}}}")).expect("config")
}

fn file_config(path: &Path, extra: &str) -> Config {
    Config::parse(&format!("{{:store {{:backend :file :path {:?}}} {extra}}}", path.display().to_string()))
        .expect("config")
}

fn create(config: &Config) -> Conn {
    datahike::create_database(config).expect("create");
    datahike::connect(config).expect("connect")
}

#[test]
fn history_moves_between_backends_with_identical_datoms() {
    let dir = tempfile::tempdir().unwrap();
    let source = create(&mem_config(""));
    fill(&source);
    let dump = dir.path().join("dump");
    let exported = migrate::export_db(&source.db(), &dump, &ExportOptions { chunk_size: 7, ..Default::default() })
        .expect("export");
    assert!(exported.history && exported.chunk_count > 3, "{exported:?}");
    assert!(dump.join("manifest.edn").exists() && dump.join("datoms-000001.cbor.gz").exists());

    // Memory to file.
    let file_cfg = file_config(&dir.path().join("db"), "");
    let target = create(&file_cfg);
    let report =
        migrate::import_db(&target, &dump, &ImportOptions { batch_txs: 3, ..Default::default() }).expect("import");
    assert_eq!(report.datom_count, exported.datom_count);
    assert_eq!(report.tx_count, 9);
    assert_identical(&source.db(), &target.db());
    // Views agree too, by transaction and by instant.
    let t = source.db().max_tx() - 4;
    let instant = source.db().as_of(TimePoint::Tx(t)).unwrap().last_tx_instant();
    let at = |db: &Db| [db.as_of(TimePoint::Tx(t)).unwrap(), db.as_of(TimePoint::Instant(instant)).unwrap()];
    for (a, b) in at(&source.db()).into_iter().zip(at(&target.db())) {
        assert_eq!(a.datoms(IndexOrder::Eavt, &[]).unwrap(), b.datoms(IndexOrder::Eavt, &[]).unwrap());
    }
    // Transaction metadata is queryable.
    let q = edn(r#"[:find ?s . :where [?tx :source ?s]]"#);
    assert_eq!(datahike::q(&q, &[target.db().into()]).unwrap(), Edn::str("import"));
    // Every commit of the import is stored and reachable, and garbage collection keeps it.
    assert!(target.verify_storage().unwrap() > 0);
    target.gc_storage(None).unwrap();
    // Each imported transaction is a commit: the one before the last reads as that state.
    let parent = target.db().parent_commit_ids().unwrap()[0];
    let before = target.commit_as_db(parent).unwrap().expect("the parent commit");
    assert_eq!(before.max_tx(), source.db().max_tx() - 1);
    let source_before = source.db().as_of(TimePoint::Tx(source.db().max_tx() - 1)).unwrap();
    assert_eq!(before.datoms(IndexOrder::Eavt, &[]).unwrap(), source_before.datoms(IndexOrder::Eavt, &[]).unwrap());
    // The import is durable: reopen the file database.
    target.release().unwrap();
    let reopened = datahike::connect(&file_cfg).unwrap();
    assert_identical(&source.db(), &reopened.db());
    // It goes on taking transactions after the imported ones.
    let next = transact(&reopened, r#"[{:name "Eve"}]"#);
    assert_eq!(next.db_after.max_tx(), source.db().max_tx() + 1);
    assert_eq!(next.db_after.max_eid(), source.db().max_eid() + 1);

    // File to memory, back again, uncompressed.
    let dump2 = dir.path().join("dump2");
    migrate::export_db(&reopened.db(), &dump2, &ExportOptions { compression: Compression::None, ..Default::default() })
        .expect("export");
    assert!(dump2.join("datoms-000001.cbor").exists());
    let back = create(&mem_config(""));
    migrate::import_db(&back, &dump2, &ImportOptions::default()).expect("import");
    assert_identical(&reopened.db(), &back.db());
    reopened.release().unwrap();
}

#[test]
fn exports_are_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let source = create(&mem_config(""));
    fill(&source);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let ra = migrate::export_db(&source.db(), &a, &ExportOptions::default()).unwrap();
    // Small sort windows (many scans) give the same dump.
    let rb = migrate::export_db(&source.db(), &b, &ExportOptions { sort_buffer: 7, ..Default::default() }).unwrap();
    assert_eq!(ra.manifest.get_kw("chunks"), rb.manifest.get_kw("chunks"));
    assert_eq!(ra.manifest.get_kw("semantic-digest"), rb.manifest.get_kw("semantic-digest"));
    // A re-export of an import is byte-identical in its records.
    let copy = create(&mem_config(""));
    migrate::import_db(&copy, &a, &ImportOptions::default()).unwrap();
    let rc = migrate::export_db(&copy.db(), dir.path().join("c"), &ExportOptions::default()).unwrap();
    assert_eq!(ra.manifest.get_kw("semantic-digest"), rc.manifest.get_kw("semantic-digest"));
    let sha = |m: &Edn| {
        m.get_kw("chunks").unwrap().as_seq().unwrap().iter().map(|c| c.get_kw("sha256").cloned()).collect::<Vec<_>>()
    };
    assert_eq!(sha(&ra.manifest), sha(&rc.manifest));
}

#[test]
fn current_only_export_and_attribute_refs() {
    let dir = tempfile::tempdir().unwrap();
    let source = create(&mem_config(":attribute-refs? true"));
    fill(&source);
    let dump = dir.path().join("dump");
    migrate::export_db(&source.db(), &dump, &ExportOptions::default()).unwrap();
    let manifest = std::fs::read_to_string(dump.join("manifest.edn")).unwrap();
    assert!(manifest.contains(":datahike.migrate/attribute-refs"), "{manifest}");
    let target = create(&mem_config(":attribute-refs? true"));
    migrate::import_db(&target, &dump, &ImportOptions::default()).unwrap();
    assert_identical(&source.db(), &target.db());
    // A dump of :attribute-refs? data does not go into a database without them.
    let plain = create(&mem_config(""));
    let err = migrate::import_db(&plain, &dump, &ImportOptions::default()).unwrap_err();
    assert_eq!(err.code(), "import/config-mismatch", "{err}");

    // The current datoms only.
    let source = create(&mem_config(""));
    fill(&source);
    let current = dir.path().join("current");
    let report =
        migrate::export_db(&source.db(), &current, &ExportOptions { history: Some(false), ..Default::default() })
            .unwrap();
    assert!(!report.history);
    let target = create(&mem_config(""));
    migrate::import_db(&target, &current, &ImportOptions::default()).unwrap();
    assert_eq!(source.db().datoms(IndexOrder::Eavt, &[]).unwrap(), target.db().datoms(IndexOrder::Eavt, &[]).unwrap());
    assert_eq!(source.db().max_eid(), target.db().max_eid());
}

#[test]
fn non_empty_targets_are_refused_unless_merging() {
    let dir = tempfile::tempdir().unwrap();
    let source = create(&mem_config(""));
    fill(&source);
    let dump = dir.path().join("dump");
    migrate::export_db(&source.db(), &dump, &ExportOptions::default()).unwrap();
    let config = mem_config("");
    let target = create(&config);
    transact(&target, r#"[{:db/ident :other :db/valueType :db.type/long :db/cardinality :db.cardinality/one}]"#);
    let err = migrate::import_db(&target, &dump, &ImportOptions::default()).unwrap_err();
    assert_eq!(err.code(), "import/non-empty-target");
    assert!(err.to_string().contains(&datahike::edn::pr_str(&config.store.to_edn())), "{err}");
    let report = migrate::import_db(&target, &dump, &ImportOptions { merge: true, ..Default::default() }).unwrap();
    assert!(report.merged);
    let q = edn(r#"[:find [?n ...] :where [?e :name ?n]]"#);
    let mut names: Vec<String> = match &datahike::q(&q, &[target.db().into()]).unwrap() {
        Edn::Vector(xs) => xs.iter().map(datahike::edn::pr_str).collect(),
        other => panic!("{other}"),
    };
    names.sort();
    assert_eq!(names, ["\"Alice\"", "\"Bob\"", "\"Dora\""]);
    // The same export into an empty target does not need merging, and exporting into a
    // directory that holds something is refused.
    let err = migrate::export_db(&source.db(), &dump, &ExportOptions::default()).unwrap_err();
    assert_eq!(err.code(), "export/target", "{err}");
}

#[test]
fn interrupted_exports_are_never_taken_for_complete_ones() {
    let dir = tempfile::tempdir().unwrap();
    let source = create(&mem_config(""));
    fill(&source);
    let export = |name: &str| {
        let path = dir.path().join(name);
        migrate::export_db(&source.db(), &path, &ExportOptions { chunk_size: 5, ..Default::default() }).unwrap();
        path
    };
    let config = mem_config("");
    let target = create(&config);
    let refused = |path: &Path, code: &str, says: &str| {
        let err = migrate::import_db(&target, path, &ImportOptions::default()).unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        assert!(err.to_string().contains(says), "{err}");
        // Nothing was written, and the database stays usable.
        assert_eq!(target.db().max_tx(), TX0);
        assert!(migrate::verify(path).is_err());
    };

    let no_manifest = export("no-manifest");
    std::fs::remove_file(no_manifest.join("manifest.edn")).unwrap();
    refused(&no_manifest, "import/not-a-dump", "did not finish");

    let truncated = export("truncated");
    let chunk = truncated.join("datoms-000002.cbor.gz");
    let bytes = std::fs::read(&chunk).unwrap();
    std::fs::write(&chunk, &bytes[..bytes.len() / 2]).unwrap();
    refused(&truncated, "import/corrupt-chunk", "datoms-000002.cbor.gz");

    let flipped = export("flipped");
    let chunk = flipped.join("datoms-000003.cbor.gz");
    let mut bytes = std::fs::read(&chunk).unwrap();
    // A valid gzip stream of other records: the digest catches it.
    let other = export("other");
    bytes = std::fs::read(other.join("datoms-000004.cbor.gz")).unwrap_or(bytes);
    std::fs::write(&chunk, bytes).unwrap();
    refused(&flipped, "import/corrupt-chunk", "checksum mismatch for chunk datoms-000003.cbor.gz");

    let missing = export("missing");
    std::fs::remove_file(missing.join("datoms-000002.cbor.gz")).unwrap();
    refused(&missing, "import/corrupt-chunk", "datoms-000002.cbor.gz of");

    let miscounted = export("miscounted");
    let manifest = std::fs::read_to_string(miscounted.join("manifest.edn")).unwrap();
    std::fs::write(miscounted.join("manifest.edn"), manifest.replacen(":count 5", ":count 4", 1)).unwrap();
    refused(&miscounted, "import/corrupt-chunk", "its manifest entry says 4");

    let extra = export("extra");
    std::fs::copy(extra.join("datoms-000001.cbor.gz"), extra.join("datoms-000099.cbor.gz")).unwrap();
    refused(&extra, "import/corrupt-chunk", "datoms-000099.cbor.gz");

    let newer = export("newer");
    let manifest = std::fs::read_to_string(newer.join("manifest.edn")).unwrap();
    std::fs::write(newer.join("manifest.edn"), manifest.replacen("format-version 1", "format-version 2", 1)).unwrap();
    refused(&newer, "import/unsupported", "version 2");

    // An export whose chunks are intact imports.
    let good = export("good");
    migrate::import_db(&target, &good, &ImportOptions::default()).unwrap();
    assert_identical(&source.db(), &target.db());
}

#[test]
fn an_interrupted_import_is_reported_by_every_later_connect() {
    let dir = tempfile::tempdir().unwrap();
    let source = create(&mem_config(""));
    fill(&source);
    let dump = dir.path().join("dump");
    migrate::export_db(&source.db(), &dump, &ExportOptions { chunk_size: 4, ..Default::default() }).unwrap();
    let config = file_config(&dir.path().join("db"), "");
    let target = create(&config);
    // Stop the import midway, after some batches are durable: a panic out of the progress
    // callback unwinds through the import like a crash.
    let stop = |p: &migrate::Progress| {
        if p.phase == migrate::Phase::Import && p.done > p.total * 3 / 4 {
            panic!("interrupted");
        }
    };
    let opts = ImportOptions { progress: Some(&stop), batch_txs: 1, ..Default::default() };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| migrate::import_db(&target, &dump, &opts)));
    assert!(result.is_err());
    let partial = target.db().max_tx();
    assert!(partial > TX0 && partial < source.db().max_tx(), "{partial}");
    target.release().unwrap();
    let err = datahike::connect(&config).unwrap_err();
    assert_eq!(err.code(), "import/interrupted", "{err}");
    assert!(err.to_string().contains("has not completed") && err.to_string().contains("dump"), "{err}");
    // Deleting the database and importing again works.
    datahike::delete_database(&config).unwrap();
    let target = create(&config);
    migrate::import_db(&target, &dump, &ImportOptions::default()).unwrap();
    assert_identical(&source.db(), &target.db());
    target.release().unwrap();
}

#[test]
fn progress_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let source = create(&mem_config(""));
    fill(&source);
    let seen = std::sync::Mutex::new(Vec::new());
    let record = |p: &migrate::Progress| seen.lock().unwrap().push((p.phase, p.done, p.total));
    let dump = dir.path().join("dump");
    let r = migrate::export_db(
        &source.db(),
        &dump,
        &ExportOptions { chunk_size: 10, progress: Some(&record), ..Default::default() },
    )
    .unwrap();
    let target = create(&mem_config(""));
    migrate::import_db(&target, &dump, &ImportOptions { progress: Some(&record), ..Default::default() }).unwrap();
    let seen = seen.into_inner().unwrap();
    for phase in [migrate::Phase::Export, migrate::Phase::Verify, migrate::Phase::Import] {
        let last = seen.iter().rev().find(|p| p.0 == phase).expect("phase reported");
        assert_eq!((last.1, last.2), (r.datom_count, r.datom_count), "{phase:?}");
    }
}

/// One value of each type, as EDN that the schema above coerces.
fn value_strategy() -> impl Strategy<Value = (&'static str, String)> {
    prop_oneof![
        any::<i64>().prop_map(|i| ("age", i.to_string())),
        any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| ("score", format!("{x:?}"))),
        any::<f32>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| ("ratio", format!("{:?}", f64::from(x)))),
        any::<i128>().prop_map(|i| ("big", format!("{i}N"))),
        (any::<i64>(), 0u32..12)
            .prop_map(|(u, s)| ("dec", format!("{}M", bigdecimal::BigDecimal::new(u.into(), s.into())))),
        (-62_135_596_800_000i64..253_402_300_799_999).prop_map(|ms| ("born", datahike::edn::pr_str(&Edn::Inst(ms)))),
        any::<u128>().prop_map(|u| ("uid", format!("#uuid \"{}\"", uuid::Uuid::from_u128(u)))),
        "[a-z][a-z0-9]{0,8}/[a-z][a-z0-9]{0,8}".prop_map(|k| ("kw", format!(":{k}"))),
        "[a-z][a-z0-9]{0,8}".prop_map(|s| ("sym", s)),
        any::<bool>().prop_map(|b| ("ok", b.to_string())),
        proptest::collection::vec(any::<i8>(), 0..20).prop_map(|b| (
            "blob",
            format!("#bytes [{}]", b.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" "))
        )),
        "\\PC{0,20}".prop_map(|s| ("tags", datahike::edn::pr_str(&Edn::str(&s)))),
        (any::<i64>(), "\\PC{0,8}")
            .prop_map(|(i, s)| ("pair", format!("[{i} {}]", datahike::edn::pr_str(&Edn::str(&s))))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_value_type_round_trips(values in proptest::collection::vec(value_strategy(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let source = create(&mem_config(""));
        transact(&source, SCHEMA);
        for (i, (attr, v)) in values.iter().enumerate() {
            transact(&source, &format!("[{{:name \"e{i}\" :{attr} {v}}}]"));
        }
        // Some history: retract the first value again.
        transact(&source, "[[:db/retractEntity [:name \"e0\"]]]");
        let dump = dir.path().join("dump");
        migrate::export_db(&source.db(), &dump, &ExportOptions::default()).unwrap();
        let target = create(&mem_config(""));
        migrate::import_db(&target, &dump, &ImportOptions::default()).unwrap();
        prop_assert_eq!(fingerprint(&source.db()), fingerprint(&target.db()));
    }
}
