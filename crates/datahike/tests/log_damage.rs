//! Damage to log records that the flushed indices already cover does not stop the database:
//! it opens, reads and writes, and the damage is reported. Damage to a record the indices do
//! not cover is an error naming the file.

mod common;

use common::copy_dir;
use datahike::edn::read_str;
use datahike::{Config, Edn, QueryInput};
use std::path::Path;

fn config(dir: &Path) -> Config {
    Config::parse(&format!(
        "{{:store {{:backend :file :path {:?}}} :schema-flexibility :read}}",
        dir.join("db").display().to_string()
    ))
    .unwrap()
}

fn names(config: &Config) -> datahike::Result<usize> {
    let conn = datahike::connect(config)?;
    let n = datahike::q(&read_str("[:find (count ?e) . :where [?e :name]]").unwrap(), &[QueryInput::Db(conn.db())])?;
    conn.release()?;
    Ok(match n {
        Edn::Int(n) => n as usize,
        _ => 0,
    })
}

/// The log segment of the branch, and the offsets of the `:name` strings in it.
fn segment(dir: &Path) -> std::path::PathBuf {
    let log = std::fs::read_dir(dir.join("db/log")).unwrap().next().unwrap().unwrap().path();
    std::fs::read_dir(&log).unwrap().map(|e| e.unwrap().path()).max().unwrap()
}

fn flip(path: &Path, needle: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap_or_else(|| panic!("{needle} not in the log"));
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_record_the_indices_cover_is_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    for i in 0..5 {
        conn.transact(&read_str(&format!("[{{:name \"covered-{i}\"}}]")).unwrap()).unwrap();
    }
    conn.flush().unwrap();
    for i in 0..2 {
        conn.transact(&read_str(&format!("[{{:name \"log-only-{i}\"}}]")).unwrap()).unwrap();
    }
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&dir.path().join("db"), &copy.path().join("db"));
    conn.release().unwrap();
    let config = self::config(copy.path());
    flip(&segment(copy.path()), "covered-2");
    assert_eq!(names(&config).unwrap(), 7, "opens, replays the records it needs, reads everything");
    let conn = datahike::connect(&config).unwrap();
    conn.transact(&read_str("[{:name \"after\"}]").unwrap()).unwrap();
    conn.release().unwrap();
    let reader = Config { read_only: true, ..config };
    assert_eq!(names(&reader).unwrap(), 8, "writing goes on after the damage");
}

#[test]
fn a_damaged_record_the_indices_need_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    for i in 0..3 {
        conn.transact(&read_str(&format!("[{{:name \"unflushed-{i}\"}}]")).unwrap()).unwrap();
    }
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&dir.path().join("db"), &copy.path().join("db"));
    conn.release().unwrap();
    let seg = segment(copy.path());
    flip(&seg, "unflushed-0");
    let err = names(&self::config(copy.path())).unwrap_err().to_string();
    assert!(err.contains(&seg.display().to_string()) && err.contains("bad log record"), "{err}");
}
