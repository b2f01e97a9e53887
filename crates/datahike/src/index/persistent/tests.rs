//! Tests of the persistent index: a model test against a sorted vector, structural sharing,
//! flush and reopen, corrupt nodes, and decoding garbage.

use super::node::{hash_address, CollectRefs, Node};
use super::*;
use crate::datom::TX0;
use crate::edn::Keyword;
use crate::store::{Store, StoreError, StoreResult, WriterGuard};
use crate::value::Value;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;

/// A store in a `HashMap`, enough for the index.
#[derive(Default)]
struct MapStore {
    map: Mutex<HashMap<String, Vec<u8>>>,
}

impl MapStore {
    fn entries(&self) -> HashMap<String, Vec<u8>> {
        self.map.lock().unwrap().clone()
    }
    fn set(&self, key: &str, bytes: Vec<u8>) {
        self.map.lock().unwrap().insert(key.to_string(), bytes);
    }
}

impl Store for MapStore {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.map.lock().unwrap().get(key).cloned())
    }
    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        let mut map = self.map.lock().unwrap();
        for (k, v) in entries {
            map.insert(k.clone(), v.clone());
        }
        Ok(())
    }
    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        let mut map = self.map.lock().unwrap();
        for k in keys {
            map.remove(k);
        }
        Ok(())
    }
    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        Ok(self.map.lock().unwrap().keys().filter(|k| k.starts_with(prefix)).cloned().collect())
    }
    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        let mut map = self.map.lock().unwrap();
        if map.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        map.insert(key.to_string(), new.to_vec());
        Ok(true)
    }
    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        Ok(WriterGuard::new(Box::new(())))
    }
    fn destroy(&self) -> StoreResult<()> {
        self.map.lock().unwrap().clear();
        Ok(())
    }
}

fn new_store() -> (Arc<MapStore>, Arc<dyn Store>) {
    let store = Arc::new(MapStore::default());
    let dyn_store: Arc<dyn Store> = store.clone();
    (store, dyn_store)
}

/// Writes the pending nodes and marks them durable.
fn flush(index: &PersistentIndex, store: &dyn Store) -> (usize, IndexRoot) {
    let pending = index.prepare_flush().unwrap();
    let n = pending.nodes.len();
    store.put_batch(&pending.nodes).unwrap();
    let root = pending.root.clone();
    pending.mark_durable();
    (n, root)
}

fn all(iter: DatomIter<'_>) -> Vec<Datom> {
    iter.collect::<IndexResult<Vec<_>>>().unwrap()
}

fn attrs() -> [Keyword; 3] {
    [Keyword::new("a/x"), Keyword::new("a/y"), Keyword::new("b/z")]
}

fn datom(e: i64, a: usize, v: i64, tx: i64, added: bool) -> Datom {
    let attrs = attrs();
    let value = if v % 3 == 0 { Value::str(&format!("s{v}")) } else { Value::Long(v) };
    Datom::new(e, attrs[a % 3], value, TX0 + tx, added)
}

fn many(n: i64) -> Vec<Datom> {
    (0..n).map(|i| datom(i / 3, (i % 3) as usize, i, 1, true)).collect()
}

/// Walks the whole tree checking the B+-tree invariants; returns the datom count.
fn check_invariants(index: &PersistentIndex) -> u64 {
    fn walk(tree: &Tree, node: &Node, is_root: bool, max: Option<&Datom>) -> u64 {
        let b = tree.branching;
        if !is_root {
            assert!(node.len() >= b / 2 && node.len() <= b, "node of {} items with branching {b}", node.len());
        }
        assert!(node.len() <= b && node.len() > 0);
        match node {
            Node::Leaf(ds) => {
                for w in ds.windows(2) {
                    assert_eq!(tree.cmp(&w[0], &w[1]), Ordering::Less);
                }
                if let Some(max) = max {
                    assert!(tree.cmp(ds.last().unwrap(), max) == Ordering::Equal);
                }
                ds.len() as u64
            }
            Node::Branch(br) => {
                if let Some(max) = max {
                    assert!(tree.cmp(br.keys.last().unwrap(), max) == Ordering::Equal);
                }
                let mut total = 0;
                for i in 0..br.children.len() {
                    let child = tree.load_child(br, i).unwrap();
                    let n = walk(tree, &child, false, Some(&br.keys[i]));
                    assert_eq!(n, br.counts[i]);
                    total += n;
                }
                total
            }
        }
    }
    match &index.root {
        None => 0,
        Some(root) => {
            let node = root.load(&index.tree.cache).unwrap();
            if let Node::Branch(b) = node.as_ref() {
                assert!(b.children.len() >= 2, "root branch with one child");
            }
            walk(&index.tree, &node, true, None)
        }
    }
}

/// The reference: a sorted vector with the same update semantics.
struct Model {
    tree: Tree,
    datoms: Vec<Datom>,
}

impl Model {
    fn apply(&mut self, adds: &[Datom], removes: &[Datom]) {
        let tree = self.tree.clone();
        for r in removes {
            if let Ok(i) = self.datoms.binary_search_by(|d| tree.cmp(d, r)) {
                self.datoms.remove(i);
            }
        }
        // The first of several equal adds wins, as with a stable sort and dedup.
        for a in adds {
            if let Err(i) = self.datoms.binary_search_by(|d| tree.cmp(d, a)) {
                self.datoms.insert(i, a.clone());
            }
        }
    }
    fn range(&self, lo: Option<&DatomKey>, hi: Option<&DatomKey>) -> Vec<Datom> {
        let order = self.tree.order;
        let lo = lo.map(|k| k.clone().prefix_for(order));
        let hi = hi.map(|k| k.clone().prefix_for(order));
        self.datoms
            .iter()
            .filter(|d| lo.as_ref().is_none_or(|k| order.cmp_prefix(d, k) != Ordering::Less))
            .filter(|d| hi.as_ref().is_none_or(|k| order.cmp_prefix(d, k) != Ordering::Greater))
            .cloned()
            .collect()
    }
}

fn arb_datom() -> impl Strategy<Value = Datom> {
    (0i64..12, 0usize..3, 0i64..6, 0i64..4, any::<bool>()).prop_map(|(e, a, v, tx, added)| datom(e, a, v, tx, added))
}

fn arb_key() -> impl Strategy<Value = DatomKey> {
    (
        proptest::option::of(0i64..13),
        proptest::option::of(0usize..3),
        proptest::option::of(0i64..7),
        proptest::option::of(0i64..5),
    )
        .prop_map(|(e, a, v, tx)| {
            let d = datom(e.unwrap_or(0), a.unwrap_or(0), v.unwrap_or(0), tx.unwrap_or(0), true);
            DatomKey { e, a: a.map(|_| d.a), v: v.map(|_| d.v.clone()), tx: tx.map(|_| d.tx()) }
        })
}

#[derive(Debug, Clone)]
struct Batch {
    adds: Vec<Datom>,
    removes: Vec<Datom>,
    flush: bool,
    reopen: bool,
    queries: Vec<(DatomKey, DatomKey)>,
}

fn arb_batch() -> impl Strategy<Value = Batch> {
    (
        proptest::collection::vec(arb_datom(), 0..60),
        proptest::collection::vec(arb_datom(), 0..40),
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec((arb_key(), arb_key()), 1..4),
    )
        .prop_map(|(adds, removes, flush, reopen, queries)| Batch { adds, removes, flush, reopen, queries })
}

fn run_model(order: IndexOrder, temporal: bool, batches: Vec<Batch>) {
    let (_, store) = new_store();
    let cache = Arc::new(NodeCache::new(Some(store.clone()), 8));
    let mut index = PersistentIndex::with_branching(order, temporal, None, &cache, 4).unwrap();
    let mut model = Model { tree: index.tree.clone(), datoms: Vec::new() };
    let mut versions: Vec<(PersistentIndex, Vec<Datom>)> = Vec::new();
    for batch in batches {
        index = index.apply_batch(batch.adds.clone(), batch.removes.clone()).unwrap();
        model.apply(&batch.adds, &batch.removes);
        if batch.flush {
            let (_, root) = flush(&index, store.as_ref());
            if batch.reopen {
                let fresh = Arc::new(NodeCache::new(Some(store.clone()), 8));
                index = PersistentIndex::with_branching(order, temporal, Some(&root), &fresh, 4).unwrap();
            }
        }
        assert_eq!(index.count(), model.datoms.len() as u64);
        assert_eq!(check_invariants(&index), model.datoms.len() as u64);
        let whole = DatomKey::default();
        assert_eq!(all(index.range(&whole, &whole)), model.datoms);
        for (lo, hi) in &batch.queries {
            let expected = model.range(Some(lo), Some(hi));
            assert_eq!(all(index.range(lo, hi)), expected, "range {lo:?} {hi:?}");
            let mut rev = expected.clone();
            rev.reverse();
            assert_eq!(all(index.range_rev(lo, hi)), rev, "range_rev {lo:?} {hi:?}");
            assert_eq!(index.count_range(lo, hi).unwrap(), expected.len() as u64, "count_range {lo:?} {hi:?}");
            let mut visited = Vec::new();
            index
                .visit(lo, hi, &mut |d| {
                    visited.push(d.clone());
                    true
                })
                .unwrap();
            assert_eq!(visited, expected, "visit {lo:?} {hi:?}");
            // Stopping early stops at the datom that said so.
            let mut first_three = Vec::new();
            index
                .visit(lo, hi, &mut |d| {
                    first_three.push(d.clone());
                    first_three.len() < 3
                })
                .unwrap();
            assert_eq!(first_three, expected.iter().take(3).cloned().collect::<Vec<_>>(), "visit stops");
            assert_eq!(all(index.seek(lo)), model.range(Some(lo), None), "seek {lo:?}");
            let mut rseek = model.range(None, Some(hi));
            rseek.reverse();
            assert_eq!(all(index.rseek(hi)), rseek, "rseek {hi:?}");
            // Ranges of a single prefix.
            assert_eq!(all(index.range(lo, lo)), model.range(Some(lo), Some(lo)), "prefix {lo:?}");
        }
        versions.push((index.clone(), model.datoms.clone()));
    }
    // Every old version still reads as it was, flushed or not.
    for (old, datoms) in versions {
        assert_eq!(all(old.seek(&DatomKey::default())), datoms);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn model_eavt(batches in proptest::collection::vec(arb_batch(), 1..8), temporal in any::<bool>()) {
        run_model(IndexOrder::Eavt, temporal, batches);
    }

    #[test]
    fn model_aevt(batches in proptest::collection::vec(arb_batch(), 1..8), temporal in any::<bool>()) {
        run_model(IndexOrder::Aevt, temporal, batches);
    }

    #[test]
    fn model_avet(batches in proptest::collection::vec(arb_batch(), 1..8), temporal in any::<bool>()) {
        run_model(IndexOrder::Avet, temporal, batches);
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let address = hash_address(&bytes);
        let _ = Node::decode(&address, &bytes, &CollectRefs::default());
        let _ = Node::decode(&[0; 16], &bytes, &CollectRefs::default());
    }

    #[test]
    fn decoding_mutated_nodes_never_panics(n in 1i64..40, flip in any::<prop::sample::Index>(), bit in 0u8..8, cut in any::<prop::sample::Index>()) {
        let index = PersistentIndex::empty(IndexOrder::Eavt, false, 4).apply_batch(many(n), vec![]).unwrap();
        for (_, bytes) in index.prepare_flush().unwrap().nodes {
            let mut flipped = bytes.clone();
            let i = flip.index(flipped.len());
            flipped[i] ^= 1 << bit;
            // With a matching address the decoder itself must cope with the damage.
            let _ = Node::decode(&hash_address(&flipped), &flipped, &CollectRefs::default());
            let truncated = &bytes[..cut.index(bytes.len())];
            prop_assert!(Node::decode(&hash_address(truncated), truncated, &CollectRefs::default()).is_err());
        }
    }
}

#[test]
fn regression_merge_of_collapsed_subtrees() {
    // Deleting most of a deep tree leaves single-child chains that must be merged away.
    for keep in [0i64, 1, 2, 3, 7, 50] {
        let index = PersistentIndex::empty(IndexOrder::Eavt, false, 4).apply_batch(many(500), vec![]).unwrap();
        let removes: Vec<Datom> = many(500).into_iter().skip(keep as usize).collect();
        let after = index.apply_batch(vec![], removes).unwrap();
        assert_eq!(check_invariants(&after), keep as u64);
        assert_eq!(all(after.seek(&DatomKey::default())), many(keep));
    }
}

#[test]
fn bulk_load_builds_full_leaves() {
    let index = PersistentIndex::empty(IndexOrder::Eavt, false, 512).apply_batch(many(100_000), vec![]).unwrap();
    assert_eq!(index.count(), 100_000);
    assert_eq!(check_invariants(&index), 100_000);
    assert_eq!(index.height().unwrap(), 2);
    assert_eq!(all(index.seek(&DatomKey::default())), many(100_000));
}

#[test]
fn small_change_writes_only_a_path() {
    for branching in [512, 16] {
        let (_, store) = new_store();
        let cache = Arc::new(NodeCache::new(Some(store.clone()), 1000));
        let index = PersistentIndex::with_branching(IndexOrder::Eavt, false, None, &cache, branching)
            .unwrap()
            .apply_batch(many(100_000), vec![])
            .unwrap();
        let (n_first, _) = flush(&index, store.as_ref());
        assert!(n_first > 100_000 / branching);
        // Nothing changed: nothing to write.
        assert_eq!(index.prepare_flush().unwrap().nodes.len(), 0);
        let height = index.height().unwrap();
        let changed = index.apply_batch(vec![datom(5_000, 1, 7, 2, true)], vec![]).unwrap();
        let pending = changed.prepare_flush().unwrap();
        // Bulk-loaded nodes are full, so the insert may split a node on every level.
        assert!(pending.nodes.len() <= 2 * height + 1, "{} nodes for height {height}", pending.nodes.len());
        flush(&changed, store.as_ref());
        let removed = changed.apply_batch(vec![], vec![datom(20_000, 0, 60_000, 1, true)]).unwrap();
        assert!(removed.prepare_flush().unwrap().nodes.len() <= 2 * height + 1);
    }
}

#[test]
fn flush_and_reopen_gives_the_same_datoms() {
    let (map, store) = new_store();
    let cache = Arc::new(NodeCache::new(Some(store.clone()), 1000));
    let index = PersistentIndex::with_branching(IndexOrder::Avet, true, None, &cache, 32)
        .unwrap()
        .apply_batch(many(10_000), vec![])
        .unwrap();
    let (n, root) = flush(&index, store.as_ref());
    assert_eq!(map.entries().len(), n);
    assert!(map.entries().keys().all(|k| k.len() == "nodes/".len() + 32 && k.starts_with("nodes/")));
    assert_eq!(root, index.root());
    // After durability the index drops its nodes; loads go through the cache.
    assert!(index.root.as_ref().unwrap().in_memory_node().is_none());
    let fresh = Arc::new(NodeCache::new(Some(store.clone()), 4));
    let reopened = PersistentIndex::with_branching(IndexOrder::Avet, true, Some(&root), &fresh, 32).unwrap();
    assert_eq!(fresh.len(), 0, "opening reads nothing");
    assert_eq!(reopened.count(), 10_000);
    assert_eq!(all(reopened.seek(&DatomKey::default())), all(index.seek(&DatomKey::default())));
    assert!(fresh.len() <= 4);
    // An update to the reopened index shares the stored nodes.
    let next = reopened.apply_batch(vec![datom(1, 0, 1, 9, true)], vec![]).unwrap();
    assert_eq!(next.count(), 10_001);
    assert_eq!(check_invariants(&next), 10_001);
    // Through the trait object, as the database uses it.
    let via_trait: Arc<dyn DatomIndex> =
        Arc::new(PersistentIndex::with_branching(IndexOrder::Avet, true, Some(&root), &fresh, 32).unwrap());
    assert_eq!(all(via_trait.rseek(&DatomKey::default())).len(), 10_000);
    let empty = PersistentIndex::open(IndexOrder::Eavt, false, None, &fresh).unwrap();
    assert_eq!(empty.root(), IndexRoot { address: None, count: 0 });
    assert_eq!(empty.prepare_flush().unwrap().nodes.len(), 0);
}

#[test]
fn old_versions_survive_a_newer_flush() {
    let (_, store) = new_store();
    let cache = Arc::new(NodeCache::new(Some(store.clone()), 2));
    let v1 = PersistentIndex::with_branching(IndexOrder::Eavt, false, None, &cache, 8)
        .unwrap()
        .apply_batch(many(1000), vec![])
        .unwrap();
    let v2 = v1.apply_batch(vec![], many(10)).unwrap();
    flush(&v2, store.as_ref());
    assert_eq!(all(v1.seek(&DatomKey::default())), many(1000));
    // v1's own nodes that v2 replaced were never flushed; flushing v1 writes only them.
    let (n, root) = flush(&v1, store.as_ref());
    assert!(n > 0 && n < 10);
    let fresh = Arc::new(NodeCache::new(Some(store), 2));
    let reopened = PersistentIndex::open(IndexOrder::Eavt, false, Some(&root), &fresh).unwrap();
    assert_eq!(all(reopened.seek(&DatomKey::default())), many(1000));
}

#[test]
fn without_store_nodes_stay_in_memory() {
    let cache = Arc::new(NodeCache::new(None, 1));
    let index = PersistentIndex::with_branching(IndexOrder::Aevt, false, None, &cache, 4)
        .unwrap()
        .apply_batch(many(200), vec![])
        .unwrap();
    index.prepare_flush().unwrap().mark_durable();
    assert_eq!(all(index.seek(&DatomKey::default())).len(), 200);
}

#[test]
fn corrupt_nodes_are_errors() {
    let (map, store) = new_store();
    let cache = Arc::new(NodeCache::new(Some(store.clone()), 100));
    let index = PersistentIndex::with_branching(IndexOrder::Eavt, false, None, &cache, 8)
        .unwrap()
        .apply_batch(many(300), vec![])
        .unwrap();
    let (_, root) = flush(&index, store.as_ref());
    let entries = map.entries();
    let reopen = || {
        let fresh = Arc::new(NodeCache::new(Some(store.clone()), 100));
        PersistentIndex::open(IndexOrder::Eavt, false, Some(&root), &fresh).unwrap()
    };
    for (key, bytes) in &entries {
        let mut damaged: Vec<Vec<u8>> = vec![bytes[..bytes.len() / 2].to_vec(), Vec::new()];
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 3] ^= 0x10;
        damaged.push(flipped);
        for bad in damaged {
            map.set(key, bad);
            let index = reopen();
            let result: IndexResult<Vec<Datom>> = index.seek(&DatomKey::default()).collect();
            assert!(matches!(result, Err(IndexError::CorruptNode { .. })), "{key}");
            let result: IndexResult<Vec<Datom>> = index.rseek(&DatomKey::default()).collect();
            assert!(result.is_err());
        }
        map.set(key, bytes.clone());
    }
    // A missing node is reported as such.
    let key = PersistentIndex::node_key(&root.address.unwrap());
    store.delete_batch(&[key]).unwrap();
    let err = reopen().count_range(&DatomKey::default(), &DatomKey::default()).unwrap_err();
    assert!(matches!(err, IndexError::MissingNode(_)), "{err}");
    assert!(reopen().apply_batch(many(1), vec![]).is_err());
}

#[test]
fn current_index_compares_without_tx() {
    let index = PersistentIndex::empty(IndexOrder::Eavt, false, 4);
    let a = datom(1, 0, 1, 1, true);
    let b = datom(1, 0, 1, 2, true);
    let index = index.apply_batch(vec![a.clone()], vec![]).unwrap();
    // Adding the same (e, a, v) again is a no-op; removing then adding replaces.
    assert_eq!(all(index.apply_batch(vec![b.clone()], vec![]).unwrap().seek(&DatomKey::default())), vec![a.clone()]);
    let replaced = index.apply_batch(vec![b.clone()], vec![a.clone()]).unwrap();
    assert_eq!(all(replaced.seek(&DatomKey::default())), vec![b.clone()]);
    let temporal =
        PersistentIndex::empty(IndexOrder::Eavt, true, 4).apply_batch(vec![a.clone(), b.clone()], vec![]).unwrap();
    assert_eq!(temporal.count(), 2);
}

#[test]
fn concurrent_readers_share_a_small_cache() {
    let (_, store) = new_store();
    let cache = Arc::new(NodeCache::new(Some(store.clone()), 1000));
    let index = PersistentIndex::with_branching(IndexOrder::Eavt, false, None, &cache, 16)
        .unwrap()
        .apply_batch(many(5000), vec![])
        .unwrap();
    let (_, root) = flush(&index, store.as_ref());
    let small = Arc::new(NodeCache::new(Some(store), 3));
    let reopened = Arc::new(PersistentIndex::with_branching(IndexOrder::Eavt, false, Some(&root), &small, 16).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let index = reopened.clone();
            std::thread::spawn(move || {
                let key = DatomKey { e: Some(100 * t), ..Default::default() };
                let forward = all(index.seek(&key)).len();
                let backward = all(index.rseek(&key)).len();
                (forward, backward)
            })
        })
        .collect();
    for (t, handle) in threads.into_iter().enumerate() {
        let (forward, backward) = handle.join().unwrap();
        assert_eq!(forward + backward, 5000 + 3, "thread {t}");
    }
    assert!(small.len() <= 3 + 4);
}

/// Large batches take the bucketed sort (AEVT, AVET) and, into a small tree, the rebuild path;
/// both must give exactly the sorted, de-duplicated union, with present datoms winning.
#[test]
fn large_batches_into_small_trees_match_a_sorted_model() {
    for order in [IndexOrder::Eavt, IndexOrder::Aevt, IndexOrder::Avet] {
        for temporal in [false, true] {
            let small: Vec<Datom> = (0..5).map(|e| datom(e * 7, (e % 3) as usize, e, TX0 + 1, true)).collect();
            let index = PersistentIndex::empty(order, temporal, 8).apply_batch(small.clone(), Vec::new()).unwrap();
            // Interleaved attributes, entity-major (as a load produces), with duplicates of
            // each other and of the small tree's datoms under a different tx.
            let mut batch = Vec::new();
            for e in 0..3000i64 {
                for a in 0..3usize {
                    batch.push(datom(e, a, (e * 31 + a as i64) % 97, TX0 + 2, true));
                }
            }
            batch.extend(small.iter().map(|d| Datom::new(d.e, d.a, d.v.clone(), TX0 + 3, true)));
            batch.push(batch[10].clone());
            let updated = index.apply_batch(batch.clone(), Vec::new()).unwrap();
            let tree = &updated.tree;
            // Present datoms first, then the batch in order; a stable sort and dedup keep the
            // first of equals.
            let mut model: Vec<Datom> = small.iter().cloned().chain(batch).collect();
            model.sort_by(|x, y| tree.cmp(x, y));
            model.dedup_by(|x, y| tree.cmp(x, y) == Ordering::Equal);
            let whole = DatomKey::default();
            let got = all(updated.range(&whole, &whole));
            assert_eq!(got.len(), model.len(), "{order:?} temporal={temporal}");
            assert!(got == model, "{order:?} temporal={temporal}: contents differ");
            assert_eq!(check_invariants(&updated), model.len() as u64);
        }
    }
}

#[test]
fn a_cache_bounded_by_bytes_keeps_its_weight_under_the_bound_and_reloads() {
    let (_, store) = new_store();
    let cache = Arc::new(NodeCache::new(Some(store.clone()), 1000));
    let index = PersistentIndex::with_branching(IndexOrder::Eavt, false, None, &cache, 8)
        .unwrap()
        .apply_batch(many(2000), vec![])
        .unwrap();
    let (_, root) = flush(&index, store.as_ref());
    // Room for a few leaves of 8 datoms only.
    let bound = 4 * 8 * std::mem::size_of::<crate::datom::Datom>() as u64;
    let small = Arc::new(NodeCache::with_limit(Some(store.clone()), CacheLimit::Bytes(bound)));
    let reopened = PersistentIndex::open(IndexOrder::Eavt, false, Some(&root), &small).unwrap();
    assert_eq!(all(reopened.seek(&DatomKey::default())), many(2000));
    assert!(small.weight() <= bound, "{} > {bound}", small.weight());
    assert!(!small.is_empty());
    // Bounded by nodes, the weight is the node count.
    let counted = Arc::new(NodeCache::with_limit(Some(store), CacheLimit::Nodes(3)));
    let again = PersistentIndex::open(IndexOrder::Eavt, false, Some(&root), &counted).unwrap();
    assert_eq!(all(again.seek(&DatomKey::default())), many(2000));
    assert_eq!(counted.weight(), counted.len() as u64);
    assert!(counted.len() <= 3);
}

/// A datom whose value is a string of `len` bytes derived from `seed`.
fn long_datom(e: i64, seed: u8, len: usize) -> Datom {
    let text: String = (0..len).map(|i| char::from(b'a' + ((i * 7 + usize::from(seed)) % 26) as u8)).collect();
    Datom::new(e, attrs()[2], Value::str(&text), TX0 + 1, true)
}

#[test]
fn long_values_are_stored_once_out_of_line() {
    use crate::index::codec::OUT_OF_LINE_MIN_BYTES;
    let (map, store) = new_store();
    let cache = Arc::new(NodeCache::new(Some(store.clone()), 1000));
    let big = long_datom(5, 1, 100_000);
    // Exactly at the threshold goes out of line; one byte less stays inline; a byte array and
    // a long string inside a tuple go out of line too.
    let at = long_datom(6, 2, OUT_OF_LINE_MIN_BYTES);
    let below = long_datom(7, 3, OUT_OF_LINE_MIN_BYTES - 1);
    let bytes = Datom::new(8, attrs()[2], Value::Bytes(vec![9u8; 50_000].into()), TX0 + 1, true);
    let tuple = Datom::new(9, attrs()[2], Value::Tuple(vec![Value::Long(1), big.v.clone()].into()), TX0 + 1, true);
    let datoms = [big, at, below, bytes, tuple];
    for order in [IndexOrder::Eavt, IndexOrder::Avet] {
        let index = PersistentIndex::with_branching(order, false, None, &cache, 4)
            .unwrap()
            .apply_batch(datoms.iter().cloned().chain(many(30)).collect(), vec![])
            .unwrap();
        let (_, root) = flush(&index, store.as_ref());
        let values: Vec<String> = map.entries().into_keys().filter(|k| k.starts_with("values/")).collect();
        // The 100 KB string is one value, shared by its datom and the tuple.
        assert_eq!(values.len(), 3, "{values:?}");
        let node_bytes: usize =
            map.entries().iter().filter(|(k, _)| k.starts_with("nodes/")).map(|(_, v)| v.len()).sum();
        assert!(node_bytes < 40_000, "nodes hold references, not the values: {node_bytes} bytes");
        // Read back through a fresh cache: the same datoms, in the same order.
        let fresh = Arc::new(NodeCache::new(Some(store.clone()), 1000));
        let reopened = PersistentIndex::with_branching(order, false, Some(&root), &fresh, 4).unwrap();
        assert_eq!(all(reopened.seek(&DatomKey::default())), all(index.seek(&DatomKey::default())));
        // A small change rewrites the path to one leaf, and no value.
        let before = map.entries().len();
        let next = reopened.apply_batch(vec![datom(1000, 0, 1, 2, true)], vec![]).unwrap();
        let pending = next.prepare_flush().unwrap();
        assert!(pending.nodes.iter().all(|(k, _)| k.starts_with("nodes/")), "values are known to be stored");
        store.put_batch(&pending.nodes).unwrap();
        pending.mark_durable();
        let written = map.entries().len() - before;
        assert!(written <= next.height().unwrap() + 2, "{written} nodes");
    }
    // Nodes without long values keep format version 1, byte for byte.
    let small = PersistentIndex::empty(IndexOrder::Eavt, false, 4).apply_batch(many(3), vec![]).unwrap();
    for (_, bytes) in small.prepare_flush().unwrap().nodes {
        assert_eq!(bytes[4], 1);
    }
}

#[test]
fn a_damaged_or_missing_value_is_an_error_naming_its_key() {
    let (map, store) = new_store();
    let cache = Arc::new(NodeCache::new(Some(store.clone()), 1000));
    let index = PersistentIndex::with_branching(IndexOrder::Eavt, false, None, &cache, 4)
        .unwrap()
        .apply_batch(vec![long_datom(1, 4, 20_000)], vec![])
        .unwrap();
    let (_, root) = flush(&index, store.as_ref());
    let (key, good) = map.entries().into_iter().find(|(k, _)| k.starts_with("values/")).unwrap();
    let read = || {
        let fresh = Arc::new(NodeCache::new(Some(store.clone()), 1000));
        let index = PersistentIndex::with_branching(IndexOrder::Eavt, false, Some(&root), &fresh, 4).unwrap();
        index.seek(&DatomKey::default()).collect::<IndexResult<Vec<_>>>()
    };
    let mut flipped = good.clone();
    flipped[10] ^= 1;
    let mut not_utf8 = good.clone();
    not_utf8[0] = 0xff;
    for (bad, says) in
        [(flipped, "hash"), (good[1..].to_vec(), "19999 bytes"), (not_utf8, "hash"), (Vec::new(), "0 bytes")]
    {
        map.set(&key, bad);
        let err = read().unwrap_err();
        assert!(matches!(&err, IndexError::Store(StoreError::Corrupt { key: k, .. }) if *k == key), "{err}");
        assert!(err.to_string().contains(says), "{err}");
    }
    store.delete_batch(std::slice::from_ref(&key)).unwrap();
    let err = read().unwrap_err();
    assert!(err.to_string().contains(&key) && err.to_string().contains("missing"), "{err}");
    map.set(&key, good);
    assert_eq!(read().unwrap().len(), 1);
}

#[test]
fn the_same_bytes_as_a_string_and_as_a_byte_array_keep_their_types() {
    let (map, store) = new_store();
    let cache = Arc::new(NodeCache::new(Some(store.clone()), 1000));
    let text = "q".repeat(10_000);
    let datoms = vec![
        Datom::new(1, attrs()[2], Value::str(&text), TX0 + 1, true),
        Datom::new(2, attrs()[2], Value::Bytes(text.as_bytes().into()), TX0 + 1, true),
    ];
    let index = PersistentIndex::with_branching(IndexOrder::Eavt, false, None, &cache, 4)
        .unwrap()
        .apply_batch(datoms, vec![])
        .unwrap();
    let (_, root) = flush(&index, store.as_ref());
    assert_eq!(map.entries().keys().filter(|k| k.starts_with("values/")).count(), 1, "one value for both");
    let fresh = Arc::new(NodeCache::new(Some(store.clone()), 1000));
    let reopened = PersistentIndex::with_branching(IndexOrder::Eavt, false, Some(&root), &fresh, 4).unwrap();
    let back = all(reopened.seek(&DatomKey::default()));
    assert!(matches!(&back[0].v, Value::String(s) if **s == *text));
    assert!(matches!(&back[1].v, Value::Bytes(b) if **b == *text.as_bytes()));
}
