//! Face embedders: aligned chip in, descriptor out.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::TensorData;
use image::RgbImage;

use crate::nn::{FaceResNet, FaceResNetConfig};
use crate::{Error, Result};

/// Maps aligned face chips to descriptors.
pub trait Embedder {
    /// Chip side the network expects.
    fn input_size(&self) -> usize;
    /// Descriptor dimension.
    fn dim(&self) -> usize;
    /// A short model name for records (e.g. the gallery's model column).
    fn name(&self) -> String;
    /// Descriptors of a batch of chips (each `input_size()` square).
    fn embed(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>>;
    /// SHA-256 of the weights, so that stored embeddings name the exact model.
    fn weights_sha256(&self) -> String;
}

/// The face ResNet (face-api.js port of dlib's network), 150x150 -> 128-d.
pub struct FaceResNetEmbedder {
    net: FaceResNet,
    cfg: FaceResNetConfig,
    device: Device,
    sha256: String,
}

impl FaceResNetEmbedder {
    /// Loads the TFJS weights from the manifest path.
    pub fn load(manifest: &Path, device: &Device) -> Result<Self> {
        let cfg = FaceResNetConfig::dlib();
        let mut map = crate::weights::tfjs::load(manifest)?;
        let net = cfg.load(&mut map, device)?;
        // The loader hashed the manifest and its shards as it read them.
        let sha256 = map.sha256.clone().unwrap_or_default();
        Ok(Self {
            net,
            cfg,
            device: device.clone(),
            sha256,
        })
    }

    /// Runs the network on a `[n, 3, 150, 150]` RGB (0..255) batch.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.net.forward(x)
    }
}

/// Packs RGB chips into a `[n, 3, s, s]` float tensor of 0..255 values.
pub fn chips_to_tensor(chips: &[RgbImage], size: usize, device: &Device) -> Result<Tensor<4>> {
    let n = size * size;
    let mut data = vec![0f32; chips.len() * 3 * n];
    for (b, chip) in chips.iter().enumerate() {
        if chip.width() as usize != size || chip.height() as usize != size {
            return Err(Error::Shape {
                name: "face chip".into(),
                expected: vec![size, size],
                got: vec![chip.height() as usize, chip.width() as usize],
            });
        }
        for (i, p) in chip.pixels().enumerate() {
            for c in 0..3 {
                data[(b * 3 + c) * n + i] = p.0[c] as f32;
            }
        }
    }
    Ok(Tensor::from_data(
        TensorData::new(data, [chips.len(), 3, size, size]),
        device,
    ))
}

impl Embedder for FaceResNetEmbedder {
    fn input_size(&self) -> usize {
        self.cfg.input_size
    }

    fn dim(&self) -> usize {
        self.cfg.dim
    }

    fn name(&self) -> String {
        "face-resnet-dlib".into()
    }

    fn weights_sha256(&self) -> String {
        self.sha256.clone()
    }

    fn embed(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        if chips.is_empty() {
            return Ok(Vec::new());
        }
        let x = chips_to_tensor(chips, self.cfg.input_size, &self.device)?;
        let y: Vec<f32> = self
            .net
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| Error::Checkpoint {
                path: "face_recognition_model".into(),
                problem: format!("{e:?}"),
            })?;
        Ok(y.chunks(self.cfg.dim).map(<[f32]>::to_vec).collect())
    }
}
