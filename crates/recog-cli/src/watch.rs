//! `recog watch SOURCE`: identify faces in a video, a stream or a webcam, frame by frame.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use recog::face::draw;
use recog::gallery::{Gallery, Recognizer};
use recog::video::track::{Detection, Tracker, TrackerConfig};
use recog::video::{self, FrameReader, FrameSink, SinkKind};

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
    /// Write the run's summary (fps, latency) as JSON here too.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    #[command(flatten)]
    pub pipe: PipeArgs,
}

#[derive(Serialize)]
struct FaceLine {
    track: u64,
    #[serde(rename = "box")]
    bbox: [f32; 4],
    /// Voted over the track.
    name: Option<String>,
    /// This frame's own answer.
    frame_name: Option<String>,
    distance: f32,
    margin: Option<f32>,
    votes: String,
}

#[derive(Serialize)]
struct FrameLine {
    frame: usize,
    ms: f64,
    faces: Vec<FaceLine>,
}

#[derive(Serialize)]
struct Summary {
    source: String,
    width: u32,
    height: u32,
    frames: usize,
    dropped: usize,
    seconds: f64,
    fps: f64,
    latency_ms_mean: f64,
    latency_ms_p95: f64,
    threshold: f32,
    accept: String,
    gallery_people: usize,
}

pub fn run(a: &WatchArgs) -> Result<()> {
    let g = Gallery::open(&a.db.path())?;
    let pipe = crate::face::pipeline_for(&a.pipe, &g)?;
    let rec = Recognizer::new(pipe, &g, a.threshold)?;
    if rec.index().is_empty() {
        eprintln!(
            "warning: {} is empty: every face will be unknown",
            a.db.path().display()
        );
    }
    let mut reader = FrameReader::open(&a.source)?;
    let src_fps = reader.fps;
    // Live sources drop frames the recogniser cannot keep up with, so latency stays bounded;
    // files are read in full.
    let live = !a.all_frames && (video::is_webcam(&a.source) || a.source.contains("://"));
    let (tx, rx) = mpsc::sync_channel::<recog::Result<image::RgbImage>>(if live { 1 } else { 4 });
    let max_frames = a.max_frames.unwrap_or(usize::MAX);
    let decoder = std::thread::spawn(move || {
        let mut dropped = 0usize;
        let mut sent = 0usize;
        while sent < max_frames {
            match reader.next_frame() {
                Ok(Some(f)) => {
                    if live {
                        match tx.try_send(Ok(f)) {
                            Ok(()) => sent += 1,
                            Err(mpsc::TrySendError::Full(_)) => dropped += 1,
                            Err(mpsc::TrySendError::Disconnected(_)) => break,
                        }
                    } else if tx.send(Ok(f)).is_err() {
                        break;
                    } else {
                        sent += 1;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    break;
                }
            }
        }
        dropped
    });
    let mut tracker = Tracker::new(TrackerConfig {
        window: a.vote_window,
        max_jump: Some(rec.pipeline.embedder.match_distance()),
        ..Default::default()
    });
    let mut sinks: Vec<FrameSink> = Vec::new();
    let mut latencies = Vec::new();
    let mut size = (0, 0);
    let mut t_start: Option<Instant> = None;
    let stdout = std::io::stdout();
    for (i, frame) in rx.iter().enumerate() {
        let frame = frame?;
        let t0 = Instant::now();
        t_start.get_or_insert(t0);
        if i == 0 {
            size = frame.dimensions();
            if let Some(out) = &a.out {
                sinks.push(FrameSink::open(
                    &SinkKind::File(out.clone()),
                    size.0,
                    size.1,
                    src_fps,
                )?);
            }
            if a.show {
                sinks.push(FrameSink::open(&SinkKind::Window, size.0, size.1, src_fps)?);
            }
        }
        let found = rec.recognize(&frame)?;
        let dets: Vec<_> = found
            .iter()
            .map(|r| Detection {
                face: r.face.clone(),
                answer: r.answer.name.clone(),
                embedding: r.embedding.clone(),
            })
            .collect();
        let tracked = tracker.update(&dets);
        if !sinks.is_empty() {
            let marks: Vec<_> = found
                .iter()
                .zip(&tracked)
                .map(|(r, t)| {
                    let mut f = r.face.clone();
                    f.landmarks.clear();
                    draw::identity_mark(f, t.label.as_deref(), r.answer.distance)
                })
                .collect();
            let annotated = draw::annotate(&frame, &marks);
            for s in sinks.iter_mut() {
                s.write(&annotated)?;
            }
        }
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        latencies.push(ms);
        let line = FrameLine {
            frame: i,
            ms: (ms * 100.0).round() / 100.0,
            faces: found
                .iter()
                .zip(&tracked)
                .map(|(r, t)| FaceLine {
                    track: t.track,
                    bbox: [r.face.x0, r.face.y0, r.face.x1, r.face.y1],
                    name: t.label.clone(),
                    frame_name: r.answer.name.clone(),
                    distance: r.answer.distance,
                    margin: r.answer.margin,
                    votes: format!("{}/{}", t.agree, t.votes),
                })
                .collect(),
        };
        use std::io::Write;
        let mut out = stdout.lock();
        if writeln!(out, "{}", serde_json::to_string(&line)?).is_err() {
            // The reader of our output went away (e.g. `| head`): stop quietly.
            break;
        }
    }
    drop(rx);
    let dropped = decoder.join().unwrap_or(0);
    for s in sinks {
        s.finish()?;
    }
    let seconds = t_start.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let frames = latencies.len();
    let mut sorted = latencies.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let summary = Summary {
        source: a.source.clone(),
        width: size.0,
        height: size.1,
        frames,
        dropped,
        seconds,
        fps: if seconds > 0.0 {
            frames as f64 / seconds
        } else {
            0.0
        },
        latency_ms_mean: latencies.iter().sum::<f64>() / frames.max(1) as f64,
        latency_ms_p95: sorted
            .get(((frames as f64 * 0.95) as usize).min(frames.saturating_sub(1)))
            .copied()
            .unwrap_or(0.0),
        threshold: rec.threshold(),
        accept: crate::gallery::describe(&rec.acceptance()),
        gallery_people: rec.index().people(),
    };
    eprintln!(
        "{} frames ({}x{}) in {:.1} s: {:.1} fps, latency {:.1} ms mean / {:.1} ms p95, {} dropped{}",
        summary.frames,
        summary.width,
        summary.height,
        summary.seconds,
        summary.fps,
        summary.latency_ms_mean,
        summary.latency_ms_p95,
        summary.dropped,
        a.out
            .as_ref()
            .map_or(String::new(), |o| format!("; annotated video {}", o.display()))
    );
    if let Some(p) = &a.summary {
        std::fs::write(p, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
