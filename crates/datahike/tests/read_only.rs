//! Readers on shared storage: a connection with `:read-only? true` never writes. It works on a
//! read-only mount of the store's directory (a bind mount remounted read-only, as a reader
//! host would mount shared storage), sees the writer's new commits when it asks for the
//! latest value, keeps every value it returned as it was, and refuses to write.

use datahike::edn::read_str;
use datahike::{q, Config, Edn, QueryInput};
use std::path::{Path, PathBuf};
use std::process::Command;

fn count(db: &datahike::Db) -> Edn {
    q(&read_str("[:find (count ?e) . :where [?e :n]]").unwrap(), &[QueryInput::from(db.clone())]).unwrap()
}

/// A read-only bind mount of a directory, unmounted when dropped.
struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    fn new(source: &Path, target: &Path) -> Option<ReadOnlyMount> {
        std::fs::create_dir_all(target).unwrap();
        let run = |args: &[&str]| Command::new("mount").args(args).status().is_ok_and(|s| s.success());
        let (source, target_str) = (source.to_str().unwrap(), target.to_str().unwrap());
        if !run(&["--bind", source, target_str]) {
            return None;
        }
        let mount = ReadOnlyMount(target.to_path_buf());
        run(&["-o", "remount,bind,ro", target_str]).then_some(mount)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn config(path: &Path, extra: &str) -> Config {
    Config::parse(&format!(
        "{{:store {{:backend :file :path {:?}}} :schema-flexibility :read {extra}}}",
        path.display().to_string()
    ))
    .unwrap()
}

#[test]
fn a_reader_on_a_read_only_mount() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let writer_config = config(&path, "");
    datahike::create_database(&writer_config).unwrap();
    let writer = datahike::connect(&writer_config).unwrap();
    for i in 0..30 {
        writer.transact(&read_str(&format!("[{{:n {i}}}]")).unwrap()).unwrap();
    }
    writer.flush().unwrap();
    for i in 30..40 {
        writer.transact(&read_str(&format!("[{{:n {i}}}]")).unwrap()).unwrap();
    }
    let Some(mount) = ReadOnlyMount::new(&path, &dir.path().join("ro")) else {
        assert!(std::env::var_os("CI").is_none(), "CI must be able to bind-mount read-only (run as root)");
        eprintln!("note: cannot bind-mount read-only here (not root?); the read-only mount test did not run");
        return;
    };
    assert!(std::fs::write(mount.0.join("probe"), b"x").is_err(), "the mount is writable");
    let reader_config = config(&mount.0, ":read-only? true");
    let reader = datahike::connect(&reader_config).unwrap();
    let first = reader.db();
    assert_eq!(count(&first), Edn::Int(40), "the flushed index and the log after it");

    // New commits of the writer, flushed and not, reach the reader when it asks.
    for i in 40..50 {
        writer.transact(&read_str(&format!("[{{:n {i}}}]")).unwrap()).unwrap();
    }
    assert_eq!(count(&reader.latest().unwrap()), Edn::Int(50));
    writer.flush().unwrap();
    writer.transact(&read_str("[{:n 50}]").unwrap()).unwrap();
    let latest = reader.db();
    assert_eq!(count(&latest), Edn::Int(51));
    assert_eq!(latest.max_tx(), writer.db().max_tx());
    // A value already returned stays the snapshot it was.
    assert_eq!(count(&first), Edn::Int(40));

    let err = reader.transact(&read_str("[{:n 99}]").unwrap()).unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    let err = reader.gc_storage(None).unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(datahike::delete_database(&reader_config).is_err());
    reader.release().unwrap();
    writer.release().unwrap();
    // Values hold the reader's store handle (open pack files) until they go.
    drop((first, latest, reader));
    drop(mount);
}

#[test]
fn a_reader_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let writer_config = config(&path, "");
    datahike::create_database(&writer_config).unwrap();
    let writer = datahike::connect(&writer_config).unwrap();
    writer.transact(&read_str("[{:n 1}]").unwrap()).unwrap();
    let listing = |p: &Path| -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        let mut stack = vec![p.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push((e.path(), e.metadata().unwrap().len()));
                }
            }
        }
        out.sort();
        out
    };
    let before = listing(&path);
    let reader = datahike::connect(&config(&path, ":read-only? true")).unwrap();
    for _ in 0..3 {
        assert_eq!(count(&reader.db()), Edn::Int(1));
    }
    reader.flush().unwrap();
    reader.release().unwrap();
    assert_eq!(listing(&path), before, "a reader changed the store's files");
    writer.release().unwrap();
}
