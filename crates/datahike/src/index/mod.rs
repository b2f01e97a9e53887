//! Sorted datom indices behind the [`DatomIndex`] trait, and the default implementation, a
//! persistent B+-tree of immutable, content-addressed nodes loaded lazily from a [`Store`].
//! This module knows nothing of transactions or queries.

pub mod codec;
pub mod conformance;
mod persistent;

#[cfg(feature = "fuzzing")]
pub(crate) use persistent::reencode_node;
pub use persistent::{CacheLimit, CacheStats, NodeCache, PersistentIndex};

use crate::datom::{Datom, DatomKey, IndexOrder};
pub use crate::error::IndexError;
use crate::store::Store;
use crate::value::Value;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// Result of the index layer.
pub type IndexResult<T> = Result<T, IndexError>;

/// A node address: 16 bytes (a truncated BLAKE3 hash of the node's encoding).
pub type Address = [u8; 16];

/// What a branch head records of one index so that it can be reopened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexRoot {
    /// Root node address; `None` for an empty index.
    pub address: Option<Address>,
    /// Number of datoms.
    pub count: u64,
}

/// Nodes produced by [`DatomIndex::prepare_flush`] that must be stored durably before any head
/// names `root`. After the store write succeeded, call [`PendingFlush::mark_durable`].
pub struct PendingFlush {
    /// `(key, bytes)` of every node not yet in the store, and of every out-of-line value
    /// (`values/<hash>`, see [`codec::OUT_OF_LINE_MIN_BYTES`]) those nodes refer to that is
    /// not known to be stored.
    pub nodes: Vec<(String, Vec<u8>)>,
    /// Every out-of-line value the new nodes refer to, stored or not, by key: what a flush
    /// writes again when a garbage collection ran while it wrote (it may have deleted one).
    pub values: Vec<(String, Value)>,
    /// The root to record in the head.
    pub root: IndexRoot,
    /// Called once the nodes are durable: lets the index release them to the LRU cache.
    pub on_durable: Box<dyn FnOnce() + Send>,
}

impl PendingFlush {
    /// Records that `nodes` are durable in the store.
    pub fn mark_durable(self) {
        (self.on_durable)();
    }
}

/// A boxed iterator over datoms; an item is an error when a lazily loaded node fails to load.
pub type DatomIter<'a> = Box<dyn Iterator<Item = IndexResult<Datom>> + Send + 'a>;

/// A sorted, immutable set of datoms in one [`IndexOrder`]. Every method leaves `self` as it
/// is: updates return a new index that shares structure with the old one.
pub trait DatomIndex: Send + Sync + std::fmt::Debug {
    /// The order of this index.
    fn order(&self) -> IndexOrder;

    /// Number of datoms (an upper bound for the indices of views, as for `count_range`).
    fn count(&self) -> u64;

    /// A new index without `removes` and with `adds`. Both come in any order and may be large
    /// (a bulk load); the implementation sorts them and merges leaf by leaf. Removing an
    /// absent datom or adding a present one is a no-op.
    fn apply(&self, adds: Vec<Datom>, removes: Vec<Datom>) -> IndexResult<Arc<dyn DatomIndex>>;

    /// Datoms `d` with `lo <= d <= hi` in index order, where a key compares by its given
    /// prefix ([`IndexOrder::cmp_prefix`]), so `range(k, k)` is every datom with prefix `k`.
    fn range(&self, lo: &DatomKey, hi: &DatomKey) -> DatomIter<'_>;

    /// Calls `f` on the datoms of [`DatomIndex::range`] in order, by reference, until it
    /// returns `false`: a scan that clones nothing (the query engine's inner loop).
    fn visit(&self, lo: &DatomKey, hi: &DatomKey, f: &mut dyn FnMut(&Datom) -> bool) -> IndexResult<()> {
        for d in self.range(lo, hi) {
            if !f(&d?) {
                break;
            }
        }
        Ok(())
    }

    /// The same datoms as [`DatomIndex::range`], in descending order.
    fn range_rev(&self, lo: &DatomKey, hi: &DatomKey) -> DatomIter<'_>;

    /// Datoms `>= from` to the end of the index.
    fn seek(&self, from: &DatomKey) -> DatomIter<'_>;

    /// Datoms `<= from`, descending to the start.
    fn rseek(&self, from: &DatomKey) -> DatomIter<'_>;

    /// Number of datoms in `range(lo, hi)`, in O(log n) where the implementation can. The
    /// indices of views (history, as-of, since, filter) return an upper bound: the query
    /// planner uses this method for estimates only.
    fn count_range(&self, lo: &DatomKey, hi: &DatomKey) -> IndexResult<u64>;

    /// Encodes every node not yet durable. Cheap when nothing changed since the last flush.
    fn prepare_flush(&self) -> IndexResult<PendingFlush>;
}

/// Opens an index of the `:index` implementation named in the config.
pub fn open_index(
    kind: IndexKind,
    order: IndexOrder,
    temporal: bool,
    root: Option<&IndexRoot>,
    cache: &Arc<NodeCache>,
    branching: usize,
) -> IndexResult<Arc<dyn DatomIndex>> {
    match kind {
        IndexKind::PersistentSet => {
            Ok(Arc::new(PersistentIndex::with_branching(order, temporal, root, cache, branching)?))
        }
        IndexKind::Registered(name) => registered(name)?.open(order, temporal, root, cache, branching),
    }
}

/// The index implementations, chosen by the `:index` config key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKind {
    /// `:datahike.index/persistent-set`, the default.
    PersistentSet,
    /// An implementation registered with [`register_index`] under this keyword.
    Registered(crate::edn::Keyword),
}

impl IndexKind {
    /// Parses the config keyword text (without colon): the built-in one or a registered one.
    pub fn parse(text: &str) -> Option<IndexKind> {
        match text {
            "datahike.index/persistent-set" => Some(IndexKind::PersistentSet),
            other if index_registry().read().unwrap_or_else(PoisonError::into_inner).contains_key(other) => {
                Some(IndexKind::Registered(crate::edn::Keyword::new(other)))
            }
            _ => None,
        }
    }

    /// The keyword text, e.g. `datahike.index/persistent-set`.
    pub fn name(self) -> &'static str {
        match self {
            IndexKind::PersistentSet => "datahike.index/persistent-set",
            IndexKind::Registered(name) => name.as_str(),
        }
    }
}

/// An index implementation that `{:index :my.ns/my-index}` selects: it opens the indices of
/// a database from their roots and marks what a root reaches for garbage collection. Its
/// nodes go through the [`NodeCache`] (and so the store) it is given; its indices must pass
/// [`conformance::check`].
pub trait IndexFactory: Send + Sync + 'static {
    /// An index in `order` (`temporal`: a history index, ordered by `added` after `tx`),
    /// empty when `root` is `None`, else the one a flush recorded as `root`.
    fn open(
        &self,
        order: IndexOrder,
        temporal: bool,
        root: Option<&IndexRoot>,
        cache: &Arc<NodeCache>,
        branching: usize,
    ) -> IndexResult<Arc<dyn DatomIndex>>;

    /// Adds to `marked` the store key of every node `root` reaches.
    fn mark_reachable(
        &self,
        root: &IndexRoot,
        store: &dyn Store,
        marked: &mut std::collections::HashSet<String>,
    ) -> IndexResult<()>;
}

fn index_registry() -> &'static RwLock<HashMap<String, Arc<dyn IndexFactory>>> {
    static REGISTRY: OnceLock<RwLock<HashMap<String, Arc<dyn IndexFactory>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| RwLock::new(HashMap::new()))
}

/// Registers an index implementation under `name` (a namespaced keyword's text without the
/// colon, e.g. `"my.ns/my-index"`), so that `{:index :my.ns/my-index}` selects it.
pub fn register_index(name: &str, factory: Arc<dyn IndexFactory>) {
    index_registry().write().unwrap_or_else(PoisonError::into_inner).insert(name.to_string(), factory);
}

fn registered(name: crate::edn::Keyword) -> IndexResult<Arc<dyn IndexFactory>> {
    index_registry()
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name.as_str())
        .cloned()
        .ok_or_else(|| IndexError::Unregistered(name.as_str().to_string()))
}

/// Adds to `marked` the store key of every node reachable from `root` (an index root of any
/// implementation), reading the store directly. Used by garbage collection.
pub fn mark_reachable(
    kind: IndexKind,
    root: &IndexRoot,
    store: &dyn Store,
    marked: &mut std::collections::HashSet<String>,
) -> IndexResult<()> {
    match (kind, &root.address) {
        (IndexKind::PersistentSet, Some(address)) => persistent::mark_reachable(address, store, marked),
        (IndexKind::PersistentSet, None) => Ok(()),
        (IndexKind::Registered(name), _) => registered(name)?.mark_reachable(root, store, marked),
    }
}

#[allow(dead_code)]
fn _assert_object_safe(_: &dyn DatomIndex, _: &dyn Store) {}
