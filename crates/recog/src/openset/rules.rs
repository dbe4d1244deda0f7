//! Score-based rejection rules beside the head and the centre distance, each calibrated for
//! a target false-reject rate on held-out digits:
//! - energy: `-logsumexp` of the head's digit logits (Liu et al., "Energy-based
//!   Out-of-distribution Detection", NeurIPS 2020);
//! - k-NN distance: the distance to the k-th nearest fitting digit (Sun et al.,
//!   "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022);
//! - Mahalanobis: the smallest class-conditional Mahalanobis distance under one shared
//!   covariance (Lee et al., "A Simple Unified Framework for Detecting Out-of-Distribution
//!   Samples and Adversarial Attacks", NeurIPS 2018);
//! - the ensemble: each of the three scores turned into its quantile among the held-out
//!   digits' scores, the largest quantile thresholded, and the head must accept too.
//!
//! ```
//! use recog::openset::rules::{energy, Mahalanobis};
//! assert!(energy(&[5.0, 0.0]) < energy(&[1.0, 0.0])); // confident logits: low energy
//! let x = [0.0f32, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
//! let m = Mahalanobis::fit(&x, &[0, 0, 1, 1], 2, 2).unwrap();
//! assert!(m.score(&[0.0, 0.5]) < m.score(&[5.0, 5.0]));
//! ```

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Energy of the digit logits, `-log sum exp`: higher is more likely unknown.
pub fn energy(digit_logits: &[f32]) -> f32 {
    let m = digit_logits.iter().cloned().fold(f32::MIN, f32::max);
    let s: f32 = digit_logits.iter().map(|v| (v - m).exp()).sum();
    -(m + s.ln())
}

/// A score with the threshold above which it rejects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibrated {
    /// Reject above this.
    pub threshold: f32,
    /// The held-out digits' scores, sorted (the ensemble's quantiles).
    pub digits: Vec<f32>,
}

impl Calibrated {
    /// The threshold for `target_frr` on the held-out digits' `scores`.
    pub fn new(mut scores: Vec<f32>, target_frr: f64) -> Self {
        let threshold = super::calibrate_threshold(&scores, target_frr);
        scores.sort_by(f32::total_cmp);
        Self {
            threshold,
            digits: scores,
        }
    }

    /// The fraction of held-out digits scoring below `s`.
    pub fn quantile(&self, s: f32) -> f32 {
        let below = self.digits.partition_point(|&d| d < s);
        below as f32 / self.digits.len().max(1) as f32
    }
}

/// k-NN distance to a reference set of fitting digits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Knn {
    /// The neighbour whose distance is the score (1 = the nearest).
    pub k: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// Reference embeddings, `[n][dim]` row-major.
    pub refs: Vec<f32>,
    /// The references transposed into blocks, made on first use.
    #[serde(skip)]
    blocks: KnnBlocks,
}

/// References scored together: one SIMD lane each.
const KNN_LANES: usize = 8;

/// The references in blocks of [`KNN_LANES`], `[block][dim][lane]`, the last block padded
/// with zeros. Each lane sums its own reference's squared differences in dimension order, as
/// [`squared_euclidean`](crate::metric::distance::squared_euclidean) does one pair, so every
/// distance keeps its bits; but eight sums run side by side instead of one long chain of
/// dependent additions.
/// `eval-logo` spent most of its time in that chain on committees with views (640-d).
type KnnBlocks = Derived<Vec<f32>>;

/// A value derived from a model's stored fields on first use (a model read from JSON
/// carries only those fields), never serialised.
#[derive(Debug, Clone, Default)]
struct Derived<T>(std::sync::OnceLock<T>);

/// A cache: two equal models are equal whether or not either has made it yet.
impl<T> PartialEq for Derived<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Knn {
    /// The score of the `k`-th nearest of `refs` (`[n][dim]` row-major).
    pub fn new(k: usize, dim: usize, refs: Vec<f32>) -> Self {
        Self {
            k,
            dim,
            refs,
            blocks: KnnBlocks::default(),
        }
    }

    /// Distance to the k-th nearest reference; infinite (reject) when `x`'s length is not
    /// `dim` or the references are not whole rows (perhaps an edited file).
    pub fn score(&self, x: &[f32]) -> f32 {
        let d = self.dim;
        if d == 0 || x.len() != d || !self.refs.len().is_multiple_of(d) {
            return f32::INFINITY;
        }
        let n = self.refs.len() / d;
        let blocks = self.blocks.0.get_or_init(|| {
            let mut t = vec![0f32; n.div_ceil(KNN_LANES) * KNN_LANES * d];
            for (j, r) in self.refs.chunks_exact(d).enumerate() {
                let (b, lane) = (j / KNN_LANES, j % KNN_LANES);
                for (i, &v) in r.iter().enumerate() {
                    t[(b * d + i) * KNN_LANES + lane] = v;
                }
            }
            t
        });
        let k = self.k.max(1);
        // The k smallest squared distances, kept sorted (k is small).
        let mut best = vec![f32::INFINITY; k];
        for (b, block) in blocks.chunks_exact(d * KNN_LANES).enumerate() {
            let mut acc = [0f32; KNN_LANES];
            for (&xi, r) in x.iter().zip(block.chunks_exact(KNN_LANES)) {
                for (a, &v) in acc.iter_mut().zip(r) {
                    let diff = xi - v;
                    *a += diff * diff;
                }
            }
            let valid = (n - b * KNN_LANES).min(KNN_LANES);
            for &dist in &acc[..valid] {
                if dist < best[k - 1] {
                    let at = best.partition_point(|&v| v < dist);
                    best.insert(at, dist);
                    best.pop();
                }
            }
        }
        best[k - 1].sqrt()
    }
}

/// Class-conditional Gaussians with one shared covariance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mahalanobis {
    /// Embedding dimension.
    pub dim: usize,
    /// Class means, `[classes][dim]`.
    pub means: Vec<Vec<f32>>,
    /// The inverse of the shared covariance, `[dim][dim]` row-major.
    pub precision: Vec<f64>,
    /// The precision's factor and the means mapped through it, made on first use (a
    /// recognizer read from JSON carries the precision only).
    #[serde(skip)]
    whitening: Whitening,
}

/// `U`, the transpose of the precision's Cholesky factor (`precision = U^T U`), and `U m` for
/// each class mean `m`, so that a squared distance is `|U x - U m|^2`: one triangular product
/// per image instead of one full quadratic form per class (20x fewer operations for ten
/// classes), which is what `eval-logo` spent most of its time on with committees.
type Whitening = Derived<Option<Whitened>>;

/// `U` (`[dim][dim]` row-major, upper triangular) and `U m` for each class mean `m`.
type Whitened = (Vec<f64>, Vec<Vec<f64>>);

impl Mahalanobis {
    /// Means and the pooled within-class covariance of `x` (`[n][dim]`) with `labels` in
    /// `0..classes`; the covariance gets a small ridge so that it inverts.
    pub fn fit(x: &[f32], labels: &[u32], dim: usize, classes: usize) -> Result<Self> {
        let mut sums = vec![vec![0f64; dim]; classes];
        let mut counts = vec![0usize; classes];
        for (row, &l) in x.chunks(dim).zip(labels) {
            let l = l as usize;
            if l >= classes {
                return Err(Error::InvalidArgument(format!("label {l} >= {classes}")));
            }
            counts[l] += 1;
            for (s, &v) in sums[l].iter_mut().zip(row) {
                *s += v as f64;
            }
        }
        let means: Vec<Vec<f64>> = sums
            .iter()
            .zip(&counts)
            .map(|(s, &c)| s.iter().map(|v| v / c.max(1) as f64).collect())
            .collect();
        let mut cov = vec![0f64; dim * dim];
        for (row, &l) in x.chunks(dim).zip(labels) {
            let m = &means[l as usize];
            let c: Vec<f64> = row.iter().zip(m).map(|(&v, &u)| v as f64 - u).collect();
            for i in 0..dim {
                for j in 0..dim {
                    cov[i * dim + j] += c[i] * c[j];
                }
            }
        }
        let n = labels.len().max(1) as f64;
        cov.iter_mut().for_each(|v| *v /= n);
        let trace: f64 = (0..dim).map(|i| cov[i * dim + i]).sum();
        let ridge = 1e-3 * (trace / dim.max(1) as f64).max(1e-12);
        (0..dim).for_each(|i| cov[i * dim + i] += ridge);
        Ok(Self {
            dim,
            means: means
                .iter()
                .map(|m| m.iter().map(|&v| v as f32).collect())
                .collect(),
            precision: invert_spd(&cov, dim)?,
            whitening: Whitening::default(),
        })
    }

    /// The smallest squared Mahalanobis distance to a class mean; infinite (reject) when the
    /// sizes of `x`, the means and the precision (perhaps read from an edited file) disagree.
    pub fn score(&self, x: &[f32]) -> f32 {
        let d = self.dim;
        if x.len() != d
            || d.checked_mul(d) != Some(self.precision.len())
            || self.means.iter().any(|m| m.len() != d)
        {
            return f32::INFINITY;
        }
        if let Some((u, whitened_means)) = self.whitening.0.get_or_init(|| self.whiten()) {
            // z = U x, U upper triangular.
            let z: Vec<f64> = (0..d)
                .map(|i| {
                    let row = &u[i * d + i..(i + 1) * d];
                    row.iter().zip(&x[i..d]).map(|(a, &v)| a * v as f64).sum()
                })
                .collect();
            return whitened_means
                .iter()
                .map(|w| z.iter().zip(w).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
                .fold(f64::INFINITY, f64::min) as f32;
        }
        self.score_direct(x)
    }

    /// `U` and the whitened means; `None` (score directly) if the precision read from a file
    /// does not factor.
    fn whiten(&self) -> Option<Whitened> {
        let d = self.dim;
        let l = cholesky(&self.precision, d).ok()?;
        let mut u = vec![0f64; d * d];
        for i in 0..d {
            for j in i..d {
                u[i * d + j] = l[j * d + i];
            }
        }
        let whitened_means = self
            .means
            .iter()
            .map(|m| {
                (0..d)
                    .map(|i| (i..d).map(|j| u[i * d + j] * m[j] as f64).sum())
                    .collect()
            })
            .collect();
        Some((u, whitened_means))
    }

    /// The quadratic form `(x - m)^T P (x - m)` for each class, the smallest.
    fn score_direct(&self, x: &[f32]) -> f32 {
        let d = self.dim;
        let mut best = f64::INFINITY;
        let mut c = vec![0f64; d];
        for m in &self.means {
            for i in 0..d {
                c[i] = x[i] as f64 - m[i] as f64;
            }
            let mut q = 0.0;
            for i in 0..d {
                let row = &self.precision[i * d..(i + 1) * d];
                q += c[i] * row.iter().zip(&c).map(|(p, v)| p * v).sum::<f64>();
            }
            best = best.min(q);
        }
        best as f32
    }
}

/// The inverse of a symmetric positive definite matrix, through its Cholesky factor.
fn invert_spd(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let l = cholesky(a, n)?;
    // inv(A) = inv(L)^T inv(L); inv(L) by forward substitution, column by column.
    let mut li = vec![0f64; n * n];
    for c in 0..n {
        for i in c..n {
            let s: f64 = (c..i).map(|k| l[i * n + k] * li[k * n + c]).sum();
            let e = if i == c { 1.0 } else { 0.0 };
            li[i * n + c] = (e - s) / l[i * n + i];
        }
    }
    let mut inv = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            inv[i * n + j] = (i.max(j)..n).map(|k| li[k * n + i] * li[k * n + j]).sum();
        }
    }
    Ok(inv)
}

/// The lower-triangular `L` with `A = L L^T`, row-major, for a symmetric positive definite `A`.
fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let v = a[i * n + i] - s;
                if v <= 0.0 {
                    return Err(Error::InvalidArgument(
                        "covariance is not positive definite".into(),
                    ));
                }
                l[i * n + i] = v.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    Ok(l)
}

/// The rules a recognizer carries beside its head and centre distance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRules {
    /// Energy of the head's digit logits.
    pub energy: Calibrated,
    /// k-NN distance and its calibration.
    pub knn: Knn,
    /// Its threshold.
    pub knn_calibration: Calibrated,
    /// Mahalanobis distance and its calibration.
    pub mahalanobis: Mahalanobis,
    /// Its threshold.
    pub mahalanobis_calibration: Calibrated,
    /// The ensemble's largest quantile, calibrated.
    pub ensemble: Calibrated,
}

impl ScoreRules {
    /// The three raw scores of one embedding, given the head's digit logits.
    pub fn scores(&self, x: &[f32], digit_logits: &[f32]) -> [f32; 3] {
        [
            energy(digit_logits),
            self.knn.score(x),
            self.mahalanobis.score(x),
        ]
    }

    /// The ensemble score: the largest quantile of the three scores among held-out digits.
    pub fn ensemble_score(&self, s: &[f32; 3]) -> f32 {
        self.energy
            .quantile(s[0])
            .max(self.knn_calibration.quantile(s[1]))
            .max(self.mahalanobis_calibration.quantile(s[2]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::distance::squared_euclidean;

    #[test]
    fn the_inverse_times_the_matrix_is_the_identity() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
        let inv = invert_spd(&a, 3).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| a[i * 3 + k] * inv[k * 3 + j]).sum();
                assert!(
                    (v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12,
                    "{i} {j} {v}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn the_whitened_score_is_the_quadratic_form(
            points in proptest::collection::vec(-1.0f32..1.0, 4 * 3 * 5),
            query in proptest::collection::vec(-2.0f32..2.0, 5),
        ) {
            let labels: Vec<u32> = (0..12).map(|i| i % 3).collect();
            let m = Mahalanobis::fit(&points, &labels, 5, 3).unwrap();
            let (fast, direct) = (m.score(&query) as f64, m.score_direct(&query) as f64);
            proptest::prop_assert!((fast - direct).abs() <= 1e-5 * direct.max(1.0), "{fast} {direct}");
        }
    }

    #[test]
    fn a_mahalanobis_read_from_json_scores_as_fitted() {
        let x = [
            0.0f32, 0.1, 1.0, 0.2, 0.3, 1.1, 0.9, 1.2, 0.4, 0.0, 1.3, 0.8,
        ];
        let m = Mahalanobis::fit(&x, &[0, 0, 1, 1, 0, 1], 2, 2).unwrap();
        let before = m.score(&[0.5, 0.5]);
        let read: Mahalanobis = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(read, m);
        assert_eq!(read.score(&[0.5, 0.5]), before);
    }

    #[test]
    fn a_precision_that_does_not_factor_is_scored_directly() {
        // Not positive definite: no Cholesky factor, so the quadratic form is used as is.
        let m = Mahalanobis {
            dim: 2,
            means: vec![vec![0.0, 0.0]],
            precision: vec![1.0, 0.0, 0.0, -1.0],
            whitening: Whitening::default(),
        };
        assert_eq!(m.score(&[1.0, 2.0]), -3.0);
    }

    #[test]
    fn a_mahalanobis_whose_sizes_disagree_rejects_instead_of_panicking() {
        let m = Mahalanobis {
            dim: 2,
            means: vec![vec![0.0, 0.0]],
            precision: vec![1.0],
            whitening: Whitening::default(),
        };
        assert_eq!(m.score(&[1.0, 2.0]), f32::INFINITY);
        let m = Mahalanobis {
            precision: vec![1.0, 0.0, 0.0, 1.0],
            ..m
        };
        assert_eq!(m.score(&[1.0]), f32::INFINITY);
        assert_eq!(m.score(&[1.0, 2.0]), 5.0);
    }

    #[test]
    fn knn_takes_the_kth_distance() {
        let k = Knn::new(2, 1, vec![0.0, 1.0, 5.0]);
        assert_eq!(k.score(&[0.0]), 1.0);
        assert_eq!(k.score(&[0.0, 1.0]), f32::INFINITY);
        assert_eq!(Knn::new(1, 0, vec![]).score(&[]), f32::INFINITY);
        assert_eq!(
            Knn::new(3, 2, vec![0.0; 4]).score(&[0.0, 0.0]),
            f32::INFINITY
        );
    }

    proptest::proptest! {
        /// The blocked scan keeps every distance's bits: the same score as one
        /// `squared_euclidean` per reference, in order.
        #[test]
        fn knn_scores_as_one_pair_at_a_time(
            dim in 1usize..24,
            n in 0usize..40,
            k in 1usize..6,
            seed in 0u64..1000,
        ) {
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
            let mut u = || rand::Rng::random_range(&mut rng, -1.0f32..1.0);
            let refs: Vec<f32> = (0..n * dim).map(|_| u()).collect();
            let x: Vec<f32> = (0..dim).map(|_| u()).collect();
            let mut d: Vec<f32> = refs.chunks(dim).map(|r| squared_euclidean(&x, r)).collect();
            d.sort_by(f32::total_cmp);
            let want = d.get(k - 1).copied().unwrap_or(f32::INFINITY).sqrt();
            let got = Knn::new(k, dim, refs).score(&x);
            proptest::prop_assert_eq!(got.to_bits(), want.to_bits());
        }
    }

    #[test]
    fn quantiles_are_the_fraction_below() {
        let c = Calibrated::new((1..=100).map(|i| i as f32).collect(), 0.01);
        assert_eq!(c.threshold, 99.0);
        assert_eq!(c.quantile(50.5), 0.5);
    }
}
