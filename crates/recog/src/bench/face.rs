//! The whole face pipeline, stage by stage: decode, detect (with the refining pass),
//! landmarks, align, embed.
//!
//! ```no_run
//! use recog::bench::face::FaceBenchParams;
//! use recog::face::FacePipeline;
//! use recog::{Home, NoProgress};
//! let home = Home::from_env();
//! let files = recog::data::folder::person_images(&home.data_dir("lfw").join("images"))?;
//! let pipe = FacePipeline::standard(&home, &recog::default_device(), &NoProgress)?;
//! let r = FaceBenchParams { files, n: 90, batch: 16 }.check()?.run(&pipe, &NoProgress)?;
//! println!("{:.1} faces/s", r.faces_per_s);
//! # Ok::<(), recog::Error>(())
//! ```

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::face::FacePipeline;
use crate::{Error, Progress, Result};

/// What to time.
#[derive(Debug, Clone)]
pub struct FaceBenchParams {
    /// The images, in order (the first `n` are timed).
    pub files: Vec<PathBuf>,
    /// Images timed.
    pub n: usize,
    /// Images per batch.
    pub batch: usize,
}

/// Checked [`FaceBenchParams`].
#[derive(Debug, Clone)]
pub struct ValidFaceBenchParams(FaceBenchParams);

impl FaceBenchParams {
    /// Needs at least one image and a positive batch.
    pub fn check(mut self) -> Result<ValidFaceBenchParams> {
        self.files.truncate(self.n);
        if self.files.is_empty() || self.batch == 0 {
            return Err(Error::InvalidArgument(
                "the face bench needs at least one image and a batch of 1 or more".into(),
            ));
        }
        Ok(ValidFaceBenchParams(self))
    }
}

/// Time per stage.
#[derive(Debug, Clone, Serialize)]
pub struct FaceBenchReport {
    /// Images timed.
    pub images: usize,
    /// Faces found and embedded.
    pub faces: usize,
    /// Images per batch.
    pub batch: usize,
    /// Cores available.
    pub threads: usize,
    /// Decoding, ms per image.
    pub decode_ms_per_image: f64,
    /// Detection (and its refining pass), ms per image.
    pub detect_ms_per_image: f64,
    /// 68-point landmarks, ms per face.
    pub landmarks_ms_per_face: f64,
    /// Alignment (chip warping), ms per face.
    pub align_ms_per_face: f64,
    /// Descriptors (with mirror averaging if set), ms per face.
    pub embed_ms_per_face: f64,
    /// Faces per second over all stages.
    pub faces_per_s: f64,
    /// GFLOP/s (two per multiply-add of [`crate::nn::cpu::multiply_adds`]) the detector's
    /// network achieved over the detect stage's time; `None` where the stage ran no CPU
    /// kernel (another device, or a network still on burn's ops).
    pub detect_gflop_per_s: Option<f64>,
    /// The same for the 68-point landmark network.
    pub landmarks_gflop_per_s: Option<f64>,
    /// The same for the descriptor network.
    pub embed_gflop_per_s: Option<f64>,
    /// Multiply-adds per face of the descriptor network (with the mirror, if set), millions.
    pub embed_mmacs_per_face: Option<f64>,
    /// The number format the descriptor network ran in.
    pub embed_precision: crate::nn::cpu::Precision,
}

impl ValidFaceBenchParams {
    /// Times each stage over the images, after an untimed pass over the first batch.
    pub fn run(&self, pipe: &FacePipeline, progress: &dyn Progress) -> Result<FaceBenchReport> {
        let p = &self.0;
        let load = |files: &[std::path::PathBuf]| {
            crate::face::decode_all(files)
                .into_iter()
                .collect::<Result<Vec<_>>>()
        };
        // Warm-up: the first calls allocate each thread's buffers and the allocator's pages
        // for a batch's sizes (with one image, the first timed batch still paid for most
        // of that), and pick kernels.
        let warm = load(&p.files[..p.batch.min(p.files.len())])?;
        let dets = pipe.locate(&warm)?;
        let _ = pipe.embed_chips(&pipe.chips(&warm, &dets))?;
        let (mut t_dec, mut t_det, mut t_lm, mut t_al, mut t_emb) = (0f64, 0f64, 0f64, 0f64, 0f64);
        let macs = crate::nn::cpu::multiply_adds;
        let (mut m_det, mut m_lm, mut m_emb) = (0u64, 0u64, 0u64);
        let mut faces = 0usize;
        progress.start("bench face", p.files.len() as u64);
        for chunk in p.files.chunks(p.batch) {
            let t = Instant::now();
            let imgs = load(chunk)?;
            t_dec += t.elapsed().as_secs_f64();
            let (t, m) = (Instant::now(), macs());
            let refs: Vec<_> = imgs.iter().collect();
            let mut dets = pipe.detector.detect_batch(&refs)?;
            if pipe.refine {
                dets = pipe.refine_batch(&imgs, dets)?;
            }
            t_det += t.elapsed().as_secs_f64();
            m_det += macs() - m;
            let (t, m) = (Instant::now(), macs());
            if let Some(lm) = &pipe.landmarker {
                lm.annotate(&imgs, &mut dets)?;
            }
            t_lm += t.elapsed().as_secs_f64();
            m_lm += macs() - m;
            let t = Instant::now();
            let chips = pipe.chips(&imgs, &dets);
            t_al += t.elapsed().as_secs_f64();
            let (t, m) = (Instant::now(), macs());
            let _ = pipe.embed_chips(&chips)?;
            t_emb += t.elapsed().as_secs_f64();
            m_emb += macs() - m;
            faces += chips.len();
            progress.inc(chunk.len() as u64);
        }
        progress.finish();
        let n = p.files.len() as f64;
        let nf = faces.max(1) as f64;
        Ok(FaceBenchReport {
            images: p.files.len(),
            faces,
            batch: p.batch,
            threads: std::thread::available_parallelism().map_or(1, |p| p.get()),
            decode_ms_per_image: 1e3 * t_dec / n,
            detect_ms_per_image: 1e3 * t_det / n,
            landmarks_ms_per_face: 1e3 * t_lm / nf,
            align_ms_per_face: 1e3 * t_al / nf,
            embed_ms_per_face: 1e3 * t_emb / nf,
            faces_per_s: nf / (t_dec + t_det + t_lm + t_al + t_emb),
            detect_gflop_per_s: gflop_per_s(m_det, t_det),
            landmarks_gflop_per_s: gflop_per_s(m_lm, t_lm),
            embed_gflop_per_s: gflop_per_s(m_emb, t_emb),
            embed_mmacs_per_face: (m_emb > 0).then(|| m_emb as f64 / nf / 1e6),
            embed_precision: pipe.embedder.precision(),
        })
    }
}

/// Two FLOPs per multiply-add over `seconds`, in billions; `None` without any.
fn gflop_per_s(macs: u64, seconds: f64) -> Option<f64> {
    (macs > 0 && seconds > 0.0).then(|| 2.0 * macs as f64 / seconds / 1e9)
}

impl std::fmt::Display for FaceBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} images, {} faces, batch {}, {} threads",
            self.images, self.faces, self.batch, self.threads
        )?;
        let rate = |g: Option<f64>| g.map_or(String::new(), |g| format!(", {g:.1} GFLOP/s"));
        writeln!(f, "decode  {:7.2} ms/image", self.decode_ms_per_image)?;
        writeln!(
            f,
            "detect  {:7.2} ms/image{}",
            self.detect_ms_per_image,
            rate(self.detect_gflop_per_s)
        )?;
        writeln!(
            f,
            "landmarks {:5.2} ms/face{}",
            self.landmarks_ms_per_face,
            rate(self.landmarks_gflop_per_s)
        )?;
        writeln!(f, "align   {:7.2} ms/face", self.align_ms_per_face)?;
        writeln!(
            f,
            "embed   {:7.2} ms/face{}{}, {}",
            self.embed_ms_per_face,
            rate(self.embed_gflop_per_s),
            self.embed_mmacs_per_face.map_or(String::new(), |m| format!(
                " ({m:.0} M multiply-adds per face)"
            )),
            match self.embed_precision {
                crate::nn::cpu::Precision::F32 => "f32",
                crate::nn::cpu::Precision::Bf16 => "bf16",
            }
        )?;
        write!(
            f,
            "total   {:7.1} faces/s (decode + detect + landmarks + align + embed)",
            self.faces_per_s
        )
    }
}
