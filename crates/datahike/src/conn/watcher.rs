//! The watcher: while a connection has `listen` callbacks, one thread looks at the store every
//! [`WATCH_INTERVAL`] for transactions that other processes committed, catches up with them
//! and hands their reports to the callbacks, so that a listener follows the database whoever
//! writes it.

use super::*;
use std::sync::atomic::Ordering;

/// How often the watcher looks at the store.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Starts the watcher of `conn` unless it runs.
pub(super) fn start(conn: &Conn) {
    if conn.0.watching.swap(true, Ordering::SeqCst) {
        return;
    }
    let weak = Arc::downgrade(&conn.0);
    let started = std::thread::Builder::new().name("datahike-watch".into()).spawn(move || loop {
        std::thread::sleep(WATCH_INTERVAL);
        // Ends with the connection, or when the last callback is gone.
        let Some(inner) = weak.upgrade() else { return };
        if lock(&inner.listeners).is_empty() {
            inner.watching.store(false, Ordering::SeqCst);
            // A callback registered meanwhile finds `watching` false and starts a new one.
            return;
        }
        if let Err(e) = Conn(inner).look() {
            tracing::debug!(target: "datahike::listen", error = %e, "watching the store failed; trying again");
        }
    });
    if started.is_err() {
        conn.0.watching.store(false, Ordering::SeqCst);
    }
}

impl Conn {
    /// One look at the store: catch up with other processes' commits, if any, and deliver
    /// their reports. Skipped while this connection commits (its next commit catches up).
    fn look(&self) -> Result<()> {
        let id = Arc::as_ptr(&self.0) as usize;
        let mut writer = lock(&self.0.writer);
        if writer.draining > 0 {
            return Ok(());
        }
        let Some(durable) = writer.durable.as_mut() else { return Ok(()) };
        if !durable.pipeline.is_empty() || durable.inline_log {
            return Ok(());
        }
        let current = self.current_value();
        if self.0.config.read_only {
            self.catch_up(durable, current, false)?;
        } else {
            // A look without the lock first (on a remote store a lock costs requests): the
            // head as this handle knows it and nothing in the log after its value mean that
            // nobody else committed.
            let max_tx = u64::try_from(current.max_tx()).unwrap_or(0);
            if durable.store.log_is_current(&durable.log, max_tx)?
                || (durable.store.get(&durable.head_key)? == durable.head_bytes
                    && durable.store.log_read(&durable.log, max_tx)?.is_empty())
            {
                return Ok(());
            }
            // A writer catches up under the store's writer lock, as before a commit.
            let guard = durable.store.lock_writer()?;
            self.catch_up(durable, current, false)?;
            drop(guard);
        }
        self.deliver_foreign(writer, id);
        Ok(())
    }
}
