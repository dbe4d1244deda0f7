//! Face embedders: aligned chip in, descriptor out.
//!
//! ```no_run
//! use recog::face::{Embedder, MobileFaceNetEmbedder, ModelPaths};
//! let paths = ModelPaths::in_home(&recog::Home::from_env());
//! let e = MobileFaceNetEmbedder::load(&paths.mobilefacenet, &recog::default_device())?;
//! let chip = image::RgbImage::new(e.input_size() as u32, e.input_size() as u32);
//! assert_eq!(e.embed(&[chip])?[0].len(), e.dim());
//! # Ok::<(), recog::Error>(())
//! ```

use std::path::Path;

use burn::prelude::*;
use burn::tensor::TensorData;
use image::RgbImage;

use super::FaceModel;
use crate::nn::{FaceResNet, FaceResNetConfig, MobileFaceNet, MobileFaceNetConfig};
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
    /// How chips are cut for this network.
    fn layout(&self) -> ChipLayout {
        ChipLayout::Dlib
    }
    /// Euclidean distance under which two descriptors are usually one person: the
    /// uncalibrated default threshold, the far-photo warning and the tracker's identity
    /// gate (dlib's network: 0.6).
    fn verification_distance(&self) -> f32 {
        super::DLIB_VERIFICATION_DISTANCE
    }
    /// Whether descriptors are compared as unit vectors (cosine), so that the mean of a chip's
    /// and its mirror's descriptor is scaled back to unit length.
    fn unit_length(&self) -> bool {
        false
    }
    /// Sets the number format of the network's convolutions where it runs on recog's CPU
    /// kernels; networks that do not support a format keep `f32`.
    fn set_precision(&mut self, _precision: crate::nn::cpu::Precision) {}
    /// The number format the network's convolutions run in.
    fn precision(&self) -> crate::nn::cpu::Precision {
        crate::nn::cpu::Precision::F32
    }
}

/// Where a network expects the face inside its chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChipLayout {
    /// dlib's `get_face_chip_details`: the mean 68-point shape with the pipeline's padding.
    Dlib,
    /// InsightFace's 112x112 five-point template (eyes, nose tip, mouth corners), used by
    /// ArcFace-family networks such as MobileFaceNet.
    ArcFace,
}

/// MobileFaceNet (`MobileFaceNet.tflite`), 112x112 -> 192-d unit vectors.
pub struct MobileFaceNetEmbedder {
    net: MobileFaceNet,
    device: Device,
}

impl MobileFaceNetEmbedder {
    /// Loads `MobileFaceNet.tflite`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Ok(Self {
            net: MobileFaceNetConfig::tflite().load(path, device)?,
            device: device.clone(),
        })
    }

    /// The network.
    pub fn net(&self) -> &MobileFaceNet {
        &self.net
    }
}

impl Embedder for MobileFaceNetEmbedder {
    fn input_size(&self) -> usize {
        self.net.config().input_size
    }

    fn dim(&self) -> usize {
        self.net.config().dim
    }

    fn name(&self) -> String {
        FaceModel::MobileFaceNet.name().into()
    }

    fn weights_sha256(&self) -> String {
        self.net.sha256.clone()
    }

    fn layout(&self) -> ChipLayout {
        ChipLayout::ArcFace
    }

    fn verification_distance(&self) -> f32 {
        FaceModel::MobileFaceNet.verification_distance()
    }

    fn set_precision(&mut self, precision: crate::nn::cpu::Precision) {
        self.net.set_precision(precision);
    }

    fn precision(&self) -> crate::nn::cpu::Precision {
        self.net.precision()
    }

    fn embed(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        if chips.is_empty() {
            return Ok(Vec::new());
        }
        let size = self.input_size();
        if let Some(chip) = chips
            .iter()
            .find(|c| c.width() as usize != size || c.height() as usize != size)
        {
            return Err(chip_shape_error(chip, size));
        }
        let y = match self
            .net
            .forward_rgb(chips.len(), |i| chips[i].as_raw(), &self.device)
        {
            Some(y) => y?,
            None => self
                .net
                .forward(chips_to_tensor(chips, size, &self.device)?)?,
        };
        rows(y, "mobilefacenet")
    }
}

/// VGG-Face (the notebook's network, from the user's `vgg_face_weights.h5`), 224x224 ->
/// 2622-d fc8 (the notebook's descriptor) or 4096-d fc7, L2-normalised, so that the
/// Euclidean distance ranks pairs as the notebook's cosine distance does
/// (`d = sqrt(2 * cosine distance)`).
pub struct VggFaceEmbedder {
    net: crate::nn::VggFace,
    output: crate::nn::VggOutput,
    dim: usize,
    sha256: String,
    verification_distance: f32,
    device: Device,
}

impl VggFaceEmbedder {
    /// Loads a registered weights file ([`crate::Home::vgg_face`]).
    pub fn load(
        reg: &crate::home::added::VggFaceRegistration,
        output: crate::nn::VggOutput,
        device: &Device,
    ) -> Result<Self> {
        let (mut map, layers) = crate::weights::hdf5::load_keras(&reg.path)?;
        let cfg = crate::nn::VggFaceConfig {
            output,
            ..reg.config.clone()
        };
        let net = cfg.load(&mut map, &layers, device)?;
        let dim = match output {
            crate::nn::VggOutput::Fc8 => cfg.classes,
            crate::nn::VggOutput::Fc7 => cfg.fc_width,
        };
        Ok(Self {
            net,
            output,
            dim,
            sha256: reg.sha256.clone(),
            verification_distance: reg.verification_distance(),
            device: device.clone(),
        })
    }
}

impl Embedder for VggFaceEmbedder {
    fn input_size(&self) -> usize {
        224
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn name(&self) -> String {
        match self.output {
            crate::nn::VggOutput::Fc8 => FaceModel::VggFace.name().into(),
            crate::nn::VggOutput::Fc7 => FaceModel::VggFaceFc7.name().into(),
        }
    }

    fn weights_sha256(&self) -> String {
        self.sha256.clone()
    }

    fn verification_distance(&self) -> f32 {
        self.verification_distance
    }

    fn unit_length(&self) -> bool {
        true
    }

    fn embed(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        if chips.is_empty() {
            return Ok(Vec::new());
        }
        let x = chips_to_tensor(chips, 224, &self.device)?;
        let mut out = rows(self.net.forward(x), "vgg-face")?;
        for r in &mut out {
            let n = r.iter().map(|v| v * v).sum::<f32>().sqrt();
            if n > 0.0 {
                r.iter_mut().for_each(|v| *v /= n);
            }
        }
        Ok(out)
    }
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

/// The rows of a `[n, dim]` descriptor batch, read back from the device.
fn rows(y: Tensor<2>, model: &str) -> Result<Vec<Vec<f32>>> {
    let dim = y.dims()[1].max(1);
    let v: Vec<f32> = y
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| Error::Checkpoint {
            path: model.into(),
            problem: format!("{e:?}"),
        })?;
    Ok(v.chunks(dim).map(<[f32]>::to_vec).collect())
}

/// The error for a chip that is not `size x size`.
fn chip_shape_error(chip: &RgbImage, size: usize) -> Error {
    Error::Shape {
        name: "face chip".into(),
        expected: vec![size, size],
        got: vec![chip.height() as usize, chip.width() as usize],
    }
}

/// Packs RGB chips into a `[n, 3, s, s]` float tensor of 0..255 values.
pub fn chips_to_tensor(chips: &[RgbImage], size: usize, device: &Device) -> Result<Tensor<4>> {
    let n = size * size;
    let mut data = vec![0f32; chips.len() * 3 * n];
    for (b, chip) in chips.iter().enumerate() {
        if chip.width() as usize != size || chip.height() as usize != size {
            return Err(chip_shape_error(chip, size));
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
        FaceModel::Dlib.name().into()
    }

    fn weights_sha256(&self) -> String {
        self.sha256.clone()
    }

    fn embed(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        if chips.is_empty() {
            return Ok(Vec::new());
        }
        let x = chips_to_tensor(chips, self.cfg.input_size, &self.device)?;
        rows(self.net.forward(x), "face_recognition_model")
    }
}
