//! Leave-one-generator-out: does the recognizer reject unknowns from a generator that
//! neither its embedding's training nor its fitting ever saw?
//!
//! For each generator `g` of [`crate::data::unknowns`]: an embedding checkpoint whose
//! outlier exposure did not include `g` (read from its `config.json`), a recognizer fit on
//! it with the fitting parts of every generator but `g`, evaluated on MNIST's test digits
//! and `g`'s evaluation part, with every rule. One checkpoint serves every generator it was
//! not trained on, so two checkpoints trained on disjoint generator sets cover them all.
//!
//! Every thresholded rule is also measured at the rates of [`LogoParams::sweep`]: the same
//! fit, thresholds recalibrated on the same calibration digits ([`sweep_rules`]), so that
//! [`LogoReport::operating_points`] shows what each rule can trade between digits named and
//! unknowns rejected.
//!
//! ```no_run
//! use recog::data::{KnownSet, Source};
//! use recog::openset::logo::LogoParams;
//! let p = LogoParams::new(vec!["runs/d64-oe".into(), "runs/d64-oe2".into()], Source::Known(KnownSet::Mnist));
//! let report = p.check()?.run(&recog::Home::from_env(), &recog::NoProgress)?;
//! println!("{report}");
//! # Ok::<(), recog::Error>(())
//! ```

use std::path::PathBuf;

use serde::Serialize;

use rayon::prelude::*;

use super::committee::DigitEmbedder;
use super::tasks::{fit_recognizer, FitData, FitSettings, EVAL_SEED};
use super::{
    calibrate_threshold, evaluate, DigitRecognizer, Method, OpenSetReport, UnknownEmbeddings,
};
use crate::data::unknowns::{self, Generator, Part};
use crate::data::{self, Source, Split, UnknownSource};
use crate::{Error, Home, Progress, Result};

/// The leave-one-generator-out evaluation.
#[derive(Debug, Clone)]
pub struct LogoParams {
    /// Embedding checkpoints or committees ([`super::committee`]); each generator is held out
    /// with the first one not trained on it (no member of a committee trained on it).
    pub models: Vec<PathBuf>,
    /// The digits.
    pub source: Source,
    /// The generators to hold out in turn (and to fit on otherwise).
    pub generators: Vec<Generator>,
    /// Fitting images per generator.
    pub fit_per_generator: usize,
    /// Evaluation images per generator.
    pub eval_per_generator: usize,
    /// Target false-reject rate of every threshold.
    pub target_frr: f64,
    /// Training digits held out for calibration.
    pub calibration: usize,
    /// Head training epochs.
    pub head_epochs: usize,
    /// Sources every fold's recognizer is fit on beside the generators (none of them a
    /// generator, so none is ever held out): `transformed` by default, as in `digits fit`.
    pub also_fit: Vec<UnknownSource>,
    /// Target false-reject rates at which every thresholded rule is also measured (the
    /// operating points of [`LogoReport::operating_points`]); the fit is the same, only the
    /// thresholds move.
    pub sweep: Vec<f64>,
}

/// The operating points `eval-logo` measures beside its target: a quarter of a percent of
/// digits rejected up to four percent.
pub const SWEEP_FRR: [f64; 6] = [0.0025, 0.005, 0.0075, 0.01, 0.02, 0.04];

/// The goal an operating point is held to (digit accuracy in every fold, rejection of every
/// held-out generator): the project's acceptance for D = 64.
pub const GOAL: (f64, f64) = (0.99, 0.95);

impl LogoParams {
    /// Every generator, 5,000 images of each part, FRR 1% on 5,000 held-out digits, 10 head
    /// epochs: the settings of `recog digits fit`.
    pub fn new(models: Vec<PathBuf>, source: Source) -> Self {
        Self {
            models,
            source,
            generators: Generator::ALL.to_vec(),
            fit_per_generator: 5000,
            eval_per_generator: 5000,
            target_frr: 0.01,
            calibration: super::CALIBRATION_DIGITS,
            head_epochs: 10,
            also_fit: vec![UnknownSource::Transformed],
            sweep: SWEEP_FRR.to_vec(),
        }
    }

    /// Needs a checkpoint, two generators (one to hold out, one to fit on) and a rate.
    pub fn check(self) -> Result<ValidLogoParams> {
        if self.models.is_empty() || self.generators.len() < 2 {
            return Err(Error::InvalidArgument(
                "leave-one-generator-out needs a checkpoint and at least two generators".into(),
            ));
        }
        let rate = |r: &f64| (0.0..1.0).contains(r);
        if !rate(&self.target_frr) || !self.sweep.iter().all(rate) || self.fit_per_generator == 0 {
            return Err(Error::InvalidArgument(
                "target_frr and the sweep's rates must be in [0, 1) and fit_per_generator positive"
                    .into(),
            ));
        }
        if self.also_fit.iter().any(|s| s.generator().is_some()) {
            return Err(Error::InvalidArgument(
                "also_fit takes sources that are not generators (a generator is held out in turn)"
                    .into(),
            ));
        }
        Ok(ValidLogoParams(self))
    }
}

/// Checked [`LogoParams`].
#[derive(Debug, Clone)]
pub struct ValidLogoParams(LogoParams);

/// One held-out generator.
#[derive(Debug, Clone, Serialize)]
pub struct LogoFold {
    /// The generator held out.
    pub held_out: Generator,
    /// The checkpoint used (never trained on it).
    pub model: PathBuf,
    /// What that checkpoint's outlier exposure used.
    pub model_unknowns: Vec<String>,
    /// The generators the recognizer was fit on.
    pub fit_on: Vec<Generator>,
    /// The other sources it was fit on ([`LogoParams::also_fit`]).
    pub also_fit: Vec<String>,
    /// Every rule on MNIST test digits + the held-out generator's evaluation part.
    pub reports: Vec<OpenSetReport>,
    /// Whether the checkpoint's training left the calibration digits out
    /// ([`super::tasks::calibration_unseen`]).
    pub calibration_unseen: bool,
    /// Every thresholded rule at each of [`LogoParams::sweep`]'s rates.
    pub sweep: Vec<SweepPoint>,
}

/// One rule at one target false-reject rate, in one fold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SweepPoint {
    /// The rule.
    pub method: Method,
    /// The target false-reject rate its threshold was calibrated for.
    pub target_frr: f64,
    /// Test digits named right (a rejected digit is wrong).
    pub digit_accuracy: f64,
    /// Held-out unknowns rejected.
    pub unknown_rejection: f64,
}

/// One rule at one rate over every fold: the figures of the acceptance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OperatingPoint {
    /// The rule.
    pub method: Method,
    /// The target false-reject rate.
    pub target_frr: f64,
    /// Digit accuracy in the worst fold.
    pub digit_accuracy: f64,
    /// The worst held-out generator's rejection.
    pub worst_rejection: f64,
    /// That generator.
    pub worst_generator: Generator,
}

/// Each thresholded rule of `rec` at each rate of `targets`: thresholds recalibrated on the
/// calibration digits' scores (`calibration`, `[n][dim]`), exactly as fitting calibrates them,
/// so the point at the fitted rate is the fold's own report.
pub fn sweep_rules(
    rec: &DigitRecognizer,
    targets: &[f64],
    calibration: &[f32],
    digits: &[f32],
    digit_labels: &[u32],
    unknown: &[f32],
) -> Vec<SweepPoint> {
    let d = rec.dim.max(1);
    let mut out = Vec::new();
    for m in Method::ALL {
        if rec.rule_threshold(m).is_none() {
            continue;
        }
        let score = |x: &[f32]| rec.rule_score(x, m);
        let cal: Vec<f32> = calibration
            .par_chunks(d)
            .filter_map(|x| score(x).map(|s| s.score))
            .collect();
        let dig: Vec<_> = digits.par_chunks(d).filter_map(score).collect();
        let unk: Vec<_> = unknown.par_chunks(d).filter_map(score).collect();
        for &target_frr in targets {
            let t = calibrate_threshold(&cal, target_frr);
            let rejected = |s: &super::RuleScore| s.gated || s.score > t;
            let right = dig
                .iter()
                .zip(digit_labels)
                .filter(|(s, &l)| !rejected(s) && s.label == l)
                .count();
            let unknown_rejected = unk.iter().filter(|s| rejected(s)).count();
            out.push(SweepPoint {
                method: m,
                target_frr,
                digit_accuracy: right as f64 / dig.len().max(1) as f64,
                unknown_rejection: unknown_rejected as f64 / unk.len().max(1) as f64,
            });
        }
    }
    out
}

/// Every fold; generators no checkpoint held out are listed apart.
#[derive(Debug, Clone, Serialize)]
pub struct LogoReport {
    /// The folds.
    pub folds: Vec<LogoFold>,
    /// Generators every checkpoint was trained on, so none could be held out.
    pub not_held_out: Vec<Generator>,
    /// Test digits.
    pub digits: usize,
    /// Images per evaluation part.
    pub per_generator: usize,
}

impl LogoReport {
    /// Each thresholded rule at each swept rate, over every fold: the worst fold's digit
    /// accuracy and the worst held-out generator, in rule order, then rate order.
    pub fn operating_points(&self) -> Vec<OperatingPoint> {
        let mut out: Vec<OperatingPoint> = Vec::new();
        for fold in &self.folds {
            for s in &fold.sweep {
                let here = OperatingPoint {
                    method: s.method,
                    target_frr: s.target_frr,
                    digit_accuracy: s.digit_accuracy,
                    worst_rejection: s.unknown_rejection,
                    worst_generator: fold.held_out,
                };
                match out
                    .iter_mut()
                    .find(|o| o.method == s.method && o.target_frr == s.target_frr)
                {
                    None => out.push(here),
                    Some(o) => {
                        o.digit_accuracy = o.digit_accuracy.min(s.digit_accuracy);
                        if s.unknown_rejection < o.worst_rejection {
                            o.worst_rejection = s.unknown_rejection;
                            o.worst_generator = fold.held_out;
                        }
                    }
                }
            }
        }
        out
    }

    /// Draws [`Self::operating_points`]: digit accuracy against the worst held-out
    /// generator's rejection, one line per rule through its rates, with the issue's goal
    /// (`goal`: digit accuracy, rejection) marked.
    pub fn plot_operating_points(&self, path: &std::path::Path, goal: (f64, f64)) -> Result<()> {
        let points = self.operating_points();
        let mut series: Vec<crate::plot::Series> = Vec::new();
        for m in Method::ALL {
            let pts: Vec<(f64, f64)> = points
                .iter()
                .filter(|o| o.method == m)
                .map(|o| (100.0 * o.worst_rejection, 100.0 * o.digit_accuracy))
                .collect();
            if !pts.is_empty() {
                series.push(crate::plot::Series {
                    label: m.name().to_string(),
                    points: pts,
                });
            }
        }
        let mut rates: Vec<f64> = points.iter().map(|o| o.target_frr).collect();
        rates.sort_by(f64::total_cmp);
        rates.dedup();
        let pct = |r: Option<&f64>| r.map_or(String::new(), |v| format!("{:.2}%", 100.0 * v));
        crate::plot::operating_points(
            path,
            &format!(
                "Each generator held out: every rule at target FRR {} to {} (right: higher FRR)",
                pct(rates.first()),
                pct(rates.last())
            ),
            "worst held-out generator rejected (%)",
            "digit accuracy, worst fold (%)",
            &series,
            (100.0 * goal.1, 100.0 * goal.0),
        )
    }

    /// The rule whose worst held-out rejection is highest among those keeping digit
    /// accuracy at or above `min_digit_accuracy` in every fold.
    pub fn best_rule(&self, min_digit_accuracy: f64) -> Option<(Method, f64)> {
        Method::ALL
            .into_iter()
            .filter_map(|m| {
                let rows: Vec<&OpenSetReport> = self
                    .folds
                    .iter()
                    .filter_map(|f| f.reports.iter().find(|r| r.method == m))
                    .collect();
                let ok =
                    !rows.is_empty() && rows.iter().all(|r| r.digit_accuracy >= min_digit_accuracy);
                let worst = rows
                    .iter()
                    .map(|r| r.unknown_rejection)
                    .fold(f64::INFINITY, f64::min);
                ok.then_some((m, worst))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

impl ValidLogoParams {
    /// Embeds everything once per checkpoint, then fits and evaluates each fold.
    pub fn run(&self, home: &Home, progress: &dyn Progress) -> Result<LogoReport> {
        let p = &self.0;
        let device = crate::default_device();
        let train = data::load(&p.source, Split::Train, home, progress)?;
        let test = data::load(&p.source, Split::Test, home, progress)?;
        // The images are the same for every checkpoint: generated once, embedded by each.
        let mut fit_sets = Vec::new();
        let mut eval_sets = Vec::new();
        for &g in &p.generators {
            let (set, _) =
                unknowns::generate(g, Part::Fit, p.fit_per_generator, 1, home, progress)?;
            fit_sets.push((g, set));
            let (set, _) = unknowns::generate(
                g,
                Part::Eval,
                p.eval_per_generator,
                EVAL_SEED,
                home,
                progress,
            )?;
            eval_sets.push((g, set));
        }
        let also = if p.also_fit.is_empty() {
            None
        } else {
            Some(data::unknown_images(&p.also_fit, p.fit_per_generator, 1, home, progress)?.0)
        };
        let mut folds = Vec::new();
        let mut done: Vec<Generator> = Vec::new();
        for model in &p.models {
            let net = DigitEmbedder::load(model, &device)?;
            let seen = net.seen_generators();
            let mine: Vec<Generator> = p
                .generators
                .iter()
                .copied()
                .filter(|g| !seen.contains(g) && !done.contains(g))
                .collect();
            if mine.is_empty() {
                continue;
            }
            let embed = |d: &data::Dataset| net.embed_dataset(d, 500, &device, progress);
            let d = net.dim;
            let train_emb = embed(&train);
            let test_emb = embed(&test);
            let fit_parts: Vec<(Generator, Vec<f32>)> =
                fit_sets.iter().map(|(g, set)| (*g, embed(set))).collect();
            let also_emb = also.as_ref().map(embed).unwrap_or_default();
            for &g in &mine {
                progress.start(&format!("fold: {g} held out, {}", model.display()), 1);
                let eval_set = eval_sets.iter().find(|(x, _)| *x == g).map(|(_, set)| set);
                let eval_emb = eval_set.map(embed).unwrap_or_default();
                let (eval_labels, eval_kinds) =
                    eval_set.map_or((&[][..], &[][..]), |s| (&s.labels[..], &s.classes[..]));
                let fit_on: Vec<Generator> =
                    p.generators.iter().copied().filter(|x| *x != g).collect();
                let unknown: Vec<f32> = fit_parts
                    .iter()
                    .filter(|(x, _)| *x != g)
                    .flat_map(|(_, e)| e.iter().copied())
                    .chain(also_emb.iter().copied())
                    .collect();
                let rec = fit_recognizer(
                    &FitData {
                        digits: &train_emb,
                        labels: &train.labels,
                        classes: &train.classes,
                        unknown: &unknown,
                        dim: d,
                        normalized: net.normalized,
                    },
                    &FitSettings {
                        method: Method::Head,
                        target_frr: p.target_frr,
                        calibration: p.calibration,
                        head_epochs: p.head_epochs,
                        seed: net.seed,
                    },
                    progress,
                )?;
                let reports = Method::ALL
                    .into_iter()
                    .map(|m| {
                        let u = UnknownEmbeddings {
                            name: g.name(),
                            embeddings: &eval_emb,
                            labels: eval_labels,
                            kinds: eval_kinds,
                        };
                        evaluate(&rec, m, &test_emb, &test.labels, u)
                    })
                    .collect();
                let n_fit = train.labels.len().saturating_sub(p.calibration);
                let sweep = sweep_rules(
                    &rec,
                    &p.sweep,
                    train_emb.get(n_fit * d..).unwrap_or_default(),
                    &test_emb,
                    &test.labels,
                    &eval_emb,
                );
                progress.finish();
                folds.push(LogoFold {
                    held_out: g,
                    model: model.clone(),
                    model_unknowns: net.unknown.iter().map(|s| s.to_string()).collect(),
                    calibration_unseen: net.calibration_unseen(train.len(), p.calibration),
                    fit_on,
                    also_fit: p.also_fit.iter().map(|s| s.to_string()).collect(),
                    reports,
                    sweep,
                });
                done.push(g);
            }
        }
        let not_held_out = p
            .generators
            .iter()
            .copied()
            .filter(|g| !done.contains(g))
            .collect();
        Ok(LogoReport {
            folds,
            not_held_out,
            digits: test.len(),
            per_generator: p.eval_per_generator,
        })
    }
}

impl std::fmt::Display for LogoReport {
    /// One column per rule; digit figures are the worst fold's.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reports: Vec<OpenSetReport> =
            self.folds.iter().flat_map(|x| x.reports.clone()).collect();
        super::tasks::write_pivot(
            f,
            &format!(
                "leave-one-generator-out: {} MNIST test digits; {} images of each held-out generator, which neither the embedding's training nor the recognizer's fitting saw",
                self.digits, self.per_generator
            ),
            &reports,
        )?;
        for x in &self.folds {
            write!(
                f,
                "\n{} held out: embedding {} (trained with {}), fit on {}",
                x.held_out,
                x.model.display(),
                if x.model_unknowns.is_empty() {
                    "digits only".to_string()
                } else {
                    x.model_unknowns.join(", ")
                },
                x.fit_on
                    .iter()
                    .map(|g| g.name().to_string())
                    .chain(x.also_fit.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
            if !x.calibration_unseen {
                write!(
                    f,
                    " (the embedding was trained on the calibration digits too: digits are rejected above the target rate)"
                )?;
            }
        }
        if !self.not_held_out.is_empty() {
            let names: Vec<&str> = self.not_held_out.iter().map(|g| g.name()).collect();
            write!(
                f,
                "\nnot held out (every checkpoint was trained on them): {}",
                names.join(", ")
            )?;
        }
        let points = self.operating_points();
        if !points.is_empty() {
            let rules: Vec<Method> = Method::ALL
                .into_iter()
                .filter(|m| points.iter().any(|o| o.method == *m))
                .collect();
            write!(
                f,
                "\noperating points (digit accuracy in the worst fold / worst held-out generator rejected):\n{:<12}",
                "target FRR"
            )?;
            for m in &rules {
                write!(f, "{:>16}", m.name())?;
            }
            let mut rates: Vec<f64> = points.iter().map(|o| o.target_frr).collect();
            rates.sort_by(f64::total_cmp);
            rates.dedup();
            for r in rates {
                write!(f, "\n{:<12}", format!("{:.2}%", 100.0 * r))?;
                for m in &rules {
                    let cell = points
                        .iter()
                        .find(|o| o.method == *m && o.target_frr == r)
                        .map(|o| {
                            format!(
                                "{:.2} / {:.2}",
                                100.0 * o.digit_accuracy,
                                100.0 * o.worst_rejection
                            )
                        })
                        .unwrap_or_default();
                    write!(f, "{cell:>16}")?;
                }
            }
            let meets: Vec<String> = points
                .iter()
                .filter(|o| o.digit_accuracy >= GOAL.0 && o.worst_rejection >= GOAL.1)
                .map(|o| format!("{} at {:.2}%", o.method.name(), 100.0 * o.target_frr))
                .collect();
            write!(
                f,
                "\nmeeting >= {:.1}% digits and >= {:.0}% of every held-out generator: {}",
                100.0 * GOAL.0,
                100.0 * GOAL.1,
                if meets.is_empty() {
                    "none".to_string()
                } else {
                    meets.join(", ")
                }
            )?;
        }
        let choices = [
            (0.0, "best worst held-out generator over all rules"),
            (0.99, "best rule with digit accuracy >= 99% in every fold"),
        ];
        for (floor, label) in choices {
            if let Some((m, w)) = self.best_rule(floor) {
                let (name, pct) = (m.name(), 100.0 * w);
                write!(
                    f,
                    "\n{label}: {name} (worst held-out generator {pct:.2}% rejected)"
                )?;
            }
        }
        if let Some((m, _)) = self.best_rule(0.0) {
            super::tasks::write_kinds(f, &reports, m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: Method, digit_accuracy: f64, unknown_rejection: f64) -> OpenSetReport {
        OpenSetReport {
            method,
            unknown_set: "x".into(),
            digit_accuracy,
            digit_rejection: 0.0,
            unknown_rejection,
            overall_accuracy: 0.0,
            auroc: 0.5,
            closed_set_accuracy: digit_accuracy,
            confusion: vec![],
            by_kind: vec![],
        }
    }

    /// The default rule is chosen by its worst held-out generator, among the rules that keep
    /// digits at the target in every fold, not by its mean or its in-distribution figures.
    #[test]
    fn the_best_rule_is_the_best_worst_case_that_keeps_the_digits() {
        let fold = |g, reports| LogoFold {
            held_out: g,
            model: "m".into(),
            model_unknowns: vec![],
            fit_on: vec![],
            also_fit: vec![],
            reports,
            calibration_unseen: true,
            sweep: vec![],
        };
        let r = LogoReport {
            folds: vec![
                fold(
                    Generator::Strokes,
                    vec![
                        row(Method::Head, 0.995, 0.99),
                        row(Method::Knn, 0.995, 1.0),
                        row(Method::Energy, 0.98, 1.0),
                    ],
                ),
                fold(
                    Generator::Fragments,
                    vec![
                        row(Method::Head, 0.995, 0.90),
                        row(Method::Knn, 0.995, 0.80),
                        row(Method::Energy, 0.98, 0.99),
                    ],
                ),
            ],
            not_held_out: vec![],
            digits: 10,
            per_generator: 10,
        };
        // Energy has the best worst case but loses digits; knn has the best mean but a worse
        // worst case than the head.
        assert_eq!(r.best_rule(0.99), Some((Method::Head, 0.90)));
    }

    /// An operating point is as good as its worst fold on each axis, and names the
    /// generator that was worst.
    #[test]
    fn an_operating_point_takes_the_worst_fold_on_each_axis() {
        let point = |m, t, a, u| SweepPoint {
            method: m,
            target_frr: t,
            digit_accuracy: a,
            unknown_rejection: u,
        };
        let fold = |g, sweep| LogoFold {
            held_out: g,
            model: "m".into(),
            model_unknowns: vec![],
            fit_on: vec![],
            also_fit: vec![],
            reports: vec![],
            calibration_unseen: true,
            sweep,
        };
        let r = LogoReport {
            folds: vec![
                fold(
                    Generator::Strokes,
                    vec![
                        point(Method::Knn, 0.01, 0.985, 0.99),
                        point(Method::Knn, 0.02, 0.98, 1.0),
                    ],
                ),
                fold(
                    Generator::Fragments,
                    vec![
                        point(Method::Knn, 0.01, 0.99, 0.93),
                        point(Method::Knn, 0.02, 0.975, 0.96),
                    ],
                ),
            ],
            not_held_out: vec![],
            digits: 10,
            per_generator: 10,
        };
        let o = r.operating_points();
        assert_eq!(o.len(), 2);
        assert_eq!((o[0].digit_accuracy, o[0].worst_rejection), (0.985, 0.93));
        assert_eq!(o[0].worst_generator, Generator::Fragments);
        assert_eq!((o[1].digit_accuracy, o[1].worst_rejection), (0.975, 0.96));
        let text = r.to_string();
        assert!(text.contains("98.50 / 93.00"), "{text}");
        assert!(
            text.contains("held-out generator: none"),
            "no point meets both: {text}"
        );
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("points.png");
        r.plot_operating_points(&png, GOAL).unwrap();
        assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    }
}
