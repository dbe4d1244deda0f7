//! The notebook's embedding network for 28x28 digits.
//!
//! The architecture is Keras' `mnist_cnn` example trunk, used as a triplet-loss embedding
//! (Schroff et al., "FaceNet: A Unified Embedding for Face Recognition and Clustering", 2015;
//! Hermans et al., "In Defense of the Triplet Loss for Person Re-Identification", 2017):
//! Conv 32 3x3 relu, Conv 64 3x3 relu, MaxPool 2, Dropout 0.25, Dense 128 relu, Dropout 0.5,
//! Dense D, optionally L2-normalised. [`EmbeddingNetConfig::width`] multiplies the channel and
//! unit counts (a wider trunk, same depth). [`EmbeddingNetConfig::blocks`] = 2 adds a second
//! block of the same kind (Conv 64 3x3 relu, Conv 64 3x3 relu, MaxPool 2) after the first
//! pooling, the deeper VGG-style trunk of Simonyan and Zisserman ("Very Deep Convolutional
//! Networks for Large-Scale Image Recognition", 2015) that small MNIST networks use.
//!
//! ```
//! use recog::nn::EmbeddingNetConfig;
//! let device = recog::default_device();
//! let net = EmbeddingNetConfig::notebook().init(&device);
//! assert_eq!(net.forward(burn::tensor::Tensor::<4>::zeros([1, 1, 28, 28], &device)).dims(), [1, 2]);
//! ```

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, Relu};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Configuration of [`EmbeddingNet`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingNetConfig {
    /// Input side in pixels (square, one channel).
    pub input_size: usize,
    /// Embedding dimension D.
    pub dim: usize,
    /// L2-normalise the output onto the unit sphere.
    pub normalize: bool,
    /// Dropout after the pooling layer.
    pub dropout_conv: f64,
    /// Dropout after the dense hidden layer.
    pub dropout_dense: f64,
    /// Width multiplier: the convolutions have 32 x width and 64 x width channels and the
    /// dense hidden layer 128 x width units (1 = the notebook's; configs saved before the
    /// option existed read as 1).
    #[serde(default = "notebook_width")]
    pub width: usize,
    /// Convolution blocks (two 3x3 convolutions and a 2x2 pooling each): 1 = the notebook's;
    /// 2 adds a block of two 64 x width channel convolutions on the first block's pooled
    /// output (configs saved before the option existed read as 1).
    #[serde(default = "notebook_blocks")]
    pub blocks: usize,
}

fn notebook_width() -> usize {
    1
}

fn notebook_blocks() -> usize {
    1
}

impl EmbeddingNetConfig {
    /// The most weights [`Self::validate`] accepts (1 GiB of f32; the notebook's network has
    /// 1.2 million, width 2 about 4.8 million).
    pub const MAX_PARAMETERS: usize = 1 << 28;

    /// The notebook's setting: D = 2, no normalisation.
    pub fn notebook() -> Self {
        Self {
            input_size: 28,
            dim: 2,
            normalize: false,
            dropout_conv: 0.25,
            dropout_dense: 0.5,
            width: 1,
            blocks: 1,
        }
    }

    /// A 64-d, L2-normalised embedding for retrieval.
    pub fn retrieval64() -> Self {
        Self {
            dim: 64,
            normalize: true,
            ..Self::notebook()
        }
    }

    /// Channels of the two convolutions and units of the dense hidden layer.
    pub fn widths(&self) -> [usize; 3] {
        [32 * self.width, 64 * self.width, 128 * self.width]
    }

    /// Side of the first block's pooled output.
    fn first_pooled_side(&self) -> usize {
        self.input_size.saturating_sub(4) / 2
    }

    /// Side of the last block's pooled output.
    fn pooled_side(&self) -> usize {
        let s = self.first_pooled_side();
        if self.blocks >= 2 {
            s.saturating_sub(4) / 2
        } else {
            s
        }
    }

    /// Flattened size after the convolutions and pooling.
    pub fn flat_features(&self) -> usize {
        let s = self.pooled_side();
        self.widths()[1] * s * s
    }

    /// Checks the sizes before [`Self::init`] allocates anything: they come from a
    /// checkpoint's `config.json` as well as from flags, so a widths product that overflows or
    /// asks for more than [`Self::MAX_PARAMETERS`] weights is refused instead of aborting on the
    /// allocation.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.dim == 0 {
            return Err("embedding dimension must be at least 1".into());
        }
        if !(1..=8).contains(&self.width) {
            return Err(format!("width must be in 1..=8, got {}", self.width));
        }
        if !(1..=2).contains(&self.blocks) {
            return Err(format!("blocks must be 1 or 2, got {}", self.blocks));
        }
        let least = if self.blocks == 2 { 16 } else { 6 };
        if self.input_size < least {
            return Err(format!(
                "input side must be at least {least} pixels ({} of two 3x3 convolutions and a \
                 2x2 pooling), got {}",
                self.blocks, self.input_size
            ));
        }
        let [c1, c2, hidden] = self.widths();
        let s = self.pooled_side();
        // The second block's two convolutions, c2 -> c2, with biases.
        let second = if self.blocks == 2 {
            2 * c2 * (9 * c2 + 1)
        } else {
            0
        };
        let parameters = c2
            .checked_mul(s)
            .and_then(|v| v.checked_mul(s))
            .and_then(|flat| flat.checked_mul(hidden))
            .and_then(|v| v.checked_add(hidden.checked_mul(self.dim)?))
            .and_then(|v| v.checked_add(9 * c1 * (1 + c2)))
            .and_then(|v| v.checked_add(second))
            .filter(|&v| v <= Self::MAX_PARAMETERS);
        if parameters.is_none() {
            return Err(format!(
                "a {}x{} input with width {} and D = {} needs more than {} weights",
                self.input_size,
                self.input_size,
                self.width,
                self.dim,
                Self::MAX_PARAMETERS
            ));
        }
        Ok(())
    }

    /// Builds the network with fresh weights.
    pub fn init(&self, device: &Device) -> EmbeddingNet {
        let [c1, c2, hidden] = self.widths();
        EmbeddingNet {
            conv1: Conv2dConfig::new([1, c1], [3, 3]).init(device),
            conv2: Conv2dConfig::new([c1, c2], [3, 3]).init(device),
            conv3: (self.blocks == 2).then(|| Conv2dConfig::new([c2, c2], [3, 3]).init(device)),
            conv4: (self.blocks == 2).then(|| Conv2dConfig::new([c2, c2], [3, 3]).init(device)),
            first_pooled: [c2, self.first_pooled_side()],
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            drop1: DropoutConfig::new(self.dropout_conv).init(),
            fc1: LinearConfig::new(self.flat_features(), hidden).init(device),
            drop2: DropoutConfig::new(self.dropout_dense).init(),
            fc2: LinearConfig::new(hidden, self.dim).init(device),
            relu: Relu::new(),
            normalize: self.normalize,
        }
    }
}

/// The embedding network. Parameter names follow the notebook's layers.
#[derive(Module, Debug)]
pub struct EmbeddingNet {
    /// First convolution, 1 -> 32 (x width) channels.
    pub conv1: Conv2d,
    /// Second convolution, 32 -> 64 (x width) channels.
    pub conv2: Conv2d,
    /// The second block's first convolution, 64 -> 64 (x width) channels (`blocks` = 2).
    pub conv3: Option<Conv2d>,
    /// The second block's second convolution, 64 -> 64 (x width) channels (`blocks` = 2).
    pub conv4: Option<Conv2d>,
    /// Channels and side of the first block's pooled output, which [`Self::head`] takes
    /// flattened and the second block needs as a map.
    pub first_pooled: [usize; 2],
    /// 2x2 max pooling.
    pub pool: MaxPool2d,
    /// Dropout 0.25.
    pub drop1: Dropout,
    /// Dense 128 (x width).
    pub fc1: Linear,
    /// Dropout 0.5.
    pub drop2: Dropout,
    /// Dense D.
    pub fc2: Linear,
    /// ReLU.
    pub relu: Relu,
    /// L2-normalise the output.
    pub normalize: bool,
}

impl EmbeddingNet {
    /// Embeds every image of `data` in batches of `batch`, without dropout or gradients.
    /// Returns `[n, D]` row-major.
    pub fn embed_dataset(
        &self,
        data: &crate::data::Dataset,
        batch: usize,
        device: &Device,
        progress: &dyn crate::Progress,
    ) -> Vec<f32> {
        let net = self.valid();
        let mut out = Vec::new();
        let n = data.len();
        progress.start("embed", n as u64);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
        // On the CPU the convolutions run on recog's kernels, as in training.
        let on_cpu = super::HostTrunk::runs_on(device);
        for start in (0..n).step_by(batch.max(1)) {
            let idx: Vec<usize> = (start..(start + batch).min(n)).collect();
            let x = crate::train::images_tensor(data, &idx, 0, &mut rng, device);
            let features = on_cpu
                .then(|| super::HostTrunk::features(&net, x.clone()))
                .flatten();
            let emb = match features {
                Some(f) => net.head(f),
                None => net.forward(x),
            };
            let e: Vec<f32> = emb.into_data().try_to_vec::<f32>().unwrap_or_default();
            out.extend(e);
            progress.inc(idx.len() as u64);
        }
        progress.finish();
        out
    }

    /// Embeds a batch.
    ///
    /// - input: `[batch, 1, 28, 28]`, pixels in [0, 1]
    /// - output: `[batch, D]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.relu.forward(self.conv1.forward(x));
        let x = self.relu.forward(self.conv2.forward(x));
        self.head(self.pool.forward(x).flatten(1, 3))
    }

    /// The layers after the first block's pooling: the second block if there is one,
    /// dropout, dense + ReLU, dropout, dense, normalisation.
    ///
    /// - input: the first block's pooled features flattened in NCHW order,
    ///   `[batch, 64 * 12 * 12]` at 28 px
    /// - output: `[batch, D]`
    pub fn head(&self, x: Tensor<2>) -> Tensor<2> {
        let x = match (&self.conv3, &self.conv4) {
            (Some(conv3), Some(conv4)) => {
                let [c, s] = self.first_pooled;
                let [n, _] = x.dims();
                let x = x.reshape([n, c, s, s]);
                let x = self.relu.forward(conv3.forward(x));
                let x = self.relu.forward(conv4.forward(x));
                self.pool.forward(x).flatten(1, 3)
            }
            _ => x,
        };
        let x = self.drop1.forward(x);
        let x = self.drop2.forward(self.relu.forward(self.fc1.forward(x)));
        let x = self.fc2.forward(x);
        if self.normalize {
            l2_normalize(x)
        } else {
            x
        }
    }
}

/// Scales each row to unit length (rows of zeros stay finite).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).add_scalar(1e-12).sqrt();
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_saved_before_width_existed_reads_as_the_notebooks_width() {
        let old = r#"{"input_size":28,"dim":64,"normalize":true,"dropout_conv":0.25,"dropout_dense":0.0}"#;
        let cfg: EmbeddingNetConfig = serde_json::from_str(old).expect("an old config");
        assert_eq!(cfg.width, 1);
        assert_eq!(cfg.widths(), [32, 64, 128]);
    }

    #[test]
    fn width_multiplies_channels_and_hidden_units() {
        let cfg = EmbeddingNetConfig {
            width: 2,
            ..EmbeddingNetConfig::retrieval64()
        };
        let device = crate::default_device();
        let net = cfg.init(&device);
        assert_eq!(net.conv1.weight.dims(), [64, 1, 3, 3]);
        assert_eq!(net.conv2.weight.dims(), [128, 64, 3, 3]);
        assert_eq!(net.fc1.weight.dims(), [128 * 12 * 12, 256]);
        assert_eq!(net.fc2.weight.dims(), [256, 64]);
        let x = Tensor::<4>::zeros([3, 1, 28, 28], &device);
        assert_eq!(net.forward(x).dims(), [3, 64]);
        let mut train = crate::train::TrainConfig::for_dim(64);
        train.net.width = 0;
        assert!(train.validate().is_err());
    }

    #[test]
    fn a_second_block_adds_two_convolutions_and_a_pooling() {
        let cfg = EmbeddingNetConfig {
            blocks: 2,
            ..EmbeddingNetConfig::retrieval64()
        };
        assert_eq!(cfg.flat_features(), 64 * 4 * 4);
        let device = crate::default_device();
        let net = cfg.init(&device);
        let conv = |c: &Option<Conv2d>| c.as_ref().map(|c| c.weight.dims());
        assert_eq!(conv(&net.conv3), Some([64, 64, 3, 3]));
        assert_eq!(conv(&net.conv4), Some([64, 64, 3, 3]));
        assert_eq!(net.fc1.weight.dims(), [64 * 4 * 4, 128]);
        let x = Tensor::<4>::zeros([3, 1, 28, 28], &device);
        assert_eq!(net.forward(x).dims(), [3, 64]);
        let one = EmbeddingNetConfig::retrieval64().init(&device);
        assert!(one.conv3.is_none() && one.conv4.is_none());
        // A checkpoint's config without the field is the notebook's single block.
        let old = r#"{"input_size":28,"dim":64,"normalize":true,"dropout_conv":0.25,"dropout_dense":0.0,"width":1}"#;
        let cfg: EmbeddingNetConfig = serde_json::from_str(old).expect("an old config");
        assert_eq!(cfg.blocks, 1);
    }

    #[test]
    fn sizes_that_overflow_or_exceed_the_budget_are_refused() {
        let ok = EmbeddingNetConfig::retrieval64();
        assert!(ok.validate().is_ok());
        for bad in [
            EmbeddingNetConfig {
                dim: usize::MAX,
                ..ok.clone()
            },
            EmbeddingNetConfig {
                input_size: usize::MAX,
                ..ok.clone()
            },
            EmbeddingNetConfig {
                input_size: 4096,
                ..ok.clone()
            },
            EmbeddingNetConfig {
                input_size: 5,
                ..ok.clone()
            },
            EmbeddingNetConfig {
                width: usize::MAX,
                ..ok.clone()
            },
            EmbeddingNetConfig {
                blocks: 0,
                ..ok.clone()
            },
            EmbeddingNetConfig {
                blocks: 3,
                ..ok.clone()
            },
            // Two blocks leave nothing of 15 px to pool.
            EmbeddingNetConfig {
                blocks: 2,
                input_size: 15,
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
