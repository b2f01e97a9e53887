//! The byte formats the connection writes: branch heads (also stored as snapshot commit
//! records), log records and commit packs.

use super::*;

/// The decoded branch head.
#[derive(Clone, Debug)]
pub(super) struct Head {
    pub(super) fixed_config: String,
    pub(super) db_id: uuid::Uuid,
    pub(super) created_at: i64,
    pub(super) max_eid: Eid,
    pub(super) max_tx: Eid,
    pub(super) last_tx_instant: i64,
    pub(super) current: [IndexRoot; 3],
    pub(super) history: Option<[IndexRoot; 3]>,
    /// The commit this head is.
    pub(super) commit: Commit,
    /// The snapshot commit that `packs/<commit id>` (the commits between that snapshot and
    /// this one) replays from; `None` when there is no pack.
    pub(super) pack_base: Option<uuid::Uuid>,
    /// Names the branch's log (see [`Head::log_name`]); `None` in heads written before log
    /// ids (version < 3), whose log is named after the branch alone.
    pub(super) log_id: Option<uuid::Uuid>,
}

pub(super) fn put_root(root: &IndexRoot, out: &mut Vec<u8>) {
    match root.address {
        Some(a) => {
            out.push(1);
            out.extend_from_slice(&a);
        }
        None => out.push(0),
    }
    codec::put_varint(root.count, out);
}

pub(super) fn read_root(r: &mut Reader<'_>) -> Result<IndexRoot> {
    let address = match r.u8()? {
        0 => None,
        _ => Some(r.array::<16>("index root address")?),
    };
    Ok(IndexRoot { address, count: r.varint()? })
}

impl Head {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(HEAD_MAGIC);
        out.push(HEAD_VERSION);
        codec::put_str(&self.fixed_config, &mut out);
        out.extend_from_slice(self.db_id.as_bytes());
        codec::put_ivarint(self.created_at, &mut out);
        codec::put_ivarint(self.max_eid, &mut out);
        codec::put_ivarint(self.max_tx, &mut out);
        codec::put_ivarint(self.last_tx_instant, &mut out);
        for r in &self.current {
            put_root(r, &mut out);
        }
        match &self.history {
            Some(h) => {
                out.push(1);
                for r in h {
                    put_root(r, &mut out);
                }
            }
            None => out.push(0),
        }
        put_commit(&Some(self.commit.clone()), &mut out);
        match &self.pack_base {
            Some(base) => {
                out.push(1);
                put_uuid(base, &mut out);
            }
            None => out.push(0),
        }
        match &self.log_id {
            Some(id) => {
                out.push(1);
                put_uuid(id, &mut out);
            }
            None => out.push(0),
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// The name of the branch's log for this head. Each head that starts a line of commits
    /// (a new database, a new branch, a `force-branch`) names a log of its own, so that a
    /// writer still appending to the log of a replaced line can never write into the new one.
    pub(super) fn log_name(&self, branch: &str) -> String {
        match &self.log_id {
            Some(id) => format!("{branch}@{}", id.simple()),
            None => branch.to_string(),
        }
    }

    /// Decodes the head stored under `key` (a branch head or a snapshot commit record);
    /// errors name the key.
    pub(super) fn decode(key: &str, bytes: &[u8]) -> Result<Head> {
        Head::decode_inner(bytes).map_err(|e| Error::Database(format!("{key}: {e}")))
    }

    fn decode_inner(bytes: &[u8]) -> Result<Head> {
        if bytes.len() < 9 || &bytes[..8] != HEAD_MAGIC {
            return Err(Error::Database("not a datahike-rs head (bad magic)".into()));
        }
        let version = bytes[8];
        if !(1..=HEAD_VERSION).contains(&version) {
            return Err(Error::Database(format!(
                "the head has format version {version}, this build reads versions 1 to {HEAD_VERSION}"
            )));
        }
        let body = if version >= 3 { checksummed(bytes, 9, "head")? } else { &bytes[9..] };
        let mut r = Reader::new(body);
        let fixed_config = r.str()?.to_string();
        let id = r.array::<16>("database id")?;
        let created_at = r.ivarint()?;
        let max_eid = r.ivarint()?;
        let max_tx = r.ivarint()?;
        let last_tx_instant = r.ivarint()?;
        let current = [read_root(&mut r)?, read_root(&mut r)?, read_root(&mut r)?];
        let history = match r.u8()? {
            0 => None,
            _ => Some([read_root(&mut r)?, read_root(&mut r)?, read_root(&mut r)?]),
        };
        let db_id = uuid::Uuid::from_bytes(id);
        // Version 1 heads predate commits: the database id stands in for the commit id.
        let (commit, pack_base) = if version >= 2 {
            let commit =
                read_commit(&mut r)?.ok_or_else(|| Error::Database("the branch head names no commit".into()))?;
            let pack_base = if r.u8()? == 0 { None } else { Some(read_uuid(&mut r, "pack base commit id")?) };
            (commit, pack_base)
        } else {
            (Commit { id: db_id, parents: Vec::new() }, None)
        };
        let log_id = if version >= 3 {
            if r.u8()? == 0 {
                None
            } else {
                Some(read_uuid(&mut r, "log id")?)
            }
        } else {
            None
        };
        // Every version ends exactly here: a version byte damaged into an older version
        // (without a checksum) leaves bytes over and is refused.
        r.finish()?;
        if max_tx < TX0 || max_eid < 0 || head_counts_inconsistent(&current, history.as_ref()) {
            return Err(Error::Database(format!(
                "inconsistent head: max-tx {max_tx}, max-eid {max_eid}, index counts {:?}",
                current.iter().map(|r| r.count).collect::<Vec<_>>()
            )));
        }
        Ok(Head {
            log_id,
            commit,
            pack_base,
            fixed_config,
            db_id,
            created_at,
            max_eid,
            max_tx,
            last_tx_instant,
            current,
            history,
        })
    }
}

/// EAVT and AEVT hold the same datoms, and an empty index has no root.
fn head_counts_inconsistent(current: &[IndexRoot; 3], history: Option<&[IndexRoot; 3]>) -> bool {
    let bad = |roots: &[IndexRoot; 3]| {
        roots[0].count != roots[1].count || roots.iter().any(|r| r.count > 0 && r.address.is_none())
    };
    bad(current) || history.is_some_and(bad)
}

pub(super) fn put_uuid(id: &uuid::Uuid, out: &mut Vec<u8>) {
    out.extend_from_slice(id.as_bytes());
}

pub(super) fn read_uuid(r: &mut Reader<'_>, what: &'static str) -> Result<uuid::Uuid> {
    Ok(uuid::Uuid::from_bytes(r.array::<16>(what)?))
}

pub(super) fn put_commit(commit: &Option<Commit>, out: &mut Vec<u8>) {
    match commit {
        Some(c) => {
            out.push(1);
            put_uuid(&c.id, out);
            codec::put_varint(c.parents.len() as u64, out);
            for p in &c.parents {
                put_uuid(p, out);
            }
        }
        None => out.push(0),
    }
}

pub(super) fn read_commit(r: &mut Reader<'_>) -> Result<Option<Commit>> {
    if r.u8()? == 0 {
        return Ok(None);
    }
    let id = read_uuid(r, "commit id")?;
    let n = r.varint()?;
    let mut parents = Vec::new();
    for _ in 0..n {
        parents.push(read_uuid(r, "parent commit id")?);
    }
    Ok(Some(Commit { id, parents }))
}

/// Log record, version 2: `[2][tx][max-eid][tx-instant][commit][tx-data][purged]`.
/// Version 1 records (no commit, no purge) are still read.
pub(super) fn encode_log_record(o: &TxOutcome) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + o.tx_data.len() * 24);
    out.push(LOG_VERSION);
    codec::put_ivarint(o.tx, &mut out);
    codec::put_ivarint(o.max_eid, &mut out);
    codec::put_ivarint(o.tx_instant, &mut out);
    put_commit(&o.commit, &mut out);
    codec::put_datoms_body(&o.tx_data, &mut out);
    codec::put_datoms_body(&o.purged, &mut out);
    out
}

pub(super) fn decode_log_record(bytes: &[u8]) -> Result<TxOutcome> {
    let Some((&version, rest)) = bytes.split_first() else {
        return Err(Error::Database("empty log record".into()));
    };
    if version != 1 && version != LOG_VERSION {
        return Err(Error::Database(format!("log record version {version} is not readable by this build")));
    }
    let mut r = Reader::new(rest);
    let tx = r.ivarint()?;
    let max_eid = r.ivarint()?;
    let tx_instant = r.ivarint()?;
    let commit = if version >= 2 { read_commit(&mut r)? } else { None };
    let tx_data = r.datoms()?;
    let purged = if version >= 2 { r.datoms()? } else { Vec::new() };
    r.finish()?;
    Ok(TxOutcome { tx, tx_data, max_eid, tx_instant, tempids: Vec::new(), tx_meta: Vec::new(), purged, commit })
}

/// A pack: the log records of the commits between two snapshots, oldest first, and the id of
/// the earlier snapshot they replay from (`base`). Stored under `packs/<id of the later
/// snapshot>`, whose head also names `base` as its `pack_base`.
pub(super) fn encode_pack(base: &uuid::Uuid, records: &[Arc<[u8]>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + records.iter().map(|r| r.len() + 4).sum::<usize>());
    out.extend_from_slice(PACK_MAGIC);
    out.push(PACK_VERSION);
    put_uuid(base, &mut out);
    codec::put_varint(records.len() as u64, &mut out);
    for r in records {
        codec::put_bytes(r, &mut out);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The part of a checksummed record after its `header` bytes (magic and version) and before
/// its last four, which hold the CRC-32 of everything before them; an error saying that the
/// `what` is damaged when they do not match.
fn checksummed<'a>(bytes: &'a [u8], header: usize, what: &str) -> Result<&'a [u8]> {
    let (body, crc) = bytes.split_at(bytes.len().saturating_sub(4).max(header));
    if crc.try_into().map(u32::from_le_bytes).ok() != Some(crc32fast::hash(body)) {
        return Err(Error::Database(format!("checksum mismatch: the {what} is damaged")));
    }
    Ok(&body[header..])
}

/// Decodes the commit pack stored under `key`; errors name the key. Version 2 packs end in
/// a CRC-32 of everything before it; version 1 packs (no checksum) are still read.
pub(super) fn decode_pack(key: &str, bytes: &[u8]) -> Result<(uuid::Uuid, Vec<TxOutcome>)> {
    decode_pack_inner(bytes).map_err(|e| Error::Database(format!("{key}: {e}")))
}

fn decode_pack_inner(bytes: &[u8]) -> Result<(uuid::Uuid, Vec<TxOutcome>)> {
    if bytes.len() < 9 || &bytes[..8] != PACK_MAGIC || !(1..=PACK_VERSION).contains(&bytes[8]) {
        return Err(Error::Database("not a commit pack of a version this build reads".into()));
    }
    let body = if bytes[8] >= 2 { checksummed(bytes, 9, "commit pack")? } else { &bytes[9..] };
    let mut r = Reader::new(body);
    let base = read_uuid(&mut r, "pack base commit id")?;
    let n = r.count(1, "pack record count")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(decode_log_record(r.bytes()?)?);
    }
    r.finish()?;
    Ok((base, out))
}

/// The record a garbage collection leaves of the commits it deleted, under
/// `gc/collected/<run id>`, so that asking for one of them later says so instead of finding
/// nothing: `[magic][version][at millis][count][ids][crc32]`.
pub(super) fn encode_collected(at_millis: i64, ids: &[uuid::Uuid]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + ids.len() * 16);
    out.extend_from_slice(COLLECTED_MAGIC);
    out.push(1);
    codec::put_ivarint(at_millis, &mut out);
    codec::put_varint(ids.len() as u64, &mut out);
    for id in ids {
        put_uuid(id, &mut out);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a record of [`encode_collected`] stored under `key`: when the collection ran
/// (epoch milliseconds) and the ids of the commits it deleted. Errors name the key.
pub(super) fn decode_collected(key: &str, bytes: &[u8]) -> Result<(i64, Vec<uuid::Uuid>)> {
    let inner = || -> Result<(i64, Vec<uuid::Uuid>)> {
        if bytes.len() < 13 || &bytes[..8] != COLLECTED_MAGIC || bytes[8] != 1 {
            return Err(Error::Database("not a garbage collection record of a version this build reads".into()));
        }
        let mut r = Reader::new(checksummed(bytes, 9, "garbage collection record")?);
        let at = r.ivarint()?;
        let n = r.count(16, "collected commit count")?;
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(read_uuid(&mut r, "collected commit id")?);
        }
        r.finish()?;
        Ok((at, ids))
    };
    inner().map_err(|e| Error::Database(format!("{key}: {e}")))
}

/// The prefix of the records of [`encode_collected`].
pub(super) const COLLECTED_PREFIX: &str = "gc/collected/";
const COLLECTED_MAGIC: &[u8; 8] = b"DHRSGCOL";

pub(super) fn commit_key(id: &uuid::Uuid) -> String {
    format!("commits/{id}")
}

pub(super) fn pack_key(id: &uuid::Uuid) -> String {
    format!("packs/{id}")
}
