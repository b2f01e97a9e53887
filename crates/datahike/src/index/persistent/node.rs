//! Tree nodes, references to them (in memory until durable, then through the cache), their
//! content-addressed binary encoding, and the LRU [`NodeCache`].
//!
//! Node encoding: `MAGIC` (4 bytes), format version byte, kind byte, then
//! - leaf: the datom body of the codec (attribute dictionary, delta-coded datoms);
//! - branch: varint level (>= 1), varint child count n, n child addresses (16 bytes each),
//!   n varint subtree counts, then the n max keys as a datom body.
//!
//! The address of a node is the first 16 bytes of the BLAKE3 hash of its encoding.
//!
//! Version 1 nodes hold every value inline. A node holding a string or byte array of at least
//! [`crate::index::codec::OUT_OF_LINE_MIN_BYTES`] is written as version 2: the value is a
//! reference (see the codec) to `values/<hash>`, which is stored before any head names the
//! node, and resolved through the cache when the node is read, so the decoded node is the same
//! as the one encoded. Nodes without such values are still written as version 1, byte for
//! byte as before.

use crate::datom::Datom;
use crate::index::codec::{
    put_datoms_body_outlined, put_varint, value_from_stored, Reader, ResolveRef, ValueHash, ValueRef,
};
use crate::index::{Address, IndexError, IndexResult};
use crate::store::{Store, StoreError};
use crate::value::Value;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

const MAGIC: [u8; 4] = *b"DHIX";
/// Every value inline.
const NODE_VERSION: u8 = 1;
/// Long strings and byte arrays out of line.
const NODE_VERSION_REFS: u8 = 2;
const KIND_LEAF: u8 = 0;
const KIND_BRANCH: u8 = 1;

/// An immutable tree node.
pub(crate) enum Node {
    /// Datoms in index order.
    Leaf(Vec<Datom>),
    /// Children of one level below.
    Branch(Branch),
}

/// The inside of a branch node: parallel vectors, one entry per child.
pub(crate) struct Branch {
    /// Height above the leaves (leaves are level 0).
    pub level: u32,
    /// The largest datom of each child's subtree.
    pub keys: Vec<Datom>,
    /// Number of datoms in each child's subtree.
    pub counts: Vec<u64>,
    /// The children.
    pub children: Vec<Arc<ChildRef>>,
}

impl Node {
    /// About how many bytes of memory the node holds: its datoms (or keys, counts and child
    /// references) and the heap bytes of their strings, byte arrays and tuples. Decoding
    /// shares attribute names, so they are not counted per datom.
    pub fn approx_bytes(&self) -> u64 {
        let datoms =
            |ds: &[Datom]| -> usize { ds.iter().map(|d| std::mem::size_of::<Datom>() + value_heap_bytes(&d.v)).sum() };
        let bytes = match self {
            Node::Leaf(ds) => datoms(ds),
            Node::Branch(b) => {
                datoms(&b.keys)
                    + b.counts.len() * std::mem::size_of::<u64>()
                    + b.children.len() * (std::mem::size_of::<Arc<ChildRef>>() + std::mem::size_of::<ChildRef>())
            }
        };
        u64::try_from(bytes + std::mem::size_of::<Node>()).unwrap_or(u64::MAX)
    }

    /// Leaves are level 0.
    pub fn level(&self) -> u32 {
        match self {
            Node::Leaf(_) => 0,
            Node::Branch(b) => b.level,
        }
    }

    /// Number of items (datoms or children).
    pub fn len(&self) -> usize {
        match self {
            Node::Leaf(ds) => ds.len(),
            Node::Branch(b) => b.children.len(),
        }
    }

    /// The datoms of a leaf; empty for a branch.
    pub fn datoms(&self) -> &[Datom] {
        match self {
            Node::Leaf(ds) => ds,
            Node::Branch(_) => &[],
        }
    }

    /// Appends the node's encoding. Child addresses are computed where not known yet.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_outlined(out, &mut |_, _| {});
    }

    /// [`Node::encode`], handing each value it writes out of line to `sink` (the same value
    /// may come more than once).
    pub fn encode_outlined(&self, out: &mut Vec<u8>, sink: &mut dyn FnMut(ValueRef, &Value)) {
        out.extend_from_slice(&MAGIC);
        let version_at = out.len();
        out.push(NODE_VERSION);
        let mut outlined = false;
        let mut sink = |r: ValueRef, v: &Value| {
            outlined = true;
            sink(r, v);
        };
        match self {
            Node::Leaf(ds) => {
                out.push(KIND_LEAF);
                put_datoms_body_outlined(ds, out, &mut sink);
            }
            Node::Branch(b) => {
                out.push(KIND_BRANCH);
                put_varint(u64::from(b.level), out);
                put_varint(b.children.len() as u64, out);
                for c in &b.children {
                    out.extend_from_slice(&c.address());
                }
                for n in &b.counts {
                    put_varint(*n, out);
                }
                put_datoms_body_outlined(&b.keys, out, &mut sink);
            }
        }
        if outlined {
            if let Some(version) = out.get_mut(version_at) {
                *version = NODE_VERSION_REFS;
            }
        }
    }

    /// Decodes a node stored under `address`, checking the hash first; out-of-line values are
    /// resolved by `refs`.
    pub fn decode(address: &Address, bytes: &[u8], refs: &dyn ResolveRef) -> IndexResult<Node> {
        let corrupt = |reason: String| IndexError::CorruptNode { address: hex(address), reason };
        if hash_address(bytes) != *address {
            return Err(corrupt(format!("the hash of its {} bytes does not match its address", bytes.len())));
        }
        Node::decode_unchecked(bytes, refs).map_err(corrupt)
    }

    fn decode_unchecked(bytes: &[u8], refs: &dyn ResolveRef) -> Result<Node, String> {
        let mut r = Reader::new(bytes);
        let magic: [u8; 4] = r.array("the node magic").map_err(|e| e.to_string())?;
        if magic != MAGIC {
            return Err("it does not start with the node magic".to_string());
        }
        let version = r.u8().map_err(|e| e.to_string())?;
        match version {
            NODE_VERSION => {}
            NODE_VERSION_REFS => {
                // The same position, with references resolved.
                let at = r.position();
                r = Reader::with_refs(bytes, refs);
                r.take(at, "the node header").map_err(|e| e.to_string())?;
            }
            _ => {
                return Err(format!(
                    "node format version {version} is not supported (expected {NODE_VERSION} or {NODE_VERSION_REFS})"
                ))
            }
        }
        let node = match r.u8().map_err(|e| e.to_string())? {
            KIND_LEAF => Node::Leaf(r.datoms().map_err(|e| e.to_string())?),
            KIND_BRANCH => {
                let level = r.varint().map_err(|e| e.to_string())?;
                let level = u32::try_from(level)
                    .ok()
                    .filter(|l| (1..=64).contains(l))
                    .ok_or_else(|| format!("branch level {level} is out of range"))?;
                // Each child takes at least 16 address bytes and one count byte.
                let n = r.count(17, "a child count").map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("a branch without children".to_string());
                }
                let mut children = Vec::with_capacity(n);
                for _ in 0..n {
                    children.push(ChildRef::stored(r.array("a child address").map_err(|e| e.to_string())?));
                }
                let mut counts = Vec::with_capacity(n);
                for _ in 0..n {
                    counts.push(r.varint().map_err(|e| e.to_string())?);
                }
                let keys = r.datoms().map_err(|e| e.to_string())?;
                if keys.len() != n {
                    return Err(format!("{} keys for {n} children", keys.len()));
                }
                Node::Branch(Branch { level, keys, counts, children })
            }
            kind => return Err(format!("unknown node kind {kind}")),
        };
        r.finish().map_err(|e| e.to_string())?;
        Ok(node)
    }
}

/// For `crate::fuzzing`: decodes `bytes` as a node stored under their own hash and encodes the
/// node again. The error is the one a reader gets.
/// A node naming an out-of-line value decodes up to that reference and fails there: fuzz
/// input comes without a store to resolve it from.
#[cfg(feature = "fuzzing")]
pub(crate) fn reencode_node(bytes: &[u8]) -> IndexResult<Vec<u8>> {
    struct NoStore;
    impl ResolveRef for NoStore {
        fn resolve(&self, r: &ValueRef) -> Result<Value, String> {
            Err(format!("out-of-line value {} without a store to read it from", r.key()))
        }
    }
    let node = Node::decode(&hash_address(bytes), bytes, &NoStore)?;
    let mut out = Vec::with_capacity(bytes.len());
    node.encode(&mut out);
    Ok(out)
}

/// First 16 bytes of the BLAKE3 hash.
pub(crate) fn hash_address(bytes: &[u8]) -> Address {
    let hash = blake3::hash(bytes);
    let mut addr = [0u8; 16];
    addr.copy_from_slice(&hash.as_bytes()[..16]);
    addr
}

/// 32 lowercase hex digits.
pub(crate) fn hex(address: &Address) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(32);
    for b in address {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The store key of a node: `nodes/<32 hex>`.
pub(crate) fn node_key(address: &Address) -> String {
    format!("nodes/{}", hex(address))
}

/// A reference to a child node, shared by every tree version that contains the child.
///
/// Invariant: the node is held in memory (`node` is `Some`) at least until it is durable, and
/// a durable reference always knows its address, so it can be reloaded through the cache.
pub(crate) struct ChildRef {
    address: OnceLock<Address>,
    durable: AtomicBool,
    node: Mutex<Option<Arc<Node>>>,
}

impl ChildRef {
    /// A new node, not yet stored.
    pub fn in_memory(node: Node) -> Arc<ChildRef> {
        Arc::new(ChildRef {
            address: OnceLock::new(),
            durable: AtomicBool::new(false),
            node: Mutex::new(Some(Arc::new(node))),
        })
    }

    /// A node known to be durable under `address`, loaded on first use.
    pub fn stored(address: Address) -> Arc<ChildRef> {
        Arc::new(ChildRef { address: OnceLock::from(address), durable: AtomicBool::new(true), node: Mutex::new(None) })
    }

    /// The node if it is held in memory.
    pub fn in_memory_node(&self) -> Option<Arc<Node>> {
        self.node.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether the node is durable in the store.
    pub fn is_durable(&self) -> bool {
        self.durable.load(AtomicOrdering::Acquire)
    }

    /// The node's address, computed from its encoding the first time.
    pub fn address(&self) -> Address {
        if let Some(a) = self.address.get() {
            return *a;
        }
        let node = self.in_memory_node();
        *self.address.get_or_init(|| {
            // A reference without an address always holds its node (see the invariant).
            let node = node.unwrap_or_else(|| unreachable!("a node reference holds neither node nor address"));
            let mut buf = Vec::new();
            node.encode(&mut buf);
            hash_address(&buf)
        })
    }

    /// Records the address computed while encoding for a flush.
    pub fn set_address(&self, address: Address) {
        let _ = self.address.set(address);
    }

    /// The node: from memory, else through the cache (which loads it from the store).
    pub fn load(&self, cache: &NodeCache) -> IndexResult<Arc<Node>> {
        if let Some(node) = self.in_memory_node() {
            return Ok(node);
        }
        match self.address.get() {
            Some(address) => cache.get(address),
            None => unreachable!("a node reference holds neither node nor address"),
        }
    }

    /// Called once the node is in the store: hand it to the cache and drop the strong
    /// reference, so that memory is bounded by the cache. Without a store (or with a resident
    /// cache) the node stays in memory.
    pub fn mark_durable(&self, cache: &NodeCache) {
        let address = self.address();
        self.durable.store(true, AtomicOrdering::Release);
        if cache.store.is_some() && !cache.resident {
            let mut slot = self.node.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(node) = slot.take() {
                cache.insert(address, node);
            }
        }
    }
}

/// The heap bytes a value owns besides its inline size (an approximation for cache weights).
fn value_heap_bytes(v: &crate::value::Value) -> usize {
    use crate::value::Value;
    match v {
        Value::String(s) => s.len() + 16,
        Value::Bytes(b) => b.len() + 16,
        Value::BigInt(_) | Value::BigDec(_) => 48,
        Value::Tuple(vs) | Value::Set(vs) => {
            vs.iter().map(|x| std::mem::size_of::<Value>() + value_heap_bytes(x)).sum::<usize>() + 16
        }
        _ => 0,
    }
}

/// Resolves out-of-line values for a node read through a [`NodeCache`]: from the cache's
/// value cache, else from the store (checked against the reference). The first failure is
/// kept whole, so that the error names the value's key rather than only the node.
struct StoreRefs<'c> {
    cache: &'c NodeCache,
    node: Address,
    failure: RefCell<Option<IndexError>>,
}

impl ResolveRef for StoreRefs<'_> {
    fn resolve(&self, r: &ValueRef) -> Result<Value, String> {
        if let Some(value) = self.cache.values.get(&(r.hash, r.string)) {
            return Ok(value);
        }
        let key = r.key();
        let fail = |reason: String| {
            let reason = format!("{reason} (index node {} refers to it)", hex(&self.node));
            *self.failure.borrow_mut() = Some(IndexError::Store(StoreError::Corrupt { key: key.clone(), reason }));
            format!("value {key} does not resolve")
        };
        let Some(store) = &self.cache.store else {
            return Err(fail("an out-of-line value in an index without a store".into()));
        };
        let bytes = match store.get(&key) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(fail("the out-of-line value is missing from the store".into())),
            Err(e) => {
                let message = e.to_string();
                *self.failure.borrow_mut() = Some(IndexError::Store(e));
                return Err(message);
            }
        };
        let value = value_from_stored(r, &bytes).map_err(fail)?;
        self.cache.values.insert((r.hash, r.string), value.clone());
        self.cache.note_values_stored([r.hash]);
        Ok(value)
    }
}

/// Collects the keys of the out-of-line values a node refers to, without reading them
/// (garbage collection marks them reachable); every value decodes as `nil`.
#[derive(Default)]
pub(crate) struct CollectRefs {
    pub keys: RefCell<Vec<String>>,
}

impl ResolveRef for CollectRefs {
    fn resolve(&self, r: &ValueRef) -> Result<Value, String> {
        self.keys.borrow_mut().push(r.key());
        Ok(Value::Nil)
    }
}

#[derive(Clone)]
struct ValueWeighter;

impl quick_cache::Weighter<(ValueHash, bool), Value> for ValueWeighter {
    fn weight(&self, _: &(ValueHash, bool), value: &Value) -> u64 {
        u64::try_from(value_heap_bytes(value)).unwrap_or(u64::MAX).max(1)
    }
}

/// The out-of-line values this handle knows to be in the store, so that a flush does not
/// write them again, valid for one value of the store's garbage-collection epoch: a
/// collection may delete a value no retained commit reaches, which a later transaction may
/// bring back.
#[derive(Default)]
struct StoredValues {
    epoch: Option<Option<Vec<u8>>>,
    hashes: HashSet<ValueHash>,
}

/// How a [`NodeCache`] is bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheLimit {
    /// At most this many nodes (Datahike's `:store-cache-size`).
    Nodes(usize),
    /// At most about this many bytes of decoded nodes (see [`Node::approx_bytes`]).
    Bytes(u64),
}

/// A cached node and its weight under the cache's [`CacheLimit`], computed once.
#[derive(Clone)]
struct Cached {
    node: Arc<Node>,
    weight: u64,
}

#[derive(Clone)]
struct CachedWeighter;

impl quick_cache::Weighter<Address, Cached> for CachedWeighter {
    fn weight(&self, _: &Address, value: &Cached) -> u64 {
        value.weight
    }
}

/// A thread-safe LRU cache of decoded index nodes keyed by address, loading missing nodes
/// from the store. Shared by every index of a database (Datahike's `:store-cache-size`).
pub struct NodeCache {
    store: Option<Arc<dyn Store>>,
    nodes: quick_cache::sync::Cache<Address, Cached, CachedWeighter>,
    limit: CacheLimit,
    /// Nodes stay in memory once durable (a store in this process's memory: loading a node
    /// again would only decode a copy of what is already here).
    resident: bool,
    /// Node reads through the cache, and those that had to load the node from the store.
    lookups: std::sync::atomic::AtomicU64,
    loads: std::sync::atomic::AtomicU64,
    /// Nodes loaded ahead of a scan by [`NodeCache::prefetch`].
    prefetched: std::sync::atomic::AtomicU64,
    /// Out-of-line values read from the store, by hash and whether they are strings: the
    /// leaves of several indices that hold one datom share one read and one copy.
    values: quick_cache::sync::Cache<(ValueHash, bool), Value, ValueWeighter>,
    stored_values: Mutex<StoredValues>,
}

/// How a node cache has served reads, for monitoring: hits are `lookups - loads`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Node reads through the cache.
    pub lookups: u64,
    /// Of those, the ones that loaded the node from the store.
    pub loads: u64,
    /// Nodes loaded ahead of a scan, in batches.
    pub prefetched: u64,
    /// Nodes cached now.
    pub nodes: u64,
    /// Their weight: their number, or their approximate bytes under a byte bound.
    pub weight: u64,
}

impl NodeCache {
    /// Datahike's default `:store-cache-size`, in nodes.
    pub const DEFAULT_CAPACITY: usize = 1000;

    /// The default bound when the config names no `:store-cache-size`: 256 MiB of decoded
    /// nodes, in the range of other databases' default buffer pools, and about what Datahike's
    /// 1,000 nodes of up to 512 datoms hold.
    pub const DEFAULT_BYTES: u64 = 256 << 20;

    /// A cache of at most `capacity_nodes` nodes over `store` (`None` for a database that
    /// lives only in memory: its nodes are never dropped, so nothing needs loading).
    pub fn new(store: Option<Arc<dyn Store>>, capacity_nodes: usize) -> NodeCache {
        NodeCache::with_limit(store, CacheLimit::Nodes(capacity_nodes))
    }

    /// A cache bounded by `limit` over `store`.
    pub fn with_limit(store: Option<Arc<dyn Store>>, limit: CacheLimit) -> NodeCache {
        let limit = match limit {
            CacheLimit::Nodes(n) => CacheLimit::Nodes(n.max(1)),
            CacheLimit::Bytes(b) => CacheLimit::Bytes(b.max(1)),
        };
        let (estimated_items, weight_capacity) = match limit {
            CacheLimit::Nodes(n) => (n, u64::try_from(n).unwrap_or(u64::MAX)),
            // A leaf of 128 datoms weighs about 10 KiB.
            CacheLimit::Bytes(b) => (usize::try_from(b / 10_000).unwrap_or(usize::MAX).clamp(16, 1 << 20), b),
        };
        let nodes = quick_cache::sync::Cache::with_weighter(estimated_items, weight_capacity, CachedWeighter);
        NodeCache {
            store,
            nodes,
            limit,
            resident: false,
            lookups: Default::default(),
            loads: Default::default(),
            prefetched: Default::default(),
            values: quick_cache::sync::Cache::with_weighter(64, Self::VALUE_CACHE_BYTES, ValueWeighter),
            stored_values: Mutex::default(),
        }
    }

    /// How many bytes of out-of-line values the cache keeps (besides those its nodes hold).
    pub const VALUE_CACHE_BYTES: u64 = 128 << 20;

    /// Decodes the node stored under `address`, resolving its out-of-line values.
    pub(crate) fn decode(&self, address: &Address, bytes: &[u8]) -> IndexResult<Node> {
        let refs = StoreRefs { cache: self, node: *address, failure: RefCell::new(None) };
        Node::decode(address, bytes, &refs).map_err(|e| refs.failure.into_inner().unwrap_or(e))
    }

    /// Starts a flush under the store's garbage-collection epoch `epoch` (the bytes of its
    /// key): when a collection ran since the last call, values known to be stored may have
    /// been deleted, so none is known any more.
    pub fn begin_flush(&self, epoch: Option<&[u8]>) {
        let mut known = self.stored_values.lock().unwrap_or_else(PoisonError::into_inner);
        let epoch = Some(epoch.map(<[u8]>::to_vec));
        if known.epoch != epoch {
            known.hashes.clear();
            known.epoch = epoch;
        }
    }

    /// Whether the out-of-line value `hash` is known to be in the store.
    pub(crate) fn value_stored(&self, hash: &ValueHash) -> bool {
        self.stored_values.lock().unwrap_or_else(PoisonError::into_inner).hashes.contains(hash)
    }

    /// Records out-of-line values as stored.
    pub(crate) fn note_values_stored(&self, hashes: impl IntoIterator<Item = ValueHash>) {
        self.stored_values.lock().unwrap_or_else(PoisonError::into_inner).hashes.extend(hashes);
    }

    /// A cache whose nodes stay in memory after they are stored (for the memory backend);
    /// nodes of older versions, loaded from the store, still go through the LRU.
    pub fn resident(store: Arc<dyn Store>, limit: CacheLimit) -> NodeCache {
        NodeCache { resident: true, ..NodeCache::with_limit(Some(store), limit) }
    }

    /// The store nodes are loaded from.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// The bound of the cache.
    pub fn limit(&self) -> CacheLimit {
        self.limit
    }

    /// Number of nodes cached now.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The weight of the cached nodes: their number or their approximate bytes.
    pub fn weight(&self) -> u64 {
        self.nodes.weight()
    }

    /// How the cache has served reads so far.
    pub fn stats(&self) -> CacheStats {
        use std::sync::atomic::Ordering::Relaxed;
        CacheStats {
            lookups: self.lookups.load(Relaxed),
            loads: self.loads.load(Relaxed),
            prefetched: self.prefetched.load(Relaxed),
            nodes: u64::try_from(self.len()).unwrap_or(u64::MAX),
            weight: self.weight(),
        }
    }

    /// Whether no node is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every cached node (durable nodes are reloaded from the store on use).
    pub fn clear(&self) {
        self.nodes.clear();
    }

    fn cached(&self, node: Arc<Node>) -> Cached {
        let weight = match self.limit {
            CacheLimit::Nodes(_) => 1,
            CacheLimit::Bytes(_) => node.approx_bytes(),
        };
        Cached { node, weight }
    }

    pub(crate) fn insert(&self, address: Address, node: Arc<Node>) {
        self.nodes.insert(address, self.cached(node));
    }

    /// Whether the node at `address` is cached.
    pub(crate) fn contains(&self, address: &Address) -> bool {
        self.nodes.peek(address).is_some()
    }

    /// Whether a prefetch is worth its reads: the store answers many keys in one round trip.
    pub(crate) fn prefetches(&self) -> bool {
        self.store.as_ref().is_some_and(|s| s.prefers_batched_reads())
    }

    /// Loads the nodes at `addresses` that are not cached, in one [`Store::get_many`], into
    /// the cache. A node that is missing or does not decode is left for the read that needs
    /// it, which then reports it.
    pub(crate) fn prefetch(&self, addresses: &[Address]) {
        let Some(store) = &self.store else { return };
        let missing: Vec<Address> = addresses.iter().filter(|a| !self.contains(a)).copied().collect();
        if missing.len() < 2 {
            return;
        }
        let Ok(found) = store.get_many(&keys_of(&missing)) else { return };
        for (address, bytes) in missing.iter().zip(found) {
            if let Some(node) = bytes.and_then(|b| self.decode(address, &b).ok()) {
                self.insert(*address, Arc::new(node));
                self.prefetched.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn get(&self, address: &Address) -> IndexResult<Arc<Node>> {
        self.lookups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cached = self.nodes.get_or_insert_with(address, || {
            self.loads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let store = self.store.as_ref().ok_or_else(|| IndexError::MissingNode(hex(address)))?;
            let bytes = store.get(&node_key(address))?.ok_or_else(|| IndexError::MissingNode(hex(address)))?;
            Ok::<_, IndexError>(self.cached(Arc::new(self.decode(address, &bytes)?)))
        })?;
        Ok(cached.node)
    }
}

impl fmt::Debug for NodeCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCache")
            .field("has_store", &self.store.is_some())
            .field("len", &self.len())
            .field("limit", &self.limit)
            .finish()
    }
}

/// How many nodes garbage collection reads in one `get_many`.
const MARK_BATCH: usize = 256;

fn keys_of(addresses: &[Address]) -> Vec<String> {
    addresses.iter().map(node_key).collect()
}

/// Adds to `marked` the store key of every node reachable from `root` that is not in it yet,
/// and of every out-of-line value those nodes refer to (not read: garbage collection only
/// needs their keys), reading nodes from `store` (not through a cache: garbage collection
/// must see what is stored). A subtree whose root is already marked is skipped, so marking
/// many versions that share structure reads each shared node once. A missing node is an
/// error naming it.
pub(crate) fn mark_reachable(
    root: &Address,
    store: &dyn crate::store::Store,
    marked: &mut std::collections::HashSet<String>,
) -> IndexResult<()> {
    // Level by level, each level's unmarked nodes in one `get_many`: a remote store then pays
    // a round trip per level and batch, not per node.
    let mut level = vec![*root];
    while !level.is_empty() {
        let unmarked: Vec<Address> = level.drain(..).filter(|a| !marked.contains(&node_key(a))).collect();
        for chunk in unmarked.chunks(MARK_BATCH) {
            let keys = keys_of(chunk);
            let found = store.get_many(&keys)?;
            for ((address, key), bytes) in chunk.iter().zip(keys).zip(found) {
                if marked.contains(&key) {
                    continue;
                }
                let bytes = bytes.ok_or_else(|| IndexError::CorruptNode {
                    address: hex(address),
                    reason: "it is reachable from a retained commit but missing from the store".into(),
                })?;
                let refs = CollectRefs::default();
                if let Node::Branch(b) = Node::decode(address, &bytes, &refs)? {
                    level.extend(b.children.iter().map(|c| c.address()));
                }
                marked.extend(refs.keys.into_inner());
                marked.insert(key);
            }
        }
    }
    Ok(())
}
