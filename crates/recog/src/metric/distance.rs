//! Distances between embeddings, on slices and on tensors.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The distance a loss or a miner uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Distance {
    /// `||a - b||`.
    #[default]
    Euclidean,
    /// `||a - b||^2`, the notebook's choice.
    SquaredEuclidean,
}

impl Distance {
    /// Distance between two vectors.
    pub fn between(self, a: &[f32], b: &[f32]) -> f32 {
        let sq = squared_euclidean(a, b);
        match self {
            Distance::Euclidean => sq.sqrt(),
            Distance::SquaredEuclidean => sq,
        }
    }

    /// All pairwise distances of the rows of `x` (`[n, d]` -> `[n, n]`), differentiable.
    pub fn pairwise(self, x: Tensor<2>) -> Tensor<2> {
        let sq = pairwise_squared(x);
        match self {
            // The clamp keeps the gradient of sqrt finite on the diagonal.
            Distance::Euclidean => sq.clamp_min(1e-12).sqrt(),
            Distance::SquaredEuclidean => sq,
        }
    }

    /// All pairwise distances of `n` rows of dimension `d` stored row-major, on the host.
    pub fn pairwise_host(self, x: &[f32], n: usize, d: usize) -> Vec<f32> {
        let mut out = vec![0f32; n * n];
        for i in 0..n {
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
pub fn pairwise_squared(x: Tensor<2>) -> Tensor<2> {
    let n2 = x.clone().square().sum_dim(1); // [n, 1]
    let gram = x.clone().matmul(x.transpose()); // [n, n]
    let d = n2.clone() + n2.transpose() - gram.mul_scalar(2.0);
    d.clamp_min(0.0)
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
        for dist in [Distance::Euclidean, Distance::SquaredEuclidean] {
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
