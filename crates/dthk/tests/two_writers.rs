//! Two `dthk` writer processes on one file store at once, each flushing (and so writing and
//! merging node packs) at the end of every command: no command fails or warns, and every
//! transaction of both is there (issue 14, finding 6: a flush racing the other process's
//! pack merge once printed "releasing the connection failed: ...pack: No such file").

mod common;

use common::{file_config, ok};
use std::process::Command;

#[test]
fn two_writer_processes_neither_fail_nor_warn() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    file_config(d);
    ok(d, &["create-database", "edn:cfg.edn"]);
    // Enough commands that each process merges packs several times (8 packs of a size class
    // are merged into one).
    const EACH: usize = 40;
    std::thread::scope(|scope| {
        for w in 0..2 {
            scope.spawn(move || {
                for i in 0..EACH {
                    let tx = format!(r#"[{{:name "w{w}-{i}"}}]"#);
                    let out = Command::new(env!("CARGO_BIN_EXE_dthk"))
                        .args(["transact", "conn:cfg.edn", &tx])
                        .current_dir(d)
                        .output()
                        .unwrap();
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    assert!(out.status.success(), "writer {w}, transaction {i}: {stderr}");
                    assert!(stderr.trim().is_empty(), "writer {w}, transaction {i} warned: {stderr}");
                }
            });
        }
    });
    let count = ok(d, &["query", "[:find (count ?e) . :where [?e :name]]", "db:cfg.edn"]);
    assert_eq!(count.trim(), (2 * EACH).to_string());
    let packs = std::fs::read_dir(d.join("db/nodepacks")).unwrap().count();
    assert!(packs < 2 * EACH, "{packs} packs after {} flushes: none were merged", 2 * EACH);
}
