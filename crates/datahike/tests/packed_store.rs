//! `PackedStore`: the node packs over a plain key-value store (here the memory store), the
//! same guarantees as the file store's packs: one value per flush, nodes read by range, a
//! reader that finds a pack rewritten lists the packs again, deletes take the bytes out,
//! compaction merges small packs, a damaged pack is an error naming it; and the conformance
//! suite and the database over it.

use datahike::store::conformance::Subject;
use datahike::store::{ByteRange, MemoryStore, PackedStore, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn fresh_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("packed-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn packed() -> Subject {
    let id = fresh_id();
    Subject::new(Arc::new(PackedStore::new(MemoryStore::open(&id))), move || {
        Arc::new(PackedStore::new(MemoryStore::open(&id)))
    })
}

mod conformance {
    datahike::store_conformance_tests!(super::packed);

    #[test]
    fn stored_sizes_reported() {
        datahike::store::conformance::stored_sizes_reported(&super::packed());
    }
}

fn node_key(n: u32) -> String {
    format!("nodes/{n:08x}{}", "0123456789abcdef01234567")
}

fn node_bytes(n: u32) -> Vec<u8> {
    format!("node-bytes-{n:06}-end").into_bytes()
}

fn batch(range: std::ops::Range<u32>) -> Vec<(String, Vec<u8>)> {
    range.map(|n| (node_key(n), node_bytes(n))).collect()
}

/// The pack values in the inner store.
fn packs(store: &PackedStore<MemoryStore>) -> Vec<String> {
    let mut keys: Vec<String> =
        store.inner().list("nodepacks/").unwrap().into_iter().filter(|k| k.ends_with(".pack")).collect();
    keys.sort();
    keys
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn one_value_per_batch_and_other_keys_pass_through() {
    let store = PackedStore::new(MemoryStore::open(&fresh_id()));
    let mut entries = batch(0..500);
    entries.push(("heads/db".into(), b"head".to_vec()));
    store.put_batch(&entries).unwrap();
    assert_eq!(packs(&store).len(), 1);
    assert_eq!(store.inner().get("heads/db").unwrap().as_deref(), Some(&b"head"[..]));
    assert_eq!(store.inner().list("nodes/").unwrap(), Vec::<String>::new(), "no node is a key of its own");
    assert_eq!(store.list("nodes/").unwrap().len(), 500);
    assert_eq!(store.get(&node_key(77)).unwrap(), Some(node_bytes(77)));
    assert_eq!(store.get_range(&node_key(77), ByteRange::At { offset: 5, len: 5 }).unwrap(), Some(b"bytes".to_vec()));
    // Writing stored nodes again writes nothing.
    store.put_batch(&batch(0..500)).unwrap();
    assert_eq!(packs(&store).len(), 1);
    // Internal keys are not the wrapped store's keys.
    assert!(store.list("").unwrap().iter().all(|k| !k.starts_with("nodepacks/")));
}

#[test]
fn a_handle_sees_packs_another_handle_wrote_or_rewrote() {
    let id = fresh_id();
    let writer = PackedStore::new(MemoryStore::open(&id));
    let reader = PackedStore::new(MemoryStore::open(&id));
    writer.put_batch(&batch(0..10)).unwrap();
    assert_eq!(reader.get(&node_key(3)).unwrap(), Some(node_bytes(3)));
    writer.put_batch(&batch(10..20)).unwrap();
    assert_eq!(reader.get(&node_key(15)).unwrap(), Some(node_bytes(15)));
    writer.delete_batch(&[node_key(0), node_key(19)]).unwrap();
    assert_eq!(packs(&writer).len(), 2);
    // The reader still places node 4 in a pack that is gone: it lists the packs again.
    assert_eq!(reader.get(&node_key(4)).unwrap(), Some(node_bytes(4)));
    assert_eq!(reader.get(&node_key(0)).unwrap(), None);
    assert_eq!(reader.get(&node_key(19)).unwrap(), None);
    assert_eq!(reader.list("nodes/").unwrap().len(), 18);
    // A node the reader thinks stored but whose pack is gone is written again.
    let stale = PackedStore::new(MemoryStore::open(&id));
    assert_eq!(stale.get(&node_key(5)).unwrap(), Some(node_bytes(5)));
    writer.delete_batch(&[node_key(5)]).unwrap();
    stale.put_batch(&batch(5..6)).unwrap();
    assert_eq!(writer.get(&node_key(5)).unwrap(), Some(node_bytes(5)));
}

#[test]
fn deleting_nodes_removes_their_bytes_and_small_packs_are_merged() {
    let store = PackedStore::new(MemoryStore::open(&fresh_id()));
    for b in 0..100u32 {
        store.put_batch(&batch(b * 10..b * 10 + 10)).unwrap();
    }
    let count = packs(&store).len();
    assert!(count <= 21, "{count} packs after 100 batches");
    let doomed: Vec<String> = (0..1000).filter(|n| n % 2 == 0).map(node_key).collect();
    store.delete_batch(&doomed).unwrap();
    let all: Vec<u8> = packs(&store).iter().flat_map(|k| store.inner().get(k).unwrap().unwrap()).collect();
    for n in 0..1000u32 {
        assert_eq!(contains(&all, &node_bytes(n)), n % 2 == 1, "node {n}");
    }
    let reopened = PackedStore::new(MemoryStore::open(store.inner().id().unwrap()));
    assert_eq!(reopened.list("nodes/").unwrap().len(), 500);
    assert_eq!(reopened.get(&node_key(7)).unwrap(), Some(node_bytes(7)));
    assert_eq!(reopened.get(&node_key(8)).unwrap(), None);
}

#[test]
fn a_damaged_pack_is_corruption_naming_it() {
    let id = fresh_id();
    let store = PackedStore::new(MemoryStore::open(&id));
    store.put_batch(&batch(0..20)).unwrap();
    let pack = packs(&store).remove(0);
    let mut bytes = store.inner().get(&pack).unwrap().unwrap();
    let at = bytes.windows(node_bytes(9).len()).position(|w| w == node_bytes(9)).unwrap();
    bytes[at + 3] ^= 0x20;
    store.inner().put_batch(&[(pack.clone(), bytes.clone())]).unwrap();
    let fresh = PackedStore::new(MemoryStore::open(&id));
    let err = fresh.get(&node_key(9)).unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { key, .. } if key == &node_key(9)), "{err}");
    assert!(err.to_string().contains(&pack), "{err}");
    assert_eq!(fresh.get(&node_key(8)).unwrap(), Some(node_bytes(8)));
    store.inner().put_batch(&[(pack.clone(), bytes[..bytes.len() - 5].to_vec())]).unwrap();
    let fresh = PackedStore::new(MemoryStore::open(&id));
    let err = fresh.get(&node_key(8)).unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { key, .. } if key == &pack), "{err}");
}

#[test]
fn large_packs_load_their_index_beyond_the_first_read() {
    // 3,000 nodes: an index of 96 KB, more than the tail read first.
    let id = fresh_id();
    let store = PackedStore::new(MemoryStore::open(&id));
    store.put_batch(&batch(0..3000)).unwrap();
    let fresh = PackedStore::new(MemoryStore::open(&id));
    assert_eq!(fresh.get(&node_key(2999)).unwrap(), Some(node_bytes(2999)));
    assert_eq!(fresh.list("nodes/").unwrap().len(), 3000);
}

#[test]
fn database_conformance_packed() {
    let store: Arc<dyn Store> = Arc::new(PackedStore::new(MemoryStore::open(&fresh_id())));
    datahike::store::conformance::database(&datahike::Config::with_store(store));
}
