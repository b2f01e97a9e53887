//! Export and import of a whole database, with its history and transaction times, in the
//! dump format of Datahike's `datahike.migrate`, so a database moves between any two
//! backends, and between Datahike and datahike-rs in both directions.
//!
//! ```
//! use datahike::{edn::read_str, migrate, Config};
//! let dir = tempfile::tempdir().unwrap();
//! let source = Config::memory("migrate-doc-source");
//! datahike::create_database(&source).unwrap();
//! let conn = datahike::connect(&source).unwrap();
//! conn.transact(&read_str(r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one}]"#).unwrap()).unwrap();
//! conn.transact(&read_str(r#"[{:name "Alice"}]"#).unwrap()).unwrap();
//! let dump = dir.path().join("dump");
//! migrate::export_db(&conn.db(), &dump, &migrate::ExportOptions::default()).unwrap();
//!
//! let target = Config::file(dir.path().join("db"));
//! datahike::create_database(&target).unwrap();
//! let copy = datahike::connect(&target).unwrap();
//! let report = migrate::import_db(&copy, &dump, &migrate::ImportOptions::default()).unwrap();
//! assert_eq!(report.tx_count, 2);
//! assert_eq!(copy.db().max_tx(), conn.db().max_tx());       // ids and instants preserved
//! copy.release().unwrap();
//! ```
//!
//! A dump is a directory (Datahike 0.8's format, `:datahike.migrate/format-version 1`):
//!
//! - `datoms-000001.cbor.gz`, `datoms-000002.cbor.gz`, ... (`.cbor` without compression):
//!   RFC 8742 CBOR sequences, one record `[e a v t added]` per item, values as boring's
//!   `:archival` profile writes them (see `value.rs`), [`DEFAULT_CHUNK_SIZE`] records per
//!   chunk, ordered by transaction (`:db/txInstant` first, then entity, attribute,
//!   retraction before assertion, value). Compressed chunks are gzip members of 1 MiB of
//!   records each, concatenated.
//! - `manifest.edn`, written last (temporary file, `fsync`, rename): the commit marker. It
//!   names each chunk with its record count and the SHA-256 of its uncompressed bytes, the
//!   counts, the source config, the schema and an order-independent digest of the records.
//!
//! [`import_db`] refuses a directory without a manifest, a chunk whose digest or count
//! differs, and a database that already holds transactions (unless [`ImportOptions::merge`]).
//! Into an empty database it preserves entity and transaction ids, every `:db/txInstant` and
//! transaction metadata, so the history read back is identical to the source's; it loads at
//! bulk speed (`Conn` bulk loads: one index flush per batch, no log sync per transaction) and
//! leaves a marker until it completes, so an interrupted import is reported by every later
//! `connect`. A single file is read as the older single-file dump (clj-cbor's `spit-all` of
//! datom vectors).

mod value;

pub use value::DumpValue;

use crate::attr_refs;
use crate::cbor::{self, Cbor, Decoder};
use crate::config::SchemaFlexibility;
use crate::conn::{BulkLoad, Conn};
use crate::datom::{Datom, DatomKey, IndexOrder, TX0};
use crate::db::{now_millis, Db};
use crate::edn::{pr_str, read_str, Edn, Keyword};
use crate::error::{Error, MigrateError, Result};
use crate::schema::{is_schema_attr, ValueType};
use crate::tx::TxOutcome;
use crate::value::{Eid, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The dump format version this build writes and the newest it reads.
pub const FORMAT_VERSION: i64 = 1;
/// Records per chunk file, as Datahike.
pub const DEFAULT_CHUNK_SIZE: usize = 100_000;
/// Records sorted in memory at a time by an export (each window costs one more scan).
pub const DEFAULT_SORT_BUFFER: usize = 1_000_000;
/// Uncompressed bytes per gzip member, as Datahike (1 MiB: +0.1% over one member).
const BLOCK_BYTES: usize = 1 << 20;
const MANIFEST: &str = "manifest.edn";

/// How chunks are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// `datoms-NNNNNN.cbor`
    None,
    /// `datoms-NNNNNN.cbor.gz` (the default)
    Gzip,
}

/// What a progress report counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Export: records written.
    Export,
    /// Import: records of the dump read and checked before anything is written.
    Verify,
    /// Import: records loaded.
    Import,
    /// `load-entities`: datoms loaded.
    Load,
}

/// A progress report: `done` of `total` records in `phase`.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// The phase.
    pub phase: Phase,
    /// Records done so far in this phase.
    pub done: u64,
    /// Records in this phase.
    pub total: u64,
}

/// Options of [`export_db`].
#[derive(Clone, Copy)]
pub struct ExportOptions<'a> {
    /// Every assertion and retraction (`true`) or the current datoms only; default: the
    /// database's `:keep-history?`.
    pub history: Option<bool>,
    /// Default gzip.
    pub compression: Compression,
    /// Records per chunk; default [`DEFAULT_CHUNK_SIZE`].
    pub chunk_size: usize,
    /// Records sorted in memory at a time; default [`DEFAULT_SORT_BUFFER`].
    pub sort_buffer: usize,
    /// Called after each chunk.
    pub progress: Option<&'a dyn Fn(&Progress)>,
}

impl Default for ExportOptions<'_> {
    fn default() -> Self {
        ExportOptions {
            history: None,
            compression: Compression::Gzip,
            chunk_size: DEFAULT_CHUNK_SIZE,
            sort_buffer: DEFAULT_SORT_BUFFER,
            progress: None,
        }
    }
}

/// What [`export_db`] wrote.
#[derive(Clone, Debug)]
pub struct ExportReport {
    /// Records written.
    pub datom_count: u64,
    /// Chunk files written.
    pub chunk_count: usize,
    /// Whether the dump holds history.
    pub history: bool,
    /// The manifest as written.
    pub manifest: Edn,
}

impl ExportReport {
    /// `{:datom-count n :chunks n :history? b}`.
    pub fn to_edn(&self) -> Edn {
        Edn::Map(vec![
            (Edn::kw("datom-count"), Edn::Int(self.datom_count as i64)),
            (Edn::kw("chunks"), Edn::Int(self.chunk_count as i64)),
            (Edn::kw("history?"), Edn::Bool(self.history)),
        ])
    }
}

/// Options of [`import_db`].
#[derive(Clone, Copy, Default)]
pub struct ImportOptions<'a> {
    /// Import into a database that already holds transactions, with fresh entity and
    /// transaction ids (`Conn::load_entities`), Datahike's `:merge? true`.
    pub merge: bool,
    /// Called after each chunk.
    pub progress: Option<&'a dyn Fn(&Progress)>,
    /// Transactions per durable batch of an import into an empty database (0: the default).
    pub batch_txs: usize,
}

/// What [`import_db`] loaded.
#[derive(Clone, Debug)]
pub struct ImportReport {
    /// Records loaded.
    pub datom_count: u64,
    /// Transactions loaded.
    pub tx_count: u64,
    /// The database's last transaction id afterwards.
    pub max_tx: Eid,
    /// Whether the source was a legacy single-file dump (no digests to verify).
    pub legacy: bool,
    /// Whether ids were remapped (merge) rather than preserved.
    pub merged: bool,
}

impl ImportReport {
    /// Datahike's report keys: `{:datom-count :tx-count :max-tx :verified? ...}`.
    pub fn to_edn(&self) -> Edn {
        Edn::Map(vec![
            (Edn::kw("datom-count"), Edn::Int(self.datom_count as i64)),
            (Edn::kw("tx-count"), Edn::Int(self.tx_count as i64)),
            (Edn::kw("max-tx"), Edn::Int(self.max_tx)),
            (Edn::kw("verified?"), if self.legacy { Edn::Nil } else { Edn::Bool(true) }),
            (Edn::kw("ids-preserved?"), Edn::Bool(!self.merged)),
            (Edn::kw("errors"), Edn::Vector(Vec::new())),
        ])
    }
}

// ------------------------------------------------------------------------ records

/// One record of a dump: `[e a v t added]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Entity id in the source.
    pub e: Eid,
    /// Attribute ident.
    pub a: Keyword,
    /// Value.
    pub v: DumpValue,
    /// Transaction id in the source.
    pub t: Eid,
    /// Assertion (`true`) or retraction.
    pub added: bool,
}

/// Appends the record's CBOR bytes.
fn encode_record(r: &Record, out: &mut Vec<u8>) -> std::result::Result<(), String> {
    out.push(0x85);
    cbor::write_int(out, r.e);
    value::write_keyword(out, r.a);
    match &r.v {
        DumpValue::Value(v) => value::write_value(out, v)?,
        DumpValue::SysRef(ident) => value::write_sysref(out, *ident),
    }
    cbor::write_int(out, r.t);
    out.push(if r.added { 0xf5 } else { 0xf4 });
    Ok(())
}

/// A record from its CBOR item, with Datahike's checks (`validate-record!`).
fn decode_record(item: Cbor) -> std::result::Result<Record, String> {
    let Cbor::Array(parts) = item else { return Err(format!("{} instead of [e a v t added]", item.kind())) };
    if parts.len() != 5 {
        return Err(format!("an array of {} elements instead of [e a v t added]", parts.len()));
    }
    let mut parts = parts.into_iter();
    let (Some(e), Some(a), Some(v), Some(t), Some(added)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not 5 elements".into());
    };
    let e = e.as_i64().filter(|e| *e >= 0).ok_or_else(|| format!("e is {}, not an entity id", e.kind()))?;
    let a = match a {
        Cbor::Tag(39, text) => match *text {
            Cbor::Text(s) => s.strip_prefix(':').filter(|k| !k.is_empty()).map(Keyword::new),
            _ => None,
        },
        Cbor::Unsigned(id) => {
            return Err(format!(
                "the attribute is entity {id}: a dump of :attribute-refs? data from a version that wrote ids, \
                 which datahike-rs reads only with keyword idents"
            ))
        }
        _ => None,
    }
    .ok_or("a is not a keyword ident")?;
    let t = t.as_i64().ok_or_else(|| format!("t is {}, not a transaction id", t.kind()))?;
    let Cbor::Bool(added) = added else {
        return Err(format!(
            "added is {}, not a boolean (a retraction must not be read as an assertion)",
            added.kind()
        ));
    };
    let v = value::read_value(v)?;
    if v == DumpValue::Value(Value::Nil) {
        return Err("v is nil".into());
    }
    Ok(Record { e, a, v, t, added })
}

// ------------------------------------------------------------------------ digests

/// Datahike's semantic digest: xor and wrapping sum of the first 8 bytes (big endian) of
/// each record's SHA-256, and the count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SemanticDigest {
    xor: u64,
    sum: u64,
    count: u64,
}

impl SemanticDigest {
    fn add(&mut self, record: &[u8]) {
        let hash = Sha256::digest(record);
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash[..8]);
        let h = u64::from_be_bytes(first);
        self.xor ^= h;
        self.sum = self.sum.wrapping_add(h);
        self.count += 1;
    }

    fn to_edn(self) -> Edn {
        Edn::Map(vec![
            (Edn::kw("algo"), Edn::kw("xor64+sum64")),
            (Edn::kw("xor"), Edn::str(&format!("{:016x}", self.xor))),
            (Edn::kw("sum"), Edn::str(&format!("{:016x}", self.sum))),
            (Edn::kw("count"), Edn::Int(self.count as i64)),
        ])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ------------------------------------------------------------------------ files

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> Error {
    MigrateError::Target(format!("cannot {what} {}: {e}", path.display())).into()
}

/// The name of chunk `n` (from 1): six digits or more.
fn chunk_name(n: usize, compression: Compression) -> String {
    match compression {
        Compression::None => format!("datoms-{n:06}.cbor"),
        Compression::Gzip => format!("datoms-{n:06}.cbor.gz"),
    }
}

/// Whether `name` is a chunk file name Datahike writes: `datoms-\d{6,}\.cbor(\.gz)?`.
fn is_chunk_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("datoms-") else { return false };
    let rest = rest.strip_suffix(".gz").unwrap_or(rest);
    let Some(digits) = rest.strip_suffix(".cbor") else { return false };
    digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Syncs a directory, so that a rename in it is durable.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(|e| io_error("sync the directory", dir, &e))
}

/// Writes `bytes` to `path` durably: a temporary file, `fsync`, rename, directory `fsync`.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut f = std::fs::File::create(&tmp).map_err(|e| io_error("create", &tmp, &e))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| io_error("write", &tmp, &e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_error("rename into place", &path, &e))?;
    sync_dir(dir)
}

fn gzip_member(block: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::GzBuilder::new()
        .operating_system(255)
        .write(Vec::with_capacity(block.len() / 4), flate2::Compression::default());
    // Writing to a vector cannot fail.
    let _ = encoder.write_all(block);
    encoder.finish().unwrap_or_default()
}

/// The chunks of an export, written one after the other.
struct ChunkWriter {
    dir: PathBuf,
    compression: Compression,
    chunk_size: usize,
    open: Option<OpenChunk>,
    chunks: Vec<Edn>,
    digest: SemanticDigest,
    records: u64,
}

struct OpenChunk {
    name: String,
    file: std::fs::File,
    sha: Sha256,
    count: u64,
    raw_bytes: u64,
    block: Vec<u8>,
}

impl ChunkWriter {
    fn write(&mut self, record: &[u8]) -> Result<()> {
        if self.open.is_none() {
            let name = chunk_name(self.chunks.len() + 1, self.compression);
            let tmp = self.dir.join(format!("{name}.tmp"));
            let file = std::fs::File::create(&tmp).map_err(|e| io_error("create", &tmp, &e))?;
            self.open = Some(OpenChunk { name, file, sha: Sha256::new(), count: 0, raw_bytes: 0, block: Vec::new() });
        }
        let Some(chunk) = self.open.as_mut() else { return Err(Error::Internal("no open chunk".into())) };
        chunk.sha.update(record);
        chunk.count += 1;
        chunk.raw_bytes += record.len() as u64;
        chunk.block.extend_from_slice(record);
        self.digest.add(record);
        self.records += 1;
        if chunk.block.len() >= BLOCK_BYTES {
            Self::write_block(&self.dir, self.compression, chunk)?;
        }
        if chunk.count as usize >= self.chunk_size {
            self.close()?;
        }
        Ok(())
    }

    fn write_block(dir: &Path, compression: Compression, chunk: &mut OpenChunk) -> Result<()> {
        if chunk.block.is_empty() {
            return Ok(());
        }
        let bytes = match compression {
            Compression::None => std::mem::take(&mut chunk.block),
            Compression::Gzip => {
                let member = gzip_member(&chunk.block);
                chunk.block.clear();
                member
            }
        };
        let tmp = dir.join(format!("{}.tmp", chunk.name));
        chunk.file.write_all(&bytes).map_err(|e| io_error("write", &tmp, &e))
    }

    /// Finishes the open chunk: its last block, `fsync`, rename to its final name.
    fn close(&mut self) -> Result<()> {
        let Some(mut chunk) = self.open.take() else { return Ok(()) };
        Self::write_block(&self.dir, self.compression, &mut chunk)?;
        let tmp = self.dir.join(format!("{}.tmp", chunk.name));
        let path = self.dir.join(&chunk.name);
        chunk.file.sync_all().map_err(|e| io_error("sync", &tmp, &e))?;
        let bytes = chunk.file.metadata().map_err(|e| io_error("stat", &tmp, &e))?.len();
        std::fs::rename(&tmp, &path).map_err(|e| io_error("rename into place", &path, &e))?;
        self.chunks.push(Edn::Map(vec![
            (Edn::kw("file"), Edn::str(&chunk.name)),
            (Edn::kw("count"), Edn::Int(chunk.count as i64)),
            (Edn::kw("bytes"), Edn::Int(bytes as i64)),
            (Edn::kw("raw-bytes"), Edn::Int(chunk.raw_bytes as i64)),
            (Edn::kw("sha256"), Edn::str(&hex(&chunk.sha.finalize()))),
        ]));
        Ok(())
    }
}

// ------------------------------------------------------------------------ export

/// The export order of Datahike (`datahike.migrate.sort/sort-key`): transaction,
/// `:db/txInstant` first, entity, attribute, retraction before assertion, then the values'
/// `str` (computed only for the rare tie, several values of one attribute).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct SortKey {
    t: Eid,
    not_tx_instant: bool,
    e: Eid,
    /// `(str a)` is `":" + a` for every attribute, so `a`'s text orders the same.
    a: &'static str,
    op: u8,
}

/// Writes `db` as a dump into the directory `target`, which must not exist or be empty.
/// The manifest is written last. Returns what was written.
pub fn export_db(db: &Db, target: impl AsRef<Path>, opts: &ExportOptions<'_>) -> Result<ExportReport> {
    let target = target.as_ref();
    let history = opts.history.unwrap_or(db.config().keep_history);
    let src = if history { db.history()? } else { db.clone() };
    if opts.chunk_size == 0 || opts.sort_buffer == 0 {
        return Err(Error::Argument("export: :chunk-size and :sort-buffer must be positive".into()));
    }
    prepare_target(target)?;
    // Pass 1: records per transaction, to cut the export into sort windows.
    let all = DatomKey::default();
    let mut per_tx: BTreeMap<Eid, u64> = BTreeMap::new();
    src.index(IndexOrder::Eavt).visit(&all, &all, &mut |d| {
        if d.tx() > TX0 {
            *per_tx.entry(d.tx()).or_default() += 1;
        }
        true
    })?;
    let total: u64 = per_tx.values().sum();
    let mut windows: Vec<(Eid, Eid)> = Vec::new();
    let mut in_window = 0u64;
    for (&tx, &n) in &per_tx {
        match windows.last_mut() {
            Some((_, hi)) if in_window + n <= opts.sort_buffer as u64 || in_window == 0 => {
                *hi = tx;
                in_window += n;
            }
            _ => {
                windows.push((tx, tx));
                in_window = n;
            }
        }
    }
    let mut writer = ChunkWriter {
        dir: target.to_path_buf(),
        compression: opts.compression,
        chunk_size: opts.chunk_size,
        open: None,
        chunks: Vec::new(),
        digest: SemanticDigest::default(),
        records: 0,
    };
    let current = db.origin().cloned().unwrap_or_else(|| db.clone());
    let mut bytes = Vec::with_capacity(256);
    for (lo, hi) in windows {
        let mut datoms: Vec<Datom> = Vec::new();
        src.index(IndexOrder::Eavt).visit(&all, &all, &mut |d| {
            if (lo..=hi).contains(&d.tx()) {
                datoms.push(d.clone());
            }
            true
        })?;
        for r in sorted_records(&current, datoms)? {
            bytes.clear();
            encode_record(&r, &mut bytes).map_err(|why| {
                MigrateError::Target(format!("cannot export [{} :{} .. {} {}]: {why}", r.e, r.a.as_str(), r.t, r.added))
            })?;
            writer.write(&bytes)?;
            if writer.records.is_multiple_of(opts.chunk_size as u64) {
                report(opts.progress, Phase::Export, writer.records, total);
            }
        }
    }
    writer.close()?;
    report(opts.progress, Phase::Export, writer.records, total);
    let manifest = build_manifest(db, history, &writer, total, opts.compression);
    write_durably(target, MANIFEST, format!("{}\n", pr_str(&manifest)).as_bytes())?;
    Ok(ExportReport { datom_count: writer.records, chunk_count: writer.chunks.len(), history, manifest })
}

fn report(progress: Option<&dyn Fn(&Progress)>, phase: Phase, done: u64, total: u64) {
    if let Some(f) = progress {
        f(&Progress { phase, done, total });
    }
}

/// Creates `target`, or accepts it when it is an empty directory.
fn prepare_target(target: &Path) -> Result<()> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if let Some(entry) = entries.next() {
                let name = entry.map(|e| e.file_name().to_string_lossy().into_owned()).unwrap_or_default();
                return Err(MigrateError::Target(format!(
                    "export target {} is not empty (it holds {name}); export into a new or empty directory",
                    target.display()
                ))
                .into());
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(target).map_err(|e| io_error("create the directory", target, &e))
        }
        Err(e) => Err(io_error("read the directory", target, &e)),
    }
}

/// The records of some transactions' datoms, in the dump's order.
///
/// Datahike puts a retraction before an assertion of the same value in one transaction,
/// which replays as "retracted, then asserted again". When the source instead asserted and
/// then retracted the value in that transaction (the assertion is not current), the
/// assertion goes first, so that replaying the dump gives the source's history exactly.
fn sorted_records(current: &Db, datoms: Vec<Datom>) -> Result<Vec<Record>> {
    let attr_refs = current.config().attribute_refs;
    let schema = current.schema();
    // Values asserted and retracted in the same transaction.
    let retracted: HashSet<(Eid, Keyword, &Value, Eid)> =
        datoms.iter().filter(|d| !d.added()).map(|d| (d.e, d.a, &d.v, d.tx())).collect();
    let mut keyed: Vec<(SortKey, u8, &Datom)> = Vec::with_capacity(datoms.len());
    for d in &datoms {
        let mut key = SortKey {
            t: d.tx(),
            not_tx_instant: d.a.as_str() != "db/txInstant",
            e: d.e,
            a: d.a.as_str(),
            op: u8::from(d.added()),
        };
        if d.added() && retracted.contains(&(d.e, d.a, &d.v, d.tx())) {
            let probe = DatomKey { e: Some(d.e), a: Some(d.a), v: Some(d.v.clone()), tx: None };
            let live = current.index(IndexOrder::Eavt).range(&probe, &probe).next().transpose()?;
            if live.is_none_or(|l| l.tx() != d.tx()) {
                // Ordered with the retractions, just before the retraction of its value.
                key.op = 0;
            }
        }
        keyed.push((key, u8::from(!d.added()), d));
    }
    keyed.sort_by(|x, y| {
        x.0.cmp(&y.0).then_with(|| value::clojure_str(&x.2.v).cmp(&value::clojure_str(&y.2.v))).then(x.1.cmp(&y.1))
    });
    Ok(keyed
        .into_iter()
        .map(|(_, _, d)| {
            let v = match &d.v {
                Value::Keyword(k) if attr_refs && attr_refs::is_enum_attr(d.a) => DumpValue::SysRef(*k),
                Value::Long(id) if attr_refs && attr_refs::is_system_entity(*id) && schema.is_ref(d.a) => {
                    attr_refs::system_ident(*id).map_or(DumpValue::Value(d.v.clone()), DumpValue::SysRef)
                }
                v => DumpValue::Value(v.clone()),
            };
            Record { e: d.e, a: d.a, v, t: d.tx(), added: d.added() }
        })
        .collect())
}

/// The manifest of Datahike's `build-manifest`, plus `:compression`.
fn build_manifest(db: &Db, history: bool, writer: &ChunkWriter, source_count: u64, compression: Compression) -> Edn {
    let config = db.config();
    let kw = Edn::kw;
    let mut requires: Vec<Keyword> = vec![Keyword::new("datahike.migrate/cbor-seq")];
    if history {
        requires.push(Keyword::new("datahike.migrate/history"));
    }
    if config.attribute_refs {
        requires.push(Keyword::new("datahike.migrate/attribute-refs"));
    }
    let schema = db.schema_edn();
    if let Edn::Map(entries) = &schema {
        for (_, attr) in entries {
            if let Some(Edn::Keyword(t)) = attr.get_kw("db/valueType") {
                if !requires.contains(t) {
                    requires.push(*t);
                }
            }
        }
    }
    requires.sort();
    let system_idents = if config.attribute_refs {
        Edn::Map(
            (1..=attr_refs::UE0)
                .filter_map(|id| attr_refs::system_ident(id).map(|k| (Edn::Int(id), Edn::Keyword(k))))
                .collect(),
        )
    } else {
        Edn::Map(Vec::new())
    };
    let backend = config.store.backend_name();
    let flexibility = match config.schema_flexibility {
        SchemaFlexibility::Write => "write",
        SchemaFlexibility::Read => "read",
    };
    Edn::Map(vec![
        (kw("datahike.migrate/format-version"), Edn::Int(FORMAT_VERSION)),
        (kw("history?"), Edn::Bool(history)),
        (kw("serialization"), kw("cbor-seq")),
        (
            kw("datahike/meta"),
            Edn::Map(vec![
                (kw("datahike/version"), Edn::str(concat!("datahike-rs ", env!("CARGO_PKG_VERSION")))),
                (kw("datahike/id"), Edn::Uuid(uuid::Uuid::new_v4())),
                (kw("datahike/created-at"), Edn::Inst(now_millis())),
            ]),
        ),
        (kw("requires"), Edn::Vector(requires.into_iter().map(Edn::Keyword).collect())),
        (
            kw("source-config"),
            Edn::Map(vec![
                (kw("store-backend"), kw(backend)),
                (kw("attribute-refs?"), Edn::Bool(config.attribute_refs)),
                (kw("index"), kw("datahike.index/persistent-set")),
                (kw("keep-history?"), Edn::Bool(config.keep_history)),
                (kw("schema-flexibility"), kw(flexibility)),
            ]),
        ),
        (kw("schema"), schema),
        (kw("system-idents"), system_idents),
        (
            kw("stats"),
            Edn::Map(vec![
                (kw("datom-count"), Edn::Int(writer.records as i64)),
                (kw("source-datom-count"), Edn::Int(source_count as i64)),
                (kw("transformed?"), Edn::Bool(false)),
                (kw("max-eid"), Edn::Int(db.max_eid())),
                (kw("max-tx"), Edn::Int(db.max_tx())),
            ]),
        ),
        (kw("semantic-digest"), writer.digest.to_edn()),
        (kw("store-refs"), Edn::Nil),
        (kw("chunks"), Edn::Vector(writer.chunks.clone())),
        (
            kw("compression"),
            kw(match compression {
                Compression::None => "none",
                Compression::Gzip => "gzip",
            }),
        ),
    ])
}

// ------------------------------------------------------------------------ reading dumps

/// A chunk as the manifest names it.
#[derive(Clone, Debug)]
struct ChunkEntry {
    file: String,
    count: Option<u64>,
    sha256: String,
}

/// A dump opened for reading.
struct Dump {
    source: PathBuf,
    manifest: Edn,
    compression: Compression,
    chunks: Vec<ChunkEntry>,
}

fn not_a_dump(message: String) -> Error {
    MigrateError::NotADump(message).into()
}

fn corrupt(message: String) -> Error {
    MigrateError::Corrupt(message).into()
}

/// Capabilities a dump may require that this build honours.
fn supported_capability(k: Keyword) -> bool {
    matches!(k.as_str(), "datahike.migrate/cbor-seq" | "datahike.migrate/history" | "datahike.migrate/attribute-refs")
        || ValueType::from_keyword(k).is_some()
}

impl Dump {
    /// Reads and checks the manifest of the directory `source`, without reading chunks.
    fn open(source: &Path) -> Result<Dump> {
        let path = source.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(not_a_dump(format!(
                    "{} has no {MANIFEST}: it is not a dump, or an export that did not finish (the manifest is \
                     written last)",
                    source.display()
                )))
            }
            Err(e) => return Err(not_a_dump(format!("cannot read {}: {e}", path.display()))),
        };
        let manifest = read_str(&text).map_err(|e| not_a_dump(format!("{} is not EDN: {e}", path.display())))?;
        let version = manifest.get_kw("datahike.migrate/format-version").ok_or_else(|| {
            not_a_dump(format!(
                "{} has no :datahike.migrate/format-version, so it was not written by an export",
                path.display()
            ))
        })?;
        match version {
            Edn::Int(v) if *v <= FORMAT_VERSION => {}
            Edn::Int(v) => {
                return Err(MigrateError::Unsupported(format!(
                    "{} is dump format version {v}, newer than this build reads ({FORMAT_VERSION})",
                    source.display()
                ))
                .into())
            }
            other => return Err(not_a_dump(format!("{} has format version {other}, not a number", path.display()))),
        }
        let compression = match manifest.get_kw("compression") {
            None => Compression::None,
            Some(Edn::Keyword(k)) if k.as_str() == "none" => Compression::None,
            Some(Edn::Keyword(k)) if k.as_str() == "gzip" => Compression::Gzip,
            Some(other) => {
                return Err(MigrateError::Unsupported(format!(
                    "{} is compressed with {other}; this build reads :gzip and :none",
                    source.display()
                ))
                .into())
            }
        };
        if let Some(Edn::Vector(required)) = manifest.get_kw("requires") {
            let missing: Vec<String> = required
                .iter()
                .filter(|r| !matches!(r, Edn::Keyword(k) if supported_capability(*k)))
                .map(pr_str)
                .collect();
            if !missing.is_empty() {
                return Err(MigrateError::Unsupported(format!(
                    "{} requires capabilities datahike-rs does not have: {}",
                    source.display(),
                    missing.join(" ")
                ))
                .into());
            }
        }
        let mut chunks = Vec::new();
        for entry in manifest.get_kw("chunks").and_then(Edn::as_seq).unwrap_or(&[]) {
            let file = match entry.get_kw("file") {
                Some(Edn::Str(f)) if is_chunk_name(f) => f.to_string(),
                other => {
                    return Err(not_a_dump(format!(
                        "{} names a chunk this build will not read: {}",
                        path.display(),
                        other.map_or("nothing".into(), pr_str)
                    )))
                }
            };
            let sha256 = match entry.get_kw("sha256") {
                Some(Edn::Str(s)) => s.to_string(),
                _ => {
                    return Err(corrupt(format!(
                        "{} gives no :sha256 for chunk {file}; a chunk without a digest is refused",
                        path.display()
                    )))
                }
            };
            let count = match entry.get_kw("count") {
                Some(Edn::Int(n)) if *n >= 0 => Some(*n as u64),
                _ => None,
            };
            chunks.push(ChunkEntry { file, count, sha256 });
        }
        // A chunk in the directory that the manifest does not list: truncated or edited.
        let listed: HashSet<&str> = chunks.iter().map(|c| c.file.as_str()).collect();
        let mut extra: Vec<String> = std::fs::read_dir(source)
            .map_err(|e| not_a_dump(format!("cannot list {}: {e}", source.display())))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| is_chunk_name(n) && !listed.contains(n.as_str()))
            .collect();
        if !extra.is_empty() {
            extra.sort();
            return Err(corrupt(format!(
                "{} holds chunk files its manifest does not list: {}",
                source.display(),
                extra.join(", ")
            )));
        }
        Ok(Dump { source: source.to_path_buf(), manifest, compression, chunks })
    }

    fn stat(&self, key: &str) -> Option<i64> {
        match self.manifest.get_kw("stats")?.get_kw(key)? {
            Edn::Int(n) => Some(*n),
            _ => None,
        }
    }

    fn source_config(&self, key: &str) -> Option<&Edn> {
        self.manifest.get_kw("source-config")?.get_kw(key)
    }

    /// The uncompressed records of chunk `i`, checked against the manifest's digest.
    fn chunk_bytes(&self, i: usize) -> Result<Vec<u8>> {
        let entry = &self.chunks[i];
        let path = self.source.join(&entry.file);
        let stored = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(corrupt(format!(
                    "chunk {} of {} is missing: the manifest names it, the directory does not hold it",
                    entry.file,
                    self.source.display()
                )))
            }
            Err(e) => return Err(corrupt(format!("cannot read chunk {}: {e}", path.display()))),
        };
        let raw = match self.compression {
            Compression::None => stored,
            Compression::Gzip => {
                let mut raw = Vec::with_capacity(stored.len() * 6);
                flate2::read::MultiGzDecoder::new(&stored[..]).read_to_end(&mut raw).map_err(|e| {
                    corrupt(format!(
                        "chunk {} of {} could not be decompressed (gzip): {e}",
                        entry.file,
                        self.source.display()
                    ))
                })?;
                raw
            }
        };
        let actual = hex(&Sha256::digest(&raw));
        if actual != entry.sha256 {
            return Err(corrupt(format!(
                "checksum mismatch for chunk {} of {}: the manifest says SHA-256 {}, its records hash to {actual} \
                 (the chunk is truncated or was changed)",
                entry.file,
                self.source.display(),
                entry.sha256
            )));
        }
        Ok(raw)
    }

    /// The records of chunk `i`, checked against the manifest's digest and count.
    fn chunk_records(&self, i: usize) -> Result<Vec<Record>> {
        let raw = self.chunk_bytes(i)?;
        let entry = &self.chunks[i];
        let records = decode_records(&raw, &format!("chunk {} of {}", entry.file, self.source.display()))?;
        if let Some(n) = entry.count {
            if n != records.len() as u64 {
                return Err(corrupt(format!(
                    "chunk {} of {} holds {} records, its manifest entry says {n}",
                    entry.file,
                    self.source.display(),
                    records.len()
                )));
            }
        }
        Ok(records)
    }
}

/// Every record of a CBOR sequence; `what` names it in errors.
fn decode_records(raw: &[u8], what: &str) -> Result<Vec<Record>> {
    let mut decoder = Decoder::new(raw);
    let mut out = Vec::new();
    while !decoder.is_at_end() {
        let offset = decoder.position();
        let item =
            decoder.item().map_err(|e| corrupt(format!("{what}: record {} does not decode: {e}", out.len() + 1)))?;
        let record = decode_record(item).map_err(|why| {
            MigrateError::MalformedRecord(format!(
                "{what}: record {} (byte {offset}) is malformed: {why}",
                out.len() + 1
            ))
        })?;
        out.push(record);
    }
    Ok(out)
}

/// What [`verify`] found: a complete dump.
#[derive(Clone, Debug)]
pub struct DumpSummary {
    /// Records in the dump.
    pub datom_count: u64,
    /// Distinct transactions.
    pub tx_count: u64,
    /// Chunk files (0 for a legacy dump).
    pub chunk_count: usize,
    /// Whether the records come ordered by transaction (Datahike's sorted export).
    pub tx_ordered: bool,
    /// Whether the dump holds history.
    pub history: bool,
    /// Whether this is a legacy single-file dump.
    pub legacy: bool,
}

/// Reads a whole dump and checks it as an import would, without a database: the manifest,
/// every chunk's digest and count, every record, the totals.
pub fn verify(source: impl AsRef<Path>) -> Result<DumpSummary> {
    let source = source.as_ref();
    match open_source(source)? {
        Source::Dir(dump) => verify_dump(&dump, None),
        Source::Legacy(records) => Ok(legacy_summary(&records)),
    }
}

fn legacy_summary(records: &[Record]) -> DumpSummary {
    let txs: HashSet<Eid> = records.iter().map(|r| r.t).collect();
    DumpSummary {
        datom_count: records.len() as u64,
        tx_count: txs.len() as u64,
        chunk_count: 0,
        tx_ordered: records.windows(2).all(|w| w[0].t <= w[1].t),
        history: records.iter().any(|r| !r.added),
        legacy: true,
    }
}

fn verify_dump(dump: &Dump, progress: Option<&dyn Fn(&Progress)>) -> Result<DumpSummary> {
    let declared = dump.stat("datom-count");
    let total = declared.map_or(0, |n| n.max(0) as u64);
    let mut count = 0u64;
    let mut txs = 0u64;
    let mut last_t = i64::MIN;
    let mut ordered = true;
    for i in 0..dump.chunks.len() {
        for r in dump.chunk_records(i)? {
            if r.t <= TX0 {
                return Err(MigrateError::MalformedRecord(format!(
                    "chunk {} of {}: record [{} :{} .. {} {}] names transaction {}, not after tx0 ({TX0})",
                    dump.chunks[i].file,
                    dump.source.display(),
                    r.e,
                    r.a.as_str(),
                    r.t,
                    r.added,
                    r.t
                ))
                .into());
            }
            if r.t != last_t {
                txs += 1;
                ordered &= r.t > last_t;
                last_t = r.t;
            }
            count += 1;
        }
        report(progress, Phase::Verify, count, total);
    }
    if let Some(n) = declared {
        if n as u64 != count {
            return Err(corrupt(format!(
                "{} holds {count} records in its chunks, its manifest's :stats says {n}",
                dump.source.display()
            )));
        }
    }
    if let Some(Edn::Int(n)) = dump.manifest.get_kw("semantic-digest").and_then(|d| d.get_kw("count")) {
        if *n as u64 != count {
            return Err(corrupt(format!(
                "{} holds {count} records, its manifest's semantic digest counted {n}",
                dump.source.display()
            )));
        }
    }
    let transformed =
        matches!(dump.manifest.get_kw("stats").and_then(|s| s.get_kw("transformed?")), Some(Edn::Bool(true)));
    if let (Some(source_count), false) = (dump.stat("source-datom-count"), transformed) {
        if (count as i64) < source_count {
            return Err(corrupt(format!(
                "{} is incomplete: it holds {count} records but its source held {source_count}, and no transform \
                 explains the difference",
                dump.source.display()
            )));
        }
    }
    let history = matches!(dump.manifest.get_kw("history?"), Some(Edn::Bool(true)));
    Ok(DumpSummary {
        datom_count: count,
        tx_count: txs,
        chunk_count: dump.chunks.len(),
        tx_ordered: ordered,
        history,
        legacy: false,
    })
}

enum Source {
    Dir(Dump),
    Legacy(Vec<Record>),
}

fn open_source(source: &Path) -> Result<Source> {
    match std::fs::metadata(source) {
        Ok(m) if m.is_dir() => Ok(Source::Dir(Dump::open(source)?)),
        Ok(_) => Ok(Source::Legacy(read_legacy(source)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not_a_dump(format!(
            "no dump at {}: a dump is a directory holding {MANIFEST} and datoms-NNNNNN.cbor chunks (or a legacy \
             single-file dump)",
            source.display()
        ))),
        Err(e) => Err(not_a_dump(format!("cannot read {}: {e}", source.display()))),
    }
}

/// The records of a legacy single-file dump (clj-cbor `spit-all` of datom vectors),
/// ordered by transaction (stable), without the bootstrap at or before tx0.
fn read_legacy(path: &Path) -> Result<Vec<Record>> {
    let bytes = std::fs::read(path).map_err(|e| not_a_dump(format!("cannot read {}: {e}", path.display())))?;
    let what = format!("legacy dump {}", path.display());
    let mut records = decode_records(&bytes, &what).map_err(|e| {
        not_a_dump(format!(
            "{} is neither a dump directory nor a legacy single-file dump that decodes: {e}",
            path.display()
        ))
    })?;
    records.retain(|r| r.t > TX0);
    records.sort_by_key(|r| r.t);
    Ok(records)
}

// ------------------------------------------------------------------------ import

/// Loads the dump (directory or legacy file) at `source` into the database of `conn`.
///
/// Into an empty database (no transaction yet), entity and transaction ids, instants and
/// metadata are preserved and the load runs as a bulk load; a database with transactions is
/// refused unless `opts.merge`, which loads through `Conn::load_entities` with fresh ids.
/// Every chunk's digest, every count and every record are checked before anything is
/// written.
pub fn import_db(conn: &Conn, source: impl AsRef<Path>, opts: &ImportOptions<'_>) -> Result<ImportReport> {
    let source = source.as_ref();
    let opened = open_source(source)?;
    let config = conn.config();
    let target = pr_str(&config.store.to_edn());
    if let Source::Dir(dump) = &opened {
        let flexibility = match config.schema_flexibility {
            SchemaFlexibility::Write => "write",
            SchemaFlexibility::Read => "read",
        };
        for (key, ours) in [
            ("attribute-refs?", Edn::Bool(config.attribute_refs)),
            ("keep-history?", Edn::Bool(config.keep_history)),
            ("schema-flexibility", Edn::kw(flexibility)),
        ] {
            if let Some(theirs) = dump.source_config(key) {
                if *theirs != ours {
                    return Err(MigrateError::ConfigMismatch(format!(
                        "Config mismatch on :{key}: the dump {} has {theirs}, the target database {target} has {ours}",
                        source.display()
                    ))
                    .into());
                }
            }
        }
    }
    let db = conn.db();
    if db.max_tx() > TX0 && !opts.merge {
        return Err(MigrateError::NonEmptyTarget(format!(
            "Target database {target} is not empty (its last transaction is {}): an import preserves ids only into \
             an empty database. Import into a new database, or pass :merge? true to add the dump with fresh ids and instants",
            db.max_tx()
        ))
        .into());
    }
    let (summary, stat_max_eid) = match &opened {
        Source::Dir(dump) => (verify_dump(dump, opts.progress)?, dump.stat("max-eid")),
        Source::Legacy(records) => (legacy_summary(records), None),
    };
    let total = summary.datom_count;
    // The records, chunk by chunk (all at once when they are not in transaction order).
    let mut chunks: Box<dyn Iterator<Item = Result<Vec<Record>>>> = match opened {
        Source::Legacy(records) => Box::new(std::iter::once(Ok(records))),
        Source::Dir(dump) if !summary.tx_ordered || opts.merge => {
            let mut all = Vec::with_capacity(total as usize);
            for i in 0..dump.chunks.len() {
                all.extend(dump.chunk_records(i)?);
            }
            all.sort_by_key(|r| r.t);
            Box::new(std::iter::once(Ok(all)))
        }
        Source::Dir(dump) => Box::new((0..dump.chunks.len()).map(move |i| dump.chunk_records(i))),
    };
    if opts.merge && db.max_tx() > TX0 {
        let all = chunks.next().transpose()?.unwrap_or_default();
        return merge(conn, all, summary.legacy, opts);
    }
    let mut load = conn.bulk_load(&source.display().to_string())?;
    if opts.batch_txs > 0 {
        load.set_batch_txs(opts.batch_txs);
    }
    let state = TxState {
        schema: db.schema().clone(),
        max_tx: db.max_tx(),
        max_eid: db.max_eid(),
        tx_instant: db.last_tx_instant(),
        legacy: summary.legacy,
    };
    // A group never spans a batch: a batch of fewer transactions than a group is made durable
    // at the group's end, not after its own count.
    let group_txs = load.batch_txs().min(GROUP_TXS);
    let mut loader =
        Loader { load, state, pending: Vec::new(), group: Vec::new(), group_datoms: 0, group_txs, txs: 0, done: 0 };
    for records in chunks {
        for r in records? {
            if loader.pending.last().is_some_and(|p: &Record| p.t != r.t) {
                loader.end_tx(None)?;
            }
            loader.pending.push(r);
            loader.done += 1;
        }
        report(opts.progress, Phase::Import, loader.done, total);
    }
    let max_eid = stat_max_eid.filter(|e| *e < TX0);
    if !loader.pending.is_empty() {
        loader.end_tx(max_eid)?;
    }
    loader.apply_group()?;
    let txs = loader.txs;
    let db = loader.load.finish()?;
    Ok(ImportReport { datom_count: total, tx_count: txs, max_tx: db.max_tx(), legacy: summary.legacy, merged: false })
}

/// Source transactions applied to the indices at once (each stays its own commit)...
const GROUP_TXS: usize = 1000;
/// ...or this many datoms.
const GROUP_DATOMS: usize = 100_000;

/// What the next transaction of an import is checked against: the database after the
/// transactions read so far.
struct TxState {
    schema: crate::schema::Schema,
    max_tx: Eid,
    max_eid: Eid,
    tx_instant: i64,
    legacy: bool,
}

/// Turns the records of one source transaction at a time into transactions of a bulk load.
struct Loader<'c> {
    load: BulkLoad<'c>,
    state: TxState,
    pending: Vec<Record>,
    group: Vec<TxOutcome>,
    group_datoms: usize,
    group_txs: usize,
    txs: u64,
    done: u64,
}

impl Loader<'_> {
    /// The pending records make one transaction.
    fn end_tx(&mut self, final_max_eid: Option<Eid>) -> Result<()> {
        let records = std::mem::take(&mut self.pending);
        let outcome = outcome_of(&mut self.state, self.load.db(), records, final_max_eid)?;
        self.group_datoms += outcome.tx_data.len();
        self.group.push(outcome);
        self.txs += 1;
        if self.group.len() >= self.group_txs || self.group_datoms >= GROUP_DATOMS {
            self.apply_group()?;
        }
        Ok(())
    }

    fn apply_group(&mut self) -> Result<()> {
        self.group_datoms = 0;
        self.load.apply(std::mem::take(&mut self.group))
    }
}

/// The datom value of a record in `db`, checked against the schema as it stands.
fn datom_value(
    schema: &crate::schema::Schema,
    db: &Db,
    r: &Record,
    legacy: bool,
) -> std::result::Result<Value, String> {
    let attr = schema.attr(r.a);
    let v = match &r.v {
        DumpValue::Value(v) => v.clone(),
        DumpValue::SysRef(ident) if attr_refs::is_enum_attr(r.a) => Value::Keyword(*ident),
        DumpValue::SysRef(ident) if db.config().attribute_refs => match attr_refs::system_eid(*ident) {
            Some(id) => Value::Long(id),
            None => {
                return Err(format!("it refers to system entity {}, which this build does not have", ident.as_str()))
            }
        },
        DumpValue::SysRef(ident) => {
            return Err(format!(
                "it refers to system entity {} (an :attribute-refs? true dump), the target has no attribute refs",
                ident.as_str()
            ))
        }
    };
    let Some(attr) = attr else {
        if db.config().schema_flexibility == SchemaFlexibility::Write {
            return Err(format!("attribute :{} is not in the schema", r.a.as_str()));
        }
        return Ok(v);
    };
    let Some(value_type) = attr.value_type else { return Ok(v) };
    // clj-cbor narrowed some doubles to float16 and wrote floats as float32: the schema says
    // what they were.
    let v = match (value_type, v) {
        (ValueType::Double, Value::Float(x)) if legacy => Value::Double(f64::from(x)),
        (_, v) => v,
    };
    if !value_type.accepts(&v)
        && !matches!(value_type, ValueType::ValueTypeKw | ValueType::CardinalityKw | ValueType::UniqueKw)
    {
        return Err(format!("{} is not a {}", v.to_edn(), value_type.keyword()));
    }
    Ok(v)
}

/// The outcome of one source transaction, with its own id, instant and metadata, checked
/// against `state` (which it then advances).
fn outcome_of(state: &mut TxState, db: &Db, records: Vec<Record>, final_max_eid: Option<Eid>) -> Result<TxOutcome> {
    let t = records.first().map_or(0, |r| r.t);
    if t <= state.max_tx {
        return Err(MigrateError::MalformedRecord(format!(
            "transaction {t} of the dump does not come after transaction {} (transactions must be loaded in order, \
             each once)",
            state.max_tx
        ))
        .into());
    }
    let mut tx_data = Vec::with_capacity(records.len());
    for r in records {
        let v = datom_value(&state.schema, db, &r, state.legacy).map_err(|why| {
            MigrateError::MalformedRecord(format!(
                "record [{} :{} {} {} {}] cannot be loaded: {why}",
                r.e,
                r.a.as_str(),
                match &r.v {
                    DumpValue::Value(v) => pr_str(&v.to_edn()),
                    DumpValue::SysRef(k) => format!("#sysref :{}", k.as_str()),
                },
                r.t,
                r.added
            ))
        })?;
        if r.e == t && r.added && r.a.as_str() == "db/txInstant" {
            if let Value::Instant(ms) = v {
                state.tx_instant = ms;
            }
        }
        if r.e < TX0 {
            state.max_eid = state.max_eid.max(r.e);
        }
        let d = Datom::new(r.e, r.a, v, t, r.added);
        if is_schema_attr(d.a) {
            state.schema.apply_datom(&d);
        }
        tx_data.push(d);
    }
    if let Some(m) = final_max_eid {
        state.max_eid = state.max_eid.max(m);
    }
    state.max_tx = t;
    Ok(TxOutcome {
        tx: t,
        tx_data,
        max_eid: state.max_eid,
        tx_instant: state.tx_instant,
        tempids: Vec::new(),
        tx_meta: vec![(Keyword::new("db/txInstant"), Edn::Inst(state.tx_instant))],
        purged: Vec::new(),
        commit: None,
    })
}

/// Loads records into a database with transactions, with fresh ids and instants
/// (`load_entities`).
fn merge(conn: &Conn, records: Vec<Record>, legacy: bool, opts: &ImportOptions<'_>) -> Result<ImportReport> {
    let total = records.len() as u64;
    let db = conn.db();
    let schema = db.schema();
    let mut rows = Vec::with_capacity(records.len());
    for r in &records {
        // The merged transactions are new ones here: they get this database's instants (the
        // source's may be earlier than its last), and keep their other metadata.
        if r.e == r.t && r.a.as_str() == "db/txInstant" {
            continue;
        }
        let v = datom_value(schema, &db, r, legacy).unwrap_or_else(|_| match &r.v {
            DumpValue::Value(v) => v.clone(),
            DumpValue::SysRef(k) => Value::Keyword(*k),
        });
        rows.push(Edn::Vector(vec![Edn::Int(r.e), Edn::Keyword(r.a), v.to_edn(), Edn::Int(r.t), Edn::Bool(r.added)]));
    }
    let reports = conn.load_entities(&Edn::Vector(rows))?;
    report(opts.progress, Phase::Import, total, total);
    Ok(ImportReport {
        datom_count: total,
        tx_count: reports.len() as u64,
        max_tx: conn.db().max_tx(),
        legacy,
        merged: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_names() {
        assert_eq!(chunk_name(1, Compression::Gzip), "datoms-000001.cbor.gz");
        assert_eq!(chunk_name(1_000_000, Compression::None), "datoms-1000000.cbor");
        assert!(is_chunk_name("datoms-000001.cbor.gz") && is_chunk_name("datoms-1234567.cbor"));
        assert!(
            !is_chunk_name("datoms-00001.cbor")
                && !is_chunk_name("../datoms-000001.cbor")
                && !is_chunk_name("datoms-000001.cbor.tmp")
        );
    }

    #[test]
    fn record_bytes() {
        let r = Record { e: 1, a: Keyword::new("name"), v: DumpValue::Value(Value::str("A")), t: TX0 + 1, added: true };
        let mut out = Vec::new();
        encode_record(&r, &mut out).unwrap();
        assert_eq!(out, b"\x85\x01\xd8\x27\x65:name\x61A\x1a\x20\x00\x00\x01\xf5");
        assert_eq!(decode_record(cbor::decode(&out).unwrap()).unwrap(), r);
        let bad = b"\x85\x01\xd8\x27\x65:name\x61A\x1a\x20\x00\x00\x01\x01";
        assert!(decode_record(cbor::decode(bad).unwrap()).unwrap_err().contains("not a boolean"));
    }
}
