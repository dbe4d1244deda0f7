//! The notebook's capture step: look at frames of a camera (or any video source), keep the
//! best-detected single-face frames of one person, save their face crops and enrol them.
//!
//! ```no_run
//! use recog::face::FacePipeline;
//! use recog::gallery::Gallery;
//! use recog::video::capture::CaptureParams;
//! use recog::{Home, NoProgress};
//!
//! let home = Home::from_env();
//! let pipe = FacePipeline::standard(&home, &recog::default_device(), &NoProgress)?;
//! let mut g = Gallery::open("gallery.sqlite".as_ref())?;
//! let params = CaptureParams::new("Ada", "/dev/video0", "captures/Ada".into()).check()?;
//! let report = params.run(&pipe, &mut g, &NoProgress)?;
//! println!("{} photos from {} frames", report.enrolled, report.frames_seen);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;

use image::RgbImage;
use serde::Serialize;

use super::FrameReader;
use crate::face::{draw, FaceBox, FacePipeline};
use crate::gallery::{check_name, model_id, Gallery, NewPhoto};
use crate::{Error, Progress, Result};

/// What to capture.
#[derive(Debug, Clone)]
pub struct CaptureParams {
    /// The person's name.
    pub name: String,
    /// Webcam (`/dev/video0`), video file or stream URL.
    pub source: String,
    /// Photos to keep.
    pub count: usize,
    /// Frames to look at.
    pub frames: usize,
    /// Fewest frames between two kept photos, so they differ.
    pub min_gap: usize,
    /// Folder for the saved crops.
    pub out: PathBuf,
}

impl CaptureParams {
    /// 5 photos from 150 frames, at least 5 frames apart.
    pub fn new(name: &str, source: &str, out: PathBuf) -> Self {
        Self {
            name: name.to_string(),
            source: source.to_string(),
            count: 5,
            frames: 150,
            min_gap: 5,
            out,
        }
    }

    /// Checks the name ([`check_name`]) and the counts.
    pub fn check(self) -> Result<ValidCaptureParams> {
        let name = check_name(&self.name)?;
        if self.count == 0 || self.frames == 0 {
            return Err(Error::InvalidArgument(
                "capture needs at least one photo and one frame".into(),
            ));
        }
        Ok(ValidCaptureParams(Self { name, ..self }))
    }
}

/// Checked [`CaptureParams`].
#[derive(Debug, Clone)]
pub struct ValidCaptureParams(CaptureParams);

/// What the capture did.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureReport {
    /// The person.
    pub name: String,
    /// Frames looked at.
    pub frames_seen: usize,
    /// The saved crops.
    pub saved: Vec<PathBuf>,
    /// Photos enrolled.
    pub enrolled: usize,
}

impl ValidCaptureParams {
    /// Scans the frames, keeps the best single-face detections (detector score, then size),
    /// saves their crops and enrols them in one transaction.
    pub fn run(
        &self,
        pipe: &FacePipeline,
        g: &mut Gallery,
        progress: &dyn Progress,
    ) -> Result<CaptureReport> {
        let p = &self.0;
        let model = model_id(pipe);
        g.check_model(&model)?;
        std::fs::create_dir_all(&p.out).map_err(|e| Error::io(&p.out, e))?;
        let mut reader = FrameReader::open(&p.source)?;
        // (quality, frame index, frame, face)
        let mut best: Vec<(f32, usize, RgbImage, FaceBox)> = Vec::new();
        let mut seen = 0;
        progress.start("capture", p.frames as u64);
        while seen < p.frames {
            let Some(frame) = reader.next_frame()? else {
                break;
            };
            seen += 1;
            progress.inc(1);
            let faces = pipe
                .locate(std::slice::from_ref(&frame))?
                .pop()
                .unwrap_or_default();
            if faces.len() != 1 {
                continue;
            }
            let f = faces[0].clone();
            let side = (f.x1 - f.x0).min(f.y1 - f.y0);
            // Detector confidence first; among confident detections, bigger faces hold more
            // detail.
            let quality = f.score + (side / frame.width().max(1) as f32).min(1.0) * 0.1;
            best.push((quality, seen - 1, frame, f));
            best.sort_by(|a, b| b.0.total_cmp(&a.0));
            best.truncate(p.count.saturating_mul(6));
        }
        progress.finish();
        drop(reader);
        let mut chosen: Vec<&(f32, usize, RgbImage, FaceBox)> = Vec::new();
        for c in &best {
            if chosen.len() < p.count && chosen.iter().all(|o| o.1.abs_diff(c.1) >= p.min_gap) {
                chosen.push(c);
            }
        }
        if chosen.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{}: no frame of {seen} showed exactly one face; nothing captured",
                p.source
            )));
        }
        // The faces were located while scanning: embed their chips, no second detection.
        let chips: Vec<RgbImage> = chosen.iter().map(|c| pipe.chip(&c.2, &c.3)).collect();
        let mut photos = Vec::new();
        let mut saved = Vec::new();
        for (i, ((_, _, frame, f), emb)) in chosen.iter().zip(pipe.embed_chips(&chips)?).enumerate()
        {
            let path = p.out.join(format!("{}_{:03}.jpg", p.name, i + 1));
            let crop = draw::face_thumbnail(frame, f, 224)?;
            std::fs::write(&path, &crop).map_err(|e| Error::io(&path, e))?;
            photos.push(NewPhoto {
                path: path.display().to_string(),
                sha256: crate::digest::sha256_bytes(&crop),
                embedding: emb,
                thumbnail: draw::face_thumbnail(frame, f, 96).ok(),
            });
            saved.push(path);
        }
        let enrolled = g.enroll(&p.name, &model, &photos)?;
        Ok(CaptureReport {
            name: p.name.clone(),
            frames_seen: seen,
            saved,
            enrolled,
        })
    }
}
