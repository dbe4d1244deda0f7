//! `recog face`: detect, embed, verify, eval-lfw.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use recog::eval::lfw;
use recog::face::{self, draw, Detector, FacePipeline};
use recog::plot::{self, Series};
use recog::{Home, Progress};

use crate::progress::Bars;

#[derive(Subcommand, Debug)]
pub enum FaceCommand {
    /// Find faces: boxes and keypoints as JSON, plus annotated images.
    Detect(DetectArgs),
    /// Embed the (most central) face of each image with the face ResNet.
    Embed(EmbedArgs),
    /// Distance between the faces of two images, and same/different at a threshold.
    Verify(VerifyArgs),
    /// The LFW View 2 protocol: 10-fold accuracy, ROC AUC, EER, TAR at FAR 1e-3.
    EvalLfw(EvalLfwArgs),
}

/// Alignment and embedding options shared by the face commands.
#[derive(Args, Debug, Clone)]
pub struct PipeArgs {
    /// Keypoints the alignment fits.
    #[arg(long, value_enum, default_value_t = PointsArg::EyesNoseMouth)]
    pub align_points: PointsArg,
    /// Detect again on a crop around each face for finer keypoints.
    #[arg(long)]
    pub refine: bool,
    /// Average each face's descriptor with its mirror image's.
    #[arg(long)]
    pub flip: bool,
    /// Chip padding around the alignment template (dlib: 0.25).
    #[arg(long, default_value_t = 0.25)]
    pub padding: f32,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointsArg {
    /// Both eyes, nose tip and mouth centre.
    EyesNoseMouth,
    /// Both eyes and the mouth centre.
    EyesMouth,
}

#[derive(Args, Debug, Clone)]
pub struct DetectArgs {
    /// Image files (PNG/JPEG).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Folder for annotated copies (`<stem>.faces.png`); none if omitted.
    #[arg(long)]
    pub annotate: Option<PathBuf>,
    /// Minimum detector score.
    #[arg(long, default_value_t = 0.5)]
    pub min_score: f32,
}

#[derive(Args, Debug, Clone)]
pub struct EmbedArgs {
    /// Image files (PNG/JPEG).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Write the embeddings as a float32 `.npy` array (rows in argument order).
    #[arg(long)]
    pub npy: Option<PathBuf>,
    /// Print JSON (file, box, embedding); default prints one line per file.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub pipe: PipeArgs,
}

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// First image.
    pub a: PathBuf,
    /// Second image.
    pub b: PathBuf,
    /// Same-person threshold on the Euclidean distance (dlib's 0.6 unless given).
    #[arg(long, default_value_t = 0.6)]
    pub threshold: f32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub pipe: PipeArgs,
}

#[derive(Args, Debug, Clone)]
pub struct EvalLfwArgs {
    /// LFW folder (with `pairs.txt` and `images/`); default `RECOG_HOME/data/lfw`.
    #[arg(long)]
    pub lfw: Option<PathBuf>,
    /// Folder for the ROC and distance-histogram plots and `lfw.json`.
    #[arg(long, default_value = "report/lfw")]
    pub out: PathBuf,
    /// Images per batch.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Only the first N pairs of each fold and kind (quick checks).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Skip the detection-rate pass over every LFW image.
    #[arg(long)]
    pub skip_detection_rate: bool,
    #[command(flatten)]
    pub pipe: PipeArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(c: FaceCommand) -> Result<()> {
    match c {
        FaceCommand::Detect(a) => detect(&a),
        FaceCommand::Embed(a) => embed(&a),
        FaceCommand::Verify(a) => verify(&a),
        FaceCommand::EvalLfw(a) => eval_lfw(&a),
    }
}

fn pipeline(o: &PipeArgs) -> Result<FacePipeline> {
    let home = Home::from_env();
    let mut p = FacePipeline::standard(&home, &recog::default_device()).context(
        "loading the face models (set RECOG_HOME to a folder with models/blazeface and models/face-api)",
    )?;
    p.points = match o.align_points {
        PointsArg::EyesNoseMouth => face::AlignPoints::EyesNoseMouth,
        PointsArg::EyesMouth => face::AlignPoints::EyesMouth,
    };
    p.refine = o.refine;
    p.flip = o.flip;
    p.padding = o.padding;
    Ok(p)
}

#[derive(Serialize)]
struct DetectRow {
    file: PathBuf,
    width: u32,
    height: u32,
    faces: Vec<face::FaceBox>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotated: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn detect(a: &DetectArgs) -> Result<()> {
    let home = Home::from_env();
    let paths = face::ModelPaths::in_home(&home);
    let mut det = face::BlazeFaceDetector::load(&paths.blazeface, &recog::default_device())?;
    det.min_score = a.min_score;
    if let Some(dir) = &a.annotate {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut rows = Vec::new();
    let mut failed = 0;
    for p in &a.images {
        let row = match face::load_rgb(p) {
            Ok(img) => {
                let faces = det.detect(&img)?;
                let annotated = match &a.annotate {
                    Some(dir) => {
                        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
                        let out = dir.join(format!("{stem}.faces.png"));
                        let marks: Vec<_> = faces
                            .iter()
                            .map(|f| (f.clone(), Some(format!("{:.2}", f.score)), draw::GREEN))
                            .collect();
                        draw::annotate(&img, &marks)
                            .save(&out)
                            .with_context(|| format!("writing {}", out.display()))?;
                        Some(out)
                    }
                    None => None,
                };
                DetectRow { file: p.clone(), width: img.width(), height: img.height(), faces, annotated, error: None }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
                DetectRow { file: p.clone(), width: 0, height: 0, faces: vec![], annotated: None, error: Some(e.to_string()) }
            }
        };
        rows.push(row);
    }
    println!("{}", serde_json::to_string_pretty(&rows)?);
    if failed > 0 {
        bail!("{failed} of {} images could not be read", a.images.len());
    }
    Ok(())
}

fn embed(a: &EmbedArgs) -> Result<()> {
    let pipe = pipeline(&a.pipe)?;
    let bars = Bars::new(a.json);
    let res = pipe.embed_files(&a.images, 16, false, &bars)?;
    let dim = pipe.embedder.dim();
    let mut missing = 0;
    for (p, r) in a.images.iter().zip(&res) {
        if r.face.is_none() {
            missing += 1;
            bars.warn(&format!("{}: no face found", p.display()));
        }
    }
    if let Some(npy) = &a.npy {
        let rows: Vec<Vec<f32>> = res
            .iter()
            .map(|r| if r.embedding.is_empty() { vec![f32::NAN; dim] } else { r.embedding.clone() })
            .collect();
        write_npy(npy, &rows, dim)?;
    }
    if a.json {
        #[derive(Serialize)]
        struct Row<'a> {
            file: &'a Path,
            face: &'a Option<face::FaceBox>,
            embedding: &'a [f32],
        }
        let rows: Vec<Row> = a
            .images
            .iter()
            .zip(&res)
            .map(|(p, r)| Row { file: p, face: &r.face, embedding: &r.embedding })
            .collect();
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        for (p, r) in a.images.iter().zip(&res) {
            let head: Vec<String> = r.embedding.iter().take(4).map(|v| format!("{v:.4}")).collect();
            println!("{}\t{}-d\t[{}, ...]", p.display(), r.embedding.len(), head.join(", "));
        }
    }
    if missing > 0 {
        bail!("no face found in {missing} of {} images", a.images.len());
    }
    Ok(())
}

/// Writes a 2-D float32 array in NumPy's `.npy` format (version 1.0).
fn write_npy(path: &Path, rows: &[Vec<f32>], dim: usize) -> Result<()> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", rows.len(), dim);
    // Magic (6) + version (2) + header length (2) + header, padded to a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for r in rows {
        for v in r {
            bytes.extend(v.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn verify(a: &VerifyArgs) -> Result<()> {
    let pipe = pipeline(&a.pipe)?;
    let res = pipe.embed_files(&[a.a.clone(), a.b.clone()], 2, false, &recog::NoProgress)?;
    for (p, r) in [&a.a, &a.b].iter().zip(&res) {
        if r.face.is_none() {
            bail!("{}: no face found", p.display());
        }
    }
    let d = recog::metric::distance::euclidean(&res[0].embedding, &res[1].embedding);
    let same = d <= a.threshold;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"a": a.a, "b": a.b, "distance": d, "threshold": a.threshold, "same": same})
        );
    } else {
        println!(
            "distance {d:.4} {} threshold {:.4}: {}",
            if same { "<=" } else { ">" },
            a.threshold,
            if same { "same person" } else { "different people" }
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct LfwSummary {
    pairs: usize,
    images_embedded: usize,
    detected_in_pair_images: usize,
    fallback_centre_crops: usize,
    detection_rate_all_images: Option<f64>,
    all_images: Option<usize>,
    images_per_s: f64,
    #[serde(flatten)]
    report: lfw::VerificationReport,
}

fn eval_lfw(a: &EvalLfwArgs) -> Result<()> {
    let home = Home::from_env();
    let root = a.lfw.clone().unwrap_or_else(|| home.data_dir("lfw"));
    let mut pairs = lfw::read_pairs(&root.join("pairs.txt"))?;
    if let Some(n) = a.limit {
        let mut kept = Vec::new();
        for fold in 0..10 {
            for same in [true, false] {
                kept.extend(pairs.iter().filter(|p| p.fold == fold && p.same == same).take(n).cloned());
            }
        }
        pairs = kept;
    }
    let images_dir = root.join("images");
    let pipe = pipeline(&a.pipe)?;
    let bars = Bars::new(a.json);

    let (detection_rate_all_images, all_images) = if a.skip_detection_rate {
        (None, None)
    } else {
        let all = list_images(&images_dir)?;
        bars.start("detecting faces in every LFW image", all.len() as u64);
        let mut found = 0usize;
        for chunk in all.chunks(32) {
            let imgs = chunk.iter().map(|p| face::load_rgb(p)).collect::<recog::Result<Vec<_>>>()?;
            let refs: Vec<_> = imgs.iter().collect();
            found += pipe.detector.detect_batch(&refs)?.iter().filter(|f| !f.is_empty()).count();
            bars.inc(chunk.len() as u64);
        }
        bars.finish();
        (Some(found as f64 / all.len().max(1) as f64), Some(all.len()))
    };

    let rel = lfw::unique_images(&pairs);
    let abs: Vec<PathBuf> = rel.iter().map(|p| images_dir.join(p)).collect();
    let t0 = Instant::now();
    let res = pipe.embed_files(&abs, a.batch, true, &bars)?;
    let images_per_s = abs.len() as f64 / t0.elapsed().as_secs_f64();
    let index: std::collections::HashMap<&PathBuf, usize> = rel.iter().enumerate().map(|(i, p)| (p, i)).collect();
    let scored: Vec<(f64, bool, usize)> = pairs
        .iter()
        .map(|p| {
            let (x, y) = (&res[index[&p.a]].embedding, &res[index[&p.b]].embedding);
            (recog::metric::distance::euclidean(x, y) as f64, p.same, p.fold)
        })
        .collect();
    let report = lfw::evaluate(&scored);

    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let step = (report.roc.len() / 400).max(1);
    let roc: Vec<(f64, f64)> = report.roc.iter().step_by(step).chain(report.roc.last()).copied().collect();
    plot::line_chart(
        &a.out.join("roc.png"),
        &format!("LFW View 2 ROC (AUC {:.4})", report.auc),
        "false accept rate",
        "true accept rate",
        &[Series { label: "face ResNet + BlazeFace alignment".into(), points: roc }],
    )?;
    let same: Vec<(f64, f64)> = scored.iter().filter(|s| s.1).map(|s| (s.0, 0.0)).collect();
    let diff: Vec<(f64, f64)> = scored.iter().filter(|s| !s.1).map(|s| (s.0, 0.0)).collect();
    let marker = format!("threshold {:.3}", report.best_threshold);
    plot::histogram(
        &a.out.join("distances.png"),
        "LFW View 2: distances of same and different pairs",
        "Euclidean distance",
        &[
            Series { label: format!("same person ({})", same.len()), points: same },
            Series { label: format!("different people ({})", diff.len()), points: diff },
        ],
        60,
        Some((report.best_threshold, &marker)),
    )?;
    let summary = LfwSummary {
        pairs: pairs.len(),
        images_embedded: abs.len(),
        detected_in_pair_images: res.iter().filter(|r| r.face.is_some()).count(),
        fallback_centre_crops: res.iter().filter(|r| r.fallback).count(),
        detection_rate_all_images,
        all_images,
        images_per_s,
        report,
    };
    let json = serde_json::to_string_pretty(&summary)?;
    std::fs::write(a.out.join("lfw.json"), &json).with_context(|| format!("writing {}/lfw.json", a.out.display()))?;
    if a.json {
        println!("{json}");
    } else {
        let r = &summary.report;
        println!("LFW View 2, {} pairs, {} images ({:.1} images/s)", summary.pairs, summary.images_embedded, images_per_s);
        if let (Some(rate), Some(n)) = (detection_rate_all_images, all_images) {
            println!("face found in {:.2}% of all {n} LFW images", 100.0 * rate);
        }
        println!(
            "pair images: {} detected, {} centre-crop fallbacks",
            summary.detected_in_pair_images, summary.fallback_centre_crops
        );
        println!("accuracy   {:.2}% +- {:.2}% (10 folds)", 100.0 * r.mean_accuracy, 100.0 * r.std_accuracy);
        println!("ROC AUC    {:.4}", r.auc);
        println!("EER        {:.2}%", 100.0 * r.eer);
        println!("TAR@FAR=1e-3 {:.2}%", 100.0 * r.tar_at_far_1e3);
        println!("threshold  {:.4} (best on all pairs)", r.best_threshold);
        println!("plots: {}/roc.png, {}/distances.png", a.out.display(), a.out.display());
    }
    Ok(())
}

fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let people = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for person in people {
        let person = person?.path();
        if person.is_dir() {
            for f in std::fs::read_dir(&person)? {
                let f = f?.path();
                if matches!(f.extension().and_then(|e| e.to_str()), Some("jpg" | "jpeg" | "png")) {
                    out.push(f);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}
