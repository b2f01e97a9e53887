//! One suite over every `Store` backend: each check runs against the memory store and against
//! the file store on the real file system.

use datahike::store::{FileStore, MemoryStore, Store, StoreError, WriterGuard};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tempfile::TempDir;

/// A store under test, what it needs to stay alive, and a second handle on the same data.
struct Fixture {
    store: Arc<dyn Store>,
    second: Arc<dyn Store>,
    try_lock: Box<dyn Fn() -> Option<WriterGuard>>,
    dir: Option<TempDir>,
}

fn memory() -> Fixture {
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let id = format!("suite-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let store = MemoryStore::open(&id);
    let second = MemoryStore::open(&id);
    Fixture {
        store: Arc::new(store),
        second: Arc::new(second.clone()),
        try_lock: Box::new(move || second.try_lock_writer()),
        dir: None,
    }
}

fn file() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("db");
    let store = FileStore::create(&path).expect("create");
    let second = Arc::new(FileStore::open(&path).expect("open"));
    let for_lock = Arc::clone(&second);
    Fixture {
        store: Arc::new(store),
        second,
        try_lock: Box::new(move || for_lock.try_lock_writer().expect("try_lock_writer")),
        dir: Some(dir),
    }
}

fn node_key(n: u8) -> String {
    format!("nodes/{:02x}{}", n, "0123456789abcdef0123456789abcd")
}

fn entries(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect()
}

fn sorted(mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    keys
}

fn get_put_delete(f: &Fixture) {
    let s = &f.store;
    assert_eq!(s.get("config").unwrap(), None);
    s.put_batch(&entries(&[("config", b"c1"), ("schema/x", b"s"), ("heads/db", b"h")])).unwrap();
    assert_eq!(s.get("config").unwrap().as_deref(), Some(&b"c1"[..]));
    assert_eq!(s.get("schema/x").unwrap().as_deref(), Some(&b"s"[..]));
    assert_eq!(f.second.get("heads/db").unwrap().as_deref(), Some(&b"h"[..]));
    s.put_batch(&entries(&[("config", b"c2")])).unwrap();
    assert_eq!(s.get("config").unwrap().as_deref(), Some(&b"c2"[..]));
    s.put_batch(&[]).unwrap();
    s.put_batch(&entries(&[("empty", b"")])).unwrap();
    assert_eq!(s.get("empty").unwrap().as_deref(), Some(&b""[..]));
    s.delete_batch(&["config".to_string(), "absent".to_string(), "heads/db".to_string()]).unwrap();
    assert_eq!(s.get("config").unwrap(), None);
    assert_eq!(s.get("heads/db").unwrap(), None);
    assert_eq!(s.get("schema/x").unwrap().as_deref(), Some(&b"s"[..]));
    s.delete_batch(&[]).unwrap();
}

fn nodes_and_list(f: &Fixture) {
    let s = &f.store;
    let nodes: Vec<String> = (0..5u8).map(|n| node_key(n * 60)).collect();
    let batch: Vec<(String, Vec<u8>)> = nodes.iter().map(|k| (k.clone(), k.as_bytes().to_vec())).collect();
    s.put_batch(&batch).unwrap();
    s.put_batch(&entries(&[("heads/db", b"1"), ("heads/staging", b"2"), ("config", b"3"), ("schema/x", b"4")]))
        .unwrap();
    for key in &nodes {
        assert_eq!(s.get(key).unwrap().as_deref(), Some(key.as_bytes()));
    }
    assert_eq!(sorted(s.list("nodes/").unwrap()), sorted(nodes.clone()));
    assert_eq!(s.list(&nodes[1][..8]).unwrap(), vec![nodes[1].clone()]);
    assert_eq!(s.list(&nodes[2]).unwrap(), vec![nodes[2].clone()]);
    assert_eq!(sorted(s.list("heads/").unwrap()), vec!["heads/db", "heads/staging"]);
    assert_eq!(s.list("heads/s").unwrap(), vec!["heads/staging"]);
    assert_eq!(s.list("heads").unwrap().len(), 2);
    assert_eq!(s.list("sch").unwrap(), vec!["schema/x"]);
    assert_eq!(s.list("zzz").unwrap(), Vec::<String>::new());
    let mut all = nodes.clone();
    all.extend(["heads/db", "heads/staging", "config", "schema/x"].map(String::from));
    assert_eq!(sorted(s.list("").unwrap()), sorted(all));
    // Log records are not keys.
    s.log_append("db", 1, b"r").unwrap();
    assert_eq!(s.list("nodes/").unwrap().len(), 5);
    assert!(s.list("").unwrap().iter().all(|k| !k.starts_with("log/")));
}

fn odd_keys(f: &Fixture) {
    let s = &f.store;
    let keys = [
        "a b",
        "../escape",
        "..",
        ".",
        ".hidden",
        "%41",
        "ü/ß",
        "heads/a/b",
        "heads/",
        "heads/..",
        "nodes/ABCDEF0123456789ABCDEF0123456789",
        "nodes/short",
        "nodes/ab/cdef0123456789abcdef0123456789",
        "log/db/00000000000000000001",
        "x~tmp",
        "trailing/",
        "a//b",
    ];
    let batch: Vec<(String, Vec<u8>)> = keys.iter().map(|k| (k.to_string(), k.as_bytes().to_vec())).collect();
    s.put_batch(&batch).unwrap();
    for key in keys {
        assert_eq!(s.get(key).unwrap().as_deref(), Some(key.as_bytes()), "key {key:?}");
    }
    assert_eq!(sorted(s.list("").unwrap()), sorted(keys.iter().map(|k| k.to_string()).collect()));
    assert_eq!(sorted(s.list("heads/").unwrap()), vec!["heads/", "heads/..", "heads/a/b"]);
    assert_eq!(s.list("nodes/ab").unwrap(), vec!["nodes/ab/cdef0123456789abcdef0123456789"]);
    s.delete_batch(&keys.map(String::from)).unwrap();
    assert_eq!(s.list("").unwrap(), Vec::<String>::new());
}

fn compare_and_set(f: &Fixture) {
    let s = &f.store;
    assert!(s.compare_and_set("heads/db", None, b"v1").unwrap());
    assert!(!s.compare_and_set("heads/db", None, b"v2").unwrap());
    assert!(!s.compare_and_set("heads/db", Some(b"v0"), b"v2").unwrap());
    assert_eq!(s.get("heads/db").unwrap().as_deref(), Some(&b"v1"[..]));
    assert!(f.second.compare_and_set("heads/db", Some(b"v1"), b"v2").unwrap());
    assert!(!s.compare_and_set("heads/db", Some(b"v1"), b"v3").unwrap());
    assert_eq!(s.get("heads/db").unwrap().as_deref(), Some(&b"v2"[..]));
    assert!(!s.compare_and_set("heads/other", Some(b"v2"), b"x").unwrap());
    assert_eq!(s.get("heads/other").unwrap(), None);
}

/// Threads on both handles increment a counter by compare-and-set; no increment is lost.
fn compare_and_set_concurrent(f: &Fixture) {
    const THREADS: u64 = 4;
    const INCREMENTS: u64 = 25;
    assert!(f.store.compare_and_set("heads/n", None, &0u64.to_le_bytes()).unwrap());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let s = if t % 2 == 0 { Arc::clone(&f.store) } else { Arc::clone(&f.second) };
            std::thread::spawn(move || {
                let mut done = 0;
                while done < INCREMENTS {
                    let current = s.get("heads/n").unwrap().unwrap();
                    let n = u64::from_le_bytes(current.as_slice().try_into().unwrap());
                    if s.compare_and_set("heads/n", Some(&current), &(n + 1).to_le_bytes()).unwrap() {
                        done += 1;
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let end = f.store.get("heads/n").unwrap().unwrap();
    assert_eq!(u64::from_le_bytes(end.as_slice().try_into().unwrap()), THREADS * INCREMENTS);
}

fn log_append_read_discard(f: &Fixture) {
    let s = &f.store;
    assert_eq!(s.log_read("db", 0).unwrap(), vec![]);
    for seq in 1..=5u64 {
        s.log_append("db", seq, format!("tx{seq}").as_bytes()).unwrap();
    }
    s.log_append("other log/ü", 7, b"o").unwrap();
    let all = s.log_read("db", 0).unwrap();
    assert_eq!(all, (1..=5u64).map(|n| (n, format!("tx{n}").into_bytes())).collect::<Vec<_>>());
    assert_eq!(f.second.log_read("db", 3).unwrap(), vec![(4, b"tx4".to_vec()), (5, b"tx5".to_vec())]);
    assert_eq!(s.log_read("db", 5).unwrap(), vec![]);
    assert_eq!(s.log_read("db", u64::MAX).unwrap(), vec![]);
    assert_eq!(s.log_read("other log/ü", 0).unwrap(), vec![(7, b"o".to_vec())]);
    assert_eq!(s.log_read("nothing", 0).unwrap(), vec![]);

    let err = s.log_append("db", 5, b"again").unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let err = s.log_append("db", 2, b"back").unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");

    s.log_discard("db", 3).unwrap();
    let kept = s.log_read("db", 0).unwrap();
    assert!(kept.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(&kept[kept.len() - 2..], &[(4, b"tx4".to_vec()), (5, b"tx5".to_vec())]);
    s.log_append("db", 10, b"tx10").unwrap();
    assert_eq!(s.log_read("db", 5).unwrap(), vec![(10, b"tx10".to_vec())]);
    s.log_discard("db", u64::MAX).unwrap();
    s.log_discard("nothing", 3).unwrap();
    assert!(s.log_read("db", 9).unwrap().iter().all(|(seq, _)| *seq == 10));
    assert_eq!(s.log_read("other log/ü", 0).unwrap(), vec![(7, b"o".to_vec())]);
}

fn log_large_records(f: &Fixture) {
    let s = &f.store;
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    s.log_append("db", 1, &big).unwrap();
    s.log_append("db", 2, b"").unwrap();
    assert_eq!(s.log_read("db", 0).unwrap(), vec![(1, big), (2, Vec::new())]);
}

fn writer_lock_excludes(f: &Fixture) {
    let guard = f.store.lock_writer().unwrap();
    assert!((f.try_lock)().is_none());
    drop(guard);
    let second = (f.try_lock)().expect("free after the guard is dropped");
    drop(second);

    // A thread blocked in lock_writer gets the lock only after the holder lets go.
    let held = f.store.lock_writer().unwrap();
    let released = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = mpsc::channel();
    let thread = {
        let store = Arc::clone(&f.second);
        let released = Arc::clone(&released);
        std::thread::spawn(move || {
            started_tx.send(()).unwrap();
            let _guard = store.lock_writer().unwrap();
            assert!(released.load(Ordering::SeqCst), "lock acquired while held elsewhere");
        })
    };
    started_rx.recv().unwrap();
    released.store(true, Ordering::SeqCst);
    drop(held);
    thread.join().unwrap();
}

fn destroy_removes_everything(f: &Fixture) {
    let s = &f.store;
    s.put_batch(&entries(&[("config", b"c"), (&node_key(1), b"n")])).unwrap();
    s.log_append("db", 1, b"r").unwrap();
    s.destroy().unwrap();
}

macro_rules! backend_suite {
    ($backend:ident) => {
        mod $backend {
            #[test]
            fn get_put_delete() {
                super::get_put_delete(&super::$backend());
            }
            #[test]
            fn nodes_and_list() {
                super::nodes_and_list(&super::$backend());
            }
            #[test]
            fn odd_keys() {
                super::odd_keys(&super::$backend());
            }
            #[test]
            fn compare_and_set() {
                super::compare_and_set(&super::$backend());
            }
            #[test]
            fn compare_and_set_concurrent() {
                super::compare_and_set_concurrent(&super::$backend());
            }
            #[test]
            fn log_append_read_discard() {
                super::log_append_read_discard(&super::$backend());
            }
            #[test]
            fn log_large_records() {
                super::log_large_records(&super::$backend());
            }
            #[test]
            fn writer_lock_excludes() {
                super::writer_lock_excludes(&super::$backend());
            }
            #[test]
            fn destroy_removes_everything() {
                super::destroy_removes_everything(&super::$backend());
            }
        }
    };
}

backend_suite!(memory);
backend_suite!(file);

#[test]
fn memory_stores_are_shared_by_id_until_destroyed() {
    let id = "memory-registry-test";
    assert!(!MemoryStore::exists(id));
    let a = MemoryStore::open(id);
    assert!(MemoryStore::exists(id));
    assert_eq!(a.id(), Some(id));
    a.put_batch(&entries(&[("k", b"v")])).unwrap();
    a.log_append("db", 1, b"r").unwrap();
    let b = MemoryStore::open(id);
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(b.log_read("db", 0).unwrap().len(), 1);
    b.destroy().unwrap();
    assert!(!MemoryStore::exists(id));
    assert_eq!(a.get("k").unwrap(), None);
    let c = MemoryStore::open(id);
    assert_eq!(c.get("k").unwrap(), None);
    assert_eq!(c.log_read("db", 0).unwrap(), vec![]);
    c.destroy().unwrap();

    let anonymous = MemoryStore::new();
    assert_eq!(anonymous.id(), None);
    anonymous.put_batch(&entries(&[("k", b"v")])).unwrap();
    assert_eq!(MemoryStore::new().get("k").unwrap(), None);
}

#[test]
fn file_store_destroy_removes_the_directory() {
    let f = file();
    let path = f.dir.as_ref().expect("file fixture").path().join("db");
    assert!(FileStore::exists(&path));
    destroy_removes_everything(&f);
    assert!(!path.exists());
    assert!(!FileStore::exists(&path));
}
