//! `recog eval` as a task: a checkpoint's retrieval figures, test queries against the
//! training references.
//!
//! ```no_run
//! use recog::data::{KnownSet, Source};
//! use recog::eval::retrieval::RetrievalParams;
//! let p = RetrievalParams { model: "runs/mnist".into(), source: Source::Known(KnownSet::Mnist), limit: None };
//! let r = p.check()?.run(&recog::Home::from_env(), &recog::NoProgress)?;
//! println!("P@1 {:.2}%", 100.0 * r.metrics.precision_at_1);
//! # Ok::<(), recog::Error>(())
//! ```

use std::path::PathBuf;

use serde::Serialize;

use super::{retrieval_metrics, RetrievalMetrics};
use crate::data::{self, Source};
use crate::train::CheckpointDir;
use crate::{Home, Progress, Result};

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct RetrievalParams {
    /// Checkpoint folder (`recog train --out`).
    pub model: PathBuf,
    /// The data: training split as references, test split as queries.
    pub source: Source,
    /// Use only the first N test queries.
    pub limit: Option<usize>,
}

impl RetrievalParams {
    /// Nothing to refuse before loading.
    pub fn check(self) -> Result<ValidRetrievalParams> {
        Ok(ValidRetrievalParams(self))
    }
}

/// Checked [`RetrievalParams`].
#[derive(Debug, Clone)]
pub struct ValidRetrievalParams(RetrievalParams);

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievalReport {
    /// The checkpoint.
    pub model: PathBuf,
    /// Its embedding dimension.
    pub dim: usize,
    /// k-NN accuracy, Precision@1, MAP@R.
    #[serde(flatten)]
    pub metrics: RetrievalMetrics,
}

impl ValidRetrievalParams {
    /// Embeds both splits and scores retrieval.
    pub fn run(&self, home: &Home, progress: &dyn Progress) -> Result<RetrievalReport> {
        let a = &self.0;
        let device = crate::default_device();
        let (cfg, net) = CheckpointDir::new(&a.model).load_model(&device)?;
        let (train_set, mut test_set) = data::load_train_test(&a.source, home, progress)?;
        if let Some(n) = a.limit {
            test_set = test_set.take(n);
        }
        let d = cfg.net.dim;
        let r = net.embed_dataset(&train_set, 500, &device, progress);
        let q = net.embed_dataset(&test_set, 500, &device, progress);
        let metrics = retrieval_metrics(&r, &train_set.labels, &q, &test_set.labels, d, progress);
        Ok(RetrievalReport {
            model: a.model.clone(),
            dim: d,
            metrics,
        })
    }
}

impl std::fmt::Display for RetrievalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.metrics;
        writeln!(
            f,
            "model {} (D={}); {} test queries against {} training references",
            self.model.display(),
            self.dim,
            m.queries,
            m.references
        )?;
        writeln!(f, "1-NN accuracy   {:.2}%", 100.0 * m.knn1_accuracy)?;
        writeln!(f, "5-NN accuracy   {:.2}%", 100.0 * m.knn5_accuracy)?;
        writeln!(f, "Precision@1     {:.2}%", 100.0 * m.precision_at_1)?;
        write!(f, "MAP@R           {:.2}%", 100.0 * m.map_at_r)
    }
}
