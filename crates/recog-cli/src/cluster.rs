//! `recog cluster`: PCA, k-means with the elbow, agglomerative clustering, plots.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};

use recog::bench::cluster::ClusterBenchParams;
use recog::cluster::analysis::{AnalysisParams, ClusterInput, ClusterMethod, Items};
use recog::Home;

use crate::commands::emit;
use crate::face::PipeArgs;
use crate::progress::Bars;

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodArg {
    /// K-means (k-means++, restarts) with k from --k.
    Kmeans,
    /// Average-linkage agglomerative clustering cut at --threshold (k unknown, uneven sizes).
    Agglomerative,
}

#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// A folder of images (faces are detected, aligned and embedded; labels from sub-folders
    /// or the file-name prefix before the last `_`), a `.npy` file of embeddings, or an LFW
    /// selection: `lfw:4x4` (the first 4 people, alphabetically, with 4+ photos; their first
    /// 4 photos: the notebook's 16 photos of 4 people) or `lfw:20-60` (everyone with 20 to 60
    /// photos, all of them).
    pub input: String,
    /// `auto` (Kneedle on the elbow curve) or a number.
    #[arg(long, default_value = "auto")]
    pub k: String,
    /// Largest k of the elbow curve (the notebook: 14).
    #[arg(long, default_value_t = 14)]
    pub k_max: usize,
    /// Clustering method.
    #[arg(long, value_enum, default_value_t = MethodArg::Kmeans)]
    pub method: MethodArg,
    /// Distance threshold of agglomerative clustering [default: the face network's
    /// verification distance: 1.06 for MobileFaceNet, 0.6 for dlib's ResNet].
    #[arg(long)]
    pub threshold: Option<f64>,
    /// K-means restarts per k.
    #[arg(long, default_value_t = 5)]
    pub restarts: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Embed the images as digits with this checkpoint (`recog train --out`) instead of as faces.
    #[arg(long)]
    pub digits_model: Option<PathBuf>,
    /// Output folder: assignments.csv, clusters.json, scatter.png/.svg, elbow.png/.svg,
    /// picture_map.png.
    #[arg(long, default_value = "report/cluster")]
    pub out: PathBuf,
    #[command(flatten)]
    pub pipe: PipeArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: &ClusterArgs) -> Result<()> {
    let bars = Bars::new(a.json);
    let input: ClusterInput = a.input.parse()?;
    let method = match a.method {
        MethodArg::Kmeans => ClusterMethod::KMeans,
        MethodArg::Agglomerative => ClusterMethod::Agglomerative {
            threshold: a
                .threshold
                .unwrap_or(f64::from(a.pipe.options().model().verification_distance())),
        },
    };
    let params = AnalysisParams {
        k: a.k.parse()?,
        k_max: a.k_max,
        method,
        restarts: a.restarts,
        seed: a.seed,
        out: a.out.clone(),
    }
    .check()?;
    let items = match &input {
        ClusterInput::Npy(p) => Items::from_npy(p)?,
        _ => {
            let files = Items::files(&input, &Home::from_env())?;
            match &a.digits_model {
                Some(model) => Items::digits(&files, model, &bars)?,
                None => Items::faces(&files, &a.pipe.pipeline()?, &bars)?,
            }
        }
    };
    for e in &items.errors {
        eprintln!("error: {}", e.error);
    }
    let report = params.run(&items, &a.input)?;
    let summary = &report.summary;
    emit(a.json, summary)?;
    if !a.json {
        let maps = if report.picture_map {
            ", picture_map.png, picture_map.svg"
        } else {
            ""
        };
        let o = a.out.display();
        println!(
            "wrote {o}/{{assignments.csv, clusters.json, scatter.png/.svg, elbow.png/.svg{maps}}}"
        );
    }
    if !items.errors.is_empty() {
        bail!(
            "{} images could not be read; clustered the others",
            items.errors.len()
        );
    }
    Ok(())
}

/// `recog bench cluster`: k-means sweeps on synthetic blobs.
#[derive(Args, Debug, Clone)]
pub struct BenchClusterArgs {
    /// Rows.
    #[arg(long, default_value_t = 10000)]
    pub n: usize,
    /// Dimension.
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Largest k.
    #[arg(long, default_value_t = 30)]
    pub k_max: usize,
    /// Restarts per k.
    #[arg(long, default_value_t = 5)]
    pub restarts: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn bench(a: &BenchClusterArgs) -> Result<()> {
    let r = ClusterBenchParams {
        n: a.n,
        dim: a.dim,
        k_max: a.k_max,
        restarts: a.restarts,
    }
    .check()?
    .run();
    emit(a.json, &r)
}
