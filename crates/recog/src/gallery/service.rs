//! The recognition service behind `recog serve`: a face pipeline and a gallery, answering
//! identify, enrol, list, remove and thumbnail requests one at a time. It is synchronous and
//! owns its models (burn's tensors are not `Send`), so a server runs it on one thread and
//! sends it jobs; its errors carry an [`crate::ErrorKind`] that tells a bad request from a
//! storage failure.
//!
//! ```no_run
//! use recog::face::FacePipeline;
//! use recog::gallery::{Gallery, Service};
//! use recog::{Home, NoProgress};
//!
//! let home = Home::from_env();
//! let pipeline = FacePipeline::standard(&home, &recog::default_device(), &NoProgress)?;
//! let mut service = Service::new(pipeline, Gallery::open("gallery.sqlite".as_ref())?, None)?;
//! service.enroll("Ada", &std::fs::read("ada.jpg")?)?;
//! let (answer, _) = service.identify(&std::fs::read("group.jpg")?)?;
//! for face in &answer.faces {
//!     println!("{:?} {:?} {:.3}", face.bbox, face.answer.name, face.answer.distance);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Instant;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::Recognizer;
use super::{check_name, model_id, FaceAnswer, Gallery, ModelId, NewPhoto, Person, Recognized};
use crate::face::{draw, FacePipeline};
use crate::{Error, Result};

/// The answer for one image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageAnswer {
    /// Image width, px.
    pub width: u32,
    /// Image height, px.
    pub height: u32,
    /// The threshold in force (of the distance, or of the ratio).
    pub threshold: f32,
    /// The decision rule, e.g. "ratio <= 0.860 and distance <= 0.6".
    pub accept: String,
    /// Time to recognise the image, ms.
    pub ms: f64,
    /// Every face found.
    pub faces: Vec<FaceAnswer>,
}

/// A face pipeline with its gallery, serving requests.
pub struct Service {
    recognizer: Recognizer,
    gallery: Gallery,
    model: ModelId,
}

/// Decodes an uploaded image (at most [`MAX_UPLOAD_ALLOC`] bytes decoded); an undecodable
/// body is the caller's error.
///
/// [`MAX_UPLOAD_ALLOC`]: crate::data::image_file::MAX_UPLOAD_ALLOC
pub fn decode_upload(bytes: &[u8]) -> Result<RgbImage> {
    use crate::data::image_file::{decode_bytes_within, MAX_UPLOAD_ALLOC};
    decode_bytes_within(bytes, MAX_UPLOAD_ALLOC)
        .map(|i| i.to_rgb8())
        .map_err(|problem| Error::Image {
            path: "upload".into(),
            problem,
        })
}

impl Service {
    /// Checks that the gallery was made by the pipeline's model; `threshold` fixes a distance
    /// threshold (else the gallery's calibrated rule, else the model's verification
    /// distance).
    pub fn new(pipeline: FacePipeline, gallery: Gallery, threshold: Option<f32>) -> Result<Self> {
        let model = model_id(&pipeline);
        let recognizer = Recognizer::new(pipeline, &gallery, threshold)?;
        Ok(Self {
            recognizer,
            gallery,
            model,
        })
    }

    /// The model's verification distance: the identity gate of a tracker following faces
    /// over a stream.
    pub fn verification_distance(&self) -> f32 {
        self.recognizer.pipeline.embedder.verification_distance()
    }

    /// Every face of an uploaded image, named or unknown, with the recognised faces (for a
    /// tracker).
    pub fn identify(&self, bytes: &[u8]) -> Result<(ImageAnswer, Vec<Recognized>)> {
        let t0 = Instant::now();
        let img = decode_upload(bytes)?;
        let found = self.recognizer.recognize(&img)?;
        let answer = ImageAnswer {
            width: img.width(),
            height: img.height(),
            threshold: self.recognizer.threshold(),
            accept: self.recognizer.acceptance().to_string(),
            ms: t0.elapsed().as_secs_f64() * 1e3,
            faces: found.iter().map(FaceAnswer::new).collect(),
        };
        Ok((answer, found))
    }

    /// Enrols the central face of an uploaded photo under `name` ([`check_name`]); returns
    /// the photos enrolled (0 when this photo was already enrolled for this person).
    pub fn enroll(&mut self, name: &str, bytes: &[u8]) -> Result<usize> {
        let name = check_name(name)?;
        let sha256 = crate::digest::sha256_bytes(bytes);
        match self.gallery.owner_of(&sha256)? {
            Some(owner) if owner == name => return Ok(0),
            Some(owner) => {
                return Err(Error::InvalidArgument(format!(
                    "this photo is already enrolled as {owner}"
                )))
            }
            None => {}
        }
        let img = decode_upload(bytes)?;
        let (f, embedding) = self
            .recognizer
            .pipeline
            .central_face(&img)?
            .0
            .ok_or_else(|| Error::InvalidArgument("no face found in the photo".into()))?;
        let photo = NewPhoto {
            path: format!("web:{name}"),
            sha256,
            embedding,
            thumbnail: draw::face_thumbnail(&img, &f, 96).ok(),
        };
        let n = self
            .gallery
            .enroll(&name, &self.model, std::slice::from_ref(&photo))?;
        self.recognizer.refresh(&self.gallery, &name)?;
        Ok(n)
    }

    /// The people enrolled.
    pub fn people(&self) -> Result<Vec<Person>> {
        self.gallery.list()
    }

    /// Removes a person; false when nobody has that name.
    pub fn remove(&mut self, name: &str) -> Result<bool> {
        let removed = self.gallery.remove(name)?;
        if removed {
            self.recognizer.refresh(&self.gallery, name)?;
        }
        Ok(removed)
    }

    /// A person's face thumbnail (JPEG), if any.
    pub fn thumbnail(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.gallery.thumbnail(name)
    }
}
