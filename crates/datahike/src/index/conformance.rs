//! The conformance check of a [`DatomIndex`] implementation against a model (a sorted vector
//! of datoms in the index's order): seeded random batches of adds and removes, flushes into a
//! store and reopening from the flushed root, and every read method over random key ranges.
//! The built-in persistent index passes it; an implementation registered with
//! [`super::register_index`] must too. A failure panics naming the seed, the step and the
//! method, so that it can be replayed.

use super::{DatomIndex, IndexFactory, IndexRoot, NodeCache};
use crate::datom::{Datom, DatomKey, IndexOrder};
use crate::edn::Keyword;
use crate::store::{MemoryStore, Store};
use crate::value::Value;
use std::cmp::Ordering;
use std::sync::Arc;

/// The next number of a SplitMix64 sequence: small, seedable, the same everywhere.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn below(state: &mut u64, n: u64) -> u64 {
    next(state) % n
}

fn attrs() -> [Keyword; 3] {
    [Keyword::new("a"), Keyword::new("b"), Keyword::new("c/d")]
}

fn random_datom(rng: &mut u64) -> Datom {
    let a = attrs()[usize::try_from(below(rng, 3)).unwrap_or(0)];
    let v = match below(rng, 3) {
        0 => Value::Long(i64::try_from(below(rng, 6)).unwrap_or(0)),
        1 => Value::String(format!("s{}", below(rng, 4)).into()),
        _ => Value::Boolean(below(rng, 2) == 0),
    };
    let e = i64::try_from(below(rng, 40)).unwrap_or(0);
    let tx = crate::datom::TX0 + 1 + i64::try_from(below(rng, 5)).unwrap_or(0);
    Datom::new(e, a, v, tx, below(rng, 4) != 0)
}

fn random_key(rng: &mut u64) -> DatomKey {
    let d = random_datom(rng);
    let mut key = DatomKey::default();
    if below(rng, 4) != 0 {
        key.e = Some(d.e);
    }
    if below(rng, 2) == 0 {
        key.a = Some(d.a);
    }
    if below(rng, 3) == 0 {
        key.v = Some(d.v.clone());
    }
    if below(rng, 5) == 0 {
        key.tx = Some(d.tx());
    }
    key
}

/// The reference: the datoms of the index, sorted in its order, with the same update rules.
struct Model {
    order: IndexOrder,
    temporal: bool,
    datoms: Vec<Datom>,
}

impl Model {
    fn cmp(&self, x: &Datom, y: &Datom) -> Ordering {
        if self.temporal {
            self.order.cmp(x, y)
        } else {
            self.order.cmp_eav(x, y)
        }
    }

    fn apply(&mut self, adds: &[Datom], removes: &[Datom]) {
        for r in removes {
            if let Ok(i) = self.datoms.binary_search_by(|d| self.cmp(d, r)) {
                self.datoms.remove(i);
            }
        }
        for a in adds {
            if let Err(i) = self.datoms.binary_search_by(|d| self.cmp(d, a)) {
                self.datoms.insert(i, a.clone());
            }
        }
    }

    fn range(&self, lo: Option<&DatomKey>, hi: Option<&DatomKey>) -> Vec<Datom> {
        let lo = lo.map(|k| k.clone().prefix_for(self.order));
        let hi = hi.map(|k| k.clone().prefix_for(self.order));
        self.datoms
            .iter()
            .filter(|d| lo.as_ref().is_none_or(|k| self.order.cmp_prefix(d, k) != Ordering::Less))
            .filter(|d| hi.as_ref().is_none_or(|k| self.order.cmp_prefix(d, k) != Ordering::Greater))
            .cloned()
            .collect()
    }
}

fn collect(index: &dyn DatomIndex, iter: super::DatomIter<'_>, what: &str) -> Vec<Datom> {
    let _ = index;
    iter.collect::<Result<Vec<_>, _>>().unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Flushes `index` into `store` and returns its root.
fn flush(index: &dyn DatomIndex, store: &dyn Store, what: &str) -> IndexRoot {
    let pending = index.prepare_flush().unwrap_or_else(|e| panic!("{what}: prepare_flush: {e}"));
    store.put_batch(&pending.nodes).unwrap_or_else(|e| panic!("{what}: storing the nodes: {e}"));
    let root = pending.root.clone();
    pending.mark_durable();
    root
}

/// Runs `steps` random batches per order (EAVT, AEVT, AVET, current and temporal) from
/// `seed` against the model, checking every read method after each batch; flushes and
/// reopens from the flushed root now and then (with a cache of 8 nodes, so that nodes are
/// read back from the store), and checks at the end that every earlier version still reads
/// as it was.
pub fn check(factory: &dyn IndexFactory, seed: u64, steps: usize) {
    for order in IndexOrder::ALL {
        for temporal in [false, true] {
            check_one(factory, order, temporal, seed, steps);
        }
    }
}

fn check_one(factory: &dyn IndexFactory, order: IndexOrder, temporal: bool, seed: u64, steps: usize) {
    let mut rng = seed ^ (order as u64).wrapping_mul(31) ^ u64::from(temporal);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let open = |root: Option<&IndexRoot>| -> Arc<dyn DatomIndex> {
        let cache = Arc::new(NodeCache::new(Some(store.clone()), 8));
        factory
            .open(order, temporal, root, &cache, 4)
            .unwrap_or_else(|e| panic!("seed {seed}, {order:?} temporal {temporal}: open: {e}"))
    };
    let mut index = open(None);
    let mut model = Model { order, temporal, datoms: Vec::new() };
    let mut versions: Vec<(Arc<dyn DatomIndex>, Vec<Datom>)> = Vec::new();
    for step in 0..steps {
        let what = format!("seed {seed}, {order:?} temporal {temporal}, step {step}");
        let adds: Vec<Datom> = (0..below(&mut rng, 50)).map(|_| random_datom(&mut rng)).collect();
        let removes: Vec<Datom> = (0..below(&mut rng, 30)).map(|_| random_datom(&mut rng)).collect();
        index = index.apply(adds.clone(), removes.clone()).unwrap_or_else(|e| panic!("{what}: apply: {e}"));
        model.apply(&adds, &removes);
        if below(&mut rng, 3) == 0 {
            let root = flush(index.as_ref(), store.as_ref(), &what);
            if below(&mut rng, 2) == 0 {
                index = open(Some(&root));
            }
        }
        assert_eq!(index.count(), model.datoms.len() as u64, "{what}: count");
        let whole = DatomKey::default();
        assert_eq!(collect(index.as_ref(), index.range(&whole, &whole), &what), model.datoms, "{what}: whole range");
        for _ in 0..4 {
            let (lo, hi) = (random_key(&mut rng), random_key(&mut rng));
            let expected = model.range(Some(&lo), Some(&hi));
            assert_eq!(collect(index.as_ref(), index.range(&lo, &hi), &what), expected, "{what}: range {lo:?} {hi:?}");
            let mut reversed = expected.clone();
            reversed.reverse();
            assert_eq!(collect(index.as_ref(), index.range_rev(&lo, &hi), &what), reversed, "{what}: range_rev");
            assert_eq!(
                index.count_range(&lo, &hi).unwrap_or_else(|e| panic!("{what}: count_range: {e}")),
                expected.len() as u64,
                "{what}: count_range {lo:?} {hi:?}"
            );
            let mut visited = Vec::new();
            index
                .visit(&lo, &hi, &mut |d| {
                    visited.push(d.clone());
                    visited.len() < 5
                })
                .unwrap_or_else(|e| panic!("{what}: visit: {e}"));
            assert_eq!(visited, expected.iter().take(5).cloned().collect::<Vec<_>>(), "{what}: visit stops when told");
            assert_eq!(collect(index.as_ref(), index.seek(&lo), &what), model.range(Some(&lo), None), "{what}: seek");
            let mut rseek = model.range(None, Some(&hi));
            rseek.reverse();
            assert_eq!(collect(index.as_ref(), index.rseek(&hi), &what), rseek, "{what}: rseek {hi:?}");
        }
        versions.push((index.clone(), model.datoms.clone()));
    }
    for (step, (old, datoms)) in versions.iter().enumerate() {
        let what = format!("seed {seed}, {order:?} temporal {temporal}, version {step}");
        assert_eq!(
            collect(old.as_ref(), old.seek(&DatomKey::default()), &what),
            *datoms,
            "{what}: an old version changed"
        );
    }
}

/// The built-in persistent index as an [`IndexFactory`], for comparisons and tests.
pub struct PersistentSetFactory;

impl IndexFactory for PersistentSetFactory {
    fn open(
        &self,
        order: IndexOrder,
        temporal: bool,
        root: Option<&IndexRoot>,
        cache: &Arc<NodeCache>,
        branching: usize,
    ) -> super::IndexResult<Arc<dyn DatomIndex>> {
        super::open_index(super::IndexKind::PersistentSet, order, temporal, root, cache, branching)
    }

    fn mark_reachable(
        &self,
        root: &IndexRoot,
        store: &dyn Store,
        marked: &mut std::collections::HashSet<String>,
    ) -> super::IndexResult<()> {
        super::mark_reachable(super::IndexKind::PersistentSet, root, store, marked)
    }
}
