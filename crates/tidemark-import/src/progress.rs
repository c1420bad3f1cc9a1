//! Progress bars for imports: a thin wrapper over `indicatif` that draws
//! nothing unless asked to and standard error is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar, or nothing.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar over `total` bytes labelled `what`; silent when `enabled` is
    /// false or standard error is not a terminal.
    pub fn bytes(enabled: bool, what: &str, total: u64) -> Progress {
        Progress::new(enabled, what, total, "{msg:>12} [{bar:40}] {bytes}/{total_bytes} ({eta})")
    }

    /// A bar over `total` items labelled `what` (blocks, series…); silent as
    /// [`Progress::bytes`].
    pub fn items(enabled: bool, what: &str, total: u64) -> Progress {
        Progress::new(enabled, what, total, "{msg:>12} [{bar:40}] {pos}/{len} ({eta})")
    }

    /// A bar that never draws.
    pub fn hidden() -> Progress {
        Progress { bar: None }
    }

    fn new(enabled: bool, what: &str, total: u64, template: &str) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        Progress { bar: Some(bar) }
    }

    /// Whether anything is drawn.
    pub fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    /// Sets the position (bytes or items done).
    pub fn set(&self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        }
    }

    /// Advances the position by `n`.
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// Replaces the label (e.g. the block or file being read).
    pub fn set_message(&self, what: impl Into<String>) {
        if let Some(b) = &self.bar {
            b.set_message(what.into());
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_progress_is_hidden() {
        let p = Progress::bytes(false, "reading", 100);
        assert!(!p.is_visible());
        p.inc(10);
        p.set(50);
        p.finish();
    }
}
