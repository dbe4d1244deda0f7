//! The cascade: stages of boosted trees over Haar features, evaluated on integral images
//! over an image pyramid.

use std::path::Path;

use image::{GrayImage, RgbImage};

use super::xml::{num, nums, parse_xml};
use crate::{Error, Result};

#[derive(Debug, Clone)]
struct Rect {
    x: usize,
    y: usize,
    w: usize,
    h: usize,
    weight: f32,
}

#[derive(Debug, Clone)]
struct TreeNode {
    left: i32,
    right: i32,
    feature: usize,
    threshold: f32,
}

#[derive(Debug, Clone)]
struct Tree {
    nodes: Vec<TreeNode>,
    leaves: Vec<f32>,
}

#[derive(Debug, Clone)]
struct Stage {
    threshold: f32,
    trees: Vec<Tree>,
}

/// A Haar cascade loaded from OpenCV XML.
#[derive(Debug, Clone)]
pub struct HaarCascade {
    width: usize,
    height: usize,
    stages: Vec<Stage>,
    features: Vec<Vec<Rect>>,
}

impl HaarCascade {
    /// Reads a cascade XML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text).map_err(|problem| Error::Checkpoint {
            path: path.to_path_buf(),
            problem: format!("not a usable OpenCV Haar cascade: {problem}"),
        })
    }

    pub(super) fn parse(text: &str) -> std::result::Result<Self, String> {
        let root = parse_xml(text)?;
        let storage = root.child("opencv_storage").ok_or("no <opencv_storage>")?;
        let c = storage.children.first().ok_or("empty <opencv_storage>")?;
        let kind = |n: &str| {
            c.child(n)
                .map(|x| x.text.trim().to_string())
                .unwrap_or_default()
        };
        if kind("stageType") != "BOOST" || kind("featureType") != "HAAR" {
            return Err(format!(
                "stageType {} / featureType {}: only BOOST + HAAR (new-style XML) is supported",
                kind("stageType"),
                kind("featureType")
            ));
        }
        let width: usize = num(c, "width")?;
        let height: usize = num(c, "height")?;
        let mut features = Vec::new();
        for f in &c.child("features").ok_or("no <features>")?.children {
            if let Some(t) = f.child("tilted") {
                if nums::<i32>(t)?.first().copied().unwrap_or(0) != 0 {
                    return Err("tilted features are not supported".into());
                }
            }
            let mut rects = Vec::new();
            for r in &f.child("rects").ok_or("feature without <rects>")?.children {
                let v: Vec<f32> = nums(r)?;
                if v.len() != 5 {
                    return Err("a rect needs x y w h weight".into());
                }
                if v[..4].iter().any(|&x| x < 0.0)
                    || v[0] + v[2] > width as f32
                    || v[1] + v[3] > height as f32
                {
                    return Err(format!("rect {v:?} outside the {width}x{height} window"));
                }
                rects.push(Rect {
                    x: v[0] as usize,
                    y: v[1] as usize,
                    w: v[2] as usize,
                    h: v[3] as usize,
                    weight: v[4],
                });
            }
            features.push(rects);
        }
        let mut stages = Vec::new();
        for s in &c.child("stages").ok_or("no <stages>")?.children {
            let threshold: f32 = num(s, "stageThreshold")?;
            let mut trees = Vec::new();
            for w in &s
                .child("weakClassifiers")
                .ok_or("stage without <weakClassifiers>")?
                .children
            {
                let raw: Vec<f32> = nums(w.child("internalNodes").ok_or("no <internalNodes>")?)?;
                let leaves: Vec<f32> = nums(w.child("leafValues").ok_or("no <leafValues>")?)?;
                if !raw.len().is_multiple_of(4) || raw.is_empty() {
                    return Err("internalNodes must come in groups of 4".into());
                }
                let nodes: Vec<TreeNode> = raw
                    .chunks(4)
                    .map(|q| TreeNode {
                        left: q[0] as i32,
                        right: q[1] as i32,
                        feature: q[2] as usize,
                        threshold: q[3],
                    })
                    .collect();
                for n in &nodes {
                    if n.feature >= features.len() {
                        return Err(format!("feature index {} out of range", n.feature));
                    }
                    for child in [n.left, n.right] {
                        let ok = if child <= 0 {
                            ((-child) as usize) < leaves.len()
                        } else {
                            (child as usize) < nodes.len()
                        };
                        if !ok {
                            return Err("tree node points outside its tree".into());
                        }
                    }
                }
                trees.push(Tree { nodes, leaves });
            }
            stages.push(Stage { threshold, trees });
        }
        if stages.is_empty() {
            return Err("no stages".into());
        }
        Ok(Self {
            width,
            height,
            stages,
            features,
        })
    }

    /// Detection window size (width, height).
    pub fn window(&self) -> (usize, usize) {
        (self.width, self.height)
    }
}

/// Integral images of values and squared values, `(w+1) x (h+1)`.
pub(super) struct Integral {
    w: usize,
    sum: Vec<f64>,
    sq: Vec<f64>,
}

impl Integral {
    pub(super) fn new(img: &GrayImage) -> Self {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut sum = vec![0f64; (w + 1) * (h + 1)];
        let mut sq = vec![0f64; (w + 1) * (h + 1)];
        for y in 0..h {
            let (mut rs, mut rq) = (0f64, 0f64);
            for x in 0..w {
                let v = img.get_pixel(x as u32, y as u32).0[0] as f64;
                rs += v;
                rq += v * v;
                sum[(y + 1) * (w + 1) + x + 1] = sum[y * (w + 1) + x + 1] + rs;
                sq[(y + 1) * (w + 1) + x + 1] = sq[y * (w + 1) + x + 1] + rq;
            }
        }
        Self { w: w + 1, sum, sq }
    }

    fn rect(&self, t: &[f64], x: usize, y: usize, w: usize, h: usize) -> f64 {
        let s = self.w;
        t[(y + h) * s + x + w] - t[y * s + x + w] - t[(y + h) * s + x] + t[y * s + x]
    }
}

/// OpenCV's grayscale conversion (ITU-R BT.601 weights).
pub fn to_gray(img: &RgbImage) -> GrayImage {
    GrayImage::from_fn(img.width(), img.height(), |x, y| {
        let p = img.get_pixel(x, y).0;
        let v = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
        image::Luma([v.round().clamp(0.0, 255.0) as u8])
    })
}

impl HaarCascade {
    /// Whether the window at (x, y) of the integral image passes every stage.
    pub(super) fn passes(&self, ii: &Integral, x: usize, y: usize) -> bool {
        let (nw, nh) = (self.width - 2, self.height - 2);
        let area = (nw * nh) as f64;
        let s = ii.rect(&ii.sum, x + 1, y + 1, nw, nh);
        let q = ii.rect(&ii.sq, x + 1, y + 1, nw, nh);
        let nf = area * q - s * s;
        let nf = if nf > 0.0 { nf.sqrt() } else { 1.0 };
        for stage in &self.stages {
            let mut total = 0f32;
            for tree in &stage.trees {
                let mut idx = 0i32;
                loop {
                    let node = &tree.nodes[idx as usize];
                    let mut v = 0f64;
                    for r in &self.features[node.feature] {
                        v += r.weight as f64 * ii.rect(&ii.sum, x + r.x, y + r.y, r.w, r.h);
                    }
                    let next = if v < node.threshold as f64 * nf {
                        node.left
                    } else {
                        node.right
                    };
                    if next <= 0 {
                        total += tree.leaves[(-next) as usize];
                        break;
                    }
                    idx = next;
                }
            }
            if total < stage.threshold {
                return false;
            }
        }
        true
    }

    /// Raw candidate windows over the pyramid, in image pixels `(x, y, w, h)`.
    pub fn candidates(
        &self,
        gray: &GrayImage,
        scale_factor: f32,
        min_size: usize,
    ) -> Vec<[f32; 4]> {
        let (w0, h0) = (gray.width() as f32, gray.height() as f32);
        let mut out = Vec::new();
        let mut factor = 1f32;
        loop {
            let (sw, sh) = ((w0 / factor).round() as u32, (h0 / factor).round() as u32);
            if (sw as usize) < self.width || (sh as usize) < self.height {
                break;
            }
            let win = self.width as f32 * factor;
            if win >= min_size as f32 {
                let scaled = if factor == 1.0 {
                    gray.clone()
                } else {
                    image::imageops::resize(gray, sw, sh, image::imageops::FilterType::Triangle)
                };
                let ii = Integral::new(&scaled);
                let step = if factor > 2.0 { 1 } else { 2 };
                for y in (0..=(sh as usize - self.height)).step_by(step) {
                    for x in (0..=(sw as usize - self.width)).step_by(step) {
                        if self.passes(&ii, x, y) {
                            out.push([
                                x as f32 * factor,
                                y as f32 * factor,
                                win,
                                self.height as f32 * factor,
                            ]);
                        }
                    }
                }
            }
            factor *= scale_factor;
        }
        out
    }
}
