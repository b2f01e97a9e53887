//! Progress on standard error for long commands (hidden when standard error is not a
//! terminal): a bar for exports, imports and `load-entities`, which report how far they are,
//! and a spinner for `gc-storage`, which does not.

use datahike::migrate::{Phase, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::RefCell;

/// One bar, relabelled as the phases of an export or import go by.
pub struct Bar {
    bar: ProgressBar,
    phase: RefCell<Option<Phase>>,
    what: &'static str,
}

impl Bar {
    /// A bar for `what` ("exporting", "importing"), drawn on standard error.
    pub fn new(what: &'static str) -> Bar {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style =
            ProgressStyle::with_template("{msg:>10} [{bar:40}] {human_pos}/{human_len} datoms ({per_sec}, {eta})")
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(what);
        Bar { bar, phase: RefCell::new(None), what }
    }

    /// Shows a progress report.
    pub fn update(&self, p: &Progress) {
        if *self.phase.borrow() != Some(p.phase) {
            *self.phase.borrow_mut() = Some(p.phase);
            self.bar.reset();
            self.bar.set_message(match p.phase {
                Phase::Verify => "verifying",
                _ => self.what,
            });
        }
        self.bar.set_length(p.total);
        self.bar.set_position(p.done);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A spinner with the elapsed time, for work that reports no progress of its own.
pub struct Spinner {
    bar: ProgressBar,
}

impl Spinner {
    /// Starts spinning on standard error.
    pub fn new(what: &'static str) -> Spinner {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(what);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Spinner { bar }
    }

    /// Removes the spinner.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
