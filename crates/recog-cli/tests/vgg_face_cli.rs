//! VGG-Face end to end, on a generated file with the notebook's layout
//! (`tools/reference/vgg_face_reference.py`, reduced width): `recog models add vgg-face`,
//! then `--face-model vgg-face` (2622-d) and `vgg-face-fc7` on the face commands, and a
//! gallery that keeps the network. Needs python3 with numpy and h5py, and the face models.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::home;

fn generate(dir: &Path, args: &[&str]) -> PathBuf {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/reference/vgg_face_reference.py");
    let ok = Command::new("python3")
        .arg(script)
        .arg(dir)
        .args(args)
        .status()
        .expect("python3 is needed for this test (with numpy and h5py)")
        .success();
    assert!(ok, "the reference script failed: pip install numpy h5py");
    dir.join("vgg_face_weights.h5")
}

/// `recog` with a writable models folder searched before the installed ones.
fn run(args: &[&str], h: &Path, models: &Path) -> Output {
    let mut path = vec![models.to_path_buf()];
    path.extend(
        std::env::var_os("RECOG_MODEL_PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default(),
    );
    Command::new(env!("CARGO_BIN_EXE_recog"))
        .args(args)
        .env("RECOG_HOME", h)
        .env("RECOG_OFFLINE", "1")
        .env("RECOG_MODEL_PATH", std::env::join_paths(path).unwrap())
        .output()
        .expect("run recog")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn vgg_face_is_added_then_used_by_the_face_commands() {
    let Some(h) = home() else { return };
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let lfw = |f: &str| h.join("data/lfw/images").join(f).display().to_string();
    let (a, b) = (
        lfw("Colin_Powell/Colin_Powell_0001.jpg"),
        lfw("Colin_Powell/Colin_Powell_0002.jpg"),
    );

    // Before it is added, the error says how to add it.
    let o = run(
        &["face", "verify", &a, &b, "--face-model", "vgg-face"],
        &h,
        &models,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("recog models add vgg-face"),
        "{}",
        text(&o)
    );

    let file = generate(dir.path(), &["--width-div", "16"]);
    let o = run(
        &["models", "add", "vgg-face", file.to_str().unwrap()],
        &h,
        &models,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("conv widths 4..32, fc 256, 2622 identities"),
        "{}",
        text(&o)
    );
    let o = run(&["models", "list"], &h, &models);
    assert!(
        text(&o)
            .lines()
            .any(|l| l.starts_with("vgg-face") && l.contains("added")),
        "{}",
        text(&o)
    );

    let o = run(
        &["face", "embed", &a, "--face-model", "vgg-face", "--json"],
        &h,
        &models,
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let e: Vec<f64> = serde_json::from_value(v[0]["embedding"].clone()).unwrap();
    assert_eq!(e.len(), 2622);
    let norm = e.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!(
        (norm - 1.0).abs() < 1e-4,
        "unit length for the cosine metric: {norm}"
    );
    let o = run(
        &[
            "face",
            "embed",
            &a,
            "--face-model",
            "vgg-face-fc7",
            "--json",
        ],
        &h,
        &models,
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v[0]["embedding"].as_array().unwrap().len(),
        256,
        "fc7 of the reduced file"
    );

    let o = run(
        &[
            "face",
            "verify",
            &a,
            &a,
            "--face-model",
            "vgg-face",
            "--json",
        ],
        &h,
        &models,
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["distance"].as_f64().unwrap() < 1e-4, "{v}");
    assert!(
        (v["threshold"].as_f64().unwrap() - 0.8944).abs() < 1e-3,
        "{v}"
    );
    assert_eq!(v["model"], "vgg-face", "{v}");

    // A measured verification distance is recorded and used.
    let o = run(
        &[
            "models",
            "add",
            "vgg-face",
            file.to_str().unwrap(),
            "--verification-distance",
            "0.7",
        ],
        &h,
        &models,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(
        &[
            "face",
            "verify",
            &a,
            &b,
            "--face-model",
            "vgg-face",
            "--json",
        ],
        &h,
        &models,
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!((v["threshold"].as_f64().unwrap() - 0.7).abs() < 1e-6, "{v}");

    // A gallery made with it keeps it.
    let db = dir.path().join("g.sqlite");
    let db_s = db.to_str().unwrap();
    let o = run(
        &[
            "gallery",
            "enroll",
            "Colin Powell",
            &a,
            "--db",
            db_s,
            "--face-model",
            "vgg-face",
        ],
        &h,
        &models,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["identify", &b, "--db", db_s, "--json"], &h, &models);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(
        &[
            "identify",
            &b,
            "--db",
            db_s,
            "--face-model",
            "mobilefacenet",
        ],
        &h,
        &models,
    );
    assert!(
        !o.status.success() && text(&o).contains("vgg-face"),
        "{}",
        text(&o)
    );

    // Another layout is refused, naming the tensor.
    let bad = dir.path().join("bad.h5");
    std::fs::write(&bad, b"not hdf5").unwrap();
    let o = run(
        &["models", "add", "vgg-face", bad.to_str().unwrap()],
        &h,
        &models,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("HDF5"), "{}", text(&o));
}
