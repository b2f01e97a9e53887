//! The deadline of a query with `:timeout`. It is kept per thread, so that the executor's
//! inner loops check it with [`tick`] without carrying it around: a counter, and the clock
//! once every [`CHECK_EVERY`] ticks. Nested queries run under the earlier of their own
//! deadline and the enclosing query's.

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
}

/// Restores the enclosing deadline when a query ends, however it ends.
pub(crate) struct Guard {
    previous: Option<(Instant, u64)>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.previous));
    }
}

/// Starts a query with `timeout_ms` (none: only the enclosing query's deadline applies).
pub(crate) fn start(timeout_ms: Option<u64>) -> Guard {
    let previous = DEADLINE.with(Cell::get);
    let own = timeout_ms.map(|ms| (Instant::now() + Duration::from_millis(ms), ms));
    let deadline = match (previous, own) {
        (Some(p), Some(o)) => Some(if o.0 < p.0 { o } else { p }),
        (p, o) => o.or(p),
    };
    DEADLINE.with(|d| d.set(deadline));
    Guard { previous }
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
