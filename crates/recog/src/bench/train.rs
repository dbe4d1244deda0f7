//! Timing of training steps, for `recog bench train`.
//!
//! ```no_run
//! use recog::bench::train::TrainBenchParams;
//! let rows = TrainBenchParams { steps: 10, warmup: 2, reference_name: "PyTorch".into(), reference_ms: 280.0 }
//!     .check()?.run(&recog::NoProgress)?;
//! for r in rows { println!("{}: {:.2}x", r.config, r.ratio_to_reference); }
//! # Ok::<(), recog::Error>(())
//! ```

use std::time::Instant;

use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::Dataset;
use crate::nn::HostTrunk;
use crate::train::{adam, batch_loss, gradients, sample_batch, TrainConfig};
use crate::Result;

/// Step timings.
#[derive(Debug, Clone, Serialize)]
pub struct StepTimes {
    /// Images per step.
    pub images_per_step: usize,
    /// Each timed step, milliseconds.
    pub step_ms: Vec<f64>,
    /// Median step time, milliseconds.
    pub median_ms: f64,
    /// Mean step time, milliseconds.
    pub mean_ms: f64,
    /// Images per second at the median step time.
    pub images_per_s: f64,
    /// Peak resident memory of the process (kB), where the OS tells it.
    pub peak_rss_kb: Option<u64>,
}

/// A synthetic MNIST-shaped data set (random strokes), so that timing needs no download.
pub fn synthetic_digits(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut px = vec![0u8; n * 784];
    for img in px.chunks_mut(784) {
        for _ in 0..120 {
            let i = rng.random_range(0..784);
            img[i] = rng.random_range(128..=255);
        }
    }
    let labels = (0..n).map(|i| (i % 10) as u32).collect();
    Dataset::new(px, labels, 28, 28, (0..10).map(|d| d.to_string()).collect())
        .unwrap_or_else(|_| unreachable!("sizes are consistent by construction"))
}

/// Runs `warmup + steps` full training steps (forward, mining, loss, backward, Adam) and
/// times the last `steps`.
pub fn time_train_steps(
    cfg: &TrainConfig,
    steps: usize,
    warmup: usize,
    device: &Device,
    convolutions: Convolutions,
) -> Result<StepTimes> {
    let data = synthetic_digits(3000, cfg.seed);
    let by_class = data.by_class();
    let ad = device.clone().autodiff();
    ad.seed(cfg.seed);
    let mut net = cfg.net.init(&ad);
    let mut optim = adam();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut times = Vec::new();
    let mut trunk = HostTrunk::default();
    for s in 0..warmup + steps {
        let t0 = Instant::now();
        let idx = sample_batch(cfg, &by_class, &mut rng);
        let (out, _) = batch_loss(
            &net,
            cfg,
            &data,
            &idx,
            &mut rng,
            cfg.augment_shift,
            None,
            &ad,
            (convolutions == Convolutions::CpuKernels).then_some(&mut trunk),
        );
        let _ = out.loss.clone().into_scalar::<f32>();
        let grads = gradients(out.loss, &net, &mut trunk)?;
        net = optim.step(cfg.lr, net, grads);
        // Force the update to finish before the clock stops.
        let _ = net.fc2.bias.as_ref().map(|b| b.val().into_data());
        if s >= warmup {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    let images = cfg.sampling.batch_images();
    Ok(StepTimes {
        images_per_step: images,
        step_ms: times,
        median_ms: median,
        mean_ms: mean,
        images_per_s: images as f64 / (median / 1e3),
        peak_rss_kb: peak_rss_kb(),
    })
}

/// What runs the network's convolutions in a timed training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Convolutions {
    /// burn's `conv2d` and its autodiff backward.
    BurnOps,
    /// [`HostTrunk`]: recog's forward and backward on the CPU (the default on the CPU).
    CpuKernels,
}

impl std::fmt::Display for Convolutions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Convolutions::BurnOps => "burn's ops",
            Convolutions::CpuKernels => "CPU kernels",
        })
    }
}

/// Peak resident set size from `/proc/self/status` (Linux).
pub fn peak_rss_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The two recipes `recog bench train` times, against a peer's figure.
#[derive(Debug, Clone)]
pub struct TrainBenchParams {
    /// Timed steps per recipe.
    pub steps: usize,
    /// Untimed warm-up steps.
    pub warmup: usize,
    /// The peer's name (e.g. PyTorch 2.x CPU with 2 threads).
    pub reference_name: String,
    /// The peer's step time, ms, measured in the same session.
    pub reference_ms: f64,
}

/// One recipe's timing.
#[derive(Debug, Clone, Serialize)]
pub struct TrainBenchRow {
    /// The recipe.
    pub config: String,
    /// What ran the convolutions.
    pub convolutions: Convolutions,
    /// Images per step.
    pub images_per_step: usize,
    /// Median step time, ms.
    pub median_ms: f64,
    /// Mean step time, ms.
    pub mean_ms: f64,
    /// Throughput.
    pub images_per_s: f64,
    /// Peak resident memory, MB.
    pub peak_rss_mb: Option<f64>,
    /// The peer.
    pub reference: String,
    /// The peer's step time, ms.
    pub reference_ms: f64,
    /// recog / peer (< 1 is faster).
    pub ratio_to_reference: f64,
}

impl TrainBenchParams {
    /// Needs timed steps and a positive reference time.
    pub fn check(self) -> Result<ValidTrainBenchParams> {
        if self.steps == 0 || !self.reference_ms.is_finite() || self.reference_ms <= 0.0 {
            return Err(crate::Error::InvalidArgument(
                "the train bench needs 1+ steps and a positive reference time".into(),
            ));
        }
        Ok(ValidTrainBenchParams(self))
    }
}

/// Checked [`TrainBenchParams`].
#[derive(Debug, Clone)]
pub struct ValidTrainBenchParams(TrainBenchParams);

impl ValidTrainBenchParams {
    /// Times the notebook's 100 random triplets and the default D = 64 semi-hard step.
    pub fn run(&self, progress: &dyn crate::Progress) -> Result<Vec<TrainBenchRow>> {
        let a = &self.0;
        let device = crate::default_device();
        let configs = [
            (
                "notebook: 100 random triplets, squared distance",
                TrainConfig {
                    augment_shift: 0,
                    ..TrainConfig::notebook()
                },
            ),
            (
                "default D=64: 10 x 30 images, semi-hard mining",
                TrainConfig::for_dim(64),
            ),
        ];
        // Both paths on the CPU, one after the other for each recipe, so that their ratio
        // is side by side; elsewhere only burn's.
        let paths: &[Convolutions] = if device == Device::flex() {
            &[Convolutions::BurnOps, Convolutions::CpuKernels]
        } else {
            &[Convolutions::BurnOps]
        };
        let mut rows = Vec::new();
        for (name, cfg) in configs {
            for &conv in paths {
                progress.message(&format!(
                    "timing {name}, {conv} ({} + {} steps)...",
                    a.warmup, a.steps
                ));
                let t = time_train_steps(&cfg, a.steps, a.warmup, &device, conv)?;
                rows.push(TrainBenchRow {
                    config: name.to_string(),
                    convolutions: conv,
                    images_per_step: t.images_per_step,
                    median_ms: t.median_ms,
                    mean_ms: t.mean_ms,
                    images_per_s: t.images_per_s,
                    peak_rss_mb: t.peak_rss_kb.map(|k| k as f64 / 1024.0),
                    reference: a.reference_name.clone(),
                    reference_ms: a.reference_ms,
                    ratio_to_reference: t.median_ms / a.reference_ms,
                });
            }
        }
        Ok(rows)
    }
}

/// The table `recog bench train` prints: one row per configuration, with its ratio to the
/// reference (`< 1` is faster).
pub fn table(rows: &[TrainBenchRow], reference_name: &str, reference_ms: f64) -> String {
    let mut s = format!(
        "device {:?}, {} threads\n{:<50} {:<12} {:>8} {:>8} {:>8} {:>9} {:>10}\n",
        crate::default_device(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        "config",
        "convolutions",
        "median",
        "mean",
        "img/s",
        "peak MB",
        "vs ref"
    );
    for r in rows {
        s += &format!(
            "{:<50} {:<12} {:>6.0}ms {:>6.0}ms {:>8.0} {:>9.0} {:>9.2}x\n",
            r.config,
            r.convolutions.to_string(),
            r.median_ms,
            r.mean_ms,
            r.images_per_s,
            r.peak_rss_mb.unwrap_or(f64::NAN),
            r.ratio_to_reference
        );
    }
    s + &format!(
        "reference: {reference_name} = {reference_ms:.0} ms/step (ratio = recog / reference; < 1 is faster)"
    )
}
