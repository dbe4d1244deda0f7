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
    fn path(&self) -> PathBuf {
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
    /// gallery's own photos (each photo's nearest other person, leave one person out).
    Calibrate {
        /// Target false-accept rate.
        #[arg(long, default_value_t = 0.01)]
        far: f64,
        #[command(flatten)]
        db: DbArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
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
        /// Output folder (report JSON, DIR-vs-FAR plot).
        #[arg(long, default_value = "report/lfw-openset")]
        out: PathBuf,
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
    /// Images (PNG/JPEG).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub db: DbArg,
    /// Threshold (default: the gallery's calibrated one, else 0.6).
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
    ModelId {
        name: p.embedder.name(),
        sha256: p.embedder.weights_sha256(),
        dim: p.embedder.dim(),
    }
}

fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(recog::home::hex(&Sha256::digest(&b)))
}

/// Embeds a person's photos, warning on no face, several faces, or a photo far from the others.
fn embed_person(
    pipe: &FacePipeline,
    name: &str,
    images: &[PathBuf],
    bars: &Bars,
) -> Result<Vec<NewPhoto>> {
    let mut out = Vec::new();
    for p in images {
        let img = match face::load_rgb(p) {
            Ok(i) => i,
            Err(e) => {
                bars.warn(&format!("{e}; skipped"));
                continue;
            }
        };
        let faces = pipe
            .all_faces(std::slice::from_ref(&img))?
            .pop()
            .unwrap_or_default();
        let n_faces = faces.len();
        let Some((f, emb)) =
            face::pick_central(&img, &faces.iter().map(|x| x.0.clone()).collect::<Vec<_>>())
                .and_then(|best| faces.into_iter().find(|x| x.0 == best))
        else {
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
            sha256: sha256_file(p)?,
            embedding: emb,
        });
    }
    for (i, a) in out.iter().enumerate() {
        let others: Vec<f32> = out
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, b)| recog::metric::distance::euclidean(&a.embedding, &b.embedding))
            .collect();
        if let Some(min) = others.iter().cloned().reduce(f32::min) {
            if min > 0.6 {
                bars.warn(&format!("{}: far from {name}'s other photos (nearest {min:.3} > 0.6): is it the same person?", a.path));
            }
        }
    }
    Ok(out)
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
            let p = crate::face::pipeline(&pipe)?;
            let mut g = Gallery::open(&db.path())?;
            g.check_model(&model_id(&p))?;
            let photos = embed_person(&p, &name, &images, &bars)?;
            if photos.is_empty() {
                bail!("no usable photo of {name}: nothing enrolled");
            }
            let n = g.enroll(&name, &model_id(&p), &photos)?;
            println!(
                "enrolled {n} photo(s) of {name} into {}",
                db.path().display()
            );
        }
        GalleryCommand::EnrollDir { dir, db, pipe } => {
            let p = crate::face::pipeline(&pipe)?;
            let mut g = Gallery::open(&db.path())?;
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
            for (name, files) in &by {
                let photos = embed_person(&p, name, files, &bars)?;
                if photos.is_empty() {
                    bars.warn(&format!("{name}: no usable photo; not enrolled"));
                    continue;
                }
                total += g.enroll(name, &model_id(&p), &photos)?;
            }
            println!(
                "enrolled {total} photo(s) of {} people into {}",
                by.len(),
                db.path().display()
            );
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
                        "threshold {:.4} (FAR {} per probe, {} impostor scores)",
                        c.threshold, c.far, c.impostors
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
        GalleryCommand::Calibrate { far, db, json } => {
            if !(0.0..1.0).contains(&far) {
                bail!("--far {far}: must be in [0, 1)");
            }
            let g = Gallery::open(&db.path())?;
            let c = g.calibrate_self(far)?;
            g.set_calibration(&c)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                println!(
                    "threshold {:.4} for FAR {} per probe ({} leave-one-person-out impostor scores); stored in the gallery",
                    c.threshold, c.far, c.impostors
                );
            }
        }
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
            pipe,
            json,
        } => {
            eval_lfw(far, limit_people, &out, &pipe, json)?;
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
    let p = crate::face::pipeline(&a.pipe)?;
    let g = Gallery::open(&a.db.path())?;
    g.check_model(&model_id(&p))?;
    let stored = g.embeddings()?;
    if stored.is_empty() {
        bail!(
            "{}: the gallery is empty (recog gallery enroll NAME IMG...)",
            a.db.path().display()
        );
    }
    let threshold = match a.threshold {
        Some(t) => t,
        None => g.calibration()?.map_or(0.6, |c| c.threshold),
    };
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
        let faces = p
            .all_faces(std::slice::from_ref(&img))?
            .pop()
            .unwrap_or_default();
        let answers: Vec<FaceAnswer> = faces
            .iter()
            .map(|(f, e)| FaceAnswer {
                bbox: [f.x0, f.y0, f.x1, f.y1],
                answer: gallery::identify(&stored, e, threshold),
            })
            .collect();
        if let Some(dir) = &a.annotate {
            let marks: Vec<_> = faces
                .iter()
                .zip(&answers)
                .map(|((f, _), ans)| {
                    let label = format!(
                        "{} {:.2}",
                        ans.answer.name.as_deref().unwrap_or("unknown"),
                        ans.answer.distance
                    );
                    (
                        f.clone(),
                        Some(label),
                        if ans.answer.name.is_some() {
                            draw::GREEN
                        } else {
                            draw::RED
                        },
                    )
                })
                .collect();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
            draw::annotate(&img, &marks).save(dir.join(format!("{stem}.identified.png")))?;
        }
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
                    "{}\t{}\tdistance {:.3}\tmargin {}\t(threshold {:.3})",
                    r.file.display(),
                    f.answer.name.as_deref().unwrap_or("unknown"),
                    f.answer.distance,
                    f.answer.margin.map_or("-".into(), |m| format!("{m:.3}")),
                    threshold
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
    let pipe = crate::face::pipeline(pipe_args)?;
    let bars = Bars::new(json);
    let t0 = std::time::Instant::now();
    let res = pipe.embed_files(&files, 16, true, &bars)?;
    let secs = t0.elapsed().as_secs_f64();
    let mut emb = res.into_iter().map(|r| r.embedding);
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
    let r = gallery::evaluate_open_set(&enrolled, &known, &unknown, far);
    std::fs::create_dir_all(out)?;
    let pts: Vec<(f64, f64)> = r
        .curve
        .iter()
        .filter(|p| p.0 > 0.0)
        .map(|p| (p.0.log10(), p.1))
        .collect();
    recog::plot::line_chart(
        &out.join("dir_far.png"),
        &format!(
            "LFW one-shot open-set identification ({} enrolled)",
            r.enrolled
        ),
        "log10 FAR (never-enrolled probes accepted)",
        "DIR (enrolled probes named correctly)",
        &[recog::plot::Series {
            label: "face ResNet".into(),
            points: pts,
        }],
    )?;
    let text = serde_json::to_string_pretty(
        &serde_json::json!({"report": &r, "images": files.len(), "seconds": secs}),
    )?;
    std::fs::write(out.join("openset.json"), &text)?;
    if json {
        println!("{text}");
    } else {
        println!("{} enrolled (1 photo each), {} probes of enrolled people, {} of never-enrolled people ({} images, {:.1} images/s)", r.enrolled, r.known_probes, r.unknown_probes, files.len(), files.len() as f64 / secs);
        println!(
            "threshold {:.4} (FAR {} per probe, from {} leave-one-person-out scores of the enrolled photos)",
            r.calibration.threshold, r.calibration.far, r.calibration.impostors
        );
        println!(
            "rank-1 identification of enrolled probes at the threshold (DIR): {:.2}%",
            100.0 * r.dir_at_threshold
        );
        println!(
            "never-enrolled probes answered unknown: {:.2}%",
            100.0 * r.unknown_rejected_at_threshold
        );
        println!(
            "rank-1 without a threshold: {:.2}%",
            100.0 * r.rank1_closed_set
        );
        println!("plot: {}", out.join("dir_far.png").display());
    }
    Ok(())
}
