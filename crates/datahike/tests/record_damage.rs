//! Damage to the small records that decide what a database is (branch heads, snapshot commit
//! records, commit packs) and to index nodes, on the file backend: every single-bit flip is
//! refused with an error naming the record, or changes nothing a user can see; a missing
//! commit record is an error saying whether garbage collection removed it or it is lost; and
//! a transaction that fails on a damaged node is absent, not durable, once the node is
//! repaired (issue 14, findings 2 and 4).

mod common;

use common::{all_datoms, copy_dir};
use datahike::edn::read_str;
use datahike::{Config, Conn, Edn, QueryInput};
use std::path::{Path, PathBuf};

fn config(dir: &Path) -> Config {
    Config::parse(&format!(
        "{{:store {{:backend :file :path {:?}}} :schema-flexibility :read :index-config {{:branching-factor 8}}}}",
        dir.display().to_string()
    ))
    .unwrap()
}

fn transact(conn: &Conn, text: &str) {
    conn.transact(&read_str(text).unwrap()).unwrap();
}

/// A store with `n` single-entity transactions, each committed by its own connection (so
/// each is a flushed snapshot, as `dthk transact` leaves them), then `packed` more through
/// one connection (so they sit in a commit pack of the last snapshot). Returns the commit
/// ids in order.
fn build(dir: &Path, n: usize, packed: usize) -> Vec<uuid::Uuid> {
    let config = config(dir);
    datahike::create_database(&config).unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let conn = datahike::connect(&config).unwrap();
        transact(&conn, &format!(r#"[{{:name "p{i}" :age {i}}}]"#));
        ids.push(conn.db().commit_id().unwrap());
        conn.release().unwrap();
    }
    let conn = datahike::connect(&config).unwrap();
    for i in 0..packed {
        transact(&conn, &format!(r#"[{{:name "q{i}" :age {i}}}]"#));
        ids.push(conn.db().commit_id().unwrap());
    }
    conn.release().unwrap();
    ids
}

fn kv_path(dir: &Path, key: &str) -> PathBuf {
    dir.join("kv").join(key.replace('/', "%2F"))
}

/// Every single-bit flip of `file` (a sample of bit positions per byte), one at a time:
/// `check` sees the outcome of reading the store with the flip in place, the file is
/// restored after each. Returns how many flips were tried.
fn flip_each_byte(file: &Path, mut check: impl FnMut(usize, u8)) -> usize {
    let original = std::fs::read(file).unwrap();
    let mut tried = 0;
    for at in 0..original.len() {
        for bit in [0x01u8, 0x10, 0x80] {
            let mut damaged = original.clone();
            damaged[at] ^= bit;
            std::fs::write(file, &damaged).unwrap();
            check(at, bit);
            tried += 1;
        }
    }
    std::fs::write(file, &original).unwrap();
    tried
}

#[test]
fn every_flip_of_the_branch_head_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    build(&db, 3, 2);
    let config = config(&db);
    let tried = flip_each_byte(&db.join("heads/db"), |at, bit| match datahike::connect(&config) {
        Ok(conn) => panic!("byte {at} ^ {bit:#x} of heads/db was accepted (max-tx {})", conn.db().max_tx()),
        Err(e) => assert!(e.to_string().contains("heads/db"), "byte {at} ^ {bit:#x}: {e}"),
    });
    assert!(tried > 300, "{tried}");
    // Restored, the store opens with everything.
    let conn = datahike::connect(&config).unwrap();
    assert_eq!(names(&conn), 5);
    conn.release().unwrap();
}

#[test]
fn every_flip_of_a_commit_record_or_commit_pack_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let ids = build(&db, 3, 3);
    let config = config(&db);
    let conn = datahike::connect(&config).unwrap();
    let expected = all_datoms(&conn.commit_as_db(ids[1]).unwrap().unwrap());
    // A snapshot commit record.
    let key = format!("commits/{}", ids[1]);
    flip_each_byte(&kv_path(&db, &key), |at, bit| match conn.commit_as_db(ids[1]) {
        Ok(db) => panic!("byte {at} ^ {bit:#x} of {key} was accepted: {:?}", db.map(|d| d.max_tx())),
        Err(e) => assert!(e.to_string().contains(&key), "byte {at} ^ {bit:#x}: {e}"),
    });
    assert_eq!(all_datoms(&conn.commit_as_db(ids[1]).unwrap().unwrap()), expected);
    // The pack holding the commits between the last two snapshots.
    let packs: Vec<String> = std::fs::read_dir(db.join("kv"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().replace("%2F", "/"))
        .filter(|k| k.starts_with("packs/"))
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    let in_pack = ids[ids.len() - 2];
    let expected = all_datoms(&conn.commit_as_db(in_pack).unwrap().unwrap());
    flip_each_byte(&kv_path(&db, &packs[0]), |at, bit| match conn.commit_as_db(in_pack) {
        Ok(db) => panic!("byte {at} ^ {bit:#x} of {} was accepted: {:?}", packs[0], db.map(|d| d.max_tx())),
        Err(e) => assert!(e.to_string().contains(&packs[0]), "byte {at} ^ {bit:#x}: {e}"),
    });
    assert_eq!(all_datoms(&conn.commit_as_db(in_pack).unwrap().unwrap()), expected);
    conn.release().unwrap();
}

#[test]
fn a_missing_commit_record_is_an_error_that_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let ids = build(&db, 4, 0);
    let config = config(&db);
    let conn = datahike::connect(&config).unwrap();
    // Never a commit of this store: nothing, as in Datahike.
    assert!(conn.commit_as_db(uuid::Uuid::new_v4()).unwrap().is_none());
    // Lost: a later commit names it as its parent.
    std::fs::remove_file(kv_path(&db, &format!("commits/{}", ids[1]))).unwrap();
    let e = conn.commit_as_db(ids[1]).unwrap_err().to_string();
    assert!(e.contains("is lost") && e.contains(&format!("commits/{}", ids[1])), "{e}");
    // The head's own commit reads from the head, which is the same record.
    std::fs::remove_file(kv_path(&db, &format!("commits/{}", ids[3]))).unwrap();
    assert_eq!(all_datoms(&conn.commit_as_db(ids[3]).unwrap().unwrap()), all_datoms(&conn.db()));
    conn.release().unwrap();

    // Collected: gc-storage with a cutoff after every commit removes the older ones and
    // records that it did.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let ids = build(&db, 3, 0);
    let conn = datahike::connect(&config_of(&db)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let report = conn.gc_storage(Some(now_millis())).unwrap();
    assert!(report.deleted.iter().any(|k| k == &format!("commits/{}", ids[0])), "{:?}", report.deleted);
    let e = conn.commit_as_db(ids[0]).unwrap_err().to_string();
    assert!(e.contains("was removed by gc-storage") && e.contains(&ids[0].to_string()), "{e}");
    assert!(conn.commit_as_db(ids[2]).unwrap().is_some());
    conn.release().unwrap();
}

fn config_of(db: &Path) -> Config {
    config(db)
}

fn now_millis() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

fn names(conn: &Conn) -> i64 {
    let q = read_str("[:find (count ?e) . :where [?e :name]]").unwrap();
    match datahike::q(&q, &[QueryInput::Db(conn.db())]).unwrap() {
        Edn::Int(n) => n,
        other => panic!("{other}"),
    }
}

fn count_new(config: &Config) -> i64 {
    let conn = datahike::connect(config).unwrap();
    let q = read_str(r#"[:find (count ?e) . :where [?e :name "new"]]"#).unwrap();
    let n = match datahike::q(&q, &[QueryInput::Db(conn.db())]).unwrap() {
        Edn::Int(n) => n,
        Edn::Nil => 0,
        other => panic!("{other}"),
    };
    conn.release().unwrap();
    n
}

/// A small deterministic generator for the damage positions.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Finding 2: with one damaged node, a transaction either fails and is absent once the node
/// is repaired, or succeeds and is present, never both failed and durable.
#[test]
fn a_transaction_failing_on_a_damaged_node_is_absent_after_repair() {
    let dir = tempfile::tempdir().unwrap();
    let orig = dir.path().join("orig");
    let config_orig = config(&orig);
    datahike::create_database(&config_orig).unwrap();
    let conn = datahike::connect(&config_orig).unwrap();
    let people: String = (0..300).map(|i| format!(r#"{{:name "p{i}" :age {i}}}"#)).collect();
    transact(&conn, &format!("[{people}]"));
    conn.release().unwrap();
    for i in 0..3 {
        let conn = datahike::connect(&config_orig).unwrap();
        transact(&conn, &format!(r#"[{{:name "q{i}" :age {i}}}]"#));
        conn.release().unwrap();
    }
    let work = dir.path().join("work");
    let config = config(&work);
    let mut rng = 14u64;
    let (mut failed, mut succeeded) = (0, 0);
    for trial in 0..60 {
        let _ = std::fs::remove_dir_all(&work);
        copy_dir(&orig, &work);
        let mut packs: Vec<PathBuf> =
            std::fs::read_dir(work.join("nodepacks")).unwrap().map(|e| e.unwrap().path()).collect();
        packs.sort();
        let pack = &packs[usize::try_from(next(&mut rng) % packs.len() as u64).unwrap()];
        let mut bytes = std::fs::read(pack).unwrap();
        let at = usize::try_from(next(&mut rng) % bytes.len() as u64).unwrap();
        bytes[at] ^= 1 << (next(&mut rng) % 8);
        std::fs::write(pack, &bytes).unwrap();
        let outcome = datahike::connect(&config).and_then(|conn| {
            let r = conn.transact(&read_str(r#"[{:name "new" :age 99}]"#).unwrap());
            // Releasing flushes, which may read the damaged node too: that is not the
            // transaction's outcome, which was decided (and reported) above.
            let _ = conn.release();
            r
        });
        // Repaired: the original bytes back.
        let name = pack.file_name().unwrap();
        std::fs::copy(orig.join("nodepacks").join(name), pack).unwrap();
        let present = count_new(&config);
        match outcome {
            Ok(_) => {
                succeeded += 1;
                assert_eq!(present, 1, "trial {trial}: acknowledged, but present {present} times");
            }
            Err(e) => {
                failed += 1;
                assert_eq!(present, 0, "trial {trial}: failed ({e}), yet durable");
                let text = e.to_string();
                assert!(text.contains("nodes/") || text.contains("nodepacks/"), "trial {trial}: {text}");
            }
        }
    }
    assert!(failed > 5 && succeeded > 5, "failed {failed}, succeeded {succeeded}");
}

#[test]
fn every_flip_of_the_format_marker_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    build(&db, 1, 0);
    let config = config(&db);
    flip_each_byte(&db.join("FORMAT"), |at, bit| match datahike::connect(&config) {
        Ok(_) => panic!("byte {at} ^ {bit:#x} of FORMAT was accepted"),
        Err(e) => assert!(e.to_string().contains("FORMAT") || e.to_string().contains("format"), "{e}"),
    });
    assert!(datahike::connect(&config).is_ok());
}
