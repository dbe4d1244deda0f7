//! Face detectors. [`Detector`] is the trait the pipeline uses; [`BlazeFaceDetector`] is
//! the default, [`super::haar::HaarDetector`] the notebook's OpenCV cascade.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::TensorData;
use image::RgbImage;

use super::FaceBox;
use crate::nn::{BlazeFace, BlazeFaceConfig};
use crate::Result;

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
}

/// BlazeFace with MediaPipe's post-processing: anchors, sigmoid scores, weighted
/// non-maximum suppression.
pub struct BlazeFaceDetector {
    net: BlazeFace,
    cfg: BlazeFaceConfig,
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
        Ok(Self {
            anchors: anchors(
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
    /// right), resized to 128x128, scaled to [-1, 1]. Returns the values and the factor from
    /// network pixels back to image pixels.
    fn prepare(&self, img: &RgbImage) -> (Vec<f32>, f32) {
        let s = self.cfg.input_size as u32;
        let side = img.width().max(img.height()).max(1);
        let mut square = RgbImage::new(side, side);
        image::imageops::replace(&mut square, img, 0, 0);
        let small = image::imageops::resize(&square, s, s, image::imageops::FilterType::Triangle);
        let n = (s * s) as usize;
        let mut v = vec![0f32; 3 * n];
        for (i, p) in small.pixels().enumerate() {
            for c in 0..3 {
                v[c * n + i] = p.0[c] as f32 / 127.5 - 1.0;
            }
        }
        (v, side as f32 / s as f32)
    }
}

/// Anchor centres in [0, 1]: for each (stride, count), a grid of `input/stride` cells with
/// `count` anchors per cell, row-major.
pub fn anchors(input: usize, layers: &[(usize, usize)]) -> Vec<[f32; 2]> {
    let mut out = Vec::new();
    for &(stride, per) in layers {
        let g = input / stride;
        for y in 0..g {
            for x in 0..g {
                for _ in 0..per {
                    out.push([(x as f32 + 0.5) / g as f32, (y as f32 + 0.5) / g as f32]);
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
        let mut data = Vec::with_capacity(images.len() * 3 * s * s);
        let mut scales = Vec::new();
        for img in images {
            let (v, k) = self.prepare(img);
            data.extend(v);
            scales.push(k);
        }
        let x =
            Tensor::<4>::from_data(TensorData::new(data, [images.len(), 3, s, s]), &self.device);
        let out = self.net.forward(x);
        let scores: Vec<f32> = out
            .scores
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        let regs: Vec<f32> = out
            .boxes
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        let na = self.anchors.len();
        let mut result = Vec::new();
        for (b, k) in scales.into_iter().enumerate() {
            let mut cands = Vec::new();
            for (i, a) in self.anchors.iter().enumerate() {
                let logit = scores
                    .get(b * na + i)
                    .copied()
                    .unwrap_or(-100.0)
                    .clamp(-100.0, 100.0);
                let score = 1.0 / (1.0 + (-logit).exp());
                if score < self.min_score {
                    continue;
                }
                let r = &regs[(b * na + i) * 16..(b * na + i + 1) * 16];
                let sz = s as f32;
                let (cx, cy) = (a[0] + r[0] / sz, a[1] + r[1] / sz);
                let (w, h) = (r[2] / sz, r[3] / sz);
                let to_img = |x: f32, y: f32| [x * sz * k, y * sz * k];
                let tl = to_img(cx - w / 2.0, cy - h / 2.0);
                let br = to_img(cx + w / 2.0, cy + h / 2.0);
                let keypoints = (0..6)
                    .map(|j| to_img(a[0] + r[4 + 2 * j] / sz, a[1] + r[5 + 2 * j] / sz))
                    .collect();
                cands.push(FaceBox {
                    x0: tl[0],
                    y0: tl[1],
                    x1: br[0],
                    y1: br[1],
                    score,
                    keypoints,
                    landmarks: Vec::new(),
                });
            }
            result.push(weighted_nms(cands, self.iou_threshold));
        }
        Ok(result)
    }

    fn has_keypoints(&self) -> bool {
        true
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
