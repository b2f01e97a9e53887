//! The persistent B+-tree index: immutable nodes shared between versions, updated by merging
//! sorted batches leaf by leaf, flushed as content-addressed nodes and reloaded lazily
//! through the [`NodeCache`].
//!
//! Architecture invariants:
//! - A node never changes once built; an update builds new nodes along the changed paths
//!   only and shares every other subtree (by `Arc<ChildRef>`) with the old version.
//! - Every node except the root holds between `branching / 2` and `branching` items.
//! - A node stays in memory until it is durable; only then may it be dropped and reloaded.

mod iter;
mod node;
#[cfg(test)]
mod tests;

pub(crate) use node::mark_reachable;
#[cfg(feature = "fuzzing")]
pub(crate) use node::reencode_node;
pub use node::{CacheLimit, CacheStats, NodeCache};

use crate::datom::{Datom, DatomKey, IndexOrder};
use crate::index::codec::{self, ValueHash};
use crate::index::{Address, DatomIndex, DatomIter, IndexError, IndexResult, IndexRoot, PendingFlush};
use crate::value::Value;
use iter::Iter;
use node::{hex, node_key, Branch, ChildRef, Node};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// Datahike's branching factor: at most this many datoms per leaf and children per branch.
pub const DEFAULT_BRANCHING: usize = 512;

/// The smallest branching factor accepted; smaller requests are raised to it.
pub const MIN_BRANCHING: usize = 4;

/// A sorted set of datoms in a persistent B+-tree. Cloning is cheap; every update returns a
/// new index that shares unchanged nodes with this one.
#[derive(Clone)]
pub struct PersistentIndex {
    tree: Tree,
    root: Option<Arc<ChildRef>>,
    count: u64,
}

/// What every version of one index shares: order, comparator choice, branching, cache.
#[derive(Clone)]
pub(crate) struct Tree {
    pub order: IndexOrder,
    pub temporal: bool,
    pub branching: usize,
    pub cache: Arc<NodeCache>,
}

/// Batches at least this large are bucketed by attribute before sorting (AEVT, AVET).
const BUCKET_SORT_MIN: usize = 2048;

/// Sorts a batch in the tree's order, stably (equal datoms keep their order, so the first of
/// duplicates wins). AEVT and AVET batches from a load arrive entity by entity with a handful
/// of attributes interleaved: bucketing by attribute first leaves runs already sorted by
/// entity, which the stable sort merges in about linear time, and keeps attribute names out
/// of almost every comparison.
fn sort_batch(tree: &Tree, datoms: &mut Vec<Datom>) {
    if tree.order == IndexOrder::Eavt || datoms.len() < BUCKET_SORT_MIN {
        datoms.sort_by(|x, y| tree.cmp(x, y));
        return;
    }
    let mut slots: rustc_hash::FxHashMap<crate::edn::Keyword, usize> = rustc_hash::FxHashMap::default();
    let mut buckets: Vec<(crate::edn::Keyword, Vec<Datom>)> = Vec::new();
    for d in datoms.drain(..) {
        let slot = *slots.entry(d.a).or_insert_with(|| {
            buckets.push((d.a, Vec::new()));
            buckets.len() - 1
        });
        if let Some((_, bucket)) = buckets.get_mut(slot) {
            bucket.push(d);
        }
    }
    buckets.sort_by_key(|(a, _)| *a);
    for (_, mut bucket) in buckets {
        bucket.sort_by(|x, y| tree.cmp(x, y));
        datoms.append(&mut bucket);
    }
}

/// One pending change.
struct Op {
    datom: Datom,
    add: bool,
}

/// A child entry while a level is being rebuilt.
struct Entry {
    max: Datom,
    count: u64,
    child: Arc<ChildRef>,
    /// Item count of a node built by this update; `None` for a shared old node, which is
    /// within bounds by the invariant.
    fresh_len: Option<usize>,
}

impl Tree {
    /// The comparator: full (with tx) for temporal indices, (e, a, v) for current ones.
    pub fn cmp(&self, x: &Datom, y: &Datom) -> Ordering {
        if self.temporal {
            self.order.cmp(x, y)
        } else {
            self.order.cmp_eav(x, y)
        }
    }

    fn min_len(&self) -> usize {
        self.branching / 2
    }

    /// Child `i` of `branch`, checking that its level is one below.
    pub fn load_child(&self, branch: &Branch, i: usize) -> IndexResult<Arc<Node>> {
        let child = branch.children.get(i).ok_or_else(|| IndexError::CorruptNode {
            address: String::from("?"),
            reason: format!("child {i} of a branch with {} children", branch.children.len()),
        })?;
        let node = child.load(&self.cache)?;
        if node.level() + 1 != branch.level {
            return Err(IndexError::CorruptNode {
                address: hex(&child.address()),
                reason: format!("level {} under a branch of level {}", node.level(), branch.level),
            });
        }
        Ok(node)
    }

    /// Sizes of the pieces `n` items are cut into: one piece when it fits, else as few
    /// even pieces as fit, each then at least half full.
    fn piece_sizes(&self, n: usize) -> impl Iterator<Item = usize> {
        let pieces = n.div_ceil(self.branching).max(1);
        let (base, extra) = (n / pieces, n % pieces);
        (0..pieces).map(move |i| base + usize::from(i < extra))
    }

    fn leaf_entries(&self, datoms: Vec<Datom>, out: &mut Vec<Entry>) {
        if datoms.is_empty() {
            return;
        }
        if datoms.len() <= self.branching {
            out.push(self.leaf_entry(datoms));
            return;
        }
        let mut rest = datoms.into_iter();
        for size in self.piece_sizes(rest.len()) {
            let piece: Vec<Datom> = rest.by_ref().take(size).collect();
            out.push(self.leaf_entry(piece));
        }
    }

    fn leaf_entry(&self, datoms: Vec<Datom>) -> Entry {
        let len = datoms.len();
        let max = datoms.last().cloned().unwrap_or_else(|| unreachable!("leaves are built non-empty"));
        Entry { max, count: len as u64, child: ChildRef::in_memory(Node::Leaf(datoms)), fresh_len: Some(len) }
    }

    /// Groups `entries` (all of level `level - 1`) into branches of level `level`.
    fn branch_entries(&self, level: u32, entries: Vec<Entry>, out: &mut Vec<Entry>) {
        let mut rest = entries.into_iter();
        for size in self.piece_sizes(rest.len()) {
            let mut keys = Vec::with_capacity(size);
            let mut counts = Vec::with_capacity(size);
            let mut children = Vec::with_capacity(size);
            for e in rest.by_ref().take(size) {
                keys.push(e.max);
                counts.push(e.count);
                children.push(e.child);
            }
            let Some(max) = keys.last().cloned() else {
                continue;
            };
            // Saturating: counts read from a store are not trusted to be sane.
            let count = counts.iter().fold(0u64, |acc, n| acc.saturating_add(*n));
            out.push(Entry {
                max,
                count,
                child: ChildRef::in_memory(Node::Branch(Branch { level, keys, counts, children })),
                fresh_len: Some(size),
            });
        }
    }

    /// Builds a whole tree from sorted, distinct datoms, leaves first (a bulk load).
    fn build(&self, datoms: Vec<Datom>) -> (Option<Arc<ChildRef>>, u64) {
        let count = datoms.len() as u64;
        let mut entries = Vec::with_capacity(datoms.len() / self.branching + 1);
        self.leaf_entries(datoms, &mut entries);
        let mut level = 0;
        while entries.len() > 1 {
            level += 1;
            let mut parents = Vec::with_capacity(entries.len() / self.branching + 1);
            self.branch_entries(level, entries, &mut parents);
            entries = parents;
        }
        (entries.pop().map(|e| e.child), count)
    }

    /// The new datoms of a leaf after `ops`, or `None` when nothing changes.
    fn merge_leaf(&self, datoms: &[Datom], ops: &[Op]) -> Option<Vec<Datom>> {
        let adds = ops.iter().filter(|op| op.add).count();
        let mut out = Vec::with_capacity(datoms.len() + adds);
        let mut changed = false;
        let mut i = 0;
        for op in ops {
            let rest = datoms.get(i..).unwrap_or_default();
            let j = i + rest.partition_point(|d| self.cmp(d, &op.datom) == Ordering::Less);
            out.extend_from_slice(datoms.get(i..j).unwrap_or_default());
            i = j;
            let present = datoms.get(i).is_some_and(|d| self.cmp(d, &op.datom) == Ordering::Equal);
            if op.add {
                if !present {
                    out.push(op.datom.clone());
                    changed = true;
                }
            } else if present {
                i += 1;
                changed = true;
            }
        }
        out.extend_from_slice(datoms.get(i..).unwrap_or_default());
        changed.then_some(out)
    }

    /// Applies sorted `ops` to the subtree `node`: the entries that replace it (none when it
    /// became empty, possibly one that is under-full), or `None` when nothing changed.
    fn update(&self, node: &Node, ops: &[Op]) -> IndexResult<Option<Vec<Entry>>> {
        match node {
            Node::Leaf(datoms) => Ok(self.merge_leaf(datoms, ops).map(|merged| {
                let mut out = Vec::new();
                self.leaf_entries(merged, &mut out);
                out
            })),
            Node::Branch(branch) => self.update_branch(branch, ops),
        }
    }

    /// [`Tree::update`] for a branch: each run of ops goes to the child whose key range holds
    /// it (found by binary search, so a small batch costs a few comparisons per level, not
    /// one per child).
    fn update_branch(&self, branch: &Branch, ops: &[Op]) -> IndexResult<Option<Vec<Entry>>> {
        let n = branch.children.len();
        // Child i holds the datoms up to keys[i]; the last child also takes anything larger.
        let inner_keys = branch.keys.get(..n.saturating_sub(1)).unwrap_or_default();
        let mut changed: Vec<(usize, Vec<Entry>)> = Vec::new();
        let mut start = 0;
        while let Some(first) = ops.get(start) {
            let i = inner_keys.partition_point(|k| self.cmp(k, &first.datom) == Ordering::Less);
            let rest = ops.get(start..).unwrap_or_default();
            let end = match inner_keys.get(i) {
                Some(key) => start + rest.partition_point(|op| self.cmp(&op.datom, key) != Ordering::Greater),
                None => ops.len(),
            };
            let child = self.load_child(branch, i)?;
            if let Some(entries) = self.update(&child, ops.get(start..end).unwrap_or_default())? {
                changed.push((i, entries));
            }
            start = end;
        }
        if changed.is_empty() {
            return Ok(None);
        }
        // Common case: every changed child became one node within bounds, so the branch keeps
        // its shape and only the changed slots are replaced.
        let min = self.min_len();
        if changed.iter().all(|(_, e)| matches!(e.as_slice(), [one] if one.fresh_len.is_some_and(|l| l >= min))) {
            let mut keys = branch.keys.clone();
            let mut counts = branch.counts.clone();
            let mut children = branch.children.clone();
            for (i, entries) in changed {
                if let (Some(entry), Some(key), Some(count), Some(child)) =
                    (entries.into_iter().next(), keys.get_mut(i), counts.get_mut(i), children.get_mut(i))
                {
                    *key = entry.max;
                    *count = entry.count;
                    *child = entry.child;
                }
            }
            let Some(max) = keys.last().cloned() else { unreachable!("a branch has children") };
            let count = counts.iter().fold(0u64, |acc, c| acc.saturating_add(*c));
            let node = Node::Branch(Branch { level: branch.level, keys, counts, children });
            return Ok(Some(vec![Entry { max, count, child: ChildRef::in_memory(node), fresh_len: Some(n) }]));
        }
        let mut out: Vec<Entry> = Vec::with_capacity(n + changed.len());
        let mut changed = changed.into_iter().peekable();
        for i in 0..n {
            match changed.next_if(|(j, _)| *j == i) {
                Some((_, entries)) => out.extend(entries),
                None => out.push(Entry {
                    max: branch.keys.get(i).cloned().unwrap_or_else(|| unreachable!("keys match children")),
                    count: branch.counts.get(i).copied().unwrap_or(0),
                    child: branch.children.get(i).cloned().unwrap_or_else(|| unreachable!("index in range")),
                    fresh_len: None,
                }),
            }
        }
        self.fix_underfull(&mut out)?;
        let mut parents = Vec::new();
        if !out.is_empty() {
            self.branch_entries(branch.level, out, &mut parents);
        }
        Ok(Some(parents))
    }

    /// Merges every under-full new entry with a neighbour until all are within bounds, or a
    /// single entry is left (the parent then deals with it).
    fn fix_underfull(&self, entries: &mut Vec<Entry>) -> IndexResult<()> {
        let min = self.min_len();
        let mut i = 0;
        while entries.len() > 1 && i < entries.len() {
            if entries.get(i).and_then(|e| e.fresh_len).is_some_and(|len| len < min) {
                let l = if i + 1 < entries.len() { i } else { i - 1 };
                let merged = match (entries.get(l), entries.get(l + 1)) {
                    (Some(left), Some(right)) => self.merge_entries(left, right)?,
                    _ => unreachable!("two neighbours exist"),
                };
                entries.splice(l..l + 2, merged);
                i = l;
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// Concatenates two sibling nodes and cuts the result into one or two nodes.
    fn merge_entries(&self, left: &Entry, right: &Entry) -> IndexResult<Vec<Entry>> {
        let ln = left.child.load(&self.cache)?;
        let rn = right.child.load(&self.cache)?;
        let mut out = Vec::with_capacity(2);
        match (ln.as_ref(), rn.as_ref()) {
            (Node::Leaf(a), Node::Leaf(b)) => {
                let mut datoms = Vec::with_capacity(a.len() + b.len());
                datoms.extend_from_slice(a);
                datoms.extend_from_slice(b);
                self.leaf_entries(datoms, &mut out);
            }
            (Node::Branch(a), Node::Branch(b)) if a.level == b.level => {
                let mut children = Vec::with_capacity(a.children.len() + b.children.len());
                for br in [a, b] {
                    for ((key, count), child) in br.keys.iter().zip(&br.counts).zip(&br.children) {
                        // A grandchild built by this update may itself be under-full.
                        let fresh_len = if child.is_durable() { None } else { child.in_memory_node().map(|n| n.len()) };
                        children.push(Entry { max: key.clone(), count: *count, child: child.clone(), fresh_len });
                    }
                }
                self.fix_underfull(&mut children)?;
                self.branch_entries(a.level, children, &mut out);
            }
            _ => {
                return Err(IndexError::CorruptNode {
                    address: hex(&right.child.address()),
                    reason: "siblings of different levels".to_string(),
                })
            }
        }
        Ok(out)
    }
}

impl PersistentIndex {
    /// Reopens a flushed index (nodes load lazily: nothing is read until first use), or
    /// creates an empty one when `root` is `None`. Uses [`DEFAULT_BRANCHING`].
    pub fn open(
        order: IndexOrder,
        temporal: bool,
        root: Option<&IndexRoot>,
        cache: &Arc<NodeCache>,
    ) -> IndexResult<PersistentIndex> {
        Self::with_branching(order, temporal, root, cache, DEFAULT_BRANCHING)
    }

    /// As [`PersistentIndex::open`] with a custom branching factor (at least [`MIN_BRANCHING`]).
    /// The factor only shapes nodes built from now on; reopened nodes keep their sizes.
    pub fn with_branching(
        order: IndexOrder,
        temporal: bool,
        root: Option<&IndexRoot>,
        cache: &Arc<NodeCache>,
        branching: usize,
    ) -> IndexResult<PersistentIndex> {
        let tree = Tree { order, temporal, branching: branching.max(MIN_BRANCHING), cache: cache.clone() };
        let (root, count) = match root {
            Some(IndexRoot { address: Some(address), count }) => (Some(ChildRef::stored(*address)), *count),
            _ => (None, 0),
        };
        Ok(PersistentIndex { tree, root, count })
    }

    /// An empty in-memory index over a fresh cache without store (tests, in-memory databases).
    pub fn empty(order: IndexOrder, temporal: bool, branching: usize) -> PersistentIndex {
        let cache = Arc::new(NodeCache::new(None, NodeCache::DEFAULT_CAPACITY));
        Self::with_branching(order, temporal, None, &cache, branching)
            .unwrap_or_else(|_| unreachable!("opening an empty index reads nothing"))
    }

    /// Whether the index compares datoms fully (history) rather than by (e, a, v).
    pub fn is_temporal(&self) -> bool {
        self.tree.temporal
    }

    /// The branching factor of new nodes.
    pub fn branching(&self) -> usize {
        self.tree.branching
    }

    /// The store key of the node at `address`: `nodes/<32 lowercase hex>`.
    pub fn node_key(address: &Address) -> String {
        node_key(address)
    }

    /// The root as a head records it; computes the root address if not flushed yet.
    pub fn root(&self) -> IndexRoot {
        IndexRoot { address: self.root.as_ref().map(|r| r.address()), count: self.count }
    }

    /// Height of the tree (0 for empty, 1 for a single leaf); loads the leftmost path.
    pub fn height(&self) -> IndexResult<usize> {
        match &self.root {
            None => Ok(0),
            Some(root) => Ok(root.load(&self.tree.cache)?.level() as usize + 1),
        }
    }

    /// The typed form of [`DatomIndex::apply`]: removes first, then adds. A remove matches a
    /// datom equal under the index comparator; an add equal to a present datom is a no-op.
    pub fn apply_batch(&self, mut adds: Vec<Datom>, mut removes: Vec<Datom>) -> IndexResult<PersistentIndex> {
        let tree = &self.tree;
        sort_batch(tree, &mut adds);
        adds.dedup_by(|x, y| tree.cmp(x, y) == Ordering::Equal);
        let Some(root) = &self.root else {
            let (root, count) = tree.build(adds);
            return Ok(PersistentIndex { tree: tree.clone(), root, count });
        };
        if removes.is_empty() && self.count.saturating_mul(8) < adds.len() as u64 {
            // A load into a small tree (say, one holding only the schema): merging into the few
            // old leaves would rebuild nearly everything anyway, so build afresh from both.
            let whole = DatomKey::default();
            let existing: Vec<Datom> = self.range(&whole, &whole).collect::<IndexResult<_>>()?;
            let mut merged = Vec::with_capacity(existing.len() + adds.len());
            let mut old = existing.into_iter().peekable();
            for d in adds {
                while let Some(o) = old.next_if(|o| tree.cmp(o, &d) == Ordering::Less) {
                    merged.push(o);
                }
                // A present datom wins over an equal add.
                if old.peek().is_none_or(|o| tree.cmp(o, &d) != Ordering::Equal) {
                    merged.push(d);
                }
            }
            merged.extend(old);
            let (root, count) = tree.build(merged);
            return Ok(PersistentIndex { tree: tree.clone(), root, count });
        }
        sort_batch(tree, &mut removes);
        removes.dedup_by(|x, y| tree.cmp(x, y) == Ordering::Equal);
        let ops = merge_ops(tree, adds, removes);
        if ops.is_empty() {
            return Ok(self.clone());
        }
        let node = root.load(&tree.cache)?;
        let Some(mut entries) = tree.update(&node, &ops)? else {
            return Ok(self.clone());
        };
        let mut level = node.level();
        while entries.len() > 1 {
            level += 1;
            let mut parents = Vec::new();
            tree.branch_entries(level, entries, &mut parents);
            entries = parents;
        }
        let Some(top) = entries.pop() else {
            return Ok(PersistentIndex { tree: tree.clone(), root: None, count: 0 });
        };
        let count = top.count;
        // A root branch with a single child is replaced by that child.
        let mut root = top.child;
        loop {
            let node = root.load(&tree.cache)?;
            match node.as_ref() {
                Node::Branch(b) if b.children.len() == 1 => match b.children.first() {
                    Some(child) => root = child.clone(),
                    None => break,
                },
                _ => break,
            }
        }
        Ok(PersistentIndex { tree: tree.clone(), root: Some(root), count })
    }

    fn iter(&self, lo: Option<&DatomKey>, hi: Option<&DatomKey>, rev: bool) -> DatomIter<'static> {
        let order = self.tree.order;
        let norm = |k: &DatomKey| k.clone().prefix_for(order);
        Box::new(Iter::new(self.tree.clone(), self.root.clone(), lo.map(norm), hi.map(norm), rev))
    }

    /// Number of datoms below `key` (or at most `key` when `inclusive`), by subtree counts.
    fn rank(&self, key: &DatomKey, inclusive: bool) -> IndexResult<u64> {
        let order = self.tree.order;
        let before = |d: &Datom| match order.cmp_prefix(d, key) {
            Ordering::Less => true,
            Ordering::Equal => inclusive,
            Ordering::Greater => false,
        };
        let Some(root) = &self.root else { return Ok(0) };
        let mut node = root.load(&self.tree.cache)?;
        let mut acc = 0u64;
        loop {
            let next = match node.as_ref() {
                Node::Leaf(datoms) => return Ok(acc.saturating_add(datoms.partition_point(before) as u64)),
                Node::Branch(b) => {
                    let i = b.keys.partition_point(before);
                    acc = b.counts.iter().take(i).fold(acc, |acc, n| acc.saturating_add(*n));
                    if i >= b.children.len() {
                        return Ok(acc);
                    }
                    self.tree.load_child(b, i)?
                }
            };
            node = next;
        }
    }
}

/// One sorted op list; at equal keys the remove comes before the add.
fn merge_ops(tree: &Tree, adds: Vec<Datom>, removes: Vec<Datom>) -> Vec<Op> {
    let mut ops = Vec::with_capacity(adds.len() + removes.len());
    let mut adds = adds.into_iter().peekable();
    let mut removes = removes.into_iter().peekable();
    loop {
        let take_remove = match (adds.peek(), removes.peek()) {
            (Some(a), Some(r)) => tree.cmp(r, a) != Ordering::Greater,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (None, None) => break,
        };
        let (datom, add) = if take_remove { (removes.next(), false) } else { (adds.next(), true) };
        if let Some(datom) = datom {
            ops.push(Op { datom, add });
        }
    }
    ops
}

/// Appends the encoding of every non-durable node under `r`, children before parents, and
/// the out-of-line values they refer to (by hash).
fn collect_unflushed(
    r: &Arc<ChildRef>,
    seen: &mut HashSet<Address>,
    nodes: &mut Vec<(String, Vec<u8>)>,
    refs: &mut Vec<Arc<ChildRef>>,
    values: &mut HashMap<ValueHash, Value>,
) {
    if r.is_durable() {
        return;
    }
    let Some(node) = r.in_memory_node() else {
        return;
    };
    if let Node::Branch(b) = node.as_ref() {
        for child in &b.children {
            collect_unflushed(child, seen, nodes, refs, values);
        }
    }
    let mut bytes = Vec::new();
    node.encode_outlined(&mut bytes, &mut |r, v| {
        values.entry(r.hash).or_insert_with(|| v.clone());
    });
    let address = node::hash_address(&bytes);
    r.set_address(address);
    refs.push(r.clone());
    if seen.insert(address) {
        nodes.push((node_key(&address), bytes));
    }
}

impl DatomIndex for PersistentIndex {
    fn order(&self) -> IndexOrder {
        self.tree.order
    }

    fn count(&self) -> u64 {
        self.count
    }

    fn apply(&self, adds: Vec<Datom>, removes: Vec<Datom>) -> IndexResult<Arc<dyn DatomIndex>> {
        Ok(Arc::new(self.apply_batch(adds, removes)?))
    }

    fn range(&self, lo: &DatomKey, hi: &DatomKey) -> DatomIter<'_> {
        self.iter(Some(lo), Some(hi), false)
    }

    fn range_rev(&self, lo: &DatomKey, hi: &DatomKey) -> DatomIter<'_> {
        self.iter(Some(lo), Some(hi), true)
    }

    fn visit(&self, lo: &DatomKey, hi: &DatomKey, f: &mut dyn FnMut(&Datom) -> bool) -> IndexResult<()> {
        let order = self.tree.order;
        let norm = |k: &DatomKey| k.clone().prefix_for(order);
        Iter::new(self.tree.clone(), self.root.clone(), Some(norm(lo)), Some(norm(hi)), false).visit(f)
    }

    fn seek(&self, from: &DatomKey) -> DatomIter<'_> {
        self.iter(Some(from), None, false)
    }

    fn rseek(&self, from: &DatomKey) -> DatomIter<'_> {
        self.iter(None, Some(from), true)
    }

    fn count_range(&self, lo: &DatomKey, hi: &DatomKey) -> IndexResult<u64> {
        let order = self.tree.order;
        let lo = lo.clone().prefix_for(order);
        let hi = hi.clone().prefix_for(order);
        let upto = self.rank(&hi, true)?;
        let below = self.rank(&lo, false)?;
        Ok(upto.saturating_sub(below))
    }

    fn prepare_flush(&self) -> IndexResult<PendingFlush> {
        let mut nodes = Vec::new();
        let mut refs = Vec::new();
        let mut outlined = HashMap::new();
        if let Some(root) = &self.root {
            collect_unflushed(root, &mut HashSet::new(), &mut nodes, &mut refs, &mut outlined);
        }
        let cache = self.tree.cache.clone();
        // Values go before the nodes that refer to them (the batch is durable as a whole
        // before any head names a node anyway); a value this handle knows to be stored is
        // not written again.
        let mut values = Vec::with_capacity(outlined.len());
        let mut written = Vec::new();
        let mut value_entries = Vec::new();
        for (hash, value) in outlined {
            let key = codec::value_key(&hash);
            if !cache.value_stored(&hash) {
                if let Some(bytes) = codec::out_of_line_bytes(&value) {
                    value_entries.push((key.clone(), bytes.to_vec()));
                    written.push(hash);
                }
            }
            values.push((key, value));
        }
        value_entries.append(&mut nodes);
        Ok(PendingFlush {
            nodes: value_entries,
            values,
            root: self.root(),
            on_durable: Box::new(move || {
                cache.note_values_stored(written);
                for r in refs {
                    r.mark_durable(&cache);
                }
            }),
        })
    }
}

impl fmt::Debug for PersistentIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersistentIndex")
            .field("order", &self.tree.order)
            .field("temporal", &self.tree.temporal)
            .field("branching", &self.tree.branching)
            .field("count", &self.count)
            .finish()
    }
}
