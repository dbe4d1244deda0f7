//! Calibration: the threshold that accepts a target fraction of strangers, from impostor
//! distances.
//!
//! ```
//! use recog::gallery::calibrate;
//! use recog::metric::Distance;
//! // 100 impostor distances 0.01..1.00: FAR 5% accepts the 5 nearest.
//! let d: Vec<f32> = (1..=100).map(|i| i as f32 / 100.0).collect();
//! let c = calibrate(&d, 0.05, Distance::Euclidean, "test");
//! assert!(c.threshold > 0.05 && c.threshold < 0.06);
//! ```

use serde::{Deserialize, Serialize};

use super::decision::{ranked_people, Acceptance, Rule};
use crate::metric::Distance;

/// A threshold calibrated for a false-accept rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Calibration {
    /// Accept below or at this distance.
    pub threshold: f32,
    /// Target false-accept rate.
    pub far: f64,
    /// Impostor scores used (one per gallery photo: its nearest other person; or one per
    /// photo of a labelled folder: its nearest gallery person of another name).
    pub impostors: usize,
    /// The distance the threshold applies to.
    #[serde(default)]
    pub metric: Distance,
    /// Where the impostor scores came from (`gallery`, or the labelled folder).
    #[serde(default)]
    pub source: Option<String>,
    /// What the threshold applies to.
    #[serde(default)]
    pub rule: Rule,
    /// The distance cap of [`Rule::Ratio`] (the model's verification distance in `metric`);
    /// absent in galleries calibrated before it was stored, which were dlib's (0.6).
    #[serde(
        default,
        alias = "max_distance",
        skip_serializing_if = "Option::is_none"
    )]
    pub verification_distance: Option<f32>,
}

impl Calibration {
    /// The decision this calibration stands for.
    pub fn acceptance(&self) -> Acceptance {
        Acceptance {
            rule: self.rule,
            threshold: self.threshold,
            verification_distance: match self.rule {
                Rule::Distance => f32::MAX,
                Rule::Ratio => self.verification_distance.unwrap_or_else(|| {
                    self.metric
                        .of_euclidean(crate::face::DLIB_VERIFICATION_DISTANCE)
                }),
            },
        }
    }
}

/// For each probe, the distances to the nearest and the runner-up gallery *people* among
/// those with another name: what the probe would score as a stranger.
pub fn impostor_pairs(
    gallery: &[(String, Vec<f32>)],
    probes: &[(String, Vec<f32>)],
    metric: Distance,
) -> Vec<(f32, Option<f32>)> {
    probes
        .iter()
        .filter_map(|(name, v)| {
            let ranked = ranked_people(gallery, v, metric, Some(name));
            ranked.first().map(|r| (r.1, ranked.get(1).map(|r| r.1)))
        })
        .collect()
}

/// Calibrates a rule on impostor (nearest, runner-up) pairs; `verify` is the ratio rule's
/// distance cap ([`Distance::of_euclidean`] of the model's verification distance).
pub fn calibrate_rule(
    pairs: &[(f32, Option<f32>)],
    far: f64,
    metric: Distance,
    rule: Rule,
    verify: f32,
    source: &str,
) -> Calibration {
    let cap = match rule {
        Rule::Distance => f32::MAX,
        Rule::Ratio => verify,
    };
    // A stranger beyond the cap is rejected whatever the score: give it an infinite score so
    // that the FAR counts it among the rejected.
    let scores: Vec<f32> = pairs
        .iter()
        .map(|&(d1, d2)| {
            if d1 > cap {
                f32::INFINITY
            } else {
                Acceptance::score(rule, d1, d2)
            }
        })
        .collect();
    let mut c = calibrate(&scores, far, metric, source);
    c.rule = rule;
    if rule == Rule::Ratio {
        c.verification_distance = Some(cap);
    }
    if !c.threshold.is_finite() {
        c.threshold = f32::MAX;
    }
    c
}

/// For each probe `(name, embedding)`, the distance to the nearest gallery photo whose person
/// has another name (probes with no such photo give no score).
pub fn impostor_scores(
    gallery: &[(String, Vec<f32>)],
    probes: &[(String, Vec<f32>)],
    metric: Distance,
) -> Vec<f32> {
    impostor_pairs(gallery, probes, metric)
        .into_iter()
        .map(|p| p.0)
        .collect()
}

/// The threshold that accepts at most a fraction `far` of impostor distances
/// (distance <= threshold is accepted).
pub fn calibrate(impostors: &[f32], far: f64, metric: Distance, source: &str) -> Calibration {
    let mut d = impostors.to_vec();
    d.sort_by(|a, b| a.total_cmp(b));
    let allowed = ((far * d.len() as f64).floor() as usize).min(d.len());
    // Accept the `allowed` smallest impostor distances at most: put the threshold just below
    // the next one.
    let threshold = if allowed == 0 {
        d[0] - 1e-6
    } else {
        let next = d.get(allowed).copied().unwrap_or(d[d.len() - 1] + 1e-6);
        let prev = d[allowed - 1];
        if next > prev {
            (prev + next) / 2.0
        } else {
            prev - 1e-6
        }
    };
    Calibration {
        threshold,
        far,
        impostors: d.len(),
        metric,
        source: Some(source.to_string()),
        rule: Rule::Distance,
        verification_distance: None,
    }
}
