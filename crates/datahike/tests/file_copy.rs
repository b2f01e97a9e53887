//! A copy of a file store taken while the database is being written (files copied in name
//! order, as `rsync -a` or `cp -r` do: `heads/` before `log/` before `nodepacks/`) opens, and holds
//! a prefix of the committed transactions.

use datahike::{edn::read_str, Config, Edn, IndexOrder};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn config(dir: &Path) -> Config {
    // Small log segments, so that flushes really discard sealed segments.
    std::env::set_var("DATAHIKE_LOG_SEGMENT_BYTES", "256");
    Config::parse(&format!(
        "{{:store {{:backend :file :path {:?}}} :schema-flexibility :read :index-config {{:branching-factor 8}}}}",
        dir.display().to_string()
    ))
    .unwrap()
}

/// Copies `from` into `to` recursively, entries in name order, skipping temp files.
fn copy_sorted(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(from).unwrap().map_while(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let target = to.join(e.file_name());
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() {
            copy_sorted(&e.path(), &target);
        } else if !e.file_name().to_string_lossy().contains('~') {
            // A file deleted between listing and copying (a discarded log segment) is skipped.
            let _ = std::fs::copy(e.path(), &target);
        }
    }
}

#[test]
fn a_copy_taken_during_writes_and_flushes_opens_with_a_prefix_of_the_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    datahike::create_database(&config(&dir)).unwrap();
    let conn = datahike::connect(&config(&dir)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (conn, stop) = (conn.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut k = 0i64;
            while !stop.load(Ordering::Relaxed) || k < 200 {
                conn.transact(&read_str(&format!("[{{:k {k} :payload \"p{k}\"}}]")).unwrap()).unwrap();
                if k % 25 == 24 {
                    conn.flush().unwrap();
                }
                k += 1;
            }
            k
        })
    };
    let mut copies = 0;
    for round in 0..6 {
        std::thread::sleep(std::time::Duration::from_millis(30));
        let copy = tmp.path().join(format!("copy-{round}"));
        copy_sorted(&dir, &copy);
        let c = datahike::connect(&config(&copy)).expect("a copy taken while writing opens");
        let db = c.db();
        let mut ks: Vec<i64> =
            db.datoms(IndexOrder::Aevt, &[Edn::kw("k")]).unwrap().iter().map(|d| d.v.as_long().unwrap()).collect();
        ks.sort_unstable();
        assert!(ks.iter().enumerate().all(|(i, k)| *k == i as i64), "copy {round} is not a prefix: {ks:?}");
        // Every entity is whole.
        assert_eq!(db.datoms(IndexOrder::Aevt, &[Edn::kw("payload")]).unwrap().len(), ks.len());
        c.release().unwrap();
        copies += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written >= 200);
    assert_eq!(copies, 6);
    conn.release().unwrap();
}

/// The deterministic version of the race above: the copy takes `heads/`, then a flush moves the
/// head and discards log, then the copy takes `log/` and `nodepacks/`. The log is discarded one
/// flush behind, so the copied head still finds every record after it.
#[test]
fn a_flush_between_copying_the_head_and_the_log_leaves_the_copy_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    datahike::create_database(&config(&dir)).unwrap();
    let conn = datahike::connect(&config(&dir)).unwrap();
    let tx = |k: i64| conn.transact(&read_str(&format!("[{{:k {k}}}]")).unwrap()).unwrap();
    (0..10).for_each(|k| {
        tx(k);
    });
    conn.flush().unwrap();
    (10..20).for_each(|k| {
        tx(k);
    });
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    for name in ["FORMAT", "LOCK", "HEADS.LOCK"] {
        if dir.join(name).exists() {
            std::fs::copy(dir.join(name), copy.join(name)).unwrap();
        }
    }
    copy_sorted(&dir.join("heads"), &copy.join("heads"));
    (20..30).for_each(|k| {
        tx(k);
    });
    conn.flush().unwrap();
    copy_sorted(&dir.join("log"), &copy.join("log"));
    copy_sorted(&dir.join("nodepacks"), &copy.join("nodepacks"));
    let c = datahike::connect(&config(&copy)).expect("the copy opens");
    let n = c.db().datoms(IndexOrder::Aevt, &[Edn::kw("k")]).unwrap().len();
    assert_eq!(n, 30, "the copy holds every transaction its log reaches");
    c.release().unwrap();
    conn.release().unwrap();
}
