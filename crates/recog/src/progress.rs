//! Progress reporting: the library reports, front ends render.
//!
//! ```
//! use recog::Progress;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! struct Count(AtomicU64);
//! impl Progress for Count {
//!     fn start(&self, _: &str, _: u64) {}
//!     fn inc(&self, n: u64) { self.0.fetch_add(n, Ordering::Relaxed); }
//!     fn message(&self, _: &str) {}
//!     fn finish(&self) {}
//! }
//! let c = Count(AtomicU64::new(0));
//! c.inc(3);
//! c.warn("warnings have a default");
//! assert_eq!(c.0.load(Ordering::Relaxed), 3);
//! ```

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
