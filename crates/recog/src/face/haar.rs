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

use std::path::Path;

use image::{GrayImage, RgbImage};

use super::detect::Detector;
use super::FaceBox;
use crate::{Error, Result};

#[derive(Debug, Clone)]
struct Node {
    name: String,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// A minimal XML reader for OpenCV storage files: elements and text; attributes,
/// comments and declarations are skipped.
fn parse_xml(s: &str) -> std::result::Result<Node, String> {
    let mut stack = vec![Node {
        name: String::new(),
        text: String::new(),
        children: vec![],
    }];
    let mut i = 0;
    let b = s.as_bytes();
    while i < b.len() {
        if b[i] == b'<' {
            if s[i..].starts_with("<!--") {
                i += s[i..].find("-->").ok_or("unclosed comment")? + 3;
                continue;
            }
            if s[i..].starts_with("<?") || s[i..].starts_with("<!") {
                i += s[i..].find('>').ok_or("unclosed declaration")? + 1;
                continue;
            }
            let end = i + s[i..].find('>').ok_or("unclosed tag")?;
            let tag = &s[i + 1..end];
            if let Some(name) = tag.strip_prefix('/') {
                let node = stack.pop().ok_or("unbalanced tags")?;
                if node.name != name.trim() {
                    return Err(format!("</{}> closes <{}>", name.trim(), node.name));
                }
                stack
                    .last_mut()
                    .ok_or("unbalanced tags")?
                    .children
                    .push(node);
            } else {
                let self_closing = tag.ends_with('/');
                let name = tag
                    .trim_end_matches('/')
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let node = Node {
                    name,
                    text: String::new(),
                    children: vec![],
                };
                if self_closing {
                    stack
                        .last_mut()
                        .ok_or("unbalanced tags")?
                        .children
                        .push(node);
                } else {
                    stack.push(node);
                }
            }
            i = end + 1;
        } else {
            let end = s[i..].find('<').map_or(b.len(), |k| i + k);
            if let Some(top) = stack.last_mut() {
                top.text.push_str(&s[i..end]);
                top.text.push(' ');
            }
            i = end;
        }
    }
    if stack.len() != 1 {
        return Err("unclosed elements at end of file".into());
    }
    stack.pop().ok_or_else(|| "empty document".to_string())
}

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

fn nums<T: std::str::FromStr>(n: &Node) -> std::result::Result<Vec<T>, String> {
    n.text
        .split_whitespace()
        .map(|t| {
            t.parse::<T>()
                .map_err(|_| format!("<{}>: bad number {t}", n.name))
        })
        .collect()
}

fn num<T: std::str::FromStr>(parent: &Node, name: &str) -> std::result::Result<T, String> {
    let n = parent.child(name).ok_or(format!("missing <{name}>"))?;
    nums::<T>(n)?
        .into_iter()
        .next()
        .ok_or(format!("empty <{name}>"))
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

    fn parse(text: &str) -> std::result::Result<Self, String> {
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
struct Integral {
    w: usize,
    sum: Vec<f64>,
    sq: Vec<f64>,
}

impl Integral {
    fn new(img: &GrayImage) -> Self {
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
    fn passes(&self, ii: &Integral, x: usize, y: usize) -> bool {
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

/// OpenCV's `groupRectangles`: clusters of similar rectangles (eps) with more than
/// `min_neighbors` members are averaged; rectangles inside a stronger one are dropped.
pub fn group_rectangles(
    rects: &[[f32; 4]],
    min_neighbors: usize,
    eps: f32,
) -> Vec<([f32; 4], usize)> {
    let n = rects.len();
    let mut label: Vec<usize> = (0..n).collect();
    fn find(l: &mut [usize], i: usize) -> usize {
        let mut r = i;
        while l[r] != r {
            r = l[r];
        }
        let mut j = i;
        while l[j] != r {
            let next = l[j];
            l[j] = r;
            j = next;
        }
        r
    }
    let similar = |a: &[f32; 4], b: &[f32; 4]| {
        let delta = eps * (a[2].min(b[2]) + a[3].min(b[3])) * 0.5;
        (a[0] - b[0]).abs() <= delta
            && (a[1] - b[1]).abs() <= delta
            && (a[0] + a[2] - b[0] - b[2]).abs() <= delta
            && (a[1] + a[3] - b[1] - b[3]).abs() <= delta
    };
    for i in 0..n {
        for j in i + 1..n {
            if similar(&rects[i], &rects[j]) {
                let (a, b) = (find(&mut label, i), find(&mut label, j));
                if a != b {
                    label[a] = b;
                }
            }
        }
    }
    let mut sums: std::collections::BTreeMap<usize, ([f32; 4], usize)> = Default::default();
    for (i, rect) in rects.iter().enumerate() {
        let r = find(&mut label, i);
        let e = sums.entry(r).or_insert(([0.0; 4], 0));
        for (acc, v) in e.0.iter_mut().zip(rect) {
            *acc += v;
        }
        e.1 += 1;
    }
    let clusters: Vec<([f32; 4], usize)> = sums
        .into_values()
        .filter(|(_, c)| *c > min_neighbors)
        .map(|(s, c)| (s.map(|v| v / c as f32), c))
        .collect();
    // Drop a cluster that lies inside another one with at least as many members.
    clusters
        .iter()
        .enumerate()
        .filter(|(i, (r1, n1))| {
            !clusters.iter().enumerate().any(|(j, (r2, n2))| {
                if *i == j || *n2 < (*n1).max(3) {
                    return false;
                }
                let dx = r2[2] * 0.2;
                let dy = r2[3] * 0.2;
                r1[0] >= r2[0] - dx
                    && r1[1] >= r2[1] - dy
                    && r1[0] + r1[2] <= r2[0] + r2[2] + dx
                    && r1[1] + r1[3] <= r2[1] + r2[3] + dy
            })
        })
        .map(|(_, c)| *c)
        .collect()
}

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
    use super::*;

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
