//! The notebook's recognition head: Dense 32 relu -> Dense (classes + 1) softmax on
//! embeddings, the last class meaning "unknown".
//!
//! ```
//! use recog::openset::head::{train_head, HeadTraining};
//! // Two separable classes plus nothing else: the head learns them.
//! let x = [0.0f32, 0.0, 0.1, 0.0, 5.0, 5.0, 5.1, 5.0];
//! let w = train_head(&x, &[0, 0, 1, 1], 2, HeadTraining { n_classes: 2, epochs: 50, seed: 1 }, &recog::default_device(), &recog::NoProgress);
//! let p = w.probabilities(&[5.0, 5.0]);
//! assert!(p[1] > p[0]);
//! ```

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::GradientsParams;
use burn::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::progress::Progress;

/// The head as a burn module (for training).
#[derive(Module, Debug)]
pub struct Head {
    /// Dense 32.
    pub fc1: Linear,
    /// Dense classes + 1.
    pub fc2: Linear,
    /// ReLU.
    pub relu: Relu,
}

impl Head {
    /// Logits.
    ///
    /// - input: `[batch, D]`
    /// - output: `[batch, classes + 1]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc2.forward(self.relu.forward(self.fc1.forward(x)))
    }
}

/// The trained head's weights, stored in the recogniser file and run on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadWeights {
    /// Input dimension D.
    pub d_in: usize,
    /// Hidden units.
    pub hidden: usize,
    /// Outputs (classes + 1).
    pub d_out: usize,
    /// `[D, hidden]` row-major.
    pub w1: Vec<f32>,
    /// `[hidden]`.
    pub b1: Vec<f32>,
    /// `[hidden, d_out]` row-major.
    pub w2: Vec<f32>,
    /// `[d_out]`.
    pub b2: Vec<f32>,
}

/// Softmax of logits.
pub fn softmax(o: &[f32]) -> Vec<f32> {
    let m = o.iter().cloned().fold(f32::MIN, f32::max);
    let e: Vec<f32> = o.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

impl HeadWeights {
    /// Softmax probabilities for one embedding.
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        softmax(&self.logits(x))
    }

    /// The outputs before the softmax, for one embedding.
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        let mut h = self.b1.clone();
        for (i, &xi) in x.iter().enumerate().take(self.d_in) {
            let row = &self.w1[i * self.hidden..(i + 1) * self.hidden];
            for (hj, w) in h.iter_mut().zip(row) {
                *hj += xi * w;
            }
        }
        h.iter_mut().for_each(|v| *v = v.max(0.0));
        let mut o = self.b2.clone();
        for (j, &hj) in h.iter().enumerate() {
            let row = &self.w2[j * self.d_out..(j + 1) * self.d_out];
            for (ok, w) in o.iter_mut().zip(row) {
                *ok += hj * w;
            }
        }
        o
    }

    fn from_head(h: &Head, d_in: usize, hidden: usize, d_out: usize) -> Self {
        let v = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap_or_default();
        let b = |t: Option<burn::module::Param<Tensor<1>>>| {
            t.map(|p| p.val().into_data().try_to_vec::<f32>().unwrap_or_default())
                .unwrap_or_default()
        };
        Self {
            d_in,
            hidden,
            d_out,
            w1: v(h.fc1.weight.val()),
            b1: b(h.fc1.bias.clone()),
            w2: v(h.fc2.weight.val()),
            b2: b(h.fc2.bias.clone()),
        }
    }
}

/// Training settings of the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadTraining {
    /// Known classes (the head has one more output, "unknown").
    pub n_classes: usize,
    /// Passes over the data.
    pub epochs: usize,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
}

/// Trains the head on embeddings `x` (`[n, D]`) with labels in `0..=n_classes` (the last one
/// is "unknown"), Adam (PyTorch defaults), batch 128, seeded.
pub fn train_head(
    x: &[f32],
    labels: &[u32],
    d: usize,
    t: HeadTraining,
    device: &Device,
    progress: &dyn Progress,
) -> HeadWeights {
    let HeadTraining {
        n_classes,
        epochs,
        seed,
    } = t;
    let ad = device.clone().autodiff();
    ad.seed(seed);
    let hidden = 32;
    let mut head = Head {
        fc1: LinearConfig::new(d, hidden).init(&ad),
        fc2: LinearConfig::new(hidden, n_classes + 1).init(&ad),
        relu: Relu::new(),
    };
    let mut optim = crate::train::adam();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let n = labels.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let batch = 128;
    progress.start("fit head", (epochs * n.div_ceil(batch)) as u64);
    for _ in 0..epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(batch) {
            let mut xb = Vec::with_capacity(chunk.len() * d);
            for &i in chunk {
                xb.extend_from_slice(&x[i * d..(i + 1) * d]);
            }
            let yb: Vec<i64> = chunk.iter().map(|&i| labels[i] as i64).collect();
            let xt = Tensor::<2>::from_data(TensorData::new(xb, [chunk.len(), d]), &ad);
            let yt = Tensor::<1, Int>::from_data(TensorData::new(yb, [chunk.len()]), &ad);
            let loss = loss_fn.forward(head.forward(xt), yt);
            let grads = GradientsParams::from_grads(loss.backward(), &head);
            head = optim.step(1e-3, head, grads);
            progress.inc(1);
        }
    }
    progress.finish();
    HeadWeights::from_head(&head, d, hidden, n_classes + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    #[test]
    fn learns_separable_classes_and_host_matches_burn() {
        // class 0 near (1,0), class 1 near (0,1), unknown near (-1,-1)
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..300 {
            let e = (i % 7) as f32 * 0.02;
            let (p, l) = match i % 3 {
                0 => ([1.0 + e, 0.0], 0),
                1 => ([0.0, 1.0 - e], 1),
                _ => ([-1.0, -1.0 + e], 2),
            };
            x.extend(p);
            y.push(l);
        }
        let t = HeadTraining {
            n_classes: 2,
            epochs: 30,
            seed: 1,
        };
        let w = train_head(&x, &y, 2, t, &Device::flex(), &NoProgress);
        let argmax = |p: Vec<f32>| {
            p.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|v| v.0)
        };
        assert_eq!(argmax(w.probabilities(&[1.0, 0.0])), Some(0));
        assert_eq!(argmax(w.probabilities(&[0.0, 1.0])), Some(1));
        assert_eq!(argmax(w.probabilities(&[-1.0, -1.0])), Some(2));
        let p = w.probabilities(&[0.3, 0.2]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
