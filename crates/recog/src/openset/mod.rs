//! Open-set digit recognition: name the digit, or say "unknown".
//!
//! Three decision rules on top of a trained embedding network:
//! - `Head`: the notebook's small classifier (Dense 32 relu -> Dense 11 softmax) trained on
//!   embeddings of digits plus an "unknown" class drawn from non-digit images;
//! - `Distance`: no unknown data needed; the nearest class centre in embedding space, rejected
//!   beyond a threshold calibrated on held-out digits for a target false-reject rate;
//! - `Both`: the head and the distance test must both accept.
//!
//! A fitted [`DigitRecognizer`] is one JSON file that records the SHA-256 of the embedding
//! checkpoint it belongs to; using it with another checkpoint is refused.
//!
//! ```
//! use recog::openset::{calibrate_threshold, nearest_centre};
//! let centres = vec![vec![0.0, 0.0], vec![10.0, 0.0]];
//! assert_eq!(nearest_centre(&[9.0, 0.0], &centres), (1, 1.0));
//! // The threshold that rejects 10% of 10 genuine distances rejects one.
//! let d: Vec<f32> = (1..=10).map(|i| i as f32).collect();
//! let t = calibrate_threshold(&d, 0.1);
//! assert_eq!(d.iter().filter(|&&x| x > t).count(), 1);
//! ```

pub mod committee;
pub mod head;
pub mod logo;
pub mod rules;
pub mod tasks;

/// Training digits held out at the end of MNIST's training split to calibrate the thresholds
/// ([`tasks::FitSettings::calibration`]'s default); no outlier-exposure source draws on them.
pub const CALIBRATION_DIGITS: usize = 5000;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metric::distance::euclidean;

/// The decision rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The 11-class head.
    Head,
    /// Class centres with a calibrated rejection threshold: the default for D > 3
    /// ([`tasks::default_method`]).
    Distance,
    /// Both must accept: the default for D <= 3 ([`tasks::default_method`]).
    Both,
    /// Energy of the head's digit logits, calibrated ([`rules::energy`]).
    Energy,
    /// Distance to the 5th nearest fitting digit, calibrated ([`rules::Knn`]). Not for an
    /// embedding trained with a prototype loss: about a third of held-out letters and kana
    /// then passed it at a 1% target (README).
    Knn,
    /// Class-conditional Mahalanobis distance, calibrated ([`rules::Mahalanobis`]). Not for a
    /// committee with views: its shared covariance is then nearly singular.
    Mahalanobis,
    /// The head must accept, and the largest quantile of energy, k-NN and Mahalanobis among
    /// held-out digits must be under its calibrated threshold (the default for D > 3 with
    /// the one-block recipe, for its best worst held-out generator).
    Ensemble,
}

impl Method {
    /// All methods, for comparisons.
    pub const ALL: [Method; 7] = [
        Method::Head,
        Method::Distance,
        Method::Both,
        Method::Energy,
        Method::Knn,
        Method::Mahalanobis,
        Method::Ensemble,
    ];

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Head => "head",
            Method::Distance => "distance",
            Method::Both => "both",
            Method::Energy => "energy",
            Method::Knn => "knn",
            Method::Mahalanobis => "mahalanobis",
            Method::Ensemble => "ensemble",
        }
    }
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The digit, or `None` for unknown.
    pub label: Option<u32>,
    /// The nearest digit whatever the decision (closed-set answer).
    pub nearest: u32,
    /// Distance to the nearest class centre.
    pub distance: f32,
    /// The head's probability of its answer (digit or unknown).
    pub score: f32,
    /// The head's probability of "unknown".
    pub p_unknown: f32,
    /// Known-vs-unknown score of the method: higher means more likely unknown; 1 is the
    /// decision boundary.
    pub unknown_score: f32,
}

/// A fitted open-set recogniser.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DigitRecognizer {
    /// File format version.
    pub version: u32,
    /// The embedding checkpoint folder it was fit on (informative).
    pub checkpoint: PathBuf,
    /// SHA-256 of that checkpoint's `model.bpk`.
    pub checkpoint_sha256: String,
    /// Embedding dimension.
    pub dim: usize,
    /// Default decision rule.
    pub method: Method,
    /// Digit class names.
    pub classes: Vec<String>,
    /// Class centres in embedding space, `[classes][dim]`.
    pub centres: Vec<Vec<f32>>,
    /// Rejection threshold on the distance to the nearest centre.
    pub threshold: f32,
    /// False-reject rate the threshold was calibrated for.
    pub target_frr: f64,
    /// False-reject rate measured on the calibration digits.
    pub calibration_frr: f64,
    /// The 11-class head.
    pub head: head::HeadWeights,
    /// What the unknown class was fit on.
    pub unknown_sources: Vec<String>,
    /// The score rules (energy, k-NN, Mahalanobis, ensemble); absent in recognizers fit
    /// before they existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<rules::ScoreRules>,
}

/// Class centres: the mean embedding of each class, renormalised when the embeddings are
/// unit-length (so centres live on the same sphere).
pub fn class_centres(
    emb: &[f32],
    labels: &[u32],
    dim: usize,
    n_classes: usize,
    normalized: bool,
) -> Vec<Vec<f32>> {
    let mut c = vec![vec![0f64; dim]; n_classes];
    let mut n = vec![0usize; n_classes];
    for (row, &l) in emb.chunks(dim).zip(labels) {
        n[l as usize] += 1;
        for (a, &v) in c[l as usize].iter_mut().zip(row) {
            *a += v as f64;
        }
    }
    c.iter()
        .zip(&n)
        .map(|(v, &k)| {
            let mut m: Vec<f32> = v.iter().map(|a| (a / k.max(1) as f64) as f32).collect();
            if normalized {
                let norm = m.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                m.iter_mut().for_each(|x| *x /= norm);
            }
            m
        })
        .collect()
}

/// Nearest centre and its distance.
pub fn nearest_centre(x: &[f32], centres: &[Vec<f32>]) -> (u32, f32) {
    let mut best = (0u32, f32::INFINITY);
    for (i, c) in centres.iter().enumerate() {
        let d = euclidean(x, c);
        if d < best.1 {
            best = (i as u32, d);
        }
    }
    best
}

/// The threshold under which a fraction `1 - target_frr` of `distances` falls.
pub fn calibrate_threshold(distances: &[f32], target_frr: f64) -> f32 {
    if distances.is_empty() {
        return f32::INFINITY;
    }
    let mut d = distances.to_vec();
    d.sort_by(f32::total_cmp);
    let k = (((1.0 - target_frr) * d.len() as f64).ceil() as usize).clamp(1, d.len());
    d[k - 1]
}

impl DigitRecognizer {
    /// Saves as JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let s = serde_json::to_string(self).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        std::fs::write(path, s).map_err(|e| Error::io(path, e))
    }

    /// Loads a recogniser and checks that it belongs to the checkpoint whose `model.bpk` is
    /// `model_file`.
    pub fn load_for(path: &Path, model_file: &Path) -> Result<Self> {
        let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let r: DigitRecognizer = serde_json::from_str(&s).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        let sha = crate::digest::sha256_file(model_file)?;
        if sha != r.checkpoint_sha256 {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                problem: format!(
                    "this recognizer was fit on the checkpoint {} (model sha256 {}…), not on {} (sha256 {}…); fit it again with `recog digits fit`",
                    r.checkpoint.display(),
                    crate::digest::short(&r.checkpoint_sha256),
                    model_file.display(),
                    crate::digest::short(&sha)
                ),
            });
        }
        r.check_shapes().map_err(|problem| Error::Checkpoint {
            path: path.to_path_buf(),
            problem,
        })?;
        Ok(r)
    }

    /// Checks that every array has the size its dimensions say, so that an edited or
    /// truncated file is refused on load instead of panicking on a slice index later. The
    /// problem names the field with the size expected and the size found.
    pub fn check_shapes(&self) -> std::result::Result<(), String> {
        let size = |field: &str, expected: Option<usize>, got: usize| match expected {
            Some(e) if e == got => Ok(()),
            Some(e) => Err(format!("{field} holds {got} values, expected {e}")),
            None => Err(format!("the size of {field} overflows")),
        };
        let equal = |field: &str, expected: usize, got: usize| {
            if expected == got {
                Ok(())
            } else {
                Err(format!("{field} is {got}, expected {expected}"))
            }
        };
        let d = self.dim;
        let k = self.classes.len();
        if d == 0 || k == 0 {
            return Err(format!(
                "a recognizer needs dim >= 1 and at least one class, got dim {d} and {k} classes"
            ));
        }
        size("centres", Some(k), self.centres.len())?;
        for (i, c) in self.centres.iter().enumerate() {
            size(&format!("centres[{i}]"), Some(d), c.len())?;
        }
        let h = &self.head;
        equal("head.d_in", d, h.d_in)?;
        equal("head.d_out", k.saturating_add(1), h.d_out)?;
        size("head.w1", d.checked_mul(h.hidden), h.w1.len())?;
        size("head.b1", Some(h.hidden), h.b1.len())?;
        size("head.w2", h.hidden.checked_mul(h.d_out), h.w2.len())?;
        size("head.b2", Some(h.d_out), h.b2.len())?;
        if let Some(r) = &self.rules {
            equal("rules.knn.dim", d, r.knn.dim)?;
            let refs = r.knn.refs.len() / d;
            if r.knn.refs.len() % d != 0 || r.knn.k == 0 || r.knn.k > refs {
                return Err(format!(
                    "rules.knn holds {} values for k = {}: it needs at least k whole {d}-value references",
                    r.knn.refs.len(),
                    r.knn.k
                ));
            }
            let m = &r.mahalanobis;
            equal("rules.mahalanobis.dim", d, m.dim)?;
            size("rules.mahalanobis.means", Some(k), m.means.len())?;
            for (i, c) in m.means.iter().enumerate() {
                size(&format!("rules.mahalanobis.means[{i}]"), Some(d), c.len())?;
            }
            size(
                "rules.mahalanobis.precision",
                d.checked_mul(d),
                m.precision.len(),
            )?;
        }
        Ok(())
    }

    /// Whether this recognizer carries what `method` needs (recognizers fit before the score
    /// rules existed carry only the head and the centres).
    pub fn supports(&self, method: Method) -> bool {
        matches!(method, Method::Head | Method::Distance | Method::Both) || self.rules.is_some()
    }

    /// An error naming the fix when `method` is not [`DigitRecognizer::supports`]ed.
    pub fn check_supports(&self, method: Method) -> Result<()> {
        if self.supports(method) {
            return Ok(());
        }
        Err(Error::InvalidArgument(format!(
            "this recognizer has no {} rule (it was fit by an older recog); fit it again with `recog digits fit`",
            method.name()
        )))
    }

    /// Decides for one embedding with `method`. A method the recognizer does not
    /// [`DigitRecognizer::supports`] answers with the head.
    pub fn predict(&self, x: &[f32], method: Method) -> Prediction {
        let (nearest, distance) = nearest_centre(x, &self.centres);
        let logits = self.head.logits(x);
        let probs = head::softmax(&logits);
        let unknown = probs.len() - 1;
        let (arg, pmax) = argmax(&probs);
        let best_digit = argmax(&probs[..unknown]).0 as u32;
        let p_unknown = probs[unknown];
        let dist_score = distance / self.threshold.max(1e-12);
        // The head rejects when "unknown" wins; 2 * p_unknown crosses 1 near that boundary.
        let head_score = if arg == unknown {
            1.0 + p_unknown
        } else {
            p_unknown / pmax.max(1e-12)
        };
        let head_label = (arg != unknown).then_some(arg as u32);
        let by_score =
            |score: f32, threshold: f32| ((score <= threshold).then_some(best_digit), score);
        let (label, unknown_score) = match (method, &self.rules) {
            (Method::Distance, _) => ((distance <= self.threshold).then_some(nearest), dist_score),
            (Method::Both, _) => (
                head_label.filter(|_| distance <= self.threshold),
                dist_score.max(head_score),
            ),
            (Method::Energy, Some(r)) => {
                by_score(rules::energy(&logits[..unknown]), r.energy.threshold)
            }
            (Method::Knn, Some(r)) => by_score(r.knn.score(x), r.knn_calibration.threshold),
            (Method::Mahalanobis, Some(r)) => {
                by_score(r.mahalanobis.score(x), r.mahalanobis_calibration.threshold)
            }
            (Method::Ensemble, Some(r)) => {
                let q = r.ensemble_score(&r.scores(x, &logits[..unknown]));
                let rejected_by_head = head_label.is_none();
                (
                    head_label.filter(|_| q <= r.ensemble.threshold),
                    q + if rejected_by_head { 1.0 } else { 0.0 },
                )
            }
            _ => (head_label, head_score),
        };
        Prediction {
            label,
            nearest,
            distance,
            score: pmax,
            p_unknown,
            unknown_score,
        }
    }
}

/// The index and value of the largest entry; the first one on ties.
fn argmax(v: &[f32]) -> (usize, f32) {
    v.iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b })
}

/// A rule's decision for one embedding before its threshold: what a different target
/// false-reject rate would decide ([`DigitRecognizer::rule_score`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleScore {
    /// The score the rule thresholds: above [`DigitRecognizer::rule_threshold`], unknown.
    pub score: f32,
    /// The head says unknown, which `both` and `ensemble` obey whatever the threshold.
    pub gated: bool,
    /// The digit named when the embedding is accepted.
    pub label: u32,
}

impl DigitRecognizer {
    /// The threshold-free view of `method` on `x`, for rules with a calibrated threshold
    /// (not `head`, nor a score rule the recognizer lacks): rejected exactly when
    /// `gated || score > threshold`, and then [`Self::predict`] agrees.
    pub fn rule_score(&self, x: &[f32], method: Method) -> Option<RuleScore> {
        let k = self.classes.len();
        let logits = self.head.logits(x);
        // On the probabilities, as in `predict`, so that ties break alike.
        let probs = head::softmax(&logits);
        let head_says_unknown = argmax(&probs).0 == k;
        let best_digit = argmax(&probs[..k]).0 as u32;
        let (nearest, distance) = nearest_centre(x, &self.centres);
        let r = self.rules.as_ref();
        let (score, gated, label) = match method {
            Method::Head => return None,
            Method::Distance => (distance, false, nearest),
            // `both` names the head's digit, which the head accepted.
            Method::Both => (distance, head_says_unknown, best_digit),
            Method::Energy => (rules::energy(&logits[..k]), false, best_digit),
            Method::Knn => (r?.knn.score(x), false, best_digit),
            Method::Mahalanobis => (r?.mahalanobis.score(x), false, best_digit),
            Method::Ensemble => {
                let r = r?;
                let q = r.ensemble_score(&r.scores(x, &logits[..k]));
                (q, head_says_unknown, best_digit)
            }
        };
        Some(RuleScore {
            score,
            gated,
            label,
        })
    }

    /// The calibrated threshold on [`Self::rule_score`]'s scale.
    pub fn rule_threshold(&self, method: Method) -> Option<f32> {
        let r = self.rules.as_ref();
        match method {
            Method::Head => None,
            Method::Distance | Method::Both => Some(self.threshold),
            Method::Energy => Some(r?.energy.threshold),
            Method::Knn => Some(r?.knn_calibration.threshold),
            Method::Mahalanobis => Some(r?.mahalanobis_calibration.threshold),
            Method::Ensemble => Some(r?.ensemble.threshold),
        }
    }
}

/// Open-set figures of one method on digits plus one unknown set.
#[derive(Debug, Clone, Serialize)]
pub struct OpenSetReport {
    /// The method.
    pub method: Method,
    /// The unknown set's name.
    pub unknown_set: String,
    /// Digits named correctly (a rejected digit counts as wrong).
    pub digit_accuracy: f64,
    /// Digits rejected as unknown.
    pub digit_rejection: f64,
    /// Unknown images rejected.
    pub unknown_rejection: f64,
    /// Correct answers over digits and unknowns together.
    pub overall_accuracy: f64,
    /// AUROC of the method's unknown score, unknown vs digit.
    pub auroc: f64,
    /// Closed-set accuracy of the nearest centre (the notebook's protocol without "unknown").
    pub closed_set_accuracy: f64,
    /// Confusion counts `[true][predicted]`, 11 x 11, index 10 = unknown.
    pub confusion: Vec<Vec<usize>>,
    /// The unknown set's rejection per kind of image (a fragment kind, a letter), in the
    /// set's class order.
    pub by_kind: Vec<KindRejection>,
}

/// How much of one kind of unknown image a rule rejected.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindRejection {
    /// The kind's name (`two digits`, `m`, ...).
    pub kind: String,
    /// Images of this kind.
    pub images: usize,
    /// The fraction rejected.
    pub rejected: f64,
}

/// An unknown set's embeddings with the kind of each image.
#[derive(Debug, Clone, Copy)]
pub struct UnknownEmbeddings<'a> {
    /// The set's name.
    pub name: &'a str,
    /// Embeddings, `[n][dim]`.
    pub embeddings: &'a [f32],
    /// The kind of each image, an index into `kinds`.
    pub labels: &'a [u32],
    /// The kinds' names.
    pub kinds: &'a [String],
}

/// Scores digits (with labels) and unknowns with one method.
pub fn evaluate(
    rec: &DigitRecognizer,
    method: Method,
    digits: &[f32],
    digit_labels: &[u32],
    unknown: UnknownEmbeddings<'_>,
) -> OpenSetReport {
    let d = rec.dim;
    let k = rec.classes.len();
    let mut conf = vec![vec![0usize; k + 1]; k + 1];
    let mut scores = Vec::new();
    let mut positive = Vec::new();
    let (mut correct, mut rejected, mut closed) = (0usize, 0usize, 0usize);
    for (x, &l) in digits.chunks(d).zip(digit_labels) {
        let p = rec.predict(x, method);
        let col = p.label.map_or(k, |v| v as usize);
        conf[l as usize][col] += 1;
        correct += (p.label == Some(l)) as usize;
        rejected += p.label.is_none() as usize;
        closed += (p.nearest == l) as usize;
        scores.push(p.unknown_score);
        positive.push(false);
    }
    let mut rej_u = 0usize;
    let mut kinds = vec![(0usize, 0usize); unknown.kinds.len()];
    for (i, x) in unknown.embeddings.chunks(d).enumerate() {
        let p = rec.predict(x, method);
        let col = p.label.map_or(k, |v| v as usize);
        conf[k][col] += 1;
        rej_u += p.label.is_none() as usize;
        if let Some(c) = unknown
            .labels
            .get(i)
            .and_then(|&l| kinds.get_mut(l as usize))
        {
            c.0 += 1;
            c.1 += p.label.is_none() as usize;
        }
        scores.push(p.unknown_score);
        positive.push(true);
    }
    let nd = digit_labels.len().max(1) as f64;
    let nu = (unknown.embeddings.len() / d.max(1)).max(1) as f64;
    let by_kind = unknown
        .kinds
        .iter()
        .zip(&kinds)
        .filter(|(_, c)| c.0 > 0)
        .map(|(kind, c)| KindRejection {
            kind: kind.clone(),
            images: c.0,
            rejected: c.1 as f64 / c.0 as f64,
        })
        .collect();
    OpenSetReport {
        method,
        unknown_set: unknown.name.to_string(),
        digit_accuracy: correct as f64 / nd,
        digit_rejection: rejected as f64 / nd,
        unknown_rejection: rej_u as f64 / nu,
        overall_accuracy: (correct + rej_u) as f64 / (nd + nu),
        auroc: crate::eval::roc::auroc(&scores, &positive),
        closed_set_accuracy: closed as f64 / nd,
        confusion: conf,
        by_kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_meets_target_frr() {
        let d: Vec<f32> = (1..=100).map(|i| i as f32).collect();
        let t = calibrate_threshold(&d, 0.05);
        assert_eq!(t, 95.0);
        let frr = d.iter().filter(|&&x| x > t).count() as f64 / 100.0;
        assert!(frr <= 0.05);
    }

    #[test]
    fn centres_and_nearest() {
        let e = [0.0, 1.0, 0.0, 3.0, 4.0, 0.0];
        let c = class_centres(&e, &[0, 0, 1], 2, 2, false);
        assert_eq!(c, vec![vec![0.0, 2.0], vec![4.0, 0.0]]);
        assert_eq!(nearest_centre(&[3.0, 0.5], &c), (1, (1.0f32 + 0.25).sqrt()));
    }

    fn fitted() -> DigitRecognizer {
        // Three classes around (0,0), (4,0) and (0,4); unknowns around (8,8).
        let jitter = |i: usize, p: usize| ((i * p) % 101) as f32 / 101.0 - 0.5;
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..900 {
            let c = i % 3;
            let (cx, cy) = [(0.0, 0.0), (4.0, 0.0), (0.0, 4.0)][c];
            x.extend([cx + jitter(i, 7919), cy + jitter(i, 104_729)]);
            y.push(c as u32);
        }
        let u: Vec<f32> = (0..300)
            .flat_map(|i| [8.0 + jitter(i, 31), 8.0 + jitter(i, 37)])
            .collect();
        let classes = ["0", "1", "2"].map(String::from);
        tasks::fit_recognizer(
            &tasks::FitData {
                digits: &x,
                labels: &y,
                classes: &classes,
                unknown: &u,
                dim: 2,
                normalized: false,
            },
            &tasks::FitSettings {
                method: Method::Both,
                target_frr: 0.02,
                calibration: 150,
                head_epochs: 40,
                seed: 1,
            },
            &crate::NoProgress,
        )
        .unwrap()
    }

    /// The sweep of `eval-logo` re-thresholds `rule_score`; at the fitted threshold it must
    /// decide what `predict` decides, rule by rule.
    #[test]
    fn rule_scores_at_the_fitted_threshold_decide_as_predict() {
        let r = fitted();
        // The same recognizer with a head that says unknown everywhere: `both` and
        // `ensemble` must then reject what their thresholds accept.
        let mut gated = r.clone();
        let k = gated.classes.len();
        gated.head.b2[k] += 50.0;
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
        let mut u = |a: f32, b: f32| rand::Rng::random_range(&mut rng, a..b);
        for i in 0..600 {
            // Half anywhere, half near a class centre, where the thresholds accept.
            let x: Vec<f32> = if i % 2 == 0 {
                vec![u(-6.0, 6.0), u(-6.0, 6.0)]
            } else {
                let c = &r.centres[i % 3];
                vec![c[0] + u(-0.3, 0.3), c[1] + u(-0.3, 0.3)]
            };
            for rec in [&r, &gated] {
                for m in Method::ALL {
                    let p = rec.predict(&x, m);
                    match (rec.rule_score(&x, m), rec.rule_threshold(m)) {
                        (Some(s), Some(t)) => {
                            let accepted = !(s.gated || s.score > t);
                            assert_eq!(p.label, accepted.then_some(s.label), "{m:?} {x:?}");
                        }
                        (None, None) => assert_eq!(m, Method::Head),
                        other => panic!("{m:?}: {other:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn every_rule_names_a_digit_and_rejects_the_unknown_cluster() {
        let rec = fitted();
        for m in Method::ALL {
            assert!(rec.supports(m));
            assert_eq!(rec.predict(&[4.0, 0.1], m).label, Some(1), "{m:?}");
            assert_eq!(rec.predict(&[8.0, 8.0], m).label, None, "{m:?}");
        }
    }

    /// Recognizers saved before the score rules existed still load, and say which rules they
    /// lack instead of answering with another one silently.
    #[test]
    fn a_recognizer_without_score_rules_loads_and_names_what_it_lacks() {
        let mut v = serde_json::to_value(fitted()).unwrap();
        v.as_object_mut().unwrap().remove("rules");
        let old: DigitRecognizer = serde_json::from_value(v).unwrap();
        assert!(old.supports(Method::Both) && !old.supports(Method::Knn));
        let e = old
            .check_supports(Method::Ensemble)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ensemble") && e.contains("recog digits fit"),
            "{e}"
        );
    }

    /// A recognizer file whose arrays disagree with its dimensions loaded, then panicked on a
    /// slice index in the head or the k-NN rule; each such edit is now refused on load, with
    /// the field named.
    #[test]
    fn a_recognizer_whose_arrays_disagree_with_its_sizes_is_refused_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let weights = dir.path().join("model.bpk");
        std::fs::write(&weights, b"weights").unwrap();
        let sha = crate::digest::sha256_file(&weights).unwrap();
        let p = dir.path().join("recognizer.json");
        let load = |r: &DigitRecognizer| {
            std::fs::write(&p, serde_json::to_string(r).unwrap()).unwrap();
            DigitRecognizer::load_for(&p, &weights).map(|_| ())
        };
        let mut good = fitted();
        good.checkpoint_sha256 = sha;
        assert!(load(&good).is_ok());
        type Edit = fn(&mut DigitRecognizer);
        let edits: [(&str, Edit); 9] = [
            ("centres[1]", |r| {
                r.centres[1].pop();
            }),
            ("centres", |r| {
                r.centres.pop();
            }),
            ("head.w1", |r| r.head.w1.truncate(3)),
            ("head.b2", |r| {
                r.head.b2.pop();
            }),
            ("head.d_out", |r| r.head.d_out = 0),
            ("rules.knn", |r| r.rules.as_mut().unwrap().knn.k = 1_000_000),
            ("rules.knn.dim", |r| r.rules.as_mut().unwrap().knn.dim = 0),
            ("rules.mahalanobis.precision", |r| {
                r.rules.as_mut().unwrap().mahalanobis.precision.pop();
            }),
            ("dim", |r| r.dim = 0),
        ];
        for (field, edit) in edits {
            let mut r = good.clone();
            edit(&mut r);
            let e = load(&r).unwrap_err().to_string();
            assert!(
                e.contains(field) && e.contains("recognizer.json"),
                "{field}: {e}"
            );
        }
    }

    /// The refusal message quoted the recorded digest by byte slicing, so a recognizer file
    /// whose digest field held non-ASCII text panicked instead of being refused.
    #[test]
    fn a_recognizer_with_a_non_ascii_digest_is_refused_without_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let weights = dir.path().join("model.bpk");
        std::fs::write(&weights, b"weights").unwrap();
        let mut r = fitted();
        r.checkpoint_sha256 = "xéééééééé".into();
        let p = dir.path().join("recognizer.json");
        std::fs::write(&p, serde_json::to_string(&r).unwrap()).unwrap();
        let e = DigitRecognizer::load_for(&p, &weights)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("xéééééééé"), "{e}");
    }
}
