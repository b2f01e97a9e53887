//! Running the real `dthk` binary in a test's directory, shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `dthk args...` in `dir`, with no standard input.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dthk")).args(args).current_dir(dir).stdin(Stdio::null()).output().unwrap()
}

/// The standard output of a command that must succeed.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dthk {args:?} exited {:?}: {stderr}", out.status.code());
    String::from_utf8(out.stdout).unwrap()
}

/// The standard error of a command that must fail with exit `code`, print nothing on
/// standard output and not panic.
pub fn fails(dir: &Path, args: &[&str], code: i32) -> String {
    let out = run(dir, args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(code), "dthk {args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "dthk {args:?} printed {:?}", String::from_utf8_lossy(&out.stdout));
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// Writes the config `file` under `d`: a file store in `d/db` and the `extra` keys; returns
/// the store path.
pub fn write_file_config(d: &std::path::Path, file: &str, extra: &str) -> String {
    let path = d.join("db").display().to_string();
    std::fs::write(d.join(file), format!("{{:store {{:backend :file :path {path:?}}} {extra}}}")).unwrap();
    path
}

/// Writes `cfg.edn` under `d`: a file store in `d/db`, schema on read; returns the store path.
pub fn file_config(d: &std::path::Path) -> String {
    write_file_config(d, "cfg.edn", ":schema-flexibility :read")
}

/// A file database `db` under `d` with config `cfg.edn` and one transaction; returns what
/// `datoms` prints, to compare after refused commands.
pub fn file_db(d: &std::path::Path) -> String {
    file_config(d);
    ok(d, &["create-database", "edn:cfg.edn"]);
    ok(d, &["transact", "conn:cfg.edn", "[{:name \"a\"}]"]);
    ok(d, &["datoms", "db:cfg.edn", "{:index :eavt}"])
}
