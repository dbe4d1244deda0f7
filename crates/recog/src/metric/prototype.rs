//! The prototype loss: a softmax over the distances to the batch's class means.
//!
//! Snell et al. 2017, "Prototypical Networks for Few-shot Learning": each class's prototype
//! is the mean of its embeddings in the batch, and an embedding's logits are its negative
//! squared distances to the prototypes, times `scale`. An embedding's own class mean leaves
//! it out (a class of `m` rows: the distance grows by `(m / (m - 1))^2`), so that a row is
//! never pulled towards a mean it is part of.
//!
//! Rows of an outlier class get no prototype. Their target is the uniform distribution over
//! the other classes (Hendrycks et al. 2019, "Deep Anomaly Detection with Outlier Exposure"):
//! an outlier that sits nearer one digit than the others costs more than one that is equally
//! far from all.
//!
//! It goes beside the triplet loss, as a separate piece: the triplet loss shapes pairs, this
//! one the class means that recog's recognizer measures distances to.
//!
//! ```
//! use recog::metric::PrototypeLoss;
//! let x = burn::tensor::Tensor::<2>::from_data(
//!     burn::tensor::TensorData::new(vec![0.0f32, 0.0, 0.0, 0.1, 1.0, 0.0, 1.0, 0.1], [4, 2]),
//!     &recog::default_device(),
//! );
//! let loss = PrototypeLoss { weight: 1.0, scale: 10.0 };
//! let tight: f32 = loss.forward(x, &[0, 0, 1, 1], None).into_scalar();
//! // Two tight, well separated classes: every row is far likelier to be its own class.
//! assert!(tight < 1e-3);
//! ```

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The prototype loss, weighted for its place beside the triplet loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrototypeLoss {
    /// Its weight in the total loss (the triplet loss has weight 1).
    pub weight: f32,
    /// Logits are `-scale * d^2`, with `d` the Euclidean distance to a prototype.
    pub scale: f32,
}

impl PrototypeLoss {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.weight >= 0.0 && self.weight.is_finite()) {
            return Err(format!(
                "prototype loss weight must be >= 0, got {}",
                self.weight
            ));
        }
        if !(self.scale > 0.0 && self.scale.is_finite()) {
            return Err(format!(
                "prototype loss scale must be > 0, got {}",
                self.scale
            ));
        }
        Ok(())
    }

    /// The weighted loss, `[1]`, differentiable; 0 when the batch holds fewer than two
    /// classes besides `outlier`.
    ///
    /// - embeddings: `[n, D]`;
    /// - labels: the class of each row, `n` of them;
    /// - outlier: the label whose rows have a uniform target and no prototype.
    pub fn forward(
        &self,
        embeddings: Tensor<2>,
        labels: &[u32],
        outlier: Option<u32>,
    ) -> Tensor<1> {
        let [n, _] = embeddings.dims();
        let device = embeddings.device();
        let classes = prototype_classes(labels, outlier);
        let c = classes.len();
        if c < 2 || labels.len() != n {
            return embeddings.sum().mul_scalar(0.0);
        }
        let column = |l: u32| classes.binary_search(&l).ok();
        let mut count = vec![0usize; c];
        for &l in labels {
            if let Some(j) = column(l) {
                count[j] += 1;
            }
        }
        // means = M x, with M[j, i] = 1 / count[j] for the rows of class j.
        let mut m = vec![0f32; c * n];
        // Own-class columns get the leave-one-out factor; targets are one-hot or uniform.
        let mut factor = vec![1f32; n * c];
        let mut target = vec![0f32; n * c];
        for (i, &l) in labels.iter().enumerate() {
            match column(l) {
                Some(j) => {
                    m[j * n + i] = 1.0 / count[j] as f32;
                    target[i * c + j] = 1.0;
                    if count[j] > 1 {
                        let r = count[j] as f32 / (count[j] - 1) as f32;
                        factor[i * c + j] = r * r;
                    }
                }
                None => target[i * c..(i + 1) * c].fill(1.0 / c as f32),
            }
        }
        let tensor = |v: Vec<f32>, shape: [usize; 2]| {
            Tensor::<2>::from_data(TensorData::new(v, shape), &device)
        };
        let means = tensor(m, [c, n]).matmul(embeddings.clone()); // [c, D]
        let d2 = super::distance::squared_between(embeddings, means); // [n, c]
        let logits = (d2 * tensor(factor, [n, c])).mul_scalar(-self.scale);
        let logp = burn::tensor::activation::log_softmax(logits, 1);
        (logp * tensor(target, [n, c]))
            .sum()
            .mul_scalar(-self.weight / n as f32)
    }
}

/// The labels that get a prototype, sorted: every label but `outlier`.
fn prototype_classes(labels: &[u32], outlier: Option<u32>) -> Vec<u32> {
    let mut classes: Vec<u32> = labels
        .iter()
        .copied()
        .filter(|&l| Some(l) != outlier)
        .collect();
    classes.sort_unstable();
    classes.dedup();
    classes
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference: one row at a time, with explicit leave-one-out means.
    fn naive(
        x: &[f32],
        d: usize,
        labels: &[u32],
        outlier: Option<u32>,
        loss: &PrototypeLoss,
    ) -> f32 {
        let n = labels.len();
        let classes = prototype_classes(labels, outlier);
        let c = classes.len();
        let mut total = 0f64;
        for i in 0..n {
            let logits: Vec<f64> = classes
                .iter()
                .map(|&k| {
                    let rows: Vec<usize> = (0..n)
                        .filter(|&j| {
                            labels[j] == k
                                && (j != i || (0..n).filter(|&r| labels[r] == k).count() == 1)
                        })
                        .collect();
                    let mut mean = vec![0f64; d];
                    for &r in &rows {
                        for t in 0..d {
                            mean[t] += x[r * d + t] as f64 / rows.len() as f64;
                        }
                    }
                    let d2: f64 = (0..d)
                        .map(|t| (x[i * d + t] as f64 - mean[t]).powi(2))
                        .sum();
                    -(loss.scale as f64) * d2
                })
                .collect();
            let mx = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = mx + logits.iter().map(|v| (v - mx).exp()).sum::<f64>().ln();
            match classes.iter().position(|&k| k == labels[i]) {
                Some(j) => total -= logits[j] - lse,
                None => total -= logits.iter().map(|v| (v - lse) / c as f64).sum::<f64>(),
            }
        }
        (total * loss.weight as f64 / n as f64) as f32
    }

    fn run(x: &[f32], d: usize, labels: &[u32], outlier: Option<u32>, loss: &PrototypeLoss) -> f32 {
        let t = Tensor::<2>::from_data(
            TensorData::new(x.to_vec(), [labels.len(), d]),
            &crate::default_device(),
        );
        loss.forward(t, labels, outlier).into_scalar()
    }

    proptest! {
        #[test]
        fn the_batched_loss_is_the_row_by_row_one(
            x in proptest::collection::vec(-1f32..1.0, 12 * 3),
            labels in proptest::collection::vec(0u32..4, 12),
            outlier in proptest::option::of(0u32..4),
            scale in 0.5f32..8.0,
        ) {
            let loss = PrototypeLoss { weight: 0.7, scale };
            let got = run(&x, 3, &labels, outlier, &loss);
            let want = naive(&x, 3, &labels, outlier, &loss);
            prop_assert!((got - want).abs() <= 1e-3 * (1.0 + want.abs()), "{got} vs {want}");
        }
    }

    #[test]
    fn an_outlier_between_two_classes_costs_less_than_one_beside_a_class() {
        let loss = PrototypeLoss {
            weight: 1.0,
            scale: 4.0,
        };
        let base = [0.0f32, 0.0, 0.0, 0.2, 1.0, 0.0, 1.0, 0.2];
        let with = |o: [f32; 2]| {
            let mut x = base.to_vec();
            x.extend_from_slice(&o);
            run(&x, 2, &[0, 0, 1, 1, 9], Some(9), &loss)
        };
        assert!(with([0.5, 0.1]) < with([0.05, 0.1]));
    }

    #[test]
    fn a_batch_of_one_class_has_no_loss() {
        let loss = PrototypeLoss {
            weight: 1.0,
            scale: 4.0,
        };
        assert_eq!(run(&[0.0, 1.0, 2.0, 3.0], 2, &[5, 5], None, &loss), 0.0);
        assert_eq!(run(&[0.0, 1.0, 2.0, 3.0], 2, &[5, 9], Some(9), &loss), 0.0);
    }

    #[test]
    fn validate_rejects_a_negative_weight_and_a_zero_scale() {
        assert!(PrototypeLoss {
            weight: -1.0,
            scale: 1.0
        }
        .validate()
        .is_err());
        assert!(PrototypeLoss {
            weight: 1.0,
            scale: 0.0
        }
        .validate()
        .is_err());
        assert!(PrototypeLoss {
            weight: 0.0,
            scale: 1.0
        }
        .validate()
        .is_ok());
    }
}
