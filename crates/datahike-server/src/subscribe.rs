//! Live updates: `GET /subscribe?config=EDN[&since=TX][&format=edn|json]` streams every
//! transaction report of a database as server-sent events, in commit order, each with its
//! transaction id as the event id. A client that reconnects with `since=TX` (or the standard
//! `Last-Event-ID` header) receives the reports after `TX` that it missed, then the new ones.
//!
//! Each database subscribed to has a [`Hub`]: a listener on the server's connection (which
//! also sees commits of other processes on the same store) appends each report to a bounded
//! buffer and wakes the subscribers. A subscriber that asks for reports older than the buffer
//! holds gets an `event: error` naming the oldest transaction it can resume from.

use datahike::{Conn, Edn};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

/// The reports of one database.
pub struct Hub {
    /// Reports after `covered_from`, oldest first, with their transaction ids.
    buffer: Mutex<Buffer>,
    /// The newest transaction id, for waking subscribers.
    newest: watch::Sender<i64>,
    capacity: usize,
}

struct Buffer {
    /// Every report with a transaction id above this is in `reports`.
    covered_from: i64,
    reports: VecDeque<(i64, Arc<Edn>)>,
}

/// What a subscriber gets next.
pub enum Next {
    /// Reports after the one asked for, oldest first.
    Reports(Vec<(i64, Arc<Edn>)>),
    /// The reports after `since` are no longer buffered; the oldest point to resume from.
    Gone {
        /// The smallest `since` that can still be served.
        oldest: i64,
    },
}

impl Hub {
    fn push(&self, tx: i64, report: Edn) {
        {
            let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
            if buffer.reports.back().is_some_and(|(last, _)| *last >= tx) {
                return;
            }
            buffer.reports.push_back((tx, Arc::new(report)));
            while buffer.reports.len() > self.capacity {
                if let Some((dropped, _)) = buffer.reports.pop_front() {
                    buffer.covered_from = dropped;
                }
            }
        }
        self.newest.send_replace(tx);
    }

    /// The reports after `since`.
    pub fn after(&self, since: i64) -> Next {
        let buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        if since < buffer.covered_from {
            return Next::Gone { oldest: buffer.covered_from };
        }
        Next::Reports(buffer.reports.iter().filter(|(tx, _)| *tx > since).cloned().collect())
    }

    /// The newest transaction id the hub has seen (its starting point when none came yet).
    pub fn newest(&self) -> i64 {
        *self.newest.borrow()
    }

    /// A receiver that changes whenever a report arrives.
    pub fn watch(&self) -> watch::Receiver<i64> {
        self.newest.subscribe()
    }
}

/// The hubs of every database subscribed to.
#[derive(Default)]
pub struct Hubs {
    hubs: Mutex<HashMap<String, Arc<Hub>>>,
    /// Subscribers connected now.
    pub active: AtomicUsize,
}

impl Hubs {
    /// The hub of `conn`'s database, made (and its listener registered) on first use.
    pub fn hub(&self, conn: &Conn, capacity: usize) -> Arc<Hub> {
        let key = datahike::edn::pr_str(&conn.config().store_id());
        let mut hubs = self.hubs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(hub) = hubs.get(&key) {
            return hub.clone();
        }
        let head = conn.db().max_tx();
        let hub = Arc::new(Hub {
            buffer: Mutex::new(Buffer { covered_from: head, reports: VecDeque::new() }),
            newest: watch::channel(head).0,
            capacity: capacity.max(1),
        });
        let listener = Arc::downgrade(&hub);
        conn.listen("datahike-server/subscribe", move |report| {
            if let Some(hub) = listener.upgrade() {
                hub.push(report.db_after.max_tx(), report.to_edn());
            }
        });
        hubs.insert(key, hub.clone());
        hub
    }

    /// Forgets the hub of a database (deleted): its subscribers end.
    pub fn forget(&self, store_id: &Edn) {
        self.hubs.lock().unwrap_or_else(PoisonError::into_inner).remove(&datahike::edn::pr_str(store_id));
    }

    /// Counts a subscriber while the guard lives.
    pub fn enter(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::Relaxed);
        Active(self.clone())
    }
}

/// A connected subscriber.
pub struct Active(Arc<Hubs>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The reports of the transactions after `since` up to `until`, rebuilt from the history
/// of `db` for a subscriber that resumes from before what the hub buffered (the server
/// restarted, or the buffer overflowed). Each has `:tx-data`, `:tx-meta` and
/// `:tempids {:db/current-tx tx}`; the other tempids of a transaction are not stored, so a
/// rebuilt report does not have them. Needs `:keep-history? true` (retractions and
/// overwritten values live only in the history).
pub fn backfill(db: &datahike::Db, since: i64, until: i64) -> datahike::Result<Vec<(i64, Arc<Edn>)>> {
    use std::collections::BTreeMap;
    let history = db.history()?;
    let mut by_tx: BTreeMap<i64, Vec<datahike::Datom>> = BTreeMap::new();
    for datom in history.datoms(datahike::IndexOrder::Eavt, &[])? {
        let tx = datom.tx();
        if tx > since && tx <= until {
            by_tx.entry(tx).or_default().push(datom);
        }
    }
    Ok(by_tx
        .into_iter()
        .map(|(tx, mut datoms)| {
            // The transaction entity's datoms first, as a commit reports them.
            datoms.sort_by_key(|d| d.e != tx);
            let meta =
                datoms.iter().filter(|d| d.e == tx && d.added()).map(|d| (Edn::Keyword(d.a), d.v.to_edn())).collect();
            let summary = |t: i64| {
                Edn::Tagged(
                    datahike::Symbol::new("datahike/DB"),
                    Box::new(Edn::Map(vec![(Edn::kw("max-tx"), Edn::Int(t))])),
                )
            };
            let report = Edn::Map(vec![
                (Edn::kw("db-before"), summary(tx - 1)),
                (Edn::kw("db-after"), summary(tx)),
                (Edn::kw("tx-data"), Edn::Vector(datoms.iter().map(|d| db.datom_tagged_edn(d)).collect())),
                (Edn::kw("tempids"), Edn::Map(vec![(Edn::kw("db/current-tx"), Edn::Int(tx))])),
                (Edn::kw("tx-meta"), Edn::Map(meta)),
            ]);
            (tx, Arc::new(report))
        })
        .collect())
}
