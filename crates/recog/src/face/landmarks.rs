//! 68-point landmarks for detected faces, with face-api.js's landmark network.
//!
//! ```no_run
//! use recog::face::{landmarks::Landmarker, ModelPaths};
//! let paths = ModelPaths::in_home(&recog::Home::from_env());
//! let lm = Landmarker::load(&paths.landmark68, &recog::default_device())?;
//! assert_eq!(lm.crop_scale, recog::face::landmarks::DEFAULT_CROP_SCALE);
//! # Ok::<(), recog::Error>(())
//! ```

use std::path::Path;

use burn::prelude::*;
use image::RgbImage;

use super::{align, FaceBox};
use crate::face::embed::chips_to_tensor;
use crate::nn::{FaceLandmark68, FaceLandmark68Config};
use crate::{Error, Result};

/// The landmark crop's side as a multiple of the detection box side: the setting every LFW
/// figure in README was measured with.
pub const DEFAULT_CROP_SCALE: f32 = 1.3;

/// Runs the landmark network on a square crop around each detected face.
pub struct Landmarker {
    net: FaceLandmark68,
    /// The network on [`crate::nn::cpu`]'s kernels, on the CPU device.
    cpu: Option<crate::nn::face_landmark68::FaceLandmark68Cpu>,
    size: usize,
    device: Device,
    /// Crop side as a multiple of the detection box side.
    pub crop_scale: f32,
    /// Faces whose box side is under this many pixels get no landmarks (their alignment
    /// then uses the detector's keypoints).
    pub min_face: f32,
}

impl Landmarker {
    /// Loads `face_landmark_68_model` (TFJS).
    pub fn load(manifest: &Path, device: &Device) -> Result<Self> {
        let cfg = FaceLandmark68Config::face_api();
        let mut map = crate::weights::tfjs::load(manifest)?;
        let net = cfg.load(&mut map, device)?;
        let cpu = if *device == Device::flex() {
            net.cpu()
        } else {
            None
        };
        Ok(Self {
            net,
            cpu,
            size: cfg.input_size,
            device: device.clone(),
            crop_scale: DEFAULT_CROP_SCALE,
            min_face: 0.0,
        })
    }

    /// Raw network output for crops (`[n, 136]` fractions of the crop side).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.net.forward(x)
    }

    /// Fills `landmarks` of every face at least `min_face` wide, in image pixels.
    pub fn annotate(&self, imgs: &[RgbImage], dets: &mut [Vec<FaceBox>]) -> Result<()> {
        let mut owners = Vec::new();
        // Images without detections, or detections without an image, have nothing to crop.
        for (i, faces) in dets.iter().enumerate().take(imgs.len()) {
            for (j, f) in faces.iter().enumerate() {
                if (f.x1 - f.x0).max(f.y1 - f.y0) < self.min_face {
                    continue;
                }
                let [cx, cy] = f.centre();
                let side = (f.x1 - f.x0).max(f.y1 - f.y0) * self.crop_scale;
                let tf = align::Similarity {
                    a: side / self.size as f32,
                    b: 0.0,
                    t: [cx - side / 2.0, cy - side / 2.0],
                };
                owners.push((i, j, tf));
            }
        }
        // The crops in parallel, as the network passes below: one warp is a fraction of a
        // millisecond, and a batch holds dozens.
        let size = self.size;
        let crops: Vec<RgbImage> = {
            use rayon::prelude::*;
            owners
                .par_iter()
                .map(|(i, _, tf)| align::warp(&imgs[*i], tf, size))
                .collect()
        };
        if crops.is_empty() {
            return Ok(());
        }
        let out: Vec<f32> = match &self.cpu {
            Some(cpu) => {
                use rayon::prelude::*;
                let rows = crops
                    .par_iter()
                    .map(|c| {
                        let side = (c.width() as usize, c.height() as usize);
                        let x = crate::nn::cpu::FeatureMap::from_interleaved(
                            c.as_raw(),
                            side,
                            3,
                            side,
                            |v| v as f32,
                        );
                        let out = x.as_ref().and_then(|x| cpu.forward(x));
                        if let Some(x) = x {
                            crate::nn::cpu::recycle(x);
                        }
                        out.ok_or_else(|| {
                            Error::InvalidArgument(format!(
                                "landmark crop {}x{}: the network takes {s}x{s}",
                                c.width(),
                                c.height(),
                                s = self.size
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                rows.concat()
            }
            None => {
                let x = chips_to_tensor(&crops, self.size, &self.device)?;
                self.net
                    .forward(x)
                    .into_data()
                    .try_to_vec::<f32>()
                    .map_err(|e| Error::InvalidArgument(format!("landmark output: {e:?}")))?
            }
        };
        let s = self.size as f32;
        for (k, (i, j, tf)) in owners.into_iter().enumerate() {
            let row = &out[k * 136..(k + 1) * 136];
            dets[i][j].landmarks = (0..68)
                .map(|p| tf.apply([row[2 * p] * s, row[2 * p + 1] * s]))
                .collect();
        }
        Ok(())
    }
}
