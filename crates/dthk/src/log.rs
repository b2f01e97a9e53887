//! Logging to standard error at the level `-v` chose: none for warnings only, `-v` info,
//! `-vv` debug, `-vvv` trace.

use std::sync::atomic::{AtomicU8, Ordering};

static VERBOSITY: AtomicU8 = AtomicU8::new(0);

/// Sets how many `-v` were given.
pub fn set_verbosity(level: u8) {
    VERBOSITY.store(level, Ordering::Relaxed);
}

fn emit(level: u8, name: &str, message: &str) {
    if VERBOSITY.load(Ordering::Relaxed) >= level {
        eprintln!("{name} [dthk] {message}");
    }
}

/// A warning, always shown.
pub fn warn(message: &str) {
    emit(0, "WARN", message);
}

/// Shown with `-v`.
pub fn info(message: &str) {
    emit(1, "INFO", message);
}

/// Shown with `-vv`.
pub fn debug(message: &str) {
    emit(2, "DEBUG", message);
}

/// Shown with `-vvv`.
pub fn trace(message: &str) {
    emit(3, "TRACE", message);
}
