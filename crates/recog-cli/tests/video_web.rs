//! End-to-end tests of `recog watch`, `recog gallery capture` and `recog serve` on real LFW
//! photos: videos are made from them with FFmpeg, and the web page runs in headless Chromium
//! with a fake camera fed from a y4m file.
//!
//! The browser test drives the page through the Chrome DevTools Protocol: it checks that the
//! names come back and are drawn (the page's report and the canvas pixels), enrols the face on
//! screen with the page's form and removes it with the gallery's button.
//! `RECOG_SCREENSHOT=FILE` saves a screenshot of the page (README's `docs/serve_page.png`).
//!
//! They need the face models and LFW in `RECOG_HOME` (CI: `../shared`; skipped with a message
//! without them), and `ffmpeg` and `chromium` on PATH (`.ci/run` installs both; a missing
//! program fails the test rather than skipping it, unless RECOG_SKIP_BROWSER=1 is set for the
//! browser test).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{home, recog};

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `recog watch`'s output: one JSON object per frame.
fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn lfw(home: &Path, name: &str, n: u32) -> String {
    home.join(format!("data/lfw/images/{name}/{name}_{n:04}.jpg"))
        .to_string_lossy()
        .into_owned()
}

/// A 640x480 clip of `seconds` at 25 fps from one still photo, letterboxed like a webcam.
fn clip(photo: &str, seconds: u32, out: &Path) {
    let o = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-loop", "1", "-i", photo])
        .args(["-t", &seconds.to_string(), "-r", "25"])
        .args([
            "-vf",
            "scale=-2:480,pad=640:480:(ow-iw)/2:0",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(out)
        .output()
        .expect("ffmpeg must be installed (Debian: apt install ffmpeg)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn concat(parts: &[&Path], out: &Path) {
    let list = out.with_extension("txt");
    let text: String = parts
        .iter()
        .map(|p| format!("file '{}'\n", p.display()))
        .collect();
    std::fs::write(&list, text).unwrap();
    let o = Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-y",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
        ])
        .arg(&list)
        .args(["-c", "copy"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn watch_names_the_people_of_a_video_and_capture_enrols_from_one() {
    let Some(h) = home() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.sqlite");
    let db = db.to_str().unwrap();
    for (name, n) in [("George_W_Bush", 1), ("Colin_Powell", 1), ("Tony_Blair", 1)] {
        ok(&recog(
            &["gallery", "enroll", name, &lfw(&h, name, n), "--db", db],
            &h,
        ));
    }
    // Two seconds of Bush, then a cut to Powell at the same place in the frame.
    let (a, b, v) = (
        dir.path().join("a.mp4"),
        dir.path().join("b.mp4"),
        dir.path().join("v.mp4"),
    );
    clip(&lfw(&h, "George_W_Bush", 3), 2, &a);
    clip(&lfw(&h, "Colin_Powell", 2), 2, &b);
    concat(&[&a, &b], &v);
    let ann = dir.path().join("annotated.mp4");
    let summary = dir.path().join("summary.json");
    let out = ok(&recog(
        &[
            "watch",
            v.to_str().unwrap(),
            "--db",
            db,
            "--out",
            ann.to_str().unwrap(),
            "--summary",
            summary.to_str().unwrap(),
        ],
        &h,
    ));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 100, "one JSON line per frame");
    let name = |l: &serde_json::Value| l["faces"][0]["name"].as_str().map(str::to_string);
    for l in &lines[..50] {
        assert_eq!(name(l).as_deref(), Some("George_W_Bush"), "{l}");
    }
    // The cut changes the face's appearance, so a new track starts and the vote of the old
    // one does not carry Bush's name onto Powell.
    for l in &lines[50..] {
        assert_eq!(name(l).as_deref(), Some("Colin_Powell"), "{l}");
    }
    assert_ne!(
        lines[49]["faces"][0]["track"],
        lines[50]["faces"][0]["track"]
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["frames"], 100);
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(640), Some(480))
    );
    assert!(s["fps"].as_f64().unwrap() > 0.0);
    // The annotated video decodes to as many frames.
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&ann)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "640,480,100");

    // Capture: Blair's clip stands in for the webcam; the crops are saved and enrolled, and a
    // different photo of him is then named.
    let c = dir.path().join("c.mp4");
    clip(&lfw(&h, "Tony_Blair", 2), 2, &c);
    let db2 = dir.path().join("cap.sqlite");
    let crops = dir.path().join("crops");
    let out = ok(&recog(
        &[
            "gallery",
            "capture",
            "Blair_cam",
            "--source",
            c.to_str().unwrap(),
            "--count",
            "3",
            "--db",
            db2.to_str().unwrap(),
            "--out",
            crops.to_str().unwrap(),
        ],
        &h,
    ));
    assert!(out.contains("captured 3 face(s)"), "{out}");
    assert_eq!(std::fs::read_dir(&crops).unwrap().count(), 3);
    let out = ok(&recog(
        &[
            "identify",
            &lfw(&h, "Tony_Blair", 3),
            "--db",
            db2.to_str().unwrap(),
            "--json",
        ],
        &h,
    ));
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer[0]["faces"][0]["name"], "Blair_cam", "{answer}");

    // A stream URL: the same video served over HTTP on loopback. Streams are live sources,
    // which drop the frames the recogniser cannot keep up with, so only names are checked.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let video = std::fs::read(&v).unwrap();
    // FFprobe (for the frame rate) and FFmpeg each connect; the thread ends with the test.
    std::thread::spawn(move || {
        for mut sock in listener.incoming().flatten() {
            let mut req = [0u8; 4096];
            let _ = sock.read(&mut req);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                video.len()
            );
            let _ = sock.write_all(head.as_bytes());
            let _ = sock.write_all(&video);
        }
    });
    let url = format!("http://127.0.0.1:{port}/v.mp4");
    let out = ok(&recog(&["watch", &url, "--db", db], &h));
    let names: std::collections::BTreeSet<String> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|l| l["faces"][0]["name"].as_str().map(str::to_string))
        .collect();
    assert!(names.contains("George_W_Bush"), "{names:?}");

    // A missing source is a one-line error naming it.
    let o = recog(&["watch", "/nonexistent/video.mp4", "--db", db], &h);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("error: video /nonexistent/video.mp4: no such file"),
        "{err}"
    );
}

#[test]
fn watch_tracks_and_names_two_small_faces() {
    let Some(h) = home() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.sqlite");
    let db = db.to_str().unwrap();
    for name in ["George_W_Bush", "Colin_Powell"] {
        ok(&recog(
            &["gallery", "enroll", name, &lfw(&h, name, 1), "--db", db],
            &h,
        ));
    }
    // Three seconds at 25 fps, 640x480: two other photos of them, scaled so the faces are
    // about 50 px wide (an LFW face is about 110 px of the 250), drifting towards each other.
    let v = dir.path().join("two.mp4");
    let o = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("color=c=0x507050:s=640x480:r=25:d=3")
        .args(["-loop", "1", "-i", &lfw(&h, "George_W_Bush", 3)])
        .args(["-loop", "1", "-i", &lfw(&h, "Colin_Powell", 2)])
        .args([
            "-filter_complex",
            "[1]scale=114:114[a];[2]scale=114:114[b];\
             [0][a]overlay=x='60+30*t':y=170:shortest=1[t];[t][b]overlay=x='460-30*t':y=150:shortest=1",
            "-t",
            "3",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&v)
        .output()
        .expect("ffmpeg must be installed (Debian: apt install ffmpeg)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = dir.path().join("summary.json");
    let out = ok(&recog(
        &[
            "watch",
            v.to_str().unwrap(),
            "--db",
            db,
            "--summary",
            summary.to_str().unwrap(),
        ],
        &h,
    ));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 75, "one JSON line per frame");
    // The full detector on one frame in 10 (the default); the others follow the faces.
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["detected"].as_bool(), Some(i % 10 == 0), "frame {i}");
    }
    let mut both = 0;
    let mut tracks = std::collections::BTreeMap::new();
    for l in &lines {
        let faces = l["faces"].as_array().unwrap();
        let names: std::collections::BTreeSet<&str> =
            faces.iter().filter_map(|f| f["name"].as_str()).collect();
        if names.contains("George_W_Bush") && names.contains("Colin_Powell") {
            both += 1;
        }
        for f in faces {
            if let Some(n) = f["name"].as_str() {
                tracks
                    .entry(n.to_string())
                    .or_insert_with(std::collections::BTreeSet::new)
                    .insert(f["track"].as_u64().unwrap());
            }
        }
    }
    // Both named in nearly every frame, each by one track (a vote needs a few frames).
    assert!(both >= 70, "both named in {both} of 75 frames");
    assert_eq!(tracks.len(), 2, "{tracks:?}");
    assert!(tracks.values().all(|t| t.len() == 1), "{tracks:?}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    eprintln!("two 50 px faces: {:.1} fps", s["fps"].as_f64().unwrap());
    assert!(s["fps"].as_f64().unwrap() > 0.0);
}

/// A tiny HTTP/1.1 client: (status, body).
fn http(addr: &str, method: &str, path: &str, headers: &[&str], body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // A server may answer (413) before reading a large body, and close.
    let _ = s.write_all(body);
    // Read to the end of the body: by Content-Length where the server gives one (Chromium's
    // DevTools server keeps the connection open despite `Connection: close`), else to EOF.
    let mut resp = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        resp.extend_from_slice(&buf[..n]);
        if let Some(p) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&resp[..p]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if len.is_some_and(|len| resp.len() >= p + 4 + len) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&resp);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(resp.len(), |p| p + 4);
    let mut body = resp[split..].to_vec();
    if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol]).unwrap_or("0").trim();
        let n = usize::from_str_radix(size, 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[(eol + 4 + n).min(b.len())..];
    }
    out
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(body)))
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `recog serve ARGS` (RECOG_TOKEN unset) and returns it with its first stdout line,
/// which names the address.
fn serve(home: &Path, args: &[&str]) -> (Kill, String) {
    let mut server = Kill(
        Command::new(env!("CARGO_BIN_EXE_recog"))
            .arg("serve")
            .args(args)
            .env("RECOG_HOME", home)
            .env_remove("RECOG_TOKEN")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    (server, first)
}

/// `recog bench serve`, small: the load test over the real engine (face detection and
/// embedding on LFW photos) with a queue of 2, so some requests are shed; every answered
/// enrolment is in the gallery once, every answered removal gone, and the gallery is clean.
#[test]
fn bench_serve_over_the_real_engine_loses_and_duplicates_nothing() {
    let Some(h) = home() else { return };
    let dir = tempfile::tempdir().unwrap();
    for n in 1..=4 {
        let from = lfw(&h, "Tony_Blair", n);
        std::fs::copy(from, dir.path().join(format!("{n}.jpg"))).unwrap();
    }
    let o = recog(
        &[
            "bench",
            "serve",
            "--photos",
            dir.path().to_str().unwrap(),
            "--clients",
            "4",
            "--requests",
            "12",
            "--ws",
            "1",
            "--seed-people",
            "2",
            "--queue",
            "2",
            "--retry-after-scale",
            "0.1",
            "--json",
        ],
        &h,
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["lost"], 0, "{v}");
    assert_eq!(v["duplicated"], 0, "{v}");
    assert_eq!(
        v["all"]["answered"].as_u64().unwrap() + v["all"]["shed"].as_u64().unwrap(),
        48,
        "{v}"
    );
    assert!(v["enroll"]["answered"].as_u64().unwrap() > 0, "{v}");
    assert!(v["streams"]["sent"].as_u64().unwrap() > 0, "{v}");
    // The command exits non-zero unless the gallery check after the run was clean.
    assert!(v["check"].is_object(), "{v}");
}

/// Beyond loopback without `--token`, the server makes a token up and prints it, and every
/// endpoint answers 401 without it: the page, the WebSocket, identify, people, enrol,
/// remove, thumbnails and stats (people's names and face crops are biometric data).
#[test]
fn serve_beyond_loopback_requires_a_token_on_every_endpoint() {
    let Some(h) = home() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.sqlite");
    let (_server, first) = serve(&h, &["--addr", "0.0.0.0:0", "--db", db.to_str().unwrap()]);
    let (addr, token) = first
        .trim()
        .trim_start_matches("recog serve: http://0.0.0.0:")
        .split_once("/?token=")
        .unwrap_or_else(|| panic!("no token in {first:?}"));
    assert_eq!(token.len(), 32, "{first}");
    let addr = format!("127.0.0.1:{addr}");
    let ws = [
        "Connection: Upgrade",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    let endpoints: [(&str, &str, &[&str]); 8] = [
        ("GET", "/", &[]),
        ("GET", "/ws", &ws),
        ("POST", "/api/identify", &[]),
        ("GET", "/api/people", &[]),
        ("POST", "/api/people/x", &[]),
        ("DELETE", "/api/people/x", &[]),
        ("GET", "/api/people/x/thumbnail", &[]),
        ("GET", "/api/stats", &[]),
    ];
    for (method, path, headers) in endpoints {
        let (st, _) = http(&addr, method, path, headers, b"");
        assert_eq!(st, 401, "{method} {path} without the token");
        let (st, _) = http(
            &addr,
            method,
            path,
            &[headers, &["Authorization: Bearer wrong"]].concat(),
            b"",
        );
        assert_eq!(st, 401, "{method} {path} with a wrong token");
    }
    let (st, _) = http(&addr, "GET", &format!("/?token={token}"), &[], b"");
    assert_eq!(st, 200, "the printed address opens the page");
    // The upgraded socket stays open: read the status line only.
    let mut sock = TcpStream::connect(&addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let req = format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: {addr}\r\n{}\r\n\r\n",
        ws.join("\r\n")
    );
    sock.write_all(req.as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(&sock).read_line(&mut line).unwrap();
    assert!(
        line.starts_with("HTTP/1.1 101"),
        "the page's WebSocket carries the token in its query: {line}"
    );
    let bearer = format!("Authorization: Bearer {token}");
    let (st, _) = http(&addr, "GET", "/api/people", &[&bearer], b"");
    assert_eq!(st, 200);
    let (st, _) = http(
        &addr,
        "DELETE",
        &format!("/api/people/x?token={token}"),
        &[],
        b"",
    );
    assert_eq!(st, 404, "authorised, and x is not in the gallery");
}

#[test]
fn serve_api_and_the_page_in_headless_chromium_with_a_fake_camera() {
    let Some(h) = home() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.sqlite");
    ok(&recog(
        &[
            "gallery",
            "enroll",
            "Colin_Powell",
            &lfw(&h, "Colin_Powell", 1),
            "--db",
            db.to_str().unwrap(),
        ],
        &h,
    ));
    let (_server, first) = serve(
        &h,
        &[
            "--addr",
            "127.0.0.1:0",
            "--token",
            "s3cret",
            "--max-upload-mib",
            "1",
            "--db",
            db.to_str().unwrap(),
        ],
    );
    assert!(
        first.starts_with("recog serve: http://127.0.0.1:"),
        "{first}"
    );
    let url = first.trim().trim_start_matches("recog serve: ").to_string();
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();

    // JSON API: with a token, every endpoint needs it, loopback or not.
    const AUTH: [&str; 1] = ["Authorization: Bearer s3cret"];
    let (st, _) = http(&addr, "GET", "/api/people", &[], b"");
    assert_eq!(st, 401, "listing needs the token");
    let (st, body) = http(&addr, "GET", "/api/people", &AUTH, b"");
    assert_eq!(st, 200);
    assert_eq!(json(&body)["people"][0]["name"], "Colin_Powell");
    let (st, _) = http(
        &addr,
        "GET",
        "/api/people/Colin_Powell/thumbnail",
        &AUTH,
        b"",
    );
    assert_eq!(st, 200);
    let photo = std::fs::read(lfw(&h, "Colin_Powell", 3)).unwrap();
    let (st, body) = http(&addr, "POST", "/api/identify", &AUTH, &photo);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let v = json(&body);
    assert_eq!(v["faces"][0]["name"], "Colin_Powell", "{v}");
    let (st, body) = http(&addr, "POST", "/api/identify", &AUTH, b"not an image");
    assert_eq!(st, 400);
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("cannot decode image"));
    let (st, _) = http(&addr, "POST", "/api/identify", &AUTH, &vec![0u8; 2 << 20]);
    assert_eq!(st, 413, "uploads over --max-upload-mib are refused");
    let blair = std::fs::read(lfw(&h, "Tony_Blair", 1)).unwrap();
    let (st, _) = http(&addr, "POST", "/api/people/Tony_Blair", &[], &blair);
    assert_eq!(st, 401, "enrolment needs the token");
    let (st, body) = http(
        &addr,
        "POST",
        "/api/people/Tony_Blair",
        &["Authorization: Bearer s3cret"],
        &blair,
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    // The server took names with a slash that `recog gallery capture` refused: one rule now.
    let (st, body) = http(
        &addr,
        "POST",
        "/api/people/Tony%2FBlair",
        &["Authorization: Bearer s3cret"],
        &blair,
    );
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&body));
    // A photo already enrolled under another name is the caller's mistake, not a crash.
    let (st, body) = http(
        &addr,
        "POST",
        "/api/people/Someone_Else",
        &["Authorization: Bearer s3cret"],
        &blair,
    );
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("already enrolled as Tony_Blair"));
    let (st, _) = http(&addr, "DELETE", "/api/people/Tony_Blair", &[], b"");
    assert_eq!(st, 401);
    let (st, _) = http(
        &addr,
        "DELETE",
        "/api/people/Tony_Blair?token=s3cret",
        &[],
        b"",
    );
    assert_eq!(st, 200);
    let (_, body) = http(&addr, "GET", "/api/people", &AUTH, b"");
    assert_eq!(json(&body)["people"].as_array().unwrap().len(), 1);

    // The page, in headless Chromium, with Powell's photo as the camera.
    if std::env::var_os("RECOG_SKIP_BROWSER").is_some() {
        eprintln!("RECOG_SKIP_BROWSER set: not running the browser part");
        return;
    }
    let y4m = dir.path().join("camera.y4m");
    let o = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-loop", "1", "-i"])
        .arg(lfw(&h, "Colin_Powell", 2))
        .args(["-t", "2", "-r", "10"])
        .args([
            "-vf",
            "scale=-2:480,pad=640:480:(ow-iw)/2:0",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&y4m)
        .output()
        .expect("ffmpeg must be installed");
    assert!(o.status.success());
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("chromium must be installed (Debian: apt install chromium)");
    let mut chrome = Kill(
        Command::new(browser)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                "--remote-debugging-port=0",
                "--window-size=1100,760",
            ])
            .arg(format!(
                "--use-file-for-fake-video-capture={}",
                y4m.display()
            ))
            .arg(format!(
                "--user-data-dir={}",
                dir.path().join("chrome").display()
            ))
            // The printed URL carries the token; the page passes it on.
            .arg(&url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut cdp = Cdp::attach(&mut chrome.0, &addr);
    let started = Instant::now();
    let t0 = Instant::now();
    let mut last = serde_json::Value::Null;
    let mut drawn_ok = false;
    while t0.elapsed() < Duration::from_secs(180) {
        let (_, body) = http(
            &addr,
            "GET",
            "/api/stats",
            &["Authorization: Bearer s3cret"],
            b"",
        );
        last = json(&body);
        let drawn: Vec<String> = last["last_drawn"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if last["drawn_frames"].as_u64().unwrap_or(0) >= 3
            && drawn.iter().any(|l| l.starts_with("Colin_Powell 0."))
        {
            drawn_ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        drawn_ok,
        "the page did not draw Colin_Powell within 180 s; last stats: {last}"
    );
    // The box and the label background are drawn in the accepted-face green: count its pixels
    // on the canvas itself.
    let green = cdp.eval(
        "(() => { const c = document.getElementById('view'); \
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; \
         for (let i = 0; i < d.length; i += 4) \
           if (Math.abs(d[i] - 40) < 6 && Math.abs(d[i + 1] - 200) < 6 && Math.abs(d[i + 2] - 60) < 6) n++; \
         return n; })()",
    );
    assert!(green.as_u64().unwrap_or(0) > 1000, "green pixels: {green}");
    if let Some(path) = std::env::var_os("RECOG_SCREENSHOT") {
        let shot = cdp.call(
            "Page.captureScreenshot",
            serde_json::json!({"format": "png"}),
        );
        let png = base64_decode(shot["data"].as_str().unwrap_or(""));
        std::fs::write(path, png).unwrap();
    }
    eprintln!(
        "page drew the name after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Enrol the face on screen through the page's form, then remove it with its button.
    cdp.eval(
        "document.getElementById('name').value = 'Powell_web'; \
         document.getElementById('enroll').requestSubmit(); true",
    );
    let people = |addr: &str| -> Vec<(String, u64)> {
        let (_, body) = http(
            addr,
            "GET",
            "/api/people",
            &["Authorization: Bearer s3cret"],
            b"",
        );
        json(&body)["people"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["photos"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let t0 = Instant::now();
    while !people(&addr).contains(&("Powell_web".to_string(), 1)) {
        if t0.elapsed() > Duration::from_secs(60) {
            let status = cdp.eval("document.getElementById('notice').textContent");
            panic!("not enrolled: {:?}; page status: {status}", people(&addr));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let t0 = Instant::now();
    while !cdp
        .eval("document.getElementById('people').textContent")
        .as_str()
        .unwrap_or("")
        .contains("Powell_web (1)")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the gallery list did not show the new person"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    cdp.eval(
        "[...document.querySelectorAll('#people li')] \
           .find(li => li.textContent.includes('Powell_web')).querySelector('button').click(); true",
    );
    let t0 = Instant::now();
    while people(&addr).iter().any(|p| p.0 == "Powell_web") {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "remove did not happen"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A Chrome DevTools Protocol session on the page.
struct Cdp {
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    id: u64,
}

impl Cdp {
    /// Reads the DevTools port from Chromium's stderr and attaches to the page served by
    /// `server` (stderr keeps being drained so Chromium never blocks on it).
    fn attach(chrome: &mut Child, server: &str) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = chrome.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("DevTools listening on ws://").nth(1) {
                    let _ = tx.send(rest.split('/').next().unwrap_or("").to_string());
                }
            }
        });
        let devtools = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("Chromium did not print its DevTools address");
        let t0 = Instant::now();
        let ws_url = loop {
            let (_, body) = http(&devtools, "GET", "/json/list", &[], b"");
            let list: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let page = list.as_array().and_then(|a| {
                a.iter().find(|t| {
                    t["type"] == "page" && t["url"].as_str().unwrap_or("").contains(server)
                })
            });
            if let Some(u) = page.and_then(|p| p["webSocketDebuggerUrl"].as_str()) {
                break u.to_string();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "no page target: {list}"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let (ws, _) = tungstenite::connect(ws_url.as_str()).unwrap();
        Self { ws, id: 0 }
    }

    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.id += 1;
        let msg = serde_json::json!({"id": self.id, "method": method, "params": params});
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .unwrap();
        loop {
            let m = self.ws.read().unwrap();
            if let Ok(t) = m.to_text() {
                let v: serde_json::Value = serde_json::from_str(t).unwrap_or_default();
                if v["id"].as_u64() == Some(self.id) {
                    assert!(v["error"].is_null(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    fn eval(&mut self, expr: &str) -> serde_json::Value {
        let r = self.call(
            "Runtime.evaluate",
            serde_json::json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(r["exceptionDetails"].is_null(), "{expr}: {r}");
        r["result"]["value"].clone()
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= (val(c) as u32) << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

/// `watch` and `serve` on a PostgreSQL gallery: watch names the person of a clip through
/// pgvector's index; the server lists, enrols (committed on the server before it answers,
/// so a second process sees it), identifies and removes.
#[test]
fn watch_and_serve_on_a_postgres_gallery() {
    let Some(h) = home() else { return };
    let Some(db) = common::postgres_db("watch_serve") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (name, n) in [("George_W_Bush", 1), ("Colin_Powell", 1)] {
        ok(&recog(
            &["gallery", "enroll", name, &lfw(&h, name, n), "--db", &db],
            &h,
        ));
    }
    let v = dir.path().join("v.mp4");
    clip(&lfw(&h, "George_W_Bush", 3), 1, &v);
    let out = ok(&recog(
        &["watch", v.to_str().unwrap(), "--db", &db, "--index", "hnsw"],
        &h,
    ));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 25, "one JSON line per frame");
    assert!(
        lines
            .iter()
            .all(|l| l["faces"][0]["name"] == "George_W_Bush"),
        "{out}"
    );

    let (_server, first) = serve(&h, &["--addr", "127.0.0.1:0", "--db", &db]);
    let url = first.trim().trim_start_matches("recog serve: ").to_string();
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let (st, body) = http(&addr, "GET", "/api/people", &[], b"");
    assert_eq!(st, 200, "{first}");
    assert_eq!(json(&body)["people"].as_array().unwrap().len(), 2);
    let blair = std::fs::read(lfw(&h, "Tony_Blair", 1)).unwrap();
    let (st, body) = http(&addr, "POST", "/api/people/Tony_Blair", &[], &blair);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let l = ok(&recog(&["gallery", "list", "--db", &db, "--json"], &h));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&l).unwrap()["people"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "another process sees the server's enrolment: {l}"
    );
    let probe = std::fs::read(lfw(&h, "Tony_Blair", 2)).unwrap();
    let (st, body) = http(&addr, "POST", "/api/identify", &[], &probe);
    assert_eq!(st, 200);
    assert_eq!(
        json(&body)["faces"][0]["name"],
        "Tony_Blair",
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (st, _) = http(&addr, "DELETE", "/api/people/Colin_Powell", &[], b"");
    assert_eq!(st, 200);
    let (_, body) = http(&addr, "GET", "/api/people", &[], b"");
    assert_eq!(json(&body)["people"].as_array().unwrap().len(), 2);
}
