//! The `:file` backend: a directory with index nodes in pack files, one file per other key,
//! and append-only log segments, every write fsync'd before it returns.
//!
//! Layout under the store directory:
//!
//! ```text
//! FORMAT                    "datahike-rs file store\nformat 2\n"; present = this is a store
//! LOCK                      flock'd by the single writer (Store::lock_writer)
//! HEADS.LOCK                flock'd around each compare_and_set
//! PACKS.LOCK                flock'd by the process rewriting node packs (deletes, compaction)
//! nodepacks/<time>-<pid>-<n>.pack   keys nodes/<32 hex>: the index nodes of one put_batch
//! nodes/<2 hex>/<30 hex>    key nodes/<32 hex> as written by format 1 (read, never written)
//! heads/<escaped branch>    key heads/<branch>
//! kv/<escaped key>          every other key
//! log/<escaped log>/<first seq:020>.seg   log segments
//! ```
//!
//! A file name escapes each byte outside `[A-Za-z0-9._-]`, `/` included, and a leading `.`,
//! as `%XX`, so no key can name `..`, a hidden file or a path outside the store, and a key
//! maps to exactly one file. Temporary files contain `~`, which escaping never produces.
//! Pack files are described in the `pack` module. A store of format 1 (one file per node) is
//! read as it is and becomes format 2 when its first pack is written.
//!
//! Crash argument: a key's file is only ever replaced by renaming a fully written and fsync'd
//! temporary file over it, and the directory is fsync'd before the write returns, so after a
//! crash a key holds its old bytes, its new bytes or nothing. A log segment only grows by
//! writing a frame `[u32 length][u32 crc32 of seq and payload][u64 seq][payload]` (little
//! endian) right after the last one, followed by one `fdatasync`; a crash can leave only the
//! frame being written torn, at the end of the last segment. Frames are written into zeros
//! written ahead of them (see [`ZERO_AHEAD_BYTES`]), so zeros after the last frame end a
//! segment cleanly. Readers ignore a torn tail, and the next appender cuts it off first. A bad frame followed by a good one cannot come from a crash and is
//! reported as corruption. After any failed write the handle refuses further writes
//! ([`StoreError::Poisoned`]): after a failed fsync the kernel may have dropped the dirty pages,
//! so the state on the medium is unknown until the store is reopened and re-read.
//!
//! Media assumptions: `fsync`/`fdatasync` on a file and on a directory make its data and
//! entries durable, `rename` within a directory is atomic, `flock` works (not NFS). Keys are
//! case-sensitive, so the directory must be on a case-sensitive file system. A key whose
//! escaped name exceeds the file system's name limit (255 bytes on most) fails with an I/O
//! error naming the path.

use super::pack::{is_pack_name, node_address, node_hex, node_key, prefix_overlaps, PackMedium, Packs, PACKS_DIR};
use super::{AppendFailure, ByteRange, Store, StoreError, StoreResult, WriterGuard};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

const FORMAT_FILE: &str = "FORMAT";
const FORMAT_TITLE: &str = "datahike-rs file store";
const FORMAT_TEXT: &str = "datahike-rs file store\nformat 2\n";
/// The format before pack files: still read, and upgraded by the first pack written.
const FORMAT_TEXT_V1: &str = "datahike-rs file store\nformat 1\n";
const LOCK_FILE: &str = "LOCK";
const HEADS_LOCK_FILE: &str = "HEADS.LOCK";
const NODES_DIR: &str = "nodes";
const HEADS_DIR: &str = "heads";
const KV_DIR: &str = "kv";
const LOG_DIR: &str = "log";
const SEGMENT_SUFFIX: &str = ".seg";
/// Bytes of a log frame before its payload: length, crc32, sequence number.
const FRAME_HEADER_BYTES: usize = 16;
/// Zero bytes written after a frame that extends a segment, so that the next frames overwrite
/// allocated space: an `fdatasync` that need not record a new file size skips the file
/// system's journal commit, and runs about twice as fast as one after an append.
const ZERO_AHEAD_BYTES: usize = 256 << 10;
/// Files staged at once by `put_batch`, to stay far below the open-file limit.
const FILES_PER_CHUNK: usize = 256;

/// Batches of more files than this are made durable with one `syncfs` instead of an fsync
/// per file.
const SYNCFS_MIN_FILES: usize = 32;

/// The default size past which the active log segment is sealed and a new one started.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 32 << 20;

/// A store in a local directory. See the module documentation for the layout and guarantees.
///
/// Several handles on one directory, in one process or in several, may read concurrently;
/// writers are serialised by [`Store::lock_writer`].
pub struct FileStore {
    root: PathBuf,
    segment_bytes_max: u64,
    /// Set by the first failed write; from then on every write returns `Poisoned`.
    poison: OnceLock<String>,
    /// Serialises compare-and-set within the handle; the file is flock'd across handles.
    /// Opened on the first compare-and-set, so that opening a store writes nothing (a
    /// reader may open a read-only directory).
    heads_lock: Mutex<Option<File>>,
    /// The appender of each log this handle has appended to.
    appenders: Mutex<HashMap<String, Appender>>,
    /// Where this handle's last read of each log ended, so that a reader polling for new
    /// records reads only what was appended since (see [`ReadCursor`]).
    read_cursors: Mutex<HashMap<String, ReadCursor>>,
    /// An open `LOCK` file kept between writer locks, so a commit does not reopen it.
    lock_file: Arc<Mutex<Option<File>>>,
    /// The index nodes in pack files.
    packs: Packs<PackDir>,
    /// Whether `FORMAT` still says format 1 (no pack written yet).
    format_v1: AtomicBool,
}

/// What a handle knows of a log it appends to.
struct Appender {
    dir: PathBuf,
    active: Option<ActiveSegment>,
    last_seq: Option<u64>,
}

/// The last segment of a log, opened for writing.
struct ActiveSegment {
    file: File,
    path: PathBuf,
    /// Where its frames end as this handle left it: the next frame goes here.
    len: u64,
    /// Its file size as this handle left it: `len` plus the zeroed space written ahead. A
    /// different size on disk, or a frame at `len`, means another handle appended since and
    /// the appender must be reloaded.
    size: u64,
}

/// The end of the last record a `log_read` of this handle returned from a segment: a later
/// read for the records after it starts there instead of at the segment's start.
#[derive(Clone, Copy)]
struct ReadCursor {
    /// The segment, by its first sequence number.
    segment: u64,
    /// The byte offset right after the frame of record `seq`.
    offset: u64,
    seq: u64,
}

/// One decoded log frame: its sequence number and where its payload lies in the segment.
struct Frame {
    seq: u64,
    payload: Range<usize>,
}

/// Holds a `flock` until dropped.
struct FlockGuard<'a>(&'a File);

impl Drop for FlockGuard<'_> {
    fn drop(&mut self) {
        // Unlocking a held flock cannot fail on a valid descriptor; should it, the lock is
        // released anyway when the descriptor closes.
        let _ = self.0.unlock();
    }
}

/// The writer lock: an open `LOCK` file, flock'd; dropping it unlocks it and hands the file
/// back to the store handle for the next lock, or closes it.
struct FileWriterGuard(Option<File>, Option<Arc<Mutex<Option<File>>>>);

impl Drop for FileWriterGuard {
    fn drop(&mut self) {
        if let Some(file) = self.0.take() {
            let _ = file.unlock();
            if let Some(slot) = &self.1 {
                let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
                if slot.is_none() {
                    *slot = Some(file);
                }
            }
        }
    }
}

/// A closure wrapping an `io::Error` into a [`StoreError::Io`] naming `path`.
fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// Whether `byte` may stand for itself in a file name (except as a leading `.`).
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-')
}

/// `name` as a file name: bytes outside `[A-Za-z0-9._-]`, and a leading `.`, become `%XX`.
fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (idx, &byte) in name.as_bytes().iter().enumerate() {
        if is_plain(byte) && !(idx == 0 && byte == b'.') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The name that [`escape`] maps to `file_name`, if `file_name` is exactly such an image.
fn unescape(file_name: &str) -> Option<String> {
    let bytes = file_name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while let Some(&byte) = bytes.get(idx) {
        if byte == b'%' {
            let hex = std::str::from_utf8(bytes.get(idx + 1..idx + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            idx += 3;
        } else if is_plain(byte) {
            out.push(byte);
            idx += 1;
        } else {
            return None;
        }
    }
    let name = String::from_utf8(out).ok()?;
    // Only the canonical spelling counts, so that one key is never listed twice.
    (escape(&name) == file_name).then_some(name)
}

/// A name for a temporary file, unique among processes and handles.
fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("~tmp.{}.{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Makes the entries of directory `dir` durable.
fn sync_dir(dir: &Path) -> StoreResult<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))
}

/// The bytes of `path`, or `None` when it does not exist.
fn read_optional(path: &Path) -> StoreResult<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_error(path)(err)),
    }
}

/// The length of the file at `path`, or `None` when there is none.
fn file_size(path: &Path) -> StoreResult<Option<u64>> {
    match fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => Ok(Some(metadata.len())),
        Ok(_) => Ok(None),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_error(path)(err)),
    }
}

/// The names in directory `dir`, or none when it does not exist.
fn dir_names(dir: &Path) -> StoreResult<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_error(dir)(err)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error(dir))?;
        // Names that are not UTF-8 are not ours.
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Creates `dir` and any missing ancestors, recording the parents whose entries changed.
fn ensure_dir(dir: &Path, known: &mut HashSet<PathBuf>, dirs_to_sync: &mut BTreeSet<PathBuf>) -> StoreResult<()> {
    if known.contains(dir) {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(current) = cursor {
        if current.is_dir() {
            break;
        }
        missing.push(current);
        cursor = current.parent();
    }
    for created in missing.into_iter().rev() {
        match fs::create_dir(created) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(io_error(created)(err)),
        }
        if let Some(parent) = created.parent() {
            dirs_to_sync.insert(parent.to_path_buf());
        }
    }
    known.insert(dir.to_path_buf());
    Ok(())
}

/// Writes `bytes` to `path` through a fsync'd temporary file and a rename, then fsyncs the
/// directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> StoreResult<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut dirs_to_sync = BTreeSet::new();
    ensure_dir(dir, &mut HashSet::new(), &mut dirs_to_sync)?;
    let temp = dir.join(temp_name());
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&temp)?;
        file.write_all(bytes)?;
        file.sync_data()
    })()
    .map_err(io_error(&temp))
    .and_then(|()| fs::rename(&temp, path).map_err(io_error(path)));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written?;
    dirs_to_sync.insert(dir.to_path_buf());
    dirs_to_sync.iter().try_for_each(|d| sync_dir(d))
}

/// The frame of `payload` with sequence number `seq`. The caller checked the length fits u32.
fn encode_frame(seq: u64, payload: &[u8], payload_len: u32) -> Vec<u8> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(payload);
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    frame.extend_from_slice(&payload_len.to_le_bytes());
    frame.extend_from_slice(&crc.finalize().to_le_bytes());
    frame.extend_from_slice(&seq.to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The frame at `offset` of `bytes`, if a whole frame with a matching checksum is there.
fn decode_frame(bytes: &[u8], offset: usize) -> Option<Frame> {
    let header = bytes.get(offset..offset.checked_add(FRAME_HEADER_BYTES)?)?;
    let word = |range: Range<usize>| header.get(range).and_then(|b| b.try_into().ok());
    let len = u32::from_le_bytes(word(0..4)?);
    let crc = u32::from_le_bytes(word(4..8)?);
    let seq_bytes: [u8; 8] = header.get(8..16)?.try_into().ok()?;
    let start = offset + FRAME_HEADER_BYTES;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    let payload = bytes.get(start..end)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq_bytes);
    hasher.update(payload);
    (hasher.finalize() == crc).then_some(Frame { seq: u64::from_le_bytes(seq_bytes), payload: start..end })
}

/// The frames of a segment and the length of its valid prefix.
///
/// Zero bytes after the last frame are space written ahead for the next frames and end the
/// segment cleanly. A bad frame that no good frame follows is a torn tail when `is_last` (a
/// crash while appending it) and ends the segment; anything else is corruption.
/// What [`scan_segment`] does with a damaged record that is not the torn end of the log.
#[derive(Clone, Copy)]
enum Damage {
    /// Skip it when every record it can have held is numbered at most this: the caller does
    /// not need them (the indices cover them). Records it needs stay an error.
    SkipThrough(u64),
    /// Skip it: the caller only needs to know where the good records are (to append after
    /// them, or to see whether any is left); readers decide whether the damage matters.
    Skip,
}

fn scan_segment(bytes: &[u8], path: &Path, is_last: bool, damage: Damage) -> StoreResult<(Vec<Frame>, usize)> {
    let mut frames: Vec<Frame> = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let last_seq = frames.last().map(|f| f.seq);
        match decode_frame(bytes, offset) {
            Some(frame) if last_seq.is_none_or(|last| frame.seq > last) => {
                offset = frame.payload.end;
                frames.push(frame);
            }
            _ => {
                let written_end = written_end(bytes);
                let next = next_good_frame(bytes, offset, written_end, last_seq);
                if written_end <= offset || (is_last && next.is_none()) {
                    break;
                }
                let corrupt = |reason: String| StoreError::Corrupt { key: path.display().to_string(), reason };
                let Some((next_offset, next_seq)) = next else {
                    return Err(corrupt(format!("bad log record at byte offset {offset}")));
                };
                match damage {
                    Damage::SkipThrough(covered) if next_seq > covered.saturating_add(1) => {
                        return Err(corrupt(format!(
                            "bad log record at byte offset {offset}, before record {next_seq}: records after {covered} are needed"
                        )));
                    }
                    Damage::SkipThrough(_) | Damage::Skip => {
                        tracing::warn!(
                            target: "datahike::store",
                            path = %path.display(),
                            offset,
                            next_seq,
                            "skipping a damaged log record that the indices already cover"
                        );
                        offset = next_offset;
                    }
                }
            }
        }
    }
    Ok((frames, offset))
}

/// Where the first good frame after `offset` (and later than `last_seq`) starts, and its
/// sequence number: after a damaged frame, the log goes on from there. (A good frame's
/// header is never all zeros, as the checksum of a zero sequence number is not zero.)
fn next_good_frame(bytes: &[u8], offset: usize, written_end: usize, last_seq: Option<u64>) -> Option<(usize, u64)> {
    (offset + 1..written_end).find_map(|start| {
        decode_frame(bytes, start).filter(|frame| last_seq.is_none_or(|last| frame.seq > last)).map(|f| (start, f.seq))
    })
}

/// The length of `bytes` without its trailing zero bytes.
fn written_end(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1)
}

/// The bytes of the segment at `path` from byte `start` on, and where they start: from the
/// beginning when the file is shorter than `start` (it was replaced).
fn read_from(path: &Path, start: u64) -> StoreResult<(u64, Vec<u8>)> {
    let whole = || fs::read(path).map(|bytes| (0, bytes)).map_err(io_error(path));
    if start == 0 {
        return whole();
    }
    let file = File::open(path).map_err(io_error(path))?;
    let len = file.metadata().map_err(io_error(path))?.len();
    let Some(rest) = len.checked_sub(start) else { return whole() };
    let mut bytes = vec![0u8; usize::try_from(rest).unwrap_or(usize::MAX)];
    file.read_exact_at(&mut bytes, start).map_err(io_error(path))?;
    Ok((start, bytes))
}

/// The segments of the log in `dir`, by first sequence number, ascending.
fn list_segments(dir: &Path) -> StoreResult<Vec<(u64, PathBuf)>> {
    let mut segments: Vec<(u64, PathBuf)> = dir_names(dir)?
        .into_iter()
        .filter_map(|name| {
            let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
            let first = (digits.len() == 20).then(|| digits.parse::<u64>().ok())??;
            Some((first, dir.join(name)))
        })
        .collect();
    segments.sort_unstable_by_key(|(first, _)| *first);
    Ok(segments)
}

impl FileStore {
    /// Appends `records` (ascending) to `log` as consecutive frames with one write and one
    /// `fdatasync`: all of them are durable when it returns `Ok`, none is acknowledged
    /// otherwise.
    fn append_records(&self, log: &str, records: &[(u64, &[u8])]) -> StoreResult<()> {
        self.check_writable()?;
        let (Some(&(first, _)), Some(&(last, _))) = (records.first(), records.last()) else { return Ok(()) };
        let mut frames = Vec::with_capacity(records.iter().map(|(_, r)| r.len() + FRAME_HEADER_BYTES).sum());
        let mut previous = None;
        for &(seq, record) in records {
            let Ok(payload_len) = u32::try_from(record.len()) else {
                return Err(StoreError::Invalid(format!(
                    "log {log}: a record of {} bytes exceeds the 4 GiB limit",
                    record.len()
                )));
            };
            if previous.is_some_and(|p| seq <= p) {
                return Err(StoreError::Invalid(format!("log {log}: records {seq} after {previous:?} out of order")));
            }
            previous = Some(seq);
            frames.extend_from_slice(&encode_frame(seq, record, payload_len));
        }
        let dir = self.log_dir(log)?;
        let mut appenders = self.appenders();
        let stale = match appenders.get(log) {
            Some(appender) => appender.is_stale(self.segment_bytes_max)?,
            None => true,
        };
        if stale {
            appenders.remove(log);
            let appender = self.writing(|| self.load_appender(&dir))?;
            appenders.insert(log.to_owned(), appender);
        }
        let Some(appender) = appenders.get_mut(log) else {
            return Err(StoreError::Invalid(format!("log {log}: appender vanished")));
        };
        if let Some(reached) = appender.last_seq.filter(|reached| first <= *reached) {
            return Err(StoreError::Conflict {
                key: super::log_key(log, first),
                reason: format!("log {log} already reached record {reached}: another writer committed first"),
            });
        }
        let segment_bytes_max = self.segment_bytes_max;
        let result = self.writing(|| appender.append(first, last, &frames, segment_bytes_max));
        if result.is_err() {
            appenders.remove(log);
        }
        result
    }

    /// Makes a new, empty store in directory `path`, which must be absent or empty.
    pub fn create(path: impl AsRef<Path>) -> StoreResult<Self> {
        let root = path.as_ref();
        if Self::exists(root) {
            return Err(StoreError::Invalid(format!("{} already holds a store", root.display())));
        }
        let created_root = match fs::read_dir(root) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(StoreError::Invalid(format!(
                        "cannot create a store in {}: the directory is not empty",
                        root.display()
                    )));
                }
                false
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(root).map_err(io_error(root))?;
                true
            }
            Err(err) => return Err(io_error(root)(err)),
        };
        for dir in [PACKS_DIR, HEADS_DIR, KV_DIR, LOG_DIR] {
            let dir = root.join(dir);
            fs::create_dir(&dir).map_err(io_error(&dir))?;
        }
        for lock in [LOCK_FILE, HEADS_LOCK_FILE] {
            let lock = root.join(lock);
            File::create(&lock).and_then(|f| f.sync_all()).map_err(io_error(&lock))?;
        }
        // The marker comes last and atomically: a directory with FORMAT is a complete store.
        sync_dir(root)?;
        write_atomically(&root.join(FORMAT_FILE), FORMAT_TEXT.as_bytes())?;
        if created_root {
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Self::open(root)
    }

    /// Opens the store in directory `path`.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        let root = path.as_ref().to_path_buf();
        let format_path = root.join(FORMAT_FILE);
        let not_a_store =
            || StoreError::Invalid(format!("{} is not a datahike file store (no {FORMAT_FILE} file)", root.display()));
        let format = read_optional(&format_path)?.ok_or_else(not_a_store)?;
        let format_v1 = format == FORMAT_TEXT_V1.as_bytes();
        if format != FORMAT_TEXT.as_bytes() && !format_v1 {
            if !format.starts_with(FORMAT_TITLE.as_bytes()) {
                return Err(not_a_store());
            }
            return Err(StoreError::Invalid(format!(
                "{} has an unsupported store format ({:?}); this build reads {:?} and {:?}",
                format_path.display(),
                String::from_utf8_lossy(&format),
                FORMAT_TEXT_V1,
                FORMAT_TEXT
            )));
        }
        Ok(FileStore {
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            poison: OnceLock::new(),
            heads_lock: Mutex::new(None),
            appenders: Mutex::new(HashMap::new()),
            read_cursors: Mutex::new(HashMap::new()),
            lock_file: Arc::new(Mutex::new(None)),
            packs: Packs::new(PackDir::new(&root)),
            format_v1: AtomicBool::new(format_v1),
            root,
        })
    }

    /// Whether directory `path` holds a store (has a `FORMAT` file).
    pub fn exists(path: impl AsRef<Path>) -> bool {
        path.as_ref().join(FORMAT_FILE).is_file()
    }

    /// Sets the size past which a log segment is sealed and the next append starts a new one.
    pub fn with_segment_bytes_max(mut self, bytes: u64) -> Self {
        self.segment_bytes_max = bytes;
        self
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Like [`Store::lock_writer`] but returns `None` instead of waiting when another holder
    /// has the lock.
    pub fn try_lock_writer(&self) -> StoreResult<Option<WriterGuard>> {
        let (file, path) = self.open_lock_file()?;
        match file.try_lock() {
            Ok(()) => Ok(Some(WriterGuard::new(Box::new(FileWriterGuard(Some(file), None))))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(err)) => Err(io_error(&path)(err)),
        }
    }

    /// A new open file description of `LOCK`: flock excludes other descriptions, even in this
    /// process, which is how two handles on one directory exclude each other.
    fn open_lock_file(&self) -> StoreResult<(File, PathBuf)> {
        let path = self.root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error(&path))?;
        Ok((file, path))
    }

    /// Makes everything written to the file system of the store durable (`syncfs`), including
    /// directory entries.
    fn sync_filesystem(&self) -> StoreResult<()> {
        let dir = File::open(&self.root).map_err(io_error(&self.root))?;
        rustix::fs::syncfs(&dir).map_err(|e| io_error(&self.root)(io::Error::from(e)))
    }

    /// The file of `key`.
    fn key_path(&self, key: &str) -> StoreResult<PathBuf> {
        if key.is_empty() {
            return Err(StoreError::Invalid(format!("empty key in store {}", self.root.display())));
        }
        if let Some(hex) = node_hex(key) {
            let (dir, file) = hex.split_at(2);
            return Ok(self.root.join(NODES_DIR).join(dir).join(file));
        }
        match key.strip_prefix("heads/").filter(|branch| !branch.is_empty()) {
            Some(branch) => Ok(self.root.join(HEADS_DIR).join(escape(branch))),
            None => Ok(self.root.join(KV_DIR).join(escape(key))),
        }
    }

    /// The directory of log `log`.
    fn log_dir(&self, log: &str) -> StoreResult<PathBuf> {
        if log.is_empty() {
            return Err(StoreError::Invalid(format!("empty log name in store {}", self.root.display())));
        }
        Ok(self.root.join(LOG_DIR).join(escape(log)))
    }

    fn check_writable(&self) -> StoreResult<()> {
        match self.poison.get() {
            Some(reason) => Err(StoreError::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    /// Runs a write; an I/O error in it poisons the handle.
    fn writing<T>(&self, write: impl FnOnce() -> StoreResult<T>) -> StoreResult<T> {
        self.check_writable()?;
        let result = write();
        if let Err(err @ StoreError::Io { .. }) = &result {
            let _ = self.poison.set(err.to_string());
        }
        result
    }

    fn appenders(&self) -> MutexGuard<'_, HashMap<String, Appender>> {
        // An appender is replaced whole or found stale and reloaded, so a panic elsewhere
        // cannot leave one inconsistent with the disk unnoticed.
        self.appenders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the state of the log in `dir` from disk: cuts a torn tail off its last segment and
    /// drops a last segment left empty by a crash, so that appends follow the last good record.
    fn load_appender(&self, dir: &Path) -> StoreResult<Appender> {
        let mut dirs_to_sync = BTreeSet::new();
        ensure_dir(dir, &mut HashSet::new(), &mut dirs_to_sync)?;
        dirs_to_sync.iter().try_for_each(|d| sync_dir(d))?;
        let mut segments = list_segments(dir)?;
        while let Some((_, path)) = segments.pop() {
            let bytes = fs::read(&path).map_err(io_error(&path))?;
            let (frames, valid_len) = scan_segment(&bytes, &path, true, Damage::Skip)?;
            let file = OpenOptions::new().read(true).write(true).open(&path).map_err(io_error(&path))?;
            if frames.is_empty() {
                drop(file);
                fs::remove_file(&path).map_err(io_error(&path))?;
                sync_dir(dir)?;
                continue;
            }
            // Zeros after the frames are kept as space to write into; a torn frame is cut off.
            let size = if written_end(&bytes) > valid_len {
                let len = to_u64(valid_len);
                file.set_len(len).and_then(|()| file.sync_all()).map_err(io_error(&path))?;
                len
            } else {
                to_u64(bytes.len())
            };
            let last_seq = frames.last().map(|f| f.seq);
            return Ok(Appender {
                dir: dir.to_path_buf(),
                active: Some(ActiveSegment { file, path, len: to_u64(valid_len), size }),
                last_seq,
            });
        }
        Ok(Appender { dir: dir.to_path_buf(), active: None, last_seq: None })
    }
}

impl Appender {
    /// Whether another handle has changed the log since this one last appended: the active
    /// segment's size differs from ours, a frame starts where ours end, or the segment is full
    /// and someone has already started the next one. (Nobody starts a segment after one that
    /// is not full, so a non-full active segment we left unchanged is still the last.)
    fn is_stale(&self, segment_bytes_max: u64) -> StoreResult<bool> {
        let Some(active) = &self.active else {
            return Ok(true);
        };
        let metadata = active.file.metadata().map_err(io_error(&active.path))?;
        // Unlinked by another handle (the log was cleared or deleted): appending to it would
        // write where nobody reads.
        if metadata.nlink() == 0 {
            return Ok(true);
        }
        let size = metadata.len();
        if size != active.size {
            return Ok(true);
        }
        if active.len < size {
            // A frame header is never all zeros (see `next_good_frame`).
            let mut header = [0u8; FRAME_HEADER_BYTES];
            let header_len = usize::try_from(size - active.len).unwrap_or(FRAME_HEADER_BYTES).min(FRAME_HEADER_BYTES);
            let header = &mut header[..header_len];
            active.file.read_exact_at(header, active.len).map_err(io_error(&active.path))?;
            if header.iter().any(|&b| b != 0) {
                return Ok(true);
            }
        }
        if active.len < segment_bytes_max {
            return Ok(false);
        }
        let segments = list_segments(&self.dir)?;
        Ok(segments.last().is_none_or(|(_, last)| *last != active.path))
    }

    /// Writes the frames of records `seq..=last`, starting a new segment first when there is
    /// none or the active one is full; one `fdatasync` of the segment (plus one of the
    /// directory for a new segment).
    ///
    /// A frame that fits into the zeros written ahead overwrites them; one that does not
    /// extends the file, followed by [`ZERO_AHEAD_BYTES`] of zeros for the next frames.
    fn append(&mut self, seq: u64, last: u64, frame: &[u8], segment_bytes_max: u64) -> StoreResult<()> {
        let full = self.active.as_ref().is_none_or(|active| active.len >= segment_bytes_max);
        if full {
            let path = self.dir.join(format!("{seq:020}{SEGMENT_SUFFIX}"));
            let file =
                OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(io_error(&path))?;
            sync_dir(&self.dir)?;
            self.active = Some(ActiveSegment { file, path, len: 0, size: 0 });
        }
        let Some(active) = self.active.as_mut() else {
            return Err(StoreError::Invalid("log appender has no active segment".to_owned()));
        };
        let end = active.len + to_u64(frame.len());
        let (write, size) = if end <= active.size {
            (active.file.write_all_at(frame, active.len), active.size)
        } else {
            let mut extended = Vec::with_capacity(frame.len() + ZERO_AHEAD_BYTES);
            extended.extend_from_slice(frame);
            extended.resize(frame.len() + ZERO_AHEAD_BYTES, 0);
            (active.file.write_all_at(&extended, active.len), end + to_u64(ZERO_AHEAD_BYTES))
        };
        write.and_then(|()| active.file.sync_data()).map_err(io_error(&active.path))?;
        active.size = size;
        active.len = end;
        self.last_seq = Some(last);
        Ok(())
    }
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("root", &self.root)
            .field("segment_bytes_max", &self.segment_bytes_max)
            .field("poisoned", &self.poison.get().is_some())
            .finish_non_exhaustive()
    }
}

/// Open pack files kept between reads; reads of further packs open and close their file.
const OPEN_PACKS_MAX: usize = 128;
/// Locked by the process rewriting packs (see [`PackMedium::lock_rewrites`]).
const PACKS_LOCK_FILE: &str = "PACKS.LOCK";

/// The node packs of a file store: files in `nodepacks/`, each written through a temporary,
/// `fdatasync`'d, renamed and the directory `fsync`'d; rewrites `flock` `PACKS.LOCK`.
pub(super) struct PackDir {
    dir: PathBuf,
    lock_path: PathBuf,
    /// Packs kept open, by name.
    files: Mutex<HashMap<String, Arc<File>>>,
}

impl PackDir {
    fn new(root: &Path) -> PackDir {
        PackDir { dir: root.join(PACKS_DIR), lock_path: root.join(PACKS_LOCK_FILE), files: Mutex::new(HashMap::new()) }
    }

    /// The open file of pack `name`, opened now if it is not kept open; `None` when it does
    /// not exist or was unlinked.
    fn open(&self, name: &str) -> StoreResult<Option<Arc<File>>> {
        let kept = self.files.lock().unwrap_or_else(PoisonError::into_inner).get(name).cloned();
        let file = match kept {
            Some(file) => file,
            None => {
                let path = self.dir.join(name);
                let file = match File::open(&path) {
                    Ok(file) => Arc::new(file),
                    Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(err) => return Err(io_error(&path)(err)),
                };
                let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
                if files.len() < OPEN_PACKS_MAX {
                    files.insert(name.to_owned(), file.clone());
                }
                file
            }
        };
        // A kept-open pack that another handle has since unlinked (rewritten without deleted
        // nodes) must not be read: it may hold nodes that are gone, and closing it frees its
        // space.
        let metadata = file.metadata().map_err(io_error(&self.dir.join(name)))?;
        if metadata.nlink() == 0 {
            self.forget(name);
            return Ok(None);
        }
        Ok(Some(file))
    }
}

/// Holds the `flock` on `PACKS.LOCK` until dropped (or until the file closes).
struct RewriteLock(File);

impl Drop for RewriteLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl PackMedium for PackDir {
    fn describe(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn list(&self) -> StoreResult<Vec<String>> {
        let mut names = dir_names(&self.dir)?;
        names.retain(|name| is_pack_name(name));
        Ok(names)
    }

    fn read(&self, name: &str, range: ByteRange) -> StoreResult<Option<Vec<u8>>> {
        let Some(file) = self.open(name)? else { return Ok(None) };
        let path = || self.dir.join(name);
        let (offset, len) = match range {
            ByteRange::At { offset, len } => (offset, len),
            ByteRange::Last(len) => {
                let size = file.metadata().map_err(io_error(&path()))?.len();
                (size.saturating_sub(len), len.min(size))
            }
        };
        let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut bytes, offset).map_err(io_error(&path()))?;
        Ok(Some(bytes))
    }

    fn read_all(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        read_optional(&self.dir.join(name))
    }

    fn write(&self, name: &str, bytes: Vec<u8>) -> StoreResult<()> {
        // Creates the directory of a format 1 store.
        write_atomically(&self.dir.join(name), &bytes)
    }

    fn remove(&self, names: &[String]) -> StoreResult<()> {
        let mut unlinked = false;
        for name in names {
            let path = self.dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => unlinked = true,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(io_error(&path)(err)),
            }
        }
        if unlinked {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Serialises rewrites (deletes and compactions) across processes: a `flock` on
    /// `PACKS.LOCK` beside `nodepacks/`. Without it, two processes could merge the same packs,
    /// or one could merge a pack that the other is rewriting without the nodes a collection
    /// deleted (bringing purged bytes back).
    fn lock_rewrites(&self) -> StoreResult<WriterGuard> {
        let path = &self.lock_path;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_error(path))?;
        file.lock().map_err(io_error(path))?;
        Ok(WriterGuard::new(Box::new(RewriteLock(file))))
    }

    fn forget(&self, name: &str) {
        self.files.lock().unwrap_or_else(PoisonError::into_inner).remove(name);
    }
}

impl Store for FileStore {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let path = self.key_path(key)?;
        let Some(address) = node_address(key) else {
            return read_optional(&path);
        };
        // A node of format 1 is a file of its own.
        self.packs.get(address, key, || read_optional(&path))
    }

    /// Apparent sizes (file lengths, not the blocks a file system allocates), which is what
    /// deleting the key takes off the store: for a node, its bytes and its 32-byte entry in
    /// the index of each pack holding it (a rewrite writes the pack again without both), plus
    /// its file if it is one of format 1; for any other key, the length of its file. A pack
    /// left without nodes is removed, which frees its 32 bytes of header and footer too; no
    /// key is charged for those. The log's segments and temporary files are not keys.
    fn stored_sizes(&self, keys: &[String]) -> StoreResult<Vec<Option<u64>>> {
        let addresses: Vec<u128> = keys.iter().filter_map(|key| node_address(key)).collect();
        let mut packed = self.packs.stored_sizes(&addresses)?.into_iter();
        // Only a store of format 1 has node files: no stat per node otherwise.
        let node_files = self.root.join(NODES_DIR).is_dir();
        keys.iter()
            .map(|key| {
                let path = self.key_path(key)?;
                let is_node = node_address(key).is_some();
                let in_packs = if is_node { packed.next().flatten() } else { None };
                let file = if is_node && !node_files { None } else { file_size(&path)? };
                Ok(match (in_packs, file) {
                    (None, None) => None,
                    (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
                })
            })
            .collect()
    }

    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        self.check_writable()?;
        let mut nodes: Vec<(u128, &[u8])> = Vec::new();
        let mut targets = Vec::with_capacity(entries.len());
        for (key, bytes) in entries {
            let path = self.key_path(key)?;
            match node_address(key) {
                Some(address) => nodes.push((address, bytes.as_slice())),
                None => targets.push((path, bytes.as_slice())),
            }
        }
        let nodes = self.packs.unstored(nodes)?;
        self.writing(|| {
            if !nodes.is_empty() {
                if self.format_v1.load(Ordering::Acquire) {
                    // Builds that read only format 1 would not find the nodes of a pack.
                    write_atomically(&self.root.join(FORMAT_FILE), FORMAT_TEXT.as_bytes())?;
                    self.format_v1.store(false, Ordering::Release);
                }
                self.packs.write(&nodes)?;
            }
            let mut known_dirs = HashSet::new();
            let mut dirs_to_sync = BTreeSet::new();
            // Large batches sync the whole file system once instead of every file: write all
            // temp files, syncfs, rename, syncfs. A file gets its final name only once its
            // bytes are durable, so a crash never leaves a torn file under a key.
            let whole_fs = targets.len() > SYNCFS_MIN_FILES;
            let mut renames: Vec<(PathBuf, &Path)> = Vec::new();
            for chunk in targets.chunks(FILES_PER_CHUNK) {
                let mut staged: Vec<(PathBuf, &Path, File)> = Vec::with_capacity(chunk.len());
                let result = (|| {
                    for (path, bytes) in chunk {
                        let dir = path.parent().unwrap_or(&self.root);
                        ensure_dir(dir, &mut known_dirs, &mut dirs_to_sync)?;
                        let temp = dir.join(temp_name());
                        let file =
                            OpenOptions::new().write(true).create_new(true).open(&temp).map_err(io_error(&temp))?;
                        staged.push((temp, path, file));
                        if let Some((temp, _, file)) = staged.last_mut() {
                            file.write_all(bytes).map_err(io_error(temp))?;
                        }
                    }
                    if whole_fs {
                        renames.extend(staged.drain(..).map(|(temp, path, _)| (temp, path)));
                        return Ok(());
                    }
                    // Sync after writing them all, so the kernel can write them back together.
                    for (temp, _, file) in &staged {
                        file.sync_data().map_err(io_error(temp))?;
                    }
                    for (temp, path, _) in &staged {
                        fs::rename(temp, path).map_err(io_error(path))?;
                        dirs_to_sync.insert(path.parent().unwrap_or(&self.root).to_path_buf());
                    }
                    staged.clear();
                    Ok(())
                })();
                if result.is_err() {
                    for (temp, _, _) in &staged {
                        let _ = fs::remove_file(temp);
                    }
                    for (temp, _) in &renames {
                        let _ = fs::remove_file(temp);
                    }
                }
                result?;
            }
            if whole_fs {
                self.sync_filesystem()?;
                for (temp, path) in &renames {
                    fs::rename(temp, path).map_err(io_error(path))?;
                }
                return self.sync_filesystem();
            }
            dirs_to_sync.iter().try_for_each(|d| sync_dir(d))
        })
    }

    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        self.check_writable()?;
        let paths = keys.iter().map(|key| self.key_path(key)).collect::<StoreResult<Vec<_>>>()?;
        let nodes: HashSet<u128> = keys.iter().filter_map(|key| node_address(key)).collect();
        self.writing(|| {
            if !nodes.is_empty() {
                self.packs.delete(&nodes)?;
            }
            let mut dirs_to_sync = BTreeSet::new();
            for path in &paths {
                match fs::remove_file(path) {
                    Ok(()) => {
                        dirs_to_sync.insert(path.parent().unwrap_or(&self.root).to_path_buf());
                    }
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(io_error(path)(err)),
                }
            }
            dirs_to_sync.iter().try_for_each(|d| sync_dir(d))
        })
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let mut keys = Vec::new();
        if prefix_overlaps(prefix, "nodes/") {
            let mut seen = HashSet::new();
            for address in self.packs.addresses()? {
                let key = node_key(address);
                if key.starts_with(prefix) {
                    seen.insert(address);
                    keys.push(key);
                }
            }
            let nodes = self.root.join(NODES_DIR);
            let is_hex = |name: &str, len: usize| {
                name.len() == len && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            };
            for dir in dir_names(&nodes)? {
                if !is_hex(&dir, 2) || !prefix_overlaps(prefix, &format!("nodes/{dir}")) {
                    continue;
                }
                for file in dir_names(&nodes.join(&dir))? {
                    let key = format!("nodes/{dir}{file}");
                    let fresh = node_address(&key).is_some_and(|address| !seen.contains(&address));
                    if is_hex(&file, 30) && fresh && key.starts_with(prefix) {
                        keys.push(key);
                    }
                }
            }
        }
        if prefix_overlaps(prefix, "heads/") {
            for name in dir_names(&self.root.join(HEADS_DIR))? {
                if let Some(branch) = unescape(&name).filter(|b| !b.is_empty()) {
                    let key = format!("heads/{branch}");
                    if key.starts_with(prefix) {
                        keys.push(key);
                    }
                }
            }
        }
        for name in dir_names(&self.root.join(KV_DIR))? {
            if let Some(key) = unescape(&name) {
                // Keys of the other two directories never live here; a file that decodes to
                // one is not ours.
                let elsewhere = node_hex(&key).is_some() || key.strip_prefix("heads/").is_some_and(|b| !b.is_empty());
                if !elsewhere && key.starts_with(prefix) {
                    keys.push(key);
                }
            }
        }
        Ok(keys)
    }

    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        self.check_writable()?;
        let path = self.key_path(key)?;
        let mut heads_lock = self.heads_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let lock_path = self.root.join(HEADS_LOCK_FILE);
        let file = match heads_lock.take() {
            Some(file) => file,
            None => OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
                .map_err(io_error(&lock_path))?,
        };
        let file = &*heads_lock.insert(file);
        file.lock().map_err(io_error(&lock_path))?;
        let _flock = FlockGuard(file);
        if read_optional(&path)?.as_deref() != expected {
            return Ok(false);
        }
        self.writing(|| write_atomically(&path, new))?;
        Ok(true)
    }

    fn log_append(&self, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
        self.append_records(log, &[(seq, record)])
    }

    fn log_append_many(&self, log: &str, records: &[(u64, &[u8])]) -> Result<(), AppendFailure> {
        self.append_records(log, records).map_err(|error| AppendFailure { appended: 0, error })
    }

    fn log_read(&self, log: &str, after: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        // Fast path for a writer catching up before each commit: when this handle appended
        // the last record and nobody has appended since, there is nothing newer to read.
        if let Some(appender) = self.appenders().get(log) {
            if appender.last_seq.is_some_and(|last| after >= last) && !appender.is_stale(self.segment_bytes_max)? {
                return Ok(Vec::new());
            }
        }
        let segments = list_segments(&self.log_dir(log)?)?;
        let cursor = self.read_cursors.lock().unwrap_or_else(PoisonError::into_inner).get(log).copied();
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut end: Option<ReadCursor> = None;
        for (idx, (first, path)) in segments.iter().enumerate() {
            let next_first = segments.get(idx + 1).map(|(first, _)| *first);
            // Segment `idx` holds sequence numbers below the next one's first: skip it
            // unpeeked when they are all `<= after`.
            if next_first.is_some_and(|next| next <= after.saturating_add(1)) {
                continue;
            }
            // A reader asking for what follows its last read starts where that read ended.
            let start = cursor.filter(|c| c.segment == *first && c.seq <= after).map_or(0, |c| c.offset);
            let (start, bytes) = match read_from(path, start) {
                Ok(read) => read,
                // Discarded since the listing, by a flush or a collection (which removes every
                // segment once a head covers them all). Segments go oldest first and only when
                // a head covers all their records, so the records read before this one are
                // covered too: they go, and the caller, whose next record is missing, reads the
                // head again (as with the default log, which skips records deleted meanwhile).
                Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    out.clear();
                    continue;
                }
                Err(e) => return Err(e),
            };
            let (frames, _) = scan_segment(&bytes, path, next_first.is_none(), Damage::SkipThrough(after))?;
            for frame in frames {
                end = Some(ReadCursor { segment: *first, offset: start + to_u64(frame.payload.end), seq: frame.seq });
                if frame.seq <= after {
                    continue;
                }
                if let Some(&(previous, _)) = out.last() {
                    if frame.seq <= previous {
                        return Err(StoreError::Corrupt {
                            key: path.display().to_string(),
                            reason: format!("log record {} follows record {previous}", frame.seq),
                        });
                    }
                }
                out.push((frame.seq, bytes.get(frame.payload).unwrap_or_default().to_vec()));
            }
        }
        if let Some(end) = end {
            self.read_cursors.lock().unwrap_or_else(PoisonError::into_inner).insert(log.to_owned(), end);
        }
        Ok(out)
    }

    fn log_discard(&self, log: &str, through: u64) -> StoreResult<()> {
        self.check_writable()?;
        let dir = self.log_dir(log)?;
        let segments = list_segments(&dir)?;
        self.writing(|| {
            let mut removed = false;
            // Oldest first, so a crash midway leaves a contiguous log; never the last segment.
            for pair in segments.windows(2) {
                let [(_, path), (next_first, _)] = pair else {
                    continue;
                };
                if *next_first > through.saturating_add(1) {
                    break;
                }
                match fs::remove_file(path) {
                    Ok(()) => removed = true,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(io_error(path)(err)),
                }
            }
            if removed {
                sync_dir(&dir)?;
            }
            Ok(())
        })
    }

    fn log_discard_all(&self, log: &str, through: u64) -> StoreResult<()> {
        self.log_discard(log, through)?;
        let dir = self.log_dir(log)?;
        let segments = list_segments(&dir)?;
        let Some((_, last)) = segments.last() else { return Ok(()) };
        let bytes = fs::read(last).map_err(io_error(last))?;
        let (frames, _) = scan_segment(&bytes, last, true, Damage::Skip)?;
        if frames.last().is_some_and(|f| f.seq > through) {
            return Ok(());
        }
        // Every record is covered: the last segment goes too. Appenders of other handles find
        // it unlinked and start a new one.
        let mut appenders = self.appenders();
        appenders.remove(log);
        self.writing(|| {
            for (_, path) in &segments {
                match fs::remove_file(path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(io_error(path)(err)),
                }
            }
            sync_dir(&dir)
        })
    }

    fn sweep_temporaries(&self) -> StoreResult<Vec<String>> {
        self.check_writable()?;
        let own = std::process::id().to_string();
        let is_stale = |name: &str, path: &Path| -> bool {
            // `~tmp.<pid>.<n>`: a temporary of a process that has exited is garbage; one of a
            // live process may be a write under way, unless it is an hour old.
            let pid = name.strip_prefix("~tmp.").and_then(|rest| rest.split('.').next()).unwrap_or("");
            let alive = pid == own || (!pid.is_empty() && Path::new("/proc").join(pid).exists());
            let old = fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(3600));
            !alive || old
        };
        let mut dirs = vec![self.root.join(HEADS_DIR), self.root.join(KV_DIR), self.root.join(PACKS_DIR)];
        for sub in dir_names(&self.root.join(NODES_DIR))? {
            dirs.push(self.root.join(NODES_DIR).join(sub));
        }
        let mut removed = Vec::new();
        self.writing(|| {
            for dir in &dirs {
                let mut any = false;
                for name in dir_names(dir)? {
                    let path = dir.join(&name);
                    if !name.contains('~') || !is_stale(&name, &path) {
                        continue;
                    }
                    match fs::remove_file(&path) {
                        Ok(()) => any = true,
                        Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                        Err(err) => return Err(io_error(&path)(err)),
                    }
                    let relative = path.strip_prefix(&self.root).unwrap_or(&path);
                    removed.push(relative.display().to_string());
                }
                if any {
                    sync_dir(dir)?;
                }
            }
            Ok(())
        })?;
        Ok(removed)
    }

    fn log_delete(&self, log: &str) -> StoreResult<()> {
        self.check_writable()?;
        let dir = self.log_dir(log)?;
        let mut appenders = self.appenders();
        appenders.remove(log);
        let segments = list_segments(&dir)?;
        self.writing(|| {
            for (_, path) in &segments {
                match fs::remove_file(path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(io_error(path)(err)),
                }
            }
            if !segments.is_empty() {
                sync_dir(&dir)?;
            }
            Ok(())
        })
    }

    fn log_is_current(&self, log: &str, last_seq: u64) -> StoreResult<bool> {
        match self.appenders().get(log) {
            Some(appender) if appender.last_seq == Some(last_seq) => Ok(!appender.is_stale(self.segment_bytes_max)?),
            _ => Ok(false),
        }
    }

    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        // Reuse the handle's open LOCK file when no other lock of this handle holds it (a
        // concurrent caller opens its own, whose flock then waits for ours).
        let cached = self.lock_file.lock().unwrap_or_else(PoisonError::into_inner).take();
        let (file, path) = match cached {
            Some(file) => (file, self.root.join(LOCK_FILE)),
            None => self.open_lock_file()?,
        };
        file.lock().map_err(io_error(&path))?;
        Ok(WriterGuard::new(Box::new(FileWriterGuard(Some(file), Some(self.lock_file.clone())))))
    }

    fn destroy(&self) -> StoreResult<()> {
        if !Self::exists(&self.root) {
            return Err(StoreError::Invalid(format!(
                "refusing to delete {}: it does not look like a store (no {FORMAT_FILE} file)",
                self.root.display()
            )));
        }
        // The marker goes first, so that a crash midway leaves no directory that claims to be
        // a store.
        let format_path = self.root.join(FORMAT_FILE);
        fs::remove_file(&format_path).map_err(io_error(&format_path))?;
        fs::remove_dir_all(&self.root).map_err(io_error(&self.root))?;
        if let Some(parent) = self.root.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

/// For `crate::fuzzing`: the segment scan of the file log over bytes that never were a file.
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing {
    use super::{decode_frame, scan_segment, Damage, StoreResult};
    use std::ops::Range;
    use std::path::Path;

    /// How a scan treats damage that is not the torn end of the log.
    #[derive(Clone, Copy, Debug)]
    pub(crate) enum DamageRule {
        /// Skip damaged records numbered at most this.
        SkipThrough(u64),
        /// Skip every damaged record.
        Skip,
    }

    /// A frame: its sequence number and where its payload lies.
    pub(crate) type FoundFrame = (u64, Range<usize>);

    /// Scans `bytes` as a segment: the frames found and the length of the valid prefix.
    pub(crate) fn scan(bytes: &[u8], is_last: bool, rule: DamageRule) -> StoreResult<(Vec<FoundFrame>, usize)> {
        let damage = match rule {
            DamageRule::SkipThrough(seq) => Damage::SkipThrough(seq),
            DamageRule::Skip => Damage::Skip,
        };
        let (frames, end) = scan_segment(bytes, Path::new("fuzz.log"), is_last, damage)?;
        Ok((frames.into_iter().map(|f| (f.seq, f.payload)).collect(), end))
    }

    /// The frame at `offset`, as the scan reads it.
    pub(crate) fn frame_at(bytes: &[u8], offset: usize) -> Option<FoundFrame> {
        decode_frame(bytes, offset).map(|f| (f.seq, f.payload))
    }
}
