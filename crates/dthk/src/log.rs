//! Logging to standard error through `tracing`, at the level `-v` chose: warnings only by
//! default, `-v` info, `-vv` debug, `-vvv` trace. The library's own events (commits, log
//! groups, index flushes, replay, garbage collection, slow queries; targets `datahike::*`)
//! go to the same place.

/// Installs the subscriber for `level` `-v`s (once; later calls change nothing).
pub fn set_verbosity(level: u8) {
    let max = match level {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(max)
        .without_time()
        .with_target(true)
        .try_init();
}

/// A warning, always shown.
pub fn warn(message: &str) {
    tracing::warn!(target: "dthk", "{message}");
}

/// Shown with `-v`.
pub fn info(message: &str) {
    tracing::info!(target: "dthk", "{message}");
}

/// Shown with `-vv`.
pub fn debug(message: &str) {
    tracing::debug!(target: "dthk", "{message}");
}

/// Shown with `-vvv`.
pub fn trace(message: &str) {
    tracing::trace!(target: "dthk", "{message}");
}
