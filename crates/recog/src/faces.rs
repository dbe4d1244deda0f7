//! The front door: face recognition in a few verbs, in the spirit of `face_recognition`.
//! [`Faces::load`] installs and loads the default models (BlazeFace over an image pyramid,
//! the 68-point landmarks, MobileFaceNet); then [`Faces::detect`], [`Faces::embed`],
//! [`Faces::verify`], [`Faces::enroll`] and [`Faces::identify`] each take image files.
//!
//! Everything here is a thin layer over [`crate::face::FacePipeline`] and
//! [`crate::gallery`], which give every setting when these defaults do not fit.
//!
//! ```no_run
//! use recog::Faces;
//! let faces = Faces::load()?;
//! let v = faces.verify("a.jpg".as_ref(), "b.jpg".as_ref())?;
//! println!("distance {:.3}: {}", v.distance, if v.same { "same person" } else { "different people" });
//!
//! let mut gallery = faces.open_gallery("gallery.sqlite".as_ref())?;
//! faces.enroll(&mut gallery, "Ada", &["ada1.jpg".into(), "ada2.jpg".into()])?;
//! for face in faces.identify(&gallery, "group.jpg".as_ref())? {
//!     println!("{:?}: {}", face.bbox, face.answer.name.as_deref().unwrap_or("unknown"));
//! }
//! # Ok::<(), recog::Error>(())
//! ```

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::face::{EmbeddedFace, FaceBox, FaceModel, FacePipeline};
use crate::gallery::enroll::{enroll_person, EnrollReport};
use crate::gallery::{recognize, FaceAnswer, Gallery};
use crate::{Error, Home, NoProgress, Progress, Result};

/// Two photos compared.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The first photo.
    pub a: PathBuf,
    /// The second photo.
    pub b: PathBuf,
    /// Euclidean distance between the two central faces' descriptors.
    pub distance: f32,
    /// The network's verification distance.
    pub threshold: f32,
    /// `distance <= threshold`.
    pub same: bool,
    /// The network that made the descriptors ([`FacePipeline::model_name`]).
    pub model: String,
}

/// The face models, loaded once.
pub struct Faces {
    pipeline: FacePipeline,
}

impl Faces {
    /// The default pipeline from `RECOG_HOME` (models installed first if missing).
    pub fn load() -> Result<Self> {
        Self::load_model(&Home::from_env(), FaceModel::default(), &NoProgress)
    }

    /// Another network, or another home, with download progress.
    pub fn load_model(home: &Home, model: FaceModel, progress: &dyn Progress) -> Result<Self> {
        Ok(Self {
            pipeline: FacePipeline::with_model(home, &crate::face_device(), model, progress)?,
        })
    }

    /// These verbs over a pipeline built with other settings
    /// ([`crate::face::options::PipelineOptions`]).
    pub fn from_pipeline(pipeline: FacePipeline) -> Self {
        Self { pipeline }
    }

    /// The pipeline, for every setting these verbs do not show.
    pub fn pipeline(&self) -> &FacePipeline {
        &self.pipeline
    }

    /// Every face of an image, best detection first.
    pub fn detect(&self, image: &Path) -> Result<Vec<FaceBox>> {
        let img = crate::data::image_file::load_rgb(image)?;
        Ok(self
            .pipeline
            .locate(std::slice::from_ref(&img))?
            .pop()
            .unwrap_or_default())
    }

    /// Every face of an image with its descriptor, best detection first.
    pub fn embed(&self, image: &Path) -> Result<Vec<EmbeddedFace>> {
        let img = crate::data::image_file::load_rgb(image)?;
        Ok(self
            .pipeline
            .all_faces(std::slice::from_ref(&img))?
            .pop()
            .unwrap_or_default())
    }

    /// Whether the central faces of two photos are one person, at the network's verification
    /// distance. A photo without a face is an error naming it.
    pub fn verify(&self, a: &Path, b: &Path) -> Result<Verification> {
        self.verify_at(a, b, None)
    }

    /// [`Faces::verify`] at another Euclidean threshold (`None`: the network's).
    pub fn verify_at(&self, a: &Path, b: &Path, threshold: Option<f32>) -> Result<Verification> {
        let central = |p: &Path| -> Result<Vec<f32>> {
            let img = crate::data::image_file::load_rgb(p)?;
            self.pipeline
                .central_face(&img)?
                .0
                .map(|(_, e)| e)
                .ok_or_else(|| Error::InvalidArgument(format!("{}: no face found", p.display())))
        };
        let distance = crate::metric::distance::euclidean(&central(a)?, &central(b)?);
        let threshold = threshold.unwrap_or_else(|| self.pipeline.embedder.verification_distance());
        Ok(Verification {
            a: a.to_path_buf(),
            b: b.to_path_buf(),
            model: self.pipeline.model_name(),
            distance,
            threshold,
            same: distance <= threshold,
        })
    }

    /// Opens (creating) a gallery database.
    pub fn open_gallery(&self, path: &Path) -> Result<Gallery> {
        Gallery::open(path)
    }

    /// Enrols photos of one person (the central face of each) under the enrolment policy of
    /// [`crate::gallery::enroll`].
    pub fn enroll(
        &self,
        gallery: &mut Gallery,
        name: &str,
        photos: &[PathBuf],
    ) -> Result<EnrollReport> {
        enroll_person(gallery, &self.pipeline, name, photos, &NoProgress)
    }

    /// Every face of an image, named from the gallery or `unknown`, under the gallery's
    /// calibrated rule (else the network's verification distance).
    pub fn identify(&self, gallery: &Gallery, image: &Path) -> Result<Vec<FaceAnswer>> {
        gallery.check_model(&crate::gallery::model_id(&self.pipeline))?;
        let (index, acceptance) = recognize::read(
            gallery,
            &self.pipeline,
            None,
            crate::gallery::IndexKind::Auto,
        )?;
        let img = crate::data::image_file::load_rgb(image)?;
        Ok(
            recognize::recognize_with(&self.pipeline, &index, &acceptance, &img)?
                .iter()
                .map(FaceAnswer::new)
                .collect(),
        )
    }
}

impl std::fmt::Display for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (op, verdict) = if self.same {
            ("<=", "same person")
        } else {
            (">", "different people")
        };
        write!(
            f,
            "distance {:.4} {op} threshold {:.4}: {verdict}",
            self.distance, self.threshold
        )
    }
}
