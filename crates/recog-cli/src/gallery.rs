//! `recog gallery ...` and `recog identify`: one-shot recognition against an SQLite gallery.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use recog::bench::gallery::GalleryBenchParams;
use recog::eval::openset_id::LfwOpenSetParams;
use recog::face::{draw, FacePipeline};
use recog::gallery::enroll::{self, EnrollReport};
use recog::gallery::{self, FaceAnswer, Gallery};
use recog::metric::Distance;
use recog::video::capture::CaptureParams;
use recog::{Home, Progress};

use crate::face::PipeArgs;
use crate::progress::Bars;

#[derive(Args, Debug, Clone)]
pub struct DbArg {
    /// Gallery database (default: `RECOG_HOME/gallery.sqlite`).
    #[arg(long)]
    pub db: Option<PathBuf>,
}

impl DbArg {
    pub fn path(&self) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(|| Home::from_env().root.join("gallery.sqlite"))
    }
}

#[derive(Subcommand, Debug)]
pub enum GalleryCommand {
    /// Enrol one or several photos of a person.
    Enroll {
        /// The person's name.
        name: String,
        /// Photos (one face each).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[command(flatten)]
        db: DbArg,
        #[command(flatten)]
        pipe: PipeArgs,
    },
    /// Enrol a folder: `<person>/<photo>` or `<person>.jpg` (the notebook's layout).
    EnrollDir {
        /// The folder.
        dir: PathBuf,
        #[command(flatten)]
        db: DbArg,
        #[command(flatten)]
        pipe: PipeArgs,
    },
    /// People and photo counts.
    List {
        #[command(flatten)]
        db: DbArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a person with all photos and embeddings.
    Remove {
        /// The person's name.
        name: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Pick and store the threshold for a target false-accept rate per probe, from the
    /// gallery's own photos (each photo's nearest other person, leave one person out), or
    /// from a labelled folder of strangers (`--from DIR`, `<person>/<photo>`, e.g. LFW).
    Calibrate {
        /// Target false-accept rate.
        #[arg(long, default_value_t = 0.01)]
        far: f64,
        /// Distance to calibrate (identification then uses it).
        #[arg(long, value_enum, default_value_t = MetricArg::Euclidean)]
        metric: MetricArg,
        /// What the threshold applies to: the ratio test (nearest / runner-up distance, capped
        /// at the verification distance 0.6) or the nearest distance alone.
        #[arg(long, value_enum, default_value_t = RuleArg::Ratio)]
        rule: RuleArg,
        /// A labelled folder: each photo's distance to the nearest gallery person of another
        /// name is an impostor score.
        #[arg(long)]
        from: Option<PathBuf>,
        /// With --from: at most this many photos per person.
        #[arg(long, default_value_t = 5)]
        per_person: usize,
        #[command(flatten)]
        db: DbArg,
        #[command(flatten)]
        pipe: PipeArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The notebook's capture step: save the best-detected face crops of a person from a
    /// camera (or any video source) and enrol them.
    Capture {
        /// The person's name.
        name: String,
        /// Webcam (`/dev/video0`), video file or stream URL.
        #[arg(long, default_value = "/dev/video0")]
        source: String,
        /// Photos to keep.
        #[arg(long, default_value_t = 5)]
        count: usize,
        /// Frames to look at.
        #[arg(long, default_value_t = 150)]
        frames: usize,
        /// Folder for the saved crops (default: `RECOG_HOME/captures/NAME`).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        db: DbArg,
        #[command(flatten)]
        pipe: PipeArgs,
    },
    /// Write the gallery (people, photo paths and hashes, embeddings, model) as JSON.
    Export {
        /// Output file.
        file: PathBuf,
        #[command(flatten)]
        db: DbArg,
    },
    /// One-shot open-set identification on LFW: enrol the first photo of everyone with 2+
    /// photos, probe with their other photos and with everyone who has a single photo.
    EvalLfw {
        /// Target false-accept rate of the calibrated threshold.
        #[arg(long, default_value_t = 0.01)]
        far: f64,
        /// Only the first N people (alphabetically) of each kind, for quick runs.
        #[arg(long)]
        limit_people: Option<usize>,
        /// Output folder (report JSON, DIR-vs-FAR plot, the embeddings).
        #[arg(long, default_value = "report/lfw-openset")]
        out: PathBuf,
        /// Reuse the embeddings a previous run left in the output folder (same photos).
        #[arg(long)]
        reuse: bool,
        #[command(flatten)]
        pipe: PipeArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add the people of an exported JSON file.
    Import {
        /// Input file.
        file: PathBuf,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Args, Debug, Clone)]
pub struct IdentifyArgs {
    /// Images (JPEG, PNG, WebP, BMP, TIFF, GIF; read by content).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub db: DbArg,
    /// A distance threshold (default: the gallery's calibrated rule, else distance <= 0.6).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Folder for annotated copies (`<stem>.identified.png`).
    #[arg(long)]
    pub annotate: Option<PathBuf>,
    #[command(flatten)]
    pub pipe: PipeArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricArg {
    /// Euclidean distance (dlib's and the notebook's).
    Euclidean,
    /// Cosine distance, 1 - cos.
    Cosine,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleArg {
    /// Lowe's ratio test: nearest / runner-up person distance (and nearest <= 0.6).
    Ratio,
    /// The nearest person's distance (the notebook's rule).
    Distance,
}

impl From<RuleArg> for gallery::Rule {
    fn from(r: RuleArg) -> Self {
        match r {
            RuleArg::Ratio => gallery::Rule::Ratio,
            RuleArg::Distance => gallery::Rule::Distance,
        }
    }
}

impl From<MetricArg> for Distance {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::Euclidean => Distance::Euclidean,
            MetricArg::Cosine => Distance::Cosine,
        }
    }
}

/// Embeds up to `per_person` photos of each person of a labelled folder (photos with no face
/// are left out).
fn embed_labelled(
    pipe: &FacePipeline,
    dir: &Path,
    per_person: usize,
    bars: &Bars,
) -> Result<Vec<(String, Vec<f32>)>> {
    let people = recog::data::folder::people(dir)?;
    if people.is_empty() {
        bail!("{}: no <person>/<photo> images", dir.display());
    }
    let mut names = Vec::new();
    let mut files = Vec::new();
    for (name, photos) in &people {
        for f in photos.iter().take(per_person.max(1)) {
            names.push(name.clone());
            files.push(f.clone());
        }
    }
    let res = pipe.embed_files(&files, 16, false, bars)?;
    Ok(names
        .into_iter()
        .zip(res)
        .filter(|(_, r)| r.face.is_some() && !r.fallback)
        .map(|(n, r)| (n, r.embedding))
        .collect())
}

/// Captures and enrols a person from a video source (`recog::video::capture`).
#[allow(clippy::too_many_arguments)]
fn capture(
    name: &str,
    source: &str,
    count: usize,
    frames: usize,
    out: Option<PathBuf>,
    db: &DbArg,
    pipe_args: &PipeArgs,
    bars: &Bars,
) -> Result<()> {
    let name = gallery::check_name(name)?;
    let mut g = Gallery::open(&db.path())?;
    let p = crate::face::pipeline_for(pipe_args, &g)?;
    let out = out.unwrap_or_else(|| Home::from_env().root.join("captures").join(&name));
    let params = CaptureParams {
        count,
        frames,
        ..CaptureParams::new(&name, source, out.clone())
    }
    .check()?;
    let r = params.run(&p, &mut g, bars)?;
    println!(
        "captured {} face(s) of {name} from {} frames into {}; enrolled into {}",
        r.enrolled,
        r.frames_seen,
        out.display(),
        db.path().display()
    );
    Ok(())
}

/// Prints an enrolment's per-file errors and summary line; fails when files were unreadable.
fn print_enrollment(line: String, r: &EnrollReport) -> Result<()> {
    for (_, e) in &r.failed {
        eprintln!("error: {e}");
    }
    let tail = r.tail();
    if !r.failed.is_empty() {
        println!("{line}");
        bail!(
            "{} of {} photos could not be read{tail}",
            r.failed.len(),
            r.files()
        );
    }
    println!("{line}{tail}");
    Ok(())
}

pub fn run(c: GalleryCommand) -> Result<()> {
    let bars = Bars::new(false);
    match c {
        GalleryCommand::Enroll {
            name,
            images,
            db,
            pipe,
        } => {
            let name = gallery::check_name(&name)?;
            let mut g = Gallery::open(&db.path())?;
            let p = crate::face::pipeline_for(&pipe, &g)?;
            let r = enroll::enroll_person(&mut g, &p, &name, &images, &bars)?;
            let line = format!(
                "enrolled {} photo(s) of {name} into {}",
                r.enrolled,
                db.path().display()
            );
            print_enrollment(line, &r)?;
        }
        GalleryCommand::EnrollDir { dir, db, pipe } => {
            let mut g = Gallery::open(&db.path())?;
            let p = crate::face::pipeline_for(&pipe, &g)?;
            let r = enroll::enroll_folder(&mut g, &p, &dir, &bars)?;
            let line = format!(
                "enrolled {} photo(s) of {} people into {}",
                r.enrolled,
                r.people,
                db.path().display()
            );
            print_enrollment(line, &r)?;
        }
        GalleryCommand::List { db, json } => {
            let g = Gallery::open(&db.path())?;
            let people = g.list()?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"people": people, "model": g.model()?, "calibration": g.calibration()?})
                    )?
                );
            } else {
                for p in &people {
                    println!("{}\t{} photo(s)", p.name, p.photos);
                }
                if let Some(c) = g.calibration()? {
                    println!(
                        "accept {} (FAR {} per probe, {} impostor scores)",
                        c.acceptance(),
                        c.far,
                        c.impostors
                    );
                }
            }
        }
        GalleryCommand::Remove { name, db } => {
            let mut g = Gallery::open(&db.path())?;
            if !g.remove(&name)? {
                bail!("{name} is not in {}", db.path().display());
            }
            println!("removed {name}");
        }
        GalleryCommand::Calibrate {
            far,
            metric,
            rule,
            from,
            per_person,
            db,
            pipe,
            json,
        } => {
            if !(0.0..1.0).contains(&far) {
                bail!("--far {far}: must be in [0, 1)");
            }
            let g = Gallery::open(&db.path())?;
            let c = match &from {
                None => g.calibrate_self(far, metric.into(), rule.into())?,
                Some(dir) => {
                    let p = crate::face::pipeline_for(&pipe, &g)?;
                    g.check_model(&gallery::model_id(&p))?;
                    let labelled = embed_labelled(&p, dir, per_person, &bars)?;
                    g.calibrate_labelled(
                        &labelled,
                        far,
                        metric.into(),
                        rule.into(),
                        &dir.display().to_string(),
                    )?
                }
            };
            g.set_calibration(&c)?;
            if c.impostors < 100 {
                bars.warn(&format!(
                    "only {} impostor scores: a FAR of {far} cannot be resolved from so few; calibrate on a labelled folder of strangers (--from DIR)",
                    c.impostors
                ));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                println!(
                    "accept {} ({:?}) for FAR {} per probe ({} impostor scores from {}); stored in the gallery",
                    c.acceptance(),
                    c.metric,
                    c.far,
                    c.impostors,
                    c.source.as_deref().unwrap_or("gallery")
                );
            }
        }
        GalleryCommand::Capture {
            name,
            source,
            count,
            frames,
            out,
            db,
            pipe,
        } => capture(&name, &source, count, frames, out, &db, &pipe, &bars)?,
        GalleryCommand::Export { file, db } => {
            let g = Gallery::open(&db.path())?;
            std::fs::write(&file, serde_json::to_string(&g.export()?)?)
                .with_context(|| format!("writing {}", file.display()))?;
            println!("exported to {}", file.display());
        }
        GalleryCommand::EvalLfw {
            far,
            limit_people,
            out,
            reuse,
            pipe,
            json,
        } => {
            eval_lfw(far, limit_people, &out, &pipe, json, reuse)?;
        }
        GalleryCommand::Import { file, db } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let x: gallery::Export = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a gallery export", file.display()))?;
            let mut g = Gallery::open(&db.path())?;
            let n = g.import(&x)?;
            println!("imported {n} photo(s)");
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct ImageAnswer {
    file: PathBuf,
    faces: Vec<FaceAnswer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn identify(a: &IdentifyArgs) -> Result<()> {
    let g = Gallery::open(&a.db.path())?;
    let p = crate::face::pipeline_for(&a.pipe, &g)?;
    let rec = gallery::Recognizer::new(p, &g, a.threshold)?;
    if rec.index().is_empty() {
        bail!(
            "{}: the gallery is empty (recog gallery enroll NAME IMG...)",
            a.db.path().display()
        );
    }
    let rule = rec.acceptance();
    if let Some(dir) = &a.annotate {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = Vec::new();
    let mut failed = 0;
    for path in &a.images {
        let img = match recog::data::image_file::load_rgb(path) {
            Ok(i) => i,
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
                out.push(ImageAnswer {
                    file: path.clone(),
                    faces: vec![],
                    error: Some(e.to_string()),
                });
                continue;
            }
        };
        let found = rec.recognize(&img)?;
        if let Some(dir) = &a.annotate {
            let marks: Vec<_> = found
                .iter()
                .map(|r| {
                    draw::identity_mark(r.face.clone(), r.answer.name.as_deref(), r.answer.distance)
                })
                .collect();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
            draw::annotate(&img, &marks).save(dir.join(format!("{stem}.identified.png")))?;
        }
        let answers: Vec<FaceAnswer> = found.iter().map(FaceAnswer::new).collect();
        out.push(ImageAnswer {
            file: path.clone(),
            faces: answers,
            error: None,
        });
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for r in &out {
            for f in &r.faces {
                println!(
                    "{}\t{}\tdistance {:.3}\tmargin {}\t(accept {})",
                    r.file.display(),
                    f.answer.name.as_deref().unwrap_or("unknown"),
                    f.answer.distance,
                    f.answer.margin.map_or("-".into(), |m| format!("{m:.3}")),
                    rule
                );
            }
            if r.faces.is_empty() && r.error.is_none() {
                println!("{}\tno face", r.file.display());
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} images could not be read", a.images.len());
    }
    Ok(())
}

fn eval_lfw(
    far: f64,
    limit: Option<usize>,
    out: &Path,
    pipe_args: &PipeArgs,
    json: bool,
    reuse: bool,
) -> Result<()> {
    let params = LfwOpenSetParams {
        images: Home::from_env().data_dir("lfw").join("images"),
        far,
        limit_people: limit,
        out: out.to_path_buf(),
        reuse,
        model: pipe_args.model(),
    }
    .check()?;
    let bars = Bars::new(json);
    let report = params.run(|| crate::face::pipeline(pipe_args), &bars)?;
    let reports = [&report.distance_rule, &report.ratio_rule];
    let rules = [("distance", ()), ("ratio", ())];
    let (model_name, reused, secs) = (&report.model, report.embeddings_reused, report.seconds);
    let files_len = report.images;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let r = &reports[0];
        println!("{model_name}: {} enrolled (1 photo each), {} probes of enrolled people, {} of never-enrolled people ({} images{})", r.enrolled, r.known_probes, r.unknown_probes, files_len,
            if reused { ", embeddings reused".to_string() } else { format!(", {:.1} images/s", files_len as f64 / secs) });
        println!(
            "rank-1 without a threshold: {:.2}%",
            100.0 * r.rank1_closed_set
        );
        for ((name, _), r) in rules.iter().zip(&reports) {
            println!(
                "{name} rule: threshold {:.4} (FAR {} per probe, from {} leave-one-person-out scores of the enrolled photos): DIR {:.2}%, never-enrolled answered unknown {:.2}%",
                r.calibration.threshold,
                r.calibration.far,
                r.calibration.impostors,
                100.0 * r.dir_at_threshold,
                100.0 * r.unknown_rejected_at_threshold
            );
        }
        println!("plot: {}", out.join("dir_far.png").display());
    }
    Ok(())
}

#[derive(Args, Debug, Clone)]
pub struct BenchGalleryArgs {
    /// Gallery photos (rows).
    #[arg(long, default_value_t = 100_000)]
    pub entries: usize,
    /// Photos per person.
    #[arg(long, default_value_t = 2)]
    pub per_person: usize,
    /// Embedding dimension.
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Timed queries.
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Times exact search on a synthetic gallery (`recog::bench::gallery`).
pub fn bench(a: &BenchGalleryArgs) -> Result<()> {
    let r = GalleryBenchParams {
        entries: a.entries,
        per_person: a.per_person,
        dim: a.dim,
        queries: a.queries,
    }
    .check()?
    .run()?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "exact search, {} entries ({} people) x {}-d, {} queries:",
            r.entries, r.people, r.dim, r.queries
        );
        println!(
            "  {} threads: {:.2} ms mean, {:.2} ms p50, {:.2} ms p99 (target < 20 ms: {})",
            r.threads,
            r.ms_mean,
            r.ms_p50,
            r.ms_p99,
            if r.ms_p99 < r.target_ms {
                "met"
            } else {
                "not met"
            }
        );
        println!("  1 thread: {:.2} ms mean", r.ms_mean_1_thread);
        println!(
            "  reference ({}): {:.2} ms mean; {:.1}x faster; same answer on {}",
            r.reference, r.reference_ms_mean, r.speedup_vs_reference, r.reference_agreement
        );
        println!(
            "  SQLite: write {:.1} s (one transaction), open + load index {:.2} s",
            r.sqlite_write_s, r.load_index_s
        );
    }
    Ok(())
}
