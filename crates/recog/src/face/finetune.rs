//! Transfer learning: a projection head trained with triplet loss on top of a frozen
//! pretrained face embedding, as in Parkhi et al., "Deep Face Recognition" (BMVC 2015,
//! section 4.3, "learning a face embedding using a triplet loss"): the network is fixed and
//! only an affine projection `W x + b` of its descriptor is learnt, on identities of the
//! target domain, with semi-hard triplets from P x K batches.
//!
//! ```
//! use recog::face::finetune::Projection;
//! // A fresh head is the identity where the dimensions agree.
//! let device = recog::default_device();
//! let head = Projection::new(3, 3, &device);
//! let out = head.apply(&[vec![1.0, 2.0, 3.0]], &device);
//! assert_eq!(out[0], vec![1.0, 2.0, 3.0]);
//! ```

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorData;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::sampler::pk_batch;
use crate::metric::distance::Distance;
use crate::metric::loss::{Reduction, TripletMarginLoss};
use crate::metric::miner::Miner;
use crate::progress::Progress;
use crate::{Error, Result};

/// Settings of [`train_projection`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneConfig {
    /// Output dimension of the projection.
    pub dim: usize,
    /// Triplet margin (in the descriptor's distance units; dlib's threshold is 0.6).
    pub margin: f32,
    /// Adam learning rate.
    pub lr: f64,
    /// Training steps.
    pub steps: usize,
    /// Identities per batch.
    pub p: usize,
    /// Images per identity.
    pub k: usize,
    /// Seed of sampling and mining.
    pub seed: u64,
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        Self {
            dim: 128,
            margin: 0.2,
            lr: 1e-4,
            steps: 1500,
            p: 32,
            k: 4,
            seed: 42,
        }
    }
}

/// The projection head: `[n, d_in] -> [n, dim]`, initialised to the identity where the
/// dimensions agree so that training starts from the pretrained embedding.
#[derive(Module, Debug)]
pub struct Projection {
    /// The affine map.
    pub fc: Linear,
}

impl Projection {
    /// A fresh head.
    pub fn new(d_in: usize, dim: usize, device: &Device) -> Self {
        let mut fc = LinearConfig::new(d_in, dim).init(device);
        let mut w = vec![0f32; d_in * dim];
        for i in 0..d_in.min(dim) {
            w[i * dim + i] = 1.0;
        }
        fc.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [d_in, dim]), device));
        if let Some(b) = &fc.bias {
            fc.bias = Some(Param::from_tensor(b.val().zeros_like()));
        }
        Self { fc }
    }

    /// Projects descriptors.
    ///
    /// - input: `[n, d_in]`
    /// - output: `[n, dim]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc.forward(x)
    }

    /// Projects host rows.
    pub fn apply(&self, rows: &[Vec<f32>], device: &Device) -> Vec<Vec<f32>> {
        let rows_in: Vec<&Vec<f32>> = rows.iter().filter(|r| !r.is_empty()).collect();
        if rows_in.is_empty() {
            return rows.to_vec();
        }
        let d = rows_in[0].len();
        let flat: Vec<f32> = rows_in.iter().flat_map(|r| r.iter().copied()).collect();
        let y = self.forward(Tensor::from_data(
            TensorData::new(flat, [rows_in.len(), d]),
            device,
        ));
        let dim = y.dims()[1];
        let v: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap_or_default();
        let mut out_rows = v.chunks(dim).map(<[f32]>::to_vec);
        rows.iter()
            .map(|r| {
                if r.is_empty() {
                    Vec::new()
                } else {
                    out_rows.next().unwrap_or_default()
                }
            })
            .collect()
    }

    /// Saves the weights (burnpack) and the config as JSON next to them.
    pub fn save(&self, dir: &Path, cfg: &FineTuneConfig, d_in: usize) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let meta = serde_json::json!({"d_in": d_in, "config": cfg, "base": "face-resnet-dlib"});
        let cpath = dir.join("projection.json");
        std::fs::write(
            &cpath,
            serde_json::to_string_pretty(&meta).unwrap_or_default(),
        )
        .map_err(|e| Error::io(&cpath, e))?;
        let wpath = dir.join("projection.bpk");
        self.clone()
            .save_file(&wpath)
            .map_err(|e| Error::Checkpoint {
                path: wpath.clone(),
                problem: e.to_string(),
            })
    }

    /// Loads a head written by [`Projection::save`].
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_with_input(dir, device).map(|(p, _)| p)
    }

    /// The output dimension.
    pub fn dim(&self) -> usize {
        self.fc.weight.val().dims()[1]
    }

    /// [`Projection::load`], with the input dimension the head expects.
    pub fn load_with_input(dir: &Path, device: &Device) -> Result<(Self, usize)> {
        let cpath = dir.join("projection.json");
        let text = std::fs::read_to_string(&cpath).map_err(|e| Error::io(&cpath, e))?;
        let meta: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| Error::Json {
                path: cpath.clone(),
                source,
            })?;
        let size = |v: &serde_json::Value, what: &str| {
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| (1..=1 << 16).contains(&n))
                .ok_or_else(|| Error::Checkpoint {
                    path: cpath.clone(),
                    problem: format!("{what} must be a dimension from 1 to 65536, not {v}"),
                })
        };
        let d_in = size(&meta["d_in"], "d_in")?;
        let dim = size(&meta["config"]["dim"], "config.dim")?;
        let wpath = dir.join("projection.bpk");
        let head = Projection::new(d_in, dim, device)
            .try_load_file(&wpath)
            .map_err(|e| Error::Checkpoint {
                path: wpath.clone(),
                problem: e.to_string(),
            })?;
        Ok((head, d_in))
    }
}

/// Trains the projection on descriptors `x` (`[n, d_in]` row-major) of labelled images.
/// Returns the head and the mean loss of each tenth of training.
pub fn train_projection(
    x: &[f32],
    labels: &[u32],
    d_in: usize,
    cfg: &FineTuneConfig,
    device: &Device,
    progress: &dyn Progress,
) -> Result<(Projection, Vec<f32>)> {
    let n_classes = labels.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    by_class.retain(|c| c.len() >= 2);
    if by_class.len() < cfg.p.max(2) {
        return Err(Error::InvalidArgument(format!(
            "fine-tuning needs at least {} identities with 2+ faces, found {}",
            cfg.p.max(2),
            by_class.len()
        )));
    }
    let ad = device.clone().autodiff();
    ad.seed(cfg.seed);
    let mut head = Projection::new(d_in, cfg.dim, &ad);
    let mut optim = crate::train::adam();
    let loss = TripletMarginLoss {
        margin: cfg.margin,
        distance: Distance::Euclidean,
        reduction: Reduction::MeanActive,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut curve = Vec::new();
    let (mut acc, mut cnt) = (0f64, 0usize);
    let tenth = (cfg.steps / 10).max(1);
    progress.start("fine-tuning the projection", cfg.steps as u64);
    for step in 0..cfg.steps {
        let idx = pk_batch(&by_class, cfg.p, cfg.k, &mut rng);
        let mut xb = Vec::with_capacity(idx.len() * d_in);
        for &i in &idx {
            xb.extend_from_slice(&x[i * d_in..(i + 1) * d_in]);
        }
        let lb: Vec<u32> = idx.iter().map(|&i| labels[i]).collect();
        let emb = head.forward(Tensor::from_data(
            TensorData::new(xb, [idx.len(), d_in]),
            &ad,
        ));
        let host: Vec<f32> = emb
            .clone()
            .detach()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        let dist = Distance::Euclidean.pairwise_host(&host, idx.len(), cfg.dim);
        let triplets = Miner::SemiHard.mine(&dist, &lb, cfg.margin, &mut rng);
        if triplets.is_empty() {
            progress.inc(1);
            continue;
        }
        let out = loss.forward(emb, &triplets);
        let v: f32 = out.loss.clone().into_scalar::<f32>();
        if !v.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "loss became {v} at step {step}: lower --lr"
            )));
        }
        acc += v as f64;
        cnt += 1;
        let grads = GradientsParams::from_grads(out.loss.backward(), &head);
        head = optim.step(cfg.lr, head, grads);
        if (step + 1) % tenth == 0 {
            curve.push((acc / cnt.max(1) as f64) as f32);
            acc = 0.0;
            cnt = 0;
        }
        progress.inc(1);
    }
    progress.finish();
    Ok((head.valid(), curve))
}

/// `recog face finetune`: a projection trained on a folder with one sub-folder of photos
/// per person, saved as `projection.bpk` + `projection.json`.
#[derive(Debug, Clone)]
pub struct FolderFineTuneParams {
    /// `<person>/<photo>` folder; people with fewer than 2 photos are left out.
    pub data: std::path::PathBuf,
    /// Output folder.
    pub out: std::path::PathBuf,
    /// Photos used per person, at most.
    pub max_per_person: usize,
    /// Training settings; the identities per batch are capped at the people found.
    pub config: FineTuneConfig,
}

/// [`FolderFineTuneParams`] that passed [`FolderFineTuneParams::check`].
#[derive(Debug, Clone)]
pub struct ValidFolderFineTuneParams(FolderFineTuneParams);

/// What a folder fine-tuning did.
#[derive(Debug, Clone, Serialize)]
pub struct FolderFineTuneReport {
    /// People with 2+ photos.
    pub people: usize,
    /// Photos with a face, trained on.
    pub faces: usize,
    /// Photos without a face, left out.
    pub no_face: usize,
    /// Mean triplet loss of each tenth of training.
    pub loss_by_tenth: Vec<f32>,
    /// The projection folder.
    pub out: std::path::PathBuf,
}

impl FolderFineTuneParams {
    /// A person needs 2 photos to form a triplet, and training needs steps.
    pub fn check(self) -> Result<ValidFolderFineTuneParams> {
        if self.max_per_person < 2 || self.config.steps == 0 || self.config.dim == 0 {
            return Err(Error::InvalidArgument(
                "fine-tuning needs max_per_person >= 2, steps >= 1 and dim >= 1".into(),
            ));
        }
        Ok(ValidFolderFineTuneParams(self))
    }
}

impl ValidFolderFineTuneParams {
    /// Embeds the photos with `pipe` (frozen), trains and saves the projection.
    pub fn run(
        &self,
        pipe: &super::FacePipeline,
        progress: &dyn Progress,
    ) -> Result<FolderFineTuneReport> {
        let a = &self.0;
        let people: Vec<Vec<std::path::PathBuf>> = crate::data::folder::people(&a.data)?
            .into_iter()
            .filter(|(_, v)| v.len() >= 2)
            .map(|(_, v)| v.into_iter().take(a.max_per_person).collect())
            .collect();
        if people.len() < 2 {
            return Err(Error::InvalidArgument(format!(
                "{}: need sub-folders of at least 2 people with 2+ photos each, found {}",
                a.data.display(),
                people.len()
            )));
        }
        let files: Vec<std::path::PathBuf> = people.concat();
        let labels_all = people
            .iter()
            .enumerate()
            .flat_map(|(i, v)| std::iter::repeat_n(i as u32, v.len()));
        let res = pipe.embed_files(&files, 16, false, progress)?;
        let (mut x, mut labels) = (Vec::new(), Vec::new());
        for (r, l) in res.iter().zip(labels_all) {
            if !r.embedding.is_empty() {
                x.extend_from_slice(&r.embedding);
                labels.push(l);
            }
        }
        let d_in = pipe.embedder.dim();
        let cfg = FineTuneConfig {
            p: a.config.p.min(people.len()),
            ..a.config.clone()
        };
        let device = crate::default_device();
        let (head, curve) = train_projection(&x, &labels, d_in, &cfg, &device, progress)?;
        head.save(&a.out, &cfg, d_in)?;
        Ok(FolderFineTuneReport {
            people: people.len(),
            faces: labels.len(),
            no_face: files.len() - labels.len(),
            loss_by_tenth: curve,
            out: a.out.clone(),
        })
    }
}

impl std::fmt::Display for FolderFineTuneReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} people, {} faces ({} photos without a face skipped)",
            self.people, self.faces, self.no_face
        )?;
        let c: Vec<String> = self
            .loss_by_tenth
            .iter()
            .map(|v| format!("{v:.4}"))
            .collect();
        writeln!(f, "triplet loss by tenth of training: {}", c.join(" "))?;
        write!(f, "projection saved to {}", self.out.display())
    }
}
