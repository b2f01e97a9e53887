//! Commits and branches: `branches`, `branch`, `delete_branch`, `force_branch`, `merge_db`,
//! `commit_as_db`, `branch_as_db`. See ARCHITECTURE.md, "Commits, branches and garbage
//! collection".
//!
//! Every transaction is a commit: its log record carries its id and its parents' ids. A flush
//! stores a snapshot commit (`commits/<id>`, the bytes of the head it publishes) and the pack
//! of the commits since the previous snapshot (`packs/<id>`). A commit is therefore found as
//! (1) a record of a log not yet flushed, (2) a snapshot, or (3) an entry of a pack, rebuilt
//! by replaying the pack from the snapshot it is based on. A branch is a head,
//! `heads/<branch>`, and a log, `log/<branch>`; making one writes only a head.

use super::*;

/// A branch (a keyword such as `:db`) or a commit id: what `branch` starts from and what a
/// merge or `force_branch` names as parents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BranchOrCommit {
    /// The branch's latest commit.
    Branch(Keyword),
    /// One commit.
    Commit(uuid::Uuid),
}

impl BranchOrCommit {
    /// Reads a keyword (a branch) or a `#uuid` (a commit).
    pub fn from_edn(edn: &Edn) -> Result<BranchOrCommit> {
        match edn {
            Edn::Keyword(k) => Ok(BranchOrCommit::Branch(*k)),
            Edn::Uuid(u) => Ok(BranchOrCommit::Commit(*u)),
            other => {
                let message = format!("expected a branch keyword or a commit #uuid, got {other}");
                Err(Error::Argument(crate::error::Detail::new(message).value(other.clone())))
            }
        }
    }
}

impl From<Keyword> for BranchOrCommit {
    fn from(k: Keyword) -> Self {
        BranchOrCommit::Branch(k)
    }
}

impl From<uuid::Uuid> for BranchOrCommit {
    fn from(u: uuid::Uuid) -> Self {
        BranchOrCommit::Commit(u)
    }
}

fn branch_head_key(branch: Keyword) -> String {
    format!("heads/{}", branch.as_str())
}

impl Conn {
    /// The head this connection last read or wrote (for the fields fixed at creation).
    fn last_head(&self) -> Result<Head> {
        let writer = lock(&self.0.writer);
        let durable = writer.durable.as_ref().ok_or_else(|| Error::Database("Connection has been released".into()))?;
        Ok(durable.head.clone())
    }

    /// The store under this connection.
    pub(super) fn store(&self) -> Result<Arc<dyn Store>> {
        let writer = lock(&self.0.writer);
        let durable = writer.durable.as_ref().ok_or_else(|| Error::Database("Connection has been released".into()))?;
        Ok(durable.store.clone())
    }

    fn branch_config(&self, branch: Keyword) -> Config {
        Config { branch, ..(*self.0.config).clone() }
    }

    /// The live connection of this process to `branch` of the same store, if any.
    fn live_branch(&self, branch: Keyword) -> Option<Conn> {
        if branch == self.0.config.branch {
            return Some(self.clone());
        }
        lock(registry()).get(&store_key(&self.branch_config(branch))).cloned().map(Conn)
    }

    /// Datahike's `branches`: every branch of the database, sorted.
    pub fn branches(&self) -> Result<Vec<Keyword>> {
        let mut out: Vec<Keyword> = self
            .store()?
            .list("heads/")?
            .iter()
            .filter_map(|k| k.strip_prefix("heads/"))
            .filter(|b| !b.is_empty())
            .map(Keyword::new)
            .collect();
        out.sort();
        Ok(out)
    }

    /// Datahike's `branch-as-db`: the latest value of `branch`, `None` if there is no such
    /// branch. Reads the branch's head and log; nothing is written. A live connection of this
    /// process to the branch is brought up to date first: another handle or process may have
    /// committed since it did.
    pub fn branch_as_db(&self, branch: Keyword) -> Result<Option<Db>> {
        if let Some(live) = self.live_branch(branch) {
            return live.caught_up().map(Some);
        }
        let store = self.store()?;
        let current = self.current_value();
        for _ in 0..MOVED_HEAD_RETRIES {
            let Some(bytes) = store.get(&branch_head_key(branch))? else { return Ok(None) };
            let head = Head::decode(&branch_head_key(branch), &bytes)?;
            let db = db_from_head(&current.0.config, &head, &current.0.cache)?;
            let replayed =
                replay_log(store.as_ref(), &head.log_name(branch.as_str()), db, head.log_id.is_none(), None)?;
            if !replayed.gap {
                return Ok(Some(replayed.db));
            }
        }
        Err(Error::Database(format!("{}: the head kept moving while it was read", branch_head_key(branch))))
    }

    /// Datahike's `commit-as-db`: the database value of commit `id`, `None` if no commit of
    /// this store ever had that id. A commit that garbage collection removed, or whose record
    /// is lost, is an error saying which.
    pub fn commit_as_db(&self, id: uuid::Uuid) -> Result<Option<Db>> {
        let store = self.store()?;
        let current = self.current_value();
        let (config, cache) = (&current.0.config, &current.0.cache);
        let branches = self.branches()?;
        // 1. A commit of a live connection's log, not flushed yet.
        for &branch in &branches {
            let Some(live) = self.live_branch(branch) else { continue };
            if live.db().commit_id() == Some(id) {
                return Ok(Some(live.db()));
            }
            let found = {
                let writer = lock(&live.0.writer);
                writer.durable.as_ref().and_then(|d| {
                    let pos = d.unflushed.iter().position(|r| r.commit == Some(id))?;
                    Some((d.head.clone(), d.unflushed[..=pos].to_vec()))
                })
            };
            if let Some((head, records)) = found {
                let mut db = db_from_head(config, &head, cache)?;
                for r in records {
                    db = db.apply_tx(&decode_log_record(&r.bytes)?)?;
                }
                return Ok(Some(db));
            }
        }
        // 2. A snapshot.
        if let Some(bytes) = store.get(&commit_key(&id))? {
            return Ok(Some(db_from_head(config, &Head::decode(&commit_key(&id), &bytes)?, cache)?));
        }
        // 3. An entry of a pack.
        for key in store.list("packs/")? {
            let Some(bytes) = store.get(&key)? else { continue };
            let (base, outcomes) = decode_pack(&key, &bytes)?;
            let Some(pos) = outcomes.iter().position(|o| o.commit.as_ref().is_some_and(|c| c.id == id)) else {
                continue;
            };
            let Some(base_bytes) = store.get(&commit_key(&base))? else {
                return Err(Error::Database(format!(
                    "Commit #uuid \"{id}\" cannot be read: {key} replays it from snapshot {}, which is missing \
                     (the store is damaged)",
                    commit_key(&base)
                )));
            };
            let mut db = db_from_head(config, &Head::decode(&commit_key(&base), &base_bytes)?, cache)?;
            for o in &outcomes[..=pos] {
                db = db.apply_tx(o)?;
            }
            return Ok(Some(db));
        }
        // 4. A record of a log no connection of this process holds (another process's writer).
        for &branch in &branches {
            let Some(head_bytes) = store.get(&branch_head_key(branch))? else { continue };
            let head = Head::decode(&branch_head_key(branch), &head_bytes)?;
            let log = head.log_name(branch.as_str());
            for (_, bytes) in store.log_read(&log, 0)? {
                let outcome = decode_log_record(&bytes)?;
                if outcome.commit.as_ref().is_some_and(|c| c.id == id) {
                    // Rebuild from the branch's head: the record is after it.
                    let mut db = db_from_head(config, &head, cache)?;
                    for (_, bytes) in store.log_read(&log, u64::try_from(db.max_tx()).unwrap_or(0))? {
                        let o = decode_log_record(&bytes)?;
                        let done = o.commit.as_ref().is_some_and(|c| c.id == id);
                        db = db.apply_tx(&o)?;
                        if done {
                            return Ok(Some(db));
                        }
                    }
                    break;
                }
            }
        }
        self.missing_commit(store.as_ref(), id)
    }

    /// `commit-as-db` found no commit `id`: `None` when this store never had one, an error
    /// when it had one and garbage collection removed it, or when its record is lost (another
    /// commit names it as a parent, yet neither a record nor a pack holds it).
    fn missing_commit(&self, store: &dyn Store, id: uuid::Uuid) -> Result<Option<Db>> {
        for key in store.list(COLLECTED_PREFIX)? {
            let Some(bytes) = store.get(&key)? else { continue };
            let (at, ids) = decode_collected(&key, &bytes)?;
            if ids.binary_search(&id).is_ok() {
                return Err(Error::Database(format!(
                    "Commit #uuid \"{id}\" was removed by gc-storage at {} (recorded in {key})",
                    crate::edn::pr_str(&Edn::Inst(at))
                )));
            }
        }
        let names_it = |key: &str, parents: &[uuid::Uuid]| {
            if parents.contains(&id) {
                Err(Error::Database(format!(
                    "Commit #uuid \"{id}\" is lost: {key} names it as a parent, but {} is missing and no \
                     commit pack holds it (the store is damaged)",
                    commit_key(&id)
                )))
            } else {
                Ok(())
            }
        };
        for key in store.list("commits/")? {
            let Some(bytes) = store.get(&key)? else { continue };
            names_it(&key, &Head::decode(&key, &bytes)?.commit.parents)?;
        }
        for key in store.list("packs/")? {
            let Some(bytes) = store.get(&key)? else { continue };
            for outcome in decode_pack(&key, &bytes)?.1 {
                names_it(&key, outcome.commit.as_ref().map_or(&[][..], |c| &c.parents))?;
            }
        }
        for key in store.list("heads/")? {
            let Some(bytes) = store.get(&key)? else { continue };
            let head = Head::decode(&key, &bytes)?;
            if head.commit.id == id {
                // A head is the same bytes as its snapshot's record.
                let current = self.current_value();
                return Ok(Some(db_from_head(&current.0.config, &head, &current.0.cache)?));
            }
            names_it(&key, &head.commit.parents)?;
        }
        Ok(None)
    }

    /// The value a branch or commit names, or an error naming it when there is none.
    fn resolve(&self, what: &BranchOrCommit) -> Result<Db> {
        match what {
            BranchOrCommit::Branch(b) => {
                self.branch_as_db(*b)?.ok_or_else(|| Error::Database(format!("Branch :{} does not exist", b.as_str())))
            }
            BranchOrCommit::Commit(c) => {
                self.commit_as_db(*c)?.ok_or_else(|| Error::Database(format!("Commit #uuid \"{c}\" does not exist")))
            }
        }
    }

    fn resolve_commit_id(&self, what: &BranchOrCommit) -> Result<uuid::Uuid> {
        match what {
            BranchOrCommit::Commit(c) if self.store()?.get(&commit_key(c))?.is_some() => Ok(*c),
            _ => self
                .resolve(what)?
                .commit_id()
                .ok_or_else(|| Error::Internal(format!("the value of {what:?} has no commit id"))),
        }
    }

    /// Writes every node of `db` not yet durable and its snapshot record, and returns the
    /// head bytes naming it as commit `commit`. The caller holds the store's writer lock, so
    /// that no garbage collection runs between these writes and the head that names them.
    fn write_snapshot(&self, store: &dyn Store, db: &Db, commit: Commit, fixed: Head) -> Result<Vec<u8>> {
        if db.0.view.is_some() {
            return Err(Error::Argument(
                "a history, as-of, since or filtered view cannot become a branch head; use a database value".into(),
            ));
        }
        if db.config().store != self.0.config.store {
            return Err(Error::Argument(
                format!(
                    "the database value belongs to store {}, not to this connection's store {}",
                    pr_str(&db.config().store.to_edn()),
                    pr_str(&self.0.config.store.to_edn())
                )
                .into(),
            ));
        }
        let Snapshot { pendings, nodes, head, .. } = Snapshot::prepare(db, commit, None, fixed)?;
        if !nodes.is_empty() {
            store.put_batch(&nodes)?;
        }
        // A commit recorded already keeps its record, and the head takes its roots.
        let (_, bytes, _) = record_snapshot(store, head, None)?;
        // The nodes are not marked durable in memory: `db` may be a live connection's value,
        // and a node is durable for it only once its own head names it. This head may be
        // deleted with its branch and collected; the connection's next flush then writes the
        // node again (or finds it still stored).
        drop(pendings);
        Ok(bytes)
    }

    /// Datahike's `branch!`: makes branch `new` start at `from` (a branch's latest commit or
    /// any commit). Writes a head and copies nothing; the new branch shares every node.
    pub fn branch(&self, from: &BranchOrCommit, new: Keyword) -> Result<()> {
        let store = self.store()?;
        if store.get(&branch_head_key(new))?.is_some() {
            return Err(Error::Database(format!("Branch :{} already exists", new.as_str())));
        }
        let db = self.resolve(from)?;
        let commit =
            db.0.commit.as_deref().cloned().ok_or_else(|| Error::Internal("source value has no commit".into()))?;
        let fixed = self.last_head()?;
        let _guard = store.lock_writer()?;
        // A log of its own: one left by an earlier branch of the same name is never read.
        let fixed = Head { log_id: Some(uuid::Uuid::new_v4()), ..fixed };
        let bytes = self.write_snapshot(store.as_ref(), &db, commit, fixed)?;
        if !store.compare_and_set(&branch_head_key(new), None, &bytes)? {
            return Err(Error::Database(format!("Branch :{} already exists", new.as_str())));
        }
        Ok(())
    }

    /// Datahike's `delete-branch!`: removes the head and log of `branch`; its data stays
    /// until garbage collection finds nothing else reaching it. `:db` cannot be deleted.
    pub fn delete_branch(&self, branch: Keyword) -> Result<()> {
        if branch.as_str() == "db" {
            return Err(Error::Database("Cannot delete the main branch :db".into()));
        }
        let store = self.store()?;
        let _guard = store.lock_writer()?;
        let key = branch_head_key(branch);
        let Some(bytes) = store.get(&key)? else {
            return Err(Error::Database(format!("Branch :{} does not exist", branch.as_str())));
        };
        let head = Head::decode(&key, &bytes)?;
        store.delete_batch(&[key])?;
        // For good: a writer of this branch in another process can no longer append to it.
        store.log_delete(&head.log_name(branch.as_str()))?;
        lock(registry()).remove(&store_key(&self.branch_config(branch)));
        Ok(())
    }

    /// Datahike's `force-branch!` (`git reset --hard`): makes `db` the head of `branch`
    /// (created if absent) as a new commit whose parents are `parents` (branches or commits,
    /// at least one). A live connection of this process to that branch continues from `db`.
    pub fn force_branch(&self, db: &Db, branch: Keyword, parents: &[BranchOrCommit]) -> Result<()> {
        if parents.is_empty() {
            return Err(Error::Argument("force-branch needs at least one parent (a branch or a commit id)".into()));
        }
        let mut ids = Vec::with_capacity(parents.len());
        for p in parents {
            let id = self.resolve_commit_id(p)?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let commit = Commit { id: uuid::Uuid::new_v4(), parents: ids };
        let store = self.store()?;
        let fixed = self.last_head()?;
        let live = self.live_branch(branch);
        // Lock order as in a flush: flushing, then writer, then the store's writer lock.
        let _flushing = live.as_ref().map(|c| lock(&c.0.flushing));
        let mut live_writer = live.as_ref().map(|c| drained(&c.0));
        let _guard = store.lock_writer()?;
        // The new line of commits gets a log of its own; the old one is closed for good, so a
        // writer still on the old line fails instead of committing where nobody reads.
        let fixed = Head { log_id: Some(uuid::Uuid::new_v4()), ..fixed };
        let bytes = self.write_snapshot(store.as_ref(), db, commit, fixed)?;
        let key = branch_head_key(branch);
        let current = store.get(&key)?;
        if !store.compare_and_set(&key, current.as_deref(), &bytes)? {
            return Err(Error::Database(format!(
                "the head of branch :{} changed during force-branch",
                branch.as_str()
            )));
        }
        if let Some(old) = &current {
            store.log_delete(&Head::decode(&key, old)?.log_name(branch.as_str()))?;
        }
        if let (Some(conn), Some(writer)) = (&live, live_writer.as_mut()) {
            let (fresh, durable) = open_durable(&conn.0.config, store.clone())?;
            writer.durable = Some(durable);
            *conn.0.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        }
        Ok(())
    }

    /// Datahike's `merge-db!`: transacts `tx_data` (the changes the caller merges in) as a
    /// commit whose parents are this branch's latest commit and the latest commits of
    /// `parents` (branches or commits).
    pub fn merge_db(&self, parents: &[BranchOrCommit], tx_data: &Edn, tx_meta: Option<&Edn>) -> Result<TxReport> {
        let mut ids = Vec::with_capacity(parents.len());
        for p in parents {
            ids.push(self.resolve_commit_id(p)?);
        }
        self.commit(&ids, |db| tx::run(db, tx_data, tx_meta, now_millis()))
    }
}
