//! The file store on the real file system: creation and opening, the on-disk layout, log
//! segments, node packs (stores of format 1 still read and upgrade, handles see packs other
//! handles wrote, rewrote or merged, deleting nodes removes their bytes), and what torn,
//! garbage or flipped bytes, crash leftovers and failed writes lead to.

use datahike::store::{FileStore, Store, StoreError};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn new_store() -> (TempDir, PathBuf, FileStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("db");
    let store = FileStore::create(&path).expect("create");
    (dir, path, store)
}

fn node_key(n: u32) -> String {
    format!("nodes/{n:08x}{}", "0123456789abcdef01234567")
}

/// The pack files of the store at `path`, by name.
fn pack_files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(path.join("nodepacks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .collect();
    files.sort();
    files
}

fn segments(path: &Path, log: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        fs::read_dir(path.join("log").join(log)).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

fn payload(seq: u64) -> Vec<u8> {
    format!("record number {seq}").into_bytes()
}

fn expected(seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, Vec<u8>)> {
    seqs.into_iter().map(|seq| (seq, payload(seq))).collect()
}

#[test]
fn create_open_exists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/db");
    assert!(!FileStore::exists(&path));
    let err = FileStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");

    let store = FileStore::create(&path).unwrap();
    assert!(FileStore::exists(&path));
    assert_eq!(store.path(), path);
    let err = FileStore::create(&path).unwrap_err();
    assert!(err.to_string().contains("already holds a store"), "{err}");

    // A non-empty directory that is not a store is neither opened nor taken over.
    let other = dir.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("precious"), b"x").unwrap();
    assert!(FileStore::create(&other).unwrap_err().to_string().contains("not empty"));
    let err = FileStore::open(&other).unwrap_err();
    assert!(err.to_string().contains(&other.display().to_string()), "{err}");
    // An empty existing directory may become a store.
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    FileStore::create(&empty).unwrap();

    // A store of another format version is refused with the path named.
    fs::write(path.join("FORMAT"), b"datahike-rs file store\nformat 99\n").unwrap();
    let err = FileStore::open(&path).unwrap_err();
    assert!(err.to_string().contains("unsupported store format"), "{err}");
    fs::write(path.join("FORMAT"), b"something else").unwrap();
    assert!(FileStore::open(&path).unwrap_err().to_string().contains("is not a datahike file store"));
}

#[test]
fn data_survives_reopening_and_layout_is_as_documented() {
    let (_dir, path, store) = new_store();
    let node = "nodes/ab0123456789abcdef0123456789abcd";
    store.put_batch(&[(node.to_string(), b"node".to_vec()), ("config".to_string(), b"cfg".to_vec())]).unwrap();
    assert!(store.compare_and_set("heads/db", None, b"head").unwrap());
    store.log_append("db", 1, b"one").unwrap();
    drop(store);

    assert_eq!(pack_files(&path).len(), 1, "the batch's node is in one pack");
    assert!(!path.join("nodes").exists(), "format 2 writes no node files");
    assert!(path.join("heads/db").is_file());
    assert!(path.join("kv/config").is_file());
    assert!(path.join("log/db/00000000000000000001.seg").is_file());
    assert!(path.join("LOCK").is_file());

    let store = FileStore::open(&path).unwrap();
    assert_eq!(store.get(node).unwrap().as_deref(), Some(&b"node"[..]));
    assert_eq!(store.get("config").unwrap().as_deref(), Some(&b"cfg"[..]));
    assert_eq!(store.get("heads/db").unwrap().as_deref(), Some(&b"head"[..]));
    assert_eq!(store.log_read("db", 0).unwrap(), vec![(1, b"one".to_vec())]);
    store.log_append("db", 2, b"two").unwrap();
    assert_eq!(store.log_read("db", 1).unwrap(), vec![(2, b"two".to_vec())]);
    assert_eq!(segments(&path, "db").len(), 1);
}

#[test]
fn many_nodes_in_one_batch_and_nodes_are_immutable() {
    let (_dir, path, store) = new_store();
    let batch: Vec<(String, Vec<u8>)> = (0..700).map(|n| (node_key(n), n.to_le_bytes().to_vec())).collect();
    store.put_batch(&batch).unwrap();
    assert_eq!(store.list("nodes/").unwrap().len(), 700);
    for (key, bytes) in batch.iter().step_by(37) {
        assert_eq!(store.get(key).unwrap().as_ref(), Some(bytes));
    }
    // An existing node is final: rewriting it is skipped.
    store.put_batch(&[(node_key(5), b"other".to_vec())]).unwrap();
    assert_eq!(store.get(&node_key(5)).unwrap(), Some(5u32.to_le_bytes().to_vec()));
    // One pack for the batch, none for the skipped rewrite, and no temporary left behind.
    assert_eq!(pack_files(&path).len(), 1);
    assert!(fs::read_dir(path.join("nodepacks")).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains('~')));
}

#[test]
fn foreign_and_temporary_files_are_not_keys() {
    let (_dir, path, store) = new_store();
    store.put_batch(&[("k".to_string(), b"v".to_vec())]).unwrap();
    fs::write(path.join("kv/~tmp.1.2"), b"half").unwrap();
    fs::write(path.join("kv/a%2fb"), b"non-canonical").unwrap();
    fs::write(path.join("heads/~tmp.3.4"), b"half").unwrap();
    fs::create_dir_all(path.join("nodes/zz")).unwrap();
    fs::write(path.join("nodes/zz/whatever"), b"x").unwrap();
    assert_eq!(store.list("").unwrap(), vec!["k".to_string()]);
}

#[test]
fn log_segments_rotate_and_discard_whole_sealed_segments() {
    let (_dir, path, store) = new_store();
    let store = store.with_segment_bytes_max(100);
    // Each frame is 16 + 16..17 bytes, so a segment takes four records.
    for seq in 1..=40u64 {
        store.log_append("db", seq, &payload(seq)).unwrap();
    }
    let before = segments(&path, "db");
    assert_eq!(before.len(), 10);
    assert!(before[0].ends_with("00000000000000000001.seg"));
    assert!(before[1].ends_with("00000000000000000005.seg"));
    assert_eq!(store.log_read("db", 0).unwrap(), expected(1..=40));
    assert_eq!(store.log_read("db", 17).unwrap(), expected(18..=40));
    assert_eq!(store.log_read("db", 20).unwrap(), expected(21..=40));

    // Records 1..=8 fill the first two segments; record 9 starts the third.
    store.log_discard("db", 10).unwrap();
    let after = segments(&path, "db");
    assert_eq!(after.len(), 8);
    assert!(after[0].ends_with("00000000000000000009.seg"));
    assert_eq!(store.log_read("db", 0).unwrap(), expected(9..=40));
    assert_eq!(store.log_read("db", 10).unwrap(), expected(11..=40));

    // Discarding everything keeps the active segment, and appending goes on.
    store.log_discard("db", u64::MAX).unwrap();
    assert_eq!(segments(&path, "db").len(), 1);
    assert_eq!(store.log_read("db", 36).unwrap(), expected(37..=40));
    store.log_append("db", 41, &payload(41)).unwrap();
    assert_eq!(store.log_read("db", 40).unwrap(), expected([41]));

    // A fresh handle picks the log up where it is.
    let other = FileStore::open(&path).unwrap().with_segment_bytes_max(100);
    other.log_append("db", 42, &payload(42)).unwrap();
    assert_eq!(other.log_read("db", 36).unwrap(), expected(37..=42));
}

/// Regression (`multi_process.rs` on the file backend: a reader's `latest()` failed with an
/// I/O error naming a segment): a reader lists the segments of a log, then a flush or a
/// collection discards some before it reads them. A segment that is gone when read was
/// covered by a newer head, as was everything before it: the read returns only what follows
/// it, and the caller, missing the records right after its value, reads the head again. A
/// dangling link stands for a segment removed between the listing and the read.
#[test]
fn segments_discarded_between_listing_and_reading_are_skipped_with_everything_before_them() {
    let (_dir, path, store) = new_store();
    let store = store.with_segment_bytes_max(100);
    for seq in 1..=12u64 {
        store.log_append("db", seq, &payload(seq)).unwrap();
    }
    let segments = segments(&path, "db");
    assert_eq!(segments.len(), 3, "{segments:?}");
    let remove_after_listing = |segment: &Path| {
        fs::remove_file(segment).unwrap();
        std::os::unix::fs::symlink(path.join("gone"), segment).unwrap();
    };
    // Records 1..=4 read, then the segment of 5..=8 gone: 1..=4 were covered too.
    remove_after_listing(&segments[1]);
    assert_eq!(store.log_read("db", 0).unwrap(), expected(9..=12));
    assert_eq!(store.log_read("db", 2).unwrap(), expected(9..=12));
    // Every segment gone (a collection whose head covers the whole log).
    remove_after_listing(&segments[0]);
    remove_after_listing(&segments[2]);
    assert_eq!(store.log_read("db", 0).unwrap(), Vec::new());
    let fresh = FileStore::open(&path).unwrap();
    assert_eq!(fresh.log_read("db", 4).unwrap(), Vec::new());
}

#[test]
fn two_handles_appending_in_turn_keep_one_ordered_log() {
    let (_dir, path, first) = new_store();
    let first = first.with_segment_bytes_max(100);
    let second = FileStore::open(&path).unwrap().with_segment_bytes_max(100);
    for seq in 1..=30u64 {
        let store = if seq % 3 == 0 { &second } else { &first };
        let _writer = store.lock_writer().unwrap();
        store.log_append("db", seq, &payload(seq)).unwrap();
    }
    let reader = FileStore::open(&path).unwrap();
    assert_eq!(reader.log_read("db", 0).unwrap(), expected(1..=30));
}

/// The length of a segment's frames: the bytes before the zeros written ahead of them.
fn written_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1)
}

/// Writes records 1..=3 and returns the segment and the offset where record 3 starts.
fn three_records(store: &FileStore, path: &Path) -> (PathBuf, usize) {
    for seq in 1..=3 {
        store.log_append("db", seq, &payload(seq)).unwrap();
    }
    let segment = segments(path, "db").pop().unwrap();
    let len = written_len(&fs::read(&segment).unwrap());
    assert_eq!(len, (1..=3).map(|seq| 16 + payload(seq).len()).sum::<usize>());
    (segment, len - (16 + payload(3).len()))
}

#[test]
fn appends_overwrite_zeros_written_ahead() {
    let (_dir, path, store) = new_store();
    let (segment, _) = three_records(&store, &path);
    let size = fs::metadata(&segment).unwrap().len();
    assert!(size > written_len(&fs::read(&segment).unwrap()) as u64 + 4096, "no space written ahead");
    store.log_append("db", 4, &payload(4)).unwrap();
    assert_eq!(fs::metadata(&segment).unwrap().len(), size, "an append into the zeros keeps the file size");
    assert_eq!(FileStore::open(&path).unwrap().log_read("db", 0).unwrap(), expected(1..=4));
}

#[test]
fn a_torn_last_record_is_ignored_and_cut_off_by_the_next_append() {
    let (_dir, path, store) = new_store();
    let (segment, third_start) = three_records(&store, &path);
    drop(store);
    let original = fs::read(&segment).unwrap();
    let written = written_len(&original);
    for cut in third_start..written {
        // Torn at the end of the file, and torn inside the zeros written ahead.
        let mut zero_tail = original.clone();
        zero_tail[cut..].fill(0);
        for torn in [&original[..cut], &zero_tail[..]] {
            fs::write(&segment, torn).unwrap();
            let store = FileStore::open(&path).unwrap();
            assert_eq!(store.log_read("db", 0).unwrap(), expected(1..=2), "cut at {cut}");
            store.log_append("db", 3, &payload(3)).unwrap();
            store.log_append("db", 4, &payload(4)).unwrap();
            assert_eq!(store.log_read("db", 0).unwrap(), expected(1..=4), "cut at {cut}");
            assert_eq!(FileStore::open(&path).unwrap().log_read("db", 1).unwrap(), expected(2..=4));
        }
    }
}

#[test]
fn a_torn_first_record_of_a_new_segment_is_dropped_with_the_segment() {
    let (_dir, path, store) = new_store();
    let store = store.with_segment_bytes_max(1);
    for seq in 1..=3 {
        store.log_append("db", seq, &payload(seq)).unwrap();
    }
    drop(store);
    let last = segments(&path, "db").pop().unwrap();
    let original = fs::read(&last).unwrap();
    for cut in 0..written_len(&original) {
        fs::write(&last, &original[..cut]).unwrap();
        let store = FileStore::open(&path).unwrap().with_segment_bytes_max(1);
        assert_eq!(store.log_read("db", 0).unwrap(), expected(1..=2), "cut at {cut}");
        store.log_append("db", 3, &payload(3)).unwrap();
        assert_eq!(store.log_read("db", 0).unwrap(), expected(1..=3), "cut at {cut}");
        assert_eq!(segments(&path, "db").len(), 3);
    }
}

#[test]
fn a_garbage_tail_is_ignored() {
    for garbage in [vec![0u8; 4096], vec![0xff; 20], b"not a record at all, just text".to_vec()] {
        let (_dir, path, store) = new_store();
        let (segment, _) = three_records(&store, &path);
        let mut bytes = fs::read(&segment).unwrap();
        bytes.extend_from_slice(&garbage);
        fs::write(&segment, &bytes).unwrap();
        assert_eq!(store.log_read("db", 0).unwrap(), expected(1..=3));
        // This handle's appender sees the file changed under it and rescans.
        store.log_append("db", 4, &payload(4)).unwrap();
        assert_eq!(store.log_read("db", 0).unwrap(), expected(1..=4));
        let frames_len = (1..=4).map(|seq| 16 + payload(seq).len()).sum::<usize>();
        assert_eq!(written_len(&fs::read(&segment).unwrap()), frames_len, "the garbage is cut off");
    }
}

#[test]
fn a_flipped_byte_in_a_middle_record_is_corruption() {
    let (_dir, path, store) = new_store();
    let (segment, third_start) = three_records(&store, &path);
    drop(store);
    let original = fs::read(&segment).unwrap();
    let second_start = 16 + payload(1).len();
    for idx in second_start..third_start {
        let mut bytes = original.clone();
        bytes[idx] ^= 0x40;
        fs::write(&segment, &bytes).unwrap();
        let store = FileStore::open(&path).unwrap();
        let err = store.log_read("db", 0).unwrap_err();
        let StoreError::Corrupt { key, reason } = &err else { panic!("byte {idx}: {err}") };
        assert_eq!(key, &segment.display().to_string());
        assert!(reason.contains(&format!("offset {second_start}")), "{reason}");
        // A reader that needs only what follows the damaged record (the indices cover it)
        // reads on, and appends go after the last good record; the damage stays visible to
        // every reader that needs it.
        assert_eq!(store.log_read("db", 2).unwrap(), expected(3..=3), "byte {idx}");
        store.log_append("db", 4, &payload(4)).unwrap();
        assert_eq!(store.log_read("db", 2).unwrap(), expected(3..=4), "byte {idx}");
        assert!(matches!(store.log_read("db", 1), Err(StoreError::Corrupt { .. })), "byte {idx}");
        drop(store);
    }
}

#[test]
fn a_damaged_sealed_segment_is_corruption() {
    let (_dir, path, store) = new_store();
    let store = store.with_segment_bytes_max(60);
    for seq in 1..=6 {
        store.log_append("db", seq, &payload(seq)).unwrap();
    }
    let first = segments(&path, "db").remove(0);
    let bytes = fs::read(&first).unwrap();
    fs::write(&first, &bytes[..written_len(&bytes) - 1]).unwrap();
    let err = store.log_read("db", 0).unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { key, .. } if key.contains("00000000000000000001.seg")), "{err}");
    // Reading past the damaged segment does not need it.
    assert_eq!(store.log_read("db", 2).unwrap(), expected(3..=6));
}

#[test]
fn a_failed_write_poisons_the_handle_until_reopened() {
    let (_dir, path, store) = new_store();
    // A directory where the head's file must go makes the rename fail, even for root.
    fs::create_dir(path.join("heads/db")).unwrap();
    let err = store.put_batch(&[("heads/db".to_string(), b"h".to_vec())]).unwrap_err();
    assert!(matches!(&err, StoreError::Io { path: p, .. } if p.ends_with("heads/db")), "{err}");
    assert!(fs::read_dir(path.join("heads")).unwrap().count() == 1, "temporary file left behind");

    for err in [
        store.put_batch(&[("k".to_string(), b"v".to_vec())]).unwrap_err(),
        store.delete_batch(&["k".to_string()]).unwrap_err(),
        store.compare_and_set("heads/other", None, b"h").unwrap_err(),
        store.log_append("db", 1, b"r").unwrap_err(),
        store.log_discard("db", 1).unwrap_err(),
    ] {
        assert!(matches!(&err, StoreError::Poisoned(reason) if reason.contains("heads/db")), "{err}");
    }
    // Reads still work.
    assert_eq!(store.get("k").unwrap(), None);

    fs::remove_dir(path.join("heads/db")).unwrap();
    let store = FileStore::open(&path).unwrap();
    store.put_batch(&[("heads/db".to_string(), b"h".to_vec())]).unwrap();
    assert_eq!(store.get("heads/db").unwrap().as_deref(), Some(&b"h"[..]));
}

#[test]
fn a_failed_log_append_poisons_the_handle() {
    let (_dir, path, store) = new_store();
    let store = store.with_segment_bytes_max(1);
    store.log_append("db", 1, b"one").unwrap();
    // The next segment's name is taken by a directory: starting it fails.
    fs::create_dir(path.join("log/db/00000000000000000002.seg")).unwrap();
    let err = store.log_append("db", 2, b"two").unwrap_err();
    assert!(matches!(&err, StoreError::Io { path: p, .. } if p.ends_with("00000000000000000002.seg")), "{err}");
    let err = store.log_append("db", 3, b"three").unwrap_err();
    assert!(matches!(err, StoreError::Poisoned(_)), "{err}");
}

#[test]
fn invalid_keys_are_refused_without_poisoning() {
    let (_dir, _path, store) = new_store();
    assert!(matches!(store.put_batch(&[(String::new(), b"v".to_vec())]), Err(StoreError::Invalid(_))));
    assert!(matches!(store.get(""), Err(StoreError::Invalid(_))));
    assert!(matches!(store.log_append("", 1, b"r"), Err(StoreError::Invalid(_))));
    store.put_batch(&[("k".to_string(), b"v".to_vec())]).unwrap();
}

#[test]
fn destroy_refuses_a_directory_that_is_no_longer_a_store() {
    let (_dir, path, store) = new_store();
    fs::remove_file(path.join("FORMAT")).unwrap();
    let err = store.destroy().unwrap_err();
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert!(path.join("nodepacks").is_dir());
}

#[test]
fn writer_lock_excludes_a_second_handle_until_dropped() {
    let (_dir, path, store) = new_store();
    let other = FileStore::open(&path).unwrap();
    let guard = store.lock_writer().unwrap();
    assert!(other.try_lock_writer().unwrap().is_none());
    assert!(store.try_lock_writer().unwrap().is_none());
    drop(guard);
    let guard = other.try_lock_writer().unwrap().expect("free");
    assert!(store.try_lock_writer().unwrap().is_none());
    drop(guard);
    assert!(store.try_lock_writer().unwrap().is_some());
}

// Node packs.

/// Bytes unique to node `n`, so a file holding them can be found.
fn node_bytes(n: u32) -> Vec<u8> {
    format!("node-bytes-{n:06}-end").into_bytes()
}

fn batch(range: std::ops::Range<u32>) -> Vec<(String, Vec<u8>)> {
    range.map(|n| (node_key(n), node_bytes(n))).collect()
}

fn listed(store: &FileStore) -> BTreeSet<String> {
    let keys = store.list("nodes/").unwrap();
    let set: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(set.len(), keys.len(), "a node is listed once: {keys:?}");
    set
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_format_1_store_is_read_listed_and_upgraded_by_the_first_pack() {
    let (_dir, path, store) = new_store();
    drop(store);
    // Turn the new store into one as format 1 left it: FORMAT 1, a node as its own file.
    fs::write(path.join("FORMAT"), b"datahike-rs file store\nformat 1\n").unwrap();
    fs::remove_dir(path.join("nodepacks")).unwrap();
    let legacy = node_key(1);
    let legacy_file = path.join("nodes").join(&legacy[6..8]).join(&legacy[8..]);
    fs::create_dir_all(legacy_file.parent().unwrap()).unwrap();
    fs::write(&legacy_file, node_bytes(1)).unwrap();

    let store = FileStore::open(&path).unwrap();
    assert_eq!(store.get(&legacy).unwrap(), Some(node_bytes(1)));
    assert_eq!(listed(&store), [legacy.clone()].into());
    assert_eq!(fs::read(path.join("FORMAT")).unwrap(), b"datahike-rs file store\nformat 1\n");

    let len = |n: u32| Some(u64::try_from(node_bytes(n).len()).unwrap());
    assert_eq!(store.stored_sizes(std::slice::from_ref(&legacy)).unwrap(), vec![len(1)], "a node file's length");

    store.put_batch(&batch(2..5)).unwrap();
    assert_eq!(fs::read(path.join("FORMAT")).unwrap(), b"datahike-rs file store\nformat 2\n");
    let sizes = store.stored_sizes(&[legacy.clone(), node_key(2), node_key(9)]).unwrap();
    assert_eq!(sizes, vec![len(1), len(2).map(|n| n + 32), None], "a packed node has an index entry");
    assert_eq!(pack_files(&path).len(), 1);
    let all: BTreeSet<String> = (1..5).map(node_key).collect();
    assert_eq!(listed(&store), all);

    // Deleting reaches both kinds.
    store.delete_batch(&[legacy.clone(), node_key(3)]).unwrap();
    assert!(!legacy_file.exists());
    let reopened = FileStore::open(&path).unwrap();
    assert_eq!(listed(&reopened), [node_key(2), node_key(4)].into());
    assert_eq!(reopened.get(&legacy).unwrap(), None);
    assert_eq!(reopened.get(&node_key(3)).unwrap(), None);
    assert_eq!(reopened.get(&node_key(4)).unwrap(), Some(node_bytes(4)));
}

/// The total length of the store's pack files.
fn pack_bytes(path: &Path) -> u64 {
    pack_files(path).iter().map(|file| fs::metadata(file).unwrap().len()).sum()
}

#[test]
fn stored_sizes_are_what_deleting_takes_off_the_disk() {
    let (_dir, path, store) = new_store();
    // A batch naming a node twice stores its bytes once.
    let mut first = batch(0..10);
    first.push((node_key(3), node_bytes(3)));
    store.put_batch(&first).unwrap();
    store.put_batch(&batch(10..12)).unwrap();
    store.put_batch(&[("values/v".to_string(), vec![5; 777])]).unwrap();
    let node = u64::try_from(node_bytes(0).len()).unwrap();
    // Each pack: 8 bytes of header, 24 of footer, and per node its bytes and 32 of index.
    assert_eq!(pack_bytes(&path), 2 * 32 + 12 * (node + 32));
    let mut keys: Vec<String> = (0..12).map(node_key).collect();
    keys.extend(["values/v".to_string(), "values/none".to_string(), node_key(99)]);
    let mut expected = vec![Some(node + 32); 12];
    expected.extend([Some(777), None, None]);
    assert_eq!(store.stored_sizes(&keys).unwrap(), expected);
    assert_eq!(FileStore::open(&path).unwrap().stored_sizes(&keys).unwrap(), expected, "through another handle");

    // Three nodes of the first pack and both of the second: the first pack is rewritten
    // without their bytes and entries, the second removed with its header and footer.
    let doomed: Vec<String> = [0, 1, 2, 10, 11].map(node_key).to_vec();
    let freed: u64 = store.stored_sizes(&doomed).unwrap().into_iter().map(Option::unwrap).sum();
    let before = pack_bytes(&path);
    store.delete_batch(&doomed).unwrap();
    assert_eq!(pack_files(&path).len(), 1);
    assert_eq!(before - pack_bytes(&path), freed + 32);
    assert_eq!(store.stored_sizes(&doomed).unwrap(), vec![None; 5]);
    assert_eq!(store.stored_sizes(&[node_key(3)]).unwrap(), vec![Some(node + 32)]);
    let value = path.join("kv").join("values%2Fv");
    assert_eq!(fs::metadata(&value).unwrap().len(), 777);
}

#[test]
fn a_handle_sees_packs_another_handle_wrote_or_rewrote_after_it_opened() {
    let (_dir, path, writer) = new_store();
    let reader = FileStore::open(&path).unwrap();
    writer.put_batch(&batch(0..10)).unwrap();
    // The reader loads the packs on first use ...
    assert_eq!(reader.get(&node_key(3)).unwrap(), Some(node_bytes(3)));
    // ... and finds a later pack on a miss.
    writer.put_batch(&batch(10..20)).unwrap();
    assert_eq!(reader.get(&node_key(15)).unwrap(), Some(node_bytes(15)));
    assert_eq!(listed(&reader).len(), 20);

    // The writer deletes nodes: both packs are rewritten under new names. The reader, which
    // still places node 4 in an unlinked pack, finds it in the new one.
    writer.delete_batch(&[node_key(0), node_key(19)]).unwrap();
    assert_eq!(pack_files(&path).len(), 2);
    assert_eq!(reader.get(&node_key(4)).unwrap(), Some(node_bytes(4)));
    assert_eq!(reader.get(&node_key(18)).unwrap(), Some(node_bytes(18)));
    assert_eq!(reader.get(&node_key(0)).unwrap(), None);
    assert_eq!(reader.get(&node_key(19)).unwrap(), None);
    assert_eq!(listed(&reader).len(), 18);
    // A node never written is absent, not an error.
    assert_eq!(reader.get(&node_key(999)).unwrap(), None);
}

#[test]
fn deleting_nodes_removes_their_bytes_from_the_disk() {
    let (_dir, path, store) = new_store();
    store.put_batch(&batch(0..700)).unwrap();
    let doomed: Vec<String> = (0..700).filter(|n| n % 2 == 0).map(node_key).collect();
    store.delete_batch(&doomed).unwrap();
    let packs = pack_files(&path);
    assert_eq!(packs.len(), 1);
    let bytes = fs::read(&packs[0]).unwrap();
    for n in 0..700u32 {
        assert_eq!(contains(&bytes, &node_bytes(n)), n % 2 == 1, "node {n}");
        let expected = (n % 2 == 1).then(|| node_bytes(n));
        assert_eq!(store.get(&node_key(n)).unwrap(), expected, "node {n}");
    }
    // Deleting every node left unlinks the pack.
    let rest: Vec<String> = (0..700).filter(|n| n % 2 == 1).map(node_key).collect();
    store.delete_batch(&rest).unwrap();
    assert!(pack_files(&path).is_empty());
    assert!(listed(&store).is_empty());
    // Rewriting a deleted node stores it again.
    store.put_batch(&batch(5..6)).unwrap();
    assert_eq!(FileStore::open(&path).unwrap().get(&node_key(5)).unwrap(), Some(node_bytes(5)));
}

#[test]
fn crash_leftovers_do_no_harm() {
    let (_dir, path, store) = new_store();
    store.put_batch(&batch(0..50)).unwrap();
    let pack = pack_files(&path).remove(0);
    // A crash between writing a rewritten pack and unlinking the old one leaves the same
    // nodes in two packs; a crash while writing a pack leaves a temporary.
    fs::copy(&pack, path.join("nodepacks/0000000000000000000000ff-00000001-000000.pack")).unwrap();
    let dead_temp = path.join("nodepacks/~tmp.4000000000.7");
    fs::write(&dead_temp, b"half a pack").unwrap();

    let store = FileStore::open(&path).unwrap();
    assert_eq!(listed(&store).len(), 50);
    assert_eq!(store.get(&node_key(7)).unwrap(), Some(node_bytes(7)));
    // Deleting a node removes it from both copies.
    store.delete_batch(&[node_key(7)]).unwrap();
    for file in pack_files(&path) {
        assert!(!contains(&fs::read(&file).unwrap(), &node_bytes(7)), "{}", file.display());
    }
    let reopened = FileStore::open(&path).unwrap();
    assert_eq!(reopened.get(&node_key(7)).unwrap(), None);
    assert_eq!(listed(&reopened).len(), 49);
    let swept = reopened.sweep_temporaries().unwrap();
    assert!(swept.iter().any(|p| p.ends_with("~tmp.4000000000.7")), "{swept:?}");
    assert!(!dead_temp.exists());
}

#[test]
fn a_damaged_pack_is_corruption_naming_it() {
    let (_dir, path, store) = new_store();
    store.put_batch(&batch(0..20)).unwrap();
    let pack = pack_files(&path).remove(0);
    let mut bytes = fs::read(&pack).unwrap();

    // A flipped byte in a node's bytes: that node is corrupt, the others read.
    let at = bytes.windows(node_bytes(9).len()).position(|w| w == node_bytes(9)).unwrap();
    bytes[at + 3] ^= 0x20;
    fs::write(&pack, &bytes).unwrap();
    let store = FileStore::open(&path).unwrap();
    let err = store.get(&node_key(9)).unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { key, .. } if key == &node_key(9)), "{err}");
    assert!(err.to_string().contains(&pack.display().to_string()), "{err}");
    assert_eq!(store.get(&node_key(8)).unwrap(), Some(node_bytes(8)));

    // A truncated pack: its index cannot be read, which names the file.
    fs::write(&pack, &bytes[..bytes.len() - 5]).unwrap();
    let store = FileStore::open(&path).unwrap();
    let err = store.get(&node_key(8)).unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { key, .. } if key == &pack.display().to_string()), "{err}");
    // Nothing is written over a store whose packs cannot be read.
    assert!(store.put_batch(&batch(30..31)).is_err());
    assert_eq!(pack_files(&path).len(), 1);
}

#[test]
fn many_small_flushes_are_compacted_and_every_node_stays_readable() {
    let (_dir, path, store) = new_store();
    let reader = FileStore::open(&path).unwrap();
    for b in 0..100u32 {
        store.put_batch(&batch(b * 10..b * 10 + 10)).unwrap();
        // A handle that loaded the packs before merges finds every node after them.
        let n = b * 7 % ((b + 1) * 10);
        assert_eq!(reader.get(&node_key(n)).unwrap(), Some(node_bytes(n)), "after flush {b}");
    }
    // 100 flushes of one pack each: merged eight at a time per size class, at most seven
    // packs remain in each of the three classes they reach.
    let packs = pack_files(&path).len();
    assert!(packs <= 21, "{packs} packs after 100 flushes");
    let reopened = FileStore::open(&path).unwrap();
    for n in 0..1000 {
        assert_eq!(store.get(&node_key(n)).unwrap(), Some(node_bytes(n)), "node {n}");
        assert_eq!(reader.get(&node_key(n)).unwrap(), Some(node_bytes(n)), "node {n}");
        assert_eq!(reopened.get(&node_key(n)).unwrap(), Some(node_bytes(n)), "node {n}");
    }
    assert_eq!(listed(&reopened).len(), 1000);
    // Each node is in exactly one pack.
    let total: usize = pack_files(&path)
        .iter()
        .map(|p| {
            let bytes = fs::read(p).unwrap();
            (0..1000).filter(|n| contains(&bytes, &node_bytes(*n))).count()
        })
        .sum();
    assert_eq!(total, 1000);
}

/// A reader polling a log reads only what was appended since its last read, and always the
/// same records a fresh handle reads: across segment rotation, discards, and the whole log
/// cleared and started again.
#[test]
fn a_polling_reader_sees_exactly_what_a_fresh_handle_sees() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let writer = FileStore::create(&path).unwrap().with_segment_bytes_max(300);
    let reader = FileStore::open(&path).unwrap();
    let mut seen = 0u64;
    let mut next = 1u64;
    for round in 0..40u64 {
        for _ in 0..(round % 4) {
            writer.log_append("db", next, format!("record {next}").as_bytes()).unwrap();
            next += 1;
        }
        if round % 9 == 8 {
            writer.log_discard("db", next.saturating_sub(3)).unwrap();
        }
        if round == 30 {
            writer.log_discard_all("db", next - 1).unwrap();
        }
        let polled = reader.log_read("db", seen).unwrap();
        let fresh = FileStore::open(&path).unwrap().log_read("db", seen).unwrap();
        assert_eq!(polled, fresh, "round {round}");
        for (seq, bytes) in &polled {
            assert_eq!(bytes, format!("record {seq}").as_bytes());
        }
        if let Some((last, _)) = polled.last() {
            seen = *last;
        }
    }
    assert_eq!(seen, next - 1);
}
