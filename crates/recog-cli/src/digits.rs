//! `recog digits`: open-set digit recognition (fit, predict, eval).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use recog::data::unknowns::Generator;
use recog::data::UnknownSource;
use recog::openset::committee::{CommitteeParams, Views};
use recog::openset::logo::LogoParams;
use recog::openset::tasks::{DigitReader, EvalParams, FitParams};
use recog::openset::{self, Method};
use recog::Home;

use crate::commands::{emit, DataArg};
use crate::progress::Bars;

#[derive(Subcommand, Debug)]
pub enum DigitsCommand {
    /// Fit a recognizer (head + calibrated distance) on a trained embedding checkpoint.
    Fit(FitArgs),
    /// Name the digit in image files of any size and format, or say "unknown".
    Predict(PredictArgs),
    /// Compare every rule on MNIST test digits plus each unknown generator.
    Eval(EvalArgs),
    /// Leave-one-generator-out: each generator held out from both the embedding's training
    /// and the recognizer's fitting, every rule, one row per held-out generator.
    EvalLogo(LogoArgs),
    /// Form a committee of checkpoints trained alike with different seeds, optionally over
    /// shifted views of each image: their embeddings concatenated; `fit`, `predict`, `eval`
    /// and `eval-logo` take its folder as --model.
    Committee(CommitteeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct CommitteeArgs {
    /// Member checkpoint folders (`recog train --out`), two or more (one with --views).
    #[arg(long = "model", required = true)]
    pub models: Vec<PathBuf>,
    /// The committee folder (committee.json is written there).
    #[arg(long)]
    pub out: PathBuf,
    /// Views of each image every member embeds (test-time augmentation): `shift1` adds the
    /// four one-pixel shifts, at five times the embedding work.
    #[arg(long, value_enum, default_value = "one")]
    pub views: Views,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which unknown generators, and how many images of each part.
#[derive(Args, Debug, Clone)]
pub struct GeneratorArgs {
    /// Unknown generators, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "glyphs,strokes,fonts,kana,fashion-mnist,fragments"
    )]
    pub generators: Vec<Generator>,
    /// Images of each generator's part.
    #[arg(long, default_value_t = 5000)]
    pub per_generator: usize,
}

#[derive(Args, Debug, Clone)]
pub struct LogoArgs {
    /// Embedding checkpoints (or committees) trained with outlier exposure from different
    /// generators (`recog train --unknown ...`); each generator is held out with the first
    /// one that was not trained on it.
    #[arg(long = "model", required = true)]
    pub models: Vec<PathBuf>,
    #[command(flatten)]
    pub data: DataArg,
    /// The generators held out in turn (and fit on otherwise).
    #[command(flatten)]
    pub unknowns: GeneratorArgs,
    /// Target false-reject rate on held-out digits of every calibrated threshold.
    #[arg(long, default_value_t = 0.01)]
    pub target_frr: f64,
    /// Write the report as JSON here too.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Draw each rule's operating points (digit accuracy against the worst held-out
    /// generator, at target FRR 0.25% to 4%) here (.png or .svg).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct FitArgs {
    /// Embedding checkpoint folder (`recog train --out`) or committee folder (`recog digits
    /// committee`).
    #[arg(long, default_value = "runs/mnist")]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArg,
    /// Default decision rule stored in the recognizer [default: distance for D > 3, both for
    /// D <= 3: chosen by `digits eval-logo`].
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    /// Unknown-class sources for the head, comma separated: the fitting parts of the
    /// generators `glyphs`, `strokes`, `fonts`, `kana`, `fashion-mnist`, `fragments`,
    /// `transformed` (training digits turned, mirrored, cut or smeared; `all`: every one), or
    /// an IDX / image folder.
    #[arg(long, default_value = "all")]
    pub unknown: String,
    /// Images taken from each unknown source.
    #[arg(long, default_value_t = 10000)]
    pub unknown_per_source: usize,
    /// Target false-reject rate on held-out digits of every calibrated threshold [default:
    /// 0.005 for D > 3, 0.01 for D <= 3].
    #[arg(long)]
    pub target_frr: Option<f64>,
    /// Training digits held out for calibration (taken from the end of the set).
    #[arg(long, default_value_t = 5000)]
    pub calibration: usize,
    /// Head training epochs.
    #[arg(long, default_value_t = 10)]
    pub head_epochs: usize,
    /// Output file (default: <model>/recognizer.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// DigitRecognizer file (default: <model>/recognizer.json).
    #[arg(long)]
    pub recognizer: Option<PathBuf>,
    /// Embedding checkpoint or committee folder the recognizer was fit on.
    #[arg(long, default_value = "runs/mnist")]
    pub model: PathBuf,
    /// Override the recognizer's decision rule.
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    /// Images (PNG or JPEG, any size, dark-on-light or light-on-dark).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// DigitRecognizer file (default: <model>/recognizer.json).
    #[arg(long)]
    pub recognizer: Option<PathBuf>,
    /// Embedding checkpoint or committee folder the recognizer was fit on.
    #[arg(long, default_value = "runs/mnist")]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArg,
    /// The generators, each from its evaluation part (fonts, seeds and splits never used in
    /// fitting).
    #[command(flatten)]
    pub unknowns: GeneratorArgs,
    /// Folder for the confusion-matrix plots (default: the checkpoint folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(c: DigitsCommand) -> Result<()> {
    match c {
        DigitsCommand::Fit(a) => fit(&a).map(|_| ()),
        DigitsCommand::Predict(a) => predict(&a),
        DigitsCommand::Eval(a) => eval(&a).map(|_| ()),
        DigitsCommand::Committee(a) => {
            let r = CommitteeParams {
                views: a.views,
                ..CommitteeParams::new(a.models.clone(), a.out.clone())
            }
            .check()?
            .run()?;
            emit(a.json, &r)
        }
        DigitsCommand::EvalLogo(a) => {
            let r = LogoParams {
                generators: a.unknowns.generators.clone(),
                fit_per_generator: a.unknowns.per_generator,
                eval_per_generator: a.unknowns.per_generator,
                target_frr: a.target_frr,
                ..LogoParams::new(a.models.clone(), a.data.source()?)
            }
            .check()?
            .run(&Home::from_env(), &Bars::new(a.json))?;
            if let Some(p) = &a.out {
                std::fs::write(p, serde_json::to_string_pretty(&r)?)?;
            }
            if let Some(p) = &a.plot {
                r.plot_operating_points(p, recog::openset::logo::GOAL)?;
            }
            emit(a.json, &r)
        }
    }
}

pub fn fit(a: &FitArgs) -> Result<PathBuf> {
    let bars = Bars::new(a.json);
    let r = FitParams {
        model: a.model.clone(),
        source: a.data.source()?,
        method: a.method,
        unknown: UnknownSource::parse_list(&a.unknown)?,
        unknown_per_source: a.unknown_per_source,
        target_frr: a.target_frr,
        calibration: a.calibration,
        head_epochs: a.head_epochs,
        out: a.out.clone(),
    }
    .check()?
    .run(&Home::from_env(), &bars)?;
    emit(a.json, &r)?;
    Ok(r.recognizer)
}

fn predict(a: &PredictArgs) -> Result<()> {
    let reader = DigitReader::load(&a.model, a.recognizer.as_deref())?;
    let lines = reader.predict_files(&a.images, a.method)?;
    let mut failed = 0;
    for l in &lines {
        if l.error.is_some() {
            failed += 1;
        }
        if a.json {
            println!("{}", serde_json::to_string(l)?);
        } else if let Some(e) = &l.error {
            eprintln!("error: {e}");
        } else {
            println!(
                "{}: {}  (score {:.3}, distance {:.3}, threshold {:.3})",
                l.file.display(),
                l.answer.as_deref().unwrap_or("?"),
                l.score.unwrap_or(f32::NAN),
                l.distance.unwrap_or(f32::NAN),
                reader.recognizer.threshold
            );
        }
    }
    if failed > 0 {
        bail!("{failed} of {} images could not be read", a.images.len());
    }
    Ok(())
}

pub fn eval(a: &EvalArgs) -> Result<Vec<openset::OpenSetReport>> {
    let bars = Bars::new(a.json);
    let r = EvalParams {
        model: a.model.clone(),
        recognizer: a.recognizer.clone(),
        source: a.data.source()?,
        generators: a.unknowns.generators.clone(),
        per_generator: a.unknowns.per_generator,
        out: a.out.clone(),
    }
    .check()?
    .run(&Home::from_env(), &bars)?;
    emit(a.json, &r)?;
    if !a.json {
        for p in &r.plots {
            println!("wrote {}", p.display());
        }
    }
    Ok(r.reports)
}
