//! `recog watch SOURCE`: identify faces in a video, a stream or a webcam, frame by frame.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use recog::gallery::Recognizer;
use recog::video::watch::WatchParams;

use crate::face::PipeArgs;
use crate::gallery::DbArg;

#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// Video file, stream URL, or webcam (`/dev/video0`).
    pub source: String,
    #[command(flatten)]
    pub db: DbArg,
    /// A distance threshold (default: the gallery's calibrated rule, else distance <= 0.6).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// How the gallery is searched: `auto` uses an HNSW graph (kept in `<db>.hnsw`) from
    /// 400,000 photos on.
    #[arg(long, value_enum, default_value_t = recog::gallery::IndexKind::Auto)]
    pub index: recog::gallery::IndexKind,
    /// Write the annotated video here (`.mp4`, `.mkv`, ...).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Show the annotated frames in a window (needs a display and ffplay).
    #[arg(long)]
    pub show: bool,
    /// Stop after this many frames.
    #[arg(long)]
    pub max_frames: Option<usize>,
    /// Frames in each track's identity vote.
    #[arg(long, default_value_t = 15)]
    pub vote_window: usize,
    /// Process every frame of a URL or webcam too (by default live sources drop the frames
    /// that arrive while one is being processed).
    #[arg(long)]
    pub all_frames: bool,
    /// Run the full detector on one frame in N; the frames between follow the faces already
    /// found (a crop around each), which costs a fraction of a full detection. A face that
    /// enters is found at most N frames late. 1: the full detector on every frame.
    #[arg(long, value_name = "N", default_value_t = recog::video::watch::DEFAULT_DETECT_EVERY)]
    pub detect_every: usize,
    /// Write the run's summary (fps, latency) as JSON here too.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    #[command(flatten)]
    pub pipe: PipeArgs,
}

pub fn run(a: &WatchArgs) -> Result<()> {
    let g = a.db.open()?;
    let pipe = a.pipe.pipeline_for(&g)?;
    let mut rec = Recognizer::new(pipe, &g, a.threshold)?;
    rec.set_index_kind(a.index, &g)?;
    if rec.index().is_empty() {
        eprintln!(
            "warning: {} is empty: every face will be unknown",
            a.db.location()
        );
    }
    let params = WatchParams {
        source: a.source.clone(),
        out: a.out.clone(),
        show: a.show,
        max_frames: a.max_frames,
        vote_window: a.vote_window,
        all_frames: a.all_frames,
        detect_every: a.detect_every,
    }
    .check()?;
    let stdout = std::io::stdout();
    let summary = params.run(&rec, &mut |frame| {
        use std::io::Write;
        let line = serde_json::to_string(frame).unwrap_or_default();
        // The reader of our output went away (e.g. `| head`): stop quietly.
        writeln!(stdout.lock(), "{line}").is_ok()
    })?;
    let video = a.out.as_ref().map_or(String::new(), |o| {
        format!("; annotated video {}", o.display())
    });
    eprintln!("{summary}{video}");
    if let Some(p) = &a.summary {
        std::fs::write(p, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
