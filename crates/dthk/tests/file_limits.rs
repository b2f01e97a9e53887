//! Past the process's file size limit (`ulimit -f`), `dthk` fails with an error naming the
//! file instead of dying of SIGXFSZ, and the store keeps everything acknowledged before
//! (issue 14, finding 6).

mod common;

use common::{file_config, ok};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

/// Runs dthk in `dir` with the file size limit at `blocks` (of 1024 bytes; bash's `ulimit
/// -f`).
fn with_file_limit(dir: &std::path::Path, blocks: u64, args: &[&str]) -> std::process::Output {
    let mut script = format!("ulimit -f {blocks}; exec \"$0\"");
    for i in 1..=args.len() {
        script.push_str(&format!(" \"${i}\""));
    }
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_dthk"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn exceeding_the_file_size_limit_is_an_error_not_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = file_config(d);
    ok(d, &["create-database", "edn:cfg.edn"]);
    ok(d, &["transact", "conn:cfg.edn", r#"[{:name "before"}]"#]);
    // A transaction whose log record alone is larger than the limit.
    let big = format!(r#"[{{:name "big" :blob "{}"}}]"#, "x".repeat(3_000_000));
    std::fs::write(d.join("big.edn"), big).unwrap();
    let out = with_file_limit(d, 1000, &["transact", "conn:cfg.edn", "edn:big.edn"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), None, "killed by a signal: {stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("File too large") && stderr.contains(&path), "{stderr}");
    // Nothing of it is in effect; what came before is.
    let names = ok(d, &["query", "[:find ?n :where [?e :name ?n]]", "db:cfg.edn"]);
    assert_eq!(names.trim(), r#"#{["before"]}"#);
    // Without the limit the same transaction goes through.
    ok(d, &["transact", "conn:cfg.edn", "edn:big.edn"]);
    let names = ok(d, &["query", "[:find ?n :where [?e :name ?n]]", "db:cfg.edn"]);
    assert!(names.contains("big") && names.contains("before"), "{names}");
}
