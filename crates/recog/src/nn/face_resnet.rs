//! The face ResNet: dlib's `dlib_face_recognition_resnet_model_v1` as ported to
//! TensorFlow.js by face-api.js (`face_recognition_model`).
//!
//! He et al., "Deep Residual Learning for Image Recognition", 2016; the network is dlib's
//! 29-layer ResNet (King, "High Quality Face Recognition with Deep Metric Learning", dlib
//! blog, 2017), trained with a pairwise hinge metric loss to map a 150x150 aligned face chip
//! to a 128-d descriptor where faces of one person lie within 0.6 of each other.
//!
//! Layout (face-api.js `FaceRecognitionNet`): conv 7x7/2 32 (valid) + scale + relu, max-pool
//! 3x3/2, residual blocks 32x3, 64 (down) + 64x3, 128 (down) + 128x2, 256 (down) + 256x2,
//! 256 (down), global average, fully connected 256 -> 128. Every conv is followed by a
//! per-channel affine "scale" layer (dlib's affine layer, batch-norm folded).
//! A down block convolves 3x3/2 (valid); its shortcut is a 2x2/2 average pool, zero-padded in
//! channels and, where the conv output is one pixel smaller, the conv output is zero-padded
//! at the bottom/right.
//!
//! ```no_run
//! use recog::face::{Embedder, FaceResNetEmbedder, ModelPaths};
//! let paths = ModelPaths::in_home(&recog::Home::from_env());
//! let e = FaceResNetEmbedder::load(&paths.face_resnet, &recog::default_device())?;
//! assert_eq!(e.dim(), 128);
//! # Ok::<(), recog::Error>(())
//! ```

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions, PadMode};
use serde::{Deserialize, Serialize};

use crate::weights::{param, WeightMap};
use crate::Result;

/// Configuration of [`FaceResNet`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceResNetConfig {
    /// Input chip side in pixels.
    pub input_size: usize,
    /// Descriptor dimension.
    pub dim: usize,
    /// Per-channel RGB mean subtracted from 0..255 pixels before dividing by 256.
    pub mean_rgb: [f32; 3],
}

impl FaceResNetConfig {
    /// face-api.js / dlib: 150x150 chips, 128-d descriptors.
    pub fn dlib() -> Self {
        Self {
            input_size: 150,
            dim: 128,
            mean_rgb: [122.782, 117.001, 104.298],
        }
    }

    /// Builds the network from a face-api.js weight map (names such as
    /// `conv32_down/conv/filters`).
    pub fn load(&self, map: &mut WeightMap, device: &Device) -> Result<FaceResNet> {
        let mut blocks = Vec::new();
        let plan: [(&str, usize, usize, bool); 13] = [
            ("conv32_1", 32, 32, false),
            ("conv32_2", 32, 32, false),
            ("conv32_3", 32, 32, false),
            ("conv64_down", 32, 64, true),
            ("conv64_1", 64, 64, false),
            ("conv64_2", 64, 64, false),
            ("conv64_3", 64, 64, false),
            ("conv128_down", 64, 128, true),
            ("conv128_1", 128, 128, false),
            ("conv128_2", 128, 128, false),
            ("conv256_down", 128, 256, true),
            ("conv256_1", 256, 256, false),
            ("conv256_2", 256, 256, false),
        ];
        for (name, cin, cout, down) in
            plan.into_iter()
                .chain([("conv256_down_out", 256, 256, true)])
        {
            blocks.push(ResBlock {
                conv1: ScaledConv::load(map, &format!("{name}/conv1"), cin, cout, 3, device)?,
                conv2: ScaledConv::load(map, &format!("{name}/conv2"), cout, cout, 3, device)?,
                down,
            });
        }
        let fc = param(map, "fc", &[256, self.dim], device)?;
        Ok(FaceResNet {
            conv32_down: ScaledConv::load(map, "conv32_down", 3, 32, 7, device)?,
            blocks,
            fc,
            mean_rgb: self.mean_rgb,
        })
    }
}

/// Conv + bias followed by a per-channel scale and shift (face-api.js `convLayer`).
#[derive(Module, Debug)]
pub struct ScaledConv {
    /// `conv/filters`, stored here as `[out, in, k, k]`.
    pub filters: Param<Tensor<4>>,
    /// `conv/bias`.
    pub bias: Param<Tensor<1>>,
    /// `scale/weights`.
    pub scale_weights: Param<Tensor<1>>,
    /// `scale/biases`.
    pub scale_biases: Param<Tensor<1>>,
}

impl ScaledConv {
    fn load(
        map: &mut WeightMap,
        prefix: &str,
        cin: usize,
        cout: usize,
        k: usize,
        device: &Device,
    ) -> Result<Self> {
        // TF stores filters as [k, k, in, out]; burn convolves with [out, in, k, k].
        let name = format!("{prefix}/conv/filters");
        let f = map.take(&name, &[k, k, cin, cout])?.permute(&[3, 2, 0, 1]);
        Ok(Self {
            filters: Param::from_tensor(f.to_tensor(&name, device)?),
            bias: param(map, &format!("{prefix}/conv/bias"), &[cout], device)?,
            scale_weights: param(map, &format!("{prefix}/scale/weights"), &[cout], device)?,
            scale_biases: param(map, &format!("{prefix}/scale/biases"), &[cout], device)?,
        })
    }

    fn forward(&self, x: Tensor<4>, stride: usize, same: bool, relu: bool) -> Tensor<4> {
        let k = self.filters.dims()[2];
        let pad = if same { k / 2 } else { 0 };
        let y = conv2d(
            x,
            self.filters.val(),
            Some(self.bias.val()),
            ConvOptions::new([stride, stride], [pad, pad], [1, 1], 1),
        );
        let c = self.scale_weights.dims()[0];
        let y = y * self.scale_weights.val().reshape([1, c, 1, 1])
            + self.scale_biases.val().reshape([1, c, 1, 1]);
        if relu {
            burn::tensor::activation::relu(y)
        } else {
            y
        }
    }
}

/// A residual block: two scaled convs and an identity (or pooled, padded) shortcut.
#[derive(Module, Debug)]
pub struct ResBlock {
    /// First conv (3x3, stride 2 in a down block), with relu.
    pub conv1: ScaledConv,
    /// Second conv (3x3), no relu before the sum.
    pub conv2: ScaledConv,
    /// Whether this block halves the resolution.
    pub down: bool,
}

impl ResBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if !self.down {
            let y =
                self.conv2
                    .forward(self.conv1.forward(x.clone(), 1, true, true), 1, true, false);
            return burn::tensor::activation::relu(y + x);
        }
        let y = self.conv1.forward(x.clone(), 2, false, true);
        let mut y = self.conv2.forward(y, 1, true, false);
        let pooled = avg_pool2d(x, AvgPoolOptions::new([2, 2]).with_stride([2, 2]));
        let [_, cp, hp, wp] = pooled.dims();
        let [_, cy, hy, wy] = y.dims();
        if hy < hp || wy < wp {
            y = y.pad(
                [(0, 0), (0, 0), (0, hp - hy), (0, wp - wy)],
                PadMode::Constant(0.0),
            );
        }
        let pooled = if cp < cy {
            pooled.pad(
                [(0, 0), (0, cy - cp), (0, 0), (0, 0)],
                PadMode::Constant(0.0),
            )
        } else {
            pooled
        };
        burn::tensor::activation::relu(y + pooled)
    }
}

/// The face ResNet. Parameter names follow face-api.js's weight names.
#[derive(Module, Debug)]
pub struct FaceResNet {
    /// Stem: conv 7x7/2, 3 -> 32.
    pub conv32_down: ScaledConv,
    /// The 14 residual blocks, in order.
    pub blocks: Vec<ResBlock>,
    /// Final projection `[256, dim]`.
    pub fc: Param<Tensor<2>>,
    /// RGB mean of the input normalisation.
    pub mean_rgb: [f32; 3],
}

impl FaceResNet {
    /// Descriptors of a batch of face chips.
    ///
    /// - input: `[batch, 3, 150, 150]`, RGB in 0..255
    /// - output: `[batch, 128]` (not normalised; same-person distances are below ~0.6)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let device = x.device();
        let mean = Tensor::<1>::from_floats(self.mean_rgb, &device).reshape([1, 3, 1, 1]);
        let x = (x - mean).div_scalar(256.0);
        let x = self.conv32_down.forward(x, 2, false, true);
        let mut x = max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2]));
        for b in &self.blocks {
            x = b.forward(x);
        }
        let [n, c, _, _] = x.dims();
        let pooled: Tensor<2> = x.mean_dim(2).mean_dim(3).reshape([n, c]);
        pooled.matmul(self.fc.val())
    }
}
