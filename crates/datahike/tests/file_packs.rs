//! Pack files of the file store on the real file system: stores of format 1 (one file per
//! node) still read and upgrade, handles see packs other handles wrote or rewrote, deleting
//! nodes removes their bytes, and crash leftovers or damaged packs are handled.

use datahike::store::{FileStore, Store, StoreError};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn new_store() -> (tempfile::TempDir, PathBuf, FileStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("db");
    let store = FileStore::create(&path).expect("create");
    (dir, path, store)
}

fn node_key(n: u32) -> String {
    format!("nodes/{n:08x}{}", "fedcba9876543210fedcba98")
}

/// Bytes unique to node `n`, so a file holding them can be found.
fn node_bytes(n: u32) -> Vec<u8> {
    format!("node-bytes-{n:06}-end").into_bytes()
}

fn batch(range: std::ops::Range<u32>) -> Vec<(String, Vec<u8>)> {
    range.map(|n| (node_key(n), node_bytes(n))).collect()
}

fn pack_files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(path.join("nodepacks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .collect();
    files.sort();
    files
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

    store.put_batch(&batch(2..5)).unwrap();
    assert_eq!(fs::read(path.join("FORMAT")).unwrap(), b"datahike-rs file store\nformat 2\n");
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
