//! Group commit: the log records of a connection's transactions reach the store in groups,
//! written by the committers themselves.
//!
//! A committer queues its record (in commit order, under the writer mutex) and then, without
//! the writer mutex, either finds no append under way and becomes the *leader*: it takes
//! every queued record and appends them with one [`Store::log_append_many`] (one sync on the
//! file store); or it waits while the current leader works, and the records queued meanwhile
//! go out together in the next group, appended by whichever waiter leads next. A lone
//! committer thus appends its own record on its own thread, with no thread handoff, and
//! concurrent committers share syncs. Nobody polls: waiting is sleeping on a condition
//! variable, so commits need no idle core.

use super::*;
use std::sync::Condvar;

/// The queue of records on their way to the log, and what became of them.
pub(super) struct LogQueue {
    state: Mutex<QueueState>,
    changed: Condvar,
    /// The connection's counters (log appends and records).
    counters: Arc<Counters>,
}

struct QueueState {
    queued: Vec<Queued>,
    /// A leader is appending a group.
    appending: bool,
    progress: ProgressState,
    /// The outcome of each appended or refused record, by ticket, until its committer takes it.
    outcomes: HashMap<u64, Result<()>>,
    next_ticket: u64,
}

struct Queued {
    ticket: u64,
    seq: u64,
    record: Arc<[u8]>,
    generation: u64,
}

/// The log's progress: the highest sequence number durable, and the generation of the
/// pipeline that failed, if one did. A record that fails to append fails every record made
/// after it in the same generation (each was made from a database value that includes it);
/// the connection then starts a new generation from its last durable value.
#[derive(Clone, Copy, Default)]
pub(super) struct ProgressState {
    pub(super) durable_through: u64,
    pub(super) failed_generation: Option<u64>,
    /// The failure was a lost race with another writer: the transactions it takes along are
    /// retried like the one that lost.
    failed_by_conflict: bool,
}

/// A record queued; [`PendingAppend::wait`] returns once it is durable (or failed).
pub(super) struct PendingAppend {
    queue: Arc<LogQueue>,
    store: Arc<dyn Store>,
    log: String,
    ticket: u64,
}

/// The most records, and about the most bytes, one group appends.
const GROUP_RECORDS_MAX: usize = 1024;
const GROUP_BYTES_MAX: usize = 16 << 20;

/// `DATAHIKE_GROUP_COMMIT=off` gives every record an append (and a sync) of its own, for
/// measuring what group commit saves; transactions still pipeline.
fn group_records_max() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| match std::env::var("DATAHIKE_GROUP_COMMIT").as_deref() {
        Ok("off" | "0" | "false") => 1,
        _ => GROUP_RECORDS_MAX,
    })
}

impl LogQueue {
    pub(super) fn new(counters: Arc<Counters>) -> LogQueue {
        LogQueue {
            counters,
            state: Mutex::new(QueueState {
                queued: Vec::new(),
                appending: false,
                progress: ProgressState::default(),
                outcomes: HashMap::new(),
                next_ticket: 0,
            }),
            changed: Condvar::new(),
        }
    }

    pub(super) fn progress(&self) -> ProgressState {
        lock(&self.state).progress
    }
}

impl Durable {
    /// Queues `record` (made in pipeline generation `generation`); called in commit order.
    pub(super) fn queue_append(
        &mut self,
        seq: u64,
        record: Arc<[u8]>,
        generation: u64,
        counters: &Arc<Counters>,
    ) -> PendingAppend {
        let queue = self.log_queue.get_or_insert_with(|| Arc::new(LogQueue::new(counters.clone()))).clone();
        let ticket = {
            let mut state = lock(&queue.state);
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.queued.push(Queued { ticket, seq, record, generation });
            ticket
        };
        PendingAppend { queue, store: self.store.clone(), log: self.log.clone(), ticket }
    }
}

impl PendingAppend {
    /// Leads appends or waits for them until this record's outcome is known.
    pub(super) fn wait(self) -> Result<()> {
        let queue = &self.queue;
        let mut state = lock(&queue.state);
        loop {
            if let Some(outcome) = state.outcomes.remove(&self.ticket) {
                return outcome;
            }
            if state.appending {
                state = queue.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Lead: take the queued records (up to a group's worth) and append them.
            let max = group_records_max();
            let mut take = 0;
            let mut bytes = 0;
            while take < state.queued.len() && take < max && (take == 0 || bytes < GROUP_BYTES_MAX) {
                bytes += state.queued[take].record.len();
                take += 1;
            }
            let group: Vec<Queued> = state.queued.drain(..take).collect();
            let before = state.progress;
            state.appending = true;
            drop(state);
            let outcomes = append_group(self.store.as_ref(), &self.log, before, &group);
            Counters::add(&queue.counters.log_groups, 1);
            Counters::add(&queue.counters.log_records, u64::try_from(group.len()).unwrap_or(0));
            state = lock(&queue.state);
            state.appending = false;
            state.progress = outcomes.progress;
            state.outcomes.extend(outcomes.results);
            queue.changed.notify_all();
        }
    }
}

struct GroupOutcome {
    progress: ProgressState,
    results: Vec<(u64, Result<()>)>,
}

/// Appends one group with one [`Store::log_append_many`]: the progress after it and each
/// record's outcome. Records of a generation that failed before are refused unwritten.
fn append_group(store: &dyn Store, log: &str, mut progress: ProgressState, group: &[Queued]) -> GroupOutcome {
    let mut results = Vec::with_capacity(group.len());
    let (doomed, live): (Vec<&Queued>, Vec<&Queued>) =
        group.iter().partition(|r| progress.failed_generation.is_some_and(|g| r.generation <= g));
    for request in doomed {
        results.push((request.ticket, Err(not_committed(log, request.seq, progress.failed_by_conflict))));
    }
    if live.is_empty() {
        return GroupOutcome { progress, results };
    }
    let records: Vec<(u64, &[u8])> = live.iter().map(|r| (r.seq, &r.record[..])).collect();
    let started = std::time::Instant::now();
    let (appended, error) = match store.log_append_many(log, &records) {
        Ok(()) => (live.len(), None),
        Err(failure) => (failure.appended.min(live.len()), Some(failure.error)),
    };
    tracing::debug!(
        target: "datahike::commit",
        log,
        records = records.len(),
        appended,
        bytes = records.iter().map(|(_, r)| r.len()).sum::<usize>(),
        micros = started.elapsed().as_micros() as u64,
        "log group appended"
    );
    if let Some(error) = &error {
        tracing::warn!(target: "datahike::commit", log, appended, %error, "log append failed");
    }
    if appended > 0 {
        progress.durable_through = live[appended - 1].seq;
    }
    let by_conflict = matches!(error, Some(StoreError::Conflict { .. }));
    if error.is_some() {
        progress.failed_generation = Some(live[appended.min(live.len() - 1)].generation);
        progress.failed_by_conflict = by_conflict;
    }
    let mut error = error.map(Error::from);
    for (i, request) in live.into_iter().enumerate() {
        let outcome = if i < appended {
            Ok(())
        } else {
            match error.take() {
                Some(first) => Err(first),
                None => Err(not_committed(log, request.seq, by_conflict)),
            }
        };
        results.push((request.ticket, outcome));
    }
    GroupOutcome { progress, results }
}

/// The error of a record refused because one before it failed: a conflict when that one lost
/// a race with another writer (so the transaction is retried on the newer value).
fn not_committed(log: &str, seq: u64, by_conflict: bool) -> Error {
    let reason = "a transaction made before it failed to reach the log; nothing of this one is in effect";
    if by_conflict {
        Error::Store(StoreError::Conflict { key: crate::store::log_key(log, seq), reason: reason.into() })
    } else {
        Error::Database(format!("log {log}: transaction {seq} was not committed: {reason}"))
    }
}
