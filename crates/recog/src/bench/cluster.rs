//! The k-means sweep (k = 1..k_max with restarts, silhouettes on 2,000 rows) on synthetic
//! blobs: 20 centres in a cube, uniform noise around each.
//!
//! ```
//! use recog::bench::cluster::ClusterBenchParams;
//! let r = ClusterBenchParams { n: 400, dim: 8, k_max: 3, restarts: 1 }.check().unwrap().run();
//! assert_eq!(r.true_k, 20);
//! assert!(ClusterBenchParams { n: 5, dim: 8, k_max: 3, restarts: 1 }.check().is_err());
//! ```

use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::cluster::{kneedle, sweep};
use crate::{Error, Result};

/// The synthetic data and the sweep.
#[derive(Debug, Clone)]
pub struct ClusterBenchParams {
    /// Rows.
    pub n: usize,
    /// Dimension.
    pub dim: usize,
    /// Largest k.
    pub k_max: usize,
    /// Restarts per k.
    pub restarts: usize,
}

/// Checked [`ClusterBenchParams`].
#[derive(Debug, Clone)]
pub struct ValidClusterBenchParams(ClusterBenchParams);

/// Blobs generated.
pub const TRUE_K: usize = 20;

impl ClusterBenchParams {
    /// Sizes must be positive, with at least one row per blob.
    pub fn check(self) -> Result<ValidClusterBenchParams> {
        if self.n < TRUE_K || self.dim == 0 || self.k_max == 0 || self.restarts == 0 {
            return Err(Error::InvalidArgument(format!(
                "n must be at least {TRUE_K}, dim, k_max and restarts at least 1"
            )));
        }
        Ok(ValidClusterBenchParams(self))
    }
}

/// The sweep's time and the knee it found.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterBenchReport {
    /// Rows.
    pub n: usize,
    /// Dimension.
    pub dim: usize,
    /// Largest k.
    pub k_max: usize,
    /// Restarts per k.
    pub restarts: usize,
    /// Time of the sweep, s.
    pub seconds: f64,
    /// The knee (Kneedle).
    pub knee: Option<usize>,
    /// Blobs generated.
    pub true_k: usize,
    /// The target, s.
    pub target_seconds: f64,
}

impl ValidClusterBenchParams {
    /// Generates the blobs (seed 1) and times the sweep (seed 42).
    pub fn run(&self) -> ClusterBenchReport {
        let a = &self.0;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let centres: Vec<f32> = (0..TRUE_K * a.dim)
            .map(|_| rng.random::<f32>() * 4.0)
            .collect();
        let x: Vec<f32> = (0..a.n)
            .flat_map(|i| {
                let c = i % TRUE_K;
                let base: Vec<f32> = centres[c * a.dim..(c + 1) * a.dim].to_vec();
                base.into_iter()
                    .map(|v| v + rng.random::<f32>() - 0.5)
                    .collect::<Vec<_>>()
            })
            .collect();
        let t = std::time::Instant::now();
        let (_, elbow) = sweep(&x, a.n, a.dim, a.k_max, a.restarts, 42, 2000);
        let seconds = t.elapsed().as_secs_f64();
        let ks: Vec<f64> = elbow.iter().map(|e| e.k as f64).collect();
        let inertia: Vec<f64> = elbow.iter().map(|e| e.inertia).collect();
        ClusterBenchReport {
            n: a.n,
            dim: a.dim,
            k_max: a.k_max,
            restarts: a.restarts,
            seconds,
            knee: kneedle(&ks, &inertia).map(|i| elbow[i].k),
            true_k: TRUE_K,
            target_seconds: 30.0,
        }
    }
}

impl std::fmt::Display for ClusterBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let met = if self.seconds < self.target_seconds {
            "met"
        } else {
            "not met"
        };
        writeln!(
            f,
            "k-means sweep k = 1..{} ({} restarts each) + silhouettes on 2,000 rows: {} x {}-d in {:.1} s (target < 30 s: {met})",
            self.k_max, self.restarts, self.n, self.dim, self.seconds
        )?;
        write!(
            f,
            "knee found at k = {} ({} generated blobs)",
            self.knee.map_or("none".into(), |k| k.to_string()),
            self.true_k
        )
    }
}
