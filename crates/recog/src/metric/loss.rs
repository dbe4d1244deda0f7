//! The triplet margin loss.
//!
//! `L(a, p, n) = max(0, d(a, p) - d(a, n) + margin)` (Schroff et al. 2015, FaceNet), with d
//! Euclidean or squared Euclidean.
//!
//! ```
//! use recog::metric::{Distance, Reduction, TripletMarginLoss, Triplets};
//! // One triplet whose negative is nearer than its positive: loss = d(a,p) - d(a,n) + margin.
//! let x = burn::tensor::Tensor::<2>::from_data(burn::tensor::TensorData::new(vec![0.0f32, 0.0, 2.0, 0.0, 1.0, 0.0], [3, 2]), &recog::default_device());
//! let t = Triplets { anchors: vec![0], positives: vec![1], negatives: vec![2] };
//! let loss = TripletMarginLoss { margin: 0.5, distance: Distance::Euclidean, reduction: Reduction::Mean };
//! let v: f32 = loss.forward(x, &t).loss.into_scalar();
//! assert!((v - 1.5).abs() < 1e-5);
//! ```

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::metric::{Distance, Triplets};

/// How per-triplet losses are averaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Reduction {
    /// Mean over all triplets.
    #[default]
    Mean,
    /// Mean over the triplets with a positive loss (Hermans et al.'s "batch all" averaging),
    /// so that the many easy triplets do not wash the gradient out.
    MeanActive,
}

/// The triplet margin loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TripletMarginLoss {
    /// The margin.
    pub margin: f32,
    /// The distance.
    pub distance: Distance,
    /// The reduction.
    pub reduction: Reduction,
}

/// A loss value with the statistics of its triplets.
#[derive(Debug, Clone)]
pub struct LossOutput {
    /// The scalar loss, `[1]`, differentiable.
    pub loss: Tensor<1>,
    /// Number of triplets.
    pub triplets: usize,
    /// Fraction of triplets with a positive loss.
    pub active_fraction: f32,
}

impl TripletMarginLoss {
    /// The per-triplet losses, `[T]`.
    ///
    /// - embeddings: `[n, D]`; the triplets index its rows.
    pub fn per_triplet(&self, embeddings: Tensor<2>, triplets: &Triplets) -> Tensor<1> {
        let n = embeddings.dims()[0];
        let device = embeddings.device();
        let dist = self.distance.pairwise(embeddings).reshape([n * n]);
        let idx = |other: &[usize]| {
            let v: Vec<i64> = triplets
                .anchors
                .iter()
                .zip(other)
                .map(|(&a, &o)| (a * n + o) as i64)
                .collect();
            Tensor::<1, Int>::from_data(TensorData::new(v, [triplets.len()]), &device)
        };
        let dap = dist.clone().select(0, idx(&triplets.positives));
        let dan = dist.select(0, idx(&triplets.negatives));
        (dap - dan).add_scalar(self.margin).clamp_min(0.0)
    }

    /// The reduced loss and the fraction of active triplets.
    pub fn forward(&self, embeddings: Tensor<2>, triplets: &Triplets) -> LossOutput {
        if triplets.is_empty() {
            return LossOutput {
                loss: embeddings.sum().mul_scalar(0.0),
                triplets: 0,
                active_fraction: 0.0,
            };
        }
        let l = self.per_triplet(embeddings, triplets);
        let values: Vec<f32> = l
            .clone()
            .detach()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        let active = values.iter().filter(|&&v| v > 0.0).count();
        let denom = match self.reduction {
            Reduction::Mean => triplets.len(),
            Reduction::MeanActive => active.max(1),
        };
        LossOutput {
            loss: l.sum().div_scalar(denom as f32),
            triplets: triplets.len(),
            active_fraction: active as f32 / triplets.len() as f32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::Miner;
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn naive(x: &[f32], d: usize, t: &Triplets, loss: &TripletMarginLoss) -> (f32, f32) {
        // Reference: for each (a, p, n): max(0, dist(a,p) - dist(a,n) + margin), one at a time.
        let row = |i: usize| &x[i * d..(i + 1) * d];
        let per: Vec<f32> = (0..t.len())
            .map(|i| {
                let dap = loss
                    .distance
                    .between(row(t.anchors[i]), row(t.positives[i]));
                let dan = loss
                    .distance
                    .between(row(t.anchors[i]), row(t.negatives[i]));
                (dap - dan + loss.margin).max(0.0)
            })
            .collect();
        let active = per.iter().filter(|&&v| v > 0.0).count();
        let denom = match loss.reduction {
            Reduction::Mean => per.len(),
            Reduction::MeanActive => active.max(1),
        };
        (
            per.iter().sum::<f32>() / denom as f32,
            active as f32 / per.len() as f32,
        )
    }

    fn run(x: &[f32], n: usize, d: usize, t: &Triplets, loss: &TripletMarginLoss) -> (f32, f32) {
        let device = Device::flex();
        let e = Tensor::<2>::from_data(TensorData::new(x.to_vec(), [n, d]), &device);
        let out = loss.forward(e, t);
        (out.loss.into_scalar::<f32>(), out.active_fraction)
    }

    const X: [f32; 12] = [0.0, 0.0, 1.0, 0.0, 0.2, 0.1, 3.0, 1.0, 0.5, 0.5, 2.0, 2.0];
    const L: [u32; 6] = [0, 1, 0, 1, 0, 1];

    #[test]
    fn golden_stacked() {
        // anchors (0,0),(1,0); positives (0.2,0.1),(3,1); negatives (0.5,0.5),(2,2)
        let t = Triplets::stacked(2);
        let loss = TripletMarginLoss {
            margin: 1.0,
            distance: Distance::SquaredEuclidean,
            reduction: Reduction::Mean,
        };
        // triplet 0: 0.05 - 0.5 + 1 = 0.55 ; triplet 1: 5 - 5 + 1 = 1.0 -> mean 0.775
        let (v, f) = run(&X, 6, 2, &t, &loss);
        assert!((v - 0.775).abs() < 1e-5, "{v}");
        assert_eq!(f, 1.0);
    }

    #[test]
    fn matches_naive_loop_for_every_miner() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for distance in [Distance::Euclidean, Distance::SquaredEuclidean] {
            for reduction in [Reduction::Mean, Reduction::MeanActive] {
                let loss = TripletMarginLoss {
                    margin: 0.5,
                    distance,
                    reduction,
                };
                let dist = distance.pairwise_host(&X, 6, 2);
                for miner in [
                    Miner::Random,
                    Miner::BatchAll,
                    Miner::BatchHard,
                    Miner::SemiHard,
                ] {
                    let t = miner.mine(&dist, &L, loss.margin, &mut rng);
                    let (got, gf) = run(&X, 6, 2, &t, &loss);
                    let (want, wf) = naive(&X, 2, &t, &loss);
                    assert!(
                        (got - want).abs() < 1e-4,
                        "{miner:?} {distance:?}: {got} vs {want}"
                    );
                    assert!((gf - wf).abs() < 1e-6);
                }
            }
        }
    }

    #[test]
    fn zero_once_margin_is_met() {
        // positives on top of anchors, negatives far away
        let x = [0.0f32, 0.0, 0.0, 0.0, 10.0, 0.0];
        let loss = TripletMarginLoss {
            margin: 1.0,
            distance: Distance::Euclidean,
            reduction: Reduction::Mean,
        };
        let (v, f) = run(&x, 3, 2, &Triplets::stacked(1), &loss);
        assert_eq!(v, 0.0);
        assert_eq!(f, 0.0);
    }

    #[test]
    fn empty_triplets_give_zero() {
        let loss = TripletMarginLoss {
            margin: 1.0,
            distance: Distance::Euclidean,
            reduction: Reduction::Mean,
        };
        let (v, _) = run(&X, 6, 2, &Triplets::default(), &loss);
        assert_eq!(v, 0.0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn loss_is_non_negative(x in prop::collection::vec(-5f32..5., 12), margin in 0f32..2.) {
            let loss = TripletMarginLoss { margin, distance: Distance::Euclidean, reduction: Reduction::Mean };
            let dist = loss.distance.pairwise_host(&x, 6, 2);
            let t = Miner::BatchAll.mine(&dist, &L, margin, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
            let (v, f) = run(&x, 6, 2, &t, &loss);
            prop_assert!(v >= 0.0);
            prop_assert!((0.0..=1.0).contains(&f));
        }
    }
}
