//! `recog face`: detect, embed, verify, eval-lfw.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use recog::bench::face::FaceBenchParams;
use recog::eval::lfw_view2::View2Params;
use recog::face::finetune::FineTuneConfig;
use recog::face::{self, draw, FacePipeline};
use recog::{Home, Progress};

use crate::progress::Bars;

#[derive(Subcommand, Debug)]
pub enum FaceCommand {
    /// Find faces: boxes and keypoints as JSON, plus annotated images.
    Detect(DetectArgs),
    /// Embed the (most central) face of each image with the face network (`--face-model`: MobileFaceNet, the default, or dlib's ResNet).
    Embed(EmbedArgs),
    /// Distance between the faces of two images, and same/different at a threshold.
    Verify(VerifyArgs),
    /// The LFW View 2 protocol: 10-fold accuracy, ROC AUC, EER, TAR at FAR 1e-3.
    EvalLfw(EvalLfwArgs),
    /// The detection benchmark: LFW faces composed onto face-free photos at every size;
    /// recall by face size, precision, AP, false positives per face-free image, speed.
    EvalDetect(EvalDetectArgs),
    /// Train a triplet-loss projection on top of the frozen face ResNet, on a folder with one
    /// sub-folder of photos per person.
    Finetune(FinetuneArgs),
}

#[derive(Args, Debug, Clone)]
pub struct FinetuneArgs {
    /// Folder of identities: `<person>/<photo>.jpg`.
    pub data: PathBuf,
    /// Output folder (`projection.bpk` + `projection.json`).
    #[arg(long, default_value = "runs/face-finetune")]
    pub out: PathBuf,
    /// Photos used per person (at most).
    #[arg(long, default_value_t = 20)]
    pub max_per_person: usize,
    /// Training steps.
    #[arg(long, default_value_t = 1500)]
    pub steps: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Triplet margin.
    #[arg(long, default_value_t = 0.2)]
    pub margin: f32,
    /// Output dimension.
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    #[command(flatten)]
    pub pipe: PipeArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Alignment and embedding options shared by the face commands.
#[derive(Args, Debug, Clone)]
pub struct PipeArgs {
    /// Face detector (default: blazeface-pyramid, the best on `recog face eval-detect`).
    #[arg(long, value_enum)]
    pub detector: Option<DetectorArg>,
    /// Smallest face side the detector looks for, px (default 20; 40 is 4x faster).
    #[arg(long)]
    pub min_face: Option<f32>,
    /// Descriptor network: MobileFaceNet (the default: best on every figure measured), dlib's
    /// ResNet, or the notebook's VGG-Face (once added with `recog models add vgg-face PATH`).
    /// Default: the gallery's network for gallery commands, else MobileFaceNet.
    #[arg(long, value_enum)]
    pub face_model: Option<FaceModelArg>,
    /// Keypoints the alignment fits.
    #[arg(long, value_enum, default_value_t = PointsArg::EyesNoseMouth)]
    pub align_points: PointsArg,
    /// Skip the second detection on a crop around each face (faster, coarser keypoints).
    #[arg(long)]
    pub no_refine: bool,
    /// Skip averaging each face's descriptor with its mirror image's (twice as fast to embed).
    #[arg(long)]
    pub no_flip: bool,
    /// Chip padding around the alignment template (dlib: 0.25).
    #[arg(long, default_value_t = 0.25)]
    pub padding: f32,
    /// Align from BlazeFace's 4 keypoints instead of the 68-point landmark model.
    #[arg(long)]
    pub no_landmarks: bool,
    /// Crop side for the landmark model, as a multiple of the detection box side.
    #[arg(long, default_value_t = recog::face::landmarks::DEFAULT_CROP_SCALE)]
    pub landmark_crop: f32,
    /// Faces narrower than this (px) are aligned from the detector's keypoints instead of
    /// the 68 landmarks (default: the library's, measured on downscaled LFW).
    #[arg(long)]
    pub landmark_min_face: Option<f32>,
    /// Apply a fine-tuned projection (`recog face finetune --out DIR`) to the descriptors.
    #[arg(long)]
    pub projection: Option<PathBuf>,
}

impl PipeArgs {
    /// The network `--face-model` names (the default network without the flag).
    pub fn model(&self) -> face::FaceModel {
        match self.face_model {
            None => face::FaceModel::default(),
            Some(FaceModelArg::Dlib) => face::FaceModel::Dlib,
            Some(FaceModelArg::Mobilefacenet) => face::FaceModel::MobileFaceNet,
            Some(FaceModelArg::VggFace) => face::FaceModel::VggFace,
            Some(FaceModelArg::VggFaceFc7) => face::FaceModel::VggFaceFc7,
        }
    }
}

/// `--face-model` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FaceModelArg {
    /// dlib's ResNet, 128-d.
    Dlib,
    /// MobileFaceNet, 192-d.
    Mobilefacenet,
    /// VGG-Face, the notebook's network: 2622-d fc8 (your `vgg_face_weights.h5`, added with
    /// `recog models add vgg-face PATH`).
    VggFace,
    /// VGG-Face's 4096-d fc7 output.
    VggFaceFc7,
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
    /// Image files (JPEG, PNG, WebP, BMP, TIFF, GIF; read by content).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Folder for annotated copies (`<stem>.faces.png`); none if omitted.
    #[arg(long)]
    pub annotate: Option<PathBuf>,
    /// Minimum detector score (the BlazeFace detectors; default 0.5).
    #[arg(long)]
    pub min_score: Option<f32>,
    /// Detector (default: blazeface-pyramid).
    #[arg(long, value_enum)]
    pub detector: Option<DetectorArg>,
    /// Smallest face side the detector looks for, px (default 20; 40 is 4x faster).
    #[arg(long)]
    pub min_face: Option<f32>,
}

/// `--detector` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectorArg {
    /// MediaPipe BlazeFace front model on the whole image letterboxed to 128x128 (boxes + 6
    /// keypoints): fast, for faces that fill a fair part of the frame.
    Blazeface,
    /// The same model over an image pyramid, faces from 20 px up (group photos, video).
    BlazefacePyramid,
    /// OpenCV `haarcascade_frontalface_default.xml`, the notebook's
    /// `detectMultiScale(gray, 1.3, 5)` (boxes only).
    Haar,
}

/// The library's detector for a `--detector` value (its default without one).
pub fn detector_kind(a: Option<DetectorArg>) -> face::DetectorKind {
    match a {
        None => face::DetectorKind::default(),
        Some(DetectorArg::Blazeface) => face::DetectorKind::BlazeFace,
        Some(DetectorArg::BlazefacePyramid) => face::DetectorKind::BlazeFacePyramid,
        Some(DetectorArg::Haar) => face::DetectorKind::Haar,
    }
}

#[derive(Args, Debug, Clone)]
pub struct EvalDetectArgs {
    /// Detectors to compare (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub detectors: Vec<DetectorArg>,
    /// Scenes with faces.
    #[arg(long, default_value_t = 200)]
    pub scenes: usize,
    /// Face-free images.
    #[arg(long, default_value_t = 100)]
    pub face_free: usize,
    /// Composition seed.
    #[arg(long, default_value_t = 13)]
    pub seed: u64,
    /// Images timed at 640x480 and at 1920x1080 per detector.
    #[arg(long, default_value_t = 5)]
    pub timing_images: usize,
    /// Smallest face the detectors look for, px (default: each detector's own).
    #[arg(long)]
    pub min_face: Option<f32>,
    /// LFW folder (with `images/`); default `RECOG_HOME/data/lfw`, fetched if missing.
    #[arg(long)]
    pub lfw: Option<PathBuf>,
    /// Folder of face-free photos (any depth) instead of the built-in set (`recog data
    /// fetch backgrounds`, fetched if missing).
    #[arg(long)]
    pub backgrounds: Option<PathBuf>,
    /// Folder for `detect.json`, the recall-by-size plot and sample scenes.
    #[arg(long, default_value = "report/detect")]
    pub out: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct EmbedArgs {
    /// Image files (JPEG, PNG, WebP, BMP, TIFF, GIF; read by content).
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
    /// Same-person threshold on the Euclidean distance (default: the network's verification
    /// distance, 0.6 for dlib's, 1.06 for MobileFaceNet).
    #[arg(long)]
    pub threshold: Option<f32>,
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
    /// Downscale the pairs' photos so that the face is this many pixels wide (LFW's is
    /// about 110), to measure the pipeline on small faces; skips the detection-rate pass.
    #[arg(long)]
    pub face_size: Option<f32>,
    #[command(flatten)]
    pub pipe: PipeArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Also fine-tune a triplet-loss projection on the frozen descriptors, per fold, on LFW
    /// people who appear in none of that fold's pairs, and report LFW before and after.
    #[arg(long)]
    pub finetune: bool,
    /// Fine-tuning steps per fold.
    #[arg(long, default_value_t = 1500)]
    pub finetune_steps: usize,
    /// Fine-tuning learning rate.
    #[arg(long, default_value_t = 1e-4)]
    pub finetune_lr: f64,
    /// Fine-tuning triplet margin.
    #[arg(long, default_value_t = 0.2)]
    pub finetune_margin: f32,
}

pub fn run(c: FaceCommand) -> Result<()> {
    match c {
        FaceCommand::Detect(a) => detect(&a),
        FaceCommand::Embed(a) => embed(&a),
        FaceCommand::Verify(a) => verify(&a),
        FaceCommand::EvalLfw(a) => eval_lfw(&a),
        FaceCommand::EvalDetect(a) => eval_detect(&a),
        FaceCommand::Finetune(a) => finetune(&a),
    }
}

/// The pipeline for a gallery: `--face-model` if given, else the network that made the
/// gallery's embeddings (so that a MobileFaceNet gallery needs no flag to be queried).
pub fn pipeline_for(o: &PipeArgs, g: &recog::gallery::Gallery) -> recog::Result<FacePipeline> {
    let model = match o.face_model {
        Some(_) => o.model(),
        None => g
            .model()?
            .and_then(|m| face::FaceModel::from_name(&m.name))
            .unwrap_or_default(),
    };
    build_pipeline(o, model)
}

pub fn pipeline(o: &PipeArgs) -> recog::Result<FacePipeline> {
    build_pipeline(o, o.model())
}

fn build_pipeline(o: &PipeArgs, model: face::FaceModel) -> recog::Result<FacePipeline> {
    let home = Home::from_env();
    let mut p = FacePipeline::with_models(
        &home,
        &recog::default_device(),
        model,
        (
            detector_kind(o.detector),
            face::DetectorSettings {
                min_score: None,
                min_face: o.min_face,
            },
        ),
        &Bars::new(false),
    )?;
    p.points = match o.align_points {
        PointsArg::EyesNoseMouth => face::AlignPoints::EyesNoseMouth,
        PointsArg::EyesMouth => face::AlignPoints::EyesMouth,
    };
    p.refine = !o.no_refine;
    p.flip = !o.no_flip;
    p.padding = o.padding;
    if o.no_landmarks {
        p.landmarker = None;
    } else if let Some(l) = p.landmarker.as_mut() {
        l.crop_scale = o.landmark_crop;
        if let Some(m) = o.landmark_min_face {
            l.min_face = m;
        }
    }
    if let Some(dir) = &o.projection {
        p.set_projection(dir)?;
    }
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
    let settings = face::DetectorSettings {
        min_score: a.min_score,
        min_face: a.min_face,
    };
    let det = detector_kind(a.detector).load(
        &home,
        &recog::default_device(),
        &settings,
        &Bars::new(false),
    )?;
    if let Some(dir) = &a.annotate {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut rows = Vec::new();
    let mut failed = 0;
    for p in &a.images {
        let row = match recog::data::image_file::load_rgb(p) {
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
                DetectRow {
                    file: p.clone(),
                    width: img.width(),
                    height: img.height(),
                    faces,
                    annotated,
                    error: None,
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
                DetectRow {
                    file: p.clone(),
                    width: 0,
                    height: 0,
                    faces: vec![],
                    annotated: None,
                    error: Some(e.to_string()),
                }
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
    let dim = pipe.dim();
    let mut missing = 0;
    let mut failed = 0;
    for (p, r) in a.images.iter().zip(&res) {
        if let Some(e) = &r.error {
            failed += 1;
            eprintln!("error: {e}");
        } else if r.face.is_none() {
            missing += 1;
            bars.warn(&format!("{}: no face found", p.display()));
        }
    }
    if let Some(npy) = &a.npy {
        let rows: Vec<Vec<f32>> = res
            .iter()
            .map(|r| {
                if r.embedding.is_empty() {
                    vec![f32::NAN; dim]
                } else {
                    r.embedding.clone()
                }
            })
            .collect();
        recog::data::npy::write(npy, &rows, dim)?;
    }
    if a.json {
        #[derive(Serialize)]
        struct Row<'a> {
            file: &'a Path,
            face: &'a Option<face::FaceBox>,
            embedding: &'a [f32],
            #[serde(skip_serializing_if = "Option::is_none")]
            error: &'a Option<String>,
        }
        let rows: Vec<Row> = a
            .images
            .iter()
            .zip(&res)
            .map(|(p, r)| Row {
                file: p,
                face: &r.face,
                embedding: &r.embedding,
                error: &r.error,
            })
            .collect();
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        for (p, r) in a.images.iter().zip(&res) {
            if r.error.is_some() {
                continue;
            }
            let head: Vec<String> = r
                .embedding
                .iter()
                .take(4)
                .map(|v| format!("{v:.4}"))
                .collect();
            println!(
                "{}\t{}-d\t[{}, ...]",
                p.display(),
                r.embedding.len(),
                head.join(", ")
            );
        }
    }
    if failed > 0 {
        bail!("{failed} of {} images could not be read", a.images.len());
    }
    if missing > 0 {
        bail!("no face found in {missing} of {} images", a.images.len());
    }
    Ok(())
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
    let threshold = a
        .threshold
        .unwrap_or_else(|| pipe.embedder.verification_distance());
    let same = d <= threshold;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"a": a.a, "b": a.b, "distance": d, "threshold": threshold, "same": same, "model": pipe.model_name()})
        );
    } else {
        println!(
            "distance {d:.4} {} threshold {:.4}: {}",
            if same { "<=" } else { ">" },
            threshold,
            if same {
                "same person"
            } else {
                "different people"
            }
        );
    }
    Ok(())
}

fn eval_lfw(a: &EvalLfwArgs) -> Result<()> {
    let home = Home::from_env();
    let root = a.lfw.clone().unwrap_or_else(|| home.data_dir("lfw"));
    let params = View2Params {
        lfw: root,
        out: a.out.clone(),
        batch: a.batch,
        limit: a.limit,
        detection_rate: !a.skip_detection_rate,
        face_size: a.face_size,
        finetune: a.finetune.then(|| FineTuneConfig {
            steps: a.finetune_steps,
            lr: a.finetune_lr,
            margin: a.finetune_margin,
            ..Default::default()
        }),
    }
    .check()?;
    let pipe = pipeline(&a.pipe)?;
    let bars = Bars::new(a.json);
    let summary = params.run(&pipe, a.pipe.model().label(), &bars)?;
    let (detection_rate_all_images, all_images, images_per_s) = (
        summary.detection_rate_all_images,
        summary.all_images,
        summary.images_per_s,
    );
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let r = &summary.report;
        println!(
            "LFW View 2, {} pairs, {} images ({:.1} images/s)",
            summary.pairs, summary.images_embedded, images_per_s
        );
        if let (Some(rate), Some(n)) = (detection_rate_all_images, all_images) {
            println!("face found in {:.2}% of all {n} LFW images", 100.0 * rate);
        }
        println!(
            "pair images: {} detected, {} centre-crop fallbacks",
            summary.detected_in_pair_images, summary.fallback_centre_crops
        );
        println!(
            "accuracy   {:.2}% +- {:.2}% (10 folds)",
            100.0 * r.mean_accuracy,
            100.0 * r.std_accuracy
        );
        println!("ROC AUC    {:.4}", r.auc);
        println!("EER        {:.2}%", 100.0 * r.eer);
        println!("TAR@FAR=1e-3 {:.2}%", 100.0 * r.tar_at_far_1e3);
        println!("threshold  {:.4} (best on all pairs)", r.best_threshold);
        if let Some(ft) = &summary.finetuned {
            let r = &ft.report;
            println!(
                "fine-tuned projection (per fold, {}-{} people not in the fold): accuracy {:.2}% +- {:.2}%, AUC {:.4}, EER {:.2}%, TAR@FAR=1e-3 {:.2}%",
                ft.train_people.iter().min().unwrap_or(&0),
                ft.train_people.iter().max().unwrap_or(&0),
                100.0 * r.mean_accuracy,
                100.0 * r.std_accuracy,
                r.auc,
                100.0 * r.eer,
                100.0 * r.tar_at_far_1e3
            );
        }
        println!(
            "plots: {}/roc.png, {}/distances.png",
            a.out.display(),
            a.out.display()
        );
    }
    Ok(())
}

#[derive(Args, Debug, Clone)]
pub struct BenchFaceArgs {
    /// Images to time (the first N LFW images in name order, or of --images).
    #[arg(long, default_value_t = 128)]
    pub n: usize,
    /// Folder of images instead of LFW.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Images per batch.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[command(flatten)]
    pub pipe: PipeArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn bench_face(a: &BenchFaceArgs) -> Result<()> {
    let home = Home::from_env();
    let dir = a
        .images
        .clone()
        .unwrap_or_else(|| home.data_dir("lfw").join("images"));
    let mut files = recog::data::folder::person_images(&dir)?;
    if files.is_empty() {
        files = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("jpg" | "jpeg" | "png")
                )
            })
            .collect();
        files.sort();
    }
    if files.is_empty() {
        bail!("no images under {}", dir.display());
    }
    let params = FaceBenchParams {
        files,
        n: a.n,
        batch: a.batch,
    }
    .check()?;
    let pipe = pipeline(&a.pipe)?;
    let r = params.run(&pipe, &Bars::new(a.json))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "{} images, {} faces, batch {}, {} threads",
            r.images, r.faces, r.batch, r.threads
        );
        println!("decode  {:7.2} ms/image", r.decode_ms_per_image);
        println!("detect  {:7.2} ms/image", r.detect_ms_per_image);
        println!("landmarks {:5.2} ms/face", r.landmarks_ms_per_face);
        println!("align   {:7.2} ms/face", r.align_ms_per_face);
        println!("embed   {:7.2} ms/face", r.embed_ms_per_face);
        println!(
            "total   {:7.1} faces/s (decode + detect + landmarks + align + embed)",
            r.faces_per_s
        );
    }
    Ok(())
}

fn finetune(a: &FinetuneArgs) -> Result<()> {
    use recog::face::finetune::{train_projection, FineTuneConfig};
    let people: Vec<(String, Vec<PathBuf>)> = recog::data::folder::people(&a.data)?
        .into_iter()
        .filter(|(_, v)| v.len() >= 2)
        .map(|(k, v)| (k, v.into_iter().take(a.max_per_person).collect()))
        .collect();
    if people.len() < 2 {
        bail!(
            "{}: need sub-folders of at least 2 people with 2+ photos each, found {}",
            a.data.display(),
            people.len()
        );
    }
    let files: Vec<PathBuf> = people.iter().flat_map(|(_, v)| v.iter().cloned()).collect();
    let labels_all: Vec<u32> = people
        .iter()
        .enumerate()
        .flat_map(|(i, (_, v))| std::iter::repeat_n(i as u32, v.len()))
        .collect();
    let pipe = pipeline(&a.pipe)?;
    let bars = Bars::new(a.json);
    let res = pipe.embed_files(&files, 16, false, &bars)?;
    let (mut x, mut labels) = (Vec::new(), Vec::new());
    for (r, l) in res.iter().zip(&labels_all) {
        if !r.embedding.is_empty() {
            x.extend_from_slice(&r.embedding);
            labels.push(*l);
        }
    }
    let d_in = pipe.embedder.dim();
    let cfg = FineTuneConfig {
        dim: a.dim,
        margin: a.margin,
        lr: a.lr,
        steps: a.steps,
        p: 32.min(people.len()),
        ..Default::default()
    };
    let device = recog::default_device();
    let (head, curve) = train_projection(&x, &labels, d_in, &cfg, &device, &bars)?;
    head.save(&a.out, &cfg, d_in)?;
    let summary = serde_json::json!({
        "people": people.len(),
        "faces": labels.len(),
        "no_face": files.len() - labels.len(),
        "loss_by_tenth": curve,
        "out": a.out,
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{} people, {} faces ({} photos without a face skipped)",
            people.len(),
            labels.len(),
            files.len() - labels.len()
        );
        let c: Vec<String> = curve.iter().map(|v| format!("{v:.4}")).collect();
        println!("triplet loss by tenth of training: {}", c.join(" "));
        println!("projection saved to {}", a.out.display());
    }
    Ok(())
}

fn eval_detect(a: &EvalDetectArgs) -> Result<()> {
    let home = Home::from_env();
    let bars = Bars::new(a.json);
    let lfw_root = match &a.lfw {
        Some(d) => d.clone(),
        None => home.ensure_lfw(&recog::home::lfw::builtin_spec(), &bars)?,
    };
    let backgrounds = match &a.backgrounds {
        Some(dir) => recog::data::folder::images_under(dir)?,
        None => home.ensure_backgrounds(&recog::home::backgrounds::builtin_spec(), &bars)?,
    };
    let mut params = recog::eval::detection::BenchParams::new(
        recog::data::folder::person_images(&lfw_root.join("images"))?,
        backgrounds,
    );
    params.scenes = a.scenes;
    params.face_free = a.face_free;
    params.seed = a.seed;
    params.timing_images = a.timing_images;
    if !a.detectors.is_empty() {
        params.detectors = a
            .detectors
            .iter()
            .map(|d| detector_kind(Some(*d)))
            .collect();
    }
    let device = recog::default_device();
    let settings = face::DetectorSettings {
        min_score: None,
        min_face: a.min_face,
    };
    let load = |k: face::DetectorKind| k.load(&home, &device, &settings, &bars);
    let valid = params.check()?;
    let scenes = valid.scenes(&bars)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    // A few scenes with their annotated faces, to see what the benchmark asks.
    for (i, s) in scenes
        .iter()
        .filter(|s| !s.faces.is_empty())
        .take(4)
        .enumerate()
    {
        let marks: Vec<_> = s
            .faces
            .iter()
            .map(|f| {
                let b = face::FaceBox {
                    x0: f[0],
                    y0: f[1],
                    x1: f[2],
                    y1: f[3],
                    score: 1.0,
                    keypoints: Vec::new(),
                    landmarks: Vec::new(),
                };
                (b, Some(format!("{:.0}px", f[2] - f[0])), draw::GREEN)
            })
            .collect();
        let out = a.out.join(format!("scene_{i}.jpg"));
        draw::annotate(&s.image, &marks)
            .save(&out)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let report = valid.run_on(&scenes, &load, &bars)?;
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(a.out.join("detect.json"), &json)
        .with_context(|| format!("writing {}", a.out.join("detect.json").display()))?;
    let plot_path = a.out.join("recall_by_size.png");
    recog::eval::detection::plot_recall(&report, &plot_path)?;
    if a.json {
        println!("{json}");
        return Ok(());
    }
    println!(
        "{} scenes with {} faces, {} face-free images (seed {})",
        report.scenes, report.faces, report.face_free_images, report.seed
    );
    let heads: Vec<String> = recog::eval::detection::SIZE_BUCKETS
        .iter()
        .map(|(lo, hi)| format!("{lo:.0}-{hi:.0}"))
        .collect();
    println!("recall by face size (px), then over all faces:");
    println!(
        "{:<18} {} {:>7} {:>7} {:>6} {:>9} {:>8} {:>9}",
        "detector",
        heads.iter().map(|h| format!("{h:>9}")).collect::<String>(),
        "recall",
        "precis.",
        "AP",
        "FP/free",
        "ms 640",
        "ms 1080p"
    );
    for d in &report.detectors {
        let cells: String = d
            .recall_by_size
            .iter()
            .map(|b| format!("{:>8.1}%", 100.0 * b.recall))
            .collect();
        println!(
            "{:<18} {} {:>6.1}% {:>6.1}% {:>6.3} {:>9.3} {:>8.1} {:>9.1}",
            d.detector.name(),
            cells,
            100.0 * d.recall,
            100.0 * d.precision,
            d.average_precision,
            d.false_positives_per_face_free_image,
            d.ms_640x480,
            d.ms_1920x1080
        );
    }
    let counts: Vec<String> = report
        .detectors
        .first()
        .map(|d| {
            d.recall_by_size
                .iter()
                .map(|b| b.faces.to_string())
                .collect()
        })
        .unwrap_or_default();
    println!("faces per size bucket: {}", counts.join(", "));
    println!(
        "wrote {} and {}",
        a.out.join("detect.json").display(),
        plot_path.display()
    );
    Ok(())
}
