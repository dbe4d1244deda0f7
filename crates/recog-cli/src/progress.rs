//! Renders library progress as indicatif bars (quiet when stderr is not a terminal).

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar per phase.
pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    quiet: bool,
}

impl Bars {
    /// `quiet` hides bars (for `--json` runs and pipes); warnings still go to the log.
    pub fn new(quiet: bool) -> Self {
        Self {
            bar: Mutex::new(None),
            quiet,
        }
    }
}

impl recog::Progress for Bars {
    fn start(&self, label: &str, total: u64) {
        if self.quiet {
            return;
        }
        let pb = if total > 0 {
            ProgressBar::new(total)
        } else {
            ProgressBar::new_spinner()
        };
        let style = if total > 0 {
            ProgressStyle::with_template(
                "{prefix:>14} [{bar:30}] {pos}/{len} {msg} ({elapsed} < {eta})",
            )
        } else {
            ProgressStyle::with_template("{prefix:>14} {spinner} {pos} {msg} ({elapsed})")
        }
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        pb.set_style(style);
        pb.set_prefix(label.to_string());
        if let Ok(mut b) = self.bar.lock() {
            *b = Some(pb);
        }
    }
    fn inc(&self, delta: u64) {
        if let Ok(b) = self.bar.lock() {
            if let Some(pb) = b.as_ref() {
                pb.inc(delta);
            }
        }
    }
    fn message(&self, msg: &str) {
        if let Ok(b) = self.bar.lock() {
            if let Some(pb) = b.as_ref() {
                pb.set_message(msg.to_string());
            }
        }
    }
    fn finish(&self) {
        if let Ok(mut b) = self.bar.lock() {
            if let Some(pb) = b.take() {
                pb.finish();
            }
        }
    }
    fn warn(&self, msg: &str) {
        let b = self.bar.lock().ok();
        match b.as_ref().and_then(|b| b.as_ref()) {
            Some(pb) => pb.suspend(|| eprintln!("warning: {msg}")),
            None => eprintln!("warning: {msg}"),
        }
    }
}
