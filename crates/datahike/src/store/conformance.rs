//! The conformance suite of the [`Store`] contract: every check the database relies on. Each
//! built-in backend runs it against its real medium or server, and the author of a backend
//! runs it from their own tests with [`crate::store_conformance_tests!`]:
//!
//! ```ignore
//! fn subject() -> datahike::store::conformance::Subject {
//!     let store = MyStore::connect_fresh();          // a new, empty store
//!     let config = store.config();
//!     Subject::new(Arc::new(store), move || Arc::new(MyStore::connect(&config)))
//! }
//! datahike::store_conformance_tests!(subject);
//! ```
//!
//! A check panics with a message naming what broke the contract.

use super::{Store, StoreError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// A store under test.
pub struct Subject {
    /// A fresh, empty store.
    pub store: Arc<dyn Store>,
    /// Opens another handle on the same data, as another process would (a new connection,
    /// new file descriptors): writes through one handle must be visible through the other.
    pub reopen: Box<dyn Fn() -> Arc<dyn Store> + Send + Sync>,
    /// Whatever must live as long as the subject and go with it (a temporary directory, a
    /// table to drop): dropped after the check, so checks leave nothing behind.
    pub guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl Subject {
    /// A subject from a fresh store and a way to open other handles on it.
    pub fn new(store: Arc<dyn Store>, reopen: impl Fn() -> Arc<dyn Store> + Send + Sync + 'static) -> Subject {
        Subject { store, reopen: Box::new(reopen), guard: None }
    }

    /// The subject, keeping `guard` (e.g. a `tempfile::TempDir`) alive until it is dropped.
    pub fn with_guard(self, guard: impl std::any::Any + Send + Sync) -> Subject {
        Subject { guard: Some(Box::new(guard)), ..self }
    }
}

/// One check of the suite.
pub type Check = fn(&Subject);

/// Every check, by name, in the order [`run_all`] runs them.
pub const CHECKS: &[(&str, Check)] = &[
    ("get_put_delete", get_put_delete),
    ("missing_keys", missing_keys),
    ("nodes_and_list", nodes_and_list),
    ("odd_keys", odd_keys),
    ("prefixes_of_one_another", prefixes_of_one_another),
    ("compare_and_set", compare_and_set),
    ("compare_and_set_concurrent", compare_and_set_concurrent),
    ("put_if_absent", put_if_absent),
    ("put_if_absent_concurrent", put_if_absent_concurrent),
    ("log_append_read_discard", log_append_read_discard),
    ("log_fences_stale_writers", log_fences_stale_writers),
    ("log_large_records", log_large_records),
    ("large_values", large_values),
    ("get_many", get_many),
    ("stored_sizes", stored_sizes),
    ("concurrent_readers", concurrent_readers),
    ("reopen", reopen),
    ("writer_lock_excludes", writer_lock_excludes),
    ("destroy", destroy),
];

/// Runs every check, each on a fresh subject from `make`.
pub fn run_all(make: impl Fn() -> Subject) {
    for (name, check) in CHECKS {
        eprintln!("store conformance: {name}");
        check(&make());
    }
}

/// One `#[test]` per check of the suite, each on a fresh subject from `$make` (a function or
/// closure returning a [`Subject`]). With `optional:` before it, `$make` returns an
/// `Option<Subject>`, and a check given `None` (the server under test is not configured)
/// passes without running: `store_conformance_tests!(optional: my_server_subject)`.
#[macro_export]
macro_rules! store_conformance_tests {
    (optional: $make:expr) => {
        $crate::store_conformance_tests!(@optional $make;
            get_put_delete missing_keys nodes_and_list odd_keys prefixes_of_one_another compare_and_set
            compare_and_set_concurrent put_if_absent put_if_absent_concurrent log_append_read_discard
            log_fences_stale_writers log_large_records large_values get_many stored_sizes concurrent_readers reopen
            writer_lock_excludes destroy);
    };
    (@optional $make:expr; $($check:ident)*) => {
        $(
            #[test]
            fn $check() {
                if let Some(subject) = ($make)() {
                    $crate::store::conformance::$check(&subject);
                }
            }
        )*
    };
    ($make:expr) => {
        $crate::store_conformance_tests!(@each $make;
            get_put_delete missing_keys nodes_and_list odd_keys prefixes_of_one_another compare_and_set
            compare_and_set_concurrent put_if_absent put_if_absent_concurrent log_append_read_discard
            log_fences_stale_writers log_large_records large_values get_many stored_sizes concurrent_readers reopen
            writer_lock_excludes destroy);
    };
    (@each $make:expr; $($check:ident)*) => {
        $(
            #[test]
            fn $check() {
                $crate::store::conformance::$check(&($make)());
            }
        )*
    };
}

fn entries(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect()
}

fn sorted(mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    keys
}

fn node_key(n: u8) -> String {
    format!("nodes/{:02x}{}", n, "0123456789abcdef0123456789abcd")
}

fn is_conflict(err: &StoreError) -> bool {
    matches!(err, StoreError::Conflict { .. })
}

/// Writes, overwrites, reads and deletes plain keys.
pub fn get_put_delete(s: &Subject) {
    let st = &s.store;
    let other = (s.reopen)();
    assert_eq!(st.get("config").unwrap(), None);
    st.put_batch(&entries(&[("config", b"c1"), ("schema/x", b"s"), ("heads/db", b"h")])).unwrap();
    assert_eq!(st.get("config").unwrap().as_deref(), Some(&b"c1"[..]));
    assert_eq!(st.get("schema/x").unwrap().as_deref(), Some(&b"s"[..]));
    assert_eq!(other.get("heads/db").unwrap().as_deref(), Some(&b"h"[..]), "a write is visible to another handle");
    st.put_batch(&entries(&[("config", b"c2")])).unwrap();
    assert_eq!(st.get("config").unwrap().as_deref(), Some(&b"c2"[..]), "put overwrites");
    st.put_batch(&[]).unwrap();
    st.put_batch(&entries(&[("empty", b"")])).unwrap();
    assert_eq!(st.get("empty").unwrap().as_deref(), Some(&b""[..]), "an empty value is a value");
    st.delete_batch(&["config".to_string(), "absent".to_string(), "heads/db".to_string()]).unwrap();
    assert_eq!(st.get("config").unwrap(), None);
    assert_eq!(other.get("heads/db").unwrap(), None, "a delete is visible to another handle");
    assert_eq!(st.get("schema/x").unwrap().as_deref(), Some(&b"s"[..]));
    st.delete_batch(&[]).unwrap();
}

/// Absent keys: `get` is `None`, deleting them is no error, a compare-and-set expecting a
/// value fails, and nothing lists them.
pub fn missing_keys(s: &Subject) {
    let st = &s.store;
    assert_eq!(st.get("nothing/here").unwrap(), None);
    assert_eq!(st.get(&node_key(7)).unwrap(), None);
    st.delete_batch(&["nothing/here".to_string(), node_key(7)]).unwrap();
    assert!(!st.compare_and_set("heads/none", Some(b"x"), b"y").unwrap());
    assert_eq!(st.get("heads/none").unwrap(), None, "a failed compare-and-set writes nothing");
    assert!(st.list("nothing/").unwrap().is_empty());
    assert!(st.log_read("no-log", 0).unwrap().is_empty());
    st.log_discard("no-log", 5).unwrap();
}

/// Node keys and other keys, listed by prefixes of every length.
pub fn nodes_and_list(s: &Subject) {
    let st = &s.store;
    let nodes: Vec<String> = (0..5u8).map(|n| node_key(n * 60)).collect();
    let batch: Vec<(String, Vec<u8>)> = nodes.iter().map(|k| (k.clone(), k.as_bytes().to_vec())).collect();
    st.put_batch(&batch).unwrap();
    st.put_batch(&entries(&[("heads/db", b"1"), ("heads/staging", b"2"), ("config", b"3"), ("schema/x", b"4")]))
        .unwrap();
    let other = (s.reopen)();
    for key in &nodes {
        assert_eq!(st.get(key).unwrap().as_deref(), Some(key.as_bytes()));
        assert_eq!(other.get(key).unwrap().as_deref(), Some(key.as_bytes()), "node {key} through another handle");
    }
    assert_eq!(sorted(st.list("nodes/").unwrap()), sorted(nodes.clone()));
    assert_eq!(sorted(other.list("nodes/").unwrap()), sorted(nodes.clone()));
    assert_eq!(st.list(&nodes[1][..8]).unwrap(), vec![nodes[1].clone()]);
    assert_eq!(st.list(&nodes[2]).unwrap(), vec![nodes[2].clone()]);
    assert_eq!(sorted(st.list("heads/").unwrap()), vec!["heads/db", "heads/staging"]);
    assert_eq!(st.list("heads/s").unwrap(), vec!["heads/staging"]);
    assert_eq!(st.list("heads").unwrap().len(), 2);
    assert_eq!(st.list("sch").unwrap(), vec!["schema/x"]);
    assert_eq!(st.list("zzz").unwrap(), Vec::<String>::new());
    let mut all = nodes.clone();
    all.extend(["heads/db", "heads/staging", "config", "schema/x"].map(String::from));
    let listed: Vec<String> = st.list("").unwrap().into_iter().filter(|k| !k.starts_with("log/")).collect();
    assert_eq!(sorted(listed), sorted(all));
    st.delete_batch(&nodes[..2]).unwrap();
    assert_eq!(sorted(other.list("nodes/").unwrap()), sorted(nodes[2..].to_vec()), "deleted nodes are not listed");
    assert_eq!(other.get(&nodes[0]).unwrap(), None, "a deleted node is gone for another handle");
}

/// Keys with characters a file system or URL would treat specially.
pub fn odd_keys(s: &Subject) {
    let st = &s.store;
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
        "x~tmp",
        "trailing/",
        "a//b",
        "q?x=1&y=#z",
        "back\\slash",
        "quote'\"",
    ];
    let batch: Vec<(String, Vec<u8>)> = keys.iter().map(|k| (k.to_string(), k.as_bytes().to_vec())).collect();
    st.put_batch(&batch).unwrap();
    for key in keys {
        assert_eq!(st.get(key).unwrap().as_deref(), Some(key.as_bytes()), "key {key:?}");
    }
    assert_eq!(sorted(st.list("").unwrap()), sorted(keys.iter().map(|k| k.to_string()).collect()));
    assert_eq!(sorted(st.list("heads/").unwrap()), vec!["heads/", "heads/..", "heads/a/b"]);
    assert_eq!(st.list("nodes/ab").unwrap(), vec!["nodes/ab/cdef0123456789abcdef0123456789"]);
    st.delete_batch(&keys.map(String::from)).unwrap();
    assert_eq!(st.list("").unwrap(), Vec::<String>::new());
}

/// Keys and logs whose names are prefixes of one another (a branch `feature` beside
/// `feature/x`) stay apart: listing, reading, discarding and deleting one leaves the other.
pub fn prefixes_of_one_another(s: &Subject) {
    let st = &s.store;
    st.put_batch(&entries(&[("heads/feature", b"1"), ("heads/feature/x", b"2"), ("heads/featurex", b"3")])).unwrap();
    assert_eq!(sorted(st.list("heads/feature").unwrap()).len(), 3);
    assert_eq!(st.list("heads/feature/").unwrap(), vec!["heads/feature/x"]);
    for (log, n) in [("feature", 3u64), ("feature/x", 4), ("feature/x/y", 2)] {
        for seq in 1..=n {
            st.log_append(log, seq, format!("{log}:{seq}").as_bytes()).unwrap();
        }
    }
    let read = |log: &str| -> Vec<u64> { st.log_read(log, 0).unwrap().into_iter().map(|(seq, _)| seq).collect() };
    assert_eq!(read("feature"), vec![1, 2, 3]);
    assert_eq!(read("feature/x"), vec![1, 2, 3, 4]);
    for (seq, bytes) in st.log_read("feature/x", 0).unwrap() {
        assert_eq!(bytes, format!("feature/x:{seq}").into_bytes(), "log feature/x holds its own records");
    }
    st.log_discard("feature", 3).unwrap();
    assert_eq!(read("feature/x"), vec![1, 2, 3, 4], "discarding log feature leaves feature/x");
    st.log_delete("feature").unwrap();
    assert!(read("feature").is_empty());
    assert_eq!(read("feature/x"), vec![1, 2, 3, 4], "deleting log feature leaves feature/x");
    assert_eq!(read("feature/x/y"), vec![1, 2]);
    st.log_delete("feature/x").unwrap();
    assert_eq!(read("feature/x/y"), vec![1, 2], "deleting log feature/x leaves feature/x/y");
}

/// Compare-and-set from absent, from a value, and failing on a stale expectation.
pub fn compare_and_set(s: &Subject) {
    let st = &s.store;
    let other = (s.reopen)();
    assert!(st.compare_and_set("heads/db", None, b"v1").unwrap());
    assert!(!st.compare_and_set("heads/db", None, b"v2").unwrap(), "compare-and-set from absent on a present key");
    assert!(!st.compare_and_set("heads/db", Some(b"v0"), b"v2").unwrap());
    assert_eq!(st.get("heads/db").unwrap().as_deref(), Some(&b"v1"[..]));
    assert!(other.compare_and_set("heads/db", Some(b"v1"), b"v2").unwrap());
    assert!(!st.compare_and_set("heads/db", Some(b"v1"), b"v3").unwrap(), "a handle's stale expectation fails");
    assert_eq!(st.get("heads/db").unwrap().as_deref(), Some(&b"v2"[..]));
    assert!(!st.compare_and_set("heads/other", Some(b"v2"), b"x").unwrap());
    assert_eq!(st.get("heads/other").unwrap(), None);
}

/// Threads on two handles increment a counter by compare-and-set; no increment is lost.
pub fn compare_and_set_concurrent(s: &Subject) {
    const THREADS: u64 = 4;
    const INCREMENTS: u64 = 15;
    assert!(s.store.compare_and_set("heads/n", None, &0u64.to_le_bytes()).unwrap());
    let second = (s.reopen)();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let st = if t % 2 == 0 { Arc::clone(&s.store) } else { Arc::clone(&second) };
            std::thread::spawn(move || {
                let mut done = 0;
                while done < INCREMENTS {
                    let current = st.get("heads/n").unwrap().unwrap();
                    let n = u64::from_le_bytes(current.as_slice().try_into().unwrap());
                    if st.compare_and_set("heads/n", Some(&current), &(n + 1).to_le_bytes()).unwrap() {
                        done += 1;
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let end = s.store.get("heads/n").unwrap().unwrap();
    assert_eq!(u64::from_le_bytes(end.as_slice().try_into().unwrap()), THREADS * INCREMENTS, "lost increments");
}

/// Put-if-absent writes once and never overwrites.
pub fn put_if_absent(s: &Subject) {
    let st = &s.store;
    assert!(st.put_if_absent("commits/a", b"first").unwrap());
    assert!(!st.put_if_absent("commits/a", b"second").unwrap());
    assert!(!(s.reopen)().put_if_absent("commits/a", b"third").unwrap());
    assert_eq!(st.get("commits/a").unwrap().as_deref(), Some(&b"first"[..]));
    st.delete_batch(&["commits/a".to_string()]).unwrap();
    assert!(st.put_if_absent("commits/a", b"again").unwrap(), "a deleted key can be written again");
}

/// Of threads racing to put one key if absent, through two handles, exactly one wins, and
/// the value is the winner's.
pub fn put_if_absent_concurrent(s: &Subject) {
    let second = (s.reopen)();
    for round in 0..5 {
        let key = format!("race/{round}");
        let winners: Vec<_> = (0..4u8)
            .map(|t| {
                let st = if t % 2 == 0 { Arc::clone(&s.store) } else { Arc::clone(&second) };
                let key = key.clone();
                std::thread::spawn(move || st.put_if_absent(&key, &[t]).unwrap().then_some(t))
            })
            .collect();
        let winners: Vec<u8> = winners.into_iter().filter_map(|h| h.join().unwrap()).collect();
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        assert_eq!(s.store.get(&key).unwrap(), Some(vec![winners[0]]));
    }
}

/// Appends, reads from any point, conflicts on a taken sequence number, and discards.
pub fn log_append_read_discard(s: &Subject) {
    let st = &s.store;
    let other = (s.reopen)();
    assert_eq!(st.log_read("db", 0).unwrap(), vec![]);
    for seq in 1..=5u64 {
        st.log_append("db", seq, format!("tx{seq}").as_bytes()).unwrap();
    }
    st.log_append("other log/ü", 7, b"o").unwrap();
    let all = st.log_read("db", 0).unwrap();
    assert_eq!(all, (1..=5u64).map(|n| (n, format!("tx{n}").into_bytes())).collect::<Vec<_>>());
    assert_eq!(other.log_read("db", 3).unwrap(), vec![(4, b"tx4".to_vec()), (5, b"tx5".to_vec())]);
    assert_eq!(st.log_read("db", 5).unwrap(), vec![]);
    assert_eq!(st.log_read("db", u64::MAX).unwrap(), vec![]);
    assert_eq!(st.log_read("other log/ü", 0).unwrap(), vec![(7, b"o".to_vec())]);
    assert_eq!(st.log_read("nothing", 0).unwrap(), vec![]);

    let err = st.log_append("db", 5, b"again").unwrap_err();
    assert!(is_conflict(&err), "appending a taken sequence number: {err}");
    let err = other.log_append("db", 5, b"again").unwrap_err();
    assert!(is_conflict(&err), "appending a taken sequence number through another handle: {err}");
    assert_eq!(st.log_read("db", 4).unwrap(), vec![(5, b"tx5".to_vec())], "a conflicting append writes nothing");
    other.log_append("db", 6, b"tx6").unwrap();
    assert_eq!(st.log_read("db", 5).unwrap(), vec![(6, b"tx6".to_vec())], "another handle's append is read");
    st.log_append("db", 7, b"tx7").unwrap();

    st.log_discard("db", 3).unwrap();
    let kept = st.log_read("db", 0).unwrap();
    assert!(kept.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(
        &kept[kept.len() - 4..],
        &[(4, b"tx4".to_vec()), (5, b"tx5".to_vec()), (6, b"tx6".to_vec()), (7, b"tx7".to_vec())]
    );
    st.log_append("db", 10, b"tx10").unwrap();
    assert_eq!(st.log_read("db", 7).unwrap(), vec![(10, b"tx10".to_vec())]);
    st.log_discard("nothing", 3).unwrap();
    assert_eq!(st.log_read("other log/ü", 0).unwrap(), vec![(7, b"o".to_vec())]);
}

/// A writer that missed a flush (it appends a sequence number that a discard has passed, or
/// one already written) is refused with a conflict, and nothing it wrote is read back.
pub fn log_fences_stale_writers(s: &Subject) {
    let st = &s.store;
    let stale = (s.reopen)();
    for seq in 1..=6u64 {
        st.log_append("db", seq, format!("tx{seq}").as_bytes()).unwrap();
    }
    st.log_discard("db", 4).unwrap();
    for seq in [2u64, 4, 5, 6] {
        let err = stale.log_append("db", seq, b"stale").unwrap_err();
        assert!(is_conflict(&err), "appending {seq} after a discard through 4: {err}");
    }
    let read: Vec<(u64, Vec<u8>)> = st.log_read("db", 0).unwrap().into_iter().filter(|(seq, _)| *seq > 4).collect();
    assert_eq!(read, vec![(5, b"tx5".to_vec()), (6, b"tx6".to_vec())]);
    assert!(st.log_read("db", 0).unwrap().iter().all(|(_, bytes)| bytes != b"stale"), "a refused append is read");
    // A deleted log takes no appends at all.
    st.log_delete("db").unwrap();
    assert!(st.log_read("db", 0).unwrap().is_empty());
}

/// Log records of a few hundred kilobytes and empty ones.
pub fn log_large_records(s: &Subject) {
    let st = &s.store;
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    st.log_append("db", 1, &big).unwrap();
    st.log_append("db", 2, b"").unwrap();
    assert_eq!(st.log_read("db", 0).unwrap(), vec![(1, big), (2, Vec::new())]);
}

/// Values of 100 MiB are stored whole, by `put_batch` and by compare-and-set.
pub fn large_values(s: &Subject) {
    let st = &s.store;
    let big: Vec<u8> = (0..100u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    st.put_batch(&[("blobs/big".to_string(), big.clone())]).unwrap();
    let read = (s.reopen)().get("blobs/big").unwrap().expect("a 100 MiB value is stored");
    assert!(read == big, "a 100 MiB value reads back changed ({} bytes)", read.len());
    drop(read);
    assert!(st.compare_and_set("heads/big", None, &big).unwrap());
    assert!(st.get("heads/big").unwrap().is_some_and(|v| v == big), "a 100 MiB value by compare-and-set");
    st.delete_batch(&["blobs/big".to_string(), "heads/big".to_string()]).unwrap();
    assert_eq!(st.get("blobs/big").unwrap(), None);
}

/// `get_many` answers in the order asked, absent keys included.
pub fn get_many(s: &Subject) {
    let st = &s.store;
    let keys: Vec<String> = (0..40u8).map(node_key).collect();
    let batch: Vec<(String, Vec<u8>)> = keys.iter().step_by(2).map(|k| (k.clone(), k.as_bytes().to_vec())).collect();
    st.put_batch(&batch).unwrap();
    let got = (s.reopen)().get_many(&keys).unwrap();
    assert_eq!(got.len(), keys.len());
    for (idx, (key, value)) in keys.iter().zip(got).enumerate() {
        let expected = (idx % 2 == 0).then(|| key.as_bytes().to_vec());
        assert_eq!(value, expected, "get_many, key {key}");
    }
}

/// `stored_sizes` answers in the order asked (a key asked twice, twice): `None` for an absent
/// or deleted key, and a size it knows is exact: the value's length for any key but a node,
/// for a node at least its length and at most 64 bytes more (a packed store counts the node's
/// entry in its pack's index). A backend that keeps the trait's default, `None` for every
/// key, passes; [`stored_sizes_reported`] checks that a backend knows every size.
pub fn stored_sizes(s: &Subject) {
    check_stored_sizes(s, false);
}

/// [`stored_sizes`], and every present key's size is known: for the backends that report
/// sizes (the built-in local stores, SQL, Redis), so that garbage collection can report the
/// bytes it frees. Not in [`CHECKS`]: the trait's default answers `None`.
pub fn stored_sizes_reported(s: &Subject) {
    check_stored_sizes(s, true);
}

fn check_stored_sizes(s: &Subject, reported: bool) {
    let st = &s.store;
    assert_eq!(st.stored_sizes(&[]).unwrap(), Vec::<Option<u64>>::new(), "no keys, no sizes");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let present: Vec<(String, Vec<u8>)> = vec![
        ("config".into(), b"c1".to_vec()),
        ("heads/db".into(), vec![7; 300]),
        ("commits/a".into(), vec![1; 1000]),
        ("values/big".into(), big),
        ("empty".into(), Vec::new()),
        (node_key(1), vec![2; 10]),
        (node_key(2), vec![3; 5000]),
    ];
    st.put_batch(&present).unwrap();
    let absent = ["nothing/here".to_string(), node_key(3), "heads/none".to_string()];
    let mut keys: Vec<String> = present.iter().map(|(k, _)| k.clone()).collect();
    keys.extend(absent.iter().cloned());
    keys.push("config".to_string());
    keys.push(node_key(2));
    // Through another handle, as a collector in another process would ask.
    let sizes = (s.reopen)().stored_sizes(&keys).unwrap();
    assert_eq!(sizes.len(), keys.len(), "one size per key asked");
    let expected = |key: &str| present.iter().find(|(k, _)| k == key).map(|(_, v)| v.len() as u64);
    for (key, size) in keys.iter().zip(&sizes) {
        match (expected(key), *size) {
            (None, None) => {}
            (None, Some(n)) => panic!("stored_sizes of absent key {key}: {n} bytes"),
            (Some(len), None) => assert!(!reported, "stored_sizes of {key} ({len} bytes): unknown"),
            (Some(len), Some(n)) if key.starts_with("nodes/") => {
                assert!(n >= len && n <= len + 64, "stored_sizes of node {key} ({len} bytes): {n}");
            }
            (Some(len), Some(n)) => assert_eq!(n, len, "stored_sizes of {key}"),
        }
    }
    st.delete_batch(&["config".to_string(), node_key(1), "values/big".to_string()]).unwrap();
    let after = st.stored_sizes(&["config".to_string(), node_key(1), "values/big".to_string(), node_key(2)]).unwrap();
    assert_eq!(after[..3], [None, None, None], "stored_sizes of deleted keys");
    assert_eq!(after[3], sizes[6], "stored_sizes of a node beside deleted ones");
}

/// Readers on other handles see every value whole while a writer replaces it: never torn,
/// never going back.
pub fn concurrent_readers(s: &Subject) {
    const ROUNDS: u64 = 30;
    const LEN: usize = 256 << 10;
    let value = |n: u64| -> Vec<u8> {
        let mut v = vec![(n % 251) as u8; LEN];
        v[..8].copy_from_slice(&n.to_le_bytes());
        v
    };
    s.store.put_batch(&[("heads/shared".to_string(), value(0))]).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let st = (s.reopen)();
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut last = 0u64;
                let mut reads = 0u64;
                while !done.load(Ordering::SeqCst) || reads == 0 {
                    let v = st.get("heads/shared").unwrap().expect("the key never disappears");
                    let n = u64::from_le_bytes(v[..8].try_into().unwrap());
                    assert_eq!(v.len(), LEN, "a torn value of round {n}");
                    assert!(v[8..].iter().all(|b| *b == (n % 251) as u8), "a torn value of round {n}");
                    assert!(n >= last, "a reader went back from round {last} to {n}");
                    last = n;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut current = value(0);
    for n in 1..=ROUNDS {
        let next = value(n);
        if n % 2 == 0 {
            s.store.put_batch(&[("heads/shared".to_string(), next.clone())]).unwrap();
        } else {
            assert!(s.store.compare_and_set("heads/shared", Some(&current), &next).unwrap());
        }
        current = next;
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}

/// Everything written is there for a handle opened after the writing one is dropped.
pub fn reopen(s: &Subject) {
    let st = &s.store;
    st.put_batch(&entries(&[("config", b"c"), (&node_key(9), b"n")])).unwrap();
    assert!(st.compare_and_set("heads/db", None, b"h").unwrap());
    st.log_append("db", 1, b"r1").unwrap();
    st.log_append("db", 2, b"r2").unwrap();
    let again = (s.reopen)();
    assert_eq!(again.get("config").unwrap().as_deref(), Some(&b"c"[..]));
    assert_eq!(again.get(&node_key(9)).unwrap().as_deref(), Some(&b"n"[..]));
    assert_eq!(again.get("heads/db").unwrap().as_deref(), Some(&b"h"[..]));
    assert_eq!(again.log_read("db", 0).unwrap(), vec![(1, b"r1".to_vec()), (2, b"r2".to_vec())]);
    again.log_append("db", 3, b"r3").unwrap();
    assert_eq!(st.log_read("db", 2).unwrap(), vec![(3, b"r3".to_vec())]);
}

/// The writer lock excludes a second holder, on another handle, until it is released.
pub fn writer_lock_excludes(s: &Subject) {
    let held = s.store.lock_writer().unwrap();
    let released = Arc::new(AtomicBool::new(false));
    let acquired = Arc::new(AtomicU64::new(0));
    let (started_tx, started_rx) = mpsc::channel();
    let thread = {
        let st = (s.reopen)();
        let released = Arc::clone(&released);
        let acquired = Arc::clone(&acquired);
        std::thread::spawn(move || {
            started_tx.send(()).unwrap();
            let _guard = st.lock_writer().unwrap();
            assert!(released.load(Ordering::SeqCst), "the writer lock was acquired while held elsewhere");
            acquired.fetch_add(1, Ordering::SeqCst);
        })
    };
    started_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(acquired.load(Ordering::SeqCst), 0);
    released.store(true, Ordering::SeqCst);
    drop(held);
    thread.join().unwrap();
    assert_eq!(acquired.load(Ordering::SeqCst), 1);
    // Free again after the second holder let go.
    drop(s.store.lock_writer().unwrap());
}

/// `destroy` removes the store's data.
pub fn destroy(s: &Subject) {
    let st = &s.store;
    st.put_batch(&entries(&[("config", b"c"), (&node_key(1), b"n")])).unwrap();
    st.log_append("db", 1, b"r").unwrap();
    st.destroy().unwrap();
}

/// The database over a backend, end to end: `config` names a fresh store (nothing exists
/// under it yet). Creates the database, transacts past an index flush, queries, reads
/// history and as-of views, reopens, branches and merges, collects garbage and verifies the
/// store, and deletes the database. Panics naming the step that failed.
pub fn database(config: &crate::Config) {
    use crate::edn::read_str;
    use crate::{q, BranchOrCommit, Edn, IndexOrder, QueryInput, TimePoint};

    let step = |what: &str, e: crate::Error| -> ! { panic!("database conformance, {what}: {e}") };
    let query = |db: &crate::Db, text: &str| -> Edn {
        q(&read_str(text).unwrap(), &[QueryInput::from(db.clone())]).unwrap_or_else(|e| step(text, e))
    };
    assert!(!crate::database_exists(config).unwrap_or_else(|e| step("database-exists", e)));
    crate::create_database(config).unwrap_or_else(|e| step("create-database", e));
    assert!(crate::database_exists(config).unwrap_or_else(|e| step("database-exists", e)));
    let conn = crate::connect(config).unwrap_or_else(|e| step("connect", e));
    let schema = r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
                     {:db/ident :n :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
                     {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]"#;
    conn.transact(&read_str(schema).unwrap()).unwrap_or_else(|e| step("schema", e));
    // Past one automatic flush, so that nodes, a snapshot and a commit pack are stored.
    let count = crate::FLUSH_EVERY_TXS + 200;
    for i in 0..count {
        let tx = format!(r#"[{{:name "p{i}" :n {i} :friend [{{:name "p{}"}}]}}]"#, (i + 1) % count);
        conn.transact(&read_str(&tx).unwrap()).unwrap_or_else(|e| step("transact", e));
    }
    let after_load = conn.db();
    // Long values are stored out of line (`values/<hash>`); one on this branch, one on a
    // branch deleted below, whose value garbage collection then deletes.
    let long = |seed: u8| -> String {
        (0..100_000).map(|i| char::from(b'a' + ((i * 7 + seed as usize) % 26) as u8)).collect()
    };
    let (long_main, long_feature) = (long(1), long(2));
    let by_name = |db: &crate::Db, name: &str| -> Edn {
        q(
            &read_str("[:find ?e . :in $ ?name :where [?e :name ?name]]").unwrap(),
            &[QueryInput::from(db.clone()), QueryInput::Edn(Edn::str(name))],
        )
        .unwrap_or_else(|e| step("a lookup of a long value", e))
    };
    let long_tx = |name: &str| Edn::Vector(vec![Edn::Map(vec![(Edn::kw("name"), Edn::str(name))])]);
    conn.transact(&long_tx(&long_main)).unwrap_or_else(|e| step("transact a long value", e));
    conn.transact(&read_str(r#"[{:name "p7" :n -7} [:db/retractEntity [:name "p8"]]]"#).unwrap())
        .unwrap_or_else(|e| step("overwrite and retract", e));
    let expect = |db: &crate::Db, what: &str, entities: usize| {
        assert_eq!(
            query(db, "[:find (count ?e) . :where [?e :n]]"),
            Edn::Int(i64::try_from(entities).unwrap()),
            "{what}: entities"
        );
        assert_eq!(query(db, r#"[:find ?n . :where [?e :name "p7"] [?e :n ?n]]"#), Edn::Int(-7), "{what}: overwrite");
        assert_eq!(
            query(db, r#"[:find ?f . :where [?e :name "p10"] [?e :friend ?x] [?x :name ?f]]"#),
            Edn::str("p11"),
            "{what}: refs"
        );
        let history = db.history().unwrap_or_else(|e| step("history", e));
        assert_eq!(
            query(&history, r#"[:find (count ?n) . :where [?e :name "p7"] [?e :n ?n _ false]]"#),
            Edn::Int(1),
            "{what}: history"
        );
        let as_of = db.as_of(TimePoint::Tx(after_load.max_tx())).unwrap_or_else(|e| step("as-of", e));
        assert_eq!(query(&as_of, r#"[:find ?n . :where [?e :name "p7"] [?e :n ?n]]"#), Edn::Int(7), "{what}: as-of");
        let range = db.datoms(IndexOrder::Avet, &[Edn::kw("n"), Edn::Int(100)]).unwrap_or_else(|e| step("datoms", e));
        assert_eq!(range.len(), 1, "{what}: avet datoms");
        let long = db.datoms(IndexOrder::Avet, &[Edn::kw("name"), Edn::str(&long_main)]);
        let long = long.unwrap_or_else(|e| step("datoms of a long value", e));
        assert_eq!(long.len(), 1, "{what}: a long value in avet");
        assert_eq!(by_name(db, &long_main), Edn::Int(long[0].e), "{what}: a long value by query");
        let mut near = long_main.clone();
        near.push('x');
        assert_eq!(by_name(db, &near), Edn::Nil, "{what}: a longer value is another one");
    };
    expect(&conn.db(), "before reopening", count - 1);
    let before = conn.db().max_tx();
    conn.release().unwrap_or_else(|e| step("release", e));
    let conn = crate::connect(config).unwrap_or_else(|e| step("reconnect", e));
    assert_eq!(conn.db().max_tx(), before, "every commit survives a reopen");
    expect(&conn.db(), "after reopening", count - 1);

    let feature = crate::Keyword::new("feature");
    conn.branch(&BranchOrCommit::Branch(crate::Keyword::new("db")), feature).unwrap_or_else(|e| step("branch", e));
    let branch_config = crate::Config { branch: feature, ..config.clone() };
    let on_branch = crate::connect(&branch_config).unwrap_or_else(|e| step("connect to the branch", e));
    on_branch
        .transact(&read_str(r#"[{:name "only-on-feature" :n 100000}]"#).unwrap())
        .unwrap_or_else(|e| step("transact on the branch", e));
    assert_eq!(
        query(&conn.db(), r#"[:find ?e . :where [?e :name "only-on-feature"]]"#),
        Edn::Nil,
        "branches are apart"
    );
    conn.merge_db(&[BranchOrCommit::Branch(feature)], &read_str(r#"[{:name "merged" :n 100001}]"#).unwrap(), None)
        .unwrap_or_else(|e| step("merge-db", e));
    assert_eq!(conn.db().parent_commit_ids().map(|p| p.len()), Some(2), "a merge has two parents");
    on_branch.transact(&long_tx(&long_feature)).unwrap_or_else(|e| step("transact a long value on the branch", e));
    on_branch.release().unwrap_or_else(|e| step("release the branch", e));
    let on_branch = crate::connect(&branch_config).unwrap_or_else(|e| step("reconnect to the branch", e));
    assert!(matches!(by_name(&on_branch.db(), &long_feature), Edn::Int(_)), "a long value survives a reopen");
    on_branch.release().unwrap_or_else(|e| step("release the branch", e));
    conn.delete_branch(feature).unwrap_or_else(|e| step("delete-branch", e));
    assert!(!conn.branches().unwrap_or_else(|e| step("branches", e)).contains(&feature));

    // The sizes of every collectable key, as the store tells them before the collection
    // (through a handle of its own; the flush first, so that the collection writes nothing).
    conn.flush().unwrap_or_else(|e| step("flush before gc", e));
    let store = config.store.open(super::OpenMode::Open).ok().flatten().expect("the store opens again");
    let mut keys = Vec::new();
    for prefix in ["nodes/", "values/", "commits/", "packs/"] {
        keys.extend(store.list(prefix).unwrap_or_else(|e| step("list", e.into())));
    }
    let sizes = store.stored_sizes(&keys).unwrap_or_else(|e| step("stored-sizes", e.into()));
    let size_of: std::collections::HashMap<&String, Option<u64>> = keys.iter().zip(sizes).collect();
    let report = conn.gc_storage(None).unwrap_or_else(|e| step("gc-storage", e));
    assert!(report.kept_nodes > 0, "gc keeps the live nodes");
    let by_kind = report.deleted_nodes
        + report.deleted_values
        + report.deleted_commits
        + report.deleted_packs
        + report.deleted_temporaries;
    assert_eq!(by_kind, report.deleted.len(), "gc counts every deleted key by kind: {report:?}");
    assert!(report.deleted_nodes > 0 && report.deleted_values == 1, "gc deletes the deleted branch's nodes and value");
    let keys_deleted = &report.deleted[..report.deleted.len() - report.deleted_temporaries];
    let told = keys_deleted.iter().try_fold(0u64, |sum, key| Some(sum + (*size_of.get(key)?)?));
    assert_eq!(report.freed_bytes, told, "gc's freed bytes are the sizes of the keys it deleted");
    if let Some(freed) = report.freed_bytes {
        assert!(freed >= 100_000, "the freed bytes ({freed}) hold at least the deleted branch's long value");
    }
    let value_key = |s: &str| crate::index::codec::value_key(&crate::index::codec::value_hash(s.as_bytes()));
    assert!(report.deleted.contains(&value_key(&long_feature)), "gc deletes the deleted branch's long value");
    assert!(!report.deleted.contains(&value_key(&long_main)), "gc keeps a live long value");
    assert_eq!(report.kept_values, 1, "gc keeps the live long value");
    conn.verify_storage().unwrap_or_else(|e| step("verify-storage after gc", e));
    expect(&conn.db(), "after gc", count);
    conn.release().unwrap_or_else(|e| step("release", e));
    let conn = crate::connect(config).unwrap_or_else(|e| step("reconnect after gc", e));
    expect(&conn.db(), "reopened after gc", count);
    conn.release().unwrap_or_else(|e| step("release", e));
    crate::delete_database(config).unwrap_or_else(|e| step("delete-database", e));
    assert!(!crate::database_exists(config).unwrap_or_else(|e| step("database-exists after delete", e)));
}
