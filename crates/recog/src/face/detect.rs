//! Face detectors. [`Detector`] is the trait the pipeline uses; [`DetectorKind`] names the
//! choices: BlazeFace's front model on one 128x128 letterbox ([`BlazeFaceDetector`]), the
//! same model over an image pyramid ([`BlazeFacePyramid`]), and the notebook's OpenCV Haar
//! cascade ([`super::haar::HaarDetector`]).
//!
//! ```
//! use recog::face::DetectorKind;
//! assert_eq!(DetectorKind::from_name("blazeface-pyramid"), Some(DetectorKind::BlazeFacePyramid));
//! assert!(DetectorKind::ALL.iter().all(|k| DetectorKind::from_name(k.name()) == Some(*k)));
//! ```

use std::path::Path;

use burn::prelude::*;
use burn::tensor::TensorData;
use image::RgbImage;

use serde::{Deserialize, Serialize};

use super::FaceBox;
use crate::home::registry::Pretrained;
use crate::nn::{BlazeFace, BlazeFaceConfig};
use crate::{Home, Progress, Result};

/// Finds faces in images.
pub trait Detector {
    /// Faces in each image, best first. Coordinates are image pixels.
    fn detect_batch(&self, images: &[&RgbImage]) -> Result<Vec<Vec<FaceBox>>>;

    /// Faces in one image.
    fn detect(&self, image: &RgbImage) -> Result<Vec<FaceBox>> {
        Ok(self.detect_batch(&[image])?.pop().unwrap_or_default())
    }

    /// Whether boxes come with eye/nose/mouth keypoints.
    fn has_keypoints(&self) -> bool;

    /// Faces in crops that are each centred on one face about half the crop's side (the
    /// pipeline's refining pass). Multi-scale detectors override it with their cheap
    /// single-scale pass, which is made for faces that fill the frame.
    fn detect_crops(&self, crops: &[&RgbImage]) -> Result<Vec<Vec<FaceBox>>> {
        self.detect_batch(crops)
    }
}

/// The face detectors recog ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum DetectorKind {
    /// BlazeFace's front model on the whole image letterboxed to 128x128: fast, for faces
    /// that fill a fair part of the frame (selfies, LFW, passport photos).
    #[serde(rename = "blazeface")]
    #[cfg_attr(feature = "clap", value(name = "blazeface"))]
    BlazeFace,
    /// The same model over an image pyramid, from 20 px faces up: group photos, video.
    #[default]
    #[serde(rename = "blazeface-pyramid")]
    #[cfg_attr(feature = "clap", value(name = "blazeface-pyramid"))]
    BlazeFacePyramid,
    /// OpenCV's `haarcascade_frontalface_default.xml` with the notebook's
    /// `detectMultiScale(gray, 1.3, 5)`; boxes only.
    #[serde(rename = "haar")]
    Haar,
}

impl DetectorKind {
    /// Every detector, in benchmark order.
    pub const ALL: [DetectorKind; 3] = [
        DetectorKind::BlazeFace,
        DetectorKind::BlazeFacePyramid,
        DetectorKind::Haar,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::BlazeFace => "blazeface",
            DetectorKind::BlazeFacePyramid => "blazeface-pyramid",
            DetectorKind::Haar => "haar",
        }
    }

    /// The detector called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// A readable name for plots.
    pub fn label(self) -> &'static str {
        match self {
            DetectorKind::BlazeFace => "BlazeFace front (128x128)",
            DetectorKind::BlazeFacePyramid => "BlazeFace front, pyramid",
            DetectorKind::Haar => "Haar cascade (notebook)",
        }
    }

    /// The registry model holding its weights.
    pub fn weights(self) -> Pretrained {
        match self {
            DetectorKind::BlazeFace | DetectorKind::BlazeFacePyramid => Pretrained::Blazeface,
            DetectorKind::Haar => Pretrained::Haar,
        }
    }

    /// Loads the detector from the home, installing its model first if it is missing,
    /// with `settings` over its defaults.
    pub fn load(
        self,
        home: &Home,
        device: &Device,
        settings: &DetectorSettings,
        progress: &dyn Progress,
    ) -> Result<Box<dyn Detector>> {
        let min_score = settings.min_score;
        let paths = super::ModelPaths::ensure(home, &[self.weights()], progress)?;
        Ok(match self {
            DetectorKind::BlazeFace => {
                let mut d = BlazeFaceDetector::load(&paths.blazeface, device)?;
                if let Some(s) = min_score {
                    d.min_score = s;
                }
                Box::new(d)
            }
            DetectorKind::BlazeFacePyramid => {
                let mut d = BlazeFacePyramid::load(&paths.blazeface, device)?;
                if let Some(s) = min_score {
                    d.base.min_score = s;
                    d.min_score = s;
                }
                if let Some(m) = settings.min_face {
                    d.min_face = m;
                }
                Box::new(d)
            }
            DetectorKind::Haar => {
                let mut d = super::haar::HaarDetector::load(&paths.haar)?;
                if let Some(m) = settings.min_face {
                    d.min_size = m.round().max(1.0) as usize;
                }
                Box::new(d)
            }
        })
    }
}

/// Overrides of a detector's defaults; `None` keeps the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectorSettings {
    /// Minimum score of a detection (BlazeFace: 0.5; the pyramid: 0.7 on its levels, 0.6
    /// on its letterbox).
    pub min_score: Option<f32>,
    /// Smallest face side to look for, px (the pyramid: 20; Haar: 30). Larger is faster:
    /// the pyramid's cost falls with the square of it.
    pub min_face: Option<f32>,
}

/// BlazeFace with MediaPipe's post-processing: anchors, sigmoid scores, weighted
/// non-maximum suppression.
pub struct BlazeFaceDetector {
    net: BlazeFace,
    /// The network on [`crate::nn::cpu`]'s kernels, on the CPU device.
    cpu: Option<crate::nn::blazeface::BlazeFaceCpu>,
    cfg: BlazeFaceConfig,
    /// Anchor centres in network pixels.
    anchors: Vec<[f32; 2]>,
    device: Device,
    /// Minimum score (after the sigmoid) of a detection.
    pub min_score: f32,
    /// Overlap above which detections are merged.
    pub iou_threshold: f32,
}

impl BlazeFaceDetector {
    /// Loads the front-camera model from its ONNX file.
    pub fn load(onnx: &Path, device: &Device) -> Result<Self> {
        let cfg = BlazeFaceConfig::front();
        let mut map = crate::weights::onnx::load(onnx)?;
        let net = cfg.load(&mut map, device)?;
        let cpu = if *device == Device::flex() {
            net.cpu()
        } else {
            None
        };
        Ok(Self {
            cpu,
            anchors: anchor_grid(
                cfg.input_size,
                cfg.input_size,
                &[(8, cfg.anchors_per_cell[0]), (16, cfg.anchors_per_cell[1])],
            ),
            net,
            cfg,
            device: device.clone(),
            min_score: 0.5,
            iou_threshold: 0.3,
        })
    }

    /// The network input for an image: letterboxed (padded to a square at the bottom and
    /// right), resized to 128x128. Returns it and the factor from network pixels back to
    /// image pixels.
    fn prepare(&self, img: &RgbImage) -> (RgbImage, f32) {
        let s = self.cfg.input_size as u32;
        let side = img.width().max(img.height()).max(1);
        let mut square = RgbImage::new(side, side);
        image::imageops::replace(&mut square, img, 0, 0);
        // SIMD resize: `image`'s triangle filter, the same kernel, was 3% of `recog bench
        // face` here (the letterbox and every refining crop pass through it).
        (resize_rgb(&square, s, s), side as f32 / s as f32)
    }

    /// Logits and regressors of each image, each placed at the top left of a `w x h`
    /// network input (RGB scaled to [-1, 1], 0 beyond the image). On the CPU kernels each
    /// image becomes a channels-last map on the thread that runs it, with no planar batch
    /// and no transposed copy.
    fn run_canvas(
        &self,
        imgs: &[&RgbImage],
        (w, h): (usize, usize),
    ) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
        if let Some(cpu) = &self.cpu {
            use rayon::prelude::*;
            return imgs
                .par_iter()
                .map(|img| {
                    let size = (img.width() as usize, img.height() as usize);
                    let x = crate::nn::cpu::FeatureMap::from_interleaved(
                        img.as_raw(),
                        size,
                        3,
                        (w, h),
                        to_unit,
                    );
                    let out = x.as_ref().and_then(|x| cpu.forward(x));
                    if let Some(x) = x {
                        crate::nn::cpu::recycle(x);
                    }
                    out.ok_or_else(|| {
                        crate::Error::InvalidArgument(format!(
                            "BlazeFace input {h}x{w}: sides must be multiples of 16"
                        ))
                    })
                })
                .collect();
        }
        let mut data = Vec::with_capacity(imgs.len() * 3 * w * h);
        for img in imgs {
            data.extend(planar(img, w, h));
        }
        let n = imgs.len().max(1);
        let (scores, regs) = self.run_net(data, [imgs.len(), 3, h, w])?;
        let (ns, nr) = (scores.len() / n, regs.len() / n);
        Ok((0..imgs.len())
            .map(|i| {
                (
                    scores[i * ns..][..ns].to_vec(),
                    regs[i * nr..][..nr].to_vec(),
                )
            })
            .collect())
    }
}

/// Anchor centres in [0, 1] for a square `input`: [`anchor_grid`] over the input side.
pub fn anchors(input: usize, layers: &[(usize, usize)]) -> Vec<[f32; 2]> {
    let side = input.max(1) as f32;
    anchor_grid(input, input, layers)
        .into_iter()
        .map(|[x, y]| [x / side, y / side])
        .collect()
}

impl BlazeFaceDetector {
    /// Candidate faces (before suppression) scoring at least `min_score`, from network
    /// outputs for image `b` of a batch, with anchors in network pixels; `k` maps network
    /// pixels to image pixels.
    fn decode(
        &self,
        scores: &[f32],
        regs: &[f32],
        anchors: &[[f32; 2]],
        b: usize,
        k: f32,
        min_score: f32,
    ) -> Vec<FaceBox> {
        let mut out = Vec::new();
        let na = anchors.len();
        for (i, a) in anchors.iter().enumerate() {
            let logit = scores
                .get(b * na + i)
                .copied()
                .unwrap_or(-100.0)
                .clamp(-100.0, 100.0);
            let score = 1.0 / (1.0 + (-logit).exp());
            if score < min_score {
                continue;
            }
            let Some(r) = regs.get((b * na + i) * 16..(b * na + i + 1) * 16) else {
                continue;
            };
            let (cx, cy) = (a[0] + r[0], a[1] + r[1]);
            let (w, h) = (r[2], r[3]);
            let keypoints = (0..6)
                .map(|j| [(a[0] + r[4 + 2 * j]) * k, (a[1] + r[5 + 2 * j]) * k])
                .collect();
            out.push(FaceBox {
                x0: (cx - w / 2.0) * k,
                y0: (cy - h / 2.0) * k,
                x1: (cx + w / 2.0) * k,
                y1: (cy + h / 2.0) * k,
                score,
                keypoints,
                landmarks: Vec::new(),
            });
        }
        out
    }

    /// Runs the network with burn's ops on a `[batch, 3, h, w]` input and returns logits
    /// and regressors (the CPU kernels' path is [`Self::run_canvas`]).
    fn run_net(&self, data: Vec<f32>, shape: [usize; 4]) -> Result<(Vec<f32>, Vec<f32>)> {
        let x = Tensor::<4>::from_data(TensorData::new(data, shape), &self.device);
        let out = self.net.forward(x);
        let scores = out
            .scores
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| crate::Error::InvalidArgument(format!("BlazeFace scores: {e:?}")))?;
        let regs = out
            .boxes
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| crate::Error::InvalidArgument(format!("BlazeFace boxes: {e:?}")))?;
        Ok((scores, regs))
    }
}

/// Anchor centres in network pixels for a `w x h` input: for each (stride, count), a grid
/// of `w/stride x h/stride` cells with `count` anchors per cell, row-major, in the order
/// of [`crate::nn::blazeface::BlazeOutput`].
pub fn anchor_grid(w: usize, h: usize, layers: &[(usize, usize)]) -> Vec<[f32; 2]> {
    let mut out = Vec::new();
    for &(stride, per) in layers {
        for y in 0..h / stride {
            for x in 0..w / stride {
                for _ in 0..per {
                    out.push([
                        (x as f32 + 0.5) * stride as f32,
                        (y as f32 + 0.5) * stride as f32,
                    ]);
                }
            }
        }
    }
    out
}

impl Detector for BlazeFaceDetector {
    fn detect_batch(&self, images: &[&RgbImage]) -> Result<Vec<Vec<FaceBox>>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let s = self.cfg.input_size;
        // Letterboxing is image work on the CPU whatever device runs the network.
        let prepared: Vec<(RgbImage, f32)> = {
            use rayon::prelude::*;
            images.par_iter().map(|img| self.prepare(img)).collect()
        };
        let small: Vec<&RgbImage> = prepared.iter().map(|(img, _)| img).collect();
        let outs = self.run_canvas(&small, (s, s))?;
        let mut result = Vec::new();
        for ((scores, regs), (_, k)) in outs.iter().zip(&prepared) {
            let cands = self.decode(scores, regs, &self.anchors, 0, *k, self.min_score);
            result.push(weighted_nms(cands, self.iou_threshold));
        }
        Ok(result)
    }

    fn has_keypoints(&self) -> bool {
        true
    }
}

/// BlazeFace's front model run over an image pyramid, for faces of any size.
///
/// The network is fully convolutional, so each pyramid level is one pass over the whole
/// scaled image (padded to a multiple of 16) with anchors laid on its grid: no tiles, no
/// overlaps. The finest level scales the image so that a face of `min_face` pixels becomes
/// `net_face` network pixels; each next level is `step` times smaller, down to the
/// letterboxed 128x128 input of [`BlazeFaceDetector`], which finds the faces that fill the
/// frame. Detections of every level are merged by weighted suppression.
pub struct BlazeFacePyramid {
    /// The single-scale detector whose network and thresholds the levels share.
    pub base: BlazeFaceDetector,
    /// The smallest face side to find, in image pixels.
    pub min_face: f32,
    /// The face side, in network pixels, that `min_face` maps to on the finest level.
    pub net_face: f32,
    /// Scale ratio between consecutive levels, in (0, 1).
    pub step: f32,
    /// Minimum score on the fully convolutional levels (the letterboxed level uses the
    /// base detector's, 0.6).
    pub min_score: f32,
}

impl BlazeFacePyramid {
    /// Loads the front model; finds faces from 20 px up. The front model still finds
    /// faces of 16 network pixels, so the finest level shrinks 20 px faces to 16: the
    /// same recall on 20-40 px faces as at 24, in 45% of the pixels.
    pub fn load(onnx: &Path, device: &Device) -> Result<Self> {
        let mut base = BlazeFaceDetector::load(onnx, device)?;
        // Below the front model's score of every LFW face (the lowest of the 13,233 is
        // 0.651), above most of its false faces.
        base.min_score = 0.6;
        Ok(Self {
            base,
            min_face: 20.0,
            net_face: 16.0,
            step: 0.4,
            // Chosen on the detection benchmark's seed 1 (README): at 0.5 the levels' many
            // more anchors give 2 false faces per face-free photo; at 0.7, 0.04.
            min_score: 0.7,
        })
    }

    /// The scales of the fully convolutional levels for a `w x h` image (the letterboxed
    /// level comes on top of these): finest first, each level at least one network input.
    pub fn scales(&self, w: u32, h: u32) -> Vec<f32> {
        let side = w.max(h) as f32;
        let input = self.base.cfg.input_size as f32;
        let mut s = (self.net_face / self.min_face.max(1.0)).min(4.0);
        let step = self.step.clamp(0.1, 0.9);
        let mut out = Vec::new();
        while side * s > input && out.len() < 16 {
            out.push(s);
            s *= step;
        }
        out
    }

    /// Candidates of one fully convolutional level at scale `s`.
    fn level(&self, img: &RgbImage, s: f32, out: &mut Vec<FaceBox>) -> Result<()> {
        let w = ((img.width() as f32 * s).round() as usize).max(1);
        let h = ((img.height() as f32 * s).round() as usize).max(1);
        let (pw, ph) = (w.div_ceil(16) * 16, h.div_ceil(16) * 16);
        let small = resize_rgb(img, w as u32, h as u32);
        let outs = self.base.run_canvas(&[&small], (pw, ph))?;
        let Some((scores, regs)) = outs.first() else {
            return Ok(());
        };
        let a = self.base.cfg.anchors_per_cell;
        let anchors = anchor_grid(pw, ph, &[(8, a[0]), (16, a[1])]);
        // The image was scaled by w/width horizontally; use the mean of both axes' factors.
        let k = (img.width() as f32 / w as f32 + img.height() as f32 / h as f32) / 2.0;
        out.extend(
            self.base
                .decode(scores, regs, &anchors, 0, k, self.min_score),
        );
        Ok(())
    }
}

impl Detector for BlazeFacePyramid {
    fn detect_batch(&self, images: &[&RgbImage]) -> Result<Vec<Vec<FaceBox>>> {
        if self.base.cpu.is_some() {
            // On the CPU kernels one pass runs on one thread: every level of every image,
            // and the letterboxed passes, go in parallel (a single video frame too).
            use rayon::prelude::*;
            let jobs: Vec<(usize, f32)> = images
                .iter()
                .enumerate()
                .flat_map(|(i, img)| {
                    self.scales(img.width(), img.height())
                        .into_iter()
                        .map(move |s| (i, s))
                })
                .collect();
            let (whole, levels) = rayon::join(
                || self.base.detect_batch(images),
                || {
                    jobs.par_iter()
                        .map(|&(i, s)| {
                            let mut v = Vec::new();
                            self.level(images[i], s, &mut v)?;
                            Ok((i, v))
                        })
                        .collect::<Result<Vec<_>>>()
                },
            );
            let mut result = whole?;
            // Candidates in the serial order (letterbox, then levels finest first).
            for (i, v) in levels? {
                if let Some(r) = result.get_mut(i) {
                    r.extend(v);
                }
            }
            return Ok(result
                .into_iter()
                .map(|c| weighted_nms(c, self.base.iou_threshold))
                .collect());
        }
        let whole = self.base.detect_batch(images)?;
        let mut result = Vec::with_capacity(images.len());
        for (img, mut cands) in images.iter().zip(whole) {
            for s in self.scales(img.width(), img.height()) {
                self.level(img, s, &mut cands)?;
            }
            result.push(weighted_nms(cands, self.base.iou_threshold));
        }
        Ok(result)
    }

    fn has_keypoints(&self) -> bool {
        true
    }

    fn detect_crops(&self, crops: &[&RgbImage]) -> Result<Vec<Vec<FaceBox>>> {
        self.base.detect_batch(crops)
    }
}

/// A pixel byte as BlazeFace's input: [0, 255] to [-1, 1].
#[inline(always)]
fn to_unit(v: u8) -> f32 {
    v as f32 / 127.5 - 1.0
}

/// The network input for an image: planar RGB scaled to [-1, 1] on a `w x h` canvas (at
/// least the image's size); beyond the image it is 0, mid-grey.
fn planar(img: &RgbImage, w: usize, h: usize) -> Vec<f32> {
    let n = w * h;
    let mut v = vec![0f32; 3 * n];
    for (x, y, p) in img.enumerate_pixels() {
        let (x, y) = (x as usize, y as usize);
        if x >= w || y >= h {
            continue;
        }
        for c in 0..3 {
            v[c * n + y * w + x] = to_unit(p.0[c]);
        }
    }
    v
}

/// Resizes with `fast_image_resize` (SIMD, bilinear), falling back to `image`'s filter.
pub fn resize_rgb(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    if img.width() == w && img.height() == h {
        return img.clone();
    }
    let mut dst = RgbImage::new(w.max(1), h.max(1));
    let opts = fast_image_resize::ResizeOptions::new().resize_alg(
        fast_image_resize::ResizeAlg::Convolution(fast_image_resize::FilterType::Bilinear),
    );
    match fast_image_resize::Resizer::new().resize(img, &mut dst, &opts) {
        Ok(()) => dst,
        Err(_) => image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle),
    }
}

/// MediaPipe's "weighted" suppression: the best remaining box absorbs every box that
/// overlaps it by more than `iou`, and becomes their score-weighted average.
pub fn weighted_nms(mut cands: Vec<FaceBox>, iou: f32) -> Vec<FaceBox> {
    cands.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    while !cands.is_empty() {
        let best = cands[0].clone();
        let (group, rest): (Vec<FaceBox>, Vec<FaceBox>) =
            cands.into_iter().partition(|c| best.iou(c) > iou);
        cands = rest;
        let total: f32 = group.iter().map(|g| g.score).sum();
        let mut m = best.clone();
        if total > 0.0 && group.len() > 1 {
            let avg = |f: &dyn Fn(&FaceBox) -> f32| {
                group.iter().map(|g| f(g) * g.score).sum::<f32>() / total
            };
            m.x0 = avg(&|g| g.x0);
            m.y0 = avg(&|g| g.y0);
            m.x1 = avg(&|g| g.x1);
            m.y1 = avg(&|g| g.y1);
            for j in 0..m.keypoints.len() {
                m.keypoints[j] = [avg(&|g| g.keypoints[j][0]), avg(&|g| g.keypoints[j][1])];
            }
        }
        out.push(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fb(x0: f32, score: f32) -> FaceBox {
        FaceBox {
            x0,
            y0: 0.0,
            x1: x0 + 10.0,
            y1: 10.0,
            score,
            keypoints: vec![[x0, 0.0]],
            landmarks: vec![],
        }
    }

    /// clap spelled `BlazeFacePyramid` `blaze-face-pyramid`, so every README command with
    /// `--detector blazeface-pyramid` was refused.
    #[cfg(feature = "clap")]
    #[test]
    fn the_command_line_takes_the_detector_names_the_readme_uses() {
        use clap::ValueEnum;
        for k in DetectorKind::ALL {
            assert_eq!(DetectorKind::from_str(k.name(), false), Ok(k));
        }
    }

    #[test]
    fn anchors_match_mediapipe_front_layout() {
        let a = anchors(128, &[(8, 2), (16, 6)]);
        assert_eq!(a.len(), 896);
        assert_eq!(a[0], [0.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(a[1], a[0]);
        assert_eq!(a[512], [0.5 / 8.0, 0.5 / 8.0]);
        assert_eq!(a[895], [7.5 / 8.0, 7.5 / 8.0]);
    }

    #[test]
    fn weighted_nms_merges_overlaps_and_keeps_separate_faces() {
        let out = weighted_nms(vec![fb(0.0, 0.9), fb(1.0, 0.3), fb(50.0, 0.8)], 0.3);
        assert_eq!(out.len(), 2);
        // (0 * 0.9 + 1 * 0.3) / 1.2
        assert!((out[0].x0 - 0.25).abs() < 1e-6);
        assert_eq!(out[0].score, 0.9);
        assert_eq!(out[1].x0, 50.0);
    }
}
