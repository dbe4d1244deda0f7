//! Video frames in and out through FFmpeg: files, stream URLs and V4L2 webcams in; annotated
//! video files or a live window out.
//!
//! FFmpeg runs as a child process. Frames arrive as a stream of binary PPM images, whose
//! headers carry each frame's size, so no separate probe is needed to read them.
//!
//! ```no_run
//! let mut frames = recog::video::FrameReader::open("clip.mp4")?;
//! while let Some(frame) = frames.next_frame()? {
//!     println!("{}x{}", frame.width(), frame.height());
//! }
//! # Ok::<(), recog::Error>(())
//! ```

pub mod capture;
pub mod track;
pub mod watch;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use image::RgbImage;

use crate::{Error, Result};

fn spawn(program: &str, cmd: &mut Command, target: &str) -> Result<Child> {
    cmd.spawn().map_err(|e| Error::Video {
        target: target.to_string(),
        problem: if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "`{program}` was not found on PATH; install FFmpeg (Debian: apt install ffmpeg)"
            )
        } else {
            format!("starting {program}: {e}")
        },
    })
}

/// Collects a child's stderr in the background, so a full pipe never blocks it.
fn drain(stderr: Option<std::process::ChildStderr>) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    if let Some(mut s) = stderr {
        let l = log.clone();
        std::thread::spawn(move || {
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if let Ok(mut g) = l.lock() {
                *g = buf;
            }
        });
    }
    log
}

fn last_lines(log: &Arc<Mutex<String>>) -> String {
    let s = log.lock().map(|g| g.clone()).unwrap_or_default();
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

/// Whether a source names a V4L2 device rather than a file or URL.
pub fn is_webcam(source: &str) -> bool {
    source.starts_with("/dev/video")
}

/// Frames of a video file, stream URL or webcam, decoded by FFmpeg to RGB.
pub struct FrameReader {
    source: String,
    child: Child,
    out: BufReader<ChildStdout>,
    log: Arc<Mutex<String>>,
    frames: usize,
    /// Frames per second as the container states it (25 when unknown, e.g. for webcams).
    pub fps: f64,
}

impl FrameReader {
    /// Opens `source`; `/dev/video*` is read as a V4L2 webcam.
    pub fn open(source: &str) -> Result<Self> {
        if !is_webcam(source) && !source.contains("://") && !std::path::Path::new(source).exists() {
            return Err(Error::Video {
                target: source.to_string(),
                problem: "no such file (sources are video files, stream URLs or /dev/video*)"
                    .into(),
            });
        }
        let fps = probe_fps(source).unwrap_or(25.0);
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error"]);
        if is_webcam(source) {
            cmd.args(["-f", "v4l2"]);
        }
        cmd.args([
            "-i",
            source,
            "-an",
            "-f",
            "image2pipe",
            "-vcodec",
            "ppm",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = spawn("ffmpeg", &mut cmd, source)?;
        let log = drain(child.stderr.take());
        let out = child.stdout.take().ok_or_else(|| Error::Video {
            target: source.to_string(),
            problem: "no output pipe".into(),
        })?;
        Ok(Self {
            source: source.to_string(),
            child,
            out: BufReader::with_capacity(1 << 20, out),
            log,
            frames: 0,
            fps,
        })
    }

    fn token(&mut self) -> Result<Option<String>> {
        let mut t = String::new();
        loop {
            let first = match self.out.fill_buf() {
                Ok(buf) => buf.first().copied(),
                Err(e) => return Err(self.err(e.to_string())),
            };
            let Some(c) = first else {
                return Ok(if t.is_empty() { None } else { Some(t) });
            };
            self.out.consume(1);
            if c == b'#' {
                let mut skip = Vec::new();
                self.out
                    .read_until(b'\n', &mut skip)
                    .map_err(|e| self.err(e.to_string()))?;
            } else if c.is_ascii_whitespace() {
                if !t.is_empty() {
                    return Ok(Some(t));
                }
            } else {
                t.push(c as char);
            }
        }
    }

    fn err(&self, problem: String) -> Error {
        Error::Video {
            target: self.source.clone(),
            problem,
        }
    }

    /// The next frame, or `None` at the end of the video.
    pub fn next_frame(&mut self) -> Result<Option<RgbImage>> {
        let Some(magic) = self.token()? else {
            let status = self.child.wait().map_err(|e| self.err(e.to_string()))?;
            // Give the stderr thread a moment to hand over FFmpeg's last words.
            std::thread::sleep(std::time::Duration::from_millis(50));
            if !status.success() || self.frames == 0 {
                let why = last_lines(&self.log);
                return Err(self.err(if why.is_empty() {
                    format!("FFmpeg gave no frames ({status})")
                } else {
                    why
                }));
            }
            return Ok(None);
        };
        let mut num = |what: &str| -> Result<u32> {
            let t = self.token()?.unwrap_or_default();
            t.parse::<u32>()
                .map_err(|_| self.err(format!("bad PPM {what} {t:?} from FFmpeg")))
        };
        let (w, h, max) = (num("width")?, num("height")?, num("maxval")?);
        if magic != "P6" || max != 255 || w == 0 || h == 0 {
            return Err(self.err(format!("unexpected frame header {magic} {w}x{h} max {max}")));
        }
        let mut data = vec![0u8; w as usize * h as usize * 3];
        self.out
            .read_exact(&mut data)
            .map_err(|e| self.err(format!("truncated frame {}: {e}", self.frames)))?;
        self.frames += 1;
        Ok(RgbImage::from_raw(w, h, data))
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Frame rate from `ffprobe`, if it can tell.
fn probe_fps(source: &str) -> Option<f64> {
    if is_webcam(source) {
        return None;
    }
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=avg_frame_rate",
            "-of",
            "default=nw=1:nk=1",
            source,
        ])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let (n, d) = s.trim().split_once('/')?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (d > 0.0 && n > 0.0).then_some(n / d)
}

/// Where annotated frames go.
pub enum SinkKind {
    /// A video file; the container and codec follow its extension (`.mp4`: H.264).
    File(std::path::PathBuf),
    /// A live window through `ffplay` (needs a display).
    Window,
}

/// Writes RGB frames to FFmpeg (a file) or ffplay (a window).
pub struct FrameSink {
    target: String,
    child: Child,
    stdin: Option<ChildStdin>,
    log: Arc<Mutex<String>>,
    size: (u32, u32),
}

impl FrameSink {
    /// Starts the encoder or the window for frames of `width` x `height` at `fps`.
    pub fn open(kind: &SinkKind, width: u32, height: u32, fps: f64) -> Result<Self> {
        let size = format!("{width}x{height}");
        let rate = format!("{fps:.3}");
        let (program, target, mut cmd) = match kind {
            SinkKind::File(path) => {
                let mut c = Command::new("ffmpeg");
                c.args(["-y", "-nostdin", "-hide_banner", "-loglevel", "error"])
                    .args([
                        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", &size, "-r", &rate,
                    ])
                    .args(["-i", "-", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"])
                    .args(["-pix_fmt", "yuv420p"])
                    .arg(path);
                ("ffmpeg", path.display().to_string(), c)
            }
            SinkKind::Window => {
                if std::env::var_os("DISPLAY").is_none()
                    && std::env::var_os("WAYLAND_DISPLAY").is_none()
                {
                    return Err(Error::Video {
                        target: "window".into(),
                        problem: "no display (DISPLAY/WAYLAND_DISPLAY unset); write a file with --out instead".into(),
                    });
                }
                let mut c = Command::new("ffplay");
                c.args([
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-window_title",
                    "recog watch",
                ])
                .args([
                    "-f",
                    "rawvideo",
                    "-pixel_format",
                    "rgb24",
                    "-video_size",
                    &size,
                ])
                .args(["-framerate", &rate, "-i", "-"]);
                ("ffplay", "window".to_string(), c)
            }
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn(program, &mut cmd, &target)?;
        let log = drain(child.stderr.take());
        let stdin = child.stdin.take();
        Ok(Self {
            target,
            child,
            stdin,
            log,
            size: (width, height),
        })
    }

    fn err(&self, problem: String) -> Error {
        Error::Video {
            target: self.target.clone(),
            problem,
        }
    }

    /// Writes one frame; it must have the size the sink was opened with.
    pub fn write(&mut self, frame: &RgbImage) -> Result<()> {
        if frame.dimensions() != self.size {
            return Err(Error::Shape {
                name: format!("frame for {}", self.target),
                expected: vec![self.size.1 as usize, self.size.0 as usize, 3],
                got: vec![frame.height() as usize, frame.width() as usize, 3],
            });
        }
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.err("already finished".into()));
        };
        if let Err(e) = stdin.write_all(frame.as_raw()) {
            let why = last_lines(&self.log);
            return Err(self.err(if why.is_empty() { e.to_string() } else { why }));
        }
        Ok(())
    }

    /// Closes the pipe and waits for the encoder to finish the file.
    pub fn finish(mut self) -> Result<()> {
        drop(self.stdin.take());
        let status = self.child.wait().map_err(|e| self.err(e.to_string()))?;
        if !status.success() {
            std::thread::sleep(std::time::Duration::from_millis(50));
            return Err(self.err(format!("{status}: {}", last_lines(&self.log))));
        }
        Ok(())
    }
}
