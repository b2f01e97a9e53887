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
                    let message = format!("Bad argument {arg}: a map must contain :tx-data");
                    Error::Tx(crate::error::TxError::Syntax(crate::error::Detail::new(message).value(arg.clone())))
                })?;
                self.transact_with_meta(data, arg.get_kw("tx-meta"))
            }
            _ => self.transact(arg),
        }
    }

    /// Transacts with transaction metadata (a map asserted on the transaction entity).
    pub fn transact_with_meta(&self, tx_data: &Edn, tx_meta: Option<&Edn>) -> Result<TxReport> {
        if let Some(writer) = &self.0.config.writer {
            return self.transact_remote(writer, tx_data, tx_meta);
        }
        self.commit(&[], |db| tx::run(db, tx_data, tx_meta, now_millis()))
    }

    /// Runs `make` against the freshest database under the writer lock, then makes the
    /// outcome durable and publishes it.
    ///
    /// The commit's parents are the branch's previous commit and `merged` (a merge). When the
    /// store refuses the log record because another writer committed first (a writer lock
    /// that lapsed, a second writer without one), nothing of this attempt is in effect: the
    /// connection catches up and `make` runs again on the newer database, a few times.
    ///
    /// **Group commit.** The writer mutex is held only while the transaction is made and
    /// applied in memory, not while its record is synced: the next transaction is made from
    /// this one's value meanwhile, and the log writer appends all records that arrived during
    /// a sync with one sync. A transaction is published (`db()`, listeners) and acknowledged
    /// only once its record and every record before it are durable; if one fails to reach the
    /// log, those made after it fail too, and nothing of them is in effect.
    pub(super) fn commit(&self, merged: &[uuid::Uuid], make: impl Fn(&Db) -> Result<TxOutcome>) -> Result<TxReport> {
        let started = Instant::now();
        let result = self.commit_counted(merged, make);
        let counters = &self.0.counters;
        match &result {
            Ok(_) => {
                Counters::add(&counters.transactions, 1);
                Counters::add(
                    &counters.commit_micros,
                    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                );
            }
            Err(_) => Counters::add(&counters.failed_transactions, 1),
        }
        result
    }

    fn commit_counted(&self, merged: &[uuid::Uuid], make: impl Fn(&Db) -> Result<TxOutcome>) -> Result<TxReport> {
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
        let mut trusted = true;
        let mut conflicts = 0;
        loop {
            let (pending, report) = {
                let mut writer = lock(&self.0.writer);
                // A flush, collection or branch change waits for the pipeline to empty: no
                // transaction joins it meanwhile.
                while writer.draining > 0 {
                    writer = self.0.settled.wait(writer).unwrap_or_else(PoisonError::into_inner);
                }
                let published = self.settle(&mut writer);
                if !published.is_empty() {
                    self.notify_published(writer, published, id);
                    continue;
                }
                let durable =
                    writer.durable.as_mut().ok_or_else(|| Error::Database("Connection has been released".into()))?;
                if durable.inline_log {
                    let report = self.commit_inline(durable, merged, &make)?;
                    let published = if self.has_listeners() { vec![report.clone()] } else { Vec::new() };
                    self.notify_published(writer, published, id);
                    return Ok(report);
                }
                let started = self.start_in_flight(durable, merged, &make, trusted);
                if started.is_err() {
                    durable.end_pipeline_if_idle();
                }
                // Transactions of other processes that the catch-up replayed come first.
                self.deliver_foreign(writer, id);
                started?
            };
            let appended = pending.wait();
            let mut writer = lock(&self.0.writer);
            let published = self.settle(&mut writer);
            self.notify_published(writer, published, id);
            match appended {
                Ok(()) => {
                    tracing::trace!(target: "datahike::commit", tx = report.db_after.max_tx(), "transaction durable");
                    return Ok(report);
                }
                Err(Error::Store(StoreError::Conflict { ref key, .. })) if conflicts < CONFLICT_RETRIES => {
                    tracing::debug!(target: "datahike::commit", key = %key, "lost the log position to another writer; retrying");
                    // Another writer took this transaction's place in the log (or one made
                    // before it did): catch up the slow way and run it again.
                    conflicts += 1;
                    trusted = false;
                }
                Err(e) => return Err(e),
            }
        }
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
                    let foreign = durable.foreign.take().map(|mut foreign| {
                        foreign.extend(foreign_since(durable, &db, &fresh));
                        foreign
                    });
                    let conflicts = durable.conflicts;
                    // The store's writer lock this handle holds stays held.
                    let held = durable.held.take();
                    *durable = fresh_durable;
                    durable.conflicts = conflicts;
                    durable.held = held;
                    durable.foreign = foreign;
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

    /// The latest value of this connection's branch: its own value brought up to date with
    /// what other handles and processes committed since (a writer's `db()` is only its own
    /// last commit). Waits for this connection's transactions in flight.
    pub(super) fn caught_up(&self) -> Result<Db> {
        if self.0.config.read_only {
            return self.latest();
        }
        let mut writer = drained(&self.0);
        let Some(durable) = writer.durable.as_mut() else {
            return Err(Error::Database("Connection has been released".into()));
        };
        self.catch_up(durable, self.current_value(), true)
    }

    /// Makes and applies one transaction, hands its record to the log writer and puts it in
    /// the pipeline; the caller waits for the append without the writer mutex.
    fn start_in_flight(
        &self,
        durable: &mut Durable,
        merged: &[uuid::Uuid],
        make: &impl Fn(&Db) -> Result<TxOutcome>,
        trusted: bool,
    ) -> Result<(PendingAppend, TxReport)> {
        let db_before = match durable.tip.clone() {
            Some(tip) => tip,
            None => {
                // The first transaction of a pipeline takes the store's writer lock (kept
                // until the pipeline empties) and catches up with other processes.
                if durable.held.is_none() {
                    durable.held = Some(durable.store.lock_writer()?);
                }
                let trusted = trusted && !std::mem::take(&mut durable.distrust);
                self.catch_up(durable, self.current_value(), trusted)?
            }
        };
        let (outcome, record) = make_commit(&db_before, merged, make)?;
        // Applied before the record is handed over: a transaction that cannot be applied is
        // never written.
        let db_after = db_before.apply_tx(&outcome)?;
        if durable.stale_log {
            durable.log_queue = None;
            durable.store.log_delete(&durable.log)?;
            durable.stale_log = false;
        }
        let seq = u64::try_from(outcome.tx).unwrap_or(0);
        let generation = durable.generation;
        let pending = durable.queue_append(seq, record.clone(), generation, &self.0.counters);
        let commit_id = outcome.commit.as_ref().map(|c| c.id);
        let report = TxReport {
            db_before,
            db_after: db_after.clone(),
            tx_data: outcome.tx_data,
            tempids: outcome.tempids,
            tx_meta: outcome.tx_meta,
        };
        durable.pipeline.push_back(InFlight {
            seq,
            db_after: db_after.clone(),
            record: LogRecord { tx: outcome.tx, commit: commit_id, bytes: record },
            // A copy for the listeners only when there are any (tx-data can be large).
            report: self.has_listeners().then(|| report.clone()),
        });
        durable.tip = Some(db_after);
        Ok((pending, report))
    }

    /// Publishes, in order, the transactions of the pipeline that the log writer made durable
    /// and starts a background flush when one is due; after a failed append, drops the
    /// transactions made after it. Returns the reports to hand to the listeners.
    fn settle(&self, writer: &mut MutexGuard<'_, Writer>) -> Vec<TxReport> {
        let Some(durable) = writer.durable.as_mut() else { return Vec::new() };
        let Some(progress) = durable.log_queue.as_ref().map(|q| q.progress()) else { return Vec::new() };
        let mut published = Vec::new();
        let mut settled = false;
        while durable.pipeline.front().is_some_and(|f| f.seq <= progress.durable_through) {
            let Some(done) = durable.pipeline.pop_front() else { break };
            settled = true;
            durable.txs_since_flush += 1;
            durable.bytes_since_flush += done.record.bytes.len();
            durable.unflushed.push(done.record);
            *self.0.current.write().unwrap_or_else(PoisonError::into_inner) = done.db_after;
            published.extend(done.report);
        }
        if progress.failed_generation == Some(durable.generation) {
            // What is left was made from a value that includes the failed record: none of it
            // reaches the log (the log writer refuses this generation), and the next
            // transaction starts from the last durable value, re-reading the log.
            durable.pipeline.clear();
            durable.generation += 1;
            durable.distrust = true;
        }
        durable.end_pipeline_if_idle();
        // Whether or not anyone listens (`published` holds reports only for listeners).
        if settled {
            let every = if durable.inline_log { MEMORY_FLUSH_EVERY_TXS } else { FLUSH_EVERY_TXS };
            if durable.txs_since_flush >= every || durable.bytes_since_flush >= FLUSH_EVERY_BYTES {
                durable.txs_since_flush = 0;
                durable.bytes_since_flush = 0;
                self.flush_in_background();
            }
        }
        if writer.durable.as_ref().is_some_and(|d| d.pipeline.is_empty()) {
            self.0.settled.notify_all();
        }
        published
    }

    /// Index nodes are written in the background; transactions go on meanwhile, their records
    /// stay in the log until a head covers them.
    fn flush_in_background(&self) {
        let inner = self.0.clone();
        let snapshot = self.current_value();
        let handle = std::thread::spawn(move || {
            if let Err(e) = flush_snapshot(&inner, &snapshot) {
                *lock(&inner.flush_error) = Some(e.to_string());
            }
        });
        *lock(&self.0.flusher) = Some(handle);
    }

    fn has_listeners(&self) -> bool {
        !lock(&self.0.listeners).is_empty()
    }

    /// Releases the writer mutex and hands the reports of other processes' transactions that
    /// catching up collected to the listeners (in commit order, before anything this
    /// connection commits later). From inside a callback they wait for the next delivery.
    pub(super) fn deliver_foreign(&self, mut writer: MutexGuard<'_, Writer>, id: usize) {
        if NOTIFYING.with(|n| n.borrow().contains(&id)) {
            return;
        }
        let foreign = writer.durable.as_mut().and_then(|d| d.foreign.as_mut()).map(std::mem::take).unwrap_or_default();
        Counters::add(&self.0.counters.foreign_transactions, u64::try_from(foreign.len()).unwrap_or(0));
        self.notify_published(writer, foreign, id);
    }

    /// Releases the writer mutex and runs the listeners on `published`, in commit order:
    /// whoever publishes later transactions waits for `notifying` before it releases the
    /// writer.
    pub(super) fn notify_published(&self, writer: MutexGuard<'_, Writer>, published: Vec<TxReport>, id: usize) {
        if published.is_empty() {
            return;
        }
        let notifying = lock(&self.0.notifying);
        drop(writer);
        for report in &published {
            self.notify(report, id);
        }
        drop(notifying);
    }

    /// The commit path of a store whose append is a map insert (the memory backend): no log
    /// thread, no pipeline.
    fn commit_inline(
        &self,
        durable: &mut Durable,
        merged: &[uuid::Uuid],
        make: &impl Fn(&Db) -> Result<TxOutcome>,
    ) -> Result<TxReport> {
        let guard = durable.store.lock_writer()?;
        let mut trusted = true;
        let (db_before, outcome, db_after, record) = loop {
            let db_before = self.catch_up(durable, self.current_value(), trusted)?;
            let (outcome, record) = make_commit(&db_before, merged, make)?;
            let db_after = db_before.apply_tx(&outcome)?;
            if durable.stale_log {
                durable.store.log_delete(&durable.log)?;
                durable.stale_log = false;
            }
            let seq = u64::try_from(outcome.tx).unwrap_or(0);
            match durable.store.log_append(&durable.log, seq, &record) {
                Ok(()) => break (db_before, outcome, db_after, record),
                Err(StoreError::Conflict { .. }) if trusted || durable.conflicts < CONFLICT_RETRIES => {
                    durable.conflicts += 1;
                    trusted = false;
                }
                Err(e) => {
                    durable.conflicts = 0;
                    return Err(e.into());
                }
            }
        };
        durable.conflicts = 0;
        durable.txs_since_flush += 1;
        durable.bytes_since_flush += record.len();
        let commit_id = outcome.commit.as_ref().map(|c| c.id);
        durable.unflushed.push(LogRecord { tx: outcome.tx, commit: commit_id, bytes: record });
        *self.0.current.write().unwrap_or_else(PoisonError::into_inner) = db_after.clone();
        if durable.txs_since_flush >= MEMORY_FLUSH_EVERY_TXS || durable.bytes_since_flush >= FLUSH_EVERY_BYTES {
            durable.txs_since_flush = 0;
            durable.bytes_since_flush = 0;
            self.flush_in_background();
        }
        drop(guard);
        let report = TxReport {
            db_before,
            db_after,
            tx_data: outcome.tx_data,
            tempids: outcome.tempids,
            tx_meta: outcome.tx_meta,
        };
        Ok(report)
    }
}

/// Runs `make` on `db_before` and makes the outcome a commit whose parents are `db_before`'s
/// commit and `merged`; the outcome and its log record.
fn make_commit(
    db_before: &Db,
    merged: &[uuid::Uuid],
    make: &impl Fn(&Db) -> Result<TxOutcome>,
) -> Result<(TxOutcome, Arc<[u8]>)> {
    let mut outcome = make(db_before)?;
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
    Ok((outcome, record))
}

/// The reports of the transactions between `db` and `fresh` (a value reopened from a head
/// another process published), replayed from the log where it still holds them: for the
/// `listen` callbacks. Empty when the log no longer starts right after `db` (another process
/// flushed twice since) or the branch moved to another line of commits.
fn foreign_since(durable: &Durable, db: &Db, fresh: &Db) -> Vec<TxReport> {
    if fresh.max_tx() <= db.max_tx() {
        return Vec::new();
    }
    let mut reports = Vec::new();
    let legacy = durable.head.log_id.is_none();
    match replay_log(durable.store.as_ref(), &durable.log, db.clone(), legacy, Some(&mut reports)) {
        Ok(replayed) if !replayed.gap => {
            reports.retain(|r| r.db_after.max_tx() <= fresh.max_tx());
            reports
        }
        _ => Vec::new(),
    }
}

/// How often a transaction is retried after losing its place in the log to another writer.
const CONFLICT_RETRIES: usize = 4;

impl Durable {
    /// Ends a pipeline that has emptied: the store's writer lock is given back and the next
    /// transaction starts from the published value.
    pub(super) fn end_pipeline_if_idle(&mut self) {
        if self.pipeline.is_empty() {
            self.tip = None;
            self.held = None;
        }
    }

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
