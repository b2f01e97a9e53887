//! The `:lmdb` backend on the real file system: the store conformance suite, the database end
//! to end, the config, keys longer than LMDB's limit, a map too small, and two processes
//! transacting on one store.
#![cfg(feature = "lmdb")]

use datahike::store::conformance::Subject;
use datahike::store::{LmdbStore, Store};
use datahike::{edn::read_str, Config, Edn, IndexOrder};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const CHILD_ENV: &str = "DATAHIKE_LMDB_CHILD";

fn lmdb() -> Subject {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("db");
    let store = LmdbStore::create(&path, None).expect("create");
    Subject::new(Arc::new(store), move || Arc::new(LmdbStore::open(&path, None).expect("open").expect("a store")))
        .with_guard(dir)
}

mod conformance {
    datahike::store_conformance_tests!(super::lmdb);

    #[test]
    fn stored_sizes_reported() {
        datahike::store::conformance::stored_sizes_reported(&super::lmdb());
    }
}

fn config(path: &Path, extra: &str) -> Config {
    Config::parse(&format!("{{:store {{:backend :lmdb :path {:?} {extra}}}}}", path.display().to_string())).unwrap()
}

#[test]
fn database_conformance() {
    let dir = tempfile::tempdir().unwrap();
    datahike::store::conformance::database(&config(&dir.path().join("db"), ""));
}

#[test]
fn config_creates_the_directory_and_names_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/db");
    let config = config(&path, ":map-size 1073741824 :id \"app\"");
    assert_eq!(config.store.backend_name(), "lmdb");
    let printed = format!("{:?}", config.store);
    assert!(printed.contains(":map-size 1073741824") && printed.contains("nested/db"), "{printed}");
    assert!(!datahike::database_exists(&config).unwrap());
    assert!(!path.exists(), "database-exists creates nothing");
    let Err(err) = datahike::connect(&config) else { panic!("connected before create") };
    let err = err.to_string();
    assert!(err.contains("does not exist") && err.contains("nested/db"), "{err}");
    let returned = datahike::create_database(&config).unwrap();
    assert!(path.join("data.mdb").is_file());
    assert!(datahike::database_exists(&returned).unwrap());
    assert!(datahike::create_database(&config).unwrap_err().to_string().contains("already exists"));
    datahike::delete_database(&config).unwrap();
    assert!(!datahike::database_exists(&config).unwrap());
    assert!(!path.exists(), "delete-database removes the store");

    for bad in [":map-size -1", ":map-size \"big\""] {
        let err = datahike::create_database(&self::config(&path, bad)).unwrap_err().to_string();
        assert!(err.contains(":map-size"), "{bad}: {err}");
    }
    let err = Config::parse("{:store {:backend :lmdb}}").map(|c| datahike::database_exists(&c));
    let err = match err {
        Ok(result) => result.unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(":path"), "{err}");
}

#[test]
fn a_database_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir.path().join("db"), "");
    datahike::create_database(&Config { schema_flexibility: datahike::SchemaFlexibility::Read, ..config.clone() })
        .unwrap();
    let conn = datahike::connect(&config).unwrap();
    for i in 0..20 {
        conn.transact(&read_str(&format!("[{{:i {i}}}]")).unwrap()).unwrap();
    }
    let before = conn.db().max_tx();
    conn.release().unwrap();
    // Twice: once from the log, once more after the release flushed it.
    for _ in 0..2 {
        let conn = datahike::connect(&config).unwrap();
        assert_eq!(conn.db().max_tx(), before);
        assert_eq!(conn.db().datoms(IndexOrder::Aevt, &[Edn::kw("i")]).unwrap().len(), 20);
        conn.release().unwrap();
    }
}

#[test]
fn keys_longer_than_lmdbs_limit() {
    let st = lmdb().store;
    let long = |c: char, tail: &str| format!("heads/{}{tail}", c.to_string().repeat(2000));
    let (a, b, c) = (long('a', ""), long('a', "/x"), long('a', "/y"));
    let short = "heads/short".to_string();
    st.put_batch(&[(a.clone(), b"1".to_vec()), (b.clone(), b"2".to_vec()), (short.clone(), b"s".to_vec())]).unwrap();
    assert_eq!(st.get(&a).unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(st.get(&b).unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(st.get(&c).unwrap(), None, "a long key sharing the head of stored ones");
    let mut listed = st.list("heads/").unwrap();
    listed.sort();
    assert_eq!(listed, vec![a.clone(), b.clone(), short.clone()]);
    assert_eq!(st.list(&format!("{a}/")).unwrap(), vec![b.clone()], "a prefix longer than LMDB's limit");
    assert_eq!(st.list(&a[..1000]).unwrap().len(), 2);
    assert!(!st.put_if_absent(&a, b"again").unwrap());
    assert!(st.put_if_absent(&c, b"3").unwrap());
    assert!(st.compare_and_set(&c, Some(b"3"), b"4").unwrap());
    assert!(!st.compare_and_set(&c, Some(b"3"), b"5").unwrap());
    assert_eq!(
        st.get_many(&[a.clone(), c.clone(), long('z', "")]).unwrap(),
        vec![Some(b"1".to_vec()), Some(b"4".to_vec()), None]
    );
    // A branch whose name is that long has a log too.
    let log = "b".repeat(1500);
    for seq in 1..=3 {
        st.log_append(&log, seq, format!("r{seq}").as_bytes()).unwrap();
    }
    assert!(st.log_append(&log, 3, b"again").is_err());
    assert_eq!(st.log_read(&log, 1).unwrap(), vec![(2, b"r2".to_vec()), (3, b"r3".to_vec())]);
    st.log_discard(&log, 2).unwrap();
    assert_eq!(st.log_read(&log, 0).unwrap(), vec![(3, b"r3".to_vec())]);
    st.delete_batch(&[a.clone(), c.clone()]).unwrap();
    assert_eq!(st.get(&a).unwrap(), None);
    assert_eq!(st.get(&b).unwrap().as_deref(), Some(&b"2"[..]));
}

#[test]
fn a_full_map_names_map_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::create(&dir.path().join("db"), Some(1 << 20)).unwrap();
    let err = store.put_batch(&[("blobs/big".to_string(), vec![7u8; 4 << 20])]).unwrap_err().to_string();
    assert!(err.contains(":map-size"), "{err}");
    store.put_batch(&[("small".to_string(), b"ok".to_vec())]).unwrap();
    assert_eq!(store.get("blobs/big").unwrap(), None, "a failed write leaves nothing");
}

/// Run as a child process by `two_processes_transacting_lose_no_commit`.
#[test]
fn lmdb_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let (dir, name) = spec.split_once('|').unwrap();
    let conn = datahike::connect(&config(Path::new(dir), "")).unwrap();
    for i in 0..100 {
        conn.transact(&read_str(&format!(r#"[{{:who "{name}" :i {i}}}]"#)).unwrap()).unwrap();
    }
    conn.release().unwrap();
}

#[test]
fn two_processes_transacting_lose_no_commit() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    let config = config(&path, "");
    datahike::create_database(&Config { schema_flexibility: datahike::SchemaFlexibility::Read, ..config.clone() })
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(&exe)
        .args(["--exact", "lmdb_child", "--test-threads", "1"])
        .env(CHILD_ENV, format!("{}|child", path.display()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // This process writes at the same time as the child.
    let conn = datahike::connect(&config).unwrap();
    for i in 0..100 {
        conn.transact(&read_str(&format!(r#"[{{:who "parent" :i {i}}}]"#)).unwrap()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the child failed");
    // One more commit catches up with every commit of the child.
    conn.transact(&read_str(r#"[{:who "parent" :i 100}]"#).unwrap()).unwrap();
    let whos = conn.db().datoms(IndexOrder::Aevt, &[Edn::kw("who")]).unwrap();
    assert_eq!(whos.len(), 201, "every commit of both processes is present");
    let mut es: Vec<i64> = whos.iter().map(|d| d.e).collect();
    es.dedup();
    assert_eq!(es.len(), 201, "entity ids are unique");
    conn.release().unwrap();
    let conn = datahike::connect(&config).unwrap();
    assert_eq!(conn.db().datoms(IndexOrder::Aevt, &[Edn::kw("who")]).unwrap().len(), 201);
    conn.release().unwrap();
}
