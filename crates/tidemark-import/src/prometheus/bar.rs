//! The import's progress bar: bytes of the source read, drawn on stderr
//! only when asked for and stderr is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub(crate) fn bytes_bar(total: u64, enabled: bool) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg:28} [{bar:40}] {bytes}/{total_bytes} ({eta})") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}
