//! Node packs: the index nodes written by one `put_batch`, in one pack, for the file store and
//! for any key-value store (through [`super::packed::PackedStore`]).
//!
//! An index flush writes a thousand or more small nodes at once. As one file each, the flush
//! costs an inode, a directory entry and a rename per node, and on ext4 that dominates the
//! flush; as one object each on S3, it costs a request per node. A pack holds them all in one
//! file or object, written whole and durably before it has its final name: after a crash a
//! pack is whole or absent.
//!
//! ```text
//! [8]  magic "DHRSPCK1"
//! ...  the nodes' bytes, one after another
//! [32 per node] index: address u128, offset u64, length u32, crc32 of the bytes u32
//! [24] footer: index offset u64, node count u32, crc32 of the index u32, magic "DHRSPEND"
//! ```
//!
//! (integers little endian). Where packs live is a [`PackMedium`]: a directory of files
//! (`file::PackDir`) or keys under `nodepacks/` of a store (`packed::KvPacks`). Everything
//! else is here, once: a handle keeps every pack's index in memory, loaded on first use (one
//! read of a pack's tail), reads a node by its byte range, and lists the packs again when a
//! node is not where it expects: another handle may have written a pack, or rewritten one
//! without the nodes that garbage collection deleted. Deleting nodes rewrites each pack that
//! holds any of them without them, and compaction merges small packs of similar size (one pack
//! per flush would otherwise pile up): the new pack is durable before the old ones are
//! removed, so a crash in between leaves some nodes in two packs, which is harmless, as a
//! node's bytes are fixed by its address.

use super::{ByteRange, StoreError, StoreResult, WriterGuard};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockWriteGuard};

/// The directory (file store) or key prefix (key-value store) of the packs.
pub(super) const PACKS_DIR: &str = "nodepacks";
const PACK_SUFFIX: &str = ".pack";
const HEAD_MAGIC: &[u8; 8] = b"DHRSPCK1";
const FOOT_MAGIC: &[u8; 8] = b"DHRSPEND";
const INDEX_ENTRY_BYTES: usize = 32;
const FOOTER_BYTES: usize = 24;
/// Bytes read from the end of a pack to load its index: the footer and, for packs of up to
/// about 2,000 nodes, the whole index, in one read (one request on an object store).
const TAIL_READ_BYTES: u64 = 64 << 10;
/// How many packs of one size class are merged into one (see [`Packs::compact`]).
const COMPACT_FANIN: usize = 8;
/// Packs of this size or more are left as they are by compaction.
const COMPACT_MAX_BYTES: u64 = 16 << 20;
/// Nodes of one pack at most this far apart are read in one range by [`Packs::get_many`]:
/// on an object store a request costs more than reading this many bytes more.
const COALESCE_GAP_BYTES: u64 = 64 << 10;
/// The longest range [`Packs::get_many`] reads at once.
const SPAN_MAX_BYTES: u64 = 4 << 20;
/// Listings a refresh tries before it gives up on packs that keep changing.
const REFRESH_ATTEMPTS: usize = 16;

/// Where the packs of a store live. Pack names are made by [`Packs`]; a medium only stores
/// them. Every method may be called from several threads at once.
pub(super) trait PackMedium: Send + Sync + 'static {
    /// How errors name pack `name` (a path, a key).
    fn describe(&self, name: &str) -> String;
    /// The names of the packs there are now (whole ones only: never a pack being written).
    fn list(&self) -> StoreResult<Vec<String>>;
    /// Bytes `range` of pack `name`; `None` when the pack no longer exists.
    fn read(&self, name: &str, range: ByteRange) -> StoreResult<Option<Vec<u8>>>;
    /// Several [`PackMedium::read`]s, answered in order; a remote medium sends them at once.
    fn read_many(&self, reads: &[(Arc<str>, ByteRange)]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        reads.iter().map(|(name, range)| self.read(name, *range)).collect()
    }
    /// All bytes of pack `name`; `None` when it no longer exists.
    fn read_all(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Stores `bytes` as pack `name`, durably and atomically: whole or not at all, and not
    /// listed before it is whole.
    fn write(&self, name: &str, bytes: Vec<u8>) -> StoreResult<()>;
    /// Removes the packs; absent ones are ignored.
    fn remove(&self, names: &[String]) -> StoreResult<()>;
    /// Blocks until this process is the only one rewriting packs (deleting nodes or
    /// compacting); held until the guard drops.
    fn lock_rewrites(&self) -> StoreResult<WriterGuard>;
    /// Pack `name` is gone: drop whatever is kept of it (an open file).
    fn forget(&self, name: &str) {
        let _ = name;
    }
}

/// The 32 lowercase hex digits of a node key, if `key` is one.
pub(super) fn node_hex(key: &str) -> Option<&str> {
    let hex = key.strip_prefix("nodes/")?;
    let is_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    (hex.len() == 32 && hex.as_bytes().iter().all(is_hex)).then_some(hex)
}

/// The address of a node key, if `key` is one.
pub(super) fn node_address(key: &str) -> Option<u128> {
    u128::from_str_radix(node_hex(key)?, 16).ok()
}

/// The key of the node at `address`.
pub(super) fn node_key(address: u128) -> String {
    format!("nodes/{address:032x}")
}

/// Whether `prefix` can match keys under `key_start` (or `key_start` itself).
pub(super) fn prefix_overlaps(prefix: &str, key_start: &str) -> bool {
    prefix.starts_with(key_start) || key_start.starts_with(prefix)
}

/// Whether `name` names a whole pack (not a temporary, whose names contain `~`).
pub(super) fn is_pack_name(name: &str) -> bool {
    name.ends_with(PACK_SUFFIX) && !name.contains('~') && !name.contains('/')
}

/// Where a node's bytes lie in its pack.
#[derive(Clone, Copy, Debug)]
struct PackEntry {
    address: u128,
    offset: u64,
    len: u32,
    crc: u32,
}

/// One pack as loaded: its name, its index sorted by address, and its size.
struct Pack {
    name: Arc<str>,
    entries: Vec<PackEntry>,
    bytes: u64,
}

impl Pack {
    fn entry(&self, address: u128) -> Option<PackEntry> {
        let at = self.entries.binary_search_by_key(&address, |e| e.address).ok()?;
        self.entries.get(at).copied()
    }
}

#[derive(Default)]
struct PackState {
    /// Whether the packs have been listed once.
    loaded: bool,
    next_no: u32,
    packs: HashMap<u32, Pack>,
    by_name: HashMap<Arc<str>, u32>,
    /// The pack of each node address (one of them, should a crash have left two).
    index: HashMap<u128, u32>,
}

impl PackState {
    /// Registers a loaded or written pack, once: a refresh may have loaded a pack this handle
    /// was registering after writing it.
    fn add(&mut self, pack: Pack) {
        if self.by_name.contains_key(&pack.name) {
            return;
        }
        let no = self.next_no;
        self.next_no = self.next_no.wrapping_add(1);
        for entry in &pack.entries {
            self.index.insert(entry.address, no);
        }
        self.by_name.insert(pack.name.clone(), no);
        self.packs.insert(no, pack);
    }

    fn rebuild_index(&mut self) {
        self.index.clear();
        for (no, pack) in &self.packs {
            for entry in &pack.entries {
                self.index.insert(entry.address, *no);
            }
        }
    }

    /// The packs compaction merges next: [`COMPACT_FANIN`] or more below
    /// [`COMPACT_MAX_BYTES`] in one size class (the class of the fewest bytes when several
    /// qualify). Classified by size alone; only the chosen group's indices are copied.
    fn compaction_group(&self) -> Option<Vec<PackRef>> {
        let mut classes: HashMap<u32, Vec<(u32, u64)>> = HashMap::new();
        for (no, pack) in &self.packs {
            if pack.bytes < COMPACT_MAX_BYTES {
                classes.entry(size_class(pack.bytes)).or_default().push((*no, pack.bytes));
            }
        }
        let mut group = classes
            .into_values()
            .filter(|g| g.len() >= COMPACT_FANIN)
            .min_by_key(|g| g.iter().map(|(_, bytes)| bytes).sum::<u64>())?;
        group.sort_unstable();
        Some(group.iter().filter_map(|(no, _)| Some(PackRef::of(*no, self.packs.get(no)?))).collect())
    }
}

/// The packs of one store, as one handle sees them, on medium `M`.
pub(super) struct Packs<M: PackMedium> {
    medium: M,
    state: RwLock<PackState>,
    /// Held by deletes and compactions, which replace packs, one at a time.
    rewriting: Mutex<()>,
}

fn corrupt(what: String, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt { key: what, reason: reason.into() }
}

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn le_u128(bytes: &[u8], at: usize) -> Option<u128> {
    Some(u128::from_le_bytes(bytes.get(at..at + 16)?.try_into().ok()?))
}

/// A pack name unique among processes and handles, ordered by creation time.
fn pack_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos:024x}-{:08x}-{:06x}{PACK_SUFFIX}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The bytes of a pack holding `nodes`, and its index.
fn encode_pack(nodes: &[(u128, &[u8])]) -> StoreResult<(Vec<u8>, Vec<PackEntry>)> {
    let data_len: usize = nodes.iter().map(|(_, bytes)| bytes.len()).sum();
    let mut out = Vec::with_capacity(HEAD_MAGIC.len() + data_len + nodes.len() * INDEX_ENTRY_BYTES + FOOTER_BYTES);
    out.extend_from_slice(HEAD_MAGIC);
    let mut entries = Vec::with_capacity(nodes.len());
    // A node given twice (identical nodes of two indices in one flush) is stored once: bytes
    // no index entry points at would be freed only by the pack's next rewrite.
    let mut seen = HashSet::with_capacity(nodes.len());
    for (address, bytes) in nodes {
        if !seen.insert(*address) {
            continue;
        }
        let len = u32::try_from(bytes.len()).map_err(|_| {
            StoreError::Invalid(format!("node {address:032x} of {} bytes exceeds the 4 GiB limit", bytes.len()))
        })?;
        entries.push(PackEntry { address: *address, offset: to_u64(out.len()), len, crc: crc(bytes) });
        out.extend_from_slice(bytes);
    }
    entries.sort_unstable_by_key(|e| e.address);
    let index_offset = to_u64(out.len());
    let index_start = out.len();
    for e in &entries {
        out.extend_from_slice(&e.address.to_le_bytes());
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.len.to_le_bytes());
        out.extend_from_slice(&e.crc.to_le_bytes());
    }
    let index_crc = crc(out.get(index_start..).unwrap_or_default());
    let count = u32::try_from(entries.len()).map_err(|_| StoreError::Invalid("too many nodes in one pack".into()))?;
    out.extend_from_slice(&index_offset.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&index_crc.to_le_bytes());
    out.extend_from_slice(FOOT_MAGIC);
    Ok((out, entries))
}

/// Reads the index of pack `name` from its tail; `None` when the pack no longer exists.
fn load_pack<M: PackMedium>(medium: &M, name: &str) -> StoreResult<Option<Pack>> {
    let Some(tail) = medium.read(name, ByteRange::Last(TAIL_READ_BYTES))? else { return Ok(None) };
    // A tail shorter than asked for is the whole pack.
    let whole = to_u64(tail.len()) < TAIL_READ_BYTES;
    let what = || medium.describe(name);
    if whole && tail.len() < HEAD_MAGIC.len() + FOOTER_BYTES {
        return Err(corrupt(what(), format!("a pack of {} bytes is shorter than its header and footer", tail.len())));
    }
    let footer = tail.get(tail.len().saturating_sub(FOOTER_BYTES)..).unwrap_or_default();
    let bad_footer = || corrupt(what(), "bad pack footer");
    if footer.get(16..) != Some(FOOT_MAGIC.as_slice()) {
        return Err(bad_footer());
    }
    let index_offset = le_u64(footer, 0).ok_or_else(bad_footer)?;
    let count = le_u32(footer, 8).ok_or_else(bad_footer)?;
    let index_crc = le_u32(footer, 12).ok_or_else(bad_footer)?;
    let index_len = u64::from(count) * to_u64(INDEX_ENTRY_BYTES);
    let size = index_offset.checked_add(index_len).and_then(|end| end.checked_add(to_u64(FOOTER_BYTES)));
    let size_fits = match size {
        Some(size) if whole => size == to_u64(tail.len()),
        Some(size) => size >= TAIL_READ_BYTES,
        None => false,
    };
    if index_offset < to_u64(HEAD_MAGIC.len()) || !size_fits {
        return Err(corrupt(what(), "pack footer does not match the file size"));
    }
    let size = size.unwrap_or_default();
    let index_bytes = usize::try_from(index_len).map_err(|_| bad_footer())?;
    let index: Vec<u8> = match (tail.len() - FOOTER_BYTES).checked_sub(index_bytes) {
        Some(start) => tail.get(start..tail.len() - FOOTER_BYTES).unwrap_or_default().to_vec(),
        None => match medium.read(name, ByteRange::At { offset: index_offset, len: index_len })? {
            Some(bytes) => bytes,
            None => return Ok(None),
        },
    };
    if index.len() != index_bytes || crc(&index) != index_crc {
        return Err(corrupt(what(), "pack index checksum mismatch"));
    }
    let mut entries = Vec::with_capacity(index.len() / INDEX_ENTRY_BYTES);
    for raw in index.chunks_exact(INDEX_ENTRY_BYTES) {
        let bad = || corrupt(what(), "bad pack index entry");
        let entry = PackEntry {
            address: le_u128(raw, 0).ok_or_else(bad)?,
            offset: le_u64(raw, 16).ok_or_else(bad)?,
            len: le_u32(raw, 24).ok_or_else(bad)?,
            crc: le_u32(raw, 28).ok_or_else(bad)?,
        };
        let in_bounds = entry.offset >= to_u64(HEAD_MAGIC.len())
            && entry.offset.checked_add(u64::from(entry.len)).is_some_and(|end| end <= index_offset);
        if !in_bounds || entries.last().is_some_and(|last: &PackEntry| last.address >= entry.address) {
            return Err(bad());
        }
        entries.push(entry);
    }
    Ok(Some(Pack { name: name.into(), entries, bytes: size }))
}

/// The outcome of reading a node from a pack.
enum Read {
    Found(Vec<u8>),
    /// The pack is gone: another handle rewrote or deleted it.
    PackGone,
}

impl<M: PackMedium> Packs<M> {
    pub(super) fn new(medium: M) -> Packs<M> {
        Packs { medium, state: RwLock::new(PackState::default()), rewriting: Mutex::new(()) }
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, PackState> {
        // Every change to the state is made whole under the lock before it is released.
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets every pack (the store was destroyed); the next use lists them again.
    pub(super) fn clear(&self) {
        let mut state = self.write_state();
        for name in state.by_name.keys() {
            self.medium.forget(name);
        }
        *state = PackState::default();
    }

    /// Loads the packs on first use.
    fn ensure_loaded(&self) -> StoreResult<()> {
        if self.state.read().unwrap_or_else(PoisonError::into_inner).loaded {
            return Ok(());
        }
        let mut state = self.write_state();
        if !state.loaded {
            self.refresh_locked(&mut state)?;
        }
        Ok(())
    }

    /// Brings the state in line with the medium: loads new packs, forgets vanished ones.
    fn refresh(&self) -> StoreResult<()> {
        let mut state = self.write_state();
        self.refresh_locked(&mut state)
    }

    fn refresh_locked(&self, state: &mut PackState) -> StoreResult<()> {
        // A pack listed but gone when it is read was replaced meanwhile by a rewrite, whose
        // new packs exist before the old ones go: listing again finds them.
        for _ in 0..REFRESH_ATTEMPTS {
            if self.refresh_once(state)? {
                return Ok(());
            }
        }
        Err(StoreError::Invalid(format!(
            "the packs in {} kept changing while being read ({REFRESH_ATTEMPTS} attempts)",
            self.medium.describe("")
        )))
    }

    /// One pass of [`Packs::refresh_locked`]; false when a listed pack vanished before it was
    /// read.
    fn refresh_once(&self, state: &mut PackState) -> StoreResult<bool> {
        let names = self.medium.list()?;
        let listed: HashSet<&str> = names.iter().map(String::as_str).collect();
        let vanished: Vec<u32> =
            state.by_name.iter().filter(|(name, _)| !listed.contains(&***name)).map(|(_, no)| *no).collect();
        for no in &vanished {
            if let Some(pack) = state.packs.remove(no) {
                state.by_name.remove(&pack.name);
                self.medium.forget(&pack.name);
            }
        }
        if !vanished.is_empty() {
            state.rebuild_index();
        }
        for name in names {
            if state.by_name.contains_key(name.as_str()) {
                continue;
            }
            match load_pack(&self.medium, &name)? {
                Some(pack) => state.add(pack),
                None => return Ok(false),
            }
        }
        state.loaded = true;
        Ok(true)
    }

    /// The node at `address` (store key `key`): from the pack this handle's state places it
    /// in, else from `elsewhere` (the file store's nodes of format 1), else after listing the
    /// packs again (another handle wrote or rewrote a pack since). `None` when it is nowhere.
    pub(super) fn get(
        &self,
        address: u128,
        key: &str,
        elsewhere: impl FnOnce() -> StoreResult<Option<Vec<u8>>>,
    ) -> StoreResult<Option<Vec<u8>>> {
        self.ensure_loaded()?;
        if let Some(Read::Found(bytes)) = self.try_get(address, key)? {
            return Ok(Some(bytes));
        }
        if let Some(bytes) = elsewhere()? {
            return Ok(Some(bytes));
        }
        // Twice: the pack may be rewritten again between the refresh and the read.
        for _ in 0..2 {
            self.refresh()?;
            match self.try_get(address, key)? {
                Some(Read::Found(bytes)) => return Ok(Some(bytes)),
                Some(Read::PackGone) => continue,
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The nodes `wanted` (address and store key), in order, as [`Packs::get`] would return
    /// each, in few reads: the nodes this handle places are grouped by pack, nodes lying close
    /// together in one pack are read as one range (a flush writes a pack's nodes in the order
    /// it visits the tree, so the leaves a scan needs next are mostly neighbours), and the
    /// ranges are read with one [`PackMedium::read_many`]. What that misses (a node in no
    /// known pack, a pack rewritten meanwhile) is read with [`Packs::get`].
    pub(super) fn get_many(
        &self,
        wanted: &[(u128, &str)],
        elsewhere: impl Fn(&str) -> StoreResult<Option<Vec<u8>>>,
    ) -> StoreResult<Vec<Option<Vec<u8>>>> {
        self.ensure_loaded()?;
        let located: Vec<Option<(Arc<str>, PackEntry)>> = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            wanted
                .iter()
                .map(|(address, _)| {
                    let pack = state.packs.get(state.index.get(address)?)?;
                    Some((pack.name.clone(), pack.entry(*address)?))
                })
                .collect()
        };
        let mut order: Vec<usize> = (0..wanted.len()).filter(|&i| located[i].is_some()).collect();
        order.sort_by(|&a, &b| {
            let (Some((pa, ea)), Some((pb, eb))) = (&located[a], &located[b]) else { return std::cmp::Ordering::Equal };
            pa.cmp(pb).then(ea.offset.cmp(&eb.offset))
        });
        // Spans of one pack: (pack, first byte, end, the wanted nodes in it).
        let mut spans: Vec<(Arc<str>, u64, u64, Vec<usize>)> = Vec::new();
        for i in order {
            let Some((name, entry)) = &located[i] else { continue };
            let end = entry.offset + u64::from(entry.len);
            match spans.last_mut() {
                Some((span_name, start, span_end, members))
                    if span_name == name
                        && entry.offset <= span_end.saturating_add(COALESCE_GAP_BYTES)
                        && end.saturating_sub(*start) <= SPAN_MAX_BYTES =>
                {
                    *span_end = (*span_end).max(end);
                    members.push(i);
                }
                _ => spans.push((name.clone(), entry.offset, end, vec![i])),
            }
        }
        let reads: Vec<(Arc<str>, ByteRange)> = spans
            .iter()
            .map(|(name, start, end, _)| (name.clone(), ByteRange::At { offset: *start, len: end - start }))
            .collect();
        let mut found: Vec<Option<Vec<u8>>> = vec![None; wanted.len()];
        for ((name, start, end, members), bytes) in spans.iter().zip(self.medium.read_many(&reads)?) {
            // A pack that is gone, or shorter than its index says: its nodes are read alone.
            let Some(bytes) = bytes.filter(|b| u64::try_from(b.len()).ok() == Some(end - start)) else { continue };
            for &i in members {
                let Some((_, entry)) = &located[i] else { continue };
                let at = usize::try_from(entry.offset - start).unwrap_or(usize::MAX);
                let node = bytes.get(at..at.saturating_add(entry.len as usize)).unwrap_or_default();
                if node.len() != entry.len as usize || crc(node) != entry.crc {
                    return Err(StoreError::Corrupt {
                        key: wanted[i].1.to_owned(),
                        reason: format!("checksum mismatch in pack {}", self.medium.describe(name)),
                    });
                }
                found[i] = Some(node.to_vec());
            }
        }
        found
            .into_iter()
            .zip(wanted)
            .map(|(node, (address, key))| match node {
                Some(bytes) => Ok(Some(bytes)),
                None => self.get(*address, key, || elsewhere(key)),
            })
            .collect()
    }

    fn try_get(&self, address: u128, key: &str) -> StoreResult<Option<Read>> {
        let (name, entry) = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            let Some(no) = state.index.get(&address).copied() else { return Ok(None) };
            let Some(pack) = state.packs.get(&no) else { return Ok(None) };
            let Some(entry) = pack.entry(address) else { return Ok(None) };
            (pack.name.clone(), entry)
        };
        let range = ByteRange::At { offset: entry.offset, len: u64::from(entry.len) };
        let Some(bytes) = self.medium.read(&name, range)? else { return Ok(Some(Read::PackGone)) };
        if u64::try_from(bytes.len()).ok() != Some(u64::from(entry.len)) || crc(&bytes) != entry.crc {
            return Err(StoreError::Corrupt {
                key: key.to_owned(),
                reason: format!("checksum mismatch in pack {}", self.medium.describe(&name)),
            });
        }
        Ok(Some(Read::Found(bytes)))
    }

    /// Which of `addresses` are stored now: in a pack that this handle knows and that still
    /// exists (a pack is never changed, only replaced by a rewrite under a new name and then
    /// removed, so a pack that exists holds every node its index lists). When a pack this
    /// handle places a node in is gone, the packs are listed again first.
    pub(super) fn stored(&self, addresses: impl Iterator<Item = u128>) -> StoreResult<HashSet<u128>> {
        self.ensure_loaded()?;
        let addresses: Vec<u128> = addresses.collect();
        for _ in 0..2 {
            let placed: Vec<(u128, Arc<str>)> = {
                let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
                addresses
                    .iter()
                    .filter_map(|a| {
                        let no = state.index.get(a)?;
                        Some((*a, state.packs.get(no)?.name.clone()))
                    })
                    .collect()
            };
            if placed.is_empty() {
                return Ok(HashSet::new());
            }
            let listed: HashSet<String> = self.medium.list()?.into_iter().collect();
            if placed.iter().all(|(_, name)| listed.contains(&**name)) {
                return Ok(placed.into_iter().map(|(a, _)| a).collect());
            }
            self.refresh()?;
        }
        // The packs kept changing: write them all again (harmless, a node's bytes are fixed
        // by its address).
        Ok(HashSet::new())
    }

    /// What deleting each of `addresses` frees in the packs there are now, in order: the
    /// node's bytes and its entry in the pack's index ([`INDEX_ENTRY_BYTES`]), in every pack
    /// holding it (a crash during a rewrite may have left a node in two); `None` when no pack
    /// holds it. A pack that loses its last node is removed, which also frees its header and
    /// footer (32 bytes); no single node is charged for those.
    pub(super) fn stored_sizes(&self, addresses: &[u128]) -> StoreResult<Vec<Option<u64>>> {
        let mut sizes: Vec<Option<u64>> = vec![None; addresses.len()];
        if addresses.is_empty() {
            return Ok(sizes);
        }
        // Listed now: another handle may have written, merged or rewritten packs since.
        self.refresh()?;
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let mut add = |at: usize, entry: &PackEntry| {
            if let Some(size) = sizes.get_mut(at) {
                *size = Some(size.unwrap_or(0) + u64::from(entry.len) + to_u64(INDEX_ENTRY_BYTES));
            }
        };
        let entries: usize = state.packs.values().map(|pack| pack.entries.len()).sum();
        if addresses.len().saturating_mul(state.packs.len()) <= entries {
            // Few addresses: a binary search in each pack's index.
            for pack in state.packs.values() {
                for (at, address) in addresses.iter().enumerate() {
                    if let Some(entry) = pack.entry(*address) {
                        add(at, &entry);
                    }
                }
            }
        } else {
            // Many: one pass over every index.
            let mut wanted: HashMap<u128, Vec<usize>> = HashMap::with_capacity(addresses.len());
            for (at, address) in addresses.iter().enumerate() {
                wanted.entry(*address).or_default().push(at);
            }
            for pack in state.packs.values() {
                for entry in &pack.entries {
                    for &at in wanted.get(&entry.address).map_or(&[][..], Vec::as_slice) {
                        add(at, entry);
                    }
                }
            }
        }
        Ok(sizes)
    }

    /// Every node address in the packs there are now.
    pub(super) fn addresses(&self) -> StoreResult<Vec<u128>> {
        let mut state = self.write_state();
        self.refresh_locked(&mut state)?;
        Ok(state.index.keys().copied().collect())
    }

    /// Those of `nodes` that are not stored yet. Nodes stored already are final (a node's
    /// bytes are fixed by its address); "stored" is checked against the medium, not against
    /// what this handle once listed: garbage collection in another process may have deleted
    /// them since (see [`Packs::stored`]).
    pub(super) fn unstored<'a>(&self, mut nodes: Vec<(u128, &'a [u8])>) -> StoreResult<Vec<(u128, &'a [u8])>> {
        let stored = self.stored(nodes.iter().map(|(address, _)| *address))?;
        nodes.retain(|(address, _)| !stored.contains(address));
        Ok(nodes)
    }

    /// Writes `nodes` as one new pack, durably, then merges small packs.
    pub(super) fn write(&self, nodes: &[(u128, &[u8])]) -> StoreResult<()> {
        if nodes.is_empty() {
            return Ok(());
        }
        let pack = self.write_pack(nodes)?;
        self.write_state().add(pack);
        // Compaction only keeps the number of packs down: the nodes are durable, and a
        // compaction that fails (a full disk, another process's rewrite in the way) is tried
        // again after the next write.
        let _ = self.compact();
        Ok(())
    }

    /// Writes `nodes` as a new pack.
    fn write_pack(&self, nodes: &[(u128, &[u8])]) -> StoreResult<Pack> {
        let (bytes, entries) = encode_pack(nodes)?;
        let name = pack_name();
        let size = to_u64(bytes.len());
        self.medium.write(&name, bytes)?;
        Ok(Pack { name: name.into(), entries, bytes: size })
    }

    /// Removes the nodes at `addresses` from every pack holding one: each such pack is
    /// rewritten without them (or removed when nothing else is in it).
    pub(super) fn delete(&self, addresses: &HashSet<u128>) -> StoreResult<()> {
        if addresses.is_empty() {
            return Ok(());
        }
        let _rewriting = self.rewriting.lock().unwrap_or_else(PoisonError::into_inner);
        let _other_processes = self.medium.lock_rewrites()?;
        self.refresh()?;
        let groups: Vec<Vec<PackRef>> = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            let mut affected: Vec<PackRef> = state
                .packs
                .iter()
                .filter(|(_, pack)| pack.entries.iter().any(|e| addresses.contains(&e.address)))
                .map(|(no, pack)| PackRef::of(*no, pack))
                .collect();
            affected.sort_unstable_by_key(|p| p.no);
            affected.into_iter().map(|p| vec![p]).collect()
        };
        self.rewrite(&groups, addresses)
    }

    /// Merges small packs of similar size, so that a store does not collect one pack per
    /// flush forever: whenever [`COMPACT_FANIN`] packs below [`COMPACT_MAX_BYTES`] fall in one
    /// size class (powers of 8), they become one pack of the next class. Each node is thus
    /// rewritten about log8(store size / flush size) times over its life.
    pub(super) fn compact(&self) -> StoreResult<()> {
        // Nothing to merge among the packs this handle knows: no lock taken (on an object
        // store a lock costs requests).
        if self.state.read().unwrap_or_else(PoisonError::into_inner).compaction_group().is_none() {
            return Ok(());
        }
        let _rewriting = self.rewriting.lock().unwrap_or_else(PoisonError::into_inner);
        let _other_processes = self.medium.lock_rewrites()?;
        // Packs another process rewrote since this handle last looked are not merged again.
        self.refresh()?;
        loop {
            let group = self.state.read().unwrap_or_else(PoisonError::into_inner).compaction_group();
            let Some(group) = group else { return Ok(()) };
            self.rewrite(&[group], &HashSet::new())?;
        }
    }

    /// Replaces each group of packs by one new pack of their nodes less `doomed` (none when no
    /// node is left). The new packs are durable before any old pack is removed. The caller
    /// holds `rewriting` and the medium's rewrite lock; readers of this handle go on meanwhile
    /// from the old packs.
    fn rewrite(&self, groups: &[Vec<PackRef>], doomed: &HashSet<u128>) -> StoreResult<()> {
        let mut written = Vec::new();
        for group in groups {
            let mut contents = Vec::with_capacity(group.len());
            for pack in group {
                match self.medium.read_all(&pack.name)? {
                    Some(bytes) => contents.push(bytes),
                    // Gone since the refresh under the lock: only a crashed process's leftover
                    // handling could do that; its nodes are in the pack that replaced it.
                    None => {
                        return Err(StoreError::Invalid(format!(
                            "pack {} vanished while being rewritten; try again",
                            self.medium.describe(&pack.name)
                        )))
                    }
                }
            }
            let mut seen = HashSet::new();
            let mut survivors: Vec<(u128, &[u8])> = Vec::new();
            for (pack, bytes) in group.iter().zip(&contents) {
                for entry in pack.entries.iter() {
                    if doomed.contains(&entry.address) || !seen.insert(entry.address) {
                        continue;
                    }
                    let start = usize::try_from(entry.offset).unwrap_or(usize::MAX);
                    let blob = start
                        .checked_add(usize::try_from(entry.len).unwrap_or(usize::MAX))
                        .and_then(|end| bytes.get(start..end))
                        .filter(|blob| crc(blob) == entry.crc)
                        .ok_or_else(|| {
                            corrupt(
                                self.medium.describe(&pack.name),
                                format!("node {:032x}: checksum mismatch while rewriting", entry.address),
                            )
                        })?;
                    survivors.push((entry.address, blob));
                }
            }
            if !survivors.is_empty() {
                written.push(self.write_pack(&survivors)?);
            }
        }
        // Every survivor is durable in a new pack: the old packs may go.
        let old: Vec<String> = groups.iter().flatten().map(|pack| pack.name.to_string()).collect();
        self.medium.remove(&old)?;
        let mut state = self.write_state();
        for pack in groups.iter().flatten() {
            // A refresh in between may have forgotten it already.
            if state.by_name.get(&pack.name) == Some(&pack.no) {
                state.by_name.remove(&pack.name);
                state.packs.remove(&pack.no);
            }
            self.medium.forget(&pack.name);
        }
        for pack in written {
            state.add(pack);
        }
        state.rebuild_index();
        Ok(())
    }
}

/// A pack as a rewrite sees it: a copy of its index, taken under the state lock.
struct PackRef {
    no: u32,
    name: Arc<str>,
    entries: Vec<PackEntry>,
}

impl PackRef {
    fn of(no: u32, pack: &Pack) -> PackRef {
        PackRef { no, name: pack.name.clone(), entries: pack.entries.clone() }
    }
}

/// The size class of a pack of `bytes` bytes: floor(log8(bytes)).
fn size_class(bytes: u64) -> u32 {
    bytes.checked_ilog2().unwrap_or(0) / 3
}
