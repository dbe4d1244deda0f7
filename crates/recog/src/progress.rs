//! Progress reporting: the library reports, front ends render.

/// Receives progress of long work. The CLI renders it as a progress bar; tests ignore it.
pub trait Progress: Send + Sync {
    /// A new phase starts, with `total` units of work (0 when unknown).
    fn start(&self, label: &str, total: u64);
    /// `delta` more units are done.
    fn inc(&self, delta: u64);
    /// A short status line (loss, rate...).
    fn message(&self, msg: &str);
    /// The phase is over.
    fn finish(&self);
    /// A warning the user must see (collapse, skipped files...).
    fn warn(&self, msg: &str) {
        tracing::warn!("{msg}");
    }
}

/// Discards all progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _label: &str, _total: u64) {}
    fn inc(&self, _delta: u64) {}
    fn message(&self, _msg: &str) {}
    fn finish(&self) {}
}
