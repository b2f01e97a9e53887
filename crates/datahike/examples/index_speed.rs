//! Prints timings of the persistent index: bulk load of 1M datoms, full scans, small
//! transactions, flush and a cold scan through the node cache. Run in release mode:
//! `cargo run --release -p datahike --example index_speed`. Not a test: it only prints.

use datahike::datom::TX0;
use datahike::index::{DatomIndex, NodeCache, PersistentIndex};
use datahike::store::{Store, StoreResult, WriterGuard};
use datahike::{Datom, DatomKey, IndexOrder, Keyword, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Nodes in a `HashMap`: enough to measure encoding and decoding without disk I/O.
#[derive(Default)]
struct MapStore(Mutex<HashMap<String, Vec<u8>>>);

impl Store for MapStore {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.0.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned())
    }
    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in entries {
            map.insert(k.clone(), v.clone());
        }
        Ok(())
    }
    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            map.remove(k);
        }
        Ok(())
    }
    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Ok(map.keys().filter(|k| k.starts_with(prefix)).cloned().collect())
    }
    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
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
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const N: i64 = 1_000_000;
    let attrs = [Keyword::new("person/name"), Keyword::new("person/age"), Keyword::new("person/email")];
    let datoms: Vec<Datom> = (0..N)
        .map(|i| {
            let e = 1000 + i / 3;
            let v = match i % 3 {
                0 => Value::str(&format!("name-{e}")),
                1 => Value::Long(e % 97),
                _ => Value::str(&format!("p{e}@example.org")),
            };
            Datom::new(e, attrs[(i % 3) as usize], v, TX0 + 1 + i / 10_000, true)
        })
        .collect();

    let store: Arc<dyn Store> = Arc::new(MapStore::default());
    let cache = Arc::new(NodeCache::new(Some(store.clone()), NodeCache::DEFAULT_CAPACITY));

    for order in IndexOrder::ALL {
        let empty = PersistentIndex::open(order, false, None, &cache)?;
        let t = Instant::now();
        let index = empty.apply_batch(datoms.clone(), Vec::new())?;
        println!("{}: bulk load of {N} datoms: {:?} (height {})", order.name(), t.elapsed(), index.height()?);

        let t = Instant::now();
        let mut n = 0u64;
        for d in index.seek(&DatomKey::default()) {
            d?;
            n += 1;
        }
        println!("{}: full scan of {n} datoms: {:?}", order.name(), t.elapsed());

        let t = Instant::now();
        let n = index.range_rev(&DatomKey::default(), &DatomKey::default()).count();
        println!("{}: reverse scan of {n} datoms: {:?}", order.name(), t.elapsed());
    }

    let index = PersistentIndex::open(IndexOrder::Eavt, false, None, &cache)?.apply_batch(datoms, Vec::new())?;
    let t = Instant::now();
    let key = DatomKey { e: Some(1000 + N / 6), ..Default::default() };
    let mut total = 0;
    for _ in 0..100_000 {
        total += index.count_range(&key, &key)?;
    }
    println!("eavt: 100k count_range of one entity: {:?} ({total} datoms)", t.elapsed());

    let t = Instant::now();
    let pending = index.prepare_flush()?;
    let (n_nodes, n_bytes) = (pending.nodes.len(), pending.nodes.iter().map(|(_, b)| b.len()).sum::<usize>());
    println!("eavt: encoding {n_nodes} nodes ({n_bytes} bytes): {:?}", t.elapsed());
    store.put_batch(&pending.nodes)?;
    let root = pending.root.clone();
    pending.mark_durable();

    let t = Instant::now();
    let mut current = index.clone();
    let mut new_nodes = 0;
    for i in 0..1000i64 {
        let adds = (0..10)
            .map(|j| {
                Datom::new(1000 + (i * 7919 + j * 104_729) % (N / 3), attrs[0], Value::Long(i), TX0 + 1000 + i, true)
            })
            .collect();
        current = current.apply_batch(adds, Vec::new())?;
        let pending = current.prepare_flush()?;
        new_nodes += pending.nodes.len();
        store.put_batch(&pending.nodes)?;
        pending.mark_durable();
    }
    println!("eavt: 1000 transactions of 10 datoms, each flushed: {:?} ({new_nodes} new nodes)", t.elapsed());

    let cold = Arc::new(NodeCache::new(Some(store), NodeCache::DEFAULT_CAPACITY));
    let reopened = PersistentIndex::open(IndexOrder::Eavt, false, Some(&root), &cold)?;
    let t = Instant::now();
    let n = reopened.seek(&DatomKey::default()).count();
    println!("eavt: cold scan of {n} datoms through the node cache (decoding every node): {:?}", t.elapsed());
    Ok(())
}
