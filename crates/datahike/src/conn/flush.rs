//! Index flushes: writing the nodes of a snapshot and publishing the head that names them.

use super::*;

impl Conn {
    /// Writes every index node not yet durable and publishes a head naming them, so that the
    /// log before it can be discarded. Called automatically; exposed for tests and tools.
    pub fn flush(&self) -> Result<()> {
        self.join_flusher()?;
        if self.0.config.read_only {
            return Ok(());
        }
        let db = {
            let mut writer = drained(&self.0);
            let Some(durable) = writer.durable.as_mut() else { return Ok(()) };
            let _guard = durable.store.lock_writer()?;
            let db = self.catch_up(durable, self.current_value(), true)?;
            durable.txs_since_flush = 0;
            durable.bytes_since_flush = 0;
            db
        };
        flush_snapshot(&self.0, &db)
    }

    /// Waits for a background flush and reports its error, if any.
    pub(super) fn join_flusher(&self) -> Result<()> {
        let handle = lock(&self.0.flusher).take();
        if let Some(handle) = handle {
            handle.join().map_err(|_| Error::Internal("the background flush panicked".into()))?;
        }
        match lock(&self.0.flush_error).take() {
            Some(e) => Err(Error::Database(format!("a background index flush failed: {e}"))),
            None => Ok(()),
        }
    }
}

/// The index nodes of a value not stored yet and the head that names the value.
pub(super) struct Snapshot {
    pub(super) pendings: Vec<PendingFlush>,
    pub(super) nodes: Vec<(String, Vec<u8>)>,
    /// Every out-of-line value the new nodes refer to (those in `nodes` and those known to
    /// be stored already).
    pub(super) values: Vec<(String, crate::value::Value)>,
    pub(super) head: Head,
}

impl Snapshot {
    /// Encodes every node of `db`'s indices that is not durable yet, and the head naming
    /// `db` as commit `commit` (the fields fixed at creation come from `fixed`).
    pub(super) fn prepare(db: &Db, commit: Commit, pack_base: Option<uuid::Uuid>, fixed: Head) -> Result<Snapshot> {
        // Out-of-line values known to be stored are skipped only while no collection has run
        // since they were seen (a collection may delete one that a new datom brings back).
        if let Some(store) = db.0.cache.store() {
            db.0.cache.begin_flush(store.get(GC_EPOCH_KEY)?.as_deref());
        }
        let mut pendings = Vec::new();
        for idx in db.0.current.all() {
            pendings.push(idx.prepare_flush()?);
        }
        if let Some(h) = &db.0.history {
            for idx in h.all() {
                pendings.push(idx.prepare_flush()?);
            }
        }
        let nodes: Vec<(String, Vec<u8>)> = pendings.iter_mut().flat_map(|p| std::mem::take(&mut p.nodes)).collect();
        let mut values: Vec<(String, crate::value::Value)> =
            pendings.iter_mut().flat_map(|p| std::mem::take(&mut p.values)).collect();
        values.sort_by(|a, b| a.0.cmp(&b.0));
        values.dedup_by(|a, b| a.0 == b.0);
        let roots: Vec<IndexRoot> = pendings.iter().map(|p| p.root.clone()).collect();
        let head = Head {
            max_eid: db.max_eid(),
            max_tx: db.max_tx(),
            last_tx_instant: db.last_tx_instant(),
            current: [roots[0].clone(), roots[1].clone(), roots[2].clone()],
            history: if roots.len() == 6 { Some([roots[3].clone(), roots[4].clone(), roots[5].clone()]) } else { None },
            pack_base,
            commit,
            ..fixed
        };
        Ok(Snapshot { pendings, nodes, values, head })
    }
}

/// Writes a snapshot's nodes (and out-of-line values), and only once they are durable its
/// commit records (`commits/<id>`, `packs/<id>`). A failed batch may leave any subset of its
/// entries behind ([`Store`]'s contract), so one batch could leave a commit record naming
/// nodes that were never written, which garbage collection and `commit_as_db` would then
/// trust; in this order a commit record on the store always has its nodes. The caller holds
/// the store's writer lock throughout, so that no collection runs between the two.
pub(super) fn put_nodes_then_records(
    store: &dyn Store,
    nodes: &[(String, Vec<u8>)],
    records: &[(String, Vec<u8>)],
) -> Result<()> {
    for batch in [nodes, records] {
        if !batch.is_empty() {
            store.put_batch(batch)?;
        }
    }
    Ok(())
}

/// Records snapshot `head` as commit `commits/<id>`, after its pack (`packs/<id>`, the log
/// records since the previous snapshot), and returns the head to publish, its bytes, and
/// whether it names `head`'s own index roots. The caller holds the store's writer lock and
/// knows every node `head` names to be stored: no collection sweeps before the head is
/// published, and the next one finds the record, so it deletes no node the record names.
///
/// A commit record is never replaced: a collection retains a commit by the roots its record
/// names, and readers and `commit_as_db` may hold those. When this commit is recorded already
/// (by a handle whose flush stopped before its head swap, or by a branch made from it), the
/// head takes that record's roots (the same datoms) and keeps its own other fields (log id,
/// pack base); the flush's own nodes then stay not durable for its connection, whose next
/// flush writes them again.
pub(super) fn record_snapshot(
    store: &dyn Store,
    head: Head,
    pack: Option<(String, Vec<u8>)>,
) -> Result<(Head, Vec<u8>, bool)> {
    if let Some((key, pack)) = pack {
        // A pack of this commit stored already replays the same commits from its own base.
        store.put_if_absent(&key, &pack)?;
    }
    let key = commit_key(&head.commit.id);
    let bytes = head.encode();
    if store.put_if_absent(&key, &bytes)? {
        return Ok((head, bytes, true));
    }
    let recorded = store.get(&key)?.ok_or_else(|| {
        Error::Database(format!("{key}: the commit record disappeared while the writer lock was held"))
    })?;
    let recorded = Head::decode(&key, &recorded)?;
    if recorded.commit.id != head.commit.id || recorded.max_tx != head.max_tx {
        return Err(Error::Database(format!(
            "{key}: the commit record names commit {} at tx {}, not commit {} at tx {}",
            recorded.commit.id, recorded.max_tx, head.commit.id, head.max_tx
        )));
    }
    let own = recorded.current == head.current && recorded.history == head.history;
    let head = Head { current: recorded.current, history: recorded.history, ..head };
    let bytes = head.encode();
    Ok((head, bytes, own))
}

/// Makes every index node of `db` durable, then publishes a head naming them, then discards
/// the log it covers. Node writing runs without the writer lock, so transactions continue;
/// only the head swap takes it. One flush runs at a time per connection.
///
/// With the head go the snapshot's commit record (`commits/<id>`, naming the same index roots
/// as the head) and its pack (`packs/<id>`, the log records since the previous snapshot), so
/// that every commit stays addressable after the log is discarded.
///
/// Garbage collection may run in another thread or process while the nodes are written, and
/// delete a node of this flush that nothing names yet, or one it skipped as already stored
/// (content addressing). Every collection bumps [`GC_EPOCH_KEY`] after its sweep, under the
/// writer lock; a flush that sees the epoch changed between its writes and its head swap
/// writes its nodes again under the lock. Only then, still under the lock and only when it
/// goes on to publish, does it write its commit records ([`record_snapshot`]). Written before
/// the lock, a record could land after a sweep had deleted its nodes, from a flush that then
/// found a newer head and published nothing: a retained commit whose record names nodes that
/// are gone.
pub(super) fn flush_snapshot(inner: &ConnInner, db: &Db) -> Result<()> {
    let _one_at_a_time = lock(&inner.flushing);
    let started = std::time::Instant::now();
    let (store, records, previous) = {
        let writer = lock(&inner.writer);
        match writer.durable.as_ref() {
            Some(d) if d.flushed_tx < db.max_tx() => {
                let records: Vec<Arc<[u8]>> =
                    d.unflushed.iter().filter(|r| r.tx <= db.max_tx()).map(|r| r.bytes.clone()).collect();
                (d.store.clone(), records, d.head.clone())
            }
            _ => return Ok(()),
        }
    };
    let commit =
        db.0.commit
            .as_deref()
            .cloned()
            .ok_or_else(|| Error::Internal("a connection's database value has no commit".into()))?;
    let epoch = store.get(GC_EPOCH_KEY)?;
    let previous_id = previous.commit.id;
    // The last record is this snapshot's own commit: a pack is worth writing only when it
    // holds commits before it.
    let pack_base = (records.len() > 1).then_some(previous_id);
    let Snapshot { pendings, nodes, values, head } = Snapshot::prepare(db, commit, pack_base, previous)?;
    let pack = head.pack_base.is_some().then(|| (pack_key(&head.commit.id), encode_pack(&previous_id, &records)));
    if !nodes.is_empty() {
        store.put_batch(&nodes)?;
    }
    let (node_count, node_bytes) = (nodes.len(), nodes.iter().map(|(_, b)| b.len()).sum::<usize>());
    // The nodes stay in memory until the head names them: a collection may delete one of
    // them from the store before this flush writes it again (below), and nothing must read
    // it from the store meanwhile.
    let mut writer = drained(inner);
    let Some(durable) = writer.durable.as_mut() else { return Ok(()) };
    let _guard = durable.store.lock_writer()?;
    if durable.flushed_tx >= db.max_tx() {
        return Ok(());
    }
    let current = durable.store.get(&durable.head_key)?;
    if current != durable.head_bytes {
        let Some(bytes) = current else {
            return Err(Error::Database(format!(
                "{}: the branch head is gone (the database or branch was deleted)",
                durable.head_key
            )));
        };
        let other = Head::decode(&durable.head_key, &bytes)?;
        if other.log_id != head.log_id || other.max_tx >= db.max_tx() {
            // Another process published a newer state, or another line of commits (a
            // force-branch): this snapshot is moot, and the connection's next catch-up
            // reopens from that head. It leaves no commit record, only nodes that the next
            // collection deletes.
            return Ok(());
        }
        // An older state of this line of commits, flushed by another process: this
        // snapshot supersedes it.
        durable.head_bytes = Some(bytes);
        durable.head = other;
    }
    if durable.head.log_id != head.log_id {
        // The connection moved to another line of commits while this flush wrote its nodes.
        return Ok(());
    }
    if durable.store.get(GC_EPOCH_KEY)? != epoch {
        // Out-of-line values this flush skipped as stored may be gone too.
        let mut written: std::collections::HashSet<&str> = nodes.iter().map(|(k, _)| k.as_str()).collect();
        let again: Vec<(String, Vec<u8>)> = values
            .iter()
            .filter(|(key, _)| written.insert(key.as_str()))
            .filter_map(|(key, v)| crate::index::codec::out_of_line_bytes(v).map(|b| (key.clone(), b.to_vec())))
            .collect();
        durable.store.put_batch(&again)?;
        if !nodes.is_empty() {
            durable.store.put_batch(&nodes)?;
        }
    }
    let (head, bytes, own) = record_snapshot(durable.store.as_ref(), head, pack)?;
    drop(nodes);
    drop(values);
    // The log is discarded one flush behind: records covered by the head being replaced go,
    // records covered only by the new head stay until the next flush. A copy of the store
    // that took `heads/` before `log/` (as `rsync` does, alphabetically) then still finds
    // every record after the head it copied, even if a flush ran during the copy.
    let discard_through = durable.head.max_tx;
    if !durable.store.compare_and_set(&durable.head_key, durable.head_bytes.as_deref(), &bytes)? {
        return Err(Error::Database(
            "the branch head changed underneath this writer; another process wrote without the writer lock".into(),
        ));
    }
    durable.head_bytes = Some(bytes);
    durable.head = head;
    durable.flushed_tx = db.max_tx();
    if own {
        for p in pendings {
            p.mark_durable();
        }
    }
    durable.unflushed.retain(|r| r.tx > db.max_tx());
    durable.store.log_discard(&durable.log, u64::try_from(discard_through).unwrap_or(0))?;
    Counters::add(&inner.counters.flushes, 1);
    tracing::info!(
        target: "datahike::flush",
        head = %durable.head_key,
        tx = db.max_tx(),
        nodes = node_count,
        bytes = node_bytes,
        ms = started.elapsed().as_millis() as u64,
        "index flush published"
    );
    Ok(())
}
