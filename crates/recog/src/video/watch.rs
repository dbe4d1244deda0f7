//! The watch loop: every frame of a video, a stream or a webcam recognised against a
//! gallery, faces followed by a [`Tracker`] whose vote names them, annotated frames written
//! to a file or a window.
//!
//! Live sources (webcams, URLs) drop the frames that arrive while one is being recognised,
//! so latency stays bounded; files are read in full. Decoding runs on its own thread.
//!
//! ```no_run
//! use recog::face::FacePipeline;
//! use recog::gallery::{Gallery, Recognizer};
//! use recog::video::watch::WatchParams;
//! use recog::{Home, NoProgress};
//!
//! let home = Home::from_env();
//! let g = Gallery::open("gallery.sqlite".as_ref())?;
//! let pipe = FacePipeline::standard(&home, &recog::default_device(), &NoProgress)?;
//! let rec = Recognizer::new(pipe, &g, None)?;
//! let summary = WatchParams::new("clip.mp4").check()?.run(&rec, &mut |frame| {
//!     println!("{} faces", frame.faces.len());
//!     true // keep going
//! })?;
//! println!("{:.1} fps", summary.fps);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use serde::Serialize;

use super::track::{Tracker, TrackerConfig};
use super::{is_webcam, FrameReader, FrameSink, SinkKind};
use crate::bench::percentile;
use crate::face::draw;
use crate::gallery::{FaceAnswer, Recognizer};
use crate::{Error, Result};

/// What to watch and where the annotated frames go.
#[derive(Debug, Clone)]
pub struct WatchParams {
    /// Video file, stream URL, or webcam (`/dev/video0`).
    pub source: String,
    /// Write the annotated video here (`.mp4`, `.mkv`, ...).
    pub out: Option<PathBuf>,
    /// Show the annotated frames in a window (needs a display and ffplay).
    pub show: bool,
    /// Stop after this many frames.
    pub max_frames: Option<usize>,
    /// Frames in each track's identity vote.
    pub vote_window: usize,
    /// Process every frame of a live source too (else they drop frames to keep up).
    pub all_frames: bool,
    /// Run the full detector (the whole pyramid) on one frame in this many; the frames
    /// between follow the last frame's faces ([`crate::face::FacePipeline::follow`]). 1:
    /// the full detector on every frame. A face that enters is found at the next full
    /// detection, so at most this many frames late.
    pub detect_every: usize,
}

/// [`WatchParams::detect_every`]'s default: a face that enters is found within 0.4 s at
/// 25 fps. On a 640x480 clip with two faces a followed frame cost about 40% of a fully
/// detected one, and every 10th frame detected gave 30-37 fps where every 5th gave 25-33
/// (README, "recog watch").
pub const DEFAULT_DETECT_EVERY: usize = 10;

impl WatchParams {
    /// Every frame of `source`, votes over 15 frames, no output video.
    pub fn new(source: &str) -> Self {
        Self {
            source: source.to_string(),
            out: None,
            show: false,
            max_frames: None,
            vote_window: 15,
            all_frames: false,
            detect_every: DEFAULT_DETECT_EVERY,
        }
    }

    /// Needs a source, a vote of at least one frame and `detect_every` of at least 1.
    pub fn check(self) -> Result<ValidWatchParams> {
        if self.source.trim().is_empty() || self.vote_window == 0 || self.detect_every == 0 {
            return Err(Error::InvalidArgument(
                "watch needs a source, a vote window of 1 frame or more and --detect-every of 1 or more"
                    .into(),
            ));
        }
        Ok(ValidWatchParams(self))
    }
}

/// Checked [`WatchParams`].
#[derive(Debug, Clone)]
pub struct ValidWatchParams(WatchParams);

/// One frame's answer.
#[derive(Debug, Clone, Serialize)]
pub struct FrameAnswer {
    /// Frame number, from 0.
    pub frame: usize,
    /// Time to recognise it, ms.
    pub ms: f64,
    /// Whether the full detector ran on it (else its faces were followed from the last
    /// frame).
    pub detected: bool,
    /// Its faces, named by their track's vote.
    pub faces: Vec<FaceAnswer>,
}

/// The run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct WatchSummary {
    /// The source.
    pub source: String,
    /// Frame width, px.
    pub width: u32,
    /// Frame height, px.
    pub height: u32,
    /// Frames recognised.
    pub frames: usize,
    /// Frames a live source dropped.
    pub dropped: usize,
    /// Wall time, s.
    pub seconds: f64,
    /// Frames recognised per second.
    pub fps: f64,
    /// Mean time per frame, ms.
    pub latency_ms_mean: f64,
    /// 95th percentile, ms.
    pub latency_ms_p95: f64,
    /// The full detector ran on one frame in this many.
    pub detect_every: usize,
    /// The threshold in force.
    pub threshold: f32,
    /// The decision rule.
    pub accept: String,
    /// People in the gallery.
    pub gallery_people: usize,
}

impl ValidWatchParams {
    /// Runs until the source ends, `max_frames`, or `on_frame` returns false.
    pub fn run(
        &self,
        rec: &Recognizer,
        on_frame: &mut dyn FnMut(&FrameAnswer) -> bool,
    ) -> Result<WatchSummary> {
        let a = &self.0;
        let mut reader = FrameReader::open(&a.source)?;
        let src_fps = reader.fps;
        let live = !a.all_frames && (is_webcam(&a.source) || a.source.contains("://"));
        let (tx, rx) = mpsc::sync_channel::<Result<image::RgbImage>>(if live { 1 } else { 4 });
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
            verification_distance: Some(rec.pipeline.embedder.verification_distance()),
            ..Default::default()
        });
        let mut sinks: Vec<FrameSink> = Vec::new();
        let mut latencies = Vec::new();
        let mut previous = Vec::new();
        let mut size = (0, 0);
        let mut t_start: Option<Instant> = None;
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
            let detected = i % a.detect_every == 0;
            let found = if detected {
                rec.recognize(&frame)?
            } else {
                rec.recognize_followed(&frame, &previous)?
            };
            previous = found.iter().map(|r| r.face.clone()).collect();
            let dets: Vec<_> = found.iter().map(FaceAnswer::detection).collect();
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
            let answer = FrameAnswer {
                frame: i,
                ms: (ms * 100.0).round() / 100.0,
                detected,
                faces: found
                    .iter()
                    .zip(&tracked)
                    .map(|(r, t)| FaceAnswer::tracked(r, t))
                    .collect(),
            };
            if !on_frame(&answer) {
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
        Ok(WatchSummary {
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
            latency_ms_mean: crate::bench::mean(&latencies),
            latency_ms_p95: percentile(&sorted, 0.95),
            detect_every: a.detect_every,
            threshold: rec.threshold(),
            accept: rec.acceptance().to_string(),
            gallery_people: rec.index().people(),
        })
    }
}

impl std::fmt::Display for WatchSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} frames ({}x{}) in {:.1} s: {:.1} fps, latency {:.1} ms mean / {:.1} ms p95, {} dropped, full detection every {} frame(s)",
            self.frames,
            self.width,
            self.height,
            self.seconds,
            self.fps,
            self.latency_ms_mean,
            self.latency_ms_p95,
            self.dropped,
            self.detect_every
        )
    }
}
