//! `recog gallery ...` and `recog identify`: one-shot recognition against an SQLite gallery.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use recog::data::folder::is_image;
use recog::face::{self, draw, FacePipeline};
use recog::gallery::{self, Gallery, ModelId, NewPhoto};
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

fn model_id(p: &FacePipeline) -> ModelId {
    gallery::model_id(p)
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

/// "distance <= 0.412" or "ratio <= 0.860 and distance <= 0.6".
pub fn describe(a: &gallery::Acceptance) -> String {
    match a.rule {
        gallery::Rule::Distance => format!("distance <= {:.3}", a.threshold),
        gallery::Rule::Ratio if a.threshold >= f32::MAX => format!(
            "distance <= {} (every impostor was beyond it: the ratio does not limit)",
            a.max_distance
        ),
        gallery::Rule::Ratio => format!(
            "ratio <= {:.3} and distance <= {}",
            a.threshold, a.max_distance
        ),
    }
}

impl From<MetricArg> for gallery::Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::Euclidean => gallery::Metric::Euclidean,
            MetricArg::Cosine => gallery::Metric::Cosine,
        }
    }
}

/// What enrolment did with the photos it was given, beyond enrolling them.
#[derive(Debug, Default)]
struct EnrollTally {
    /// Already enrolled for this person (same file SHA-256): skipped.
    already: usize,
    /// Already enrolled under another name: refused.
    refused: usize,
    /// Unreadable files.
    failed: usize,
}

/// Embeds a person's photos, warning on no face, several faces, or a photo far from the others.
/// `stored` are the embeddings the gallery already holds for this person: a new photo is also
/// compared with them. A photo whose file is already enrolled for this person is skipped, and
/// one enrolled under another name is refused, so that enrolment can be re-run.
fn embed_person(
    pipe: &FacePipeline,
    g: &Gallery,
    name: &str,
    images: &[PathBuf],
    stored: &[Vec<f32>],
    bars: &Bars,
    tally: &mut EnrollTally,
) -> Result<Vec<NewPhoto>> {
    let mut out: Vec<NewPhoto> = Vec::new();
    for p in images {
        // One read: the bytes are hashed for the re-run check and decoded from memory.
        let bytes = match std::fs::read(p) {
            Ok(b) => b,
            Err(e) => {
                tally.failed += 1;
                eprintln!("error: {}", recog::Error::io(p, e));
                continue;
            }
        };
        let sha = {
            use sha2::{Digest, Sha256};
            recog::home::hex(&Sha256::digest(&bytes))
        };
        match g.owner_of(&sha)? {
            Some(owner) if owner == name => {
                tally.already += 1;
                continue;
            }
            Some(owner) => {
                tally.refused += 1;
                bars.warn(&format!(
                    "{}: this photo is already enrolled as {owner}; not enrolled as {name}",
                    p.display()
                ));
                continue;
            }
            None => {}
        }
        if out.iter().any(|o| o.sha256 == sha) {
            tally.already += 1;
            continue;
        }
        let img = match recog::data::image_file::decode_bytes(&bytes) {
            Ok(i) => i.to_rgb8(),
            Err(problem) => {
                tally.failed += 1;
                let e = recog::Error::Image {
                    path: p.clone(),
                    problem,
                };
                eprintln!("error: {e}");
                continue;
            }
        };
        let (central, n_faces) = pipe.central_face(&img)?;
        let Some((f, emb)) = central else {
            bars.warn(&format!("{}: no face found; skipped", p.display()));
            continue;
        };
        if n_faces > 1 {
            bars.warn(&format!(
                "{}: {n_faces} faces; enrolled the central one ({:.0},{:.0})",
                p.display(),
                f.x0,
                f.y0
            ));
        }
        out.push(NewPhoto {
            path: p.display().to_string(),
            sha256: sha,
            thumbnail: draw::face_thumbnail(&img, &f, 96).ok(),
            embedding: emb,
        });
    }
    for (i, a) in out.iter().enumerate() {
        let others: Vec<f32> = out
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, b)| b.embedding.as_slice())
            .chain(stored.iter().map(Vec::as_slice))
            .map(|b| recog::metric::distance::euclidean(&a.embedding, b))
            .collect();
        if let Some(min) = others.iter().cloned().reduce(f32::min) {
            let far = pipe.embedder.match_distance();
            if min > far {
                bars.warn(&format!("{}: far from {name}'s other photos (nearest {min:.3} > {far}): is it the same person?", a.path));
            }
        }
    }
    Ok(out)
}

/// The enrolment summary's tail ("; 3 already enrolled, skipped") and the exit status.
fn finish_enrolment(t: &EnrollTally, total_files: usize) -> Result<String> {
    let mut tail = String::new();
    if t.already > 0 {
        tail.push_str(&format!("; {} already enrolled, skipped", t.already));
    }
    if t.refused > 0 {
        tail.push_str(&format!(
            "; {} enrolled under another name, refused",
            t.refused
        ));
    }
    if t.failed > 0 {
        bail!(
            "{} of {total_files} photos could not be read{tail}",
            t.failed
        );
    }
    Ok(tail)
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

/// Looks at `frames` frames, keeps the `count` best single-face detections (score, then size,
/// at least 5 frames apart), saves their crops and enrols them.
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
    if name.trim().is_empty() || name.contains(['/', '\\']) {
        bail!("{name:?}: a name must be non-empty and hold no path separator");
    }
    let mut g = Gallery::open(&db.path())?;
    let p = crate::face::pipeline_for(pipe_args, &g)?;
    g.check_model(&model_id(&p))?;
    let out = out.unwrap_or_else(|| Home::from_env().root.join("captures").join(name));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut reader = recog::video::FrameReader::open(source)?;
    // (quality, frame index, frame, face)
    let mut best: Vec<(f32, usize, image::RgbImage, face::FaceBox)> = Vec::new();
    let mut seen = 0;
    bars.start("capture", frames as u64);
    while seen < frames {
        let Some(frame) = reader.next_frame()? else {
            break;
        };
        seen += 1;
        bars.inc(1);
        let faces = p
            .locate(std::slice::from_ref(&frame))?
            .pop()
            .unwrap_or_default();
        if faces.len() != 1 {
            continue;
        }
        let f = faces[0].clone();
        let side = (f.x1 - f.x0).min(f.y1 - f.y0);
        // Detector confidence first; among confident detections, bigger faces hold more detail.
        let quality = f.score + (side / frame.width().max(1) as f32).min(1.0) * 0.1;
        best.push((quality, seen - 1, frame, f));
        best.sort_by(|a, b| b.0.total_cmp(&a.0));
        best.truncate(count * 6);
    }
    bars.finish();
    drop(reader);
    let mut chosen: Vec<&(f32, usize, image::RgbImage, face::FaceBox)> = Vec::new();
    for c in &best {
        if chosen.len() < count && chosen.iter().all(|o| o.1.abs_diff(c.1) >= 5) {
            chosen.push(c);
        }
    }
    if chosen.is_empty() {
        bail!("{source}: no frame of {seen} showed exactly one face; nothing captured");
    }
    // The faces were located while scanning: embed their chips, no second detection.
    let chips: Vec<image::RgbImage> = chosen.iter().map(|c| p.chip(&c.2, &c.3)).collect();
    let mut photos = Vec::new();
    for (i, ((_, _, frame, f), emb)) in chosen.iter().zip(p.embed_chips(&chips)?).enumerate() {
        use sha2::{Digest, Sha256};
        let path = out.join(format!("{name}_{:03}.jpg", i + 1));
        let crop = draw::face_thumbnail(frame, f, 224)?;
        std::fs::write(&path, &crop).with_context(|| format!("writing {}", path.display()))?;
        photos.push(NewPhoto {
            path: path.display().to_string(),
            sha256: recog::home::hex(&Sha256::digest(&crop)),
            embedding: emb,
            thumbnail: draw::face_thumbnail(frame, f, 96).ok(),
        });
    }
    let n = g.enroll(name, &model_id(&p), &photos)?;
    println!(
        "captured {n} face(s) of {name} from {seen} frames into {}; enrolled into {}",
        out.display(),
        db.path().display()
    );
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
            let mut g = Gallery::open(&db.path())?;
            let p = crate::face::pipeline_for(&pipe, &g)?;
            g.check_model(&model_id(&p))?;
            let stored: Vec<Vec<f32>> = g
                .embeddings()?
                .into_iter()
                .filter(|(n, _)| n == &name)
                .map(|(_, e)| e)
                .collect();
            let mut tally = EnrollTally::default();
            let photos = embed_person(&p, &g, &name, &images, &stored, &bars, &mut tally)?;
            if photos.is_empty() && tally.already == 0 && tally.refused == 0 {
                finish_enrolment(&tally, images.len())?;
                bail!("no usable photo of {name}: nothing enrolled");
            }
            let n = if photos.is_empty() {
                0
            } else {
                g.enroll(&name, &model_id(&p), &photos)?
            };
            let line = format!(
                "enrolled {n} photo(s) of {name} into {}",
                db.path().display()
            );
            match finish_enrolment(&tally, images.len()) {
                Ok(tail) => println!("{line}{tail}"),
                Err(e) => {
                    println!("{line}");
                    return Err(e);
                }
            }
        }
        GalleryCommand::EnrollDir { dir, db, pipe } => {
            let mut g = Gallery::open(&db.path())?;
            let p = crate::face::pipeline_for(&pipe, &g)?;
            g.check_model(&model_id(&p))?;
            // Sub-folders name their photos; a photo directly in DIR is named by its stem.
            let mut by: std::collections::BTreeMap<String, Vec<PathBuf>> =
                recog::data::folder::people(&dir)?.into_iter().collect();
            for e in
                std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
            {
                let path = e?.path();
                if !path.is_dir() && is_image(&path) {
                    let name = path
                        .file_stem()
                        .and_then(|n| n.to_str())
                        .unwrap_or("")
                        .to_string();
                    by.entry(name).or_default().push(path);
                }
            }
            let mut total = 0;
            let mut tally = EnrollTally::default();
            let files_in_dir: usize = by.values().map(Vec::len).sum();
            for (name, files) in &by {
                let before = tally.already;
                let photos = embed_person(&p, &g, name, files, &[], &bars, &mut tally)?;
                if photos.is_empty() {
                    if tally.already == before {
                        bars.warn(&format!("{name}: no usable photo; not enrolled"));
                    }
                    continue;
                }
                // One transaction per person: a kill leaves whole people, and a re-run
                // skips the photos already enrolled.
                total += g.enroll(name, &model_id(&p), &photos)?;
            }
            let line = format!(
                "enrolled {total} photo(s) of {} people into {}",
                by.len(),
                db.path().display()
            );
            match finish_enrolment(&tally, files_in_dir) {
                Ok(tail) => println!("{line}{tail}"),
                Err(e) => {
                    println!("{line}");
                    return Err(e);
                }
            }
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
                        describe(&c.acceptance()),
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
                    g.check_model(&model_id(&p))?;
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
                    describe(&c.acceptance()),
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
struct FaceAnswer {
    #[serde(rename = "box")]
    bbox: [f32; 4],
    #[serde(flatten)]
    answer: gallery::Match,
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
    let rule = describe(&rec.acceptance());
    if let Some(dir) = &a.annotate {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = Vec::new();
    let mut failed = 0;
    for path in &a.images {
        let img = match face::load_rgb(path) {
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
        let answers: Vec<FaceAnswer> = found
            .into_iter()
            .map(|r| FaceAnswer {
                bbox: [r.face.x0, r.face.y0, r.face.x1, r.face.y1],
                answer: r.answer,
            })
            .collect();
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
    let dir = Home::from_env().data_dir("lfw").join("images");
    let people = recog::data::folder::people(&dir)?;
    let lim = limit.unwrap_or(usize::MAX);
    let multi: Vec<&(String, Vec<PathBuf>)> =
        people.iter().filter(|p| p.1.len() >= 2).take(lim).collect();
    let single: Vec<&(String, Vec<PathBuf>)> =
        people.iter().filter(|p| p.1.len() == 1).take(lim).collect();
    let mut files = Vec::new();
    for (_, f) in multi.iter().chain(single.iter()).map(|p| (&p.0, &p.1)) {
        files.extend(f.iter().cloned());
    }
    let bars = Bars::new(json);
    let t0 = std::time::Instant::now();
    // Embeddings are kept next to the report, so other scorings can be tried on them without
    // embedding 13,233 photos again (`--reuse`).
    let model = pipe_args.model();
    let (verify, model_name) = (model.match_distance(), model.label());
    // dlib's cache keeps the name it had before there was a choice of network.
    let cache = match model {
        face::FaceModel::Dlib => out.join("embeddings.json"),
        m => out.join(format!("embeddings-{}.json", m.name())),
    };
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let cached: Option<Vec<Vec<f32>>> = if reuse {
        std::fs::read_to_string(&cache)
            .ok()
            .and_then(|t| serde_json::from_str::<(Vec<String>, Vec<Vec<f32>>)>(&t).ok())
            .filter(|(n, _)| n == &names)
            .map(|(_, e)| e)
    } else {
        None
    };
    let reused = cached.is_some();
    let embeddings = match cached {
        Some(e) => e,
        None => {
            let pipe = crate::face::pipeline(pipe_args)?;
            let e: Vec<Vec<f32>> = pipe
                .embed_files(&files, 16, true, &bars)?
                .into_iter()
                .map(|r| r.embedding)
                .collect();
            std::fs::create_dir_all(out)?;
            std::fs::write(&cache, serde_json::to_string(&(&names, &e))?)
                .with_context(|| format!("writing {}", cache.display()))?;
            e
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    if reused {
        eprintln!("reused the embeddings in {}", cache.display());
    }
    let mut emb = embeddings.into_iter();
    let (mut enrolled, mut known, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
    for (name, f) in &multi {
        for (i, _) in f.iter().enumerate() {
            let e = emb.next().unwrap_or_default();
            if i == 0 {
                enrolled.push((name.clone(), e));
            } else {
                known.push((name.clone(), e));
            }
        }
    }
    for _ in &single {
        unknown.push(emb.next().unwrap_or_default());
    }
    // Both rules on the same embeddings: the notebook's distance threshold and the ratio test.
    let rules = [
        ("distance", gallery::Rule::Distance),
        ("ratio", gallery::Rule::Ratio),
    ];
    let mut reports = Vec::new();
    for (_, rule) in rules {
        reports.push(gallery::evaluate_open_set(
            &enrolled, &known, &unknown, far, rule, verify,
        )?);
    }
    std::fs::create_dir_all(out)?;
    let series: Vec<recog::plot::Series> = rules
        .iter()
        .zip(&reports)
        .map(|((name, _), r)| recog::plot::Series {
            label: format!("{name} rule"),
            points: r
                .curve
                .iter()
                .filter(|p| p.0 > 0.0)
                .map(|p| (p.0.log10(), p.1))
                .collect(),
        })
        .collect();
    recog::plot::line_chart(
        &out.join("dir_far.png"),
        &format!(
            "LFW one-shot open-set identification ({} enrolled, {})",
            reports[0].enrolled, model_name
        ),
        "log10 FAR (never-enrolled probes accepted)",
        "DIR (enrolled probes named correctly)",
        &series,
    )?;
    let text = serde_json::to_string_pretty(&serde_json::json!({
        "distance_rule": &reports[0], "ratio_rule": &reports[1],
        "images": files.len(), "seconds": secs, "embeddings_reused": reused,
        "model": model_name,
    }))?;
    std::fs::write(out.join("openset.json"), &text)?;
    if json {
        println!("{text}");
    } else {
        let r = &reports[0];
        println!("{model_name}: {} enrolled (1 photo each), {} probes of enrolled people, {} of never-enrolled people ({} images{})", r.enrolled, r.known_probes, r.unknown_probes, files.len(),
            if reused { ", embeddings reused".to_string() } else { format!(", {:.1} images/s", files.len() as f64 / secs) });
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

/// Random unit vectors in a temporary SQLite gallery; times loading the index, exact search
/// on all cores and on one, against the plain reference search (`gallery::identify`).
pub fn bench(a: &BenchGalleryArgs) -> Result<()> {
    use rand::{Rng, SeedableRng};
    use std::time::Instant;
    if a.entries == 0 || a.dim == 0 || a.queries == 0 {
        bail!("--entries, --dim and --queries must be positive");
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let unit = |rng: &mut rand_chacha::ChaCha8Rng| -> Vec<f32> {
        let v: Vec<f32> = (0..a.dim).map(|_| rng.random::<f32>() - 0.5).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.into_iter().map(|x| x / n).collect()
    };
    let per = a.per_person.max(1);
    let mut people: Vec<(String, Vec<NewPhoto>)> = Vec::new();
    for i in 0..a.entries {
        if i % per == 0 {
            people.push((format!("person{:06}", i / per), Vec::new()));
        }
        if let Some(last) = people.last_mut() {
            last.1.push(NewPhoto {
                path: format!("synthetic/{i}"),
                sha256: String::new(),
                embedding: unit(&mut rng),
                thumbnail: None,
            });
        }
    }
    let dir = tempfile_dir()?;
    let db = dir.join("bench.sqlite");
    let model = ModelId {
        name: "synthetic".into(),
        sha256: "0".into(),
        dim: a.dim,
    };
    let t = Instant::now();
    Gallery::open(&db)?.enroll_many(&model, &people)?;
    let write_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let g = Gallery::open(&db)?;
    let stored = g.embeddings()?;
    let index = g.index()?;
    let load_s = t.elapsed().as_secs_f64();
    // Queries: a stored photo plus noise, so each has a true nearest person.
    let queries: Vec<Vec<f32>> = (0..a.queries)
        .map(|_| {
            let r = &stored[rng.random_range(0..stored.len())].1;
            r.iter()
                .map(|x| x + (rng.random::<f32>() - 0.5) * 0.02)
                .collect()
        })
        .collect();
    let time = |idx: &gallery::Index| -> Result<Vec<f64>> {
        let mut ms = Vec::new();
        let _ = idx.search(&queries[0], 0.6)?;
        for q in &queries {
            let t = Instant::now();
            std::hint::black_box(idx.search(q, 0.6)?);
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(|x, y| x.total_cmp(y));
        Ok(ms)
    };
    let all = time(&index)?;
    let one = time(&index.clone().with_threads(1))?;
    // The reference: a hash map of per-person minima per query, over the same rows.
    let n_ref = a.queries.min(20);
    let mut ref_ms = Vec::new();
    let mut agree = 0;
    for q in &queries[..n_ref] {
        let t = Instant::now();
        let m = gallery::identify(&stored, q, 0.6);
        ref_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if index.search(q, 0.6)?.nearest == m.nearest {
            agree += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let r = serde_json::json!({
        "entries": a.entries, "people": people.len(), "dim": a.dim, "queries": a.queries,
        "threads": threads,
        "sqlite_write_s": write_s, "load_index_s": load_s,
        "ms_mean": mean(&all), "ms_p50": percentile(&all, 0.5), "ms_p99": percentile(&all, 0.99),
        "ms_mean_1_thread": mean(&one),
        "reference": "gallery::identify (hash map per query)",
        "reference_ms_mean": mean(&ref_ms),
        "speedup_vs_reference": mean(&ref_ms) / mean(&all).max(1e-9),
        "reference_agreement": format!("{agree}/{n_ref}"),
        "target_ms": 20.0,
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "exact search, {} entries ({} people) x {}-d, {} queries:",
            a.entries,
            people.len(),
            a.dim,
            a.queries
        );
        println!(
            "  {threads} threads: {:.2} ms mean, {:.2} ms p50, {:.2} ms p99 (target < 20 ms: {})",
            mean(&all),
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            if percentile(&all, 0.99) < 20.0 {
                "met"
            } else {
                "not met"
            }
        );
        println!("  1 thread: {:.2} ms mean", mean(&one));
        println!(
            "  reference (gallery::identify, hash map per query): {:.2} ms mean; {:.1}x faster; same answer on {agree}/{n_ref}",
            mean(&ref_ms),
            mean(&ref_ms) / mean(&all).max(1e-9)
        );
        println!(
            "  SQLite: write {write_s:.1} s (one transaction), open + load index {load_s:.2} s"
        );
    }
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("recog-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    Ok(d)
}

/// The demo's Part VII: one-shot enrolment of the 4 `lfw:4x4` people (their first photo), a
/// threshold calibrated for FAR 1% on 300 LFW strangers (people with one photo), then their
/// other photos and 4 strangers identified, with annotated images. Returns the report's
/// Markdown section.
pub fn demo_step(out: &Path) -> Result<String> {
    let dir = Home::from_env().data_dir("lfw").join("images");
    let people = recog::data::folder::people(&dir)?;
    let four: Vec<&(String, Vec<PathBuf>)> = people.iter().filter(|p| p.1.len() >= 4).collect();
    let enrolled = &four[..4.min(four.len())];
    let strangers: Vec<&(String, Vec<PathBuf>)> = four.iter().skip(4).take(4).copied().collect();
    let calib: Vec<&(String, Vec<PathBuf>)> =
        people.iter().filter(|p| p.1.len() == 1).take(300).collect();
    if enrolled.len() < 4 || strangers.len() < 4 {
        bail!("{}: too few LFW people", dir.display());
    }
    std::fs::create_dir_all(out)?;
    let db = out.join("gallery.sqlite");
    let _ = std::fs::remove_file(&db);
    let bars = Bars::new(true);
    let p = crate::face::pipeline(&PipeArgs::default_args())?;
    let mut g = Gallery::open(&db)?;
    for (name, files) in enrolled {
        let photos = embed_person(
            &p,
            &g,
            name,
            &files[..1],
            &[],
            &bars,
            &mut EnrollTally::default(),
        )?;
        g.enroll(name, &model_id(&p), &photos)?;
    }
    let files: Vec<PathBuf> = calib.iter().map(|p| p.1[0].clone()).collect();
    let labelled: Vec<(String, Vec<f32>)> = calib
        .iter()
        .map(|p| p.0.clone())
        .zip(p.embed_files(&files, 16, false, &bars)?)
        .filter(|(_, r)| !r.fallback)
        .map(|(n, r)| (n, r.embedding))
        .collect();
    let c = g.calibrate_labelled(
        &labelled,
        0.01,
        gallery::Metric::Euclidean,
        gallery::Rule::Ratio,
        "300 LFW strangers",
    )?;
    g.set_calibration(&c)?;
    let rec = gallery::Recognizer::new(p, &g, None)?;
    let mut md = format!(
        "\n## One-shot face recognition (Part VII)\n\nGallery: the first photo of each of {} (`{}`). Accept {}, calibrated for FAR 1% per probe on {} LFW strangers (`recog gallery calibrate --from`). Probes: their other photos, and photos of 4 people never enrolled.\n\n| photo | truth | answer | distance | margin |\n|---|---|---|---|---|\n",
        enrolled.iter().map(|p| p.0.as_str()).collect::<Vec<_>>().join(", "),
        db.display(),
        describe(&c.acceptance()),
        c.impostors
    );
    let (mut right, mut total) = (0, 0);
    let probes = enrolled
        .iter()
        .flat_map(|(n, f)| f[1..4].iter().map(move |x| (x, Some(n.as_str()))))
        .chain(strangers.iter().map(|(_, f)| (&f[0], None)));
    let mut shown = Vec::new();
    for (file, truth) in probes {
        let img = face::load_rgb(file)?;
        let found = rec.recognize(&img)?;
        let Some(best) = face::pick_central(
            &img,
            &found.iter().map(|r| r.face.clone()).collect::<Vec<_>>(),
        )
        .and_then(|b| found.iter().find(|r| r.face == b)) else {
            continue;
        };
        total += 1;
        if best.answer.name.as_deref() == truth {
            right += 1;
        }
        let answer = best.answer.name.as_deref().unwrap_or("unknown");
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("probe");
        let mut f = best.face.clone();
        f.landmarks.clear();
        draw::annotate(
            &img,
            &[draw::identity_mark(
                f,
                best.answer.name.as_deref(),
                best.answer.distance,
            )],
        )
        .save(out.join(format!("{stem}.identified.png")))?;
        // Three enrolled people's probes and three strangers in the report.
        let (k, u) = (
            shown.iter().filter(|x: &&(bool, String)| x.0).count(),
            shown.iter().filter(|x: &&(bool, String)| !x.0).count(),
        );
        if (truth.is_some() && k < 3) || (truth.is_none() && u < 3) {
            shown.push((truth.is_some(), format!("{stem}.identified.png")));
        }
        md.push_str(&format!(
            "| {stem} | {} | {answer} | {:.3} | {} |\n",
            truth.unwrap_or("(stranger)"),
            best.answer.distance,
            best.answer.margin.map_or("-".into(), |m| format!("{m:.3}"))
        ));
    }
    md.push_str(&format!("\n{right} of {total} answers right (names for enrolled people, `unknown` for strangers).\n\n"));
    let dir_name = out
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("faces-gallery");
    for (_, s) in shown {
        md.push_str(&format!("![{s}]({dir_name}/{s}) "));
    }
    md.push('\n');
    Ok(md)
}
