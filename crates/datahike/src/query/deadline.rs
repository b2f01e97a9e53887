//! The limits of a running query: the deadline of its `:timeout` and its memory budget. They
//! are kept per thread, so that the executor's inner loops check them without carrying them
//! around. The deadline: [`tick`] counts, and reads the clock once every [`CHECK_EVERY`]
//! ticks. The budget: the growable structures of a query (the values of relations and
//! result tuples, hash tables, group chains: `rel::Tracked`) [`charge`] the bytes they grow by
//! before they grow, and [`release`] them when they are dropped, so the charged total is the
//! query's live intermediate data. Nested queries run under the earlier deadline and the
//! smaller budget of their own and the enclosing query's, and share its charged total.

use super::QueryError;
use crate::edn::Edn;
use crate::error::{Detail, Error, Result};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Ticks between two readings of the clock.
const CHECK_EVERY: u32 = 1024;

thread_local! {
    /// The deadline and the `:timeout` in milliseconds it came from.
    static DEADLINE: Cell<Option<(Instant, u64)>> = const { Cell::new(None) };
    static TICKS: Cell<u32> = const { Cell::new(0) };
    /// The memory budget of the running query, in bytes (none outside queries).
    static BUDGET: Cell<Option<u64>> = const { Cell::new(None) };
    /// Bytes charged by live query structures.
    static CHARGED: Cell<u64> = const { Cell::new(0) };
}

/// Restores the enclosing deadline and budget when a query ends, however it ends.
pub(crate) struct Guard {
    previous: Option<(Instant, u64)>,
    previous_budget: Option<u64>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.previous));
        BUDGET.with(|b| b.set(self.previous_budget));
    }
}

/// Starts a query with `timeout_ms` (none: only the enclosing query's deadline applies) and a
/// memory budget of `memory_bytes` (the enclosing query's, when smaller).
pub(crate) fn start(timeout_ms: Option<u64>, memory_bytes: u64) -> Guard {
    let previous = DEADLINE.with(Cell::get);
    let own = timeout_ms.map(|ms| (Instant::now() + Duration::from_millis(ms), ms));
    let deadline = match (previous, own) {
        (Some(p), Some(o)) => Some(if o.0 < p.0 { o } else { p }),
        (p, o) => o.or(p),
    };
    DEADLINE.with(|d| d.set(deadline));
    let previous_budget = BUDGET.with(Cell::get);
    BUDGET.with(|b| b.set(Some(previous_budget.map_or(memory_bytes, |p| p.min(memory_bytes)))));
    Guard { previous, previous_budget }
}

/// Charges `bytes` about to be allocated against the budget: an error, charging nothing,
/// when they would exceed it.
pub(crate) fn charge(bytes: usize) -> Result<()> {
    let bytes = bytes as u64;
    let charged = CHARGED.with(Cell::get);
    let total = charged.saturating_add(bytes);
    if let Some(limit) = BUDGET.with(Cell::get) {
        if total > limit {
            return Err(over_budget(limit));
        }
    }
    CHARGED.with(|c| c.set(total));
    Ok(())
}

/// Charges `bytes` already allocated, without a check: the next [`charge`] checks the total.
pub(crate) fn force_charge(bytes: usize) {
    CHARGED.with(|c| c.set(c.get().saturating_add(bytes as u64)));
}

/// Gives back `bytes` charged earlier (a structure was dropped or shrank).
pub(crate) fn release(bytes: usize) {
    CHARGED.with(|c| c.set(c.get().saturating_sub(bytes as u64)));
}

/// Bytes charged for a structure that is not a [`super::rel::Tracked`] vector (hash sets of
/// rule answers, result rows), given back when dropped.
#[derive(Default)]
pub(crate) struct Charge {
    bytes: usize,
}

impl Charge {
    /// Charges `bytes` more: an error, charging nothing, when they would exceed the budget.
    pub fn add(&mut self, bytes: usize) -> Result<()> {
        charge(bytes)?;
        self.bytes = self.bytes.saturating_add(bytes);
        Ok(())
    }

    /// The bytes of a stored row of `n` values, as a vector in a vector and in a hash set.
    pub fn row_bytes(n: usize) -> usize {
        2 * (std::mem::size_of::<Vec<crate::value::Value>>() + n * std::mem::size_of::<crate::value::Value>()) + 16
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        release(self.bytes);
    }
}

/// Bytes charged now by live structures on this thread.
#[cfg(test)]
pub(crate) fn charged() -> u64 {
    CHARGED.with(Cell::get)
}

/// The error of a query that needs more than its budget of `limit` bytes.
pub(crate) fn over_budget(limit: u64) -> Error {
    let mib = limit as f64 / (1024.0 * 1024.0);
    let message = format!(
        "Query exceeded its memory limit of {limit} bytes ({mib:.1} MiB) in intermediate results; \
         narrow the query (a :limit, an aggregate, fewer unjoined clauses), or raise the database's \
         :query-memory-limit (a query's own :memory-limit can only lower it)"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Error::Query(QueryError::MemoryLimit(Detail::new(message).with("limit", Edn::Int(limit))))
}

/// The error of an allocation of `bytes` that the system refused, within the budget.
pub(crate) fn allocation_failed(bytes: usize) -> Error {
    let limit = BUDGET.with(Cell::get).unwrap_or(u64::MAX);
    let message = format!(
        "Query could not allocate {bytes} more bytes for intermediate results (the system refused; \
         its :query-memory-limit is {limit} bytes): lower :query-memory-limit or narrow the query"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Error::Query(QueryError::MemoryLimit(
        Detail::new(message)
            .with("limit", Edn::Int(limit))
            .with("bytes", Edn::Int(i64::try_from(bytes).unwrap_or(i64::MAX))),
    ))
}

/// An error when the deadline has passed.
pub(crate) fn check() -> Result<()> {
    match DEADLINE.with(Cell::get) {
        Some((at, ms)) if Instant::now() >= at => {
            let message = format!("Query timed out: it ran longer than its :timeout of {ms} ms");
            let ms = i64::try_from(ms).unwrap_or(i64::MAX);
            Err(Error::Query(QueryError::Timeout(Detail::new(message).with("timeout", Edn::Int(ms)))))
        }
        _ => Ok(()),
    }
}

/// One unit of work: checks the deadline every [`CHECK_EVERY`] calls.
#[inline]
pub(crate) fn tick() -> Result<()> {
    let n = TICKS.with(|t| {
        let n = t.get().wrapping_add(1);
        t.set(n);
        n
    });
    if n.is_multiple_of(CHECK_EVERY) {
        check()
    } else {
        Ok(())
    }
}
