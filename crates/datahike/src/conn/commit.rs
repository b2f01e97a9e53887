//! The commit path: one transaction from the writer lock to the published value, and
//! catching up with commits of other processes.

use super::*;

impl Conn {
    /// Transacts `tx_data` (a vector of entity maps and op vectors) and returns once it is
    /// durable.
    pub fn transact(&self, tx_data: &Edn) -> Result<TxReport> {
        self.transact_with_meta(tx_data, None)
    }

    /// Accepts Datahike's argument map `{:tx-data [...] :tx-meta {...}}` or a plain vector.
    pub fn transact_arg(&self, arg: &Edn) -> Result<TxReport> {
        match arg {
            Edn::Map(_) => {
                let data = arg.get_kw("tx-data").ok_or_else(|| {
                    Error::Tx(crate::error::TxError::Syntax(format!("Bad argument {arg}: a map must contain :tx-data")))
                })?;
                self.transact_with_meta(data, arg.get_kw("tx-meta"))
            }
            _ => self.transact(arg),
        }
    }

    /// Transacts with transaction metadata (a map asserted on the transaction entity).
    pub fn transact_with_meta(&self, tx_data: &Edn, tx_meta: Option<&Edn>) -> Result<TxReport> {
        self.commit(&[], |db| tx::run(db, tx_data, tx_meta, now_millis()))
    }

    /// Runs `make` against the freshest database under the writer locks, then makes the
    /// outcome durable and publishes it.
    ///
    /// The commit's parents are the branch's previous commit and `merged` (a merge). When the
    /// store refuses the log record because another writer committed first (a writer lock
    /// that lapsed, a second writer without one), nothing of this attempt is in effect: the
    /// connection catches up and `make` runs again on the newer database, a few times.
    pub(super) fn commit(&self, merged: &[uuid::Uuid], make: impl Fn(&Db) -> Result<TxOutcome>) -> Result<TxReport> {
        let id = Arc::as_ptr(&self.0) as usize;
        if NOTIFYING.with(|n| n.borrow().contains(&id)) {
            return Err(Error::Database(
                "Cannot transact on a connection from inside one of its listen callbacks (it would wait for itself)"
                    .into(),
            ));
        }
        if self.0.config.read_only {
            return Err(Error::Database(format!(
                "Cannot transact through a read-only connection (:read-only? true): {}",
                pr_str(&self.0.config.store.to_edn())
            )));
        }
        let mut writer = lock(&self.0.writer);
        let durable = writer.durable.as_mut().ok_or_else(|| Error::Database("Connection has been released".into()))?;
        let guard = durable.store.lock_writer()?;
        let mut trusted = true;
        let (db_before, outcome, db_after, record) = loop {
            let db_before = self.catch_up(durable, self.current_value(), trusted)?;
            let mut outcome = make(&db_before)?;
            let mut parents: Vec<uuid::Uuid> = db_before.commit_id().into_iter().collect();
            for p in merged {
                if !parents.contains(p) {
                    parents.push(*p);
                }
            }
            let commit = Commit { id: uuid::Uuid::new_v4(), parents };
            outcome.tx_meta.push((Keyword::new("db/commitId"), Edn::Uuid(commit.id)));
            outcome.commit = Some(commit);
            let record: Arc<[u8]> = encode_log_record(&outcome).into();
            match append_and_apply(durable, &db_before, &outcome, &record) {
                Ok(db_after) => break (db_before, outcome, db_after, record),
                Err(Error::Store(StoreError::Conflict { .. })) if trusted || durable.conflicts < CONFLICT_RETRIES => {
                    // Another writer took this transaction's place in the log: catch up the
                    // slow way (the fast path trusts what this handle appended) and retry.
                    durable.conflicts += 1;
                    trusted = false;
                }
                Err(e) => {
                    durable.conflicts = 0;
                    return Err(e);
                }
            }
        };
        durable.conflicts = 0;
        durable.txs_since_flush += 1;
        durable.bytes_since_flush += record.len();
        let commit_id = outcome.commit.as_ref().map(|c| c.id);
        durable.unflushed.push(LogRecord { tx: outcome.tx, commit: commit_id, bytes: record });
        *self.0.current.write().unwrap_or_else(PoisonError::into_inner) = db_after.clone();
        let every = if durable.inline_log { MEMORY_FLUSH_EVERY_TXS } else { FLUSH_EVERY_TXS };
        if durable.txs_since_flush >= every || durable.bytes_since_flush >= FLUSH_EVERY_BYTES {
            // Index nodes are written in the background; transactions go on meanwhile, their
            // records stay in the log until a head covers them.
            durable.txs_since_flush = 0;
            durable.bytes_since_flush = 0;
            let inner = self.0.clone();
            let snapshot = db_after.clone();
            let handle = std::thread::spawn(move || {
                if let Err(e) = flush_snapshot(&inner, &snapshot) {
                    *lock(&inner.flush_error) = Some(e.to_string());
                }
            });
            *lock(&self.0.flusher) = Some(handle);
        }
        let report = TxReport {
            db_before,
            db_after,
            tx_data: outcome.tx_data,
            tempids: outcome.tempids,
            tx_meta: outcome.tx_meta,
        };
        // Callbacks run after the writer is released, one transaction at a time in commit
        // order: the next commit waits for `notifying` before releasing the writer.
        let notifying = lock(&self.0.notifying);
        drop(guard);
        drop(writer);
        self.notify(&report, id);
        drop(notifying);
        Ok(report)
    }

    /// Brings `db` up to date with commits made by other handles and processes on the same
    /// store: reads the head, reopens from it when it is not a state of `db`'s line of
    /// commits (newer, or another line after a force-branch), and replays the log after it.
    /// With `trusted`, a store that can tell cheaply that nobody appended since this handle
    /// did ([`Store::log_is_current`]) skips all of it.
    pub(super) fn catch_up(&self, durable: &mut Durable, db: Db, trusted: bool) -> Result<Db> {
        if trusted && durable.store.log_is_current(&durable.log, u64::try_from(db.max_tx()).unwrap_or(0))? {
            return Ok(db);
        }
        for _ in 0..MOVED_HEAD_RETRIES {
            let head_bytes = durable.store.get(&durable.head_key)?;
            if head_bytes != durable.head_bytes {
                let bytes = head_bytes.ok_or_else(|| {
                    Error::Database(format!(
                        "{}: the branch head is gone (the database or branch was deleted)",
                        durable.head_key
                    ))
                })?;
                let head = Head::decode(&durable.head_key, &bytes)?;
                if !durable.precedes(&head, &db) {
                    let (fresh, fresh_durable) = open_durable(&self.0.config, durable.store.clone())?;
                    let conflicts = durable.conflicts;
                    *durable = fresh_durable;
                    durable.conflicts = conflicts;
                    *self.0.current.write().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
                    return Ok(fresh);
                }
                durable.adopt(bytes, head);
            }
            if let Some(db) = replay(durable, db.clone())? {
                *self.0.current.write().unwrap_or_else(PoisonError::into_inner) = db.clone();
                return Ok(db);
            }
        }
        Err(Error::Database(format!(
            "{}: the head kept moving while the log was read ({MOVED_HEAD_RETRIES} attempts)",
            durable.head_key
        )))
    }
}

/// How often a transaction is retried after losing its place in the log to another writer.
const CONFLICT_RETRIES: usize = 4;

/// Appends the record of `outcome` and applies it to `db_before`; the new value, once both
/// are done.
fn append_and_apply(durable: &mut Durable, db_before: &Db, outcome: &TxOutcome, record: &Arc<[u8]>) -> Result<Db> {
    let seq = u64::try_from(outcome.tx).unwrap_or(0);
    if durable.stale_log {
        durable.log_writer = None;
        durable.store.log_delete(&durable.log)?;
        durable.stale_log = false;
    }
    if durable.inline_log {
        durable.store.log_append(&durable.log, seq, record)?;
        return db_before.apply_tx(outcome);
    }
    // The log append (one fdatasync) and the in-memory index update are independent: run
    // them side by side; the new value is published only once both are done.
    let pending = durable.log_writer()?.append(seq, record.clone())?;
    let db_after = db_before.apply_tx(outcome);
    pending.wait()?;
    db_after
}

impl Durable {
    /// Whether `head`, read from the store, is a state of `db`'s line of commits at or before
    /// `db` (another process flushed what this connection already has).
    pub(super) fn precedes(&self, head: &Head, db: &Db) -> bool {
        if head.log_id != self.head.log_id || head.max_tx > db.max_tx() {
            return false;
        }
        let ours = if head.max_tx == db.max_tx() {
            db.commit_id()
        } else if head.max_tx == self.head.max_tx {
            Some(self.head.commit.id)
        } else {
            self.unflushed.iter().find(|r| r.tx == head.max_tx).and_then(|r| r.commit)
        };
        ours == Some(head.commit.id)
    }

    /// Takes `head` (a state this connection has, see [`Durable::precedes`]) as the head:
    /// the records it covers are flushed.
    pub(super) fn adopt(&mut self, bytes: Vec<u8>, head: Head) {
        self.flushed_tx = self.flushed_tx.max(head.max_tx);
        self.unflushed.retain(|r| r.tx > head.max_tx);
        self.head_bytes = Some(bytes);
        self.head = head;
    }
}
