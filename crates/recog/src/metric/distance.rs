//! Distances between embeddings, on slices and on tensors: the one [`Distance`] that losses,
//! miners, the gallery's search and its calibration share.
//!
//! ```
//! use recog::metric::Distance;
//! assert_eq!(Distance::Euclidean.between(&[0.0, 0.0], &[3.0, 4.0]), 5.0);
//! assert_eq!(Distance::SquaredEuclidean.between(&[0.0, 0.0], &[3.0, 4.0]), 25.0);
//! // A Euclidean threshold of 0.6 on unit vectors is a cosine one of 0.18.
//! assert!((Distance::Cosine.of_euclidean(0.6) - 0.18).abs() < 1e-6);
//! ```

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// A distance between embeddings: what a loss or a miner uses, what a gallery searches and
/// calibrates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Distance {
    /// `||a - b||` (dlib's and the notebook's threshold).
    #[default]
    Euclidean,
    /// `||a - b||^2`, the notebook's loss.
    #[cfg_attr(feature = "clap", value(name = "squared", alias = "squared-euclidean"))]
    SquaredEuclidean,
    /// `1 - cos(a, b)`, in [0, 2].
    Cosine,
}

impl Distance {
    /// Distance between two vectors.
    pub fn between(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Distance::Euclidean => squared_euclidean(a, b).sqrt(),
            Distance::SquaredEuclidean => squared_euclidean(a, b),
            Distance::Cosine => cosine(a, b),
        }
    }

    /// A Euclidean distance `d` between unit vectors, expressed in this distance: `d^2` for
    /// the squared one, `d^2 / 2` for cosine. This is how a verification distance measured in
    /// Euclidean terms caps the other distances.
    pub fn of_euclidean(self, d: f32) -> f32 {
        match self {
            Distance::Euclidean => d,
            Distance::SquaredEuclidean => d * d,
            Distance::Cosine => d * d / 2.0,
        }
    }

    /// All pairwise distances of the rows of `x` (`[n, d]` -> `[n, n]`), differentiable.
    pub fn pairwise(self, x: Tensor<2>) -> Tensor<2> {
        match self {
            // The clamp keeps the gradient of sqrt finite on the diagonal.
            Distance::Euclidean => pairwise_squared(x).clamp_min(1e-12).sqrt(),
            Distance::SquaredEuclidean => pairwise_squared(x),
            Distance::Cosine => {
                let norm = x.clone().square().sum_dim(1).clamp_min(1e-24).sqrt(); // [n, 1]
                let u = x / norm;
                let gram = u.clone().matmul(u.transpose());
                gram.neg().add_scalar(1.0)
            }
        }
    }

    /// All pairwise distances of `n` rows of dimension `d` stored row-major, on the host.
    pub fn pairwise_host(self, x: &[f32], n: usize, d: usize) -> Vec<f32> {
        let mut out = vec![0f32; n * n];
        for i in 0..n {
            // Not always 0: a zero vector's cosine distance to itself is 1.
            out[i * n + i] = self.between(&x[i * d..(i + 1) * d], &x[i * d..(i + 1) * d]);
            for j in (i + 1)..n {
                let v = self.between(&x[i * d..(i + 1) * d], &x[j * d..(j + 1) * d]);
                out[i * n + j] = v;
                out[j * n + i] = v;
            }
        }
        out
    }
}

/// `sum (a_i - b_i)^2`.
pub fn squared_euclidean(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// `||a - b||`.
pub fn euclidean(a: &[f32], b: &[f32]) -> f32 {
    squared_euclidean(a, b).sqrt()
}

/// `1 - cos(a, b)`; 1 when either vector is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        1.0
    } else {
        1.0 - dot / (na * nb)
    }
}

/// `||x_i||^2 + ||x_j||^2 - 2 x_i.x_j`, clamped at 0 against rounding.
///
/// Not [`squared_between`]`(x, x)`: the row norms are computed once here, and autodiff sums
/// their two gradient paths in another order, which changes trained weights in the last bits.
pub fn pairwise_squared(x: Tensor<2>) -> Tensor<2> {
    let n2 = x.clone().square().sum_dim(1); // [n, 1]
    let gram = x.clone().matmul(x.transpose()); // [n, n]
    let d = n2.clone() + n2.transpose() - gram.mul_scalar(2.0);
    d.clamp_min(0.0)
}

/// Squared distances from every row of `x` (`[n, d]`) to every row of `y` (`[m, d]`),
/// `[n, m]`, differentiable in both; clamped at 0 against rounding.
pub fn squared_between(x: Tensor<2>, y: Tensor<2>) -> Tensor<2> {
    let x2 = x.clone().square().sum_dim(1); // [n, 1]
    let y2 = y.clone().square().sum_dim(1).transpose(); // [1, m]
    let gram = x.matmul(y.transpose()); // [n, m]
    (x2 + y2 - gram.mul_scalar(2.0)).clamp_min(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_values() {
        let a = [1.0, 2.0, 3.0];
        let b = [4.0, 6.0, 3.0];
        // (1-4)^2 + (2-6)^2 + 0 = 25
        assert_eq!(squared_euclidean(&a, &b), 25.0);
        assert_eq!(euclidean(&a, &b), 5.0);
        // cos = (4 + 12 + 9) / (sqrt(14) * sqrt(61))
        let c = 1.0 - 25.0 / (14f32.sqrt() * 61f32.sqrt());
        assert!((cosine(&a, &b) - c).abs() < 1e-6);
    }

    #[test]
    fn tensor_matches_naive_loop() {
        let device = Device::flex();
        let x = vec![
            0.5f32, -1.0, 2.0, 0.0, 0.0, 0.0, 1.5, 2.5, -0.5, 3.0, 1.0, 1.0,
        ];
        let t = Tensor::<2>::from_data(TensorData::new(x.clone(), [4, 3]), &device);
        for dist in [
            Distance::Euclidean,
            Distance::SquaredEuclidean,
            Distance::Cosine,
        ] {
            let got: Vec<f32> = dist
                .pairwise(t.clone())
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let want = dist.pairwise_host(&x, 4, 3);
            for (g, w) in got.iter().zip(&want) {
                // the diagonal of the Euclidean tensor version is sqrt(1e-12)
                assert!((g - w).abs() < 1e-4, "{dist:?}: {g} vs {w}");
            }
        }
    }

    proptest! {
        #[test]
        fn self_distance_zero_and_symmetric(v in prop::collection::vec(-100f32..100., 1..16),
                                            w in prop::collection::vec(-100f32..100., 16)) {
            let w = &w[..v.len()];
            prop_assert_eq!(euclidean(&v, &v), 0.0);
            prop_assert_eq!(squared_euclidean(&v, w), squared_euclidean(w, &v));
            prop_assert!(euclidean(&v, w) >= 0.0);
            prop_assert!(cosine(&v, w) >= -1e-5 && cosine(&v, w) <= 2.0 + 1e-5);
        }
    }
}
