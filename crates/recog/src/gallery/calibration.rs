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

/// Where a gallery's calibration takes its stranger scores from.
#[derive(Debug, Clone, PartialEq)]
pub enum ImpostorSource {
    /// The gallery's own photos, each against its nearest other person.
    Gallery,
    /// A labelled folder (`<person>/<photo>`, e.g. LFW) of at most `per_person` photos each:
    /// each photo against the nearest gallery person of another name.
    Folder {
        /// The folder.
        dir: std::path::PathBuf,
        /// Photos per person.
        per_person: usize,
    },
}

/// `recog gallery calibrate`: picks the threshold for a false-accept rate per probe and
/// stores it in the gallery.
#[derive(Debug, Clone)]
pub struct CalibrateParams {
    /// Target false-accept rate per probe.
    pub far: f64,
    /// The distance to calibrate (identification then uses it).
    pub metric: Distance,
    /// What the threshold applies to.
    pub rule: Rule,
    /// Where the stranger scores come from.
    pub impostors: ImpostorSource,
}

/// [`CalibrateParams`] that passed [`CalibrateParams::check`].
#[derive(Debug, Clone)]
pub struct ValidCalibrateParams(CalibrateParams);

impl CalibrateParams {
    /// The rate must be in `[0, 1)` and a folder source must take a photo per person.
    pub fn check(self) -> crate::Result<ValidCalibrateParams> {
        if !(0.0..1.0).contains(&self.far) {
            return Err(crate::Error::InvalidArgument(format!(
                "far {}: must be in [0, 1)",
                self.far
            )));
        }
        if let ImpostorSource::Folder { per_person: 0, .. } = self.impostors {
            return Err(crate::Error::InvalidArgument(
                "per_person must be at least 1".into(),
            ));
        }
        Ok(ValidCalibrateParams(self))
    }
}

impl ValidCalibrateParams {
    /// Calibrates and stores the result in the gallery. `pipeline` is loaded only for a
    /// folder source; it must be the gallery's model. Warns when too few stranger scores
    /// resolve the rate.
    pub fn run(
        &self,
        gallery: &super::Gallery,
        pipeline: impl FnOnce() -> crate::Result<crate::face::FacePipeline>,
        progress: &dyn crate::Progress,
    ) -> crate::Result<Calibration> {
        let p = &self.0;
        let c = match &p.impostors {
            ImpostorSource::Gallery => gallery.calibrate_self(p.far, p.metric, p.rule)?,
            ImpostorSource::Folder { dir, per_person } => {
                let pipe = pipeline()?;
                gallery.check_model(&super::model_id(&pipe))?;
                let labelled = embed_labelled(&pipe, dir, *per_person, progress)?;
                gallery.calibrate_labelled(
                    &labelled,
                    p.far,
                    p.metric,
                    p.rule,
                    &dir.display().to_string(),
                )?
            }
        };
        gallery.set_calibration(&c)?;
        if c.impostors < 100 {
            progress.warn(&format!(
                "only {} impostor scores: a FAR of {} cannot be resolved from so few; calibrate on a labelled folder of strangers (--from DIR)",
                c.impostors, p.far
            ));
        }
        Ok(c)
    }
}

/// The descriptors of up to `per_person` photos of each person of a labelled folder; photos
/// without a detected face are left out.
fn embed_labelled(
    pipe: &crate::face::FacePipeline,
    dir: &std::path::Path,
    per_person: usize,
    progress: &dyn crate::Progress,
) -> crate::Result<Vec<(String, Vec<f32>)>> {
    let people = crate::data::folder::people(dir)?;
    if people.is_empty() {
        return Err(crate::Error::InvalidArgument(format!(
            "{}: no <person>/<photo> images",
            dir.display()
        )));
    }
    let (names, files): (Vec<String>, Vec<std::path::PathBuf>) = people
        .iter()
        .flat_map(|(name, photos)| {
            photos
                .iter()
                .take(per_person)
                .map(move |f| (name.clone(), f.clone()))
        })
        .unzip();
    let res = pipe.embed_files(&files, 16, false, progress)?;
    Ok(names
        .into_iter()
        .zip(res)
        .filter(|(_, r)| r.face.is_some() && !r.fallback)
        .map(|(n, r)| (n, r.embedding))
        .collect())
}

impl std::fmt::Display for Calibration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "accept {} ({:?}) for FAR {} per probe ({} impostor scores from {})",
            self.acceptance(),
            self.metric,
            self.far,
            self.impostors,
            self.source.as_deref().unwrap_or("gallery")
        )
    }
}
