//! The digit recognizer's tasks: fit one on a trained embedding checkpoint, name the digits
//! of image files, and evaluate the three decision rules against unknown sets.
//!
//! ```no_run
//! use recog::data::{KnownSet, Source, UnknownSource};
//! use recog::openset::tasks::FitParams;
//! use recog::{Home, NoProgress};
//!
//! let params = FitParams::new("runs/mnist".into(), Source::Known(KnownSet::Mnist));
//! let report = params.check()?.run(&Home::from_env(), &NoProgress)?;
//! println!("threshold {:.3}, saved to {}", report.threshold, report.recognizer.display());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{
    calibrate_threshold, class_centres, evaluate, head, nearest_centre, DigitRecognizer, Method,
    OpenSetReport,
};
use crate::data::{self, glyphs, KnownSet, Source, Split, UnknownSource};
use crate::nn::EmbeddingNet;
use crate::train::CheckpointDir;
use crate::{Error, Home, Progress, Result};

/// Digits embedded in batches of this many (the result does not depend on it).
const EMBED_BATCH: usize = 500;

fn embed(net: &EmbeddingNet, d: &data::Dataset, progress: &dyn Progress) -> Vec<f32> {
    net.embed_dataset(d, EMBED_BATCH, &crate::default_device(), progress)
}

/// Fitting a recognizer.
#[derive(Debug, Clone)]
pub struct FitParams {
    /// Embedding checkpoint folder (`recog train --out`).
    pub model: PathBuf,
    /// The digits (their training split).
    pub source: Source,
    /// Default decision rule stored in the recognizer.
    pub method: Method,
    /// Unknown-class sources for the head.
    pub unknown: Vec<UnknownSource>,
    /// Images taken from each unknown source.
    pub unknown_per_source: usize,
    /// Target false-reject rate on held-out digits for the distance threshold.
    pub target_frr: f64,
    /// Training digits held out for calibration (taken from the end of the set).
    pub calibration: usize,
    /// Head training epochs.
    pub head_epochs: usize,
    /// Output file (default: `<model>/recognizer.json`).
    pub out: Option<PathBuf>,
}

impl FitParams {
    /// The recommended settings: both rules, Fashion-MNIST and glyphs as unknowns (10,000
    /// each), FRR 1% on 5,000 held-out digits, 10 head epochs.
    pub fn new(model: PathBuf, source: Source) -> Self {
        Self {
            model,
            source,
            method: Method::Both,
            unknown: vec![UnknownSource::FashionMnist, UnknownSource::Glyphs],
            unknown_per_source: 10_000,
            target_frr: 0.01,
            calibration: 5000,
            head_epochs: 10,
            out: None,
        }
    }

    /// The rate must be a fraction and the head needs an unknown class.
    pub fn check(self) -> Result<ValidFitParams> {
        if !(0.0..1.0).contains(&self.target_frr) {
            return Err(Error::InvalidArgument(format!(
                "--target-frr must be in [0, 1), got {}",
                self.target_frr
            )));
        }
        if self.unknown.is_empty() {
            return Err(Error::InvalidArgument(
                "no unknown source given (fashion-mnist, glyphs or a folder)".into(),
            ));
        }
        Ok(ValidFitParams(self))
    }
}

/// Checked [`FitParams`].
#[derive(Debug, Clone)]
pub struct ValidFitParams(FitParams);

/// What fitting produced.
#[derive(Debug, Clone, Serialize)]
pub struct FitReport {
    /// The recognizer file written.
    pub recognizer: PathBuf,
    /// The distance threshold.
    pub threshold: f32,
    /// Its target false-reject rate.
    pub target_frr: f64,
    /// The false-reject rate it has on the held-out digits.
    pub calibration_frr: f64,
    /// The unknown sources, described.
    pub unknown_sources: Vec<String>,
    /// Training digits held out for the threshold.
    pub held_out: usize,
}

impl ValidFitParams {
    /// Class centres and the head on the fitting digits (+ unknowns), the threshold on the
    /// held-out ones; writes the recognizer.
    pub fn run(&self, home: &Home, progress: &dyn Progress) -> Result<FitReport> {
        let a = &self.0;
        let device = crate::default_device();
        let ck = CheckpointDir::new(&a.model);
        let (cfg, net) = ck.load_model(&device)?;
        let digits = data::load(&a.source, Split::Train, home, progress)?;
        if a.calibration >= digits.len() {
            return Err(Error::InvalidArgument(format!(
                "--calibration {} leaves no digits to fit on ({} images)",
                a.calibration,
                digits.len()
            )));
        }
        let d = cfg.net.dim;
        let emb = embed(&net, &digits, progress);
        let n_fit = digits.len() - a.calibration;
        let k = digits.classes.len();
        let centres = class_centres(
            &emb[..n_fit * d],
            &digits.labels[..n_fit],
            d,
            k,
            cfg.net.normalize,
        );
        let cal: Vec<f32> = emb[n_fit * d..]
            .chunks(d)
            .map(|x| nearest_centre(x, &centres).1)
            .collect();
        let threshold = calibrate_threshold(&cal, a.target_frr);
        let calibration_frr =
            cal.iter().filter(|&&x| x > threshold).count() as f64 / cal.len().max(1) as f64;

        // Head training set: fitting digits + unknown sources, label k = unknown.
        let mut x = emb[..n_fit * d].to_vec();
        let mut y: Vec<u32> = digits.labels[..n_fit].to_vec();
        let (extra, sources) =
            data::unknown_images(&a.unknown, a.unknown_per_source, 1, home, progress)?;
        x.extend(embed(&net, &extra, progress));
        y.extend(std::iter::repeat_n(k as u32, extra.len()));
        let head = head::train_head(
            &x,
            &y,
            d,
            head::HeadTraining {
                n_classes: k,
                epochs: a.head_epochs,
                seed: cfg.seed,
            },
            &device,
            progress,
        );
        let rec = DigitRecognizer {
            version: 1,
            checkpoint: a.model.clone(),
            checkpoint_sha256: crate::digest::sha256_file(&ck.model())?,
            dim: d,
            method: a.method,
            classes: digits.classes.clone(),
            centres,
            threshold,
            target_frr: a.target_frr,
            calibration_frr,
            head,
            unknown_sources: sources.clone(),
        };
        let out = a
            .out
            .clone()
            .unwrap_or_else(|| a.model.join("recognizer.json"));
        rec.save(&out)?;
        Ok(FitReport {
            recognizer: out,
            threshold,
            target_frr: a.target_frr,
            calibration_frr,
            unknown_sources: sources,
            held_out: a.calibration,
        })
    }
}

/// One file's answer.
#[derive(Debug, Clone, Serialize)]
pub struct PredictLine {
    /// The image.
    pub file: PathBuf,
    /// The digit's class name, or `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// The decision score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Distance to the nearest class centre.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance: Option<f32>,
    /// Why the file could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A fitted recognizer with the checkpoint it was fit on.
pub struct DigitReader {
    net: EmbeddingNet,
    dim: usize,
    /// The recognizer.
    pub recognizer: DigitRecognizer,
}

impl DigitReader {
    /// Loads the checkpoint and the recognizer (default `<model>/recognizer.json`), refusing
    /// a recognizer fit on other weights.
    pub fn load(model: &Path, recognizer: Option<&Path>) -> Result<Self> {
        let device = crate::default_device();
        let ck = CheckpointDir::new(model);
        let (cfg, net) = ck.load_model(&device)?;
        let rp = recognizer.map_or_else(|| model.join("recognizer.json"), Path::to_path_buf);
        let recognizer = DigitRecognizer::load_for(&rp, &ck.model())?;
        Ok(Self {
            net,
            dim: cfg.net.dim,
            recognizer,
        })
    }

    /// The digit of each file, or `unknown`, under `method` (default: the recognizer's). An
    /// unreadable file gets its error and the others go on.
    pub fn predict_files(
        &self,
        files: &[PathBuf],
        method: Option<Method>,
    ) -> Result<Vec<PredictLine>> {
        let method = method.unwrap_or(self.recognizer.method);
        let (set, rows) = data::mnistify::mnistify_files(files)?;
        let emb = if set.is_empty() {
            Vec::new()
        } else {
            embed(&self.net, &set, &crate::NoProgress)
        };
        let lines = files
            .iter()
            .zip(rows)
            .map(|(f, row)| {
                let mut line = PredictLine {
                    file: f.clone(),
                    answer: None,
                    score: None,
                    distance: None,
                    error: None,
                };
                match row {
                    Ok(i) => {
                        let x = &emb[i * self.dim..(i + 1) * self.dim];
                        let p = self.recognizer.predict(x, method);
                        line.answer = Some(p.label.map_or("unknown".to_string(), |v| {
                            self.recognizer.classes[v as usize].clone()
                        }));
                        line.score = Some(p.score);
                        line.distance = Some(p.distance);
                    }
                    Err(e) => line.error = Some(e),
                }
                line
            })
            .collect();
        Ok(lines)
    }
}

/// Evaluating a recognizer on test digits plus unknown sets.
#[derive(Debug, Clone)]
pub struct EvalParams {
    /// Embedding checkpoint folder the recognizer was fit on.
    pub model: PathBuf,
    /// Recognizer file (default: `<model>/recognizer.json`).
    pub recognizer: Option<PathBuf>,
    /// The digits (their test split).
    pub source: Source,
    /// Handwriting-style test letters to render (fonts never used in fitting).
    pub letters: usize,
    /// Also use the Fashion-MNIST test split as unknowns.
    pub fashion: bool,
    /// Folder for the confusion-matrix plots (default: the checkpoint folder).
    pub out: Option<PathBuf>,
}

impl EvalParams {
    /// Nothing to refuse yet beyond what loading checks.
    pub fn check(self) -> Result<ValidEvalParams> {
        Ok(ValidEvalParams(self))
    }
}

/// Checked [`EvalParams`].
#[derive(Debug, Clone)]
pub struct ValidEvalParams(EvalParams);

/// Every rule against every unknown set.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The recognizer evaluated.
    pub recognizer: PathBuf,
    /// Test digits.
    pub digits: usize,
    /// Its distance threshold.
    #[serde(skip)]
    pub threshold: f32,
    /// One report per unknown set and rule.
    pub reports: Vec<OpenSetReport>,
    /// Confusion-matrix plots written.
    pub plots: Vec<PathBuf>,
}

impl ValidEvalParams {
    /// Embeds the test digits and each unknown set, scores the three rules, plots the
    /// confusion matrices of the first unknown set.
    pub fn run(&self, home: &Home, progress: &dyn Progress) -> Result<EvalReport> {
        let a = &self.0;
        let reader = DigitReader::load(&a.model, a.recognizer.as_deref())?;
        let rec = &reader.recognizer;
        let digits = data::load(&a.source, Split::Test, home, progress)?;
        let demb = embed(&reader.net, &digits, progress);
        let mut unknowns: Vec<(String, Vec<f32>)> = Vec::new();
        let fonts = glyphs::read_fonts(glyphs::EVAL_FONT_FILES)?;
        let letters = glyphs::render_letters(&fonts, a.letters, 2)?;
        unknowns.push((
            format!("{} handwriting-font letters", letters.len()),
            embed(&reader.net, &letters, progress),
        ));
        if a.fashion {
            let f = data::load(
                &Source::Known(KnownSet::FashionMnist),
                Split::Test,
                home,
                progress,
            )?;
            unknowns.push((
                format!("{} Fashion-MNIST test images", f.len()),
                embed(&reader.net, &f, progress),
            ));
        }
        let mut reports = Vec::new();
        for (name, u) in &unknowns {
            for m in Method::ALL {
                reports.push(evaluate(rec, m, &demb, &digits.labels, u, name));
            }
        }
        let out = a.out.clone().unwrap_or_else(|| a.model.clone());
        std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
        let mut names = rec.classes.clone();
        names.push("unknown".into());
        let mut plots = Vec::new();
        for r in reports.iter().filter(|r| r.unknown_set == unknowns[0].0) {
            let p = out.join(format!("confusion-{}.png", r.method.name()));
            crate::plot::confusion_matrix(
                &p,
                &format!("{} method: MNIST test + {}", r.method.name(), r.unknown_set),
                &names,
                &r.confusion,
            )?;
            plots.push(p);
        }
        Ok(EvalReport {
            recognizer: a
                .recognizer
                .clone()
                .unwrap_or_else(|| a.model.join("recognizer.json")),
            digits: digits.len(),
            threshold: rec.threshold,
            reports,
            plots,
        })
    }
}

impl std::fmt::Display for FitReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "recognizer: {}", self.recognizer.display())?;
        write!(
            f,
            "distance threshold {:.4} (false rejects on {} held-out digits: {:.2}%, target {:.2}%)",
            self.threshold,
            self.held_out,
            100.0 * self.calibration_frr,
            100.0 * self.target_frr
        )?;
        for s in &self.unknown_sources {
            write!(f, "\nunknown class: {s}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for EvalReport {
    /// Every rule against every unknown set, one row each.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} MNIST test digits; distance threshold {:.4}",
            self.digits, self.threshold
        )?;
        writeln!(
            f,
            "{:<40} {:<9} {:>9} {:>10} {:>10} {:>9} {:>7} {:>11}",
            "unknown set",
            "method",
            "digit acc",
            "digit rej",
            "unk. rej",
            "overall",
            "AUROC",
            "closed-set"
        )?;
        for r in &self.reports {
            writeln!(
                f,
                "{:<40} {:<9} {:>8.2}% {:>9.2}% {:>9.2}% {:>8.2}% {:>7.4} {:>10.2}%",
                r.unknown_set,
                r.method.name(),
                100.0 * r.digit_accuracy,
                100.0 * r.digit_rejection,
                100.0 * r.unknown_rejection,
                100.0 * r.overall_accuracy,
                r.auroc,
                100.0 * r.closed_set_accuracy
            )?;
        }
        write!(
            f,
            "The notebook's 11-class head scored 84.3% on MNIST test digits (its 'digit acc')."
        )
    }
}
