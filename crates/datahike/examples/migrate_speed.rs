//! Export and import speed on a database with history:
//! `cargo run --release -p datahike --example migrate_speed -- [DATOMS] [DATOMS-PER-TX]`
//! (default 1,000,000 datoms in transactions of 100). Builds the source in memory, exports it
//! (gzip) and imports it into a fresh file database and a fresh memory database, printing
//! datoms per second for each step.

use datahike::edn::read_str;
use datahike::migrate::{self, ExportOptions, ImportOptions};
use datahike::{Config, Edn};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let target: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let per_tx: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100);
    let dir = tempfile::tempdir().expect("temp dir");
    let source = Config::memory("migrate-speed-source");
    datahike::create_database(&source).expect("create");
    let conn = datahike::connect(&source).expect("connect");
    conn.transact(
        &read_str(
            r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
                {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
                {:db/ident :score :db/valueType :db.type/double :db/cardinality :db.cardinality/one}
                {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]"#,
        )
        .expect("schema"),
    )
    .expect("schema");
    // Each entity has 4 datoms; every tenth transaction overwrites ages (history).
    let start = Instant::now();
    let mut n = 0u64;
    let mut person = 0u64;
    let mut tx = 0u64;
    while n < target {
        let mut items = Vec::new();
        if tx % 10 == 9 && person > per_tx {
            for i in 0..per_tx / 2 {
                let who = person - i - 1;
                items.push(format!("[:db/add [:name \"p{who}\"] :age {}]", tx % 90));
            }
        } else {
            for _ in 0..per_tx / 4 {
                let friend = if person > 0 { format!(":friend [:name \"p{}\"]", person / 2) } else { String::new() };
                items.push(format!("{{:name \"p{person}\" :age {} :score {}.5 {friend}}}", person % 90, person % 7));
                person += 1;
            }
        }
        let report = conn.transact(&read_str(&format!("[{}]", items.join(" "))).expect("tx")).expect("tx");
        tx += 1;
        // Retractions also stay in history, next to the assertions they retract.
        n += report.tx_data.len() as u64;
    }
    let db = conn.db();
    let datoms =
        db.history().expect("history").count_key(datahike::IndexOrder::Eavt, &Default::default()).expect("count");
    eprintln!();
    println!(
        "source: {datoms} datoms (history), {} transactions, built in {:.1?}",
        db.max_tx() - datahike::datom::TX0,
        start.elapsed()
    );

    let dump = dir.path().join("dump");
    let start = Instant::now();
    let exported = migrate::export_db(&db, &dump, &ExportOptions::default()).expect("export");
    let secs = start.elapsed().as_secs_f64();
    let bytes: u64 =
        std::fs::read_dir(&dump).expect("dump").map(|e| e.expect("entry").metadata().expect("stat").len()).sum();
    println!(
        "export: {} records in {secs:.2} s = {:.0} datoms/s ({} chunks, {:.1} MB gzipped)",
        exported.datom_count,
        exported.datom_count as f64 / secs,
        exported.chunk_count,
        bytes as f64 / 1e6
    );

    let start = Instant::now();
    let summary = migrate::verify(&dump).expect("verify");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "verify (read, digest, decode): {} records in {secs:.2} s = {:.0} datoms/s",
        summary.datom_count,
        summary.datom_count as f64 / secs
    );

    for (name, config) in
        [("file", Config::file(dir.path().join("db"))), ("memory", Config::memory("migrate-speed-target"))]
    {
        datahike::create_database(&config).expect("create");
        let target = datahike::connect(&config).expect("connect");
        let start = Instant::now();
        let report = migrate::import_db(&target, &dump, &ImportOptions::default()).expect("import");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "import into {name}: {} records, {} transactions in {secs:.2} s = {:.0} datoms/s",
            report.datom_count,
            report.tx_count,
            report.datom_count as f64 / secs
        );
        assert_eq!(target.db().max_tx(), db.max_tx());
        assert_eq!(
            target.db().datoms(datahike::IndexOrder::Eavt, &[Edn::Int(1)]).expect("datoms"),
            db.datoms(datahike::IndexOrder::Eavt, &[Edn::Int(1)]).expect("datoms")
        );
        target.release().expect("release");
    }
}
