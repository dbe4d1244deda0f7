//! `recog train` as a task: load the data, add the outlier-exposure class, train into a
//! checkpoint folder.
//!
//! ```no_run
//! use recog::data::{KnownSet, Source};
//! use recog::train::{TrainConfig, TrainParams};
//! use recog::{Home, NoProgress};
//!
//! let params = TrainParams::new(TrainConfig::for_dim(64), Source::Known(KnownSet::Mnist), "runs/mnist".into());
//! let report = params.check()?.run(&Home::from_env(), &NoProgress)?;
//! println!("{} epochs", report.summary.epochs.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;

use serde::Serialize;

use super::{train, RunOptions, TrainConfig, TrainSummary};
use crate::data::{self, Source};
use crate::{Home, Progress, Result};

/// A training run.
#[derive(Debug, Clone)]
pub struct TrainParams {
    /// The recipe.
    pub config: TrainConfig,
    /// The data (train split for training, test split for validation).
    pub source: Source,
    /// Use only the first N training images (quick runs).
    pub limit: Option<usize>,
    /// Checkpoint folder.
    pub out: PathBuf,
    /// Continue from the last epoch saved in `out`.
    pub resume: bool,
    /// Stop after this epoch; a resumed run later continues the same run exactly.
    pub stop_after: Option<usize>,
}

impl TrainParams {
    /// A fresh run of `config` on `source` into `out`.
    pub fn new(config: TrainConfig, source: Source, out: PathBuf) -> Self {
        Self {
            config,
            source,
            limit: None,
            out,
            resume: false,
            stop_after: None,
        }
    }

    /// Validates the recipe.
    pub fn check(self) -> Result<ValidTrainParams> {
        self.config.validate()?;
        Ok(ValidTrainParams(self))
    }
}

/// Checked [`TrainParams`].
#[derive(Debug, Clone)]
pub struct ValidTrainParams(TrainParams);

/// What the run did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Per-epoch metrics and warnings.
    #[serde(flatten)]
    pub summary: TrainSummary,
    /// Training images (outlier-exposure images included).
    pub train_images: usize,
    /// The outlier-exposure sources, described.
    pub outlier_sources: Vec<String>,
}

impl ValidTrainParams {
    /// The recipe.
    pub fn config(&self) -> &TrainConfig {
        &self.0.config
    }

    /// Loads the data, adds the outlier-exposure class, trains.
    pub fn run(&self, home: &Home, progress: &dyn Progress) -> Result<TrainReport> {
        let p = &self.0;
        let cfg = &p.config;
        let (mut train_set, test_set) = data::load_train_test(&p.source, home, progress)?;
        if let Some(n) = p.limit {
            train_set = train_set.take(n);
        }
        let mut outlier_sources = Vec::new();
        if let Some(u) = &cfg.unknown {
            let (extra, described) = data::unknown_images(
                &u.sources,
                u.per_source,
                cfg.seed.wrapping_add(7),
                home,
                progress,
            )?;
            train_set = train_set.with_extra_class(&extra, super::OUTLIER_CLASS)?;
            for d in &described {
                progress.message(&format!("outlier exposure: {d}"));
            }
            outlier_sources = described;
        }
        progress.message(&format!(
            "training D={} on {} images ({:?}), {} epochs -> {}",
            cfg.net.dim,
            train_set.len(),
            cfg.sampling,
            cfg.epochs,
            p.out.display()
        ));
        let cfg = &TrainConfig {
            train_limit: p.limit,
            ..cfg.clone()
        };
        let summary = train(
            cfg,
            &train_set,
            &test_set,
            &p.out,
            RunOptions {
                resume: p.resume,
                stop_after: p.stop_after,
            },
            &crate::default_device(),
            progress,
        )?;
        Ok(TrainReport {
            summary,
            train_images: train_set.len(),
            outlier_sources,
        })
    }
}
