//! `recog plot` as a task: a checkpoint's loss curves, its test digits in embedding space
//! (PCA to 2-D above D = 2) and a sprite of their images, as PNG and SVG.
//!
//! ```no_run
//! use recog::data::{KnownSet, Source};
//! use recog::plot::checkpoint::CheckpointPlotParams;
//! let p = CheckpointPlotParams { model: "runs/mnist".into(), source: Source::Known(KnownSet::Mnist), out: None, points: 5000, sprites: 1500 };
//! let files = p.check()?.run(&recog::Home::from_env(), &recog::NoProgress)?;
//! println!("{:?}", files.files);
//! # Ok::<(), recog::Error>(())
//! ```

use std::path::PathBuf;

use serde::Serialize;

use crate::data::{self, Source};
use crate::train::CheckpointDir;
use crate::{Error, Home, Progress, Result};

/// What to plot.
#[derive(Debug, Clone)]
pub struct CheckpointPlotParams {
    /// Checkpoint folder (`recog train --out`).
    pub model: PathBuf,
    /// The data (its test split is embedded).
    pub source: Source,
    /// Output folder (default: the checkpoint folder).
    pub out: Option<PathBuf>,
    /// Points in the embedding scatter.
    pub points: usize,
    /// Images in the sprite.
    pub sprites: usize,
}

impl CheckpointPlotParams {
    /// Nothing to refuse before loading.
    pub fn check(self) -> Result<ValidCheckpointPlotParams> {
        Ok(ValidCheckpointPlotParams(self))
    }
}

/// Checked [`CheckpointPlotParams`].
#[derive(Debug, Clone)]
pub struct ValidCheckpointPlotParams(CheckpointPlotParams);

/// The files written.
#[derive(Debug, Clone, Serialize)]
pub struct PlotFiles {
    /// Every plot, PNG and SVG.
    pub files: Vec<PathBuf>,
    /// The variance the 2-D projection explains (D > 2).
    pub pca_explained: Option<Vec<f64>>,
}

impl ValidCheckpointPlotParams {
    /// Draws the loss curves, the embedding scatter and the sprite.
    pub fn run(&self, home: &Home, progress: &dyn Progress) -> Result<PlotFiles> {
        let a = &self.0;
        let device = crate::default_device();
        let ck = CheckpointDir::new(&a.model);
        let out = a.out.clone().unwrap_or_else(|| a.model.clone());
        std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
        let mut files = Vec::new();
        let metrics = ck.read_metrics()?;
        let series = vec![
            super::Series {
                label: "train".into(),
                points: metrics
                    .iter()
                    .map(|m| (m.epoch as f64, m.train_loss))
                    .collect(),
            },
            super::Series {
                label: "validation".into(),
                points: metrics
                    .iter()
                    .map(|m| (m.epoch as f64, m.val_loss))
                    .collect(),
            },
        ];
        for ext in ["png", "svg"] {
            let p = out.join(format!("loss.{ext}"));
            super::line_chart(&p, "Triplet loss", "epoch", "loss", &series)?;
            files.push(p);
        }
        let (cfg, net) = ck.load_model(&device)?;
        let (_, test_set) = data::load_train_test(&a.source, home, progress)?;
        let n = a.points.max(a.sprites).min(test_set.len());
        let subset = test_set.take(n);
        let emb = net.embed_dataset(&subset, 500, &device, progress);
        let d = cfg.net.dim;
        let (xy, explained) = if d > 2 {
            let pca = crate::cluster::Pca::fit(&emb, n, d, 2);
            (pca.transform(&emb), Some(pca.explained_ratio()))
        } else {
            (crate::cluster::pca::to_2d(&emb, n, d), None)
        };
        let title = match &explained {
            Some(r) => format!(
                "Embedding (D={d}, PCA {:.0}% + {:.0}% of variance)",
                100.0 * r[0],
                100.0 * r.get(1).copied().unwrap_or(0.0)
            ),
            None => format!("Embedding (D={d})"),
        };
        let np = a.points.min(n);
        for ext in ["png", "svg"] {
            let p = out.join(format!("embedding.{ext}"));
            super::scatter(
                &p,
                &title,
                &xy[..2 * np],
                &subset.labels[..np],
                &subset.classes,
            )?;
            files.push(p);
        }
        let ns = a.sprites.min(n);
        let imgs: Vec<&[u8]> = (0..ns).map(|i| subset.image(i)).collect();
        for ext in ["png", "svg"] {
            let p = out.join(format!("sprite.{ext}"));
            super::sprite(&p, &xy[..2 * ns], &imgs, &subset.labels[..ns], 28, 28, 1600)?;
            files.push(p);
        }
        Ok(PlotFiles {
            files,
            pca_explained: explained,
        })
    }
}
