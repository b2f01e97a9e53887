//! What `/stats` reports: requests and latencies per route, and each open database's
//! transactions, commit time, log appends and node cache.

use datahike::api::Connections;
use datahike::Edn;
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// How many recent latencies each route keeps for its percentiles.
const RECENT: usize = 4096;

#[derive(Default)]
struct Route {
    requests: u64,
    client_errors: u64,
    server_errors: u64,
    total_micros: u64,
    /// A ring of recent latencies in microseconds.
    recent: Vec<u64>,
    next: usize,
}

/// Counters per route.
#[derive(Default)]
pub struct Stats {
    routes: Mutex<BTreeMap<String, Route>>,
}

impl Stats {
    /// Records one request.
    pub fn record(&self, route: &str, status: u16, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let r = routes.entry(route.to_string()).or_default();
        r.requests += 1;
        r.total_micros = r.total_micros.saturating_add(micros);
        match status {
            400..=499 => r.client_errors += 1,
            500..=599 => r.server_errors += 1,
            _ => {}
        }
        if r.recent.len() < RECENT {
            r.recent.push(micros);
        } else {
            r.recent[r.next] = micros;
            r.next = (r.next + 1) % RECENT;
        }
    }

    /// The report: `{:routes {"/q" {:requests .. :p50-ms .. :p99-ms ..}} :databases [..]}`.
    pub fn to_edn(&self, connections: &Connections, subscribers: usize) -> Edn {
        let kw = Edn::kw;
        let ms = |micros: u64| Edn::Float(micros as f64 / 1000.0);
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let routes = routes
            .iter()
            .map(|(name, r)| {
                let mut sorted = r.recent.clone();
                sorted.sort_unstable();
                let pct = |p: f64| sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0);
                let stats = vec![
                    (kw("requests"), Edn::Int(r.requests as i64)),
                    (kw("client-errors"), Edn::Int(r.client_errors as i64)),
                    (kw("server-errors"), Edn::Int(r.server_errors as i64)),
                    (kw("mean-ms"), ms(r.total_micros / r.requests.max(1))),
                    (kw("p50-ms"), ms(pct(0.5))),
                    (kw("p90-ms"), ms(pct(0.9))),
                    (kw("p99-ms"), ms(pct(0.99))),
                ];
                (Edn::Str(name.as_str().into()), Edn::Map(stats))
            })
            .collect();
        let databases = connections
            .all()
            .iter()
            .map(|conn| {
                let s = conn.stats();
                let lookups = s.cache.lookups.max(1);
                Edn::Map(vec![
                    (kw("store-id"), conn.config().store_id()),
                    (kw("transactions"), Edn::Int(s.transactions as i64)),
                    (kw("failed-transactions"), Edn::Int(s.failed_transactions as i64)),
                    (kw("mean-commit-ms"), ms(s.commit_micros / s.transactions.max(1))),
                    (kw("log-groups"), Edn::Int(s.log_groups as i64)),
                    (kw("log-records"), Edn::Int(s.log_records as i64)),
                    (kw("foreign-transactions"), Edn::Int(s.foreign_transactions as i64)),
                    (kw("flushes"), Edn::Int(s.flushes as i64)),
                    (kw("cache-lookups"), Edn::Int(s.cache.lookups as i64)),
                    (kw("cache-loads"), Edn::Int(s.cache.loads as i64)),
                    (kw("cache-hit-rate"), Edn::Float(1.0 - s.cache.loads.min(lookups) as f64 / lookups as f64)),
                    (kw("cache-nodes"), Edn::Int(s.cache.nodes as i64)),
                ])
            })
            .collect();
        Edn::Map(vec![
            (kw("routes"), Edn::Map(routes)),
            (kw("databases"), Edn::Vector(databases)),
            (kw("subscribers"), Edn::Int(subscribers as i64)),
        ])
    }
}
