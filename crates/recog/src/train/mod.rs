//! Training an embedding network with a triplet loss.
//!
//! Runs are deterministic on CPU: every epoch re-seeds both the sampler RNG and the device RNG
//! (dropout) from `seed + epoch`, so a run resumed at an epoch boundary continues exactly as
//! an uninterrupted one.
//!
//! ```
//! use recog::train::{Sampling, TrainConfig};
//! let cfg = TrainConfig::for_dim(64);
//! assert!(cfg.net.normalize);
//! assert!(matches!(cfg.sampling, Sampling::Pk { p: 10, k: 30, .. }));
//! assert!(cfg.validate().is_ok());
//! ```

pub mod augment;
mod batches;
mod checkpoint;
mod config;
pub mod task;

pub(crate) use batches::{batch_loss, gradients, sample_batch};
pub use batches::{images_tensor, images_tensor_aug};
pub(crate) use checkpoint::read_json;
use checkpoint::{write_json, RunState};
pub use checkpoint::{CheckpointDir, EpochMetrics};
pub use config::{Sampling, Schedule, TrainConfig, UnknownSpec};
pub use task::{TrainParams, TrainReport};

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::{EmbeddingNet, HostTrunk};
use crate::progress::Progress;

/// The name of the class that outlier exposure adds to the training set.
pub const OUTLIER_CLASS: &str = "unknown";

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// Per-epoch metrics of the whole run (resumed epochs included).
    pub epochs: Vec<EpochMetrics>,
    /// Warnings raised (collapse, stuck loss).
    pub warnings: Vec<String>,
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
    let mut trunk = HostTrunk::default();

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
                Some(&mut trunk),
            );
            let loss_v: f32 = out.loss.clone().into_scalar::<f32>();
            // Checked before the update so that a diverged step never reaches the weights.
            if !loss_v.is_finite() {
                return Err(Error::InvalidArgument(format!(
                    "loss became {loss_v} at epoch {}, step {s}: lower the learning rate",
                    epoch + 1
                )));
            }
            let grads = gradients(out.loss, &net, &mut trunk)?;
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
        // The loss is the triplet loss alone only without a prototype term.
        if cfg.loss.margin > 0.0
            && cfg.prototype.is_none()
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
        let (out, _) = batch_loss(net, cfg, val, &idx, &mut rng, 0, None, device, None);
        total += out.loss.into_scalar::<f32>() as f64;
    }
    total / cfg.val_batches as f64
}

impl std::fmt::Display for TrainSummary {
    /// The per-epoch table `recog train` prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "epoch  train_loss  val_loss  active%  mean_dist  img/s")?;
        for m in &self.epochs {
            write!(
                f,
                "\n{:>5}  {:>10.5}  {:>8.5}  {:>7.2}  {:>9.4}  {:>5.0}",
                m.epoch,
                m.train_loss,
                m.val_loss,
                100.0 * m.active_fraction,
                m.mean_distance,
                m.images_per_s
            )?;
        }
        Ok(())
    }
}
