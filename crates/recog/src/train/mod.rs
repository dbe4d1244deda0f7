//! Training an embedding network with a triplet loss.
//!
//! Runs are deterministic on CPU: every epoch re-seeds both the sampler RNG and the device RNG
//! (dropout) from `seed + epoch`, so a run resumed at an epoch boundary continues exactly as
//! an uninterrupted one.

pub mod augment;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::{sampler, Dataset};
use crate::error::{Error, Result};
use crate::metric::{Distance, Miner, Reduction, TripletMarginLoss, Triplets};
use crate::nn::{EmbeddingNet, EmbeddingNetConfig};
use crate::progress::Progress;

/// Where each batch's triplets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Sampling {
    /// The notebook's random (A, P, N) triplets, `triplets` per batch (3x as many images).
    Triplets {
        /// Triplets per batch.
        triplets: usize,
    },
    /// P classes x K images per batch, triplets mined online.
    Pk {
        /// Classes per batch.
        p: usize,
        /// Images per class.
        k: usize,
        /// The miner.
        miner: Miner,
    },
}

impl Sampling {
    /// Images per batch.
    pub fn batch_images(&self) -> usize {
        match *self {
            Sampling::Triplets { triplets } => 3 * triplets,
            Sampling::Pk { p, k, .. } => p * k,
        }
    }
}

/// Learning-rate schedule over the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Constant learning rate.
    Constant,
    /// Cosine decay from `lr` to 0 over all steps.
    #[default]
    Cosine,
}

/// Everything that defines a training run; saved as `config.json` beside the checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The network.
    pub net: EmbeddingNetConfig,
    /// The loss.
    pub loss: TripletMarginLoss,
    /// The batch sampler / miner.
    pub sampling: Sampling,
    /// Number of epochs.
    pub epochs: usize,
    /// Steps per epoch; 0 means one pass over the training set.
    pub steps_per_epoch: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Random shifts of up to this many pixels (0 = none).
    pub augment_shift: usize,
    /// Random rotation of up to this many degrees, with a random scale of up to the same
    /// number of percent (0 = none; then shifts are whole pixels).
    #[serde(default)]
    pub augment_rotate: f32,
    /// Validation batches per epoch (on the test split, fixed seed).
    pub val_batches: usize,
    /// The seed.
    pub seed: u64,
    /// From this epoch on (1-based), P x K batches switch to batch-hard mining: a curriculum
    /// that starts with the gentler semi-hard triplets (batch-hard from scratch can collapse
    /// normalised embeddings) and ends on the hardest ones.
    #[serde(default)]
    pub hard_from_epoch: Option<usize>,
    /// Outlier exposure: non-digit sources added to training as one extra "unknown" class
    /// (see [`crate::data::unknown_images`]), so that the embedding learns to place
    /// non-digits away from the digits.
    #[serde(default)]
    pub unknown: Option<UnknownSpec>,
}

/// Non-digit images added to training.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownSpec {
    /// Comma-separated sources (`glyphs`, `fashion-mnist`, a folder).
    pub sources: String,
    /// Images per source.
    pub per_source: usize,
}

impl TrainConfig {
    /// Defaults for an embedding dimension: online semi-hard mining on 10 x 30 batches
    /// (300 images, the notebook's batch size), with an L2-normalised output and margin 0.2 for
    /// D > 3, unnormalised with margin 1 otherwise.
    pub fn for_dim(dim: usize) -> Self {
        let normalized = dim > 3;
        // Dropout before the embedding layer, instead of the notebook's 0.5 (8 epochs, measured):
        // D = 2: 1-NN 96.29% with 0.5, 97.32% with 0.1 (0.5 crowds classes at the origin);
        // D = 64: P@1 98.95% with 0.5, 99.06% with 0.1, 99.25% with 0.
        let net = EmbeddingNetConfig {
            dim,
            normalize: normalized,
            dropout_dense: if normalized { 0.0 } else { 0.1 },
            ..EmbeddingNetConfig::notebook()
        };
        Self {
            net,
            loss: TripletMarginLoss {
                margin: if normalized { 0.2 } else { 1.0 },
                distance: Distance::Euclidean,
                reduction: Reduction::Mean,
            },
            sampling: Sampling::Pk {
                p: 10,
                k: 30,
                miner: Miner::SemiHard,
            },
            epochs: 8,
            steps_per_epoch: 0,
            lr: 1e-3,
            schedule: Schedule::Cosine,
            augment_shift: 2,
            augment_rotate: 0.0,
            val_batches: 10,
            seed: 42,
            hard_from_epoch: None,
            unknown: None,
        }
    }

    /// The notebook's setting: D = 2, random triplets, 100 per batch, squared Euclidean,
    /// margin 1 (its `alpha`), dropout 0.5, no augmentation, constant learning rate.
    pub fn notebook() -> Self {
        Self {
            net: EmbeddingNetConfig::notebook(),
            loss: TripletMarginLoss {
                margin: 1.0,
                distance: Distance::SquaredEuclidean,
                reduction: Reduction::Mean,
            },
            sampling: Sampling::Triplets { triplets: 100 },
            schedule: Schedule::Constant,
            augment_shift: 0,
            ..Self::for_dim(2)
        }
    }

    /// Checks ranges before any work starts.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.net.dim == 0 {
            return bad("embedding dimension must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.net.dropout_conv)
            || !(0.0..1.0).contains(&self.net.dropout_dense)
        {
            return bad("dropout must be in [0, 1)".into());
        }
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("learning rate must be positive, got {}", self.lr));
        }
        if self.loss.margin < 0.0 || !self.loss.margin.is_finite() {
            return bad(format!("margin must be >= 0, got {}", self.loss.margin));
        }
        match self.sampling {
            Sampling::Triplets { triplets: 0 } => bad("triplets per batch must be >= 1".into()),
            Sampling::Pk { p, k, .. } if p < 2 || k < 2 => bad(format!(
                "P x K batches need P >= 2 classes and K >= 2 images, got {p} x {k}"
            )),
            _ => Ok(()),
        }
    }
}

/// One epoch's figures, one JSON line each in `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Mean validation loss (test split, fixed batches, no dropout).
    pub val_loss: f64,
    /// Mean fraction of triplets with a positive loss.
    pub active_fraction: f64,
    /// Mean pairwise distance inside training batches.
    pub mean_distance: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Training throughput.
    pub images_per_s: f64,
    /// Wall time of the epoch.
    pub seconds: f64,
}

/// Resume state saved after each epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    epochs_done: usize,
}

/// The files of a checkpoint folder.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    /// The folder.
    pub dir: PathBuf,
}

impl CheckpointDir {
    /// A checkpoint folder (it need not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    /// `model.bpk`, the weights (burnpack).
    pub fn model(&self) -> PathBuf {
        self.dir.join("model.bpk")
    }
    /// `optimizer.bpk`.
    pub fn optimizer(&self) -> PathBuf {
        self.dir.join("optimizer.bpk")
    }
    /// `state.json`.
    fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    /// `metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }

    /// Reads the saved training configuration.
    pub fn read_config(&self) -> Result<TrainConfig> {
        read_json(&self.config())
    }

    /// Reads the per-epoch metrics.
    pub fn read_metrics(&self) -> Result<Vec<EpochMetrics>> {
        let p = self.metrics();
        let s = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        s.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| Error::Json {
                    path: p.clone(),
                    source: e,
                })
            })
            .collect()
    }

    /// Loads the trained network on `device`.
    pub fn load_model(&self, device: &Device) -> Result<(TrainConfig, EmbeddingNet)> {
        let cfg = self.read_config()?;
        let path = self.model();
        if !path.exists() {
            return Err(Error::Checkpoint {
                path,
                problem: "no weights: train first (`recog train`)".into(),
            });
        }
        let net = cfg
            .net
            .init(device)
            .try_load_file(&path)
            .map_err(|e| Error::Checkpoint {
                path: path.clone(),
                problem: e.to_string(),
            })?;
        Ok((cfg, net))
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&s).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    })
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    })?;
    std::fs::write(path, s).map_err(|e| Error::io(path, e))
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// Per-epoch metrics of the whole run (resumed epochs included).
    pub epochs: Vec<EpochMetrics>,
    /// Warnings raised (collapse, stuck loss).
    pub warnings: Vec<String>,
}

/// Builds the `[n, 1, h, w]` input tensor of dataset images `idx`, shifted at random by up
/// to `shift` pixels.
pub fn images_tensor(
    data: &Dataset,
    idx: &[usize],
    shift: usize,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Tensor<4> {
    images_tensor_aug(data, idx, shift, 0.0, rng, device)
}

/// [`images_tensor`] with a random rotation of up to `rotate` degrees and a random scale of
/// up to `rotate` percent (bilinear); `rotate = 0` keeps whole-pixel shifts.
pub fn images_tensor_aug(
    data: &Dataset,
    idx: &[usize],
    shift: usize,
    rotate: f32,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Tensor<4> {
    let mut px = data.batch_f32(idx);
    if rotate > 0.0 {
        let a = augment::Affine {
            shift: shift as f32,
            rotate_deg: rotate,
            scale: rotate / 100.0,
        };
        augment::random_affine(&mut px, data.height, data.width, a, rng);
    } else if shift > 0 {
        augment::random_shift(&mut px, data.height, data.width, shift, rng);
    }
    Tensor::from_data(
        TensorData::new(px, [idx.len(), 1, data.height, data.width]),
        device,
    )
}

/// Computes the loss of one batch; `Triplets` come from the sampler layout or the miner.
#[allow(clippy::too_many_arguments)] // crate-internal; one call site per use
pub(crate) fn batch_loss(
    net: &EmbeddingNet,
    cfg: &TrainConfig,
    data: &Dataset,
    idx: &[usize],
    rng: &mut ChaCha8Rng,
    shift: usize,
    epoch: Option<usize>,
    device: &Device,
) -> (crate::metric::loss::LossOutput, f32) {
    let rotate = if shift > 0 { cfg.augment_rotate } else { 0.0 };
    let x = images_tensor_aug(data, idx, shift, rotate, rng, device);
    let emb = net.forward(x);
    let n = idx.len();
    let d = cfg.net.dim;
    let host: Vec<f32> = emb
        .clone()
        .detach()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let dist = cfg.loss.distance.pairwise_host(&host, n, d);
    let mean_dist = if n > 1 {
        dist.iter().sum::<f32>() / (n * (n - 1)) as f32
    } else {
        0.0
    };
    let triplets = match cfg.sampling {
        Sampling::Triplets { triplets } => Triplets::stacked(triplets.min(n / 3)),
        Sampling::Pk { miner, .. } => {
            let labels: Vec<u32> = idx.iter().map(|&i| data.labels[i]).collect();
            let miner = match (cfg.hard_from_epoch, epoch) {
                (Some(h), Some(e)) if e + 1 >= h => Miner::BatchHard,
                _ => miner,
            };
            miner.mine(&dist, &labels, cfg.loss.margin, rng)
        }
    };
    (cfg.loss.forward(emb, &triplets), mean_dist)
}

pub(crate) fn sample_batch(
    cfg: &TrainConfig,
    by_class: &[Vec<usize>],
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    match cfg.sampling {
        Sampling::Triplets { triplets } => sampler::random_triplets(by_class, triplets, rng),
        Sampling::Pk { p, k, .. } => sampler::pk_batch(by_class, p, k, rng),
    }
}

fn lr_at(cfg: &TrainConfig, step: usize, total: usize) -> f64 {
    match cfg.schedule {
        Schedule::Constant => cfg.lr,
        Schedule::Cosine => {
            let t = step as f64 / total.max(1) as f64;
            cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
        }
    }
}

/// Steps per epoch for a config and training set.
pub fn steps_per_epoch(cfg: &TrainConfig, n_train: usize) -> usize {
    if cfg.steps_per_epoch > 0 {
        cfg.steps_per_epoch
    } else {
        (n_train / cfg.sampling.batch_images()).max(1)
    }
}

/// A fresh Adam with PyTorch's defaults (betas 0.9/0.999, eps 1e-8; burn's own eps is 1e-5).
pub fn adam() -> ModuleOptimizer {
    AdamConfig::new().with_epsilon(1e-8).init()
}

/// How a call to [`train`] runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Continue from the last completed epoch saved in the output folder.
    pub resume: bool,
    /// Stop after this epoch (a time slice); a later `resume` continues the same run.
    pub stop_after: Option<usize>,
}

/// Trains a network and writes config, weights, optimizer state and metrics into `out`.
///
/// With `resume`, continues from the last completed epoch saved in `out` (its `config.json`
/// must match `cfg` except for the number of epochs; with a cosine schedule, changing the
/// number of epochs changes the learning rates of the remaining steps).
pub fn train(
    cfg: &TrainConfig,
    train_set: &Dataset,
    val_set: &Dataset,
    out: &Path,
    opts: RunOptions,
    device: &Device,
    progress: &dyn Progress,
) -> Result<TrainSummary> {
    let resume = opts.resume;
    cfg.validate()?;
    if train_set.height != cfg.net.input_size || train_set.width != cfg.net.input_size {
        return Err(Error::Shape {
            name: "training images".into(),
            expected: vec![cfg.net.input_size, cfg.net.input_size],
            got: vec![train_set.height, train_set.width],
        });
    }
    let ckpt = CheckpointDir::new(out);
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let ad = device.clone().autodiff();
    let mut net = cfg.net.init(&ad);
    let mut optim = adam();
    let mut start_epoch = 0;
    let mut history = Vec::new();
    if resume && ckpt.state().exists() {
        let saved = ckpt.read_config()?;
        if (TrainConfig {
            epochs: cfg.epochs,
            ..saved.clone()
        }) != *cfg
        {
            return Err(Error::Checkpoint {
                path: ckpt.config(),
                problem:
                    "--resume with settings other than the checkpoint's (only --epochs may change)"
                        .into(),
            });
        }
        let state: RunState = read_json(&ckpt.state())?;
        net = net
            .try_load_file(ckpt.model())
            .map_err(|e| Error::Checkpoint {
                path: ckpt.model(),
                problem: e.to_string(),
            })?;
        optim = optim
            .load(ckpt.optimizer())
            .map_err(|e| Error::Checkpoint {
                path: ckpt.optimizer(),
                problem: e.to_string(),
            })?;
        start_epoch = state.epochs_done;
        history = ckpt.read_metrics().unwrap_or_default();
        history.truncate(start_epoch);
    } else {
        // Same seed, same initial weights.
        device.seed(cfg.seed);
        ad.seed(cfg.seed);
        net = cfg.net.init(&ad);
        let _ = std::fs::remove_file(ckpt.metrics());
    }
    write_json(&ckpt.config(), cfg)?;

    let by_class = train_set.by_class();
    let val_by_class = val_set.by_class();
    let spe = steps_per_epoch(cfg, train_set.len());
    let total_steps = spe * cfg.epochs;
    let mut warnings = Vec::new();
    let mut first_mean_dist: Option<f64> = None;

    let end_epoch = opts
        .stop_after
        .map_or(cfg.epochs, |s| s.clamp(start_epoch, cfg.epochs));
    for epoch in start_epoch..end_epoch {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(1 + epoch as u64));
        ad.seed(cfg.seed.wrapping_add(1000 + epoch as u64));
        progress.start(&format!("epoch {}/{}", epoch + 1, cfg.epochs), spe as u64);
        let t0 = Instant::now();
        let (mut sl, mut sa, mut sd) = (0f64, 0f64, 0f64);
        let mut lr = cfg.lr;
        for s in 0..spe {
            let step = epoch * spe + s;
            lr = lr_at(cfg, step, total_steps);
            let idx = sample_batch(cfg, &by_class, &mut rng);
            let (out, mean_dist) = batch_loss(
                &net,
                cfg,
                train_set,
                &idx,
                &mut rng,
                cfg.augment_shift,
                Some(epoch),
                &ad,
            );
            let loss_v: f32 = out.loss.clone().into_scalar::<f32>();
            // Checked before the update so that a diverged step never reaches the weights.
            if !loss_v.is_finite() {
                return Err(Error::InvalidArgument(format!(
                    "loss became {loss_v} at epoch {}, step {s}: lower the learning rate",
                    epoch + 1
                )));
            }
            let grads = GradientsParams::from_grads(out.loss.backward(), &net);
            net = optim.step(lr, net, grads);
            sl += loss_v as f64;
            sa += out.active_fraction as f64;
            sd += mean_dist as f64;
            progress.inc(1);
            let el = t0.elapsed().as_secs_f64();
            progress.message(&format!(
                "loss {:.4}  active {:.1}%  {:.0} img/s",
                sl / (s + 1) as f64,
                100.0 * sa / (s + 1) as f64,
                ((s + 1) * idx.len()) as f64 / el.max(1e-9)
            ));
        }
        progress.finish();
        let seconds = t0.elapsed().as_secs_f64();
        let val_loss = validation_loss(&net.valid(), cfg, val_set, &val_by_class, device);
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss: sl / spe as f64,
            val_loss,
            active_fraction: sa / spe as f64,
            mean_distance: sd / spe as f64,
            lr,
            images_per_s: (spe * cfg.sampling.batch_images()) as f64 / seconds.max(1e-9),
            seconds,
        };
        // Collapse guard: all embeddings heading to one point, or a loss stuck at the margin
        // (d(a,p) = d(a,n) for every triplet).
        let first = *first_mean_dist.get_or_insert(m.mean_distance);
        if m.mean_distance < 1e-3 || m.mean_distance < 0.01 * first {
            let w = format!(
                "epoch {}: mean pairwise distance {:.2e} is heading to 0 (collapse); lower the learning rate or change the miner",
                m.epoch, m.mean_distance
            );
            progress.warn(&w);
            warnings.push(w);
        }
        if cfg.loss.margin > 0.0
            && ((m.train_loss - cfg.loss.margin as f64).abs() < 0.01 * cfg.loss.margin as f64)
        {
            let w = format!(
                "epoch {}: loss {:.4} is stuck at the margin {}: embeddings may have collapsed",
                m.epoch, m.train_loss, cfg.loss.margin
            );
            progress.warn(&w);
            warnings.push(w);
        }
        net.clone()
            .save_file(ckpt.model())
            .map_err(|e| Error::Checkpoint {
                path: ckpt.model(),
                problem: e.to_string(),
            })?;
        optim
            .save(ckpt.optimizer())
            .map_err(|e| Error::Checkpoint {
                path: ckpt.optimizer(),
                problem: e.to_string(),
            })?;
        write_json(
            &ckpt.state(),
            &RunState {
                epochs_done: epoch + 1,
            },
        )?;
        let mp = ckpt.metrics();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&mp)
            .map_err(|e| Error::io(&mp, e))?;
        let line = serde_json::to_string(&m).map_err(|e| Error::Json {
            path: mp.clone(),
            source: e,
        })?;
        writeln!(f, "{line}").map_err(|e| Error::io(&mp, e))?;
        tracing::info!(
            "epoch {}: train loss {:.4}, val loss {:.4}, active {:.1}%, {:.0} img/s",
            m.epoch,
            m.train_loss,
            m.val_loss,
            100.0 * m.active_fraction,
            m.images_per_s
        );
        history.push(m);
    }
    Ok(TrainSummary {
        epochs: history,
        warnings,
    })
}

/// Loss on `val_batches` fixed batches of the validation set (seeded apart from training).
pub fn validation_loss(
    net: &EmbeddingNet,
    cfg: &TrainConfig,
    val: &Dataset,
    by_class: &[Vec<usize>],
    device: &Device,
) -> f64 {
    if val.is_empty() || cfg.val_batches == 0 {
        return f64::NAN;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed_0f7e57);
    let mut total = 0.0;
    for _ in 0..cfg.val_batches {
        let idx = sample_batch(cfg, by_class, &mut rng);
        let (out, _) = batch_loss(net, cfg, val, &idx, &mut rng, 0, None, device);
        total += out.loss.into_scalar::<f32>() as f64;
    }
    total / cfg.val_batches as f64
}
