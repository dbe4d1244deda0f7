//! `recog face`: detect, embed, verify, eval-lfw, eval-detect, finetune; `recog bench face`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use recog::bench::face::FaceBenchParams;
use recog::eval::detection::BenchParams;
use recog::eval::lfw_view2::View2Params;
use recog::face::finetune::{FineTuneConfig, FolderFineTuneParams};
use recog::face::options::PipelineOptions;
use recog::face::{files, AlignPoints, DetectorKind, DetectorSettings, FaceModel, FacePipeline};
use recog::nn::cpu::Precision;
use recog::{Faces, Home, Progress};

use crate::commands::{emit, failed_files};
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

/// Alignment and embedding options shared by the face commands.
#[derive(Args, Debug, Clone)]
pub struct PipeArgs {
    /// Face detector (default: blazeface-pyramid, the best on `recog face eval-detect`).
    #[arg(long, value_enum)]
    pub detector: Option<DetectorKind>,
    /// Smallest face side the detector looks for, px (default 20; 40 is 4x faster).
    #[arg(long)]
    pub min_face: Option<f32>,
    /// Descriptor network: MobileFaceNet (the default: best on every figure measured), dlib's
    /// ResNet, or the notebook's VGG-Face (once added with `recog models add vgg-face PATH`).
    /// Default: the gallery's network for gallery commands, else MobileFaceNet.
    #[arg(long, value_enum)]
    pub face_model: Option<FaceModel>,
    /// Keypoints the alignment fits.
    #[arg(long, value_enum, default_value_t = AlignPoints::EyesNoseMouth)]
    pub align_points: AlignPoints,
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
    /// Number format of MobileFaceNet's convolutions: f32 (the reference arithmetic, in
    /// which README's accuracy figures were measured) or bf16 (inputs rounded to bfloat16,
    /// sums in f32: the embedding twice as fast on CPUs with AVX512-BF16, f32 on the others;
    /// descriptors about 0.005 from f32's).
    #[arg(long, value_enum, default_value_t = Precision::default())]
    pub precision: Precision,
}

impl PipeArgs {
    pub fn options(&self) -> PipelineOptions {
        PipelineOptions {
            detector: self.detector.unwrap_or_default(),
            min_face: self.min_face,
            model: self.face_model,
            points: self.align_points,
            refine: !self.no_refine,
            flip: !self.no_flip,
            padding: self.padding,
            landmarks: !self.no_landmarks,
            landmark_crop: self.landmark_crop,
            landmark_min_face: self.landmark_min_face,
            projection: self.projection.clone(),
            precision: self.precision,
        }
    }

    pub fn pipeline(&self) -> recog::Result<FacePipeline> {
        self.options().build(&Home::from_env(), &Bars::new(false))
    }

    /// The pipeline for a gallery (its own network unless `--face-model` names one).
    pub fn pipeline_for(&self, g: &recog::gallery::Gallery) -> recog::Result<FacePipeline> {
        self.options()
            .build_for(&Home::from_env(), g, &Bars::new(false))
    }
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
    pub detector: Option<DetectorKind>,
    /// Smallest face side the detector looks for, px (default 20; 40 is 4x faster).
    #[arg(long)]
    pub min_face: Option<f32>,
}

#[derive(Args, Debug, Clone)]
pub struct EvalDetectArgs {
    /// Detectors to compare (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub detectors: Vec<DetectorKind>,
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

#[derive(Args, Debug, Clone)]
pub struct BenchFaceArgs {
    /// Images to time (the first N LFW images in name order, or of --images).
    #[arg(long, default_value_t = 128)]
    pub n: usize,
    /// Folder of images (any depth) instead of LFW.
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

pub fn run(c: FaceCommand) -> Result<()> {
    let home = Home::from_env();
    match c {
        FaceCommand::Detect(a) => {
            let settings = DetectorSettings {
                min_score: a.min_score,
                min_face: a.min_face,
            };
            let det = a.detector.unwrap_or_default().load(
                &home,
                &recog::face_device(),
                &settings,
                &Bars::new(false),
            )?;
            let rows = files::detect_files(det.as_ref(), &a.images, a.annotate.as_deref())?;
            for e in rows.iter().filter_map(|r| r.error.as_ref()) {
                eprintln!("error: {e}");
            }
            println!("{}", serde_json::to_string_pretty(&rows)?);
            failed_files(rows.iter().map(|r| &r.error), a.images.len())
        }
        FaceCommand::Embed(a) => embed(&a),
        FaceCommand::Verify(a) => {
            let faces = Faces::from_pipeline(a.pipe.pipeline()?);
            let v = faces.verify_at(&a.a, &a.b, a.threshold)?;
            emit(a.json, &v)
        }
        FaceCommand::EvalLfw(a) => {
            let params = View2Params {
                lfw: a.lfw.clone().unwrap_or_else(|| home.data_dir("lfw")),
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
            let pipe = a.pipe.pipeline()?;
            let r = params.run(&pipe, a.pipe.options().model().label(), &Bars::new(a.json))?;
            emit(a.json, &r)?;
            if !a.json {
                let o = a.out.display();
                println!("plots: {o}/roc.png, {o}/distances.png");
            }
            Ok(())
        }
        FaceCommand::EvalDetect(a) => {
            let bars = Bars::new(a.json);
            let mut params =
                BenchParams::from_home(&home, a.lfw.as_deref(), a.backgrounds.as_deref(), &bars)?;
            params.scenes = a.scenes;
            params.face_free = a.face_free;
            params.seed = a.seed;
            params.timing_images = a.timing_images;
            if !a.detectors.is_empty() {
                params.detectors = a.detectors.clone();
            }
            let settings = DetectorSettings {
                min_score: None,
                min_face: a.min_face,
            };
            let r = params.check()?.run_into(&home, &settings, &a.out, &bars)?;
            emit(a.json, &r)?;
            if !a.json {
                let o = a.out.display();
                println!("wrote {o}/detect.json and {o}/recall_by_size.png");
            }
            Ok(())
        }
        FaceCommand::Finetune(a) => {
            let params = FolderFineTuneParams {
                data: a.data.clone(),
                out: a.out.clone(),
                max_per_person: a.max_per_person,
                config: FineTuneConfig {
                    dim: a.dim,
                    margin: a.margin,
                    lr: a.lr,
                    steps: a.steps,
                    ..Default::default()
                },
            }
            .check()?;
            let r = params.run(&a.pipe.pipeline()?, &Bars::new(a.json))?;
            emit(a.json, &r)
        }
    }
}

fn embed(a: &EmbedArgs) -> Result<()> {
    let pipe = a.pipe.pipeline()?;
    let bars = Bars::new(a.json);
    let res = pipe.embed_files(&a.images, 16, false, &bars)?;
    if let Some(npy) = &a.npy {
        recog::data::npy::write(npy, &files::embedding_rows(&res, pipe.dim()), pipe.dim())?;
    }
    #[derive(Serialize)]
    struct Row<'a> {
        file: &'a Path,
        #[serde(flatten)]
        result: &'a recog::face::FaceResult,
    }
    let mut missing = 0;
    let mut rows = Vec::new();
    for (file, r) in a.images.iter().zip(&res) {
        rows.push(Row { file, result: r });
        if let Some(e) = &r.error {
            eprintln!("error: {e}");
        } else if r.face.is_none() {
            missing += 1;
            bars.warn(&format!("{}: no face found", file.display()));
        } else if !a.json {
            let head: Vec<String> = r
                .embedding
                .iter()
                .take(4)
                .map(|v| format!("{v:.4}"))
                .collect();
            let d = r.embedding.len();
            println!("{}\t{d}-d\t[{}, ...]", file.display(), head.join(", "));
        }
    }
    if a.json {
        println!("{}", serde_json::to_string(&rows)?);
    }
    failed_files(res.iter().map(|r| &r.error), a.images.len())?;
    if missing > 0 {
        bail!("no face found in {missing} of {} images", a.images.len());
    }
    Ok(())
}

pub fn bench_face(a: &BenchFaceArgs) -> Result<()> {
    let dir = a
        .images
        .clone()
        .unwrap_or_else(|| Home::from_env().data_dir("lfw").join("images"));
    let params = FaceBenchParams {
        files: recog::data::folder::images_under(&dir)?,
        n: a.n,
        batch: a.batch,
    }
    .check()?;
    let r = params.run(&a.pipe.pipeline()?, &Bars::new(a.json))?;
    emit(a.json, &r)
}
