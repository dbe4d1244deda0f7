//! Faces: detection, alignment and embedding, as one reusable [`FacePipeline`].
//!
//! - [`detect`]: the [`Detector`] trait; BlazeFace over an image pyramid (the default),
//!   BlazeFace on one 128x128 letterbox, and the notebook's Haar cascade ([`DetectorKind`]).
//! - [`align`]: similarity transform from keypoints to the embedding network's template.
//! - [`embed`]: the [`Embedder`] trait; MobileFaceNet (192-d, the default) and dlib's face ResNet (128-d).
//!
//! ```
//! use recog::face::{FaceBox, FaceModel};
//! let a = FaceBox { x0: 0.0, y0: 0.0, x1: 10.0, y1: 10.0, score: 1.0, keypoints: vec![], landmarks: vec![] };
//! let b = FaceBox { x0: 5.0, ..a.clone() };
//! assert!((a.iou(&b) - 0.5).abs() < 1e-6); // half of a inside b, union 100
//! assert_eq!(FaceModel::Dlib.verification_distance(), recog::face::DLIB_VERIFICATION_DISTANCE);
//! ```

pub mod align;
pub mod detect;
pub mod draw;
pub mod embed;
pub mod files;
pub mod finetune;
pub mod haar;
pub mod landmarks;
pub mod options;

use std::path::{Path, PathBuf};

use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use detect::{BlazeFaceDetector, BlazeFacePyramid, Detector, DetectorKind, DetectorSettings};
/// dlib's verification distance: two descriptors of its ResNet nearer than this are usually one
/// person (its author's figure; recog's other networks have their own,
/// [`FaceModel::verification_distance`]).
pub const DLIB_VERIFICATION_DISTANCE: f32 = 0.6;

pub use embed::{ChipLayout, Embedder, FaceResNetEmbedder, MobileFaceNetEmbedder, VggFaceEmbedder};

use crate::home::registry::{self, Pretrained};
use crate::progress::Progress;
use crate::{Home, Result};

/// A detected face: box corners, score and keypoints, in image pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceBox {
    /// Left.
    pub x0: f32,
    /// Top.
    pub y0: f32,
    /// Right.
    pub x1: f32,
    /// Bottom.
    pub y1: f32,
    /// Detector confidence in [0, 1].
    pub score: f32,
    /// BlazeFace order: right eye, left eye (of the subject), nose tip, mouth centre, right
    /// ear, left ear. Empty for detectors without keypoints.
    pub keypoints: Vec<[f32; 2]>,
    /// The 68 iBUG 300-W landmarks (dlib's layout) when a landmark model ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub landmarks: Vec<[f32; 2]>,
}

impl FaceBox {
    /// Intersection over union with another box.
    pub fn iou(&self, o: &FaceBox) -> f32 {
        let iw = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0.0);
        let ih = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0.0);
        let inter = iw * ih;
        let union = self.area() + o.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    /// Box area.
    pub fn area(&self) -> f32 {
        (self.x1 - self.x0).max(0.0) * (self.y1 - self.y0).max(0.0)
    }

    /// Box centre.
    pub fn centre(&self) -> [f32; 2] {
        [(self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0]
    }
}

/// Where the pretrained models are, found through the home's models search path.
#[derive(Debug, Clone)]
pub struct ModelPaths {
    /// BlazeFace front model (ONNX).
    pub blazeface: PathBuf,
    /// face-api.js face recognition manifest (TFJS).
    pub face_resnet: PathBuf,
    /// OpenCV Haar cascade XML.
    pub haar: PathBuf,
    /// face-api.js 68-point landmark manifest (TFJS).
    pub landmark68: PathBuf,
    /// MobileFaceNet (TFLite).
    pub mobilefacenet: PathBuf,
}

/// Which descriptor network a pipeline runs.
///
/// MobileFaceNet is the default: it is ahead of dlib's ResNet on every figure measured (LFW
/// View 2 99.42% against 99.17%; LFW one-shot open set DIR 92.09% against 52.57% at the same
/// calibrated false-accept rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum FaceModel {
    /// dlib's ResNet (face-api.js weights), 150x150 -> 128-d.
    Dlib,
    /// MobileFaceNet (MobileFaceNet_TF weights, TFLite), 112x112 -> 192-d.
    #[default]
    #[cfg_attr(feature = "clap", value(name = "mobilefacenet"))]
    MobileFaceNet,
    /// VGG-Face, the notebook's network (the user's `vgg_face_weights.h5`), 224x224 ->
    /// 2622-d fc8, unit length.
    #[serde(rename = "vgg-face")]
    VggFace,
    /// VGG-Face's 4096-d fc7 output, unit length.
    #[serde(rename = "vgg-face-fc7")]
    VggFaceFc7,
}

impl FaceModel {
    /// The name stored with its embeddings ([`Embedder::name`]).
    pub fn name(self) -> &'static str {
        match self {
            FaceModel::Dlib => "face-resnet-dlib",
            FaceModel::MobileFaceNet => "mobilefacenet",
            FaceModel::VggFace => "vgg-face",
            FaceModel::VggFaceFc7 => "vgg-face-fc7",
        }
    }

    /// The network whose embeddings are stored under `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            FaceModel::Dlib,
            FaceModel::MobileFaceNet,
            FaceModel::VggFace,
            FaceModel::VggFaceFc7,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }

    /// A readable name for plots and reports.
    pub fn label(self) -> &'static str {
        match self {
            FaceModel::Dlib => "dlib ResNet",
            FaceModel::MobileFaceNet => "MobileFaceNet",
            FaceModel::VggFace => "VGG-Face",
            FaceModel::VggFaceFc7 => "VGG-Face fc7",
        }
    }

    /// Euclidean distance under which two descriptors are usually one person
    /// ([`Embedder::verification_distance`]). dlib's 0.6 is its author's; MobileFaceNet's 1.06 is the
    /// distance that best splits LFW View 1's training pairs (`pairsDevTrain.txt`) with recog's
    /// default pipeline (`tools/lfw_dev_threshold.py`). VGG-Face's is the notebook's cosine
    /// threshold until the user records one measured the same way
    /// ([`crate::home::added::VggFaceRegistration::verification_distance`], which its embedder uses).
    pub fn verification_distance(self) -> f32 {
        match self {
            FaceModel::Dlib => DLIB_VERIFICATION_DISTANCE,
            FaceModel::MobileFaceNet => 1.06,
            FaceModel::VggFace | FaceModel::VggFaceFc7 => {
                crate::home::added::VGG_FACE_DEFAULT_DISTANCE
            }
        }
    }
}

impl FaceModel {
    /// The registry model holding its weights (none for VGG-Face: the user adds it).
    pub fn weights(self) -> Option<Pretrained> {
        match self {
            FaceModel::Dlib => Some(Pretrained::FaceResnet),
            FaceModel::MobileFaceNet => Some(Pretrained::MobileFaceNet),
            FaceModel::VggFace | FaceModel::VggFaceFc7 => None,
        }
    }
}

impl ModelPaths {
    /// Each model's first file, found through the home's models search path (or where it
    /// would be installed); nothing is downloaded.
    pub fn in_home(home: &Home) -> Self {
        let first = |m: Pretrained| home.model_file(registry::entry(m).files[0].install);
        Self {
            blazeface: first(Pretrained::Blazeface),
            face_resnet: first(Pretrained::FaceResnet),
            haar: first(Pretrained::Haar),
            landmark68: first(Pretrained::FaceLandmark68),
            mobilefacenet: first(Pretrained::MobileFaceNet),
        }
    }

    /// [`ModelPaths::in_home`] after installing `models` where they are missing (unless
    /// the home is offline).
    pub fn ensure(home: &Home, models: &[Pretrained], progress: &dyn Progress) -> Result<Self> {
        home.ensure_models(models, progress)?;
        Ok(Self::in_home(home))
    }
}

/// What the pipeline found for one image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaceResult {
    /// The chosen face (`None` if none was found and no fallback applied).
    pub face: Option<FaceBox>,
    /// Whether the embedding came from the centre-crop fallback, not a detection.
    pub fallback: bool,
    /// The descriptor (empty when no face was found or the file could not be read).
    pub embedding: Vec<f32>,
    /// Why the file could not be read, if it could not: batch work goes on without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A detected face and its descriptor.
pub type EmbeddedFace = (FaceBox, Vec<f32>);

/// Which face to keep when an image holds several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Every face.
    All,
    /// The face that covers the image centre (LFW's convention), else the best score.
    Central,
}

/// Detector + aligner + embedder, reused across images; works in batches.
pub struct FacePipeline {
    /// The detector.
    pub detector: Box<dyn Detector>,
    /// The embedder.
    pub embedder: Box<dyn Embedder>,
    /// Chip padding around the template (dlib: 0.25).
    pub padding: f32,
    /// Which keypoints the alignment fits.
    pub points: AlignPoints,
    /// Detect a second time on a crop around each face, for finer keypoints.
    pub refine: bool,
    /// Average the descriptors of the chip and its mirror image.
    pub flip: bool,
    /// 68-point landmark model; with it, chips follow dlib's 68-point alignment.
    pub landmarker: Option<landmarks::Landmarker>,
    /// A fine-tuned projection applied to every descriptor ([`FacePipeline::set_projection`]).
    projection: Option<(finetune::Projection, String)>,
    /// Where the networks run.
    device: burn::tensor::Device,
}

/// Keypoints used to fit the alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum AlignPoints {
    /// Both eyes, nose tip, mouth centre.
    EyesNoseMouth,
    /// Both eyes and the mouth centre.
    EyesMouth,
}

impl AlignPoints {
    fn indices(self) -> &'static [usize] {
        match self {
            AlignPoints::EyesNoseMouth => &[0, 1, 2, 3],
            AlignPoints::EyesMouth => &[0, 1, 3],
        }
    }
}

/// What aligning a face needs from a [`FacePipeline`]: the embedder's chip size and layout,
/// the padding and the keypoints. Plain values, so chips can be cut on any thread (the
/// pipeline's networks are not shared between threads).
#[derive(Debug, Clone, Copy)]
struct Chipper {
    size: usize,
    layout: ChipLayout,
    padding: f32,
    points: AlignPoints,
}

impl Chipper {
    fn chip(&self, img: &RgbImage, face: &FaceBox) -> RgbImage {
        let size = self.size;
        if self.layout == ChipLayout::ArcFace {
            if let Some(p5) = align::five_from_68(&face.landmarks) {
                return align::align_arcface(img, &p5, size);
            }
            if face.keypoints.len() >= 4 {
                return align::align_arcface(img, &face.keypoints[..4], size);
            }
        }
        if face.landmarks.len() == 68 {
            align::align68(img, &face.landmarks, size, self.padding)
        } else if face.keypoints.len() >= 4 {
            let t = align::dlib_template(size, self.padding);
            let idx = self.points.indices();
            let from: Vec<[f32; 2]> = idx.iter().map(|&i| t[i]).collect();
            let to: Vec<[f32; 2]> = idx.iter().map(|&i| face.keypoints[i]).collect();
            align::warp(img, &align::Similarity::fit(&from, &to), size)
        } else {
            let [cx, cy] = face.centre();
            let side =
                (face.x1 - face.x0).max(face.y1 - face.y0) * (1.0 + 2.0 * self.padding) / 1.2;
            let s = side / size as f32;
            let tf = align::Similarity {
                a: s,
                b: 0.0,
                t: [cx - side / 2.0, cy - side / 2.0],
            };
            align::warp(img, &tf, size)
        }
    }

    fn centre_chip(&self, img: &RgbImage) -> RgbImage {
        let size = self.size;
        let (w, h) = (img.width() as f32, img.height() as f32);
        let side = w.min(h) * 0.5;
        let s = side / size as f32;
        let tf = align::Similarity {
            a: s,
            b: 0.0,
            t: [(w - side) / 2.0, (h - side) / 2.0],
        };
        align::warp(img, &tf, size)
    }
}

impl FacePipeline {
    /// The default detector (BlazeFace over an image pyramid, with a refining second pass),
    /// 68-point landmarks and the default network with mirror averaging, from a recog home:
    /// the configuration measured on LFW. Missing models are installed first (unless the
    /// home is offline).
    pub fn standard(
        home: &Home,
        device: &burn::tensor::Device,
        progress: &dyn Progress,
    ) -> Result<Self> {
        Self::with_model(home, device, FaceModel::default(), progress)
    }

    /// [`FacePipeline::standard`] with another descriptor network.
    pub fn with_model(
        home: &Home,
        device: &burn::tensor::Device,
        model: FaceModel,
        progress: &dyn Progress,
    ) -> Result<Self> {
        Self::with_models(
            home,
            device,
            model,
            (DetectorKind::default(), DetectorSettings::default()),
            progress,
        )
    }

    /// [`FacePipeline::standard`] with another descriptor network and detector.
    pub fn with_models(
        home: &Home,
        device: &burn::tensor::Device,
        model: FaceModel,
        detector: (DetectorKind, DetectorSettings),
        progress: &dyn Progress,
    ) -> Result<Self> {
        let (detector, settings) = detector;
        let mut needed = vec![detector.weights(), Pretrained::FaceLandmark68];
        needed.extend(model.weights());
        let p = ModelPaths::ensure(home, &needed, progress)?;
        let mut embedder: Box<dyn Embedder> = match model {
            FaceModel::Dlib => Box::new(FaceResNetEmbedder::load(&p.face_resnet, device)?),
            FaceModel::MobileFaceNet => {
                Box::new(MobileFaceNetEmbedder::load(&p.mobilefacenet, device)?)
            }
            FaceModel::VggFace | FaceModel::VggFaceFc7 => {
                let output = if model == FaceModel::VggFace {
                    crate::nn::VggOutput::Fc8
                } else {
                    crate::nn::VggOutput::Fc7
                };
                Box::new(embed::VggFaceEmbedder::load(
                    &home.vgg_face()?,
                    output,
                    device,
                )?)
            }
        };
        embedder.set_precision(crate::nn::cpu::Precision::default());
        Ok(Self {
            detector: detector.load(home, device, &settings, progress)?,
            embedder,
            padding: 0.25,
            points: AlignPoints::EyesNoseMouth,
            refine: true,
            flip: true,
            landmarker: Some(landmarks::Landmarker::load(&p.landmark68, device)?),
            projection: None,
            device: device.clone(),
        })
    }

    /// Applies the fine-tuned projection in `dir` (`recog face finetune --out DIR`) to every
    /// descriptor this pipeline makes, whatever the caller (embed, verify, enrol, identify,
    /// watch, serve). The gallery's model id then names the projection too, so a gallery of
    /// projected descriptors refuses plain ones and the reverse.
    pub fn set_projection(&mut self, dir: &Path) -> Result<()> {
        let device = self.device.clone();
        let (head, d_in) = finetune::Projection::load_with_input(dir, &device)?;
        if d_in != self.embedder.dim() {
            return Err(crate::Error::Shape {
                name: format!("{}: projection input", dir.display()),
                expected: vec![self.embedder.dim()],
                got: vec![d_in],
            });
        }
        let sha = crate::digest::sha256_file(&dir.join("projection.bpk"))?;
        self.projection = Some((head, sha));
        Ok(())
    }

    /// The descriptor dimension, after the projection if one is set.
    pub fn dim(&self) -> usize {
        self.projection
            .as_ref()
            .map_or(self.embedder.dim(), |(p, _)| p.dim())
    }

    /// The descriptors' model name, `+projection` when one is set.
    pub fn model_name(&self) -> String {
        match &self.projection {
            Some(_) => format!("{}+projection", self.embedder.name()),
            None => self.embedder.name(),
        }
    }

    /// The SHA-256 of the weights that make the descriptors (the network's, then the
    /// projection's when one is set).
    pub fn weights_sha256(&self) -> String {
        match &self.projection {
            Some((_, p)) => format!("{}+{p}", self.embedder.weights_sha256()),
            None => self.embedder.weights_sha256(),
        }
    }

    /// The aligned chip of a face; without keypoints, the box is squared and scaled so the
    /// face fills the chip as the template would.
    pub fn chip(&self, img: &RgbImage, face: &FaceBox) -> RgbImage {
        self.chipper().chip(img, face)
    }

    fn chipper(&self) -> Chipper {
        Chipper {
            size: self.embedder.input_size(),
            layout: self.embedder.layout(),
            padding: self.padding,
            points: self.points,
        }
    }

    /// The chip of every face of each image, in order: [`FacePipeline::chip`] over the
    /// faces in parallel (one chip is a fraction of a millisecond; a batch holds dozens).
    pub fn chips(&self, imgs: &[RgbImage], faces: &[Vec<FaceBox>]) -> Vec<RgbImage> {
        let pairs: Vec<(&RgbImage, &FaceBox)> = imgs
            .iter()
            .zip(faces)
            .flat_map(|(img, fs)| fs.iter().map(move |f| (img, f)))
            .collect();
        let chipper = self.chipper();
        pairs
            .par_iter()
            .map(|(img, f)| chipper.chip(img, f))
            .collect()
    }

    /// A centre crop for images where no face was found (LFW images are centred on the
    /// face): the middle 50% of the shorter side.
    pub fn centre_chip(&self, img: &RgbImage) -> RgbImage {
        self.chipper().centre_chip(img)
    }

    /// Detects, aligns and embeds one face per image (the `pick` rule), in batches of
    /// `batch`. Images without a face get the centre crop when `fallback` is set, else an
    /// empty embedding. A file that cannot be read gets a result with its `error` and the
    /// others go on; errors of the networks themselves stop the work.
    pub fn embed_files(
        &self,
        paths: &[PathBuf],
        batch: usize,
        fallback: bool,
        progress: &dyn Progress,
    ) -> Result<Vec<FaceResult>> {
        progress.start("embedding faces", paths.len() as u64);
        let mut out = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(batch.max(1)) {
            // The readable images go on; each unreadable one keeps its place as an error.
            let mut imgs = Vec::with_capacity(chunk.len());
            let mut loaded: Vec<Option<String>> = Vec::with_capacity(chunk.len());
            for r in decode_all(chunk) {
                match r {
                    Ok(img) => {
                        imgs.push(img);
                        loaded.push(None);
                    }
                    Err(e) => loaded.push(Some(e.to_string())),
                }
            }
            let dets = self.locate(&imgs)?;
            let meta: Vec<(Option<FaceBox>, bool)> = imgs
                .iter()
                .zip(dets)
                .map(|(img, faces)| match pick_central(img, &faces) {
                    Some(f) => (Some(f), false),
                    None => (None, fallback),
                })
                .collect();
            let chipper = self.chipper();
            let chips: Vec<RgbImage> = imgs
                .par_iter()
                .zip(&meta)
                .filter_map(|(img, (face, fb))| match face {
                    Some(f) => Some(chipper.chip(img, f)),
                    None if *fb => Some(chipper.centre_chip(img)),
                    None => None,
                })
                .collect();
            let embs = self.embed_chips(&chips)?;
            let mut e = embs.into_iter();
            let mut meta = meta.into_iter();
            for error in loaded {
                if error.is_some() {
                    out.push(FaceResult {
                        face: None,
                        fallback: false,
                        embedding: Vec::new(),
                        error,
                    });
                    continue;
                }
                let (face, fb) = meta.next().unwrap_or((None, false));
                let embedding = if face.is_some() || fb {
                    e.next().unwrap_or_default()
                } else {
                    Vec::new()
                };
                out.push(FaceResult {
                    face,
                    fallback: fb,
                    embedding,
                    error: None,
                });
            }
            progress.inc(chunk.len() as u64);
        }
        progress.finish();
        Ok(out)
    }
}

impl FacePipeline {
    /// Every face of each image, best detection first: detected, refined (if `refine`) and
    /// with landmarks (if a landmark model is loaded), ready for [`FacePipeline::chip`].
    pub fn locate(&self, imgs: &[RgbImage]) -> Result<Vec<Vec<FaceBox>>> {
        let refs: Vec<&RgbImage> = imgs.iter().collect();
        let mut dets = self.detector.detect_batch(&refs)?;
        if self.refine {
            dets = self.refine_batch(imgs, dets)?;
        }
        if let Some(lm) = &self.landmarker {
            lm.annotate(imgs, &mut dets)?;
        }
        Ok(dets)
    }

    /// Every face of each image with its descriptor, best detection first.
    pub fn all_faces(&self, imgs: &[RgbImage]) -> Result<Vec<Vec<EmbeddedFace>>> {
        let dets = self.locate(imgs)?;
        self.embed_located(imgs, dets)
    }

    /// Where the faces of the previous video frame are in `img`, with their descriptors:
    /// [`FacePipeline::follow`], then landmarks and descriptors as in
    /// [`FacePipeline::all_faces`].
    pub fn followed_faces(
        &self,
        img: &RgbImage,
        previous: &[FaceBox],
    ) -> Result<Vec<EmbeddedFace>> {
        let imgs = std::slice::from_ref(img);
        let mut dets = vec![self.follow(img, previous)?];
        if let Some(lm) = &self.landmarker {
            lm.annotate(imgs, &mut dets)?;
        }
        Ok(self.embed_located(imgs, dets)?.pop().unwrap_or_default())
    }

    /// Each located face's chip, embedded.
    fn embed_located(
        &self,
        imgs: &[RgbImage],
        dets: Vec<Vec<FaceBox>>,
    ) -> Result<Vec<Vec<EmbeddedFace>>> {
        let chips = self.chips(imgs, &dets);
        let mut embs = self.embed_chips(&chips)?.into_iter();
        Ok(dets
            .into_iter()
            .map(|fs| {
                fs.into_iter()
                    .map(|f| (f, embs.next().unwrap_or_default()))
                    .collect()
            })
            .collect())
    }

    /// The face that covers the image centre (else the best score) with its descriptor, and
    /// how many faces the image holds: what enrolling a photo of one person needs.
    pub fn central_face(&self, img: &RgbImage) -> Result<(Option<EmbeddedFace>, usize)> {
        let faces = self
            .all_faces(std::slice::from_ref(img))?
            .pop()
            .unwrap_or_default();
        let n = faces.len();
        let boxes: Vec<FaceBox> = faces.iter().map(|x| x.0.clone()).collect();
        let best = pick_central(img, &boxes).and_then(|b| faces.into_iter().find(|x| x.0 == b));
        Ok((best, n))
    }

    /// Descriptors of chips; with `flip`, the mean of each chip's and its mirror's; then the
    /// projection, if one is set.
    pub fn embed_chips(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        let raw = self.network_descriptors(chips)?;
        Ok(match &self.projection {
            Some((head, _)) => head.apply(&raw, &self.device),
            None => raw,
        })
    }

    fn network_descriptors(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        if !self.flip {
            return self.embedder.embed(chips);
        }
        let mut all: Vec<RgbImage> = chips.to_vec();
        all.extend(chips.iter().map(image::imageops::flip_horizontal));
        let e = self.embedder.embed(&all)?;
        let n = chips.len();
        let unit = self.embedder.unit_length();
        Ok((0..n)
            .map(|i| {
                let mut m: Vec<f32> = e[i]
                    .iter()
                    .zip(&e[i + n])
                    .map(|(a, b)| (a + b) / 2.0)
                    .collect();
                let norm = m.iter().map(|v| v * v).sum::<f32>().sqrt();
                if unit && norm > 0.0 {
                    m.iter_mut().for_each(|v| *v /= norm);
                }
                m
            })
            .collect())
    }

    /// Re-detects each face on a square crop twice its size around it, where it fills
    /// the detector's input, and keeps the finer boxes and keypoints.
    pub fn refine_batch(
        &self,
        imgs: &[RgbImage],
        dets: Vec<Vec<FaceBox>>,
    ) -> Result<Vec<Vec<FaceBox>>> {
        let mut owners = Vec::new();
        for (i, faces) in dets.iter().enumerate().take(imgs.len()) {
            owners.extend((0..faces.len()).map(|j| (i, j)));
        }
        // A crop is a warp of twice the face's size, about as costly as a detector pass on it.
        let crops: Vec<Crop> = owners
            .par_iter()
            .map(|&(i, j)| Crop::around(&imgs[i], &dets[i][j]))
            .collect();
        if crops.is_empty() {
            return Ok(dets);
        }
        let refs: Vec<&RgbImage> = crops.iter().map(|c| &c.img).collect();
        let found = self.detector.detect_crops(&refs)?;
        let mut dets = dets;
        for ((crop, (i, j)), faces) in crops.iter().zip(owners).zip(found) {
            // The crop's central face is the one being refined.
            if let Some(refined) = pick_central(&crop.img, &faces).map(|b| crop.to_image(&b)) {
                if refined.iou(&dets[i][j]) > 0.3 {
                    dets[i][j] = refined;
                }
            }
        }
        Ok(dets)
    }

    /// Where the faces of the previous video frame (`previous`, boxes in `img`'s pixels) are
    /// now, best first, without landmarks: the detector's single-scale pass on a crop twice
    /// each face's size around its last box, as in [`FacePipeline::refine_batch`]. That is a
    /// few 128x128 passes instead of the whole pyramid, which on a 640x480 frame costs about
    /// as much as 15 of them. A face is followed only if the detector finds one covering its
    /// crop's centre (the last box's centre), so a face that left is dropped, not replaced
    /// by a neighbour; two followed boxes that land on one face (overlap above 0.5) count
    /// once. Faces that entered since the last full detection are not found: the caller
    /// runs a full detection every few frames (`recog watch --detect-every`).
    pub fn follow(&self, img: &RgbImage, previous: &[FaceBox]) -> Result<Vec<FaceBox>> {
        if previous.is_empty() {
            return Ok(Vec::new());
        }
        let crops: Vec<Crop> = previous.iter().map(|f| Crop::around(img, f)).collect();
        let refs: Vec<&RgbImage> = crops.iter().map(|c| &c.img).collect();
        let found = self.detector.detect_crops(&refs)?;
        let mut faces: Vec<FaceBox> = crops
            .iter()
            .zip(found)
            .filter_map(|(crop, fs)| covering_centre(&crop.img, &fs).map(|b| crop.to_image(&b)))
            .collect();
        faces.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut kept: Vec<FaceBox> = Vec::with_capacity(faces.len());
        for f in faces {
            if kept.iter().all(|k| k.iou(&f) <= 0.5) {
                kept.push(f);
            }
        }
        Ok(kept)
    }
}

/// A square crop around a face, twice its side, where the face fills the detector's input.
struct Crop {
    img: RgbImage,
    /// Crop pixels to image pixels.
    tf: align::Similarity,
}

impl Crop {
    fn around(img: &RgbImage, f: &FaceBox) -> Self {
        let [cx, cy] = f.centre();
        let side = (f.x1 - f.x0).max(f.y1 - f.y0) * 2.0;
        let out = side.round().max(16.0) as usize;
        let tf = align::Similarity {
            a: side / out as f32,
            b: 0.0,
            t: [cx - side / 2.0, cy - side / 2.0],
        };
        Self {
            img: align::warp(img, &tf, out),
            tf,
        }
    }

    /// A box found in the crop, in image pixels.
    fn to_image(&self, b: &FaceBox) -> FaceBox {
        let map = |p: [f32; 2]| self.tf.apply(p);
        let tl = map([b.x0, b.y0]);
        let br = map([b.x1, b.y1]);
        FaceBox {
            x0: tl[0],
            y0: tl[1],
            x1: br[0],
            y1: br[1],
            score: b.score,
            keypoints: b.keypoints.iter().map(|&k| map(k)).collect(),
            landmarks: Vec::new(),
        }
    }
}

/// Each file decoded to RGB, in order, in parallel: decoding a JPEG takes about as long as
/// aligning a face, and the files of a batch are independent.
pub fn decode_all(paths: &[PathBuf]) -> Vec<Result<RgbImage>> {
    paths
        .par_iter()
        .map(|p| crate::data::image_file::load_rgb(p))
        .collect()
}

/// The face covering the image centre with the best score, else the best face.
pub fn pick_central(img: &RgbImage, faces: &[FaceBox]) -> Option<FaceBox> {
    covering_centre(img, faces).or_else(|| {
        faces
            .iter()
            .max_by(|a, b| a.score.total_cmp(&b.score))
            .cloned()
    })
}

/// The best-scoring face whose box covers the image centre.
fn covering_centre(img: &RgbImage, faces: &[FaceBox]) -> Option<FaceBox> {
    let (cx, cy) = (img.width() as f32 / 2.0, img.height() as f32 / 2.0);
    faces
        .iter()
        .filter(|f| f.x0 <= cx && cx <= f.x1 && f.y0 <= cy && cy <= f.y1)
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .cloned()
}
