//! The `:s3` backend against two real S3-protocol servers, both with real conditional writes
//! (`If-None-Match: *`, `If-Match: <etag>`): moto (`DATAHIKE_TEST_S3_ENDPOINT`) and
//! SeaweedFS (`DATAHIKE_TEST_SEAWEED_ENDPOINT`, which checks SigV4 signatures with the key
//! `testing`/`testing`). `.ci/services.sh start` starts both and `.ci/services.sh env` prints
//! the variables. Unset, the tests fail under CI (`CI` set) and otherwise print a note and
//! pass without running.
//!
//! Each server runs the store conformance suite and the database conformance check, bucket
//! creation, prefixes and open modes, a flush that writes one pack object read back by
//! ranged GETs, secrets that never show, and a writer with three reader processes on one
//! bucket.
#![cfg(feature = "s3")]

mod objstore_common;

use datahike::edn::read_str;
use datahike::store::object::S3Backend;
use datahike::{Config, Edn, QueryInput};
use objstore_common::{endpoint, unique, Server};
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bucket the tests share; each test uses its own prefix in it.
const BUCKET: &str = "dthk-test-s3";

fn server(var: &str, name: &'static str, extra: &str) -> Option<Server> {
    let endpoint = endpoint(var, &format!("S3 ({name})"))?;
    Some(Server {
        name,
        backend: "s3",
        endpoint,
        extra: format!(":region \"us-east-1\" {extra}"),
        bucket: BUCKET.to_owned(),
        open_kv: S3Backend::open_kv,
        registered: Arc::new(S3Backend),
    })
}

/// moto: accepts any credentials; the environment's are used.
fn moto() -> Option<Server> {
    server("DATAHIKE_TEST_S3_ENDPOINT", "moto", "")
}

/// SeaweedFS: checks signatures; the credentials are in the config.
fn seaweedfs() -> Option<Server> {
    server("DATAHIKE_TEST_SEAWEED_ENDPOINT", "seaweedfs", ":access-key-id \"testing\" :secret-access-key \"testing\"")
}

mod moto_conformance {
    datahike::store_conformance_tests!(optional: || super::moto().map(|s| s.subject()));
}

mod seaweedfs_conformance {
    datahike::store_conformance_tests!(optional: || super::seaweedfs().map(|s| s.subject()));
}

#[test]
fn database_conformance_moto() {
    let Some(server) = moto() else { return };
    datahike::store::conformance::database(&server.fresh_config(""));
}

#[test]
fn database_conformance_seaweedfs() {
    let Some(server) = seaweedfs() else { return };
    datahike::store::conformance::database(&server.fresh_config(""));
}

#[test]
fn create_database_makes_the_bucket_moto() {
    let Some(server) = moto() else { return };
    objstore_common::create_database_makes_the_bucket(&server);
}

#[test]
fn create_database_makes_the_bucket_seaweedfs() {
    let Some(server) = seaweedfs() else { return };
    objstore_common::create_database_makes_the_bucket(&server);
}

#[test]
fn prefixes_and_open_modes_moto() {
    let Some(server) = moto() else { return };
    objstore_common::prefixes_and_open_modes(&server);
}

#[test]
fn prefixes_and_open_modes_seaweedfs() {
    let Some(server) = seaweedfs() else { return };
    objstore_common::prefixes_and_open_modes(&server);
}

#[test]
fn a_flush_is_one_pack_object_read_by_range_moto() {
    let Some(server) = moto() else { return };
    objstore_common::flush_writes_one_pack_and_reads_by_range(&server);
}

#[test]
fn a_flush_is_one_pack_object_read_by_range_seaweedfs() {
    let Some(server) = seaweedfs() else { return };
    objstore_common::flush_writes_one_pack_and_reads_by_range(&server);
}

/// Secrets given in the config show nowhere: not in the printed config, not in what
/// create-database returns, not in the error of a request SeaweedFS refuses because the
/// secret is wrong.
#[test]
fn secrets_never_show() {
    let secret = "S3cret-Do-Not-Print-4711";
    let token = "T0ken-Do-Not-Print-0815";
    if let Some(server) = moto() {
        let store = format!(
            "{{:backend :s3 :bucket {BUCKET:?} :prefix {:?} :region \"us-east-1\" :endpoint {:?} \
              :access-key-id \"AKIDEXAMPLE\" :secret-access-key {secret:?} :session-token {token:?}}}",
            unique("secrets"),
            server.endpoint
        );
        let config = Config::parse(&format!("{{:store {store} :schema-flexibility :read}}")).unwrap();
        let created = datahike::create_database(&config).expect("create-database on moto");
        for shown in [format!("{config:?}"), format!("{created:?}"), format!("{:?}", created.store)] {
            assert!(!shown.contains(secret) && !shown.contains(token), "a secret shows: {shown}");
        }
        let again = datahike::create_database(&config).unwrap_err().to_string();
        assert!(again.contains("already exists"), "{again}");
        objstore_common::assert_hidden(secret, &config, &again);
        objstore_common::assert_hidden(token, &config, &again);
        datahike::delete_database(&config).unwrap();
    }
    if let Some(server) = seaweedfs() {
        let store = format!(
            "{{:backend :s3 :bucket {BUCKET:?} :prefix \"secrets\" :region \"us-east-1\" :endpoint {:?} \
              :access-key-id \"testing\" :secret-access-key {secret:?} :session-token {token:?}}}",
            server.endpoint
        );
        let config = Config::parse(&format!("{{:store {store}}}")).unwrap();
        let err = datahike::create_database(&config).expect_err("SeaweedFS refuses a wrong secret");
        let message = err.to_string();
        assert!(message.contains("s3 error"), "{message}");
        objstore_common::assert_hidden(secret, &config, &message);
        objstore_common::assert_hidden(token, &config, &message);
        let debug = format!("{err:?}");
        assert!(!debug.contains(secret) && !debug.contains(token), "{debug}");
    }
}

// ---------------------------------------------------------------- several processes

const ROLE_VAR: &str = "DATAHIKE_S3_TEST_ROLE";
const CONFIG_VAR: &str = "DATAHIKE_S3_TEST_CONFIG";
const WRITE_SECS: u64 = 15;
const READ_SECS: u64 = 20;

fn int(edn: &Edn) -> i64 {
    match edn {
        Edn::Int(n) => *n,
        other => panic!("not an int: {other}"),
    }
}

/// The pairs a database holds, each checked whole: every transaction wrote two entities with
/// one `:pair` value, so a snapshot with one of them and not the other is a torn read.
fn pairs(db: &datahike::Db) -> BTreeSet<i64> {
    let rows =
        datahike::q(&read_str("[:find ?p (count ?e) :where [?e :pair ?p]]").unwrap(), &[QueryInput::from(db.clone())])
            .expect("query");
    let rows: Vec<Edn> = match &rows {
        Edn::Set(rows) => rows.to_vec(),
        Edn::Vector(rows) => rows.to_vec(),
        other => panic!("rows: {other}"),
    };
    rows.iter()
        .map(|row| {
            let Edn::Vector(row) = row else { panic!("row: {row}") };
            assert_eq!(int(&row[1]), 2, "a partial transaction: pair {} has {} entities", row[0], row[1]);
            int(&row[0])
        })
        .collect()
}

/// One process of [`several_processes_on_one_bucket`]; nothing without its environment.
#[test]
fn multi_process_role() {
    let Ok(role) = std::env::var(ROLE_VAR) else { return };
    let store = std::env::var(CONFIG_VAR).expect("config");
    let start = Instant::now();
    if role == "writer" {
        let config = Config::parse(&format!("{{:store {store} :schema-flexibility :read}}")).unwrap();
        let conn = datahike::connect(&config).expect("writer connect");
        let mut i = 0i64;
        while start.elapsed() < Duration::from_secs(WRITE_SECS) {
            let tx = format!("[{{:pair {i} :side \"a\"}} {{:pair {i} :side \"b\"}}]");
            conn.transact(&read_str(&tx).unwrap()).expect("transact");
            println!("acked {i}");
            // Flushes (pack writes, head swaps, log discards) while readers read.
            if i % 25 == 24 {
                conn.flush().expect("flush");
            }
            i += 1;
        }
        conn.release().expect("release");
        println!("writer done {i}");
    } else {
        let config = Config::parse(&format!("{{:store {store} :schema-flexibility :read :read-only? true}}")).unwrap();
        let conn = datahike::connect(&config).expect("reader connect");
        let (mut last, mut reads, mut distinct) = (BTreeSet::new(), 0u64, 0u64);
        while start.elapsed() < Duration::from_secs(READ_SECS) {
            let db = conn.latest().expect("latest");
            let now = pairs(&db);
            assert!(now.is_superset(&last), "a reader went back: {} pairs after {}", now.len(), last.len());
            if now != last {
                distinct += 1;
            }
            last = now;
            reads += 1;
        }
        conn.release().expect("release");
        println!("reader done {reads} {distinct} {}", last.len());
    }
}

/// The rest of `line` after `marker` (the test harness may print before it on one line).
fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|at| &line[at + marker.len()..])
}

/// A writer process and three reader processes (`:read-only? true`) on one store for about
/// 20 s: no acknowledged commit is lost, every read is a whole snapshot (both entities of
/// each transaction or neither), readers only move forward and do see progress, and the
/// storage verifies afterwards.
fn several_processes_on_one_bucket(server: &Server) {
    let store = server.store_edn(&server.bucket, &unique("procs"));
    let config = Config::parse(&format!("{{:store {store} :schema-flexibility :read}}")).unwrap();
    datahike::create_database(&config).expect("create-database");
    let spawn = |role: &str| {
        Command::new(std::env::current_exe().unwrap())
            .args(["multi_process_role", "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE_VAR, role)
            .env(CONFIG_VAR, &store)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let writer = spawn("writer");
    let readers: Vec<_> = (0..3).map(|_| spawn("reader")).collect();
    let writer = writer.wait_with_output().unwrap();
    let writer_out = String::from_utf8_lossy(&writer.stdout);
    assert!(writer.status.success(), "writer failed: {writer_out}\n{}", String::from_utf8_lossy(&writer.stderr));
    let acked: BTreeSet<i64> =
        writer_out.lines().filter_map(|l| after(l, "acked ")).map(|n| n.parse().unwrap()).collect();
    assert!(acked.len() > 20, "only {} commits in {WRITE_SECS} s", acked.len());
    for reader in readers {
        let out = reader.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "reader failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
        let done = text.lines().find_map(|l| after(l, "reader done ")).expect("reader summary");
        let numbers: Vec<u64> = done.split(' ').map(|n| n.parse().unwrap()).collect();
        eprintln!(
            "{}: reader: {} reads, {} distinct snapshots, {} pairs at the end",
            server.name, numbers[0], numbers[1], numbers[2]
        );
        assert!(numbers[1] >= 2, "a reader never saw the database advance: {done}");
        assert_eq!(numbers[2], acked.len() as u64, "a reader's last snapshot lacks commits");
    }
    eprintln!("{}: the writer acknowledged {} commits", server.name, acked.len());
    let conn = datahike::connect(&config).expect("connect");
    let stored = pairs(&conn.db());
    assert!(acked.is_subset(&stored), "acknowledged commits lost: {:?}", acked.difference(&stored).collect::<Vec<_>>());
    conn.verify_storage().expect("verify-storage");
    conn.release().expect("release");
    datahike::delete_database(&config).expect("delete-database");
}

#[test]
fn several_processes_on_one_bucket_moto() {
    let Some(server) = moto() else { return };
    several_processes_on_one_bucket(&server);
}

#[test]
fn several_processes_on_one_bucket_seaweedfs() {
    let Some(server) = seaweedfs() else { return };
    several_processes_on_one_bucket(&server);
}
