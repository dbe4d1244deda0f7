//! One-shot open-set identification (the watch-list protocol): one photo per enrolled
//! person; probes of enrolled people should be named, probes of people never enrolled should
//! be answered `unknown`.
//!
//! ```
//! use recog::eval::openset_id::evaluate_open_set;
//! use recog::gallery::Rule;
//! let enrolled = vec![("a".to_string(), vec![0.0, 0.0]), ("b".to_string(), vec![10.0, 0.0])];
//! let known = vec![("a".to_string(), vec![0.5, 0.0])];
//! let unknown = vec![vec![5.0, 50.0]];
//! let r = evaluate_open_set(&enrolled, &known, &unknown, 0.0, Rule::Distance, 0.6).unwrap();
//! assert_eq!(r.rank1_closed_set, 1.0);
//! assert_eq!(r.unknown_rejected_at_threshold, 1.0);
//! ```

use serde::{Deserialize, Serialize};

use crate::gallery::{calibrate_rule, impostor_pairs, Acceptance, Calibration, Index, Match, Rule};
use crate::metric::Distance;
use crate::Result;

/// Open-set identification figures (watch-list protocol): one photo per enrolled person,
/// probes of enrolled people (should be named) and of people never enrolled (should be
/// `unknown`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenSetIdReport {
    /// Enrolled people.
    pub enrolled: usize,
    /// Probes of enrolled people.
    pub known_probes: usize,
    /// Probes of people never enrolled.
    pub unknown_probes: usize,
    /// The calibration used (leave-one-person-out impostor scores of the enrolled photos,
    /// under the evaluated rule).
    pub calibration: Calibration,
    /// Rank-1 detection-and-identification rate at the calibrated threshold.
    pub dir_at_threshold: f64,
    /// Fraction of never-enrolled probes answered `unknown` at the calibrated threshold.
    pub unknown_rejected_at_threshold: f64,
    /// Rank-1 identification rate without a threshold (closed set).
    pub rank1_closed_set: f64,
    /// 95% interval of [`Self::dir_at_threshold`] (the bootstrap of [`BOOTSTRAP_RESAMPLES`]).
    #[serde(default)]
    pub dir_interval: [f64; 2],
    /// 95% interval of [`Self::unknown_rejected_at_threshold`] (the bootstrap of
    /// [`BOOTSTRAP_RESAMPLES`]).
    #[serde(default)]
    pub unknown_rejected_interval: [f64; 2],
    /// The curve: (FAR on never-enrolled probes, DIR), one point per distinct threshold of the
    /// rule's score.
    pub curve: Vec<(f64, f64)>,
}

/// Evaluates open-set identification; `far` is the calibration target.
/// `verify` is the model's Euclidean verification distance (the ratio rule's cap).
pub fn evaluate_open_set(
    enrolled: &[(String, Vec<f32>)],
    known: &[(String, Vec<f32>)],
    unknown: &[Vec<f32>],
    far: f64,
    rule: Rule,
    verify: f32,
) -> Result<OpenSetIdReport> {
    let metric = Distance::Euclidean;
    let pairs = impostor_pairs(enrolled, enrolled, metric);
    let calibration = if pairs.is_empty() {
        Calibration {
            threshold: 0.6,
            far,
            impostors: 0,
            metric,
            source: None,
            rule: Rule::Distance,
            verification_distance: None,
        }
    } else {
        calibrate_rule(&pairs, far, metric, rule, verify, "gallery")
    };
    let cap = calibration.acceptance().verification_distance;
    let index = Index::new(enrolled, metric)?;
    let t = calibration.threshold;
    let score = |m: &Match| {
        if m.distance > cap {
            f32::INFINITY
        } else {
            Acceptance::score(rule, m.distance, m.runner_up)
        }
    };
    // (score, correct identity) for known probes; the score for unknown probes.
    let known_scored: Vec<(f32, bool)> = known
        .iter()
        .map(|(name, q)| {
            let m = index.search(q, f32::MAX)?;
            Ok((score(&m), m.nearest.as_deref() == Some(name.as_str())))
        })
        .collect::<Result<_>>()?;
    let unknown_d: Vec<f32> = unknown
        .iter()
        .map(|q| Ok(score(&index.search(q, f32::MAX)?)))
        .collect::<Result<_>>()?;
    let nk = known_scored.len().max(1) as f64;
    let nu = unknown_d.len().max(1) as f64;
    let dir_at = |th: f32| {
        known_scored
            .iter()
            .filter(|(d, ok)| *ok && *d <= th)
            .count() as f64
            / nk
    };
    let far_at = |th: f32| unknown_d.iter().filter(|&&d| d <= th).count() as f64 / nu;
    let mut ths: Vec<f32> = unknown_d
        .iter()
        .copied()
        .filter(|d| d.is_finite())
        .collect();
    ths.sort_by(|a, b| a.total_cmp(b));
    ths.dedup();
    let mut curve: Vec<(f64, f64)> =
        vec![(0.0, dir_at(ths.first().copied().unwrap_or(0.0) - 1e-6))];
    let step = (ths.len() / 500).max(1);
    for th in ths.iter().step_by(step) {
        curve.push((far_at(*th), dir_at(*th)));
    }
    curve.push((far_at(f32::MAX), dir_at(f32::MAX)));
    let (dir_interval, unknown_rejected_interval) = bootstrap_intervals(
        enrolled,
        known,
        &known_scored,
        &unknown_d,
        &pairs,
        &calibration,
        verify,
    );
    Ok(OpenSetIdReport {
        dir_interval,
        unknown_rejected_interval,
        enrolled: enrolled.len(),
        known_probes: known.len(),
        unknown_probes: unknown.len(),
        dir_at_threshold: dir_at(t),
        unknown_rejected_at_threshold: 1.0 - far_at(t),
        rank1_closed_set: known_scored.iter().filter(|(_, ok)| *ok).count() as f64 / nk,
        calibration,
        curve,
    })
}

/// Resamples behind [`OpenSetIdReport::dir_interval`] and
/// [`OpenSetIdReport::unknown_rejected_interval`]: 95% percentile-bootstrap intervals of DIR
/// and of the strangers' rejection at the calibrated threshold, i.e. how far the two figures
/// would move with other people of the same kind. Each resample draws the enrolled people
/// with replacement, each with its calibration score and all its probes (so the threshold
/// is calibrated again, on the drawn scores), and the strangers with replacement; the
/// gallery that is searched stays the same. Probes of one person are not independent, hence
/// the draw by person. The seed is fixed, so that a report is reproducible.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// The intervals of [`BOOTSTRAP_RESAMPLES`].
fn bootstrap_intervals(
    enrolled: &[(String, Vec<f32>)],
    known: &[(String, Vec<f32>)],
    known_scored: &[(f32, bool)],
    unknown_scores: &[f32],
    pairs: &[(f32, Option<f32>)],
    calibration: &Calibration,
    verify: f32,
) -> ([f64; 2], [f64; 2]) {
    use rand::{Rng, SeedableRng};
    // Calibration scores come one per enrolled photo, in order, unless a gallery of one
    // person gave none: then only the test side is resampled.
    let recalibrate = pairs.len() == enrolled.len() && !pairs.is_empty();
    let row: std::collections::HashMap<&str, usize> = enrolled
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.as_str(), i))
        .collect();
    let mut probes_of: Vec<Vec<(f32, bool)>> = vec![Vec::new(); enrolled.len()];
    for ((name, _), scored) in known.iter().zip(known_scored) {
        if let Some(&i) = row.get(name.as_str()) {
            probes_of[i].push(*scored);
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let (mut dirs, mut rejected) = (Vec::new(), Vec::new());
    let mut drawn_pairs = Vec::with_capacity(pairs.len());
    for _ in 0..BOOTSTRAP_RESAMPLES {
        let drawn: Vec<usize> = (0..enrolled.len())
            .map(|_| rng.random_range(0..enrolled.len().max(1)))
            .collect();
        let t = if recalibrate {
            drawn_pairs.clear();
            drawn_pairs.extend(drawn.iter().map(|&i| pairs[i]));
            calibrate_rule(
                &drawn_pairs,
                calibration.far,
                calibration.metric,
                calibration.rule,
                verify,
                "bootstrap",
            )
            .threshold
        } else {
            calibration.threshold
        };
        let (mut named, mut total) = (0usize, 0usize);
        for &i in &drawn {
            if let Some(probes) = probes_of.get(i) {
                total += probes.len();
                named += probes.iter().filter(|(d, ok)| *ok && *d <= t).count();
            }
        }
        if total > 0 {
            dirs.push(named as f64 / total as f64);
        }
        if !unknown_scores.is_empty() {
            let n = unknown_scores.len();
            let kept = (0..n)
                .filter(|_| unknown_scores[rng.random_range(0..n)] > t)
                .count();
            rejected.push(kept as f64 / n as f64);
        }
    }
    (percentile_interval(dirs), percentile_interval(rejected))
}

/// The 2.5th and 97.5th percentiles (`[0, 0]` for no values).
fn percentile_interval(mut v: Vec<f64>) -> [f64; 2] {
    if v.is_empty() {
        return [0.0, 0.0];
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    [at(0.025), at(0.975)]
}

impl std::fmt::Display for LfwOpenSetReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.distance_rule;
        let speed = if self.embeddings_reused {
            ", embeddings reused".to_string()
        } else {
            format!(", {:.1} images/s", self.images as f64 / self.seconds)
        };
        writeln!(
            f,
            "{}: {} enrolled (1 photo each), {} probes of enrolled people, {} of never-enrolled people ({} images{speed})",
            self.model, r.enrolled, r.known_probes, r.unknown_probes, self.images
        )?;
        write!(
            f,
            "rank-1 without a threshold: {:.2}%",
            100.0 * r.rank1_closed_set
        )?;
        for (name, r) in [
            ("distance", &self.distance_rule),
            ("ratio", &self.ratio_rule),
        ] {
            write!(
                f,
                "\n{name} rule: threshold {:.4} (FAR {} per probe, from {} leave-one-person-out scores of the enrolled photos): DIR {:.2}% ({:.2}-{:.2}), never-enrolled answered unknown {:.2}% ({:.2}-{:.2})",
                r.calibration.threshold,
                r.calibration.far,
                r.calibration.impostors,
                100.0 * r.dir_at_threshold,
                100.0 * r.dir_interval[0],
                100.0 * r.dir_interval[1],
                100.0 * r.unknown_rejected_at_threshold,
                100.0 * r.unknown_rejected_interval[0],
                100.0 * r.unknown_rejected_interval[1],
            )?;
        }
        if self.distance_rule.unknown_probes > 0 {
            write!(
                f,
                "\n(in brackets: 95% intervals, {BOOTSTRAP_RESAMPLES} bootstrap resamples of the enrolled people with their probes and calibration scores, and of the strangers)"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod open_set_tests {
    use super::*;

    /// By hand: enrolled a at (0,0), b at (10,0); known probes a' at (0.5,0) (right, d 0.5) and
    /// b' at (4,0) (nearest a: wrong); unknown u at (5,5) (d sqrt(50)).
    #[test]
    fn dir_and_rejection_by_hand() {
        let enrolled = vec![
            ("a".to_string(), vec![0.0, 0.0]),
            ("b".to_string(), vec![10.0, 0.0]),
        ];
        let known = vec![
            ("a".to_string(), vec![0.5, 0.0]),
            ("b".to_string(), vec![4.0, 0.0]),
        ];
        let unknown = vec![vec![5.0, 5.0]];
        let r = evaluate_open_set(&enrolled, &known, &unknown, 0.0, Rule::Distance, 0.6).unwrap();
        // Each enrolled photo's nearest impostor is at 10; FAR 0 puts the threshold just below.
        assert!(r.calibration.threshold < 10.0 && r.calibration.threshold > 9.9);
        assert_eq!(r.rank1_closed_set, 0.5);
        assert_eq!(r.dir_at_threshold, 0.5);
        // sqrt(50) = 7.07 is below the threshold: the unknown probe is (wrongly) accepted.
        assert_eq!(r.unknown_rejected_at_threshold, 0.0);
        // One stranger, always accepted: every resample agrees.
        assert_eq!(r.unknown_rejected_interval, [0.0, 0.0]);
    }

    /// 200 people on a line 10-16 apart, two probes each at 0.5-7.7 from their photo along
    /// it, 300 strangers off the line at 0-13, FAR 10%: the intervals hold the figures, are not points, and
    /// narrow when there are four times as many strangers.
    #[test]
    fn bootstrap_intervals_hold_the_figures_and_narrow_with_more_strangers() {
        let place = |i: usize| 10.0 * i as f32 + (i * i % 7) as f32;
        let enrolled: Vec<(String, Vec<f32>)> = (0..200)
            .map(|i| (format!("p{i}"), vec![place(i), 0.0]))
            .collect();
        let known: Vec<(String, Vec<f32>)> = (0..400)
            .map(|j| {
                let i = j / 2;
                (
                    format!("p{i}"),
                    vec![place(i) + 0.5 + (j % 9) as f32 * 0.9, 0.0],
                )
            })
            .collect();
        let strangers = |n: usize| -> Vec<Vec<f32>> {
            (0..n)
                .map(|k| vec![(k as f32 * 7.3) % 2000.0, (k % 11) as f32 * 1.3])
                .collect()
        };
        let width = |iv: [f64; 2]| iv[1] - iv[0];
        let few = evaluate_open_set(&enrolled, &known, &strangers(300), 0.1, Rule::Distance, 0.6)
            .unwrap();
        for (point, iv) in [
            (few.dir_at_threshold, few.dir_interval),
            (
                few.unknown_rejected_at_threshold,
                few.unknown_rejected_interval,
            ),
        ] {
            assert!(iv[0] <= point && point <= iv[1], "{point} outside {iv:?}");
            assert!(width(iv) > 0.0, "{iv:?}");
        }
        let many = evaluate_open_set(
            &enrolled,
            &known,
            &strangers(1200),
            0.1,
            Rule::Distance,
            0.6,
        )
        .unwrap();
        assert!(
            width(many.unknown_rejected_interval) < 0.75 * width(few.unknown_rejected_interval),
            "{:?} against {:?}",
            many.unknown_rejected_interval,
            few.unknown_rejected_interval
        );
    }
}

/// The LFW one-shot open-set protocol: the first photo of everyone with 2+ photos is
/// enrolled, their other photos are probes that should be named, and everyone with a single
/// photo is a probe that should be answered `unknown`. Both decision rules are scored on the
/// same embeddings.
#[derive(Debug, Clone)]
pub struct LfwOpenSetParams {
    /// LFW's `images/` folder (`<person>/<photo>`).
    pub images: std::path::PathBuf,
    /// Target false-accept rate of the calibrated threshold.
    pub far: f64,
    /// Only the first N people (alphabetically) of each kind, for quick runs.
    pub limit_people: Option<usize>,
    /// Output folder: `openset.json`, `dir_far.png` and the embeddings.
    pub out: std::path::PathBuf,
    /// Reuse the embeddings a previous run left in `out` (same photos, same network).
    pub reuse: bool,
    /// The network (its verification distance caps the ratio rule; it names the cache).
    pub model: crate::face::FaceModel,
}

/// Checked [`LfwOpenSetParams`].
#[derive(Debug, Clone)]
pub struct ValidLfwOpenSetParams(LfwOpenSetParams);

impl LfwOpenSetParams {
    /// Checks the target rate.
    pub fn check(self) -> Result<ValidLfwOpenSetParams> {
        if !(0.0..1.0).contains(&self.far) {
            return Err(crate::Error::InvalidArgument(format!(
                "far {}: must be in [0, 1)",
                self.far
            )));
        }
        Ok(ValidLfwOpenSetParams(self))
    }
}

/// The figures of both rules, as `openset.json` holds them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LfwOpenSetReport {
    /// The notebook's rule: the nearest person's distance under a threshold.
    pub distance_rule: OpenSetIdReport,
    /// Lowe's ratio test, capped at the verification distance.
    pub ratio_rule: OpenSetIdReport,
    /// Photos embedded (or reused).
    pub images: usize,
    /// Time to embed them, s.
    pub seconds: f64,
    /// Whether the embeddings came from an earlier run.
    pub embeddings_reused: bool,
    /// The network's name.
    pub model: String,
}

impl ValidLfwOpenSetParams {
    /// Embeds (or reuses), scores both rules and writes `openset.json` and `dir_far.png`.
    /// `load` makes the face pipeline, called only when embeddings are not reused.
    pub fn run(
        &self,
        load: impl FnOnce() -> Result<crate::face::FacePipeline>,
        progress: &dyn crate::Progress,
    ) -> Result<LfwOpenSetReport> {
        use crate::Error;
        let p = &self.0;
        let people = crate::data::folder::people(&p.images)?;
        let lim = p.limit_people.unwrap_or(usize::MAX);
        let multi: Vec<&(String, Vec<std::path::PathBuf>)> =
            people.iter().filter(|p| p.1.len() >= 2).take(lim).collect();
        let single: Vec<&(String, Vec<std::path::PathBuf>)> =
            people.iter().filter(|p| p.1.len() == 1).take(lim).collect();
        let files: Vec<std::path::PathBuf> = multi
            .iter()
            .chain(single.iter())
            .flat_map(|p| p.1.iter().cloned())
            .collect();
        let t0 = std::time::Instant::now();
        let (verify, model_name) = (p.model.verification_distance(), p.model.label());
        // Embeddings are kept next to the report, so other scorings can be tried on them
        // without embedding 13,233 photos again. dlib's cache keeps the name it had before
        // there was a choice of network.
        let cache = match p.model {
            crate::face::FaceModel::Dlib => p.out.join("embeddings.json"),
            m => p.out.join(format!("embeddings-{}.json", m.name())),
        };
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let cached: Option<Vec<Vec<f32>>> = if p.reuse {
            std::fs::read_to_string(&cache)
                .ok()
                .and_then(|t| serde_json::from_str::<(Vec<String>, Vec<Vec<f32>>)>(&t).ok())
                .filter(|(n, _)| n == &names)
                .map(|(_, e)| e)
        } else {
            None
        };
        let reused = cached.is_some();
        std::fs::create_dir_all(&p.out).map_err(|e| Error::io(&p.out, e))?;
        let embeddings = match cached {
            Some(e) => {
                progress.message(&format!("reused the embeddings in {}", cache.display()));
                e
            }
            None => {
                let pipe = load()?;
                let e: Vec<Vec<f32>> = pipe
                    .embed_files(&files, 16, true, progress)?
                    .into_iter()
                    .map(|r| r.embedding)
                    .collect();
                let text = serde_json::to_string(&(&names, &e)).unwrap_or_default();
                std::fs::write(&cache, text).map_err(|e| Error::io(&cache, e))?;
                e
            }
        };
        let seconds = t0.elapsed().as_secs_f64();
        let mut emb = embeddings.into_iter();
        let (mut enrolled, mut known, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
        for (name, f) in &multi {
            for i in 0..f.len() {
                let e = emb.next().unwrap_or_default();
                if i == 0 {
                    enrolled.push((name.clone(), e));
                } else {
                    known.push((name.clone(), e));
                }
            }
        }
        for _ in &single {
            unknown.push(emb.next().unwrap_or_default());
        }
        let distance_rule =
            evaluate_open_set(&enrolled, &known, &unknown, p.far, Rule::Distance, verify)?;
        let ratio_rule =
            evaluate_open_set(&enrolled, &known, &unknown, p.far, Rule::Ratio, verify)?;
        let series: Vec<crate::plot::Series> =
            [("distance", &distance_rule), ("ratio", &ratio_rule)]
                .iter()
                .map(|(name, r)| crate::plot::Series {
                    label: format!("{name} rule"),
                    points: r
                        .curve
                        .iter()
                        .filter(|p| p.0 > 0.0)
                        .map(|p| (p.0.log10(), p.1))
                        .collect(),
                })
                .collect();
        crate::plot::line_chart(
            &p.out.join("dir_far.png"),
            &format!(
                "LFW one-shot open-set identification ({} enrolled, {})",
                distance_rule.enrolled, model_name
            ),
            "log10 FAR (never-enrolled probes accepted)",
            "DIR (enrolled probes named correctly)",
            &series,
        )?;
        let report = LfwOpenSetReport {
            distance_rule,
            ratio_rule,
            images: files.len(),
            seconds,
            embeddings_reused: reused,
            model: model_name.to_string(),
        };
        let json = p.out.join("openset.json");
        std::fs::write(
            &json,
            serde_json::to_string_pretty(&report).unwrap_or_default(),
        )
        .map_err(|e| Error::io(&json, e))?;
        Ok(report)
    }
}
