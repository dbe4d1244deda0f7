//! The LFW verification protocol (Huang et al., "Labeled Faces in the Wild: A Database for
//! Studying Face Recognition in Unconstrained Environments", 2007).
//!
//! View 2 (`pairs.txt`): 10 folds of 300 same-person and 300 different-person pairs. For each
//! fold, the distance threshold that maximises accuracy on the other 9 folds is applied to
//! it; the figure is the mean and standard deviation of the 10 fold accuracies. ROC AUC, EER
//! and TAR at a fixed FAR are computed over all 6,000 pairs.
//!
//! ```
//! // (distance, same person, fold): each fold's threshold, chosen on the other, splits it.
//! let scored = [(0.2, true, 0), (0.3, true, 1), (0.8, false, 0), (0.9, false, 1)];
//! let r = recog::eval::lfw::evaluate(&scored);
//! assert_eq!(r.mean_accuracy, 1.0);
//! assert_eq!(r.auc, 1.0);
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::roc::{auc, eer, roc_curve};
use crate::{Error, Result};

/// One pair of images and whether they show the same person.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// First image, relative to the images folder.
    pub a: PathBuf,
    /// Second image.
    pub b: PathBuf,
    /// Same person.
    pub same: bool,
    /// Fold index (0-based).
    pub fold: usize,
}

/// `images/<Name>/<Name>_<NNNN>.jpg`.
pub fn image_path(name: &str, n: usize) -> PathBuf {
    PathBuf::from(name).join(format!("{name}_{n:04}.jpg"))
}

/// Writes the images of `pairs` from `images` into `dest`, downscaled so that the face,
/// [`crate::eval::detection::LFW_FACE_BOX`] in every deep-funneled image, is `face_px`
/// wide; returns `dest`. How the pipeline copes with small faces is then measured by the
/// same protocol as the full-size photos.
pub fn downscaled_copy(
    images: &Path,
    pairs: &[Pair],
    face_px: f32,
    dest: &Path,
    progress: &dyn crate::Progress,
) -> Result<PathBuf> {
    let [x0, _, x1, _] = crate::eval::detection::LFW_FACE_BOX;
    let k = face_px / (x1 - x0);
    if !(k > 0.0 && k <= 4.0) {
        return Err(Error::InvalidArgument(format!(
            "face size {face_px} px is outside (0, {}] px",
            4.0 * (x1 - x0)
        )));
    }
    let files = unique_images(pairs);
    progress.start(
        &format!("downscaling LFW to {face_px} px faces"),
        files.len() as u64,
    );
    for rel in &files {
        let img = crate::data::image_file::load_rgb(&images.join(rel))?;
        let (w, h) = (
            ((img.width() as f32 * k).round() as u32).max(1),
            ((img.height() as f32 * k).round() as u32).max(1),
        );
        let small = crate::face::detect::resize_rgb(&img, w, h);
        let out = dest.join(rel);
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        // PNG under the pairs' `.jpg` name (decoding goes by content): no second loss on
        // top of the downscaling.
        small
            .save_with_format(&out, image::ImageFormat::Png)
            .map_err(|e| Error::Image {
                path: out.clone(),
                problem: e.to_string(),
            })?;
        progress.inc(1);
    }
    progress.finish();
    Ok(dest.to_path_buf())
}

/// Parses `pairs.txt` (View 2) or `pairsDevTrain/Test.txt` (View 1; one fold).
pub fn read_pairs(path: &Path) -> Result<Vec<Pair>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad = |line: usize, why: &str| Error::Idx {
        path: path.to_path_buf(),
        problem: format!("line {line}: {why}"),
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, head) = lines.next().ok_or_else(|| bad(1, "empty file"))?;
    let head: Vec<usize> = head
        .split_whitespace()
        .map(|t| t.parse().map_err(|_| bad(1, "header is not numbers")))
        .collect::<Result<_>>()?;
    let (folds, per) = match head.as_slice() {
        [f, n] => (*f, *n),
        [n] => (1, *n),
        _ => return Err(bad(1, "header must be `folds pairs` or `pairs`")),
    };
    let mut pairs = Vec::with_capacity(folds * per * 2);
    for fold in 0..folds {
        for k in 0..2 * per {
            let (i, l) = lines.next().ok_or_else(|| bad(0, "file ends early"))?;
            let t: Vec<&str> = l.split_whitespace().collect();
            let num = |s: &str| {
                s.parse::<usize>()
                    .map_err(|_| bad(i + 1, "bad image number"))
            };
            let p = match (k < per, t.as_slice()) {
                (true, [name, x, y]) => Pair {
                    a: image_path(name, num(x)?),
                    b: image_path(name, num(y)?),
                    same: true,
                    fold,
                },
                (false, [n1, x, n2, y]) => Pair {
                    a: image_path(n1, num(x)?),
                    b: image_path(n2, num(y)?),
                    same: false,
                    fold,
                },
                _ => return Err(bad(i + 1, "expected `name n1 n2` or `name1 n1 name2 n2`")),
            };
            pairs.push(p);
        }
    }
    Ok(pairs)
}

/// The distinct images the pairs refer to, sorted.
pub fn unique_images(pairs: &[Pair]) -> Vec<PathBuf> {
    let set: BTreeSet<&PathBuf> = pairs.iter().flat_map(|p| [&p.a, &p.b]).collect();
    set.into_iter().cloned().collect()
}

/// Verification figures over scored pairs.
#[derive(Debug, Clone, Serialize)]
pub struct VerificationReport {
    /// Accuracy of each fold at the threshold chosen on the other folds.
    pub fold_accuracy: Vec<f64>,
    /// Mean of the fold accuracies.
    pub mean_accuracy: f64,
    /// Standard deviation of the fold accuracies.
    pub std_accuracy: f64,
    /// Thresholds chosen per fold.
    pub fold_threshold: Vec<f64>,
    /// Threshold that maximises accuracy on all pairs (what `face verify` uses).
    pub best_threshold: f64,
    /// Area under the ROC curve (same = positive, smaller distance = more similar).
    pub auc: f64,
    /// Equal error rate.
    pub eer: f64,
    /// True accept rate at FAR <= 1e-3.
    pub tar_at_far_1e3: f64,
    /// ROC points (FAR, TAR), one per distinct threshold.
    pub roc: Vec<(f64, f64)>,
}

fn accuracy_at(d: &[(f64, bool)], t: f64) -> f64 {
    let ok = d.iter().filter(|(x, same)| (*x <= t) == *same).count();
    ok as f64 / d.len().max(1) as f64
}

/// The threshold (midpoint between consecutive distances) that maximises accuracy.
pub fn best_threshold(d: &[(f64, bool)]) -> f64 {
    let mut v: Vec<(f64, bool)> = d.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n_diff = v.iter().filter(|x| !x.1).count();
    // Sweep: accept everything up to index i.
    let (mut best, mut best_t) = (n_diff, v.first().map_or(0.0, |x| x.0 - 1e-6));
    let mut correct = n_diff; // threshold below all: every "different" is right
    for i in 0..v.len() {
        if v[i].1 {
            correct += 1;
        } else {
            correct -= 1;
        }
        let last_of_run = i + 1 == v.len() || v[i + 1].0 > v[i].0;
        if last_of_run && correct > best {
            best = correct;
            best_t = if i + 1 < v.len() {
                (v[i].0 + v[i + 1].0) / 2.0
            } else {
                v[i].0 + 1e-6
            };
        }
    }
    best_t
}

/// Runs the protocol on `(distance, same, fold)` triples.
pub fn evaluate(scored: &[(f64, bool, usize)]) -> VerificationReport {
    let folds = scored.iter().map(|s| s.2).max().map_or(0, |m| m + 1);
    let mut fold_accuracy = Vec::new();
    let mut fold_threshold = Vec::new();
    for f in 0..folds {
        let train: Vec<(f64, bool)> = scored
            .iter()
            .filter(|s| s.2 != f)
            .map(|s| (s.0, s.1))
            .collect();
        let test: Vec<(f64, bool)> = scored
            .iter()
            .filter(|s| s.2 == f)
            .map(|s| (s.0, s.1))
            .collect();
        let t = if train.is_empty() {
            best_threshold(&test)
        } else {
            best_threshold(&train)
        };
        fold_threshold.push(t);
        fold_accuracy.push(accuracy_at(&test, t));
    }
    let n = fold_accuracy.len().max(1) as f64;
    let mean = fold_accuracy.iter().sum::<f64>() / n;
    let var = fold_accuracy
        .iter()
        .map(|a| (a - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0).max(1.0);
    let all: Vec<(f64, bool)> = scored.iter().map(|s| (s.0, s.1)).collect();
    let roc = roc_curve(&all);
    VerificationReport {
        mean_accuracy: mean,
        std_accuracy: var.sqrt(),
        fold_accuracy,
        fold_threshold,
        best_threshold: best_threshold(&all),
        auc: auc(&roc),
        eer: eer(&roc),
        tar_at_far_1e3: roc
            .iter()
            .filter(|p| p.0 <= 1e-3)
            .map(|p| p.1)
            .fold(0.0, f64::max),
        roc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_view2_layout() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pairs.txt");
        std::fs::write(&p, "2\t1\nA\t1\t2\nB\t1\tC\t3\nD\t2\t4\nE\t1\tF\t1\n").unwrap();
        let pairs = read_pairs(&p).unwrap();
        assert_eq!(pairs.len(), 4);
        assert_eq!(pairs[0].a, PathBuf::from("A/A_0001.jpg"));
        assert!(pairs[0].same && !pairs[1].same);
        assert_eq!(pairs[1].b, PathBuf::from("C/C_0003.jpg"));
        assert_eq!((pairs[2].fold, pairs[3].fold), (1, 1));
        assert_eq!(unique_images(&pairs).len(), 8);
        std::fs::write(&p, "1\t1\nA\t1\n").unwrap();
        let err = read_pairs(&p).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    /// Reference: accuracy = fraction of pairs with (d <= t) == same, maximised over t by
    /// brute force over every candidate midpoint.
    #[test]
    fn downscaled_copies_have_the_asked_face_width() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("images");
        let rel = image_path("Ann", 1);
        std::fs::create_dir_all(src.join("Ann")).unwrap();
        image::RgbImage::from_pixel(250, 250, image::Rgb([9, 99, 199]))
            .save(src.join(&rel))
            .unwrap();
        let pairs = [Pair {
            a: rel.clone(),
            b: rel.clone(),
            same: true,
            fold: 0,
        }];
        let dest = dir.path().join("small");
        downscaled_copy(&src, &pairs, 40.0, &dest, &crate::NoProgress).unwrap();
        // 250 * 40 / 110 = 90.9: a 91x91 image, PNG under the pairs' name.
        let got = crate::data::image_file::load_rgb(&dest.join(&rel)).unwrap();
        assert_eq!(got.dimensions(), (91, 91));
        let px = got.get_pixel(45, 45).0;
        assert!(
            px.iter()
                .zip([9u8, 99, 199])
                .all(|(a, b)| a.abs_diff(b) <= 1),
            "{px:?}"
        );
        let bytes = std::fs::read(dest.join(&rel)).unwrap();
        assert_eq!(&bytes[..4], b"\x89PNG");
        assert!(downscaled_copy(&src, &pairs, 0.0, &dest, &crate::NoProgress).is_err());
    }

    #[test]
    fn best_threshold_matches_brute_force() {
        let d = vec![
            (0.1, true),
            (0.3, true),
            (0.35, false),
            (0.4, true),
            (0.8, false),
            (0.9, false),
        ];
        let t = best_threshold(&d);
        let mut cands: Vec<f64> = d.iter().map(|x| x.0 + 1e-9).collect();
        cands.push(0.0);
        let brute = cands
            .iter()
            .map(|&c| accuracy_at(&d, c))
            .fold(0.0, f64::max);
        assert!((accuracy_at(&d, t) - brute).abs() < 1e-12);
        assert!((accuracy_at(&d, t) - 5.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn roc_auc_eer_of_separable_and_random_scores() {
        let sep = vec![(0.1, true), (0.2, true), (0.8, false), (0.9, false)];
        let roc = roc_curve(&sep);
        assert_eq!(auc(&roc), 1.0);
        assert_eq!(eer(&roc), 0.0);
        // Interleaved: AUC = P(d_same < d_diff) = 3/4 by counting pairs.
        let mix = vec![(0.1, true), (0.2, false), (0.3, true), (0.4, false)];
        assert!((auc(&roc_curve(&mix)) - 0.75).abs() < 1e-12);
        let r = evaluate(&[
            (0.1, true, 0),
            (0.9, false, 0),
            (0.2, true, 1),
            (0.8, false, 1),
        ]);
        assert_eq!(r.mean_accuracy, 1.0);
        assert_eq!(r.tar_at_far_1e3, 1.0);
    }
}
