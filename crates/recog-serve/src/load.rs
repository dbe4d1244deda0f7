//! A load test of the server (`recog bench serve`): a server started in-process on
//! loopback over a real engine, `clients` HTTP clients each sending `requests` mixed requests
//! (identify, list, enrol, remove) while `ws_streams` WebSockets stream camera frames, then a
//! check that every enrolment answered `200` is in the gallery exactly once and no other is.
//!
//! Each client keeps one keep-alive connection and waits for each answer before its next
//! request, as a program calling the API would. A `503` is the server shedding load on
//! purpose: the client honours `Retry-After` (sleeps, scaled by `retry_after_scale`) and goes
//! on with its next request, and the request counts as shed, not as an error. Any other
//! unexpected answer, or a broken connection, is an error.
//!
//! ```
//! let p = recog_serve::load::LoadParams { clients: 0, ..Default::default() };
//! assert!(p.check().is_err());
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde::Serialize;

use recog::gallery::{CheckReport, Gallery};
use recog::Progress;

use crate::{Engine, ServeConfig, ServeError};

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadParams {
    /// Concurrent HTTP clients.
    pub clients: usize,
    /// Requests per client, a quarter of each kind on average.
    pub requests: usize,
    /// WebSocket streams sending frames alongside.
    pub ws_streams: usize,
    /// Frames per second each stream offers (the server's `max_fps` drops the excess).
    pub ws_fps: f32,
    /// Face photos (one face each): identify sends them as they are; each enrolment sends a
    /// copy made unique by one pixel, so no two enrolments share a photo.
    pub photos: Vec<PathBuf>,
    /// People enrolled before the load starts, so that identify has someone to find.
    pub seed_people: usize,
    /// A `503`'s `Retry-After` is slept times this (1: as a well-behaved client; 0: retry
    /// at once).
    pub retry_after_scale: f32,
    /// Seed of the clients' random choices.
    pub seed: u64,
}

impl Default for LoadParams {
    fn default() -> Self {
        Self {
            clients: 32,
            requests: 1000,
            ws_streams: 8,
            ws_fps: 30.0,
            photos: Vec::new(),
            seed_people: 8,
            retry_after_scale: 1.0,
            seed: 1,
        }
    }
}

/// Checked [`LoadParams`], with the photos read.
pub struct ValidLoadParams {
    p: LoadParams,
    /// The photos' bytes, as sent to identify.
    files: Vec<Vec<u8>>,
    /// The photos decoded, for the unique enrolment copies.
    images: Vec<image::RgbImage>,
}

impl LoadParams {
    /// Checks the counts and reads and decodes every photo.
    pub fn check(self) -> Result<ValidLoadParams, ServeError> {
        if self.clients == 0 || self.requests == 0 {
            return Err(ServeError(
                "--clients and --requests must be at least 1".into(),
            ));
        }
        if !(self.ws_fps > 0.0 && self.ws_fps.is_finite()) {
            return Err(ServeError("--ws-fps must be a positive number".into()));
        }
        if self.photos.is_empty() {
            return Err(ServeError("no photos to send (one face each)".into()));
        }
        let mut files = Vec::new();
        let mut images = Vec::new();
        for p in &self.photos {
            let bytes =
                std::fs::read(p).map_err(|e| ServeError(format!("{}: {e}", p.display())))?;
            let img = recog::gallery::service::decode_upload(&bytes)
                .map_err(|e| ServeError(format!("{}: {e}", p.display())))?;
            files.push(bytes);
            images.push(img);
        }
        Ok(ValidLoadParams {
            p: self,
            files,
            images,
        })
    }
}

/// Latency figures of one kind of request, milliseconds, over the answers that were not
/// `503`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Answers (not `503`).
    pub answered: usize,
    /// Answered `503` (queue full or deadline): shed on purpose.
    pub shed: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Latency {
    fn of(mut ms: Vec<f64>, shed: usize) -> Self {
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if ms.is_empty() {
                0.0
            } else {
                ms[((ms.len() - 1) as f64 * q).round() as usize]
            }
        };
        Self {
            answered: ms.len(),
            shed,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: ms.last().copied().unwrap_or(0.0),
        }
    }
}

/// What the WebSocket streams saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamReport {
    /// Frames sent.
    pub sent: usize,
    /// Frames recognised (a `result` answer), and their latency.
    pub results: Latency,
    /// Frames dropped by the server: sent while the previous one was being recognised,
    /// faster than its frame-rate limit, or with its queue full.
    pub dropped: usize,
}

/// What a load test measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    /// HTTP clients, requests each, WebSocket streams.
    pub clients: usize,
    /// Requests per client.
    pub requests: usize,
    /// WebSocket streams.
    pub ws_streams: usize,
    /// Wall time of the load, seconds.
    pub seconds: f64,
    /// HTTP requests answered (not `503`) per second.
    pub throughput: f64,
    /// All HTTP requests.
    pub all: Latency,
    /// By kind.
    pub identify: Latency,
    /// `GET /api/people`.
    pub list: Latency,
    /// `POST /api/people/NAME`.
    pub enroll: Latency,
    /// `DELETE /api/people/NAME`.
    pub remove: Latency,
    /// The WebSocket streams.
    pub streams: StreamReport,
    /// Answers that were neither what the request should get nor a `503`, and broken
    /// connections.
    pub errors: usize,
    /// The first few of them.
    pub error_samples: Vec<String>,
    /// Enrolments answered `200` that the gallery lacks at the end, or removals answered
    /// `200` whose person is still there.
    pub lost: usize,
    /// People in the gallery that no answered enrolment put there, or with more photos than
    /// they were enrolled with.
    pub duplicated: usize,
    /// People in the gallery at the end.
    pub people: usize,
    /// `gallery check` of the database after the server stopped, when it was given.
    pub check: Option<CheckReport>,
    /// Peak resident memory of this process (server and clients), MB.
    pub peak_rss_mb: f64,
}

impl LoadReport {
    /// True when nothing unexpected happened: no errors, nothing lost or duplicated, and a
    /// clean gallery check.
    pub fn passed(&self) -> bool {
        self.errors == 0
            && self.lost == 0
            && self.duplicated == 0
            && self.check.as_ref().is_none_or(CheckReport::is_clean)
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} clients x {} requests + {} WebSocket streams in {:.1} s: {:.1} answered requests/s",
            self.clients, self.requests, self.ws_streams, self.seconds, self.throughput
        )?;
        writeln!(
            f,
            "{:<9} {:>9} {:>6} {:>9} {:>9} {:>9}",
            "request", "answered", "503", "p50 ms", "p99 ms", "max ms"
        )?;
        for (name, l) in [
            ("identify", &self.identify),
            ("list", &self.list),
            ("enrol", &self.enroll),
            ("remove", &self.remove),
            ("all", &self.all),
        ] {
            writeln!(
                f,
                "{name:<9} {:>9} {:>6} {:>9.1} {:>9.1} {:>9.1}",
                l.answered, l.shed, l.p50_ms, l.p99_ms, l.max_ms
            )?;
        }
        let s = &self.streams;
        writeln!(
            f,
            "frames: {} sent, {} recognised (p50 {:.1} ms, p99 {:.1} ms), {} dropped, {} shed",
            s.sent,
            s.results.answered,
            s.results.p50_ms,
            s.results.p99_ms,
            s.dropped,
            s.results.shed
        )?;
        writeln!(
            f,
            "errors: {}; lost enrolments: {}; duplicated: {}; people at the end: {}",
            self.errors, self.lost, self.duplicated, self.people
        )?;
        for e in &self.error_samples {
            writeln!(f, "  {e}")?;
        }
        if let Some(c) = &self.check {
            writeln!(
                f,
                "gallery check: {}",
                if c.is_clean() { "clean" } else { "PROBLEMS" }
            )?;
        }
        write!(
            f,
            "peak RSS (server and clients): {:.0} MB",
            self.peak_rss_mb
        )
    }
}

/// One keep-alive HTTP/1.1 connection: just what the API's answers need (`Content-Length`
/// or chunked bodies). The load test's clients, and the crash tests', which must not depend on
/// anything the server under test runs.
pub struct Http {
    addr: SocketAddr,
    auth: Option<String>,
    conn: Option<BufReader<TcpStream>>,
}

/// An answer: status, `Retry-After` seconds, body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After`, seconds, when given.
    pub retry_after: Option<u64>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Http {
    /// A client of `addr`, sending `token` as a bearer token when given; it connects on the
    /// first call.
    pub fn new(addr: SocketAddr, token: Option<&str>) -> Self {
        Self {
            addr,
            auth: token.map(|t| format!("Authorization: Bearer {t}\r\n")),
            conn: None,
        }
    }

    /// Sends one request and reads its answer; after an error the connection is dropped and
    /// the next call opens a new one.
    pub fn call(&mut self, method: &str, path: &str, body: &[u8]) -> std::io::Result<Answer> {
        let r = self.try_call(method, path, body);
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    fn try_call(&mut self, method: &str, path: &str, body: &[u8]) -> std::io::Result<Answer> {
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(120)))?;
            self.conn = Some(BufReader::new(s));
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(std::io::Error::other("no connection"));
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{}Content-Length: {}\r\n\r\n",
            self.addr,
            self.auth.as_deref().unwrap_or(""),
            body.len()
        );
        let s = conn.get_mut();
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let mut line = String::new();
        conn.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(&format!("status line {line:?}")))?;
        let (mut length, mut chunked, mut close, mut retry_after) = (None, false, false, None);
        loop {
            line.clear();
            if conn.read_line(&mut line)? == 0 {
                return Err(bad("connection closed in the headers"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.to_ascii_lowercase().as_str() {
                "content-length" => length = v.parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "connection" => close = v.eq_ignore_ascii_case("close"),
                "retry-after" => retry_after = v.parse().ok(),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                conn.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim(), 16).map_err(|_| bad("chunk size"))?;
                let mut chunk = vec![0; n + 2];
                conn.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            conn.read_exact(&mut body)?;
        } else {
            conn.read_to_end(&mut body)?;
            close = true;
        }
        if close {
            self.conn = None;
        }
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

/// A copy of `img` as PNG, made unique by pixels (0, 0) and (1, 0) encoding all four bytes
/// of `tag`. (Pixel (0, 0) alone held three: clients 16 apart made the same photo, which the
/// server rightly refused as enrolled under the other name; the first full run's 3 errors.)
fn unique_png(img: &image::RgbImage, tag: u32) -> Vec<u8> {
    let mut img = img.clone();
    let [a, b, c, d] = tag.to_le_bytes();
    img.put_pixel(0, 0, image::Rgb([a, b, c]));
    if img.width() > 1 {
        img.put_pixel(1, 0, image::Rgb([d, 0, 0]));
    }
    let mut out = std::io::Cursor::new(Vec::new());
    // Encoding an RgbImage into memory cannot fail short of memory.
    let _ = img.write_to(&mut out, image::ImageFormat::Png);
    out.into_inner()
}

#[derive(Default)]
struct ClientLog {
    ms: [Vec<f64>; 4],
    shed: [usize; 4],
    errors: Vec<String>,
    error_count: usize,
    /// Names this client enrolled (answered 200) and did not remove.
    live: Vec<String>,
    /// Names it removed (answered 200).
    removed: Vec<String>,
}

impl ClientLog {
    fn error(&mut self, e: String) {
        self.error_count += 1;
        if self.errors.len() < 5 {
            self.errors.push(e);
        }
    }
}

const IDENTIFY: usize = 0;
const LIST: usize = 1;
const ENROLL: usize = 2;
const REMOVE: usize = 3;

impl ValidLoadParams {
    fn client(
        &self,
        id: usize,
        addr: SocketAddr,
        token: Option<&str>,
        progress: &dyn Progress,
    ) -> ClientLog {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.p.seed ^ (id as u64) << 32);
        let mut http = Http::new(addr, token);
        let mut log = ClientLog::default();
        for j in 0..self.p.requests {
            let kind = rng.random_range(0..4);
            let photo = rng.random_range(0..self.files.len());
            let (method, path, body, name) = match kind {
                IDENTIFY => (
                    "POST",
                    "/api/identify".to_string(),
                    self.files[photo].clone(),
                    None,
                ),
                LIST => ("GET", "/api/people".to_string(), Vec::new(), None),
                ENROLL => {
                    let name = format!("c{id}-{j}");
                    let tag = (id as u32) << 20 | j as u32;
                    let png = unique_png(&self.images[photo], tag);
                    ("POST", format!("/api/people/{name}"), png, Some(name))
                }
                _ => {
                    let name = log.live.last().cloned();
                    let path = format!(
                        "/api/people/{}",
                        name.clone().unwrap_or_else(|| format!("c{id}-nobody"))
                    );
                    ("DELETE", path, Vec::new(), name)
                }
            };
            let t0 = Instant::now();
            let a = http.call(method, &path, &body);
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            progress.inc(1);
            let a = match a {
                Ok(a) => a,
                Err(e) => {
                    log.error(format!("{method} {path}: {e}"));
                    continue;
                }
            };
            if a.status == 503 {
                log.shed[kind] += 1;
                let wait = a.retry_after.unwrap_or(1) as f32 * self.p.retry_after_scale;
                std::thread::sleep(Duration::from_secs_f32(wait.max(0.0)));
                continue;
            }
            log.ms[kind].push(ms);
            let json: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
            let ok = match (kind, a.status) {
                (IDENTIFY, 200) => json["faces"].is_array(),
                (LIST, 200) => json["people"].is_array(),
                (ENROLL, 200) if json["enrolled"] == 1 => {
                    log.live.extend(name);
                    true
                }
                (REMOVE, 200) if name.is_some() => {
                    log.live.pop();
                    log.removed.extend(name);
                    true
                }
                (REMOVE, 404) => name.is_none(),
                _ => false,
            };
            if !ok {
                let text = String::from_utf8_lossy(&a.body);
                log.error(format!(
                    "{method} {path}: {} {}",
                    a.status,
                    text.chars().take(200).collect::<String>()
                ));
            }
        }
        log
    }

    /// Streams frames over one WebSocket until `stop`, as the page does: a frame, its
    /// answer, then the next frame at the stream's rate.
    fn stream(
        &self,
        id: usize,
        addr: SocketAddr,
        token: Option<&str>,
        stop: &AtomicBool,
    ) -> (StreamReport, Vec<f64>, ClientLog) {
        let mut log = ClientLog::default();
        let mut rep = StreamReport::default();
        let mut ms = Vec::new();
        let url = match token {
            Some(t) => format!("ws://{addr}/ws?token={t}"),
            None => format!("ws://{addr}/ws"),
        };
        let mut ws = match tungstenite::connect(&url) {
            Ok((ws, _)) => ws,
            Err(e) => {
                log.error(format!("WebSocket {id}: {e}"));
                return (rep, ms, log);
            }
        };
        let gap = Duration::from_secs_f32(1.0 / self.p.ws_fps);
        let frame = &self.files[id % self.files.len()];
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            next = Instant::now() + gap;
            let t0 = Instant::now();
            if let Err(e) = ws.send(tungstenite::Message::binary(frame.clone())) {
                log.error(format!("WebSocket {id}: sending: {e}"));
                break;
            }
            rep.sent += 1;
            let reply = loop {
                match ws.read() {
                    Ok(tungstenite::Message::Text(t)) => break Ok(t.to_string()),
                    Ok(_) => continue,
                    Err(e) => break Err(e),
                }
            };
            let v: serde_json::Value = match reply {
                Ok(t) => serde_json::from_str(&t).unwrap_or_default(),
                Err(e) => {
                    log.error(format!("WebSocket {id}: reading: {e}"));
                    break;
                }
            };
            match v["type"].as_str() {
                Some("result") => ms.push(t0.elapsed().as_secs_f64() * 1e3),
                Some("dropped") => rep.dropped += 1,
                Some("error") if v["error"].as_str().is_some_and(|e| e.contains("deadline")) => {
                    rep.results.shed += 1
                }
                _ => log.error(format!("WebSocket {id}: {v}")),
            }
        }
        let _ = ws.close(None);
        let _ = ws.flush();
        (rep, ms, log)
    }

    /// Starts a server with `cfg` over the engine `start` builds, enrols the seed people,
    /// runs the load, stops the server, and checks the gallery: against the answers through
    /// the API, and with [`Gallery::check`] when `gallery` (the engine's database) is given.
    pub fn run<E: Engine + 'static>(
        &self,
        cfg: ServeConfig,
        start: impl FnOnce() -> recog::Result<E> + Send + 'static,
        gallery: Option<&Path>,
        progress: &dyn Progress,
    ) -> Result<LoadReport, ServeError> {
        let server = crate::spawn(cfg, start)?;
        let (addr, token) = (server.addr, server.token.clone());
        let token = token.as_deref();
        progress.message(&format!("serving on {addr}"));
        let mut expected: Vec<String> = Vec::new();
        let mut seeder = Http::new(addr, token);
        for i in 0..self.p.seed_people {
            let name = format!("seed-{i}");
            let png = unique_png(&self.images[i % self.images.len()], u32::MAX - i as u32);
            loop {
                let a = seeder
                    .call("POST", &format!("/api/people/{name}"), &png)
                    .map_err(|e| ServeError(format!("enrolling {name}: {e}")))?;
                match a.status {
                    200 => break,
                    503 => std::thread::sleep(Duration::from_millis(200)),
                    s => {
                        return Err(ServeError(format!(
                            "enrolling {name}: {s} {}",
                            String::from_utf8_lossy(&a.body)
                        )))
                    }
                }
            }
            expected.push(name);
        }
        progress.start("requests", (self.p.clients * self.p.requests) as u64);
        let stop = AtomicBool::new(false);
        let t0 = Instant::now();
        let (logs, streams) = std::thread::scope(|sc| {
            let streams: Vec<_> = (0..self.p.ws_streams)
                .map(|i| {
                    let stop = &stop;
                    sc.spawn(move || self.stream(i, addr, token, stop))
                })
                .collect();
            let clients: Vec<_> = (0..self.p.clients)
                .map(|i| sc.spawn(move || self.client(i, addr, token, progress)))
                .collect();
            let logs: Vec<ClientLog> = clients
                .into_iter()
                .map(|c| c.join().unwrap_or_else(|_| panicked()))
                .collect();
            stop.store(true, Ordering::Relaxed);
            let streams: Vec<_> = streams
                .into_iter()
                .map(|s| {
                    s.join()
                        .unwrap_or_else(|_| (StreamReport::default(), Vec::new(), panicked()))
                })
                .collect();
            (logs, streams)
        });
        let seconds = t0.elapsed().as_secs_f64();
        progress.finish();
        // The gallery as the API sees it, before the server stops.
        let listed = seeder
            .call("GET", "/api/people", &[])
            .map_err(|e| ServeError(format!("listing people: {e}")))?;
        let listed: serde_json::Value = serde_json::from_slice(&listed.body).unwrap_or_default();
        let mut people: Vec<(String, u64)> = listed["people"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["photos"].as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        server.stop()?;
        let check = match gallery {
            Some(db) => {
                let g = Gallery::open(db).map_err(|e| ServeError(e.to_string()))?;
                // The database itself, after the server closed it, is what counts.
                people = g
                    .list()
                    .map_err(|e| ServeError(e.to_string()))?
                    .into_iter()
                    .map(|p| (p.name, p.photos as u64))
                    .collect();
                Some(g.check().map_err(|e| ServeError(e.to_string()))?)
            }
            None => None,
        };

        let mut rep = LoadReport {
            clients: self.p.clients,
            requests: self.p.requests,
            ws_streams: self.p.ws_streams,
            seconds,
            people: people.len(),
            check,
            ..Default::default()
        };
        let mut all_ms = Vec::new();
        let mut by_kind: [Vec<f64>; 4] = Default::default();
        let mut shed = [0; 4];
        let mut removed = Vec::new();
        for mut l in logs.into_iter().chain(streams.iter().map(|s| ClientLog {
            errors: s.2.errors.clone(),
            error_count: s.2.error_count,
            ..Default::default()
        })) {
            for k in 0..4 {
                all_ms.extend_from_slice(&l.ms[k]);
                by_kind[k].append(&mut l.ms[k]);
                shed[k] += l.shed[k];
            }
            rep.errors += l.error_count;
            for e in l.errors {
                if rep.error_samples.len() < 10 {
                    rep.error_samples.push(e);
                }
            }
            expected.append(&mut l.live);
            removed.append(&mut l.removed);
        }
        let [identify, list, enroll, remove] = by_kind;
        rep.identify = Latency::of(identify, shed[IDENTIFY]);
        rep.list = Latency::of(list, shed[LIST]);
        rep.enroll = Latency::of(enroll, shed[ENROLL]);
        rep.remove = Latency::of(remove, shed[REMOVE]);
        rep.all = Latency::of(all_ms, shed.iter().sum());
        rep.throughput = rep.all.answered as f64 / seconds.max(1e-9);
        let mut stream = StreamReport::default();
        let mut frame_ms = Vec::new();
        for (s, ms, _) in &streams {
            stream.sent += s.sent;
            stream.dropped += s.dropped;
            stream.results.shed += s.results.shed;
            frame_ms.extend_from_slice(ms);
        }
        stream.results = Latency::of(frame_ms, stream.results.shed);
        rep.streams = stream;

        expected.sort();
        people.sort();
        removed.sort();
        // Every answered enrolment once, with its one photo; every answered removal gone.
        rep.lost = expected
            .iter()
            .filter(|n| people.binary_search_by(|(p, _)| p.cmp(n)).is_err())
            .count()
            + removed
                .iter()
                .filter(|n| people.binary_search_by(|(p, _)| p.cmp(n)).is_ok())
                .count();
        rep.duplicated = people
            .iter()
            .filter(|(n, photos)| *photos != 1 || expected.binary_search(n).is_err())
            .count();
        // 0 where /proc is missing.
        rep.peak_rss_mb = recog::bench::train::peak_rss_kb().map_or(0.0, |kb| kb as f64 / 1024.0);
        Ok(rep)
    }
}

/// A client thread that panicked: one error, so the report cannot pass.
fn panicked() -> ClientLog {
    let mut l = ClientLog::default();
    l.error("a client thread panicked".into());
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Photos of random noise: the stub engine only decodes them.
    fn photos(dir: &Path, n: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| {
                let img = image::RgbImage::from_fn(40, 30, |x, y| {
                    image::Rgb([(x * 7 + i as u32) as u8, (y * 5) as u8, 9])
                });
                let p = dir.join(format!("{i}.png"));
                img.save(&p).unwrap();
                p
            })
            .collect()
    }

    /// The first full run's 3 errors: the enrolment photos of clients 2 and 18 were the same.
    #[test]
    fn enrolment_photos_of_clients_16_apart_differ() {
        let img = image::RgbImage::new(4, 4);
        let tag = |id: u32, j: u32| id << 20 | j;
        assert_ne!(
            unique_png(&img, tag(2, 336)),
            unique_png(&img, tag(18, 336))
        );
    }

    #[test]
    fn a_load_over_the_stub_engine_loses_and_duplicates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = LoadParams {
            clients: 6,
            requests: 60,
            ws_streams: 2,
            photos: photos(dir.path(), 3),
            seed_people: 2,
            retry_after_scale: 0.0,
            ..Default::default()
        }
        .check()
        .unwrap();
        let cfg = ServeConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            queue: 2,
            ..Default::default()
        };
        let r = p
            .run(
                cfg,
                || Ok(crate::fuzzing::StubEngine::default()),
                None,
                &recog::NoProgress,
            )
            .unwrap();
        assert!(r.passed(), "{r}");
        assert_eq!(r.all.answered + r.all.shed, 6 * 60, "{r}");
        assert!(r.enroll.answered > 0 && r.remove.answered > 0, "{r}");
        assert!(r.streams.sent > 0, "{r}");
    }
}
