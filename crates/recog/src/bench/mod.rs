//! Benchmarks, as library tasks so that anyone can run them: `recog bench train|face|gallery`
//! print their reports.
//!
//! Timings here are wall-clock on whatever machine runs them; compare runs side by side, in
//! one session, rather than against figures from another day.
//!
//! ```
//! use recog::bench::percentile;
//! assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), 3.0);
//! assert_eq!(percentile(&[], 0.99), 0.0);
//! ```

pub mod cluster;
pub mod face;
pub mod gallery;
pub mod train;

/// The `p` quantile of sorted values (nearest rank, clamped); 0 for none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

/// The mean; 0 for none.
pub fn mean(v: &[f64]) -> f64 {
    // A float sum of nothing is -0.0, which prints as "-0.000".
    if v.is_empty() {
        return 0.0;
    }
    v.iter().sum::<f64>() / v.len() as f64
}
