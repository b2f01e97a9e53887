//! Garbage collection: `gc_storage` deletes what no live branch head and no retained commit
//! reaches. See ARCHITECTURE.md, "Commits, branches and garbage collection", for why it is
//! safe while transactions and flushes run.

use super::*;
use crate::index::mark_reachable;
use std::collections::HashSet;

/// Held by a collection, and by a verification so that no collection sweeps under it. One
/// collection at a time in this process: a second one would sweep by stale marks.
static COLLECTING: Mutex<()> = Mutex::new(());

/// What a garbage collection did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Every store key it deleted (index nodes, out-of-line values, commit records and
    /// packs), then the paths of temporary files that crashed writes had left.
    pub deleted: Vec<String>,
    /// Commit records (snapshots) kept.
    pub kept_commits: usize,
    /// Index nodes kept.
    pub kept_nodes: usize,
    /// Out-of-line values (`values/<hash>`) kept.
    pub kept_values: usize,
    /// Bytes the deleted keys occupied, as the store measured them just before deleting them
    /// ([`crate::store::Store::stored_sizes`]); `None` when the store could not tell the size
    /// of one of them (S3 and GCS know only the sizes of index nodes, DynamoDB and stores that
    /// keep the trait's default none). Temporary files are not keys and are not counted, nor
    /// are the log records a collection discards.
    pub freed_bytes: Option<u64>,
    /// Index nodes (`nodes/`) deleted.
    pub deleted_nodes: usize,
    /// Out-of-line values (`values/`) deleted.
    pub deleted_values: usize,
    /// Snapshot commit records (`commits/`) deleted.
    pub deleted_commits: usize,
    /// Commit packs (`packs/`) deleted.
    pub deleted_packs: usize,
    /// Temporary files of crashed writes deleted (the last entries of `deleted`).
    pub deleted_temporaries: usize,
}

/// What the sweep deletes, by kind, and the bytes the store says the keys hold.
struct Doomed {
    freed_bytes: Option<u64>,
    nodes: usize,
    values: usize,
    commits: usize,
    packs: usize,
}

impl Doomed {
    /// Counts `keys` by prefix and asks the store their sizes. The sizes only inform the
    /// report: a store that fails to tell them does not stop the collection.
    fn measure(store: &dyn Store, keys: &[String]) -> Doomed {
        let count = |prefix: &str| keys.iter().filter(|key| key.starts_with(prefix)).count();
        let freed_bytes = if keys.is_empty() {
            Some(0)
        } else {
            match store.stored_sizes(keys) {
                Ok(sizes) if sizes.len() == keys.len() => {
                    sizes.into_iter().try_fold(0u64, |sum, size| Some(sum.saturating_add(size?)))
                }
                Ok(sizes) => {
                    tracing::warn!(
                        target: "datahike::gc",
                        keys = keys.len(),
                        sizes = sizes.len(),
                        "the store answered sizes for a different number of keys; bytes freed unknown"
                    );
                    None
                }
                Err(e) => {
                    tracing::warn!(target: "datahike::gc", error = %e, "could not read the sizes of the keys to delete");
                    None
                }
            }
        };
        Doomed {
            freed_bytes,
            nodes: count("nodes/"),
            values: count("values/"),
            commits: count("commits/"),
            packs: count("packs/"),
        }
    }
}

/// The collector's view of the retained commits and the nodes they reach.
struct Marker<'a> {
    store: &'a dyn Store,
    kind: crate::index::IndexKind,
    marked: HashSet<String>,
    retained: HashSet<uuid::Uuid>,
}

impl Marker<'_> {
    fn mark(&mut self, head: &Head) -> Result<()> {
        self.retained.insert(head.commit.id);
        let roots = head.current.iter().chain(head.history.iter().flatten());
        for root in roots {
            mark_reachable(self.kind, root, self.store, &mut self.marked).map_err(|e| {
                Error::Database(format!("commit #uuid \"{}\" (tx {}): {e}", head.commit.id, head.max_tx))
            })?;
        }
        Ok(())
    }

    /// Marks every branch head; returns the head bytes read, by key.
    fn mark_heads(&mut self, seen: &HashMap<String, Vec<u8>>) -> Result<HashMap<String, Vec<u8>>> {
        let mut heads = HashMap::new();
        for key in self.store.list("heads/")? {
            let Some(bytes) = self.store.get(&key)? else { continue };
            if seen.get(&key) != Some(&bytes) {
                self.mark(&Head::decode(&key, &bytes)?)?;
            }
            heads.insert(key, bytes);
        }
        Ok(heads)
    }
}

/// Every commit the store knows: the snapshots (commit records) and the entries of the packs.
#[derive(Default)]
struct CommitGraph {
    snapshots: HashMap<uuid::Uuid, Head>,
    /// Parents and instant of every commit.
    commits: HashMap<uuid::Uuid, (Vec<uuid::Uuid>, i64)>,
    /// Pack key -> (the snapshot it replays from, its commits).
    packs: HashMap<String, (uuid::Uuid, Vec<uuid::Uuid>)>,
}

impl CommitGraph {
    fn read(store: &dyn Store, commit_keys: &[String], pack_keys: &[String]) -> Result<CommitGraph> {
        let mut graph = CommitGraph::default();
        graph.add(store, commit_keys, pack_keys)?;
        Ok(graph)
    }

    /// Adds the commit records and packs under `commit_keys` and `pack_keys` (those deleted
    /// meanwhile are skipped).
    fn add(&mut self, store: &dyn Store, commit_keys: &[String], pack_keys: &[String]) -> Result<()> {
        for key in commit_keys {
            if let Some(bytes) = store.get(key)? {
                let head = Head::decode(key, &bytes)?;
                // The record of a snapshot takes precedence over a pack's entry for it.
                self.commits
                    .insert(head.commit.id, (head.commit.parents.clone(), head.last_tx_instant.max(head.created_at)));
                self.snapshots.insert(head.commit.id, head);
            }
        }
        for key in pack_keys {
            let Some(bytes) = store.get(key)? else { continue };
            let (base, outcomes) = decode_pack(key, &bytes)?;
            let mut ids = Vec::new();
            for o in outcomes {
                if let Some(c) = o.commit {
                    ids.push(c.id);
                    self.commits.entry(c.id).or_insert((c.parents, o.tx_instant));
                }
            }
            self.packs.insert(key.clone(), (base, ids));
        }
        Ok(())
    }

    /// Those of `ids` (a pack's commits) that are not snapshots: what only packs hold.
    fn pack_only<'a>(&'a self, ids: &'a [uuid::Uuid]) -> impl Iterator<Item = &'a uuid::Uuid> + 'a {
        ids.iter().filter(|id| !self.snapshots.contains_key(id))
    }

    /// The commits reachable from `heads` through parents, stopping at commits older than
    /// `cutoff`; then the packs that hold one of them, and the snapshots those commits need
    /// (their own, or the base their pack replays from).
    fn retain(
        &self,
        heads: impl IntoIterator<Item = uuid::Uuid>,
        cutoff: Option<i64>,
    ) -> (HashSet<uuid::Uuid>, HashSet<String>) {
        let mut walk: Vec<uuid::Uuid> = heads.into_iter().collect();
        let mut retained: HashSet<uuid::Uuid> = HashSet::new();
        while let Some(id) = walk.pop() {
            if !retained.insert(id) {
                continue;
            }
            let Some((parents, _)) = self.commits.get(&id) else { continue };
            for p in parents {
                let recent = self.commits.get(p).is_some_and(|(_, at)| cutoff.is_none_or(|c| *at >= c));
                if recent && !retained.contains(p) {
                    walk.push(*p);
                }
            }
        }
        let mut needed: HashSet<uuid::Uuid> =
            self.snapshots.keys().filter(|id| retained.contains(id)).copied().collect();
        let mut kept_packs = HashSet::new();
        for (key, (base, ids)) in &self.packs {
            if self.pack_only(ids).any(|id| retained.contains(id)) && self.snapshots.contains_key(base) {
                kept_packs.insert(key.clone());
                needed.insert(*base);
            }
        }
        (needed, kept_packs)
    }
}

impl Conn {
    /// Checks that every node reachable from a branch head, or from a commit a head reaches,
    /// is stored and decodes (hash included); returns how many there are. An error names the
    /// first node missing or corrupt.
    pub fn verify_storage(&self) -> Result<usize> {
        let _one = lock(&COLLECTING);
        let store = self.store()?;
        let graph = CommitGraph::read(store.as_ref(), &store.list("commits/")?, &store.list("packs/")?)?;
        let mut marker = Marker {
            store: store.as_ref(),
            kind: self.0.config.index,
            marked: HashSet::new(),
            retained: HashSet::new(),
        };
        marker.mark_heads(&HashMap::default())?;
        let (needed, _) = graph.retain(marker.retained.clone(), None);
        for id in needed {
            if let Some(head) = graph.snapshots.get(&id) {
                marker.mark(head)?;
            }
        }
        // Out-of-line values are marked by key, unread: check that each is there, whole.
        for key in &marker.marked {
            let Some(hash) = crate::index::codec::parse_value_key(key) else { continue };
            let reason = match store.get(key)? {
                None => "the out-of-line value is missing from the store, yet a retained index node refers to it",
                Some(bytes) if crate::index::codec::value_hash(&bytes) != hash => {
                    "the hash of the out-of-line value's bytes does not match its key"
                }
                Some(_) => continue,
            };
            return Err(StoreError::Corrupt { key: key.clone(), reason: reason.into() }.into());
        }
        Ok(marker.marked.len())
    }

    /// Datahike's `gc-storage`: deletes every index node, commit record and pack that no
    /// branch head and no retained commit reaches. The retained commits are those reachable
    /// from a head through parents; with `remove_before` (epoch milliseconds) the walk stops
    /// at commits older than it, so without it only what no live branch reaches goes (deleted
    /// branches, data purged once no commit holds it). A commit between two snapshots lives in
    /// a pack that replays from the earlier snapshot, so retaining it keeps that snapshot too.
    ///
    /// Runs online: transactions continue, waiting only while the sweep deletes. The log of
    /// this branch is cleared when the head covers all of it, so data purged before the
    /// collection is gone from it too.
    ///
    /// A reader holding a database value older than `remove_before` may find its nodes gone,
    /// as in Datahike: choose the cutoff older than any snapshot still read.
    ///
    /// The report lists the deleted keys, counts them by kind and says how many bytes they
    /// held ([`GcReport::freed_bytes`], asked of the store just before the keys go).
    pub fn gc_storage(&self, remove_before: Option<i64>) -> Result<GcReport> {
        if self.0.config.read_only {
            return Err(Error::Database(format!(
                "Cannot collect garbage through a read-only connection (:read-only? true): {}",
                pr_str(&self.0.config.store.to_edn())
            )));
        }
        let _one = lock(&COLLECTING);
        let started = std::time::Instant::now();
        // The head then covers every commit so far: their packs and nodes are stored.
        self.flush()?;
        let store = self.store()?;
        let mut nodes = store.list("nodes/")?;
        nodes.extend(store.list("values/")?);
        let commits = store.list("commits/")?;
        let packs = store.list("packs/")?;
        let mut graph = CommitGraph::read(store.as_ref(), &commits, &packs)?;
        let mut marker = Marker {
            store: store.as_ref(),
            kind: self.0.config.index,
            marked: HashSet::new(),
            retained: HashSet::new(),
        };
        let heads = marker.mark_heads(&HashMap::default())?;
        let (needed, _) = graph.retain(marker.retained.clone(), remove_before);
        for id in &needed {
            if let Some(head) = graph.snapshots.get(id) {
                marker.mark(head)?;
            }
        }
        // The sweep runs under the writer lock: no head moves meanwhile. Heads published since
        // the marking are marked now (shared subtrees are already marked, so this is cheap).
        let writer = drained(&self.0);
        let _guard = store.lock_writer()?;
        let heads_now = marker.mark_heads(&heads)?;
        // The commit records and packs written since the listing (a flush writes them under
        // this lock, just before its head) join the graph: a head published since then is
        // reached through them, and through it every commit before it. Without them the walk
        // from such a head stopped at the head itself, and the sweep took every older snapshot
        // (and the nodes of the head a reader was still catching up from).
        let listed: HashSet<&String> = commits.iter().chain(&packs).collect();
        let new_commits: Vec<String> = store.list("commits/")?.into_iter().filter(|k| !listed.contains(k)).collect();
        let new_packs: Vec<String> = store.list("packs/")?.into_iter().filter(|k| !listed.contains(k)).collect();
        graph.add(store.as_ref(), &new_commits, &new_packs)?;
        // Snapshots recorded since the listing are kept whole, retained or not (a flush that
        // published a head and was superseded meanwhile, a branch made, a flush that failed
        // after recording): their records are not swept, so neither may be the nodes they name.
        for key in &new_commits {
            let Some(id) = key.strip_prefix("commits/").and_then(|u| uuid::Uuid::parse_str(u).ok()) else { continue };
            if let Some(head) = graph.snapshots.get(&id) {
                marker.mark(head)?;
            }
        }
        // New heads keep their packs and the snapshots those replay from.
        let (needed, kept_packs) = graph.retain(marker.retained.clone(), remove_before);
        for id in &needed {
            if let Some(head) = graph.snapshots.get(id) {
                marker.mark(head)?;
            }
        }
        let mut doomed: Vec<String> = nodes.into_iter().filter(|k| !marker.marked.contains(k)).collect();
        let kept_values = marker.marked.iter().filter(|k| k.starts_with("values/")).count();
        let id_of = |key: &str| key.strip_prefix("commits/").and_then(|u| uuid::Uuid::parse_str(u).ok());
        let mut kept_commits = 0;
        // Every commit that goes: snapshots, and those only a doomed pack holds.
        let mut collected = Vec::new();
        for key in commits {
            match id_of(&key) {
                Some(id) if needed.contains(&id) || marker.retained.contains(&id) => kept_commits += 1,
                Some(id) => {
                    collected.push(id);
                    doomed.push(key);
                }
                None => {}
            }
        }
        for (key, (_, ids)) in &graph.packs {
            if !kept_packs.contains(key) {
                collected.extend(graph.pack_only(ids).copied());
                doomed.push(key.clone());
            }
        }
        // Recorded before anything goes, so that `commit-as-db` of a collected commit says
        // that it was collected rather than finding nothing (see `Conn::commit_as_db`).
        if !collected.is_empty() {
            collected.sort_unstable();
            collected.dedup();
            let key = format!("{COLLECTED_PREFIX}{}", uuid::Uuid::new_v4().simple());
            store.put_batch(&[(key, encode_collected(now_millis(), &collected))])?;
        }
        // Measured before anything goes (a deleted key has no size).
        let measured = Doomed::measure(store.as_ref(), &doomed);
        // Commit records and packs go before the nodes they name: a sweep that stops halfway
        // leaves nodes that nothing names (the next collection takes them), never a record
        // naming nodes that are gone, whose roots a flush of that commit would publish.
        let (records, unreachable): (Vec<String>, Vec<String>) =
            doomed.iter().cloned().partition(|k| k.starts_with("commits/") || k.starts_with("packs/"));
        store.delete_batch(&records)?;
        store.delete_batch(&unreachable)?;
        let temporaries = store.sweep_temporaries()?;
        let deleted_temporaries = temporaries.len();
        doomed.extend(temporaries);
        // A flush that skipped writing a node this sweep deleted (the same content) sees the
        // epoch change and writes its nodes again before publishing its head.
        store.put_batch(&[(GC_EPOCH_KEY.to_string(), uuid::Uuid::new_v4().as_bytes().to_vec())])?;
        // Log records that a head covers go, so that purged data leaves the logs too. Heads as
        // read under the lock: a record newer than its branch's head (another process's
        // commit not flushed yet) stays.
        for (key, bytes) in &heads_now {
            let head = Head::decode(key, bytes)?;
            let branch = key.strip_prefix("heads/").unwrap_or(key);
            store.log_discard_all(&head.log_name(branch), u64::try_from(head.max_tx).unwrap_or(0))?;
        }
        drop(writer);
        let kept_nodes = marker.marked.len() - kept_values;
        tracing::info!(
            target: "datahike::gc",
            deleted = doomed.len(),
            deleted_nodes = measured.nodes,
            deleted_values = measured.values,
            deleted_commits = measured.commits,
            deleted_packs = measured.packs,
            deleted_temporaries,
            freed_bytes = measured.freed_bytes,
            kept_commits,
            kept_nodes,
            kept_values,
            ms = started.elapsed().as_millis() as u64,
            "garbage collected"
        );
        Ok(GcReport {
            deleted: doomed,
            kept_commits,
            kept_nodes,
            kept_values,
            freed_bytes: measured.freed_bytes,
            deleted_nodes: measured.nodes,
            deleted_values: measured.values,
            deleted_commits: measured.commits,
            deleted_packs: measured.packs,
            deleted_temporaries,
        })
    }
}
