//! `recog cluster`: PCA, k-means with the elbow, agglomerative clustering, plots.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;

use recog::cluster::{self, agglomerative, metrics, Pca};
use recog::data::folder::is_image;
use recog::plot::{self, Series};
use recog::{Home, Progress};

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

#[derive(Serialize)]
struct Assignment {
    file: String,
    label: Option<String>,
    cluster: usize,
    x: f32,
    y: f32,
}

#[derive(Serialize)]
struct Summary {
    input: String,
    items: usize,
    skipped_no_face: usize,
    people: Option<usize>,
    dim: usize,
    method: String,
    k: usize,
    k_auto: Option<usize>,
    explained_variance_2d: Vec<f64>,
    elbow: Vec<cluster::ElbowPoint>,
    ari: Option<f64>,
    nmi: Option<f64>,
    purity: Option<f64>,
    seconds: f64,
    /// Files that could not be read, with why: the others were clustered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FileError>,
}

#[derive(Serialize, Clone)]
struct FileError {
    file: String,
    error: String,
}

fn image_files(root: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
        let p = e?.path();
        if p.is_dir() {
            let label = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            for f in std::fs::read_dir(&p)? {
                let f = f?.path();
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

/// The documented LFW selections.
fn lfw_selection(spec: &str) -> Result<Vec<(PathBuf, String)>> {
    let dir = Home::from_env().data_dir("lfw").join("images");
    let people = recog::data::folder::people(&dir)?;
    let pick: Vec<(String, Vec<PathBuf>)> = match spec {
        "4x4" => people
            .into_iter()
            .filter(|(_, f)| f.len() >= 4)
            .take(4)
            .map(|(n, f)| (n, f.into_iter().take(4).collect()))
            .collect(),
        "20-60" => people
            .into_iter()
            .filter(|(_, f)| (20..=60).contains(&f.len()))
            .collect(),
        other => bail!("unknown LFW selection `lfw:{other}`: use lfw:4x4 or lfw:20-60"),
    };
    Ok(pick
        .into_iter()
        .flat_map(|(n, f)| f.into_iter().map(move |p| (p, n.clone())))
        .collect())
}

fn read_npy(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if !b.starts_with(b"\x93NUMPY") || b.len() < 10 {
        bail!("{}: not a .npy file", path.display());
    }
    let (hl, off) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header =
        String::from_utf8_lossy(b.get(off..off + hl).context("truncated .npy header")?).to_string();
    if !header.contains("'<f4'") || header.contains("'fortran_order': True") {
        bail!(
            "{}: need a C-order float32 array, header is {header}",
            path.display()
        );
    }
    let shape = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or("")
        .trim()
        .trim_start_matches('(');
    let dims: Vec<usize> = shape
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect();
    let [n, d] = dims[..] else {
        bail!("{}: need a 2-D array, shape is ({shape})", path.display())
    };
    let data: Vec<f32> = b[off + hl..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if data.len() != n * d {
        bail!(
            "{}: shape ({n}, {d}) needs {} values, file has {}",
            path.display(),
            n * d,
            data.len()
        );
    }
    Ok((data, n, d))
}

pub fn run(a: &ClusterArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let bars = Bars::new(a.json);
    let mut skipped = 0;
    let mut errors: Vec<FileError> = Vec::new();
    let (x, n, d, names, labels, thumbs) = if a.input.ends_with(".npy") {
        let (x, n, d) = read_npy(Path::new(&a.input))?;
        (
            x,
            n,
            d,
            (0..n).map(|i| format!("row {i}")).collect::<Vec<_>>(),
            None,
            Vec::new(),
        )
    } else {
        let files = match a.input.strip_prefix("lfw:") {
            Some(spec) => lfw_selection(spec)?,
            None => image_files(Path::new(&a.input))?,
        };
        if files.is_empty() {
            bail!("{}: no image files found", a.input);
        }
        if let Some(model) = &a.digits_model {
            let (x, names, labs, thumbs) = embed_digits(model, &files, &mut errors, &bars)?;
            let n = names.len();
            let d = x.len().checked_div(n).unwrap_or(0);
            finish(a, t0, skipped, &errors, x, n, d, names, Some(labs), thumbs)?;
            if !errors.is_empty() {
                bail!(
                    "{} images could not be read; clustered the others",
                    errors.len()
                );
            }
            return Ok(());
        }
        let pipe = crate::face::pipeline(&a.pipe)?;
        let paths: Vec<PathBuf> = files.iter().map(|f| f.0.clone()).collect();
        let res = pipe.embed_files(&paths, 16, false, &bars)?;
        let (mut x, mut names, mut labs, mut thumbs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((p, l), r) in files.iter().zip(&res) {
            if let Some(e) = &r.error {
                eprintln!("error: {e}");
                errors.push(FileError {
                    file: p.display().to_string(),
                    error: e.clone(),
                });
                continue;
            }
            match &r.face {
                Some(f) if !r.embedding.is_empty() => {
                    x.extend_from_slice(&r.embedding);
                    names.push(p.display().to_string());
                    labs.push(l.clone());
                    if files.len() <= 400 {
                        let img = recog::data::image_file::load_rgb(p)?;
                        let chip = pipe.chip(&img, f);
                        thumbs.push(image::imageops::resize(
                            &chip,
                            56,
                            56,
                            image::imageops::FilterType::Triangle,
                        ));
                    }
                }
                _ => {
                    skipped += 1;
                    bars.warn(&format!("{}: no face found, left out", p.display()));
                }
            }
        }
        let n = names.len();
        let d = x.len().checked_div(n).unwrap_or(0);
        (x, n, d, names, Some(labs), thumbs)
    };
    finish(a, t0, skipped, &errors, x, n, d, names, labels, thumbs)?;
    if !errors.is_empty() {
        bail!(
            "{} images could not be read; clustered the others",
            errors.len()
        );
    }
    Ok(())
}

type Embedded = (Vec<f32>, Vec<String>, Vec<String>, Vec<image::RgbImage>);

/// Digit images: MNIST-style normalisation, then the embedding checkpoint.
fn embed_digits(
    model: &Path,
    files: &[(PathBuf, String)],
    errors: &mut Vec<FileError>,
    bars: &Bars,
) -> Result<Embedded> {
    let device = recog::default_device();
    let (_, net) = recog::train::CheckpointDir::new(model).load_model(&device)?;
    let (mut pixels, mut names, mut labs, mut thumbs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (p, l) in files {
        match recog::data::mnistify::mnistify_file(p) {
            Ok(px) => {
                if files.len() <= 400 {
                    thumbs.push(image::RgbImage::from_fn(28, 28, |x, y| {
                        let v = px[(y * 28 + x) as usize];
                        image::Rgb([v, v, v])
                    }));
                }
                pixels.extend(px);
                names.push(p.display().to_string());
                labs.push(l.clone());
            }
            Err(e) => {
                eprintln!("error: {e}");
                errors.push(FileError {
                    file: p.display().to_string(),
                    error: e.to_string(),
                });
            }
        }
    }
    let n = names.len();
    let ds = recog::data::Dataset::new(pixels, vec![0; n], 28, 28, vec!["?".into()])?;
    let x = net.embed_dataset(&ds, 256, &device, bars);
    Ok((x, names, labs, thumbs))
}

#[allow(clippy::too_many_arguments)]
fn finish(
    a: &ClusterArgs,
    t0: std::time::Instant,
    skipped: usize,
    errors: &[FileError],
    x: Vec<f32>,
    n: usize,
    d: usize,
    names: Vec<String>,
    labels: Option<Vec<String>>,
    thumbs: Vec<image::RgbImage>,
) -> Result<()> {
    if n < 2 {
        bail!("need at least 2 embeddings, have {n}");
    }
    let pca = Pca::fit(&x, n, d, 2);
    let xy = pca.transform(&x);
    let (sols, elbow) = cluster::sweep(&x, n, d, a.k_max, a.restarts, a.seed, 2000);
    let ks: Vec<f64> = elbow.iter().map(|e| e.k as f64).collect();
    let inertia: Vec<f64> = elbow.iter().map(|e| e.inertia).collect();
    let k_auto = cluster::kneedle(&ks, &inertia).map(|i| elbow[i].k);
    let (method, k, assign) = match a.method {
        MethodArg::Kmeans => {
            let k = if a.k == "auto" {
                k_auto.context("no knee in the elbow curve: give --k N")?
            } else {
                a.k.parse::<usize>()
                    .with_context(|| format!("--k {}: not `auto` or a number", a.k))?
            };
            if k == 0 || k > n {
                bail!("--k {k}: must be between 1 and the number of items ({n})");
            }
            let sol = if k <= sols.len() {
                sols[k - 1].clone()
            } else {
                cluster::kmeans(&x, n, d, k, a.restarts, a.seed)
            };
            ("kmeans".to_string(), k, sol.labels)
        }
        MethodArg::Agglomerative => {
            let threshold = a
                .threshold
                .unwrap_or(f64::from(a.pipe.model().verification_distance()));
            let l = agglomerative::average_linkage(&x, n, d, threshold);
            let k = l.iter().copied().max().map_or(0, |m| m + 1);
            (
                format!("agglomerative (average linkage, threshold {threshold})"),
                k,
                l,
            )
        }
    };
    let (truth, classes): (Option<Vec<usize>>, Vec<String>) = match &labels {
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
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
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
    if !thumbs.is_empty() {
        for ext in ["png", "svg"] {
            plot::picture_map(
                &a.out.join(format!("picture_map.{ext}")),
                &xy,
                &thumbs,
                &assign,
                1000,
            )?;
        }
    }
    let rows: Vec<Assignment> = (0..n)
        .map(|i| Assignment {
            file: names[i].clone(),
            label: labels.as_ref().map(|l| l[i].clone()),
            cluster: assign[i],
            x: xy[2 * i],
            y: xy[2 * i + 1],
        })
        .collect();
    let mut csv = String::from("file,label,cluster,pc1,pc2\n");
    for r in &rows {
        csv.push_str(&format!(
            "\"{}\",{},{},{},{}\n",
            r.file.replace('"', "\"\""),
            r.label.clone().unwrap_or_default(),
            r.cluster,
            r.x,
            r.y
        ));
    }
    std::fs::write(a.out.join("assignments.csv"), csv)?;
    let summary = Summary {
        input: a.input.clone(),
        items: n,
        skipped_no_face: skipped,
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
        seconds: t0.elapsed().as_secs_f64(),
        errors: errors.to_vec(),
    };
    let json = serde_json::to_string_pretty(
        &serde_json::json!({"summary": &summary, "assignments": &rows}),
    )?;
    std::fs::write(a.out.join("clusters.json"), &json)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{} items ({}-d){}",
            n,
            d,
            summary
                .people
                .map_or(String::new(), |p| format!(", {p} labels"))
        );
        let ev = &summary.explained_variance_2d;
        println!(
            "PCA 2-D explains {:.1}% + {:.1}% of the variance",
            100.0 * ev.first().unwrap_or(&0.0),
            100.0 * ev.get(1).unwrap_or(&0.0)
        );
        println!("  k   inertia   silhouette");
        for e in &summary.elbow {
            println!(
                "{:3} {:9.3}   {}",
                e.k,
                e.inertia,
                e.silhouette.map_or("-".into(), |s| format!("{s:.3}"))
            );
        }
        println!(
            "knee (Kneedle): {}",
            k_auto.map_or("none".into(), |k| k.to_string())
        );
        println!("{}: k = {}", summary.method, k);
        if let (Some(ari), Some(nmi), Some(p)) = (summary.ari, summary.nmi, summary.purity) {
            println!("ARI {ari:.4}  NMI {nmi:.4}  purity {p:.4}");
        }
        println!(
            "wrote {}/{{assignments.csv, clusters.json, scatter.png/.svg, elbow.png/.svg{}}}",
            a.out.display(),
            if thumbs.is_empty() {
                ""
            } else {
                ", picture_map.png, picture_map.svg"
            }
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
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let centres: Vec<f32> = (0..20 * a.dim).map(|_| rng.random::<f32>() * 4.0).collect();
    let x: Vec<f32> = (0..a.n)
        .flat_map(|i| {
            let c = i % 20;
            let base: Vec<f32> = centres[c * a.dim..(c + 1) * a.dim].to_vec();
            base.into_iter()
                .map(|v| v + rng.random::<f32>() - 0.5)
                .collect::<Vec<_>>()
        })
        .collect();
    let t = std::time::Instant::now();
    let (_, elbow) = cluster::sweep(&x, a.n, a.dim, a.k_max, a.restarts, 42, 2000);
    let secs = t.elapsed().as_secs_f64();
    let ks: Vec<f64> = elbow.iter().map(|e| e.k as f64).collect();
    let inertia: Vec<f64> = elbow.iter().map(|e| e.inertia).collect();
    let knee = cluster::kneedle(&ks, &inertia).map(|i| elbow[i].k);
    let r = serde_json::json!({"n": a.n, "dim": a.dim, "k_max": a.k_max, "restarts": a.restarts,
        "seconds": secs, "knee": knee, "true_k": 20, "target_seconds": 30.0});
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("k-means sweep k = 1..{} ({} restarts each) + silhouettes on 2,000 rows: {} x {}-d in {secs:.1} s (target < 30 s: {})", a.k_max, a.restarts, a.n, a.dim, if secs < 30.0 { "met" } else { "not met" });
        println!(
            "knee found at k = {} (20 generated blobs)",
            knee.map_or("none".into(), |k| k.to_string())
        );
    }
    Ok(())
}
