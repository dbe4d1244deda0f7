//! Every setting of a [`FacePipeline`] as plain data, so that a command line, a server
//! configuration or a script builds the same pipeline from the same defaults.
//!
//! ```
//! use recog::face::options::PipelineOptions;
//! let o = PipelineOptions::default();
//! assert!(o.refine && o.flip && o.landmarks);
//! assert_eq!(o.landmark_crop, recog::face::landmarks::DEFAULT_CROP_SCALE);
//! assert_eq!(o.model(), recog::face::FaceModel::MobileFaceNet);
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{AlignPoints, DetectorKind, DetectorSettings, FaceModel, FacePipeline};
use crate::gallery::Gallery;
use crate::{Home, Progress, Result};

/// The settings of a face pipeline; [`Default`] is the configuration measured on LFW.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineOptions {
    /// The detector.
    pub detector: DetectorKind,
    /// Smallest face side the detector looks for, px (`None`: the detector's own).
    pub min_face: Option<f32>,
    /// The descriptor network; `None` is the default network, or, for a gallery, the
    /// network that made its embeddings ([`PipelineOptions::build_for`]).
    pub model: Option<FaceModel>,
    /// Keypoints the alignment fits.
    pub points: AlignPoints,
    /// A second detection on a crop around each face, for finer keypoints.
    pub refine: bool,
    /// Average each descriptor with its mirror image's.
    pub flip: bool,
    /// Chip padding around the alignment template (dlib: 0.25).
    pub padding: f32,
    /// Align from the 68-point landmark model (else from the detector's keypoints).
    pub landmarks: bool,
    /// The landmark model's crop side, as a multiple of the detection box side.
    pub landmark_crop: f32,
    /// Faces narrower than this (px) are aligned from the detector's keypoints (`None`: the
    /// library's measured default).
    pub landmark_min_face: Option<f32>,
    /// A fine-tuned projection folder ([`FacePipeline::set_projection`]).
    pub projection: Option<PathBuf>,
    /// The descriptor network's number format on the CPU kernels (MobileFaceNet; the
    /// other networks run in `f32` whatever this says).
    pub precision: crate::nn::cpu::Precision,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            detector: DetectorKind::default(),
            min_face: None,
            model: None,
            points: AlignPoints::EyesNoseMouth,
            refine: true,
            flip: true,
            padding: 0.25,
            landmarks: true,
            landmark_crop: super::landmarks::DEFAULT_CROP_SCALE,
            landmark_min_face: None,
            projection: None,
            precision: crate::nn::cpu::Precision::default(),
        }
    }
}

impl PipelineOptions {
    /// The network these options name (the default network when they name none).
    pub fn model(&self) -> FaceModel {
        self.model.unwrap_or_default()
    }

    /// Loads the pipeline (installing missing models unless the home is offline).
    pub fn build(&self, home: &Home, progress: &dyn Progress) -> Result<FacePipeline> {
        self.build_model(home, self.model(), progress)
    }

    /// The pipeline for a gallery: the named network if any, else the one that made the
    /// gallery's embeddings, so that a gallery needs no flag to be queried.
    pub fn build_for(
        &self,
        home: &Home,
        gallery: &Gallery,
        progress: &dyn Progress,
    ) -> Result<FacePipeline> {
        let model = match self.model {
            Some(m) => m,
            None => gallery
                .model()?
                .and_then(|m| FaceModel::from_name(&m.name))
                .unwrap_or_default(),
        };
        self.build_model(home, model, progress)
    }

    fn build_model(
        &self,
        home: &Home,
        model: FaceModel,
        progress: &dyn Progress,
    ) -> Result<FacePipeline> {
        let settings = DetectorSettings {
            min_score: None,
            min_face: self.min_face,
        };
        let mut p = FacePipeline::with_models(
            home,
            &crate::face_device(),
            model,
            (self.detector, settings),
            progress,
        )?;
        p.embedder.set_precision(self.precision);
        p.points = self.points;
        p.refine = self.refine;
        p.flip = self.flip;
        p.padding = self.padding;
        if !self.landmarks {
            p.landmarker = None;
        } else if let Some(l) = p.landmarker.as_mut() {
            l.crop_scale = self.landmark_crop;
            if let Some(m) = self.landmark_min_face {
                l.min_face = m;
            }
        }
        if let Some(dir) = &self.projection {
            p.set_projection(dir)?;
        }
        Ok(p)
    }
}
