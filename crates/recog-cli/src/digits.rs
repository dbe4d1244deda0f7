//! `recog digits`: open-set digit recognition (fit, predict, eval).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use recog::data::{self, glyphs, KnownSet, Source, Split};
use recog::openset::{self, Method, Recognizer};
use recog::train::CheckpointDir;
use recog::{Home, Progress};

use crate::commands::DataArg;
use crate::progress::Bars;

#[derive(Subcommand, Debug)]
pub enum DigitsCommand {
    /// Fit a recognizer (head + calibrated distance) on a trained embedding checkpoint.
    Fit(FitArgs),
    /// Name the digit in image files of any size and format, or say "unknown".
    Predict(PredictArgs),
    /// Compare the three methods on MNIST test digits plus unknown sets.
    Eval(EvalArgs),
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodArg {
    /// The notebook's 11-class head.
    Head,
    /// Nearest class centre with a calibrated threshold.
    Distance,
    /// Head and distance must both accept.
    Both,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Self {
        match m {
            MethodArg::Head => Method::Head,
            MethodArg::Distance => Method::Distance,
            MethodArg::Both => Method::Both,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct FitArgs {
    /// Embedding checkpoint folder (`recog train --out`).
    #[arg(long, default_value = "runs/mnist")]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArg,
    /// Default decision rule stored in the recognizer.
    #[arg(long, value_enum, default_value_t = MethodArg::Both)]
    pub method: MethodArg,
    /// Unknown-class sources for the head, comma separated: `fashion-mnist`, `glyphs` (letters
    /// recog renders from fonts never used for evaluation), or an IDX / image folder.
    #[arg(long, default_value = "fashion-mnist,glyphs")]
    pub unknown: String,
    /// Images taken from each unknown source.
    #[arg(long, default_value_t = 10000)]
    pub unknown_per_source: usize,
    /// Target false-reject rate on held-out digits for the distance threshold.
    #[arg(long, default_value_t = 0.01)]
    pub target_frr: f64,
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
    /// Recognizer file (default: <model>/recognizer.json).
    #[arg(long)]
    pub recognizer: Option<PathBuf>,
    /// Embedding checkpoint folder the recognizer was fit on.
    #[arg(long, default_value = "runs/mnist")]
    pub model: PathBuf,
    /// Override the recognizer's decision rule.
    #[arg(long, value_enum)]
    pub method: Option<MethodArg>,
    /// Images (PNG or JPEG, any size, dark-on-light or light-on-dark).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// Recognizer file (default: <model>/recognizer.json).
    #[arg(long)]
    pub recognizer: Option<PathBuf>,
    /// Embedding checkpoint folder the recognizer was fit on.
    #[arg(long, default_value = "runs/mnist")]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArg,
    /// Handwriting-style test letters to render (fonts never used in fitting).
    #[arg(long, default_value_t = 5000)]
    pub letters: usize,
    /// Also evaluate against the Fashion-MNIST test split as unknowns.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub fashion: bool,
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
    }
}

fn embed(net: &recog::nn::EmbeddingNet, d: &data::Dataset, bars: &dyn Progress) -> Vec<f32> {
    net.embed_dataset(d, 500, &recog::default_device(), bars)
}

#[derive(Serialize)]
struct FitReport {
    recognizer: PathBuf,
    threshold: f32,
    target_frr: f64,
    calibration_frr: f64,
    unknown_sources: Vec<String>,
}

pub fn fit(a: &FitArgs) -> Result<PathBuf> {
    let home = Home::from_env();
    let bars = Bars::new(a.json);
    let device = recog::default_device();
    let ck = CheckpointDir::new(&a.model);
    let (cfg, net) = ck.load_model(&device)?;
    if !(0.0..1.0).contains(&a.target_frr) {
        bail!("--target-frr must be in [0, 1), got {}", a.target_frr);
    }
    let src = a.data.source()?;
    let digits = data::load(&src, Split::Train, &home, &bars)?;
    if a.calibration >= digits.len() {
        bail!(
            "--calibration {} leaves no digits to fit on ({} images)",
            a.calibration,
            digits.len()
        );
    }
    let d = cfg.net.dim;
    let emb = embed(&net, &digits, &bars);
    let n_fit = digits.len() - a.calibration;
    let k = digits.classes.len();
    let centres = openset::class_centres(
        &emb[..n_fit * d],
        &digits.labels[..n_fit],
        d,
        k,
        cfg.net.normalize,
    );
    let cal: Vec<f32> = emb[n_fit * d..]
        .chunks(d)
        .map(|x| openset::nearest_centre(x, &centres).1)
        .collect();
    let threshold = openset::calibrate_threshold(&cal, a.target_frr);
    let calibration_frr =
        cal.iter().filter(|&&x| x > threshold).count() as f64 / cal.len().max(1) as f64;

    // Head training set: fitting digits + unknown sources, label k = unknown.
    let mut x = emb[..n_fit * d].to_vec();
    let mut y: Vec<u32> = digits.labels[..n_fit].to_vec();
    let (extra, sources) = data::unknown_images(&a.unknown, a.unknown_per_source, 1, &home, &bars)?;
    x.extend(embed(&net, &extra, &bars));
    y.extend(std::iter::repeat_n(k as u32, extra.len()));
    let head = openset::head::train_head(
        &x,
        &y,
        d,
        openset::head::HeadTraining {
            n_classes: k,
            epochs: a.head_epochs,
            seed: cfg.seed,
        },
        &device,
        &bars,
    );
    let rec = Recognizer {
        version: 1,
        checkpoint: a.model.clone(),
        checkpoint_sha256: recog::digest::sha256_file(&ck.model())?,
        dim: d,
        method: a.method.into(),
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
    let r = FitReport {
        recognizer: out.clone(),
        threshold,
        target_frr: a.target_frr,
        calibration_frr,
        unknown_sources: sources,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("recognizer: {}", out.display());
        println!("distance threshold {threshold:.4} (false rejects on {} held-out digits: {:.2}%, target {:.2}%)", a.calibration, 100.0 * calibration_frr, 100.0 * a.target_frr);
        for s in &r.unknown_sources {
            println!("unknown class: {s}");
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct PredictLine {
    file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    answer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    distance: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn predict(a: &PredictArgs) -> Result<()> {
    let device = recog::default_device();
    let ck = CheckpointDir::new(&a.model);
    let (cfg, net) = ck.load_model(&device)?;
    let rp = a
        .recognizer
        .clone()
        .unwrap_or_else(|| a.model.join("recognizer.json"));
    let rec = Recognizer::load_for(&rp, &ck.model())?;
    let method = a.method.map(Method::from).unwrap_or(rec.method);
    let mut failed = 0;
    let mut ok_imgs = Vec::new();
    let mut lines: Vec<PredictLine> = Vec::new();
    for f in &a.images {
        match data::mnistify::mnistify_file(f) {
            Ok(px) => {
                ok_imgs.push((lines.len(), px));
                lines.push(PredictLine {
                    file: f.clone(),
                    answer: None,
                    score: None,
                    distance: None,
                    error: None,
                });
            }
            Err(e) => {
                failed += 1;
                lines.push(PredictLine {
                    file: f.clone(),
                    answer: None,
                    score: None,
                    distance: None,
                    error: Some(e.to_string()),
                });
            }
        }
    }
    if !ok_imgs.is_empty() {
        let px: Vec<u8> = ok_imgs
            .iter()
            .flat_map(|(_, p)| p.iter().copied())
            .collect();
        let set = data::Dataset::new(px, vec![0; ok_imgs.len()], 28, 28, vec!["?".into()])?;
        let emb = embed(&net, &set, &recog::NoProgress);
        for ((li, _), x) in ok_imgs.iter().zip(emb.chunks(cfg.net.dim)) {
            let p = rec.predict(x, method);
            let l = &mut lines[*li];
            l.answer = Some(
                p.label
                    .map_or("unknown".to_string(), |v| rec.classes[v as usize].clone()),
            );
            l.score = Some(p.score);
            l.distance = Some(p.distance);
        }
    }
    for l in &lines {
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
                rec.threshold
            );
        }
    }
    if failed > 0 {
        bail!("{failed} of {} images could not be read", a.images.len());
    }
    Ok(())
}

#[derive(Serialize)]
struct EvalOut {
    recognizer: PathBuf,
    digits: usize,
    reports: Vec<openset::OpenSetReport>,
    plots: Vec<PathBuf>,
}

pub fn eval(a: &EvalArgs) -> Result<Vec<openset::OpenSetReport>> {
    let home = Home::from_env();
    let bars = Bars::new(a.json);
    let device = recog::default_device();
    let ck = CheckpointDir::new(&a.model);
    let (_, net) = ck.load_model(&device)?;
    let rp = a
        .recognizer
        .clone()
        .unwrap_or_else(|| a.model.join("recognizer.json"));
    let rec = Recognizer::load_for(&rp, &ck.model())?;
    let digits = data::load(&a.data.source()?, Split::Test, &home, &bars)?;
    let demb = embed(&net, &digits, &bars);
    let mut unknowns: Vec<(String, Vec<f32>)> = Vec::new();
    let fonts = glyphs::read_fonts(glyphs::EVAL_FONT_FILES)?;
    let letters = glyphs::render_letters(&fonts, a.letters, 2)?;
    unknowns.push((
        format!("{} handwriting-font letters", letters.len()),
        embed(&net, &letters, &bars),
    ));
    if a.fashion {
        let f = data::load(
            &Source::Known(KnownSet::FashionMnist),
            Split::Test,
            &home,
            &bars,
        )?;
        unknowns.push((
            format!("{} Fashion-MNIST test images", f.len()),
            embed(&net, &f, &bars),
        ));
    }
    let mut reports = Vec::new();
    for (name, u) in &unknowns {
        for m in Method::ALL {
            reports.push(openset::evaluate(&rec, m, &demb, &digits.labels, u, name));
        }
    }
    let out = a.out.clone().unwrap_or_else(|| a.model.clone());
    std::fs::create_dir_all(&out)?;
    let mut names = rec.classes.clone();
    names.push("unknown".into());
    let mut plots = Vec::new();
    for r in reports.iter().filter(|r| r.unknown_set == unknowns[0].0) {
        let p = out.join(format!("confusion-{}.png", r.method.name()));
        recog::plot::confusion_matrix(
            &p,
            &format!("{} method: MNIST test + {}", r.method.name(), r.unknown_set),
            &names,
            &r.confusion,
        )?;
        plots.push(p);
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&EvalOut {
                recognizer: rp,
                digits: digits.len(),
                reports: reports.clone(),
                plots
            })?
        );
    } else {
        println!(
            "{} MNIST test digits; distance threshold {:.4}",
            digits.len(),
            rec.threshold
        );
        println!(
            "{:<40} {:<9} {:>9} {:>10} {:>10} {:>9} {:>7} {:>11}",
            "unknown set",
            "method",
            "digit acc",
            "digit rej",
            "unk. rej",
            "overall",
            "AUROC",
            "closed-set"
        );
        for r in &reports {
            println!(
                "{:<40} {:<9} {:>8.2}% {:>9.2}% {:>9.2}% {:>8.2}% {:>7.4} {:>10.2}%",
                r.unknown_set,
                r.method.name(),
                100.0 * r.digit_accuracy,
                100.0 * r.digit_rejection,
                100.0 * r.unknown_rejection,
                100.0 * r.overall_accuracy,
                r.auroc,
                100.0 * r.closed_set_accuracy
            );
        }
        println!(
            "The notebook's 11-class head scored 84.3% on MNIST test digits (its 'digit acc')."
        );
        for p in &plots {
            println!("wrote {}", p.display());
        }
    }
    Ok(reports)
}
