//! The LFW View 2 protocol as a task: every pair of `pairs.txt` embedded by a face pipeline,
//! 10-fold accuracy, ROC AUC, EER and TAR at FAR 1e-3, optionally with a triplet-loss
//! projection fine-tuned per fold on LFW people outside that fold; plots and `lfw.json`
//! written to a folder.
//!
//! ```no_run
//! use recog::eval::lfw_view2::View2Params;
//! use recog::face::FacePipeline;
//! use recog::{Home, NoProgress};
//!
//! let home = Home::from_env();
//! let pipe = FacePipeline::standard(&home, &recog::default_device(), &NoProgress)?;
//! let params = View2Params::new(home.data_dir("lfw"), "report/lfw".into()).check()?;
//! let report = params.run(&pipe, "MobileFaceNet", &NoProgress)?;
//! println!("{:.2}%", 100.0 * report.report.mean_accuracy);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::lfw::{self, Pair, VerificationReport};
use crate::face::finetune::{train_projection, FineTuneConfig};
use crate::face::FacePipeline;
use crate::metric::distance::euclidean;
use crate::plot::{self, Series};
use crate::{Error, Progress, Result};

/// What to run.
#[derive(Debug, Clone)]
pub struct View2Params {
    /// LFW folder (with `pairs.txt` and `images/`).
    pub lfw: PathBuf,
    /// Folder for the ROC and distance-histogram plots and `lfw.json`.
    pub out: PathBuf,
    /// Images per batch.
    pub batch: usize,
    /// Only the first N pairs of each fold and kind (quick checks).
    pub limit: Option<usize>,
    /// Measure the detection rate over every LFW image too.
    pub detection_rate: bool,
    /// Downscale the pairs' photos so the face is this many pixels wide (LFW's is about
    /// 110); skips the detection-rate pass.
    pub face_size: Option<f32>,
    /// Fine-tune a projection per fold with this configuration, and report before and after.
    pub finetune: Option<FineTuneConfig>,
}

impl View2Params {
    /// Every pair, batches of 16, with the detection-rate pass, no fine-tuning.
    pub fn new(lfw: PathBuf, out: PathBuf) -> Self {
        Self {
            lfw,
            out,
            batch: 16,
            limit: None,
            detection_rate: true,
            face_size: None,
            finetune: None,
        }
    }

    /// Refuses combinations that cannot run.
    pub fn check(self) -> Result<ValidView2Params> {
        if self.face_size.is_some() && self.finetune.is_some() {
            return Err(Error::InvalidArgument(
                "--face-size and --finetune cannot be combined".into(),
            ));
        }
        if let Some(px) = self.face_size {
            if !(px.is_finite() && px >= 4.0) {
                return Err(Error::InvalidArgument(format!(
                    "face size {px}: must be at least 4 px"
                )));
            }
        }
        Ok(ValidView2Params(Self {
            batch: self.batch.max(1),
            ..self
        }))
    }
}

/// Checked [`View2Params`].
#[derive(Debug, Clone)]
pub struct ValidView2Params(View2Params);

/// The protocol's figures, as `lfw.json` holds them.
#[derive(Debug, Clone, Serialize)]
pub struct View2Report {
    /// Pairs scored.
    pub pairs: usize,
    /// Images embedded.
    pub images_embedded: usize,
    /// Pair images with a face found.
    pub detected_in_pair_images: usize,
    /// Pair images embedded from their centre crop (no face found).
    pub fallback_centre_crops: usize,
    /// Fraction of all LFW images with a face found.
    pub detection_rate_all_images: Option<f64>,
    /// All LFW images looked at for that rate.
    pub all_images: Option<usize>,
    /// Embedding speed.
    pub images_per_s: f64,
    /// Accuracy, AUC, EER, TAR, ROC.
    #[serde(flatten)]
    pub report: VerificationReport,
    /// The fine-tuned figures, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finetuned: Option<FineTuned>,
}

/// The per-fold fine-tuning's figures.
#[derive(Debug, Clone, Serialize)]
pub struct FineTuned {
    /// Training identities per fold.
    pub train_people: Vec<usize>,
    /// Training images per fold.
    pub train_images: Vec<usize>,
    /// The configuration.
    pub config: FineTuneConfig,
    /// Loss curve of the first fold.
    pub loss_curve_fold1: Vec<f32>,
    /// The figures with each fold's own projection.
    pub report: VerificationReport,
}

/// Removes a scratch folder when dropped.
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(d) = &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl ValidView2Params {
    /// Runs the protocol with `pipe`; `label` names the network in the plots.
    pub fn run(
        &self,
        pipe: &FacePipeline,
        label: &str,
        progress: &dyn Progress,
    ) -> Result<View2Report> {
        let a = &self.0;
        let mut pairs = lfw::read_pairs(&a.lfw.join("pairs.txt"))?;
        if let Some(n) = a.limit {
            let mut kept = Vec::new();
            for fold in 0..10 {
                for same in [true, false] {
                    kept.extend(
                        pairs
                            .iter()
                            .filter(|p| p.fold == fold && p.same == same)
                            .take(n)
                            .cloned(),
                    );
                }
            }
            pairs = kept;
        }
        let mut images_dir = a.lfw.join("images");
        // Small faces: the pairs' images downscaled into a temporary folder, removed at the
        // end.
        let mut scratch = None;
        if let Some(px) = a.face_size {
            let dir = std::env::temp_dir().join(format!("recog-lfw-{px}px-{}", std::process::id()));
            lfw::downscaled_copy(&images_dir, &pairs, px, &dir, progress)?;
            images_dir = dir.clone();
            scratch = Some(dir);
        }
        let _cleanup = Scratch(scratch);

        let (detection_rate_all_images, all_images) = if !a.detection_rate || a.face_size.is_some()
        {
            (None, None)
        } else {
            let all = crate::data::folder::person_images(&images_dir)?;
            progress.start("detecting faces in every LFW image", all.len() as u64);
            let mut found = 0usize;
            for chunk in all.chunks(32) {
                let imgs = crate::face::decode_all(chunk)
                    .into_iter()
                    .collect::<Result<Vec<_>>>()?;
                let refs: Vec<_> = imgs.iter().collect();
                found += pipe
                    .detector
                    .detect_batch(&refs)?
                    .iter()
                    .filter(|f| !f.is_empty())
                    .count();
                progress.inc(chunk.len() as u64);
            }
            progress.finish();
            (
                Some(found as f64 / all.len().max(1) as f64),
                Some(all.len()),
            )
        };

        let mut rel = lfw::unique_images(&pairs);
        // People with 2+ images, for per-fold fine-tuning (at most 20 images each), with
        // paths relative to the images folder, as the pairs name them.
        let mut people: Vec<(String, Vec<PathBuf>)> = Vec::new();
        if a.finetune.is_some() {
            people = crate::data::folder::people(&images_dir)?
                .into_iter()
                .filter(|(_, v)| v.len() >= 2)
                .map(|(k, v)| {
                    let rel = v.iter().take(20).map(|p| {
                        p.strip_prefix(&images_dir)
                            .map(Path::to_path_buf)
                            .unwrap_or(p.clone())
                    });
                    (k, rel.collect())
                })
                .collect();
            let mut set: BTreeSet<PathBuf> = rel.into_iter().collect();
            for (_, v) in &people {
                set.extend(v.iter().cloned());
            }
            rel = set.into_iter().collect();
        }
        let abs: Vec<PathBuf> = rel.iter().map(|p| images_dir.join(p)).collect();
        let t0 = Instant::now();
        let res = pipe.embed_files(&abs, a.batch, true, progress)?;
        let images_per_s = abs.len() as f64 / t0.elapsed().as_secs_f64();
        let index: HashMap<&PathBuf, usize> = rel.iter().enumerate().map(|(i, p)| (p, i)).collect();
        let raw: Vec<Vec<f32>> = res.iter().map(|r| r.embedding.clone()).collect();
        let scored: Vec<(f64, bool, usize)> = pairs
            .iter()
            .map(|p| {
                (
                    f64::from(euclidean(&raw[index[&p.a]], &raw[index[&p.b]])),
                    p.same,
                    p.fold,
                )
            })
            .collect();
        let report = lfw::evaluate(&scored);
        let finetuned = match &a.finetune {
            Some(cfg) => Some(finetune_folds(
                cfg, &pairs, &people, &raw, &index, progress,
            )?),
            None => None,
        };
        write_plots(&a.out, label, &report, &scored)?;
        let summary = View2Report {
            pairs: pairs.len(),
            images_embedded: abs.len(),
            detected_in_pair_images: res.iter().filter(|r| r.face.is_some()).count(),
            fallback_centre_crops: res.iter().filter(|r| r.fallback).count(),
            detection_rate_all_images,
            all_images,
            images_per_s,
            report,
            finetuned,
        };
        let json = a.out.join("lfw.json");
        std::fs::write(
            &json,
            serde_json::to_string_pretty(&summary).unwrap_or_default(),
        )
        .map_err(|e| Error::io(&json, e))?;
        Ok(summary)
    }
}

/// `roc.png` and `distances.png`.
fn write_plots(
    out: &Path,
    label: &str,
    report: &VerificationReport,
    scored: &[(f64, bool, usize)],
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let step = (report.roc.len() / 400).max(1);
    let roc: Vec<(f64, f64)> = report
        .roc
        .iter()
        .step_by(step)
        .chain(report.roc.last())
        .copied()
        .collect();
    plot::line_chart(
        &out.join("roc.png"),
        &format!("LFW View 2 ROC (AUC {:.4})", report.auc),
        "false accept rate",
        "true accept rate",
        &[Series {
            label: format!("{label} + BlazeFace alignment"),
            points: roc,
        }],
    )?;
    let same: Vec<(f64, f64)> = scored.iter().filter(|s| s.1).map(|s| (s.0, 0.0)).collect();
    let diff: Vec<(f64, f64)> = scored.iter().filter(|s| !s.1).map(|s| (s.0, 0.0)).collect();
    let marker = format!("threshold {:.3}", report.best_threshold);
    plot::histogram(
        &out.join("distances.png"),
        "LFW View 2: distances of same and different pairs",
        "Euclidean distance",
        &[
            Series {
                label: format!("same person ({})", same.len()),
                points: same,
            },
            Series {
                label: format!("different people ({})", diff.len()),
                points: diff,
            },
        ],
        60,
        Some((report.best_threshold, &marker)),
    )
}

/// Per fold: a projection trained on the people in none of the fold's pairs, its threshold
/// chosen on the other folds, its accuracy on the fold.
fn finetune_folds(
    cfg: &FineTuneConfig,
    pairs: &[Pair],
    people: &[(String, Vec<PathBuf>)],
    raw: &[Vec<f32>],
    index: &HashMap<&PathBuf, usize>,
    progress: &dyn Progress,
) -> Result<FineTuned> {
    let device = crate::default_device();
    let folds = pairs.iter().map(|p| p.fold).max().map_or(0, |m| m + 1);
    let name_of = |p: &Path| {
        p.parent()
            .and_then(|d| d.to_str())
            .unwrap_or("")
            .to_string()
    };
    let mut scored = Vec::new();
    let (mut tp, mut ti, mut curve1) = (Vec::new(), Vec::new(), Vec::new());
    let mut fold_acc = Vec::new();
    let mut fold_thr = Vec::new();
    for f in 0..folds {
        let in_fold: HashSet<String> = pairs
            .iter()
            .filter(|p| p.fold == f)
            .flat_map(|p| [name_of(&p.a), name_of(&p.b)])
            .collect();
        let (mut x, mut labels) = (Vec::new(), Vec::new());
        let mut n_people = 0;
        for (_, imgs) in people.iter().filter(|(n, _)| !in_fold.contains(n)) {
            let rows: Vec<&Vec<f32>> = imgs
                .iter()
                .filter_map(|p| index.get(p))
                .map(|&i| &raw[i])
                .filter(|e| !e.is_empty())
                .collect();
            if rows.len() < 2 {
                continue;
            }
            for r in rows {
                x.extend_from_slice(r);
                labels.push(n_people as u32);
            }
            n_people += 1;
        }
        tp.push(n_people);
        ti.push(labels.len());
        let d_in = raw.iter().find(|r| !r.is_empty()).map_or(128, Vec::len);
        progress.message(&format!(
            "fold {}/{folds}: fine-tuning on {n_people} people, {} images",
            f + 1,
            labels.len()
        ));
        let (head, curve) = train_projection(
            &x,
            &labels,
            d_in,
            &FineTuneConfig {
                seed: cfg.seed + f as u64,
                ..cfg.clone()
            },
            &device,
            &crate::NoProgress,
        )?;
        if f == 0 {
            curve1 = curve;
        }
        let proj = head.apply(raw, &device);
        let all: Vec<(f64, bool, usize)> = pairs
            .iter()
            .map(|p| {
                (
                    f64::from(euclidean(&proj[index[&p.a]], &proj[index[&p.b]])),
                    p.same,
                    p.fold,
                )
            })
            .collect();
        let train: Vec<(f64, bool)> = all
            .iter()
            .filter(|s| s.2 != f)
            .map(|s| (s.0, s.1))
            .collect();
        let t = lfw::best_threshold(&train);
        let test: Vec<&(f64, bool, usize)> = all.iter().filter(|s| s.2 == f).collect();
        let ok = test.iter().filter(|s| (s.0 <= t) == s.1).count();
        fold_acc.push(ok as f64 / test.len().max(1) as f64);
        fold_thr.push(t);
        scored.extend(test.into_iter().copied());
    }
    let mut report = lfw::evaluate(&scored);
    // The per-fold figures come from per-fold models; `evaluate` re-derived thresholds across
    // folds of different models, so replace them with the ones measured above.
    let n = fold_acc.len().max(1) as f64;
    report.mean_accuracy = fold_acc.iter().sum::<f64>() / n;
    report.std_accuracy = (fold_acc
        .iter()
        .map(|x| (x - report.mean_accuracy).powi(2))
        .sum::<f64>()
        / (n - 1.0).max(1.0))
    .sqrt();
    report.fold_accuracy = fold_acc;
    report.fold_threshold = fold_thr;
    Ok(FineTuned {
        train_people: tp,
        train_images: ti,
        config: cfg.clone(),
        loss_curve_fold1: curve1,
        report,
    })
}

impl std::fmt::Display for View2Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.report;
        writeln!(
            f,
            "LFW View 2, {} pairs, {} images ({:.1} images/s)",
            self.pairs, self.images_embedded, self.images_per_s
        )?;
        if let (Some(rate), Some(n)) = (self.detection_rate_all_images, self.all_images) {
            writeln!(
                f,
                "face found in {:.2}% of all {n} LFW images",
                100.0 * rate
            )?;
        }
        writeln!(
            f,
            "pair images: {} detected, {} centre-crop fallbacks",
            self.detected_in_pair_images, self.fallback_centre_crops
        )?;
        writeln!(
            f,
            "accuracy   {:.2}% +- {:.2}% (10 folds)",
            100.0 * r.mean_accuracy,
            100.0 * r.std_accuracy
        )?;
        writeln!(f, "ROC AUC    {:.4}", r.auc)?;
        writeln!(f, "EER        {:.2}%", 100.0 * r.eer)?;
        writeln!(f, "TAR@FAR=1e-3 {:.2}%", 100.0 * r.tar_at_far_1e3)?;
        write!(f, "threshold  {:.4} (best on all pairs)", r.best_threshold)?;
        if let Some(ft) = &self.finetuned {
            let r = &ft.report;
            write!(
                f,
                "\nfine-tuned projection (per fold, {}-{} people not in the fold): accuracy {:.2}% +- {:.2}%, AUC {:.4}, EER {:.2}%, TAR@FAR=1e-3 {:.2}%",
                ft.train_people.iter().min().unwrap_or(&0),
                ft.train_people.iter().max().unwrap_or(&0),
                100.0 * r.mean_accuracy,
                100.0 * r.std_accuracy,
                r.auc,
                100.0 * r.eer,
                100.0 * r.tar_at_far_1e3
            )?;
        }
        Ok(())
    }
}
