//! The face detection benchmark behind `recog face eval-detect`.
//!
//! No detection set with boxes is reachable here (WIDER FACE, FDDB), so the benchmark is
//! composed, reproducibly from a seed:
//! - **Scenes**: face-free photographs ([`crate::home::backgrounds`]) cropped to 640x480 or
//!   1280x720, with 1 to 8 LFW photos pasted on them at face sizes drawn evenly over the
//!   size buckets ([`SIZE_BUCKETS`]). Each paste is the region around the face (twice the
//!   face box), blended in with a feathered ellipse. The face box comes from the
//!   deep-funneled alignment: every LFW image holds its face at [`LFW_FACE_BOX`].
//! - **Face-free images**: further crops of the same photographs, where every detection is
//!   a false positive.
//!
//! Matching is convention-free, since detectors draw boxes differently (BlazeFace's box
//! sits lower and tighter than the Haar cascade's): a detection finds a face when its
//! centre lies in the face box and its side is within a factor 2 of the box's. A
//! detection that finds no face counts as false, unless its centre lies in a pasted LFW
//! region away from the face: LFW photos hold unannotated people in the background, and
//! those regions are ignored. Detections are matched best score first; a second detection
//! of a found face is false.
//!
//! ```
//! use recog::eval::detection::{average_precision, size_bucket};
//! assert_eq!(size_bucket(30.0), Some(1));
//! // Two detections, the best one right, one face missed: AP is half.
//! assert!((average_precision(&[(0.9, true), (0.5, false)], 2) - 0.5).abs() < 1e-9);
//! ```

use std::path::PathBuf;
use std::time::Instant;

use image::RgbImage;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::face::{detect::resize_rgb, Detector, DetectorKind, FaceBox};
use crate::progress::Progress;
use crate::{Error, Result};

/// The face box of every deep-funneled LFW image, `[x0, y0, x1, y1]` in its 250x250
/// pixels: midway between the median boxes of BlazeFace (74, 87, 179, 192) and the Haar
/// cascade (68, 68, 183, 183) over 302 LFW images, one per 19th person (spread 5 to 12 px).
pub const LFW_FACE_BOX: [f32; 4] = [71.0, 78.0, 181.0, 188.0];

/// Face size buckets in pixels (the side of the face box), `[lo, hi)`.
pub const SIZE_BUCKETS: [(f32, f32); 5] = [
    (12.0, 20.0),
    (20.0, 40.0),
    (40.0, 80.0),
    (80.0, 160.0),
    (160.0, 320.0),
];

/// The bucket of a face side, if it is in one.
pub fn size_bucket(side: f32) -> Option<usize> {
    SIZE_BUCKETS
        .iter()
        .position(|&(lo, hi)| side >= lo && side < hi)
}

/// An axis-aligned box, `[x0, y0, x1, y1]` in image pixels.
pub type Rect = [f32; 4];

/// One benchmark image with its faces.
#[derive(Debug, Clone)]
pub struct Scene {
    /// The image.
    pub image: RgbImage,
    /// Annotated faces.
    pub faces: Vec<Rect>,
    /// Regions whose unmatched detections are ignored (pasted LFW photos).
    pub ignore: Vec<Rect>,
}

/// What the benchmark is made of.
#[derive(Debug, Clone)]
pub struct BenchParams {
    /// Deep-funneled LFW images (250x250).
    pub lfw_images: Vec<PathBuf>,
    /// Face-free photographs.
    pub backgrounds: Vec<PathBuf>,
    /// Scenes with faces.
    pub scenes: usize,
    /// Face-free images.
    pub face_free: usize,
    /// Seed of the composition.
    pub seed: u64,
    /// Detectors to compare.
    pub detectors: Vec<DetectorKind>,
    /// Images timed at each of 640x480 and 1920x1080 per detector.
    pub timing_images: usize,
}

impl BenchParams {
    /// The README's benchmark: 200 scenes, 100 face-free images, every detector.
    pub fn new(lfw_images: Vec<PathBuf>, backgrounds: Vec<PathBuf>) -> Self {
        Self {
            lfw_images,
            backgrounds,
            scenes: 200,
            face_free: 100,
            seed: 13,
            detectors: DetectorKind::ALL.to_vec(),
            timing_images: 5,
        }
    }

    /// Checks the parameters before any work is done.
    pub fn check(self) -> Result<ValidBenchParams> {
        let bad = |m: &str| Err(Error::InvalidArgument(m.to_string()));
        if self.lfw_images.is_empty() && self.scenes > 0 {
            return bad("the detection benchmark needs LFW images for its scenes");
        }
        if self.backgrounds.is_empty() {
            return bad("the detection benchmark needs face-free background photos");
        }
        if self.scenes == 0 && self.face_free == 0 {
            return bad("the detection benchmark needs at least one scene or face-free image");
        }
        if self.detectors.is_empty() {
            return bad("no detector to benchmark");
        }
        Ok(ValidBenchParams(self))
    }
}

/// Checked [`BenchParams`].
#[derive(Debug, Clone)]
pub struct ValidBenchParams(BenchParams);

/// Recall in one size bucket.
#[derive(Debug, Clone, Serialize)]
pub struct BucketRecall {
    /// Smallest side, px.
    pub lo: f32,
    /// Largest side (exclusive), px.
    pub hi: f32,
    /// Faces in the bucket.
    pub faces: usize,
    /// Faces found.
    pub found: usize,
    /// `found / faces`.
    pub recall: f64,
}

/// One detector's figures.
#[derive(Debug, Clone, Serialize)]
pub struct DetectorScore {
    /// The detector.
    pub detector: DetectorKind,
    /// Recall by face size.
    pub recall_by_size: Vec<BucketRecall>,
    /// Faces found over all faces.
    pub recall: f64,
    /// True detections over all detections not ignored.
    pub precision: f64,
    /// Area under the precision-recall curve at the detector's operating threshold
    /// (all-point interpolation, as PASCAL VOC since 2010).
    pub average_precision: f64,
    /// Detections in face-free images.
    pub face_free_false_positives: usize,
    /// Their mean per face-free image.
    pub false_positives_per_face_free_image: f64,
    /// Mean detection time of a 640x480 image, ms.
    pub ms_640x480: f64,
    /// Mean detection time of a 1920x1080 image, ms.
    pub ms_1920x1080: f64,
}

/// The benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Scenes with faces.
    pub scenes: usize,
    /// Annotated faces in them.
    pub faces: usize,
    /// Face-free images.
    pub face_free_images: usize,
    /// The composition seed.
    pub seed: u64,
    /// One row per detector.
    pub detectors: Vec<DetectorScore>,
}

/// A detection's outcome against a scene's faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It found face `i`.
    Found(usize),
    /// It found nothing.
    False,
    /// It lies in an ignored region.
    Ignored,
}

/// Whether detection `d` finds face `f`: centre in the face box, side within a factor 2.
pub fn finds(d: &FaceBox, f: &Rect) -> bool {
    let [cx, cy] = d.centre();
    let side = ((d.x1 - d.x0).max(0.0) * (d.y1 - d.y0).max(0.0)).sqrt();
    let fside = ((f[2] - f[0]) * (f[3] - f[1])).max(0.0).sqrt();
    cx >= f[0]
        && cx <= f[2]
        && cy >= f[1]
        && cy <= f[3]
        && side >= fside / 2.0
        && side <= fside * 2.0
}

/// Matches detections (any order) to a scene's faces, best score first; returns each
/// detection's outcome in the order given.
pub fn match_scene(dets: &[FaceBox], faces: &[Rect], ignore: &[Rect]) -> Vec<Outcome> {
    let mut order: Vec<usize> = (0..dets.len()).collect();
    order.sort_by(|&a, &b| dets[b].score.total_cmp(&dets[a].score));
    let mut taken = vec![false; faces.len()];
    let mut out = vec![Outcome::False; dets.len()];
    let inside =
        |p: [f32; 2], r: &Rect| p[0] >= r[0] && p[0] <= r[2] && p[1] >= r[1] && p[1] <= r[3];
    for i in order {
        let d = &dets[i];
        let c = d.centre();
        let hit = faces
            .iter()
            .enumerate()
            .filter(|(j, f)| !taken[*j] && finds(d, f))
            .min_by(|a, b| {
                let da = dist2(c, rect_centre(a.1));
                let db = dist2(c, rect_centre(b.1));
                da.total_cmp(&db)
            })
            .map(|(j, _)| j);
        out[i] = match hit {
            Some(j) => {
                taken[j] = true;
                Outcome::Found(j)
            }
            // A duplicate of a found face is false; elsewhere in a pasted photo, ignored.
            None if faces.iter().any(|f| inside(c, f)) => Outcome::False,
            None if ignore.iter().any(|r| inside(c, r)) => Outcome::Ignored,
            None => Outcome::False,
        };
    }
    out
}

fn rect_centre(r: &Rect) -> [f32; 2] {
    [(r[0] + r[2]) / 2.0, (r[1] + r[3]) / 2.0]
}

fn dist2(a: [f32; 2], b: [f32; 2]) -> f32 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)
}

/// Average precision of scored detections (`true` = found a face) against `faces` faces:
/// the area under the precision-recall curve with precision made monotone.
pub fn average_precision(scored: &[(f32, bool)], faces: usize) -> f64 {
    if faces == 0 {
        return 0.0;
    }
    let mut s = scored.to_vec();
    s.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut points = Vec::with_capacity(s.len());
    for &(_, t) in &s {
        if t {
            tp += 1;
        } else {
            fp += 1;
        }
        points.push((tp as f64 / faces as f64, tp as f64 / (tp + fp) as f64));
    }
    // Monotone precision from the right, then sum over recall steps.
    for i in (0..points.len().saturating_sub(1)).rev() {
        points[i].1 = points[i].1.max(points[i + 1].1);
    }
    let mut ap = 0.0;
    let mut last_r = 0.0;
    for (r, p) in points {
        ap += (r - last_r) * p;
        last_r = r;
    }
    ap
}

/// A random crop of `bg` with the aspect of `w x h`, covering 40-100% of the largest such
/// crop, resized to `w x h`.
fn crop_to(bg: &RgbImage, w: u32, h: u32, rng: &mut impl Rng) -> RgbImage {
    let aspect = w as f32 / h as f32;
    let (bw, bh) = (bg.width() as f32, bg.height() as f32);
    let (mw, mh) = if bw / bh > aspect {
        (bh * aspect, bh)
    } else {
        (bw, bw / aspect)
    };
    let f = rng.random_range(0.4f32..=1.0);
    let (cw, ch) = ((mw * f).max(1.0), (mh * f).max(1.0));
    let x = rng.random_range(0.0..=(bw - cw).max(0.0)) as u32;
    let y = rng.random_range(0.0..=(bh - ch).max(0.0)) as u32;
    let sub = image::imageops::crop_imm(bg, x, y, cw as u32, ch as u32).to_image();
    resize_rgb(&sub, w, h)
}

/// Pastes the region around an LFW image's face onto `scene` so that its face box has
/// side `side` with its top-left at `(x, y)`; returns the face box and the pasted region.
fn paste_face(scene: &mut RgbImage, lfw: &RgbImage, side: f32, x: f32, y: f32) -> (Rect, Rect) {
    let [fx0, fy0, fx1, fy1] = LFW_FACE_BOX;
    let k = side / (fx1 - fx0);
    // The region: twice the face box around its centre, inside the 250x250 photo.
    let (cx, cy) = ((fx0 + fx1) / 2.0, (fy0 + fy1) / 2.0);
    let half = fx1 - fx0;
    let lw = lfw.width() as f32;
    let lh = lfw.height() as f32;
    let (rx0, ry0) = ((cx - half).max(0.0), (cy - half).max(0.0));
    let (rx1, ry1) = ((cx + half).min(lw), (cy + half).min(lh));
    let region = image::imageops::crop_imm(
        lfw,
        rx0 as u32,
        ry0 as u32,
        (rx1 - rx0) as u32,
        (ry1 - ry0) as u32,
    )
    .to_image();
    let (pw, ph) = (
        ((rx1 - rx0) * k).round().max(1.0) as u32,
        ((ry1 - ry0) * k).round().max(1.0) as u32,
    );
    let patch = resize_rgb(&region, pw, ph);
    // Where the patch's top-left lands so that the face box's top-left is at (x, y).
    let ox = x - (fx0 - rx0) * k;
    let oy = y - (fy0 - ry0) * k;
    let (ecx, ecy) = (pw as f32 / 2.0, ph as f32 / 2.0);
    for (px, py, p) in patch.enumerate_pixels() {
        let (sx, sy) = (ox + px as f32, oy + py as f32);
        if sx < 0.0 || sy < 0.0 || sx >= scene.width() as f32 || sy >= scene.height() as f32 {
            continue;
        }
        // Feathered ellipse: opaque inside 80% of the radius, fading to 0 at the edge.
        let r = (((px as f32 + 0.5 - ecx) / ecx).powi(2) + ((py as f32 + 0.5 - ecy) / ecy).powi(2))
            .sqrt();
        let a = ((1.0 - r) / 0.2).clamp(0.0, 1.0);
        if a <= 0.0 {
            continue;
        }
        let q = scene.get_pixel_mut(sx as u32, sy as u32);
        for c in 0..3 {
            q.0[c] = (p.0[c] as f32 * a + q.0[c] as f32 * (1.0 - a)).round() as u8;
        }
    }
    (
        [x, y, x + side, y + side * (fy1 - fy0) / (fx1 - fx0)],
        [ox, oy, ox + pw as f32, oy + ph as f32],
    )
}

fn overlaps(a: &Rect, b: &Rect) -> bool {
    a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]
}

/// Composes the benchmark's images from decoded photos: scenes first, then face-free.
pub fn compose(
    lfw: &[RgbImage],
    backgrounds: &[RgbImage],
    scenes: usize,
    face_free: usize,
    seed: u64,
) -> Vec<Scene> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(scenes + face_free);
    if backgrounds.is_empty() {
        return out;
    }
    const SIZES: [(u32, u32); 3] = [(640, 480), (640, 480), (1280, 720)];
    for i in 0..scenes {
        let (w, h) = SIZES[i % SIZES.len()];
        let bg = &backgrounds[rng.random_range(0..backgrounds.len())];
        let mut image = crop_to(bg, w, h, &mut rng);
        let (mut faces, mut ignore) = (Vec::new(), Vec::new());
        if !lfw.is_empty() {
            let n = rng.random_range(1..=8);
            for _ in 0..n {
                let (lo, hi) = SIZE_BUCKETS[rng.random_range(0..SIZE_BUCKETS.len())];
                // The pasted region is twice the face: the face must fit with it.
                let hi = hi.min(h as f32 / 2.2);
                if hi <= lo {
                    continue;
                }
                let side = (rng.random_range(lo.ln()..hi.ln())).exp();
                let region = side * 2.0;
                let mut placed = None;
                for _ in 0..30 {
                    let x = rng.random_range(0.0..(w as f32 - region).max(1.0)) + side / 2.0;
                    let y = rng.random_range(0.0..(h as f32 - region).max(1.0)) + side / 2.0;
                    let r = [
                        x - side / 2.0,
                        y - side / 2.0,
                        x + side * 1.5,
                        y + side * 1.5,
                    ];
                    if !ignore.iter().any(|o| overlaps(o, &r)) {
                        placed = Some((x, y));
                        break;
                    }
                }
                let Some((x, y)) = placed else { continue };
                let photo = &lfw[rng.random_range(0..lfw.len())];
                let (face, region) = paste_face(&mut image, photo, side, x, y);
                faces.push(face);
                ignore.push(region);
            }
        }
        out.push(Scene {
            image,
            faces,
            ignore,
        });
    }
    for i in 0..face_free {
        let (w, h) = SIZES[i % SIZES.len()];
        let bg = &backgrounds[rng.random_range(0..backgrounds.len())];
        out.push(Scene {
            image: crop_to(bg, w, h, &mut rng),
            faces: Vec::new(),
            ignore: Vec::new(),
        });
    }
    out
}

/// Scores one detector's detections on the scenes (`dets[i]` for `scenes[i]`).
pub fn score(kind: DetectorKind, scenes: &[Scene], dets: &[Vec<FaceBox>]) -> DetectorScore {
    let mut buckets: Vec<BucketRecall> = SIZE_BUCKETS
        .iter()
        .map(|&(lo, hi)| BucketRecall {
            lo,
            hi,
            faces: 0,
            found: 0,
            recall: 0.0,
        })
        .collect();
    let (mut faces, mut found, mut false_pos, mut free_fp, mut free_n) = (0, 0, 0, 0, 0);
    let mut scored = Vec::new();
    for (s, d) in scenes.iter().zip(dets) {
        let outcomes = match_scene(d, &s.faces, &s.ignore);
        let mut hit = vec![false; s.faces.len()];
        for (o, det) in outcomes.iter().zip(d) {
            match o {
                Outcome::Found(j) => {
                    hit[*j] = true;
                    scored.push((det.score, true));
                }
                Outcome::False => {
                    false_pos += 1;
                    scored.push((det.score, false));
                }
                Outcome::Ignored => {}
            }
        }
        if s.faces.is_empty() {
            free_n += 1;
            free_fp += outcomes.iter().filter(|o| **o == Outcome::False).count();
        }
        for (f, h) in s.faces.iter().zip(hit) {
            faces += 1;
            found += h as usize;
            if let Some(b) = size_bucket(f[2] - f[0]) {
                buckets[b].faces += 1;
                buckets[b].found += h as usize;
            }
        }
    }
    for b in &mut buckets {
        b.recall = ratio(b.found, b.faces);
    }
    DetectorScore {
        detector: kind,
        recall_by_size: buckets,
        recall: ratio(found, faces),
        precision: ratio(found, found + false_pos),
        average_precision: average_precision(&scored, faces),
        face_free_false_positives: free_fp,
        false_positives_per_face_free_image: ratio(free_fp, free_n),
        ms_640x480: 0.0,
        ms_1920x1080: 0.0,
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Mean milliseconds per image of `det` on `images` (after one warm-up image).
pub fn time_detector(det: &dyn Detector, images: &[RgbImage]) -> Result<f64> {
    if let Some(first) = images.first() {
        det.detect(first)?;
    }
    let t = Instant::now();
    for img in images {
        det.detect(img)?;
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0 / images.len().max(1) as f64)
}

impl ValidBenchParams {
    /// Reads the photos and composes the benchmark's images (scenes, then face-free).
    pub fn scenes(&self, progress: &dyn Progress) -> Result<Vec<Scene>> {
        let p = &self.0;
        let read = |paths: &[PathBuf], label: &str| -> Result<Vec<RgbImage>> {
            progress.start(label, paths.len() as u64);
            let mut out = Vec::with_capacity(paths.len());
            for path in paths {
                out.push(crate::data::image_file::load_rgb(path)?);
                progress.inc(1);
            }
            progress.finish();
            Ok(out)
        };
        let backgrounds = read(&p.backgrounds, "reading background photos")?;
        // Only the LFW photos the scenes can use are read: at most 8 per scene.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed ^ 0x1f3);
        let want = (p.scenes * 8).min(p.lfw_images.len());
        let picks: Vec<PathBuf> =
            rand::seq::IndexedRandom::choose_multiple(p.lfw_images.as_slice(), &mut rng, want)
                .cloned()
                .collect();
        let lfw = read(&picks, "reading LFW photos")?;
        Ok(compose(&lfw, &backgrounds, p.scenes, p.face_free, p.seed))
    }

    /// Composes the images, runs every detector on them, and scores and times each.
    /// `load` builds a detector (the caller decides where models come from).
    pub fn run(
        &self,
        load: &dyn Fn(DetectorKind) -> Result<Box<dyn Detector>>,
        progress: &dyn Progress,
    ) -> Result<BenchReport> {
        let scenes = self.scenes(progress)?;
        self.run_on(&scenes, load, progress)
    }

    /// [`ValidBenchParams::run`] on images already composed by [`ValidBenchParams::scenes`].
    pub fn run_on(
        &self,
        scenes: &[Scene],
        load: &dyn Fn(DetectorKind) -> Result<Box<dyn Detector>>,
        progress: &dyn Progress,
    ) -> Result<BenchReport> {
        let p = &self.0;
        let faces = scenes.iter().map(|s| s.faces.len()).sum();
        let timing = |w: u32, h: u32| -> Vec<RgbImage> {
            scenes
                .iter()
                .take(p.timing_images.max(1))
                .map(|s| resize_rgb(&s.image, w, h))
                .collect()
        };
        let (t640, t1080) = (timing(640, 480), timing(1920, 1080));
        let mut rows = Vec::new();
        for &kind in &p.detectors {
            let det = load(kind)?;
            progress.start(&format!("detecting ({})", kind.name()), scenes.len() as u64);
            let mut dets = Vec::with_capacity(scenes.len());
            for s in scenes {
                dets.push(det.detect(&s.image)?);
                progress.inc(1);
            }
            progress.finish();
            let mut row = score(kind, scenes, &dets);
            row.ms_640x480 = time_detector(det.as_ref(), &t640)?;
            row.ms_1920x1080 = time_detector(det.as_ref(), &t1080)?;
            rows.push(row);
        }
        Ok(BenchReport {
            scenes: p.scenes,
            faces,
            face_free_images: p.face_free,
            seed: p.seed,
            detectors: rows,
        })
    }
}

/// The recall-by-size plot: one curve per detector, at each bucket's geometric centre.
pub fn plot_recall(report: &BenchReport, path: &std::path::Path) -> Result<()> {
    let series: Vec<crate::plot::Series> = report
        .detectors
        .iter()
        .map(|d| crate::plot::Series {
            label: d.detector.label().to_string(),
            points: d
                .recall_by_size
                .iter()
                .filter(|b| b.faces > 0)
                .map(|b| (((b.lo * b.hi) as f64).sqrt().log2(), b.recall))
                .collect(),
        })
        .collect();
    crate::plot::line_chart(
        path,
        "Face detection: recall by face size",
        "face size, log2 px (4.0 = 16 px, 5.0 = 32, 6.0 = 64, 7.0 = 128, 8.0 = 256)",
        "recall",
        &series,
    )
}

impl BenchParams {
    /// [`BenchParams::new`] on the photos of a recog home: LFW from `lfw` (a folder with
    /// `images/`) or the home's, installed if missing; face-free photos from `backgrounds`
    /// (any depth) or the built-in set, installed if missing.
    pub fn from_home(
        home: &crate::Home,
        lfw: Option<&std::path::Path>,
        backgrounds: Option<&std::path::Path>,
        progress: &dyn Progress,
    ) -> Result<Self> {
        let lfw_root = match lfw {
            Some(d) => d.to_path_buf(),
            None => home.ensure_lfw(&crate::home::lfw::builtin_spec(), progress)?,
        };
        let backgrounds = match backgrounds {
            Some(dir) => crate::data::folder::images_under(dir)?,
            None => home.ensure_backgrounds(&crate::home::backgrounds::builtin_spec(), progress)?,
        };
        Ok(Self::new(
            crate::data::folder::person_images(&lfw_root.join("images"))?,
            backgrounds,
        ))
    }
}

impl ValidBenchParams {
    /// The whole benchmark into a folder: detectors from `home` with `settings`; writes four
    /// sample scenes with their faces marked (`scene_<i>.jpg`, to see what it asks),
    /// `detect.json` and `recall_by_size.png`.
    pub fn run_into(
        &self,
        home: &crate::Home,
        settings: &crate::face::DetectorSettings,
        out: &std::path::Path,
        progress: &dyn Progress,
    ) -> Result<BenchReport> {
        let device = crate::face_device();
        let load = |k: DetectorKind| k.load(home, &device, settings, progress);
        let scenes = self.scenes(progress)?;
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let samples = scenes.iter().filter(|s| !s.faces.is_empty()).take(4);
        for (i, s) in samples.enumerate() {
            let marks: Vec<_> = s
                .faces
                .iter()
                .map(|f| {
                    let b = FaceBox {
                        x0: f[0],
                        y0: f[1],
                        x1: f[2],
                        y1: f[3],
                        score: 1.0,
                        keypoints: Vec::new(),
                        landmarks: Vec::new(),
                    };
                    let label = Some(format!("{:.0}px", f[2] - f[0]));
                    (b, label, crate::face::draw::GREEN)
                })
                .collect();
            let path = out.join(format!("scene_{i}.jpg"));
            crate::face::draw::annotate(&s.image, &marks)
                .save(&path)
                .map_err(|e| Error::io(&path, std::io::Error::other(e)))?;
        }
        let report = self.run_on(&scenes, &load, progress)?;
        let json = out.join("detect.json");
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::InvalidArgument(format!("detect.json: {e}")))?;
        std::fs::write(&json, text).map_err(|e| Error::io(&json, e))?;
        plot_recall(&report, &out.join("recall_by_size.png"))?;
        Ok(report)
    }
}

impl std::fmt::Display for BenchReport {
    /// The README's table: recall by face size, then over all faces, precision, AP, false
    /// positives per face-free image and time per image.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} scenes with {} faces, {} face-free images (seed {})",
            self.scenes, self.faces, self.face_free_images, self.seed
        )?;
        writeln!(f, "recall by face size (px), then over all faces:")?;
        let heads: String = SIZE_BUCKETS
            .iter()
            .map(|(lo, hi)| format!("{:>9}", format!("{lo:.0}-{hi:.0}")))
            .collect();
        writeln!(
            f,
            "{:<18} {heads} {:>7} {:>7} {:>6} {:>9} {:>8} {:>9}",
            "detector", "recall", "precis.", "AP", "FP/free", "ms 640", "ms 1080p"
        )?;
        for d in &self.detectors {
            let cells: String = d
                .recall_by_size
                .iter()
                .map(|b| format!("{:>8.1}%", 100.0 * b.recall))
                .collect();
            writeln!(
                f,
                "{:<18} {cells} {:>6.1}% {:>6.1}% {:>6.3} {:>9.3} {:>8.1} {:>9.1}",
                d.detector.name(),
                100.0 * d.recall,
                100.0 * d.precision,
                d.average_precision,
                d.false_positives_per_face_free_image,
                d.ms_640x480,
                d.ms_1920x1080
            )?;
        }
        let counts: Vec<String> = self
            .detectors
            .first()
            .map(|d| {
                d.recall_by_size
                    .iter()
                    .map(|b| b.faces.to_string())
                    .collect()
            })
            .unwrap_or_default();
        write!(f, "faces per size bucket: {}", counts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fb(x0: f32, y0: f32, side: f32, score: f32) -> FaceBox {
        FaceBox {
            x0,
            y0,
            x1: x0 + side,
            y1: y0 + side,
            score,
            keypoints: vec![],
            landmarks: vec![],
        }
    }

    #[test]
    fn matching_counts_duplicates_false_and_background_people_ignored() {
        let faces = [[100.0, 100.0, 140.0, 140.0]];
        let ignore = [[80.0, 80.0, 200.0, 200.0]];
        let dets = [
            fb(101.0, 99.0, 40.0, 0.7),   // duplicate, lower score
            fb(102.0, 102.0, 38.0, 0.9),  // the match
            fb(160.0, 160.0, 30.0, 0.8),  // someone behind, in the pasted photo
            fb(300.0, 300.0, 30.0, 0.6),  // background
            fb(105.0, 105.0, 10.0, 0.95), // far too small for the face
        ];
        let o = match_scene(&dets, &faces, &ignore);
        assert_eq!(
            o,
            vec![
                Outcome::False,
                Outcome::Found(0),
                Outcome::Ignored,
                Outcome::False,
                Outcome::False
            ]
        );
    }

    #[test]
    fn average_precision_of_perfect_and_useless_detectors() {
        assert!((average_precision(&[(0.9, true), (0.8, true)], 2) - 1.0).abs() < 1e-12);
        assert_eq!(average_precision(&[(0.9, false)], 3), 0.0);
        // Right, wrong, right over 2 faces: 0.5 * 1 + 0.5 * 2/3.
        let ap = average_precision(&[(0.9, true), (0.8, false), (0.7, true)], 2);
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-12, "{ap}");
    }

    #[test]
    fn composed_scenes_are_reproducible_and_hold_their_faces() {
        let bg = RgbImage::from_fn(800, 600, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let lfw = RgbImage::from_pixel(250, 250, image::Rgb([200, 150, 120]));
        let a = compose(
            std::slice::from_ref(&lfw),
            std::slice::from_ref(&bg),
            6,
            3,
            7,
        );
        let b = compose(&[lfw], &[bg], 6, 3, 7);
        assert_eq!(a.len(), 9);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.faces, y.faces);
            assert_eq!(x.image, y.image);
        }
        for s in &a[..6] {
            assert!(!s.faces.is_empty());
            for (f, r) in s.faces.iter().zip(&s.ignore) {
                assert!(f[0] >= 0.0 && f[1] >= 0.0);
                assert!(f[2] <= s.image.width() as f32 && f[3] <= s.image.height() as f32);
                assert!(
                    r[0] <= f[0] && r[2] >= f[2],
                    "face {f:?} outside its paste {r:?}"
                );
                // The face's centre carries the pasted photo's colour.
                let p = s
                    .image
                    .get_pixel(((f[0] + f[2]) / 2.0) as u32, ((f[1] + f[3]) / 2.0) as u32);
                assert_eq!(p.0, [200, 150, 120]);
            }
        }
        assert!(a[6..].iter().all(|s| s.faces.is_empty()));
    }

    #[test]
    fn scores_split_recall_by_size_and_count_face_free_false_positives() {
        let bg = RgbImage::new(640, 480);
        let scenes = vec![
            Scene {
                image: bg.clone(),
                faces: vec![[10.0, 10.0, 25.0, 25.0], [100.0, 100.0, 200.0, 200.0]],
                ignore: vec![],
            },
            Scene {
                image: bg,
                faces: vec![],
                ignore: vec![],
            },
        ];
        let dets = vec![
            vec![fb(100.0, 100.0, 100.0, 0.9)],
            vec![fb(0.0, 0.0, 50.0, 0.6)],
        ];
        let s = score(DetectorKind::Haar, &scenes, &dets);
        assert_eq!(s.recall_by_size[0].faces, 1);
        assert_eq!(s.recall_by_size[0].found, 0);
        assert_eq!(s.recall_by_size[3].found, 1);
        assert_eq!(s.face_free_false_positives, 1);
        assert!((s.precision - 0.5).abs() < 1e-12);
        assert!((s.recall - 0.5).abs() < 1e-12);
    }
}
