//! Pack files: the index nodes written by one `put_batch` of the file store, in one file.
//!
//! An index flush writes a thousand or more small nodes at once. As one file each, the flush
//! costs an inode, a directory entry and a rename per node, and on ext4 that dominates the
//! flush. A pack holds them all in one file, written through a temporary, `fdatasync`'d,
//! renamed into `nodepacks/` and the directory `fsync`'d: after a crash a pack is whole or absent.
//!
//! ```text
//! [8]  magic "DHRSPCK1"
//! ...  the nodes' bytes, one after another
//! [32 per node] index: address u128, offset u64, length u32, crc32 of the bytes u32
//! [24] footer: index offset u64, node count u32, crc32 of the index u32, magic "DHRSPEND"
//! ```
//!
//! (integers little endian). A handle keeps every pack's index in memory, loaded on first use,
//! and looks again at the directory when a node is not where it expects: another handle may
//! have written a pack, or rewritten one without the nodes that garbage collection deleted.
//! Deleting nodes rewrites each pack that holds any of them without them, and compaction
//! merges small packs of similar size (one pack per flush would otherwise pile up): the new
//! pack is durable before the old ones are unlinked, so a crash in between leaves some nodes
//! in two packs, which is harmless, as a node's bytes are fixed by its address.

use super::file::{dir_names, io_error, sync_dir, to_u64, write_atomically};
use super::{StoreError, StoreResult};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockWriteGuard};

/// The directory of the packs, under the store root.
pub(super) const PACKS_DIR: &str = "nodepacks";
const PACK_SUFFIX: &str = ".pack";
/// Locked by the process rewriting packs (see [`Packs::lock_rewrites`]).
const REWRITE_LOCK_FILE: &str = "PACKS.LOCK";
const HEAD_MAGIC: &[u8; 8] = b"DHRSPCK1";
const FOOT_MAGIC: &[u8; 8] = b"DHRSPEND";
const INDEX_ENTRY_BYTES: usize = 32;
const FOOTER_BYTES: usize = 24;
/// Open pack files kept between reads; reads of further packs open and close their file.
const OPEN_FILES_MAX: usize = 128;
/// How many packs of one size class are merged into one (see [`Packs::compact`]).
const COMPACT_FANIN: usize = 8;
/// Packs of this size or more are left as they are by compaction.
const COMPACT_MAX_BYTES: u64 = 16 << 20;
/// Directory listings a refresh tries before it gives up on a directory that keeps changing.
const REFRESH_ATTEMPTS: usize = 16;

/// Where a node's bytes lie in its pack.
#[derive(Clone, Copy, Debug)]
struct PackEntry {
    address: u128,
    offset: u64,
    len: u32,
    crc: u32,
}

/// One pack file as loaded: its name, its index sorted by address, and its size.
struct Pack {
    name: String,
    /// `dir/name`, made once: every read of a node names it.
    path: Arc<Path>,
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
    /// Whether the directory has been read once.
    loaded: bool,
    next_no: u32,
    packs: HashMap<u32, Pack>,
    by_name: HashMap<String, u32>,
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
}

/// The packs of one store directory, as one handle sees them.
pub(super) struct Packs {
    dir: PathBuf,
    state: RwLock<PackState>,
    files: Mutex<HashMap<u32, Arc<File>>>,
    /// Held by deletes and compactions, which replace packs, one at a time.
    rewriting: Mutex<()>,
}

fn corrupt(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt { key: path.display().to_string(), reason: reason.into() }
}

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
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
    for (address, bytes) in nodes {
        let len = u32::try_from(bytes.len()).map_err(|_| {
            StoreError::Invalid(format!("node {address:032x} of {} bytes exceeds the 4 GiB limit", bytes.len()))
        })?;
        entries.push(PackEntry { address: *address, offset: to_u64(out.len()), len, crc: crc(bytes) });
        out.extend_from_slice(bytes);
    }
    entries.sort_unstable_by_key(|e| e.address);
    entries.dedup_by_key(|e| e.address);
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

/// Reads the index of the pack at `path`; `None` when the file no longer exists.
fn load_pack(path: &Path, name: &str) -> StoreResult<Option<Pack>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io_error(path)(err)),
    };
    let size = file.metadata().map_err(io_error(path))?.len();
    let min = to_u64(HEAD_MAGIC.len() + FOOTER_BYTES);
    if size < min {
        return Err(corrupt(path, format!("a pack of {size} bytes is shorter than its header and footer")));
    }
    let mut footer = [0u8; FOOTER_BYTES];
    file.read_exact_at(&mut footer, size - to_u64(FOOTER_BYTES)).map_err(io_error(path))?;
    let bad_footer = || corrupt(path, "bad pack footer");
    if footer.get(16..) != Some(FOOT_MAGIC.as_slice()) {
        return Err(bad_footer());
    }
    let index_offset = le_u64(&footer, 0).ok_or_else(bad_footer)?;
    let count = le_u32(&footer, 8).ok_or_else(bad_footer)?;
    let index_crc = le_u32(&footer, 12).ok_or_else(bad_footer)?;
    let index_len = u64::from(count) * to_u64(INDEX_ENTRY_BYTES);
    if index_offset < to_u64(HEAD_MAGIC.len())
        || index_offset.checked_add(index_len) != Some(size - to_u64(FOOTER_BYTES))
    {
        return Err(corrupt(path, "pack footer does not match the file size"));
    }
    let mut index = vec![0u8; usize::try_from(index_len).map_err(|_| bad_footer())?];
    file.read_exact_at(&mut index, index_offset).map_err(io_error(path))?;
    if crc(&index) != index_crc {
        return Err(corrupt(path, "pack index checksum mismatch"));
    }
    let mut entries = Vec::with_capacity(index.len() / INDEX_ENTRY_BYTES);
    for raw in index.chunks_exact(INDEX_ENTRY_BYTES) {
        let bad = || corrupt(path, "bad pack index entry");
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
    Ok(Some(Pack { name: name.to_owned(), path: path.into(), entries, bytes: size }))
}

/// The outcome of reading a node from a pack file.
enum Read {
    Found(Vec<u8>),
    /// The pack file is gone: another handle rewrote or deleted it.
    PackGone,
}

impl Packs {
    pub(super) fn new(root: &Path) -> Packs {
        Packs {
            dir: root.join(PACKS_DIR),
            state: RwLock::new(PackState::default()),
            files: Mutex::new(HashMap::new()),
            rewriting: Mutex::new(()),
        }
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, PackState> {
        // Every change to the state is made whole under the lock before it is released.
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Loads the packs of the directory on first use.
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

    /// Brings the state in line with the directory: loads new packs, forgets vanished ones.
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
            self.dir.display()
        )))
    }

    /// One pass of [`Packs::refresh_locked`]; false when a listed pack vanished before it was
    /// read.
    fn refresh_once(&self, state: &mut PackState) -> StoreResult<bool> {
        let names = self.pack_names()?;
        let on_disk: HashSet<&String> = names.iter().collect();
        let vanished: Vec<u32> =
            state.by_name.iter().filter(|(name, _)| !on_disk.contains(name)).map(|(_, no)| *no).collect();
        for no in &vanished {
            if let Some(pack) = state.packs.remove(no) {
                state.by_name.remove(&pack.name);
            }
            self.files.lock().unwrap_or_else(PoisonError::into_inner).remove(no);
        }
        if !vanished.is_empty() {
            state.rebuild_index();
        }
        for name in names {
            if state.by_name.contains_key(&name) {
                continue;
            }
            match load_pack(&self.dir.join(&name), &name)? {
                Some(pack) => state.add(pack),
                None => return Ok(false),
            }
        }
        state.loaded = true;
        Ok(true)
    }

    /// The names of the pack files in the directory (none when it does not exist yet).
    fn pack_names(&self) -> StoreResult<Vec<String>> {
        let mut names = dir_names(&self.dir)?;
        names.retain(|name| name.ends_with(PACK_SUFFIX) && !name.contains('~'));
        Ok(names)
    }

    /// The node at `address` where this handle's state places it; `None` when the state
    /// places it nowhere or in a pack that is gone (the caller then tries
    /// [`Packs::get_refreshed`]).
    pub(super) fn get(&self, address: u128, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.ensure_loaded()?;
        if let Some(Read::Found(bytes)) = self.try_get(address, key)? {
            return Ok(Some(bytes));
        }
        Ok(None)
    }

    /// Like [`Packs::get`] but after looking at the directory again: for a node that the
    /// state of this handle does not (or no longer correctly) place.
    pub(super) fn get_refreshed(&self, address: u128, key: &str) -> StoreResult<Option<Vec<u8>>> {
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

    fn try_get(&self, address: u128, key: &str) -> StoreResult<Option<Read>> {
        let (no, path, entry) = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            let Some(no) = state.index.get(&address).copied() else { return Ok(None) };
            let Some(pack) = state.packs.get(&no) else { return Ok(None) };
            let Some(entry) = pack.entry(address) else { return Ok(None) };
            (no, pack.path.clone(), entry)
        };
        let file = match self.file(no, &path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Some(Read::PackGone)),
            Err(err) => return Err(io_error(&path)(err)),
        };
        // A kept-open pack that another handle has since unlinked (rewritten without deleted
        // nodes) must not be read: it may hold nodes that are gone, and closing it frees its
        // space.
        if file.metadata().map_err(io_error(&path))?.nlink() == 0 {
            self.files.lock().unwrap_or_else(PoisonError::into_inner).remove(&no);
            return Ok(Some(Read::PackGone));
        }
        let mut bytes = vec![0u8; usize::try_from(entry.len).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut bytes, entry.offset).map_err(io_error(&path))?;
        if crc(&bytes) != entry.crc {
            return Err(StoreError::Corrupt {
                key: key.to_owned(),
                reason: format!("checksum mismatch in pack {}", path.display()),
            });
        }
        Ok(Some(Read::Found(bytes)))
    }

    /// The open file of pack `no`, opened now if it is not kept open.
    fn file(&self, no: u32, path: &Path) -> io::Result<Arc<File>> {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(file) = files.get(&no) {
            return Ok(file.clone());
        }
        let file = Arc::new(File::open(path)?);
        if files.len() < OPEN_FILES_MAX {
            files.insert(no, file.clone());
        }
        Ok(file)
    }

    /// Which of `addresses` are stored now: in a pack that this handle knows and that still
    /// exists (a pack is never changed, only replaced by a rewrite under a new name and then
    /// unlinked, so a pack file that exists holds every node its index lists). When a pack
    /// this handle places a node in is gone, the directory is read again first.
    pub(super) fn stored(&self, addresses: impl Iterator<Item = u128>) -> StoreResult<HashSet<u128>> {
        self.ensure_loaded()?;
        let addresses: Vec<u128> = addresses.collect();
        for _ in 0..2 {
            let placed: Vec<(u128, Arc<Path>)> = {
                let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
                addresses
                    .iter()
                    .filter_map(|a| {
                        let no = state.index.get(a)?;
                        Some((*a, state.packs.get(no)?.path.clone()))
                    })
                    .collect()
            };
            let mut live: HashMap<Arc<Path>, bool> = HashMap::new();
            for (_, path) in &placed {
                if !live.contains_key(path) {
                    live.insert(path.clone(), path.exists());
                }
            }
            if live.values().all(|exists| *exists) {
                return Ok(placed.into_iter().map(|(a, _)| a).collect());
            }
            self.refresh()?;
        }
        // The directory kept changing: write them all again (harmless, a node's bytes are
        // fixed by its address).
        Ok(HashSet::new())
    }

    /// Every node address in the packs of the directory.
    pub(super) fn addresses(&self) -> StoreResult<Vec<u128>> {
        let mut state = self.write_state();
        self.refresh_locked(&mut state)?;
        Ok(state.index.keys().copied().collect())
    }

    /// Writes `nodes` as one new pack and makes it durable.
    pub(super) fn write(&self, nodes: &[(u128, &[u8])]) -> StoreResult<()> {
        if nodes.is_empty() {
            return Ok(());
        }
        let pack = self.write_pack(nodes)?;
        self.write_state().add(pack);
        Ok(())
    }

    /// Writes `nodes` as a new pack file through a temporary, `fdatasync`, rename and
    /// directory `fsync` (creating the directory of a format 1 store).
    fn write_pack(&self, nodes: &[(u128, &[u8])]) -> StoreResult<Pack> {
        let (bytes, entries) = encode_pack(nodes)?;
        let name = pack_name();
        let path = self.dir.join(&name);
        write_atomically(&path, &bytes)?;
        Ok(Pack { name, path: path.into(), entries, bytes: to_u64(bytes.len()) })
    }

    /// Removes the nodes at `addresses` from every pack holding one: each such pack is
    /// rewritten without them (or unlinked when nothing else is in it).
    pub(super) fn delete(&self, addresses: &HashSet<u128>) -> StoreResult<()> {
        let _rewriting = self.rewriting.lock().unwrap_or_else(PoisonError::into_inner);
        let _other_processes = self.lock_rewrites()?;
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
        let _rewriting = self.rewriting.lock().unwrap_or_else(PoisonError::into_inner);
        let _other_processes = self.lock_rewrites()?;
        // Packs another process rewrote since this handle last looked are not merged again.
        self.refresh()?;
        loop {
            let group: Vec<PackRef> = {
                let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
                // Classified by size alone; only the chosen group's indices are copied.
                let mut classes: HashMap<u32, Vec<(u32, u64)>> = HashMap::new();
                for (no, pack) in &state.packs {
                    if pack.bytes < COMPACT_MAX_BYTES {
                        classes.entry(size_class(pack.bytes)).or_default().push((*no, pack.bytes));
                    }
                }
                let Some(mut group) = classes
                    .into_values()
                    .filter(|g| g.len() >= COMPACT_FANIN)
                    .min_by_key(|g| g.iter().map(|(_, bytes)| bytes).sum::<u64>())
                else {
                    return Ok(());
                };
                group.sort_unstable();
                group.iter().filter_map(|(no, _)| Some(PackRef::of(*no, state.packs.get(no)?))).collect()
            };
            self.rewrite(&[group], &HashSet::new())?;
        }
    }

    /// Serialises rewrites (deletes and compactions) across processes: a `flock` on
    /// `PACKS.LOCK` beside `nodepacks/`. Without it, two processes could merge the same packs, or one
    /// could merge a pack that the other is rewriting without the nodes a collection deleted
    /// (bringing purged bytes back).
    fn lock_rewrites(&self) -> StoreResult<RewriteLock> {
        let path = self.dir.parent().unwrap_or(&self.dir).join(REWRITE_LOCK_FILE);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error(&path))?;
        file.lock().map_err(io_error(&path))?;
        Ok(RewriteLock(file))
    }

    /// Replaces each group of packs by one new pack of their nodes less `doomed` (none when no
    /// node is left). The new packs are durable before any old pack is unlinked. The caller
    /// holds `rewriting`; readers of this handle go on meanwhile from the old packs.
    fn rewrite(&self, groups: &[Vec<PackRef>], doomed: &HashSet<u128>) -> StoreResult<()> {
        let mut written = Vec::new();
        for group in groups {
            let mut contents = Vec::with_capacity(group.len());
            for pack in group {
                let path = self.dir.join(&pack.name);
                match fs::read(&path) {
                    Ok(bytes) => contents.push((path.clone(), bytes)),
                    // Gone since the refresh under the lock: only a crashed process's leftover
                    // handling could do that; its nodes are in the pack that replaced it.
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {
                        return Err(StoreError::Invalid(format!(
                            "pack {} vanished while being rewritten; try again",
                            path.display()
                        )))
                    }
                    Err(err) => return Err(io_error(&path)(err)),
                }
            }
            let mut seen = HashSet::new();
            let mut survivors: Vec<(u128, &[u8])> = Vec::new();
            for (pack, (path, bytes)) in group.iter().zip(&contents) {
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
                            corrupt(path, format!("node {:032x}: checksum mismatch while rewriting", entry.address))
                        })?;
                    survivors.push((entry.address, blob));
                }
            }
            if !survivors.is_empty() {
                written.push(self.write_pack(&survivors)?);
            }
        }
        // Every survivor is durable in a new pack: the old packs may go.
        let mut unlinked = false;
        for pack in groups.iter().flatten() {
            let path = self.dir.join(&pack.name);
            match fs::remove_file(&path) {
                Ok(()) => unlinked = true,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(io_error(&path)(err)),
            }
        }
        if unlinked {
            sync_dir(&self.dir)?;
        }
        let mut state = self.write_state();
        for pack in groups.iter().flatten() {
            // A refresh in between may have forgotten it already.
            if state.by_name.get(&pack.name) == Some(&pack.no) {
                state.by_name.remove(&pack.name);
                state.packs.remove(&pack.no);
            }
            self.files.lock().unwrap_or_else(PoisonError::into_inner).remove(&pack.no);
        }
        for pack in written {
            state.add(pack);
        }
        state.rebuild_index();
        Ok(())
    }
}

/// Held while this process rewrites packs; unlocked when dropped (or when the file closes).
struct RewriteLock(File);

impl Drop for RewriteLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// A pack as a rewrite sees it: a copy of its index, taken under the state lock.
struct PackRef {
    no: u32,
    name: String,
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
