//! End-to-end tests of `recog face ...` on real LFW photos and the pretrained models of
//! `RECOG_HOME` (CI: `../shared`); they say so and pass when the models are not there.

use std::path::Path;

mod common;
use common::{home, postgres_db, recog};

fn lfw(home: &Path, rel: &str) -> String {
    home.join("data/lfw/images")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn verify_says_same_for_one_person_and_different_for_two() {
    let Some(h) = home() else { return };
    let a = lfw(&h, "Colin_Powell/Colin_Powell_0001.jpg");
    let b = lfw(&h, "Colin_Powell/Colin_Powell_0002.jpg");
    let c = lfw(&h, "Serena_Williams/Serena_Williams_0001.jpg");
    let same = recog(&["face", "verify", &a, &b, "--json"], &h);
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&same.stdout).unwrap();
    assert_eq!(v["same"], true, "{v}");
    let diff = recog(&["face", "verify", &a, &c, "--json"], &h);
    let v: serde_json::Value = serde_json::from_slice(&diff.stdout).unwrap();
    assert_eq!(v["same"], false, "{v}");
    assert!(v["distance"].as_f64().unwrap() > v["threshold"].as_f64().unwrap());
}

#[test]
fn detect_writes_json_and_annotations_and_reports_bad_files() {
    let Some(h) = home() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.jpg");
    std::fs::write(&bad, b"not a jpeg").unwrap();
    let good = lfw(&h, "Tony_Blair/Tony_Blair_0001.jpg");
    let ann = dir.path().join("ann");
    let out = recog(
        &[
            "face",
            "detect",
            &good,
            bad.to_str().unwrap(),
            "--annotate",
            ann.to_str().unwrap(),
        ],
        &h,
    );
    // One unreadable file: the other still gets its answer, and the exit code says so.
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.jpg") && stderr.contains("error:"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["faces"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["faces"][0]["keypoints"].as_array().unwrap().len(), 6);
    assert!(v[1]["error"].is_string());
    assert!(ann.join("Tony_Blair_0001.faces.png").exists());
    let haar = recog(&["face", "detect", "--detector", "haar", &good], &h);
    assert!(haar.status.success());
    let v: serde_json::Value = serde_json::from_slice(&haar.stdout).unwrap();
    assert_eq!(v[0]["faces"].as_array().unwrap().len(), 1, "{v}");
}

#[test]
fn embed_writes_npy_and_finetune_saves_a_projection() {
    let Some(h) = home() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A tiny identity folder: 3 people x 2 photos.
    let data = dir.path().join("people");
    let mut files = Vec::new();
    for person in ["Colin_Powell", "Tony_Blair", "Serena_Williams"] {
        std::fs::create_dir_all(data.join(person)).unwrap();
        for i in 1..=2 {
            let name = format!("{person}_{i:04}.jpg");
            let dst = data.join(person).join(&name);
            std::fs::copy(lfw(&h, &format!("{person}/{name}")), &dst).unwrap();
            files.push(dst.to_string_lossy().into_owned());
        }
    }
    let npy = dir.path().join("e.npy");
    let mut args = vec!["face", "embed", "--npy", npy.to_str().unwrap()];
    args.extend(files.iter().map(String::as_str));
    let out = recog(&args, &h);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&npy).unwrap();
    assert!(bytes.starts_with(b"\x93NUMPY"));
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert!(
        String::from_utf8_lossy(&bytes[10..10 + header_len]).contains("(6, 192)"),
        "the default network is 192-d"
    );
    assert_eq!(bytes.len(), 10 + header_len + 6 * 192 * 4);
    let proj = dir.path().join("proj");
    let out = recog(
        &[
            "face",
            "finetune",
            data.to_str().unwrap(),
            "--out",
            proj.to_str().unwrap(),
            "--steps",
            "20",
            "--json",
        ],
        &h,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["people"], 3);
    assert!(proj.join("projection.bpk").exists() && proj.join("projection.json").exists());
    let out = recog(
        &[
            "face",
            "verify",
            &files[0],
            &files[1],
            "--projection",
            proj.to_str().unwrap(),
            "--json",
        ],
        &h,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["distance"].as_f64().unwrap().is_finite());
}

#[test]
fn gallery_enroll_calibrate_identify_remove() {
    let Some(h) = home() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.sqlite");
    gallery_flow(&h, dir.path(), db.to_str().unwrap());
}

/// The same commands on a PostgreSQL gallery: the same answers, with `--index hnsw`
/// searched by pgvector on the server.
#[test]
fn gallery_enroll_calibrate_identify_remove_on_postgres() {
    let Some(h) = home() else { return };
    let Some(url) = postgres_db("flow") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    gallery_flow(&h, dir.path(), &url);
}

fn gallery_flow(h: &Path, dir: &Path, db_s: &str) {
    let h = h.to_path_buf();
    let sqlite = !db_s.starts_with("postgres");
    for (name, photos) in [
        (
            "Colin Powell",
            vec![
                "Colin_Powell/Colin_Powell_0001.jpg",
                "Colin_Powell/Colin_Powell_0002.jpg",
            ],
        ),
        ("Tony Blair", vec!["Tony_Blair/Tony_Blair_0001.jpg"]),
        (
            "Serena Williams",
            vec!["Serena_Williams/Serena_Williams_0001.jpg"],
        ),
    ] {
        let paths: Vec<String> = photos.iter().map(|p| lfw(&h, p)).collect();
        let mut args = vec!["gallery", "enroll", name, "--db", db_s];
        args.extend(paths.iter().map(String::as_str));
        let o = recog(&args, &h);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // A photo of someone else under an enrolled name is enrolled with a warning, compared with
    // the photos already stored.
    let o = recog(
        &[
            "gallery",
            "enroll",
            "Tony Blair",
            &lfw(&h, "Serena_Williams/Serena_Williams_0002.jpg"),
            "--db",
            db_s,
        ],
        &h,
    );
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("far from Tony Blair's other photos"), "{err}");
    assert!(
        recog(&["gallery", "remove", "Tony Blair", "--db", db_s], &h)
            .status
            .success()
    );
    let o = recog(
        &[
            "gallery",
            "enroll",
            "Tony Blair",
            &lfw(&h, "Tony_Blair/Tony_Blair_0001.jpg"),
            "--db",
            db_s,
        ],
        &h,
    );
    assert!(o.status.success());
    let cal = recog(
        &[
            "gallery",
            "calibrate",
            "--far",
            "0.01",
            "--db",
            db_s,
            "--json",
        ],
        &h,
    );
    assert!(
        cal.status.success(),
        "{}",
        String::from_utf8_lossy(&cal.stderr)
    );
    let ann = dir.join("ann");
    let o = recog(
        &[
            "identify",
            &lfw(&h, "Colin_Powell/Colin_Powell_0003.jpg"),
            &lfw(&h, "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"),
            "--db",
            db_s,
            "--json",
            "--annotate",
            ann.to_str().unwrap(),
        ],
        &h,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["faces"][0]["name"], "Colin Powell", "{v}");
    assert!(
        v[1]["faces"][0]["name"].is_null(),
        "a person never enrolled is unknown: {v}"
    );
    // The default rule is the ratio test: unknown means the ratio is over the threshold or
    // the distance over the default network's (MobileFaceNet's) verification distance.
    let u = &v[1]["faces"][0];
    assert_eq!(u["rule"], "ratio", "{v}");
    assert!(
        u["ratio"].as_f64().unwrap() > u["threshold"].as_f64().unwrap()
            || u["distance"].as_f64().unwrap() > 1.06,
        "{v}"
    );
    // Calibration from a labelled folder of strangers, on the distance rule.
    let strangers = dir.join("strangers");
    for p in [
        "Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
        "Aaron_Guiel/Aaron_Guiel_0001.jpg",
        "Aaron_Patterson/Aaron_Patterson_0001.jpg",
    ] {
        let to = strangers.join(p);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(lfw(&h, p), &to).unwrap();
    }
    let o = recog(
        &[
            "gallery",
            "calibrate",
            "--from",
            strangers.to_str().unwrap(),
            "--rule",
            "distance",
            "--db",
            db_s,
            "--json",
        ],
        &h,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["impostors"], 3, "{c}");
    assert_eq!(c["rule"], "distance");
    assert_eq!(c["source"], strangers.to_str().unwrap());
    // FAR 1% of 3 scores accepts none: the threshold lies under the nearest stranger.
    let o = recog(
        &[
            "identify",
            &lfw(&h, "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"),
            "--db",
            db_s,
            "--json",
        ],
        &h,
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v[0]["faces"][0]["name"].is_null(), "{v}");
    assert_eq!(v[0]["faces"][0]["rule"], "distance", "{v}");
    // Searched through an HNSW graph, the answers are the exact search's to the bit; an
    // SQLite gallery keeps the graph beside the database.
    let both = [
        lfw(&h, "Colin_Powell/Colin_Powell_0003.jpg"),
        lfw(&h, "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"),
    ];
    let answers = |index: &str| {
        let o = recog(
            &[
                "identify", &both[0], &both[1], "--db", db_s, "--json", "--index", index,
            ],
            &h,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let exact = answers("exact");
    let graph = std::path::Path::new(&format!("{db_s}.hnsw")).to_path_buf();
    assert!(!graph.exists());
    assert_eq!(answers("hnsw"), exact);
    assert_eq!(graph.exists(), sqlite);
    let check = recog(&["gallery", "check", "--db", db_s, "--json"], &h);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let c: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(
        (c["people"].as_u64(), c["embeddings"].as_u64()),
        (Some(3), Some(4)),
        "{c}"
    );
    assert!(ann.join("Colin_Powell_0003.identified.png").exists());
    let rm = recog(&["gallery", "remove", "Colin Powell", "--db", db_s], &h);
    assert!(rm.status.success());
    let l = recog(&["gallery", "list", "--db", db_s, "--json"], &h);
    let v: serde_json::Value = serde_json::from_slice(&l.stdout).unwrap();
    assert_eq!(v["people"].as_array().unwrap().len(), 2, "{v}");
    let again = recog(&["gallery", "remove", "Colin Powell", "--db", db_s], &h);
    assert_eq!(again.status.code(), Some(1));
}

/// `gallery export` from SQLite and `import` into PostgreSQL, then back into a new SQLite
/// file: the same people, and embeddings equal to the bit (the JSON files are identical).
#[test]
fn gallery_moves_between_sqlite_and_postgres() {
    let Some(h) = home() else { return };
    let Some(url) = postgres_db("move") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lite = dir.path().join("a.sqlite");
    let lite_s = lite.to_str().unwrap();
    let o = recog(
        &[
            "gallery",
            "enroll",
            "Colin Powell",
            &lfw(&h, "Colin_Powell/Colin_Powell_0001.jpg"),
            &lfw(&h, "Colin_Powell/Colin_Powell_0002.jpg"),
            "--db",
            lite_s,
        ],
        &h,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = recog(
        &[
            "gallery",
            "enroll",
            "Tony Blair",
            &lfw(&h, "Tony_Blair/Tony_Blair_0001.jpg"),
            "--db",
            lite_s,
        ],
        &h,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let file = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let o = recog(args, &h);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    run(&["gallery", "export", &file("a.json"), "--db", lite_s]);
    let said = run(&["gallery", "import", &file("a.json"), "--db", &url]);
    assert!(said.contains("imported 3 photo(s)"), "{said}");
    run(&["gallery", "export", &file("b.json"), "--db", &url]);
    assert_eq!(
        std::fs::read(file("a.json")).unwrap(),
        std::fs::read(file("b.json")).unwrap()
    );
    let back = file("c.sqlite");
    run(&["gallery", "import", &file("b.json"), "--db", &back]);
    run(&["gallery", "export", &file("c.json"), "--db", &back]);
    assert_eq!(
        std::fs::read(file("a.json")).unwrap(),
        std::fs::read(file("c.json")).unwrap()
    );
    let list = run(&["gallery", "list", "--db", &url, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v["people"][0]["name"], "Colin Powell", "{v}");
    assert_eq!(v["people"][0]["photos"], 2, "{v}");
    // A wrong server is an error naming it, with the password masked.
    let o = recog(
        &[
            "gallery",
            "list",
            "--db",
            "postgres://ann:secret@127.0.0.1:9/x",
        ],
        &h,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.starts_with("error: ")
            && err.contains("ann:***@127.0.0.1:9")
            && !err.contains("secret"),
        "{err}"
    );
}

/// The same photo under a second name is refused, with the first name in the warning; the
/// same photo again under its own name is skipped and counted.
#[test]
fn a_photo_enrolled_twice_is_skipped_or_refused() {
    let Some(h) = home() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.sqlite");
    let db_s = db.to_str().unwrap();
    let photo = lfw(&h, "Colin_Powell/Colin_Powell_0001.jpg");
    let o = recog(
        &["gallery", "enroll", "Colin Powell", &photo, "--db", db_s],
        &h,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = recog(
        &["gallery", "enroll", "Colin Powell", &photo, "--db", db_s],
        &h,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("enrolled 0 photo(s)") && out.contains("1 already enrolled, skipped"),
        "{out}"
    );
    let o = recog(
        &["gallery", "enroll", "Someone Else", &photo, "--db", db_s],
        &h,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("already enrolled as Colin Powell"), "{err}");
    let l = recog(&["gallery", "list", "--db", db_s, "--json"], &h);
    let v: serde_json::Value = serde_json::from_slice(&l.stdout).unwrap();
    assert_eq!(v["people"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["people"][0]["photos"], 1, "{v}");
}

/// The default network is MobileFaceNet (verify names it, with its 1.06 distance), and a
/// gallery made with dlib's ResNet keeps that network: later commands query it without the
/// flag, and a query with the default network is refused with the gallery's model named.
#[test]
fn a_dlib_gallery_keeps_its_network_under_the_mobilefacenet_default() {
    let Some(h) = home() else { return };
    let same = recog(
        &[
            "face",
            "verify",
            &lfw(&h, "Colin_Powell/Colin_Powell_0001.jpg"),
            &lfw(&h, "Colin_Powell/Colin_Powell_0002.jpg"),
            "--json",
        ],
        &h,
    );
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&same.stdout).unwrap();
    assert_eq!(v["same"], true, "{v}");
    assert_eq!(v["model"], "mobilefacenet", "{v}");
    assert!(
        (v["threshold"].as_f64().unwrap() - 1.06).abs() < 1e-6,
        "{v}"
    );

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.sqlite");
    let db_s = db.to_str().unwrap();
    for (name, photo) in [
        ("Colin Powell", "Colin_Powell/Colin_Powell_0001.jpg"),
        ("Tony Blair", "Tony_Blair/Tony_Blair_0001.jpg"),
        (
            "Serena Williams",
            "Serena_Williams/Serena_Williams_0001.jpg",
        ),
    ] {
        let o = recog(
            &[
                "gallery",
                "enroll",
                name,
                &lfw(&h, photo),
                "--db",
                db_s,
                "--face-model",
                "dlib",
            ],
            &h,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // No flag: the gallery's model is used, and its verification distance is the default
    // threshold of an uncalibrated gallery.
    let o = recog(
        &[
            "identify",
            &lfw(&h, "Colin_Powell/Colin_Powell_0003.jpg"),
            &lfw(&h, "Serena_Williams/Serena_Williams_0002.jpg"),
            &lfw(&h, "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"),
            "--db",
            db_s,
            "--json",
        ],
        &h,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["faces"][0]["name"], "Colin Powell", "{v}");
    assert_eq!(v[1]["faces"][0]["name"], "Serena Williams", "{v}");
    assert!(v[2]["faces"][0]["name"].is_null(), "{v}");
    assert!(
        (v[0]["faces"][0]["threshold"].as_f64().unwrap() - 0.6).abs() < 1e-6,
        "{v}"
    );
    // The other network is refused with the gallery's model named.
    let o = recog(
        &[
            "identify",
            &lfw(&h, "Colin_Powell/Colin_Powell_0003.jpg"),
            "--db",
            db_s,
            "--face-model",
            "mobilefacenet",
        ],
        &h,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("face-resnet-dlib") && err.contains("re-enrol"),
        "{err}"
    );
}

#[test]
fn eval_detect_writes_the_table_json_plot_and_sample_scenes() {
    let Some(h) = home() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A small LFW-shaped folder of real photos and two generated face-free backgrounds.
    for rel in [
        "Tony_Blair/Tony_Blair_0001.jpg",
        "Serena_Williams/Serena_Williams_0001.jpg",
        "Colin_Powell/Colin_Powell_0001.jpg",
    ] {
        let dst = dir.path().join("lfw/images").join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(lfw(&h, rel), &dst).unwrap();
    }
    let bg = dir.path().join("bg/sky");
    std::fs::create_dir_all(&bg).unwrap();
    for (i, tint) in [40u8, 160].into_iter().enumerate() {
        image::RgbImage::from_fn(900, 700, |x, y| {
            image::Rgb([tint, (x / 4 % 200) as u8, (y / 3 % 220) as u8])
        })
        .save(bg.join(format!("b{i}.png")))
        .unwrap();
    }
    let out = dir.path().join("report");
    let (lfw_dir, bg_dir) = (dir.path().join("lfw"), dir.path().join("bg"));
    let args = [
        "face",
        "eval-detect",
        "--lfw",
        lfw_dir.to_str().unwrap(),
        "--backgrounds",
        bg_dir.to_str().unwrap(),
        "--scenes",
        "3",
        "--face-free",
        "2",
        "--timing-images",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let r = recog(&with_json, &h);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["scenes"], 3);
    assert_eq!(v["face_free_images"], 2);
    assert!(v["faces"].as_u64().unwrap() >= 3, "{v}");
    let rows = v["detectors"].as_array().unwrap();
    let names: Vec<_> = rows
        .iter()
        .map(|d| d["detector"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["blazeface", "blazeface-pyramid", "haar"]);
    for d in rows {
        assert_eq!(d["recall_by_size"].as_array().unwrap().len(), 5);
        assert!(d["ms_640x480"].as_f64().unwrap() > 0.0);
    }
    for f in ["detect.json", "recall_by_size.png", "scene_0.jpg"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // The table, for one detector.
    let mut one = args.to_vec();
    one.extend(["--detectors", "haar"]);
    let t = recog(&one, &h);
    let text = String::from_utf8_lossy(&t.stdout);
    assert!(text.contains("haar") && text.contains("FP/free"), "{text}");
    assert!(!text.contains("blazeface"), "{text}");

    // No face-free photos: an error that says what is missing.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut bad = args.to_vec();
    bad[5] = empty.to_str().unwrap();
    let e = recog(&bad, &h);
    assert!(!e.status.success());
    let stderr = String::from_utf8_lossy(&e.stderr);
    assert!(
        stderr.contains("error:") && stderr.contains("face-free"),
        "{stderr}"
    );
}

/// `recog bench gallery`, small: the graph agrees with the exact search on a synthetic
/// gallery, and the report says so in JSON.
#[test]
fn bench_gallery_reports_graph_against_exact() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path();
    let o = recog(
        &[
            "bench", "gallery", "--n", "3000", "--probes", "200", "--json",
        ],
        h,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["photos"], 6000, "{v}");
    assert!(
        v["hnsw"]["points"][0]["recall_at_1"].as_f64().unwrap() >= 0.99,
        "{v}"
    );
    assert!(
        v["hnsw"]["points"][0]["decision_agreement"]
            .as_f64()
            .unwrap()
            >= 0.99,
        "{v}"
    );
    assert!(
        v["exact_identification_rate"].as_f64().unwrap() > 0.95,
        "{v}"
    );
}

/// `recog gallery eval-lfw` on the first people of LFW: the figures come with 95% bootstrap
/// intervals that hold them, in the table and in JSON, and `--reuse` scores the saved
/// embeddings to the same figures and intervals (the resampling has a fixed seed).
#[test]
fn gallery_eval_lfw_reports_intervals_that_reuse_reproduces() {
    let Some(h) = home() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("openset");
    let args = [
        "gallery",
        "eval-lfw",
        "--limit-people",
        "6",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    let first = recog(&args, &h);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(v["embeddings_reused"], false);
    for rule in ["distance_rule", "ratio_rule"] {
        let r = &v[rule];
        assert_eq!(r["enrolled"], 6, "{r}");
        assert_eq!(r["unknown_probes"], 6, "{r}");
        for (figure, interval) in [
            ("dir_at_threshold", "dir_interval"),
            ("unknown_rejected_at_threshold", "unknown_rejected_interval"),
        ] {
            let x = r[figure].as_f64().unwrap();
            let iv: Vec<f64> = r[interval]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert!(
                iv[0] <= x && x <= iv[1],
                "{rule} {figure} {x} outside {iv:?}"
            );
        }
    }
    assert!(out.join("openset.json").is_file() && out.join("dir_far.png").is_file());

    let mut again = args.to_vec();
    again.push("--reuse");
    let second = recog(&again, &h);
    assert!(second.status.success());
    let w: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(w["embeddings_reused"], true);
    for rule in ["distance_rule", "ratio_rule"] {
        for key in [
            "dir_at_threshold",
            "dir_interval",
            "unknown_rejected_interval",
        ] {
            assert_eq!(v[rule][key], w[rule][key], "{rule} {key}");
        }
    }
    // The table names what the brackets are.
    let text = recog(
        &args[..args.len() - 1]
            .iter()
            .copied()
            .chain(["--reuse"])
            .collect::<Vec<_>>(),
        &h,
    );
    let t = String::from_utf8_lossy(&text.stdout);
    assert!(
        t.contains("95% intervals") && t.contains("bootstrap"),
        "{t}"
    );
}
