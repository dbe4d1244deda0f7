//! `recog gallery ...` and `recog identify`: one-shot recognition against an SQLite gallery.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use recog::bench::gallery::{GalleryBenchParams, Synthesis};
use recog::eval::openset_id::LfwOpenSetParams;
use recog::gallery::calibration::{CalibrateParams, ImpostorSource};
use recog::gallery::enroll::{self, EnrollReport};
use recog::gallery::{self, Gallery, HnswConfig, IndexKind, Location, Precision, Reduction, Rule};
use recog::metric::Distance;
use recog::video::capture::CaptureParams;
use recog::Home;

use crate::commands::{emit, failed_files};
use crate::face::PipeArgs;
use crate::progress::Bars;

#[derive(Args, Debug, Clone)]
pub struct DbArg {
    /// The gallery: an SQLite file, or a PostgreSQL database with pgvector as
    /// `postgres://user[:password]@host[:port]/dbname` (default: `RECOG_HOME/gallery.sqlite`).
    #[arg(long, value_name = "FILE|URL")]
    pub db: Option<Location>,
}

impl DbArg {
    pub fn location(&self) -> Location {
        self.db
            .clone()
            .unwrap_or_else(|| Location::Sqlite(Home::from_env().root.join("gallery.sqlite")))
    }

    pub fn open(&self) -> Result<Gallery> {
        Ok(Gallery::open_at(&self.location())?)
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
        #[arg(long, value_enum, default_value_t = Distance::Euclidean)]
        metric: Distance,
        /// What the threshold applies to: the ratio test (nearest / runner-up distance, capped
        /// at the verification distance 0.6) or the nearest distance alone.
        #[arg(long, value_enum, default_value_t = Rule::Ratio)]
        rule: Rule,
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
    /// Check the gallery: SQLite integrity, embeddings against the gallery's model and
    /// dimension, photos without embeddings, people without photos. Fails on any problem.
    Check {
        #[command(flatten)]
        db: DbArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent copy of the gallery to FILE (safe while a server runs).
    Backup {
        /// The copy (must not exist).
        file: PathBuf,
        #[command(flatten)]
        db: DbArg,
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
    /// How the gallery is searched: `auto` uses an HNSW graph (kept in `<db>.hnsw`) from
    /// 400,000 photos on.
    #[arg(long, value_enum, default_value_t = IndexKind::Auto)]
    pub index: IndexKind,
    #[command(flatten)]
    pub pipe: PipeArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct BenchGalleryArgs {
    /// Enrolled identities.
    #[arg(long = "n", default_value_t = 100_000)]
    pub people: usize,
    /// Photos per identity.
    #[arg(long, default_value_t = 2)]
    pub per_person: usize,
    /// Embedding dimension.
    #[arg(long, default_value_t = 192)]
    pub dim: usize,
    /// Timed probes: half new photos of enrolled identities, half strangers.
    #[arg(long, default_value_t = 2_000)]
    pub probes: usize,
    /// `exact`: the exact search alone; `hnsw` (or `auto`): the graph too, against it.
    #[arg(long, value_enum, default_value_t = IndexKind::Hnsw)]
    pub index: IndexKind,
    #[command(flatten)]
    pub hnsw: HnswArgs,
    /// False-accept rate per probe the threshold is calibrated for.
    #[arg(long, default_value_t = 0.01)]
    pub far: f64,
    /// Search expansions (ef) to measure on the one graph, e.g. `--sweep 64,128,256`
    /// (default: `--hnsw-ef`).
    #[arg(long, value_delimiter = ',')]
    pub sweep: Vec<usize>,
    /// Keep the graph in FILE: reused by a later run on the same gallery and parameters.
    #[arg(long, value_name = "FILE")]
    pub graph: Option<PathBuf>,
    /// Build the graph for at most SECONDS, save what there is in `--graph` and stop; the
    /// same command again goes on from there. Once the file holds the whole gallery, the
    /// benchmark runs. For graphs that take hours (10 million photos).
    #[arg(long, value_name = "SECONDS", requires = "graph")]
    pub build_for: Option<u64>,
    /// Also measure pgvector: a PostgreSQL server URL (`postgres://user@host:port/db`); the
    /// gallery is loaded into its database `recog_bench_gallery`, kept for the next run.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// Norm of a photo's noise around its identity (0.5: photos of one person ~0.7 apart).
    #[arg(long, default_value_t = 0.5)]
    pub spread: f32,
    /// How identities and photos are drawn: `lfw` has the shape of MobileFaceNet's LFW
    /// embeddings (60 of 192 dimensions used), `full-rank` uses every coordinate.
    #[arg(long, value_enum, default_value = "lfw")]
    pub synthesis: Synthesis,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The HNSW graph's parameters (defaults: `recog::gallery::HnswConfig::default`).
#[derive(Args, Debug, Clone)]
pub struct HnswArgs {
    /// Edges per node (M).
    #[arg(long = "hnsw-m", default_value_t = HnswConfig::default().connectivity)]
    pub connectivity: usize,
    /// Candidate list while building (efConstruction).
    #[arg(long = "hnsw-ef-construction", default_value_t = HnswConfig::default().expansion_add)]
    pub expansion_add: usize,
    /// Candidate list while searching (ef).
    #[arg(long = "hnsw-ef", default_value_t = HnswConfig::default().expansion_search)]
    pub expansion_search: usize,
    /// Photos re-ranked exactly per query.
    #[arg(long = "hnsw-candidates", default_value_t = HnswConfig::default().candidates)]
    pub candidates: usize,
    /// How the graph stores its vectors.
    #[arg(long = "hnsw-precision", value_enum, default_value_t = Precision::F16)]
    pub precision: Precision,
    /// What the graph's vectors are: the gallery's principal subspace (`pca`, fitted from
    /// 10,000 photos on) or the full vectors (`off`).
    #[arg(long = "hnsw-reduction", value_enum, default_value_t = Reduction::Pca)]
    pub reduction: Reduction,
}

impl HnswArgs {
    /// The library's configuration.
    pub fn config(&self) -> HnswConfig {
        HnswConfig {
            connectivity: self.connectivity,
            expansion_add: self.expansion_add,
            expansion_search: self.expansion_search,
            candidates: self.candidates,
            precision: self.precision,
            reduction: self.reduction,
        }
    }
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
            let mut g = db.open()?;
            let p = pipe.pipeline_for(&g)?;
            let r = enroll::enroll_person(&mut g, &p, &name, &images, &bars)?;
            let at = db.location();
            print_enrollment(
                format!("enrolled {} photo(s) of {name} into {}", r.enrolled, at),
                &r,
            )
        }
        GalleryCommand::EnrollDir { dir, db, pipe } => {
            let mut g = db.open()?;
            let p = pipe.pipeline_for(&g)?;
            let r = enroll::enroll_folder(&mut g, &p, &dir, &bars)?;
            let line = format!(
                "enrolled {} photo(s) of {} people into {}",
                r.enrolled,
                r.people,
                db.location()
            );
            print_enrollment(line, &r)
        }
        GalleryCommand::List { db, json } => {
            let g = db.open()?;
            let people = g.list()?;
            if json {
                let v = serde_json::json!({"people": people, "model": g.model()?, "calibration": g.calibration()?});
                return emit(true, &v);
            }
            for p in &people {
                println!("{}\t{} photo(s)", p.name, p.photos);
            }
            if let Some(c) = g.calibration()? {
                let a = c.acceptance();
                println!(
                    "accept {a} (FAR {} per probe, {} impostor scores)",
                    c.far, c.impostors
                );
            }
            Ok(())
        }
        GalleryCommand::Remove { name, db } => {
            if !db.open()?.remove(&name)? {
                bail!("{name} is not in {}", db.location());
            }
            println!("removed {name}");
            Ok(())
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
            let g = db.open()?;
            let impostors = match from {
                None => ImpostorSource::Gallery,
                Some(dir) => ImpostorSource::Folder { dir, per_person },
            };
            let c = CalibrateParams {
                far,
                metric,
                rule,
                impostors,
            }
            .check()?
            .run(&g, || pipe.pipeline_for(&g), &bars)?;
            if json {
                return emit(true, &c);
            }
            println!("{c}; stored in the gallery");
            Ok(())
        }
        GalleryCommand::Capture {
            name,
            source,
            count,
            frames,
            out,
            db,
            pipe,
        } => {
            let name = gallery::check_name(&name)?;
            let mut g = db.open()?;
            let p = pipe.pipeline_for(&g)?;
            let out = out.unwrap_or_else(|| Home::from_env().root.join("captures").join(&name));
            let params = CaptureParams {
                count,
                frames,
                ..CaptureParams::new(&name, &source, out.clone())
            };
            let r = params.check()?.run(&p, &mut g, &bars)?;
            println!(
                "captured {} face(s) of {name} from {} frames into {}; enrolled into {}",
                r.enrolled,
                r.frames_seen,
                out.display(),
                db.location()
            );
            Ok(())
        }
        GalleryCommand::Export { file, db } => {
            std::fs::write(&file, serde_json::to_string(&db.open()?.export()?)?)
                .with_context(|| format!("writing {}", file.display()))?;
            println!("exported to {}", file.display());
            Ok(())
        }
        GalleryCommand::EvalLfw {
            far,
            limit_people,
            out,
            reuse,
            pipe,
            json,
        } => {
            let params = LfwOpenSetParams {
                images: Home::from_env().data_dir("lfw").join("images"),
                far,
                limit_people,
                out: out.clone(),
                reuse,
                model: pipe.options().model(),
            }
            .check()?;
            let r = params.run(|| pipe.pipeline(), &Bars::new(json))?;
            emit(json, &r)?;
            if !json {
                println!("plot: {}", out.join("dir_far.png").display());
            }
            Ok(())
        }
        GalleryCommand::Check { db, json } => {
            let r = db.open()?.check()?;
            emit(json, &r)?;
            if !r.is_clean() {
                bail!("{}: {} problem(s)", db.location(), r.problems());
            }
            Ok(())
        }
        GalleryCommand::Backup { file, db } => {
            db.open()?.backup(&file)?;
            println!("backed up {} to {}", db.location(), file.display());
            Ok(())
        }
        GalleryCommand::Import { file, db } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let x: gallery::Export = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a gallery export", file.display()))?;
            println!("imported {} photo(s)", db.open()?.import(&x)?);
            Ok(())
        }
    }
}

pub fn identify(a: &IdentifyArgs) -> Result<()> {
    let g = a.db.open()?;
    let mut rec = gallery::Recognizer::new(a.pipe.pipeline_for(&g)?, &g, a.threshold)?;
    rec.set_index_kind(a.index, &g)?;
    if rec.index().is_empty() {
        bail!(
            "{}: the gallery is empty (recog gallery enroll NAME IMG...)",
            a.db.location()
        );
    }
    let out = rec.identify_files(&a.images, a.annotate.as_deref())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    for r in &out {
        match &r.error {
            Some(e) => eprintln!("error: {e}"),
            None if a.json => {}
            None if r.faces.is_empty() => println!("{}\tno face", r.file.display()),
            None => {
                for f in &r.faces {
                    println!(
                        "{}\t{}\tdistance {:.3}\tmargin {}\t(accept {})",
                        r.file.display(),
                        f.answer.name.as_deref().unwrap_or("unknown"),
                        f.answer.distance,
                        f.answer.margin.map_or("-".into(), |m| format!("{m:.3}")),
                        rec.acceptance()
                    );
                }
            }
        }
    }
    failed_files(out.iter().map(|r| &r.error), a.images.len())
}

/// Exact against HNSW search on a synthetic gallery (`recog::bench::gallery`).
pub fn bench(a: &BenchGalleryArgs) -> Result<()> {
    let params = GalleryBenchParams {
        people: a.people,
        per_person: a.per_person,
        dim: a.dim,
        probes: a.probes,
        index: a.index,
        hnsw: a.hnsw.config(),
        far: a.far,
        spread: a.spread,
        synthesis: a.synthesis,
        sweep: a.sweep.clone(),
        graph: a.graph.clone(),
        postgres: a.postgres.clone(),
        ..GalleryBenchParams::default()
    }
    .check()?;
    let bars = Bars::new(a.json);
    if let Some(s) = a.build_for {
        let built = params.build_graph(std::time::Duration::from_secs(s), &bars)?;
        if !built.is_complete() {
            return emit(a.json, &built);
        }
        // The report below says the graph was read from its file: say who finished it.
        eprintln!("{built}");
    }
    emit(a.json, &params.run(&bars)?)
}
