//! A checkpoint folder: the model record, its config, per-epoch metrics, resume state.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::TrainConfig;
use crate::error::{Error, Result};
use crate::nn::EmbeddingNet;

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
pub(crate) struct RunState {
    pub(crate) epochs_done: usize,
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
    pub(crate) fn state(&self) -> PathBuf {
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
        cfg.net.validate().map_err(|problem| Error::Checkpoint {
            path: self.config(),
            problem,
        })?;
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

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&s).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    })
}

pub(crate) fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    })?;
    std::fs::write(path, s).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_claiming_a_huge_width_is_an_error_not_an_allocation() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let ckpt = CheckpointDir::new(dir.path());
        let mut cfg = TrainConfig::for_dim(64);
        cfg.net.width = 1 << 40;
        write_json(&ckpt.config(), &cfg).expect("config written");
        std::fs::write(ckpt.model(), b"not reached").expect("weights written");
        let err = match ckpt.load_model(&crate::default_device()) {
            Ok(_) => panic!("a width of 2^40 was loaded"),
            Err(e) => e,
        };
        assert!(matches!(err, Error::Checkpoint { ref path, .. } if path.ends_with("config.json")));
        assert!(err.to_string().contains("width"), "{err}");
    }
}
