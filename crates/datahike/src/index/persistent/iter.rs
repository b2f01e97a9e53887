//! Range iteration: descend once to the first leaf, then walk leaf by leaf, yielding clones
//! from the leaf slice between bounds found by binary search.

use super::node::{ChildRef, Node};
use super::Tree;
use crate::datom::{Datom, DatomKey};
use crate::index::IndexResult;
use std::cmp::Ordering;
use std::sync::Arc;

/// A forward or reverse iterator over `lo <= d <= hi` (bounds compared by prefix).
pub(crate) struct Iter {
    tree: Tree,
    root: Option<Arc<ChildRef>>,
    lo: Option<DatomKey>,
    hi: Option<DatomKey>,
    rev: bool,
    /// Branches from the root down to the current leaf, with the child index taken.
    stack: Vec<(Arc<Node>, usize)>,
    leaf: Option<Arc<Node>>,
    /// Forward: next index to yield. Reverse: one past the next index to yield.
    pos: usize,
    /// Forward: end (exclusive). Reverse: start (inclusive).
    stop: usize,
    /// Whether the bound lies inside the current leaf, so the walk ends with it.
    last_leaf: bool,
    started: bool,
    done: bool,
}

impl Iter {
    pub fn new(tree: Tree, root: Option<Arc<ChildRef>>, lo: Option<DatomKey>, hi: Option<DatomKey>, rev: bool) -> Iter {
        Iter {
            tree,
            root,
            lo,
            hi,
            rev,
            stack: Vec::new(),
            leaf: None,
            pos: 0,
            stop: 0,
            last_leaf: false,
            started: false,
            done: false,
        }
    }

    fn below_lo(&self, d: &Datom) -> bool {
        self.lo.as_ref().is_some_and(|lo| self.tree.order.cmp_prefix(d, lo) == Ordering::Less)
    }

    fn within_hi(&self, d: &Datom) -> bool {
        self.hi.as_ref().is_none_or(|hi| self.tree.order.cmp_prefix(d, hi) != Ordering::Greater)
    }

    /// Descends from the root towards the first datom in iteration order; `Ok(false)` when
    /// the range is empty.
    fn start(&mut self) -> IndexResult<bool> {
        let Some(root) = self.root.clone() else {
            return Ok(false);
        };
        let mut node = root.load(&self.tree.cache)?;
        loop {
            let next = match node.as_ref() {
                Node::Leaf(datoms) => {
                    if self.rev {
                        let pos = datoms.partition_point(|d| self.within_hi(d));
                        self.enter_leaf_rev(node.clone(), pos);
                    } else {
                        let pos = datoms.partition_point(|d| self.below_lo(d));
                        self.enter_leaf_fwd(node.clone(), pos);
                    }
                    return Ok(true);
                }
                Node::Branch(b) => {
                    let n = b.children.len();
                    let i = if self.rev {
                        // The first child whose max passes `hi` may still hold datoms <= hi.
                        b.keys.partition_point(|k| self.within_hi(k)).min(n.saturating_sub(1))
                    } else {
                        b.keys.partition_point(|k| self.below_lo(k))
                    };
                    if i >= n {
                        return Ok(false);
                    }
                    self.prefetch_after(b, i);
                    let child = self.tree.load_child(b, i)?;
                    self.stack.push((node.clone(), i));
                    child
                }
            };
            node = next;
        }
    }

    fn enter_leaf_fwd(&mut self, leaf: Arc<Node>, pos: usize) {
        let datoms = leaf.datoms();
        let rest = datoms.get(pos..).unwrap_or_default();
        let end = pos + rest.partition_point(|d| self.within_hi(d));
        self.last_leaf = end < datoms.len();
        self.pos = pos;
        self.stop = end;
        self.leaf = Some(leaf);
    }

    fn enter_leaf_rev(&mut self, leaf: Arc<Node>, pos: usize) {
        let datoms = leaf.datoms();
        let head = datoms.get(..pos).unwrap_or_default();
        let start = head.partition_point(|d| self.below_lo(d));
        self.last_leaf = start > 0;
        self.pos = pos;
        self.stop = start;
        self.leaf = Some(leaf);
    }

    /// Moves to the next leaf in iteration order; `Ok(false)` at the end of the tree.
    fn step_leaf(&mut self) -> IndexResult<bool> {
        loop {
            let Some((branch, idx)) = self.stack.last_mut() else {
                return Ok(false);
            };
            let n = branch.len();
            let next = if self.rev { idx.checked_sub(1) } else { Some(*idx + 1).filter(|i| *i < n) };
            let Some(next) = next else {
                self.stack.pop();
                continue;
            };
            *idx = next;
            let branch = branch.clone();
            let Node::Branch(b) = branch.as_ref() else {
                return Ok(false);
            };
            // The next child is about to be read from the store: fetch it with the ones after.
            self.prefetch_after(b, next);
            let mut node = self.tree.load_child(b, next)?;
            // Descend to the leftmost (forward) or rightmost (reverse) leaf.
            loop {
                let child = match node.as_ref() {
                    Node::Leaf(datoms) => {
                        let len = datoms.len();
                        if self.rev {
                            self.enter_leaf_rev(node, len);
                        } else {
                            self.enter_leaf_fwd(node, 0);
                        }
                        return Ok(true);
                    }
                    Node::Branch(b) => {
                        let i = if self.rev { b.children.len().saturating_sub(1) } else { 0 };
                        let child = self.tree.load_child(b, i)?;
                        self.stack.push((node.clone(), i));
                        child
                    }
                };
                node = child;
            }
        }
    }
}

/// How many children of a branch one prefetch asks for.
const PREFETCH_AHEAD: usize = 32;

impl Iter {
    /// On a store that prefers batched reads: fetches, in one request, the children of `b`
    /// from `i` on in iteration order (up to [`PREFETCH_AHEAD`]) that the range may reach,
    /// so that a scan over many nodes of a remote store waits for one round trip per batch
    /// instead of one per node.
    fn prefetch_after(&self, b: &super::node::Branch, i: usize) {
        let Some(child) = b.children.get(i) else { return };
        if !self.tree.cache.prefetches()
            || child.in_memory_node().is_some()
            || self.tree.cache.contains(&child.address())
        {
            return;
        }
        let wanted: Vec<crate::index::Address> = if self.rev {
            let from = i.saturating_sub(PREFETCH_AHEAD - 1);
            // Children before the one holding `lo` are outside the range.
            let first = from.max(b.keys.partition_point(|k| self.below_lo(k)).min(i));
            b.children
                .get(first..=i)
                .unwrap_or_default()
                .iter()
                .filter(|c| c.in_memory_node().is_none())
                .map(|c| c.address())
                .collect()
        } else {
            let to = (i + PREFETCH_AHEAD).min(b.children.len());
            // The child whose largest datom passes `hi` is the last the range reaches.
            let last = b.keys.get(i..to).map_or(to, |keys| i + keys.partition_point(|k| self.within_hi(k)) + 1).min(to);
            b.children
                .get(i..last)
                .unwrap_or_default()
                .iter()
                .filter(|c| c.in_memory_node().is_none())
                .map(|c| c.address())
                .collect()
        };
        self.tree.cache.prefetch(&wanted);
    }

    /// Calls `f` on each datom of a forward range by reference, leaf slice by leaf slice,
    /// until it returns `false`.
    pub fn visit(mut self, f: &mut dyn FnMut(&Datom) -> bool) -> IndexResult<()> {
        debug_assert!(!self.rev, "visit walks forward");
        if !self.start()? {
            return Ok(());
        }
        loop {
            if let Some(leaf) = &self.leaf {
                for d in leaf.datoms().get(self.pos..self.stop).unwrap_or_default() {
                    if !f(d) {
                        return Ok(());
                    }
                }
            }
            if self.last_leaf || !self.step_leaf()? {
                return Ok(());
            }
        }
    }

    /// After positioning on a leaf: `None` to go on, or the iterator's last item (end of the
    /// range, or the error that ends it).
    fn finish_unless_moved(&mut self, moved: IndexResult<bool>) -> Option<Option<IndexResult<Datom>>> {
        match moved {
            Ok(true) => None,
            Ok(false) => {
                self.done = true;
                Some(None)
            }
            Err(e) => {
                self.done = true;
                Some(Some(Err(e)))
            }
        }
    }
}

impl Iterator for Iter {
    type Item = IndexResult<Datom>;

    fn next(&mut self) -> Option<IndexResult<Datom>> {
        loop {
            if self.done {
                return None;
            }
            if !self.started {
                self.started = true;
                let moved = self.start();
                if let Some(end) = self.finish_unless_moved(moved) {
                    return end;
                }
                continue;
            }
            if let Some(leaf) = &self.leaf {
                if self.rev {
                    if self.pos > self.stop {
                        self.pos -= 1;
                        if let Some(d) = leaf.datoms().get(self.pos) {
                            return Some(Ok(d.clone()));
                        }
                    }
                } else if self.pos < self.stop {
                    let d = leaf.datoms().get(self.pos);
                    self.pos += 1;
                    if let Some(d) = d {
                        return Some(Ok(d.clone()));
                    }
                }
                if self.last_leaf {
                    self.done = true;
                    return None;
                }
            }
            let moved = self.step_leaf();
            if let Some(end) = self.finish_unless_moved(moved) {
                return end;
            }
        }
    }
}
