//! The notebook's face detector: an OpenCV Haar cascade run from its XML file.
//!
//! Viola and Jones, "Rapid Object Detection using a Boosted Cascade of Simple Features",
//! CVPR 2001; Lienhart and Maydt, "An Extended Set of Haar-like Features", ICIP 2002.
//! This follows OpenCV's `CascadeClassifier` for the new-style XML (`opencv-cascade-classifier`,
//! BOOST stages, HAAR features, upright rectangles): a window of the cascade's size slides over
//! an image pyramid (scale step `scale_factor`, stride 2 pixels below scale 2, else 1); each
//! window is normalised by the standard deviation of its inner `(w-2) x (h-2)` area; a stage
//! sums the leaf values of its trees and rejects the window below its threshold; surviving
//! windows are grouped (`groupRectangles`, eps 0.2) and clusters with more than
//! `min_neighbors` members are kept. The notebook called `detectMultiScale(gray, 1.3, 5)`.
//!
//! ```no_run
//! use recog::face::{haar::HaarDetector, Detector, ModelPaths};
//! let paths = ModelPaths::in_home(&recog::Home::from_env());
//! let det = HaarDetector::load(&paths.haar)?;
//! let faces = det.detect(&recog::data::image_file::load_rgb("photo.jpg".as_ref())?)?;
//! println!("{} faces", faces.len());
//! # Ok::<(), recog::Error>(())
//! ```
//!
//! ```
//! // groupRectangles: three overlapping windows make one face; a lonely one is dropped.
//! let rects = [[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 10.0, 10.0], [0.0, 1.0, 10.0, 10.0], [50.0, 50.0, 10.0, 10.0]];
//! let groups = recog::face::haar::group_rectangles(&rects, 1, 0.2);
//! assert_eq!(groups.len(), 1);
//! ```

use std::path::Path;

use image::RgbImage;

use super::detect::Detector;
use super::FaceBox;
use crate::Result;

mod cascade;
mod grouping;
mod xml;

pub use cascade::{to_gray, HaarCascade};
pub use grouping::group_rectangles;

/// [`Detector`] over a Haar cascade: `detectMultiScale(gray, scale_factor, min_neighbors)`.
pub struct HaarDetector {
    cascade: HaarCascade,
    /// Pyramid step (the notebook: 1.3).
    pub scale_factor: f32,
    /// Neighbours a detection needs (the notebook: 5).
    pub min_neighbors: usize,
    /// Smallest face side in pixels.
    pub min_size: usize,
}

impl HaarDetector {
    /// Loads the cascade with the notebook's settings.
    pub fn load(path: &Path) -> Result<Self> {
        Ok(Self {
            cascade: HaarCascade::load(path)?,
            scale_factor: 1.3,
            min_neighbors: 5,
            min_size: 30,
        })
    }
}

impl Detector for HaarDetector {
    fn detect_batch(&self, images: &[&RgbImage]) -> Result<Vec<Vec<FaceBox>>> {
        Ok(images
            .iter()
            .map(|img| {
                let gray = to_gray(img);
                let cands = self
                    .cascade
                    .candidates(&gray, self.scale_factor, self.min_size);
                let mut faces: Vec<FaceBox> = group_rectangles(&cands, self.min_neighbors, 0.2)
                    .into_iter()
                    .map(|(r, n)| FaceBox {
                        x0: r[0],
                        y0: r[1],
                        x1: r[0] + r[2],
                        y1: r[1] + r[3],
                        // Neighbour count mapped into (0, 1) so that scores order like OpenCV's
                        // level weights do.
                        score: n as f32 / (n as f32 + self.min_neighbors as f32),
                        keypoints: Vec::new(),
                        landmarks: Vec::new(),
                    })
                    .collect();
                faces.sort_by(|a, b| b.score.total_cmp(&a.score));
                faces
            })
            .collect())
    }

    fn has_keypoints(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::cascade::Integral;
    use super::*;
    use image::GrayImage;

    const TINY: &str = r#"<?xml version="1.0"?>
<!-- a one-feature cascade: left half darker than right half -->
<opencv_storage>
<cascade type_id="opencv-cascade-classifier"><stageType>BOOST</stageType>
  <featureType>HAAR</featureType><height>4</height><width>4</width>
  <stageNum>1</stageNum>
  <stages><_><maxWeakCount>1</maxWeakCount><stageThreshold>0.5</stageThreshold>
      <weakClassifiers><_><internalNodes>0 -1 0 0.1</internalNodes>
          <leafValues>0. 1.</leafValues></_></weakClassifiers></_></stages>
  <features><_><rects><_>0 0 4 4 -1.</_><_>2 0 2 4 2.</_></rects><tilted>0</tilted></_></features>
</cascade>
</opencv_storage>"#;

    #[test]
    fn parses_and_evaluates_a_hand_made_cascade() {
        let c = HaarCascade::parse(TINY).unwrap();
        assert_eq!(c.window(), (4, 4));
        // Feature = -sum(all) + 2 sum(right half) = sum(right) - sum(left): fires when the
        // right half is brighter (relative to the window's contrast).
        let img = GrayImage::from_fn(4, 4, |x, _| image::Luma([if x >= 2 { 200 } else { 10 }]));
        assert!(c.passes(&Integral::new(&img), 0, 0));
        let flipped = GrayImage::from_fn(4, 4, |x, _| image::Luma([if x < 2 { 200 } else { 10 }]));
        assert!(!c.passes(&Integral::new(&flipped), 0, 0));
    }

    #[test]
    fn groups_overlapping_windows_and_drops_lonely_ones() {
        let mut rects = vec![[100.0, 100.0, 50.0, 50.0]; 6];
        for (i, r) in rects.iter_mut().enumerate() {
            r[0] += i as f32;
        }
        rects.push([0.0, 0.0, 20.0, 20.0]);
        let g = group_rectangles(&rects, 3, 0.2);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].1, 6);
        assert!((g[0].0[0] - 102.5).abs() < 1e-4);
    }

    #[test]
    fn malformed_cascades_are_errors() {
        assert!(HaarCascade::parse("<opencv_storage><cascade>").is_err());
        let bad = TINY.replace("0 -1 0 0.1", "0 -1 7 0.1");
        assert!(HaarCascade::parse(&bad)
            .unwrap_err()
            .contains("feature index"));
    }
}
