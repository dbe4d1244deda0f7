//! Every face of an image, named from a gallery: the step shared by `identify`, `watch`
//! and `serve`.
//!
//! ```no_run
//! use recog::face::FacePipeline;
//! use recog::gallery::{FaceAnswer, Gallery, Recognizer};
//! let home = recog::Home::from_env();
//! let pipe = FacePipeline::standard(&home, &recog::default_device(), &recog::NoProgress)?;
//! let rec = Recognizer::new(pipe, &Gallery::open("gallery.sqlite".as_ref())?, None)?;
//! let img = recog::data::image_file::load_rgb("group.jpg".as_ref())?;
//! for r in rec.recognize(&img)? {
//!     println!("{}", serde_json::to_string(&FaceAnswer::new(&r)).unwrap());
//! }
//! # Ok::<(), recog::Error>(())
//! ```

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::{Acceptance, Gallery, HnswConfig, Index, IndexKind, Match, ModelId};
use std::path::{Path, PathBuf};

use crate::face::{draw, FaceBox, FacePipeline};
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

/// One recognised face as every front end reports it: `recog identify --json`, each line of
/// `recog watch` and the server's answers (HTTP and WebSocket) share this shape.
///
/// `name` is the answer to show: the face's own answer, or in a video (where a
/// [`crate::video::track::Tracker`] follows the face) the answer voted over its track, with the
/// frame's own answer in `frame_name`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaceAnswer {
    /// `[x0, y0, x1, y1]` in image pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Name or unknown, nearest person, distance, runner-up, margin, ratio, rule.
    #[serde(flatten)]
    pub answer: Match,
    /// Track number, stable while the face stays in view (video only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<u64>,
    /// This frame's own answer when `name` is the track's vote (video only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_name: Option<String>,
    /// Votes for `name` out of those remembered, e.g. `12/15` (video only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub votes: Option<String>,
}

impl FaceAnswer {
    /// The answer for one face of a still image.
    pub fn new(r: &Recognized) -> Self {
        Self {
            bbox: [r.face.x0, r.face.y0, r.face.x1, r.face.y1],
            answer: r.answer.clone(),
            track: None,
            frame_name: None,
            votes: None,
        }
    }

    /// The answer for a face followed by a tracker: `name` becomes the track's vote.
    pub fn tracked(r: &Recognized, t: &crate::video::track::Tracked) -> Self {
        let mut a = Self::new(r);
        a.frame_name = a.answer.name.take();
        a.answer.name = t.label.clone();
        a.track = Some(t.track);
        a.votes = Some(format!("{}/{}", t.agree, t.votes));
        a
    }

    /// What the tracker needs of a recognised face.
    pub fn detection(r: &Recognized) -> crate::video::track::Detection {
        crate::video::track::Detection {
            face: r.face.clone(),
            answer: r.answer.name.clone(),
            embedding: r.embedding.clone(),
        }
    }
}

/// The model id of a pipeline's embedder, as the gallery stores it.
pub fn model_id(p: &FacePipeline) -> ModelId {
    ModelId {
        name: p.model_name(),
        sha256: p.weights_sha256(),
        dim: p.dim(),
    }
}

/// A gallery's index and the decision in force: a fixed distance threshold, else the
/// gallery's calibration, else the pipeline's verification distance.
pub(crate) fn read(
    gallery: &Gallery,
    pipeline: &FacePipeline,
    fixed: Option<f32>,
    kind: IndexKind,
) -> Result<(Index, Acceptance)> {
    let acceptance = match fixed {
        Some(t) => Acceptance::distance(t),
        None => gallery.calibration()?.map_or(
            Acceptance::distance(pipeline.embedder.verification_distance()),
            |c| c.acceptance(),
        ),
    };
    let index = gallery.index_with(kind, &HnswConfig::default(), &crate::NoProgress)?;
    Ok((index, acceptance))
}

/// Every face of `img` found and embedded by `pipeline`, named by `index` under `acceptance`.
pub(crate) fn recognize_with(
    pipeline: &FacePipeline,
    index: &Index,
    acceptance: &Acceptance,
    img: &RgbImage,
) -> Result<Vec<Recognized>> {
    let faces = pipeline
        .all_faces(std::slice::from_ref(img))?
        .pop()
        .unwrap_or_default();
    decide_all(index, acceptance, faces)
}

/// Each embedded face named by `index` under `acceptance`.
fn decide_all(
    index: &Index,
    acceptance: &Acceptance,
    faces: Vec<crate::face::EmbeddedFace>,
) -> Result<Vec<Recognized>> {
    faces
        .into_iter()
        .map(|(face, e)| {
            Ok(Recognized {
                face,
                answer: index.decide(&e, acceptance)?,
                embedding: e,
            })
        })
        .collect()
}

/// A face pipeline with a gallery's index and threshold.
pub struct Recognizer {
    /// Detection, alignment, embedding.
    pub pipeline: FacePipeline,
    index: Index,
    acceptance: Acceptance,
    fixed_threshold: Option<f32>,
    index_kind: IndexKind,
    /// The gallery's [`Gallery::foreign_version`] when the index was last read whole.
    read_at: Option<u64>,
}

impl Recognizer {
    /// Checks that the gallery was made by the pipeline's model and loads its index; the
    /// decision is a distance threshold `threshold` if given, else the gallery's calibrated
    /// rule, else the model's verification distance ([`crate::face::Embedder::verification_distance`]).
    pub fn new(pipeline: FacePipeline, gallery: &Gallery, threshold: Option<f32>) -> Result<Self> {
        gallery.check_model(&model_id(&pipeline))?;
        let read_at = gallery.foreign_version()?;
        let (index, acceptance) = read(gallery, &pipeline, threshold, IndexKind::Auto)?;
        Ok(Self {
            pipeline,
            index,
            acceptance,
            fixed_threshold: threshold,
            index_kind: IndexKind::Auto,
            read_at,
        })
    }

    /// Searches the gallery as `kind` says from now on (re-reading it if that changes the
    /// index): [`IndexKind::Auto`] unless set.
    pub fn set_index_kind(&mut self, kind: IndexKind, gallery: &Gallery) -> Result<()> {
        if kind != self.index_kind {
            self.index_kind = kind;
            self.reload(gallery)?;
        }
        Ok(())
    }

    /// Re-reads the whole gallery: its index and its decision rule.
    pub fn reload(&mut self, gallery: &Gallery) -> Result<()> {
        // Read before the data, so that a commit made in between forces the next re-read.
        self.read_at = gallery.foreign_version()?;
        (self.index, self.acceptance) = read(
            gallery,
            &self.pipeline,
            self.fixed_threshold,
            self.index_kind,
        )?;
        Ok(())
    }

    /// Brings the index up to date after this process enrolled or removed photos of
    /// `person` through `gallery`: only that person's rows are read and changed
    /// ([`Index::sync_person`]). The whole gallery is read again instead when another
    /// connection has written to it since it was last read (SQLite's `data_version`; always
    /// on a backend that cannot tell), when the index cannot change in place, or when the
    /// gallery's size moves it across [`IndexKind::Auto`]'s exact/graph boundary.
    pub fn refresh(&mut self, gallery: &Gallery, person: &str) -> Result<()> {
        let version = gallery.foreign_version()?;
        let in_place = version.is_some()
            && version == self.read_at
            && self
                .index
                .sync_person(person, &gallery.person_embeddings(person)?)?
            && self.index_kind.uses_graph(self.index.len()) == self.index.hnsw().is_some();
        if !in_place {
            self.reload(gallery)?;
        }
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
        recognize_with(&self.pipeline, &self.index, &self.acceptance, img)
    }

    /// The faces of the previous video frame followed into `img`
    /// ([`FacePipeline::follow`]), each with its answer: what a video frame between two full
    /// detections costs.
    pub fn recognize_followed(
        &self,
        img: &RgbImage,
        previous: &[crate::face::FaceBox],
    ) -> Result<Vec<Recognized>> {
        let faces = self.pipeline.followed_faces(img, previous)?;
        decide_all(&self.index, &self.acceptance, faces)
    }

    /// Every face of every file. A file that cannot be read or annotated gets its error and
    /// the others go on; with `annotate`, `<stem>.identified.png` is written there with each
    /// face's name (or unknown) and distance.
    pub fn identify_files(
        &self,
        files: &[PathBuf],
        annotate: Option<&Path>,
    ) -> Result<Vec<FileAnswer>> {
        if let Some(dir) = annotate {
            std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
        }
        Ok(files
            .iter()
            .map(|file| {
                let (faces, error) = match self.identify_file(file, annotate) {
                    Ok(f) => (f, None),
                    Err(e) => (Vec::new(), Some(e.to_string())),
                };
                FileAnswer {
                    file: file.clone(),
                    faces,
                    error,
                }
            })
            .collect())
    }

    fn identify_file(&self, file: &Path, annotate: Option<&Path>) -> Result<Vec<FaceAnswer>> {
        let img = crate::data::image_file::load_rgb(file)?;
        let found = self.recognize(&img)?;
        if let Some(dir) = annotate {
            let marks: Vec<_> = found
                .iter()
                .map(|r| {
                    draw::identity_mark(r.face.clone(), r.answer.name.as_deref(), r.answer.distance)
                })
                .collect();
            let out = dir.join(format!("{}.identified.png", crate::face::files::stem(file)));
            draw::annotate(&img, &marks)
                .save(&out)
                .map_err(|e| crate::Error::io(&out, std::io::Error::other(e)))?;
        }
        Ok(found.iter().map(FaceAnswer::new).collect())
    }
}

/// One file's faces from [`Recognizer::identify_files`].
#[derive(Debug, Clone, Serialize)]
pub struct FileAnswer {
    /// The file.
    pub file: PathBuf,
    /// Every face found, with its answer.
    pub faces: Vec<FaceAnswer>,
    /// Why the file could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::track::Tracked;

    fn recognized() -> Recognized {
        Recognized {
            face: FaceBox {
                x0: 1.0,
                y0: 2.0,
                x1: 3.0,
                y1: 4.0,
                score: 0.9,
                keypoints: vec![],
                landmarks: vec![],
            },
            answer: Match::by_distance(Some("ada".into()), 0.3, Some(0.9), 0.6),
            embedding: vec![0.0; 4],
        }
    }

    fn keys(v: &serde_json::Value) -> Vec<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    /// `identify`, `serve` and `watch` each had their own JSON for a face (serve's lacked the
    /// runner-up, ratio and rule; watch's called the vote `name` and had no `nearest`). One
    /// type now: a still image's face has every key of the decision, and a tracked face has
    /// the same keys plus the track's.
    #[test]
    fn one_json_shape_for_a_recognised_face() {
        let r = recognized();
        let still = serde_json::to_value(FaceAnswer::new(&r)).unwrap();
        for k in [
            "box",
            "name",
            "nearest",
            "distance",
            "runner_up",
            "margin",
            "ratio",
            "threshold",
            "rule",
        ] {
            assert!(still.get(k).is_some(), "{k} missing in {still}");
        }
        let t = Tracked {
            track: 7,
            label: Some("bob".into()),
            agree: 9,
            votes: 15,
        };
        let tracked = serde_json::to_value(FaceAnswer::tracked(&r, &t)).unwrap();
        let mut want = keys(&still);
        want.extend(["frame_name", "track", "votes"].map(String::from));
        want.sort();
        let mut got = keys(&tracked);
        got.sort();
        assert_eq!(got, want);
        assert_eq!(tracked["name"], "bob");
        assert_eq!(tracked["frame_name"], "ada");
        assert_eq!(tracked["votes"], "9/15");
        let back: FaceAnswer = serde_json::from_value(tracked).unwrap();
        assert_eq!(back.track, Some(7));
    }
}
