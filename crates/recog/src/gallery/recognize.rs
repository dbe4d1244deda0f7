//! Every face of an image, named from a gallery: the step shared by `identify`, `watch`
//! and `serve`.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::{Acceptance, Gallery, Index, Match, ModelId};
use crate::face::{FaceBox, FacePipeline};
use crate::Result;

/// One recognised face.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recognized {
    /// The face box (with keypoints and landmarks).
    pub face: FaceBox,
    /// Name or unknown, distance, margin.
    pub answer: Match,
    /// The face's embedding.
    #[serde(skip)]
    pub embedding: Vec<f32>,
}

/// The model id of a pipeline's embedder, as the gallery stores it.
pub fn model_id(p: &FacePipeline) -> ModelId {
    ModelId {
        name: p.embedder.name(),
        sha256: p.embedder.weights_sha256(),
        dim: p.embedder.dim(),
    }
}

/// A gallery's index and the decision in force: a fixed distance threshold, else the
/// gallery's calibration, else the pipeline's verification distance.
fn read(
    gallery: &Gallery,
    pipeline: &FacePipeline,
    fixed: Option<f32>,
) -> Result<(Index, Acceptance)> {
    let acceptance = match fixed {
        Some(t) => Acceptance::distance(t),
        None => gallery.calibration()?.map_or(
            Acceptance::distance(pipeline.embedder.match_distance()),
            |c| c.acceptance(),
        ),
    };
    Ok((gallery.index()?, acceptance))
}

/// A face pipeline with a gallery's index and threshold.
pub struct Recognizer {
    /// Detection, alignment, embedding.
    pub pipeline: FacePipeline,
    index: Index,
    acceptance: Acceptance,
    fixed_threshold: Option<f32>,
}

impl Recognizer {
    /// Checks that the gallery was made by the pipeline's model and loads its index; the
    /// decision is a distance threshold `threshold` if given, else the gallery's calibrated
    /// rule, else the model's verification distance ([`crate::face::Embedder::match_distance`]).
    pub fn new(pipeline: FacePipeline, gallery: &Gallery, threshold: Option<f32>) -> Result<Self> {
        gallery.check_model(&model_id(&pipeline))?;
        let (index, acceptance) = read(gallery, &pipeline, threshold)?;
        Ok(Self {
            pipeline,
            index,
            acceptance,
            fixed_threshold: threshold,
        })
    }

    /// Re-reads the gallery (after an enrolment or a removal).
    pub fn reload(&mut self, gallery: &Gallery) -> Result<()> {
        (self.index, self.acceptance) = read(gallery, &self.pipeline, self.fixed_threshold)?;
        Ok(())
    }

    /// The threshold in use (of the distance, or of the ratio; see [`Recognizer::acceptance`]).
    pub fn threshold(&self) -> f32 {
        self.acceptance.threshold
    }

    /// The decision rule in use.
    pub fn acceptance(&self) -> Acceptance {
        self.acceptance
    }

    /// The index (photos, people, metric).
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Every face in the image with its answer.
    pub fn recognize(&self, img: &RgbImage) -> Result<Vec<Recognized>> {
        let faces = self
            .pipeline
            .all_faces(std::slice::from_ref(img))?
            .pop()
            .unwrap_or_default();
        faces
            .into_iter()
            .map(|(face, e)| {
                Ok(Recognized {
                    face,
                    answer: self.index.decide(&e, &self.acceptance)?,
                    embedding: e,
                })
            })
            .collect()
    }
}
