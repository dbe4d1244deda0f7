//! The notebook's Part V as a task: embed a set of items (face photos, digit images or an
//! `.npy` array), project them to 2-D with PCA, sweep k-means over k with the elbow and
//! silhouettes, pick k (the Kneedle knee, or a given k) or cut an average-linkage tree at a
//! distance, score the clusters against the labels (ARI, NMI, purity), and write the
//! assignments, the plots and `clusters.json`.
//!
//! ```
//! use recog::cluster::analysis::{AnalysisParams, ClusterInput, Items, KChoice};
//! // Two tight pairs of points.
//! let items = Items::from_rows(
//!     vec![0.0, 0.0, 0.1, 0.0, 5.0, 5.0, 5.1, 5.0],
//!     2,
//!     Some(vec!["a".into(), "a".into(), "b".into(), "b".into()]),
//! );
//! let dir = tempfile::tempdir().unwrap();
//! let params = AnalysisParams { k: KChoice::Fixed(2), k_max: 3, ..AnalysisParams::new(dir.path().into()) };
//! let report = params.check().unwrap().run(&items, "toy").unwrap();
//! assert_eq!(report.summary.ari, Some(1.0));
//! assert_eq!("lfw:4x4".parse::<ClusterInput>().unwrap(), ClusterInput::Lfw(recog::cluster::analysis::LfwSelection::FourByFour));
//! ```

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use super::{agglomerative, kmeans, kneedle, metrics, sweep, ElbowPoint, Pca};
use crate::face::FacePipeline;
use crate::plot::{self, Series};
use crate::{Error, Home, Progress, Result};

/// The documented LFW selections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LfwSelection {
    /// The first 4 people (alphabetically) with 4+ photos, their first 4 photos: the
    /// notebook's 16 photos of 4 people (`lfw:4x4`).
    FourByFour,
    /// Everyone with 20 to 60 photos, all of them (`lfw:20-60`).
    TwentyToSixty,
}

/// What to cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterInput {
    /// Rows of a 2-D float32 `.npy` array.
    Npy(PathBuf),
    /// A folder of images: `<label>/<photo>`, or `<label>_<n>.jpg` directly in it.
    Folder(PathBuf),
    /// A selection of the home's LFW.
    Lfw(LfwSelection),
}

impl FromStr for ClusterInput {
    type Err = Error;

    /// `lfw:4x4`, `lfw:20-60`, `*.npy`, else a folder.
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.strip_prefix("lfw:") {
            Some("4x4") => ClusterInput::Lfw(LfwSelection::FourByFour),
            Some("20-60") => ClusterInput::Lfw(LfwSelection::TwentyToSixty),
            Some(other) => {
                return Err(Error::InvalidArgument(format!(
                    "unknown LFW selection `lfw:{other}`: use lfw:4x4 or lfw:20-60"
                )))
            }
            None if s.ends_with(".npy") => ClusterInput::Npy(s.into()),
            None => ClusterInput::Folder(s.into()),
        })
    }
}

/// How k is chosen for k-means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KChoice {
    /// The knee of the elbow curve (Kneedle).
    #[default]
    Auto,
    /// A given k.
    Fixed(usize),
}

impl FromStr for KChoice {
    type Err = Error;

    /// `auto` or a number.
    fn from_str(s: &str) -> Result<Self> {
        if s == "auto" {
            return Ok(KChoice::Auto);
        }
        s.parse()
            .map(KChoice::Fixed)
            .map_err(|_| Error::InvalidArgument(format!("--k {s}: not `auto` or a number")))
    }
}

/// The clustering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClusterMethod {
    /// K-means (k-means++, restarts), k from [`AnalysisParams::k`].
    KMeans,
    /// Average-linkage agglomerative clustering cut at a distance (k unknown, uneven sizes).
    Agglomerative {
        /// The cut.
        threshold: f64,
    },
}

/// Embedded items, ready to cluster.
#[derive(Debug, Clone, Default)]
pub struct Items {
    /// `[n, dim]` row-major.
    pub x: Vec<f32>,
    /// Dimension.
    pub dim: usize,
    /// A name per row (file or `row i`).
    pub names: Vec<String>,
    /// A label per row, when the input has them.
    pub labels: Option<Vec<String>>,
    /// Small pictures per row for the picture map (faces' chips, digits), when few enough.
    pub thumbs: Vec<image::RgbImage>,
    /// Photos left out for having no face.
    pub skipped_no_face: usize,
    /// Files that could not be read, with why: the others are clustered.
    pub errors: Vec<FileError>,
    /// Time it took to embed them, s.
    pub seconds: f64,
}

/// A file that could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct FileError {
    /// The file.
    pub file: String,
    /// Why.
    pub error: String,
}

/// At most this many items get thumbnails (the picture map is unreadable beyond).
const MAX_THUMBS: usize = 400;

impl Items {
    /// Rows without pictures; `labels` optional.
    pub fn from_rows(x: Vec<f32>, dim: usize, labels: Option<Vec<String>>) -> Self {
        let n = x.len().checked_div(dim).unwrap_or(0);
        Self {
            x,
            dim,
            names: (0..n).map(|i| format!("row {i}")).collect(),
            labels,
            ..Default::default()
        }
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The rows of a `.npy` file (no labels).
    pub fn from_npy(path: &Path) -> Result<Self> {
        let (x, _, d) = crate::data::npy::read(path)?;
        Ok(Self::from_rows(x, d, None))
    }

    /// The image files of an input with their labels, in path order.
    pub fn files(input: &ClusterInput, home: &Home) -> Result<Vec<(PathBuf, String)>> {
        let files = match input {
            ClusterInput::Npy(p) => {
                return Err(Error::InvalidArgument(format!(
                    "{}: an array, not images",
                    p.display()
                )))
            }
            ClusterInput::Folder(root) => labelled_images(root)?,
            ClusterInput::Lfw(sel) => lfw_selection(home, *sel)?,
        };
        if files.is_empty() {
            let name = match input {
                ClusterInput::Folder(p) | ClusterInput::Npy(p) => p.display().to_string(),
                ClusterInput::Lfw(s) => format!("LFW selection {s:?}"),
            };
            return Err(Error::InvalidArgument(format!(
                "{name}: no image files found"
            )));
        }
        Ok(files)
    }

    /// Faces: detected, aligned and embedded by `pipe`; photos without a face are left out.
    pub fn faces(
        files: &[(PathBuf, String)],
        pipe: &FacePipeline,
        progress: &dyn Progress,
    ) -> Result<Self> {
        let t0 = std::time::Instant::now();
        let paths: Vec<PathBuf> = files.iter().map(|f| f.0.clone()).collect();
        let res = pipe.embed_files(&paths, 16, false, progress)?;
        let mut items = Items {
            dim: pipe.dim(),
            labels: Some(Vec::new()),
            ..Default::default()
        };
        for ((p, l), r) in files.iter().zip(&res) {
            if let Some(e) = &r.error {
                items.errors.push(FileError {
                    file: p.display().to_string(),
                    error: e.clone(),
                });
                continue;
            }
            match &r.face {
                Some(f) if !r.embedding.is_empty() => {
                    items.x.extend_from_slice(&r.embedding);
                    items.names.push(p.display().to_string());
                    if let Some(ls) = items.labels.as_mut() {
                        ls.push(l.clone());
                    }
                    if files.len() <= MAX_THUMBS {
                        let img = crate::data::image_file::load_rgb(p)?;
                        let chip = pipe.chip(&img, f);
                        items.thumbs.push(image::imageops::resize(
                            &chip,
                            56,
                            56,
                            image::imageops::FilterType::Triangle,
                        ));
                    }
                }
                _ => {
                    items.skipped_no_face += 1;
                    progress.warn(&format!("{}: no face found, left out", p.display()));
                }
            }
        }
        items.seconds = t0.elapsed().as_secs_f64();
        Ok(items)
    }

    /// Digit images: MNIST-style normalisation, then the embedding checkpoint `model`
    /// (`recog train --out`).
    pub fn digits(
        files: &[(PathBuf, String)],
        model: &Path,
        progress: &dyn Progress,
    ) -> Result<Self> {
        let t0 = std::time::Instant::now();
        let device = crate::default_device();
        let (_, net) = crate::train::CheckpointDir::new(model).load_model(&device)?;
        let mut items = Items {
            labels: Some(Vec::new()),
            ..Default::default()
        };
        let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
        let (ds, rows) = crate::data::mnistify::mnistify_files(&paths)?;
        for ((p, l), row) in files.iter().zip(rows) {
            match row {
                Ok(i) => {
                    if files.len() <= MAX_THUMBS {
                        let px = ds.image(i);
                        items.thumbs.push(image::RgbImage::from_fn(28, 28, |x, y| {
                            let v = px[(y * 28 + x) as usize];
                            image::Rgb([v, v, v])
                        }));
                    }
                    items.names.push(p.display().to_string());
                    if let Some(ls) = items.labels.as_mut() {
                        ls.push(l.clone());
                    }
                }
                Err(error) => items.errors.push(FileError {
                    file: p.display().to_string(),
                    error,
                }),
            }
        }
        let n = items.names.len();
        items.x = net.embed_dataset(&ds, 256, &device, progress);
        items.dim = items.x.len().checked_div(n).unwrap_or(0);
        items.seconds = t0.elapsed().as_secs_f64();
        Ok(items)
    }
}

/// `<label>/<photo>` and `<label>_<n>.jpg` images of a folder, in path order.
fn labelled_images(root: &Path) -> Result<Vec<(PathBuf, String)>> {
    use crate::data::folder::is_image;
    let read = |d: &Path| std::fs::read_dir(d).map_err(|e| Error::io(d, e));
    let mut out = Vec::new();
    for e in read(root)? {
        let p = e.map_err(|e| Error::io(root, e))?.path();
        if p.is_dir() {
            let label = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            for f in read(&p)? {
                let f = f.map_err(|e| Error::io(&p, e))?.path();
                if is_image(&f) {
                    out.push((f, label.clone()));
                }
            }
        } else if is_image(&p) {
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let label = stem.rsplit_once('_').map_or(stem, |(a, _)| a).to_string();
            out.push((p, label));
        }
    }
    out.sort();
    Ok(out)
}

fn lfw_selection(home: &Home, sel: LfwSelection) -> Result<Vec<(PathBuf, String)>> {
    let dir = home.data_dir("lfw").join("images");
    let people = crate::data::folder::people(&dir)?;
    let pick: Vec<(String, Vec<PathBuf>)> = match sel {
        LfwSelection::FourByFour => people
            .into_iter()
            .filter(|(_, f)| f.len() >= 4)
            .take(4)
            .map(|(n, f)| (n, f.into_iter().take(4).collect()))
            .collect(),
        LfwSelection::TwentyToSixty => people
            .into_iter()
            .filter(|(_, f)| (20..=60).contains(&f.len()))
            .collect(),
    };
    Ok(pick
        .into_iter()
        .flat_map(|(n, f)| f.into_iter().map(move |p| (p, n.clone())))
        .collect())
}

/// How to cluster, and where the results go.
#[derive(Debug, Clone)]
pub struct AnalysisParams {
    /// k for k-means.
    pub k: KChoice,
    /// Largest k of the elbow curve (the notebook: 14).
    pub k_max: usize,
    /// The clustering.
    pub method: ClusterMethod,
    /// K-means restarts per k.
    pub restarts: usize,
    /// Seed.
    pub seed: u64,
    /// Output folder: assignments.csv, clusters.json, scatter and elbow plots (PNG and SVG),
    /// the picture map.
    pub out: PathBuf,
}

impl AnalysisParams {
    /// The notebook's settings: k-means, k by the knee, k up to 14, 5 restarts, seed 42.
    pub fn new(out: PathBuf) -> Self {
        Self {
            k: KChoice::Auto,
            k_max: 14,
            method: ClusterMethod::KMeans,
            restarts: 5,
            seed: 42,
            out,
        }
    }

    /// Needs a k range and a positive cut.
    pub fn check(self) -> Result<ValidAnalysisParams> {
        if self.k_max == 0 || self.restarts == 0 {
            return Err(Error::InvalidArgument(
                "k_max and restarts must be at least 1".into(),
            ));
        }
        if let ClusterMethod::Agglomerative { threshold } = self.method {
            if !(threshold.is_finite() && threshold > 0.0) {
                return Err(Error::InvalidArgument(format!(
                    "threshold {threshold}: must be a positive distance"
                )));
            }
        }
        Ok(ValidAnalysisParams(self))
    }
}

/// Checked [`AnalysisParams`].
#[derive(Debug, Clone)]
pub struct ValidAnalysisParams(AnalysisParams);

/// One item's cluster and 2-D position.
#[derive(Debug, Clone, Serialize)]
pub struct Assignment {
    /// The item.
    pub file: String,
    /// Its label, if known.
    pub label: Option<String>,
    /// Its cluster.
    pub cluster: usize,
    /// First principal component.
    pub x: f32,
    /// Second.
    pub y: f32,
}

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterSummary {
    /// The input, as given.
    pub input: String,
    /// Items clustered.
    pub items: usize,
    /// Photos left out for having no face.
    pub skipped_no_face: usize,
    /// Distinct labels.
    pub people: Option<usize>,
    /// Embedding dimension.
    pub dim: usize,
    /// The clustering, in words.
    pub method: String,
    /// Clusters.
    pub k: usize,
    /// The knee of the elbow curve.
    pub k_auto: Option<usize>,
    /// Variance explained by the 2-D projection.
    pub explained_variance_2d: Vec<f64>,
    /// Inertia and silhouette per k.
    pub elbow: Vec<ElbowPoint>,
    /// Adjusted Rand index against the labels.
    pub ari: Option<f64>,
    /// Normalised mutual information.
    pub nmi: Option<f64>,
    /// Purity.
    pub purity: Option<f64>,
    /// Wall time of embedding and clustering, s.
    pub seconds: f64,
    /// Files that could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FileError>,
}

/// The summary and every item's assignment, as `clusters.json` holds them.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    /// The figures.
    pub summary: ClusterSummary,
    /// Per item.
    pub assignments: Vec<Assignment>,
    /// Whether a picture map was drawn.
    #[serde(skip)]
    pub picture_map: bool,
}

impl ValidAnalysisParams {
    /// Clusters `items` (named `input` in the report) and writes the files.
    pub fn run(&self, items: &Items, input: &str) -> Result<ClusterReport> {
        let t0 = std::time::Instant::now();
        let a = &self.0;
        let (x, d, n) = (&items.x, items.dim, items.len());
        if n < 2 {
            return Err(Error::InvalidArgument(format!(
                "need at least 2 embeddings, have {n}"
            )));
        }
        let pca = Pca::fit(x, n, d, 2);
        let xy = pca.transform(x);
        let (sols, elbow) = sweep(x, n, d, a.k_max, a.restarts, a.seed, 2000);
        let ks: Vec<f64> = elbow.iter().map(|e| e.k as f64).collect();
        let inertia: Vec<f64> = elbow.iter().map(|e| e.inertia).collect();
        let k_auto = kneedle(&ks, &inertia).map(|i| elbow[i].k);
        let (method, k, assign) = match a.method {
            ClusterMethod::KMeans => {
                let k = match a.k {
                    KChoice::Auto => k_auto.ok_or_else(|| {
                        Error::InvalidArgument("no knee in the elbow curve: give --k N".into())
                    })?,
                    KChoice::Fixed(k) => k,
                };
                if k == 0 || k > n {
                    return Err(Error::InvalidArgument(format!(
                        "--k {k}: must be between 1 and the number of items ({n})"
                    )));
                }
                let sol = match sols.get(k - 1) {
                    Some(s) => s.clone(),
                    None => kmeans(x, n, d, k, a.restarts, a.seed),
                };
                ("kmeans".to_string(), k, sol.labels)
            }
            ClusterMethod::Agglomerative { threshold } => {
                let l = agglomerative::average_linkage(x, n, d, threshold);
                let k = l.iter().copied().max().map_or(0, |m| m + 1);
                (
                    format!("agglomerative (average linkage, threshold {threshold})"),
                    k,
                    l,
                )
            }
        };
        let (truth, classes): (Option<Vec<usize>>, Vec<String>) = match &items.labels {
            Some(l) => {
                let mut classes: Vec<String> = l.clone();
                classes.sort();
                classes.dedup();
                (
                    Some(
                        l.iter()
                            .map(|s| classes.binary_search(s).unwrap_or(0))
                            .collect(),
                    ),
                    classes,
                )
            }
            None => (None, Vec::new()),
        };
        std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
        let title = format!("{n} items, {method}, k = {k}");
        for ext in ["png", "svg"] {
            plot::cluster_scatter(
                &a.out.join(format!("scatter.{ext}")),
                &title,
                &xy,
                &assign,
                truth.as_deref().map(|t| (t, classes.as_slice())),
            )?;
            let top = inertia.iter().cloned().fold(0.0, f64::max);
            let mut series = vec![Series {
                label: "inertia".into(),
                points: ks.iter().copied().zip(inertia.iter().copied()).collect(),
            }];
            if let Some(ka) = k_auto {
                series.push(Series {
                    label: format!("knee (Kneedle): k = {ka}"),
                    points: vec![(ka as f64, 0.0), (ka as f64, top)],
                });
            }
            if Some(k) != k_auto && k as f64 <= ks.last().copied().unwrap_or(0.0) {
                series.push(Series {
                    label: format!("chosen: k = {k}"),
                    points: vec![(k as f64, 0.0), (k as f64, top)],
                });
            }
            plot::line_chart(
                &a.out.join(format!("elbow.{ext}")),
                "Elbow: k-means inertia by k",
                "k",
                "inertia",
                &series,
            )?;
        }
        let picture_map = !items.thumbs.is_empty();
        if picture_map {
            for ext in ["png", "svg"] {
                plot::picture_map(
                    &a.out.join(format!("picture_map.{ext}")),
                    &xy,
                    &items.thumbs,
                    &assign,
                    1000,
                )?;
            }
        }
        let assignments: Vec<Assignment> = (0..n)
            .map(|i| Assignment {
                file: items.names[i].clone(),
                label: items.labels.as_ref().map(|l| l[i].clone()),
                cluster: assign[i],
                x: xy[2 * i],
                y: xy[2 * i + 1],
            })
            .collect();
        let mut csv = String::from("file,label,cluster,pc1,pc2\n");
        for r in &assignments {
            csv.push_str(&format!(
                "\"{}\",{},{},{},{}\n",
                r.file.replace('"', "\"\""),
                r.label.clone().unwrap_or_default(),
                r.cluster,
                r.x,
                r.y
            ));
        }
        let csv_path = a.out.join("assignments.csv");
        std::fs::write(&csv_path, csv).map_err(|e| Error::io(&csv_path, e))?;
        let summary = ClusterSummary {
            input: input.to_string(),
            items: n,
            skipped_no_face: items.skipped_no_face,
            people: truth.as_ref().map(|_| classes.len()),
            dim: d,
            method,
            k,
            k_auto,
            explained_variance_2d: pca.explained_ratio(),
            ari: truth
                .as_ref()
                .map(|t| metrics::adjusted_rand_index(t, &assign)),
            nmi: truth.as_ref().map(|t| metrics::nmi(t, &assign)),
            purity: truth.as_ref().map(|t| metrics::purity(t, &assign)),
            elbow,
            seconds: items.seconds + t0.elapsed().as_secs_f64(),
            errors: items.errors.clone(),
        };
        let report = ClusterReport {
            summary,
            assignments,
            picture_map,
        };
        let json_path = a.out.join("clusters.json");
        std::fs::write(
            &json_path,
            serde_json::to_string_pretty(&report).unwrap_or_default(),
        )
        .map_err(|e| Error::io(&json_path, e))?;
        Ok(report)
    }
}

impl std::fmt::Display for ClusterSummary {
    /// The elbow table, the knee, the chosen k and, with labels, ARI / NMI / purity.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels = self
            .people
            .map_or(String::new(), |p| format!(", {p} labels"));
        writeln!(f, "{} items ({}-d){labels}", self.items, self.dim)?;
        let ev = &self.explained_variance_2d;
        writeln!(
            f,
            "PCA 2-D explains {:.1}% + {:.1}% of the variance",
            100.0 * ev.first().unwrap_or(&0.0),
            100.0 * ev.get(1).unwrap_or(&0.0)
        )?;
        writeln!(f, "  k   inertia   silhouette")?;
        for e in &self.elbow {
            let s = e.silhouette.map_or("-".into(), |s| format!("{s:.3}"));
            writeln!(f, "{:3} {:9.3}   {s}", e.k, e.inertia)?;
        }
        let knee = self.k_auto.map_or("none".into(), |k| k.to_string());
        writeln!(f, "knee (Kneedle): {knee}")?;
        write!(f, "{}: k = {}", self.method, self.k)?;
        if let (Some(ari), Some(nmi), Some(p)) = (self.ari, self.nmi, self.purity) {
            write!(f, "\nARI {ari:.4}  NMI {nmi:.4}  purity {p:.4}")?;
        }
        Ok(())
    }
}
