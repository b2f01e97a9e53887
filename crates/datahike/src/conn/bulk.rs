//! Bulk loading: many transactions, each with its own id, instant and commit, applied in
//! memory and made durable in batches, one index flush per batch instead of one log sync per
//! transaction. `migrate::import_db` loads dumps through it.
//!
//! Crash argument. A bulk load never appends to the log: each batch becomes durable the way
//! a flush does (nodes, the batch's commit records as a pack, then the head by
//! compare-and-set), so a crash loses at most the batch being built and leaves a head that
//! names only durable nodes, exactly as a crash during a flush does. Nothing is acknowledged
//! before [`BulkLoad::finish`] returns. Before the first batch, a marker (`imports/<branch>`)
//! is stored; `finish` deletes it after the last head is published. A load that stops in
//! between (an error, a crash, SIGKILL) leaves the marker, and [`refuse_interrupted`] makes
//! every later `connect` (and so every later import) fail with a message that says so, so a
//! partial load is never taken for a complete one. The writer lock is held from start to
//! finish, so no other writer (and no garbage collection sweep) interleaves.

use super::{
    commit_key, drained, encode_log_record, encode_pack, lock, pack_key, put_nodes_then_records, Conn, LogRecord,
    Snapshot, Writer,
};
use crate::config::Config;
use crate::db::Db;
use crate::edn::{pr_str, read_str, Edn};
use crate::error::{Error, MigrateError, Result};
use crate::store::{Store, WriterGuard};
use crate::tx::{Commit, TxOutcome};
use std::sync::{Arc, MutexGuard, PoisonError};

/// A batch is made durable after this many transactions...
pub(crate) const BATCH_TXS: usize = 10_000;
/// ...or this many bytes of commit records, whichever comes first.
pub(crate) const BATCH_BYTES: usize = 64 << 20;

/// The store key of the in-progress marker of a branch.
fn marker_key(config: &Config) -> String {
    format!("imports/{}", config.branch.as_str())
}

/// Fails when `store` holds a bulk load into this config's branch that did not finish.
pub(crate) fn refuse_interrupted(store: &dyn Store, config: &Config) -> Result<()> {
    let Some(bytes) = store.get(&marker_key(config))? else { return Ok(()) };
    let text = String::from_utf8_lossy(&bytes);
    let about = read_str(&text).ok();
    let field = |k: &str| about.as_ref().and_then(|m| m.get_kw(k)).map(pr_str).unwrap_or_else(|| "?".into());
    Err(MigrateError::Interrupted(format!(
        "Database {} (branch :{}) holds an import from {} that has not completed (started {} by process {}): \
         it is still running or was interrupted, so the database holds part of the source at most. \
         Delete the database and import again.",
        pr_str(&config.store.to_edn()),
        config.branch.as_str(),
        field("source"),
        field("started"),
        field("pid"),
    ))
    .into())
}

/// A bulk load under way: holds the connection's writer until [`BulkLoad::finish`].
pub(crate) struct BulkLoad<'c> {
    conn: &'c Conn,
    writer: MutexGuard<'c, Writer>,
    _store_lock: WriterGuard,
    db: Db,
    txs_in_batch: usize,
    bytes_in_batch: usize,
    batch_txs: usize,
    marker: String,
    finished: bool,
}

impl Conn {
    /// Starts a bulk load described by `source` (recorded in the in-progress marker). Any
    /// earlier transactions of this connection are flushed first.
    pub(crate) fn bulk_load(&self, source: &str) -> Result<BulkLoad<'_>> {
        self.flush()?;
        let mut writer = drained(&self.0);
        let durable = writer.durable.as_mut().ok_or_else(|| Error::Database("Connection has been released".into()))?;
        let store_lock = durable.store.lock_writer()?;
        let db = self.catch_up(durable, self.current_value(), true)?;
        refuse_interrupted(durable.store.as_ref(), &self.0.config)?;
        let marker = marker_key(&self.0.config);
        let about = Edn::Map(vec![
            (Edn::kw("source"), Edn::str(source)),
            (Edn::kw("started"), Edn::Inst(crate::db::now_millis())),
            (Edn::kw("pid"), Edn::Int(i64::from(std::process::id()))),
        ]);
        durable.store.put_batch(&[(marker.clone(), pr_str(&about).into_bytes())])?;
        Ok(BulkLoad {
            conn: self,
            writer,
            _store_lock: store_lock,
            db,
            txs_in_batch: 0,
            bytes_in_batch: 0,
            // Tests make every transaction its own batch, so that a load is slow enough to kill.
            batch_txs: std::env::var("DATAHIKE_BULK_BATCH_TXS").ok().and_then(|s| s.parse().ok()).unwrap_or(BATCH_TXS),
            marker,
            finished: false,
        })
    }
}

impl BulkLoad<'_> {
    /// The database with every transaction applied so far (durable or not).
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// Makes a batch durable after `n` transactions instead of [`BATCH_TXS`] (tests).
    #[allow(dead_code)]
    pub(crate) fn set_batch_txs(&mut self, n: usize) {
        self.batch_txs = n.max(1);
    }

    /// After how many transactions a batch is made durable (`DATAHIKE_BULK_BATCH_TXS` or
    /// [`BulkLoad::set_batch_txs`] change it).
    pub(crate) fn batch_txs(&self) -> usize {
        self.batch_txs
    }

    /// Applies consecutive transactions, each a new commit of the branch (its log record goes
    /// into the batch's pack, so `commit_as_db` finds every one), with one index update for
    /// all of them: `Db::apply_tx` folds tx-data datom by datom, so the concatenation of
    /// several transactions' tx-data gives the same indices as applying them one by one.
    /// They are durable after the next batch flush, and published to the connection then.
    pub(crate) fn apply(&mut self, outcomes: Vec<TxOutcome>) -> Result<()> {
        let Some(last) = outcomes.last() else { return Ok(()) };
        let mut combined = TxOutcome {
            tx: last.tx,
            tx_data: Vec::with_capacity(outcomes.iter().map(|o| o.tx_data.len()).sum()),
            max_eid: self.db.max_eid(),
            tx_instant: last.tx_instant,
            tempids: Vec::new(),
            tx_meta: Vec::new(),
            purged: Vec::new(),
            commit: None,
        };
        let mut parent = self.db.commit_id();
        let durable =
            self.writer.durable.as_mut().ok_or_else(|| Error::Database("Connection has been released".into()))?;
        for mut outcome in outcomes {
            if !outcome.purged.is_empty() {
                return Err(Error::Internal("a bulk load cannot purge".into()));
            }
            let commit = Commit { id: uuid::Uuid::new_v4(), parents: parent.into_iter().collect() };
            parent = Some(commit.id);
            outcome.commit = Some(commit.clone());
            let record: Arc<[u8]> = encode_log_record(&outcome).into();
            self.txs_in_batch += 1;
            self.bytes_in_batch += record.len();
            durable.unflushed.push(LogRecord { tx: outcome.tx, commit: Some(commit.id), bytes: record });
            combined.max_eid = combined.max_eid.max(outcome.max_eid);
            combined.tx_data.append(&mut outcome.tx_data);
            combined.commit = Some(commit);
        }
        self.db = self.db.apply_tx(&combined)?;
        if self.txs_in_batch >= self.batch_txs || self.bytes_in_batch >= BATCH_BYTES {
            self.flush_batch()?;
        }
        Ok(())
    }

    /// Makes every applied transaction durable (as [`super::flush_snapshot`] does, under the
    /// writer lock this load holds) and publishes the database.
    fn flush_batch(&mut self) -> Result<()> {
        let inner = &self.conn.0;
        let _one_at_a_time = lock(&inner.flushing);
        let durable =
            self.writer.durable.as_mut().ok_or_else(|| Error::Database("Connection has been released".into()))?;
        if durable.unflushed.is_empty() {
            return Ok(());
        }
        let commit = self
            .db
            .0
            .commit
            .as_deref()
            .cloned()
            .ok_or_else(|| Error::Internal("a bulk load without a commit".into()))?;
        let previous = durable.head.clone();
        let previous_id = previous.commit.id;
        let records: Vec<Arc<[u8]>> = durable.unflushed.iter().map(|r| r.bytes.clone()).collect();
        let pack_base = (records.len() > 1).then_some(previous_id);
        let Snapshot { pendings, nodes, head, .. } = Snapshot::prepare(&self.db, commit, pack_base, previous)?;
        let bytes = head.encode();
        let mut commit_records = Vec::with_capacity(2);
        if head.pack_base.is_some() {
            commit_records.push((pack_key(&head.commit.id), encode_pack(&previous_id, &records)));
        }
        commit_records.push((commit_key(&head.commit.id), bytes.clone()));
        put_nodes_then_records(durable.store.as_ref(), &nodes, &commit_records)?;
        drop(nodes);
        if !durable.store.compare_and_set(&durable.head_key, durable.head_bytes.as_deref(), &bytes)? {
            return Err(Error::Database(
                "the branch head changed underneath a bulk load; another process wrote without the writer lock".into(),
            ));
        }
        let discard_through = durable.head.max_tx;
        durable.head_bytes = Some(bytes);
        durable.head = head;
        durable.flushed_tx = self.db.max_tx();
        for p in pendings {
            p.mark_durable();
        }
        durable.unflushed.clear();
        durable.txs_since_flush = 0;
        durable.bytes_since_flush = 0;
        durable.store.log_discard(&durable.log, u64::try_from(discard_through).unwrap_or(0))?;
        *inner.current.write().unwrap_or_else(PoisonError::into_inner) = self.db.clone();
        self.txs_in_batch = 0;
        self.bytes_in_batch = 0;
        Ok(())
    }

    /// Makes the last batch durable, removes the in-progress marker and returns the database.
    pub(crate) fn finish(mut self) -> Result<Db> {
        self.flush_batch()?;
        let durable =
            self.writer.durable.as_mut().ok_or_else(|| Error::Database("Connection has been released".into()))?;
        durable.store.delete_batch(std::slice::from_ref(&self.marker))?;
        self.finished = true;
        Ok(self.db.clone())
    }
}

impl Drop for BulkLoad<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // The records since the last batch were never durable nor published: forget them,
            // so that the connection's next flush does not pack them. The marker stays.
            if let Some(durable) = self.writer.durable.as_mut() {
                durable.unflushed.clear();
            }
        }
    }
}
