//! Decision rules: what turns the nearest gallery person into a name or "unknown".
//!
//! ```
//! use recog::gallery::{Acceptance, Match, Rule};
//! let m = Match::by_distance(Some("ada".into()), 0.5, Some(0.55), f32::MAX);
//! // Near enough, but hardly nearer than the runner-up: the ratio test says unknown.
//! let ratio = Acceptance { rule: Rule::Ratio, threshold: 0.8, verification_distance: 0.6 };
//! assert_eq!(ratio.decide(m.clone()).name, None);
//! assert_eq!(Acceptance::distance(0.6).decide(m).name.as_deref(), Some("ada"));
//! assert_eq!(ratio.to_string(), "ratio <= 0.800 and distance <= 0.6");
//! ```

use serde::{Deserialize, Serialize};

use crate::metric::Distance;

/// The answer for one face.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// The person, or `None` for "unknown".
    pub name: Option<String>,
    /// The nearest person even when rejected.
    pub nearest: Option<String>,
    /// Distance to the nearest person's closest photo.
    pub distance: f32,
    /// Distance to the runner-up person.
    pub runner_up: Option<f32>,
    /// `runner_up - distance`.
    pub margin: Option<f32>,
    /// `distance / runner_up`: near 1 when the nearest person is hardly nearer than the next.
    #[serde(default)]
    pub ratio: Option<f32>,
    /// The threshold applied (to the distance, or to the ratio under [`Rule::Ratio`]).
    pub threshold: f32,
    /// The rule the threshold applies to.
    #[serde(default)]
    pub rule: Rule,
}

/// What the calibrated threshold applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// Accept when the nearest person's distance is under the threshold (the notebook's rule).
    #[default]
    Distance,
    /// Lowe's ratio test: accept when `distance / runner-up distance` is under the threshold
    /// and the distance is under the pipeline's verification threshold (0.6 Euclidean), so a
    /// small gallery cannot accept a far face just because everyone else is farther. A
    /// stranger is about as far from their nearest enrolled face as from the next one; a
    /// genuine probe is much nearer its own.
    Ratio,
}

/// A decision rule with its threshold: what turns a nearest match into a name or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Acceptance {
    /// The rule.
    pub rule: Rule,
    /// Its threshold.
    pub threshold: f32,
    /// The distance cap of [`Rule::Ratio`]: the model's verification distance in the
    /// gallery's distance.
    #[serde(alias = "max_distance")]
    pub verification_distance: f32,
}

impl Acceptance {
    /// Accept at or under a distance.
    pub fn distance(threshold: f32) -> Self {
        Self {
            rule: Rule::Distance,
            threshold,
            verification_distance: f32::MAX,
        }
    }

    /// The score the threshold applies to, from the nearest and the runner-up distances
    /// (lower is more confident).
    pub fn score(rule: Rule, nearest: f32, runner_up: Option<f32>) -> f32 {
        match rule {
            Rule::Distance => nearest,
            Rule::Ratio => match runner_up {
                Some(r) if r > 0.0 => nearest / r,
                Some(_) => 1.0,
                // One person in the gallery: only the distance cap decides.
                None => 0.0,
            },
        }
    }

    /// Fills in `name`, `threshold` and `rule` of a match found without a threshold.
    pub fn decide(&self, mut m: Match) -> Match {
        let s = Self::score(self.rule, m.distance, m.runner_up);
        let ok =
            m.nearest.is_some() && s <= self.threshold && m.distance <= self.verification_distance;
        m.name = if ok { m.nearest.clone() } else { None };
        m.threshold = self.threshold;
        m.rule = self.rule;
        m
    }
}

/// The gallery's people ranked by their nearest photo to `query` (ties by name), leaving out
/// the person named `exclude`: a hash map of per-person minima, the plain way.
pub(crate) fn ranked_people<'g>(
    gallery: &'g [(String, Vec<f32>)],
    query: &[f32],
    metric: Distance,
    exclude: Option<&str>,
) -> Vec<(&'g str, f32)> {
    let mut best: std::collections::HashMap<&str, f32> = std::collections::HashMap::new();
    for (name, v) in gallery.iter().filter(|(n, _)| Some(n.as_str()) != exclude) {
        let d = metric.between(v, query);
        let e = best.entry(name.as_str()).or_insert(f32::MAX);
        *e = e.min(d);
    }
    let mut ranked: Vec<(&str, f32)> = best.into_iter().collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)));
    ranked
}

/// Nearest identity (minimum over each person's photos) with the runner-up person's
/// distance, by Euclidean distance: the plain reference implementation (a hash map per query)
/// that [`crate::gallery::Index::search`] is tested and benchmarked against.
pub fn identify(gallery: &[(String, Vec<f32>)], query: &[f32], threshold: f32) -> Match {
    let ranked = ranked_people(gallery, query, Distance::Euclidean, None);
    let (nearest, distance) = ranked
        .first()
        .map_or((None, f32::MAX), |r| (Some(r.0.to_string()), r.1));
    let runner_up = ranked.get(1).map(|r| r.1);
    Match::by_distance(nearest, distance, runner_up, threshold)
}

impl Match {
    /// The answer of the distance rule: `nearest` is named when `distance <= threshold`.
    pub fn by_distance(
        nearest: Option<String>,
        distance: f32,
        runner_up: Option<f32>,
        threshold: f32,
    ) -> Self {
        Match {
            name: if nearest.is_some() && distance <= threshold {
                nearest.clone()
            } else {
                None
            },
            nearest,
            distance,
            runner_up,
            margin: runner_up.map(|r| r - distance),
            ratio: runner_up.map(|r| if r > 0.0 { distance / r } else { 1.0 }),
            threshold,
            rule: Rule::Distance,
        }
    }
}

impl std::fmt::Display for Acceptance {
    /// "distance <= 0.412" or "ratio <= 0.860 and distance <= 0.6".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rule {
            Rule::Distance => write!(f, "distance <= {:.3}", self.threshold),
            Rule::Ratio if self.threshold >= f32::MAX => write!(
                f,
                "distance <= {} (every impostor was beyond it: the ratio does not limit)",
                self.verification_distance
            ),
            Rule::Ratio => write!(
                f,
                "ratio <= {:.3} and distance <= {}",
                self.threshold, self.verification_distance
            ),
        }
    }
}
