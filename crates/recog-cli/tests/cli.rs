//! End-to-end tests of the `recog` binary on tiny data generated here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn recog(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recog"))
        .args(args)
        .env("RECOG_HOME", home)
        .env("RECOG_DATA_MIRROR", "http://127.0.0.1:1/nothing-here")
        .output()
        .expect("the recog binary runs")
}

fn idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Three easy classes of 28x28 images: a horizontal bar, a vertical bar, a box, each at a
/// jittered position.
fn write_toy_set(dir: &Path, n_train: usize, n_test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n, seed) in [("train", n_train, 1u64), ("t10k", n_test, 2u64)] {
        let mut px = vec![0u8; n * 784];
        let mut labels = vec![0u8; n];
        let mut s = seed;
        let mut rnd = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as usize
        };
        for i in 0..n {
            let c = i % 3;
            labels[i] = c as u8;
            let (oy, ox) = (8 + rnd() % 6, 8 + rnd() % 6);
            let img = &mut px[i * 784..(i + 1) * 784];
            for t in 0..10 {
                match c {
                    0 => img[(oy + 4) * 28 + ox + t] = 255,
                    1 => img[(oy + t) * 28 + ox + 4] = 255,
                    _ => {
                        img[oy * 28 + ox + t] = 255;
                        img[(oy + 9) * 28 + ox + t] = 255;
                        img[(oy + t) * 28 + ox] = 255;
                        img[(oy + t) * 28 + ox + 9] = 255;
                    }
                }
            }
        }
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            gz(&idx(&[n, 28, 28], &px)),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            idx(&[n], &labels),
        )
        .unwrap();
    }
}

fn stdout_json(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

const TRAIN: &[&str] = &[
    "train",
    "--dim",
    "8",
    "--p",
    "3",
    "--k",
    "4",
    "--epochs",
    "2",
    "--steps-per-epoch",
    "4",
    "--json",
];

/// The stderr of a run that must fail with an `error: ` line naming `needle`.
fn error_naming(o: &Output, needle: &str) -> String {
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
    err
}

/// `recog train` with [`TRAIN`]'s tiny settings on `data` into `out`, plus `extra`: its JSON.
fn train_toy(data: &str, out: &str, extra: &[&str], cwd: &Path) -> serde_json::Value {
    let mut args = TRAIN.to_vec();
    args.extend(["--data", data, "--out", out]);
    args.extend(extra);
    stdout_json(&recog(&args, cwd))
}

#[test]
fn train_eval_plot_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("toy");
    write_toy_set(&data, 90, 30);
    let run = tmp.path().join("run");
    let v = train_toy(
        data.to_str().unwrap(),
        run.to_str().unwrap(),
        &[],
        tmp.path(),
    );
    let epochs = v["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    assert!(epochs[1]["train_loss"].as_f64().unwrap() >= 0.0);
    for f in ["config.json", "model.bpk", "optimizer.bpk", "metrics.jsonl"] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );

    let o = recog(
        &[
            "eval",
            "--model",
            run.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--json",
        ],
        tmp.path(),
    );
    let m = stdout_json(&o);
    assert_eq!(m["queries"], 30);
    assert_eq!(m["references"], 90);
    for k in [
        "knn1_accuracy",
        "knn5_accuracy",
        "precision_at_1",
        "map_at_r",
    ] {
        let x = m[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{k} = {x}");
    }

    let o = recog(
        &[
            "plot",
            "--model",
            run.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--json",
        ],
        tmp.path(),
    );
    let p = stdout_json(&o);
    assert_eq!(p["files"].as_array().unwrap().len(), 6);
    for f in [
        "loss.png",
        "loss.svg",
        "embedding.png",
        "embedding.svg",
        "sprite.png",
        "sprite.svg",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
}

#[test]
fn train_with_a_prototype_loss_records_it_and_adds_it_to_the_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("toy");
    write_toy_set(&data, 60, 15);
    let d = data.to_str().unwrap();
    let first_loss = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let v = train_toy(d, out.to_str().unwrap(), extra, tmp.path());
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        (v["epochs"][0]["train_loss"].as_f64().unwrap(), cfg)
    };
    let (plain, cfg) = first_loss("plain", &[]);
    assert!(cfg.get("prototype").is_none(), "{cfg}");
    let (with, cfg) = first_loss(
        "proto",
        &["--prototype-weight", "1", "--prototype-scale", "4"],
    );
    assert_eq!(cfg["prototype"]["weight"], 1.0);
    assert_eq!(cfg["prototype"]["scale"], 4.0);
    // Three classes with nearly equal means at the start: the softmax term is near ln 3,
    // far above the triplet loss with its margin of 0.2.
    assert!(with > plain + 0.3, "{with} vs {plain}");

    let o = recog(
        &[
            "train",
            "--data",
            d,
            "--prototype-weight=-1",
            "--out",
            tmp.path().join("bad").to_str().unwrap(),
        ],
        tmp.path(),
    );
    error_naming(&o, "prototype loss weight");
}

#[test]
fn same_seed_same_loss_and_resume_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("toy");
    write_toy_set(&data, 60, 15);
    let d = data.to_str().unwrap();
    let mut losses = Vec::new();
    let mut first_epoch = Vec::new();
    for name in ["a", "b"] {
        let out = tmp.path().join(name);
        let v = train_toy(d, out.to_str().unwrap(), &[], tmp.path());
        losses.push(v["epochs"][1]["train_loss"].as_f64().unwrap());
        first_epoch.push(v["epochs"][0]["train_loss"].as_f64().unwrap());
    }
    assert_eq!(losses[0], losses[1], "same seed, different loss");

    // One epoch, then --resume to two, equals two straight epochs.
    let out = tmp.path().join("c");
    let o = out.to_str().unwrap();
    train_toy(d, o, &["--stop-after", "1"], tmp.path());
    let v = train_toy(d, o, &["--resume"], tmp.path());
    assert_eq!(v["epochs"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["epochs"][0]["train_loss"].as_f64().unwrap(),
        first_epoch[0]
    );
    assert_eq!(
        v["epochs"][1]["train_loss"].as_f64().unwrap(),
        losses[0],
        "resume diverged"
    );

    // A different seed gives a different run.
    let out = tmp.path().join("e");
    let v = train_toy(d, out.to_str().unwrap(), &["--seed", "7"], tmp.path());
    assert_ne!(v["epochs"][1]["train_loss"].as_f64().unwrap(), losses[0]);
}

/// The second block's convolutions are saved and loaded with the rest: a two-block run
/// stopped after one epoch and resumed ends where the straight run does, and evaluation
/// loads it.
#[test]
fn a_two_block_trunk_saves_resumes_and_evaluates() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("toy");
    write_toy_set(&data, 60, 15);
    let d = data.to_str().unwrap();
    let straight = tmp.path().join("straight");
    let v = train_toy(
        d,
        straight.to_str().unwrap(),
        &["--blocks", "2"],
        tmp.path(),
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(straight.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["net"]["blocks"], 2, "{cfg}");
    let resumed = tmp.path().join("resumed");
    let r = resumed.to_str().unwrap();
    train_toy(d, r, &["--blocks", "2", "--stop-after", "1"], tmp.path());
    let w = train_toy(d, r, &["--blocks", "2", "--resume"], tmp.path());
    assert_eq!(
        w["epochs"][1]["train_loss"].as_f64().unwrap(),
        v["epochs"][1]["train_loss"].as_f64().unwrap(),
        "resume diverged"
    );
    let plain = tmp.path().join("plain");
    let p = train_toy(d, plain.to_str().unwrap(), &[], tmp.path());
    assert_ne!(p["epochs"][1]["train_loss"], v["epochs"][1]["train_loss"]);

    let o = recog(&["eval", "--model", r, "--data", d, "--json"], tmp.path());
    let m = stdout_json(&o);
    assert_eq!(m["queries"], 15);
    let o = recog(
        &["train", "--data", d, "--blocks", "3", "--out", r],
        tmp.path(),
    );
    error_naming(&o, "blocks");
}

#[test]
fn broken_idx_files_give_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("toy");
    write_toy_set(&data, 30, 9);
    let img = data.join("train-images-idx3-ubyte.gz");
    let good = std::fs::read(&img).unwrap();
    let plain = idx(&[30, 28, 28], &vec![0u8; 30 * 784]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            plain[..plain.len() - 100].to_vec(),
            "truncated",
        ),
        (
            "magic",
            {
                let mut b = plain.clone();
                b[0] = 0x12;
                b
            },
            "magic",
        ),
        ("gzip", good[..good.len() / 2].to_vec(), "gzip"),
        (
            "count",
            idx(&[31, 28, 28], &vec![0u8; 31 * 784]),
            "31 images",
        ),
        (
            "dims",
            idx(&[30, 784], &vec![0u8; 30 * 784]),
            "wrong dimensions",
        ),
    ];
    for (name, bytes, needle) in cases {
        std::fs::write(&img, bytes).unwrap();
        let out = tmp.path().join("run");
        let o = recog(
            &[
                "train",
                "--data",
                data.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--epochs",
                "1",
            ],
            tmp.path(),
        );
        assert!(!o.status.success(), "{name}: should fail");
        let err = String::from_utf8_lossy(&o.stderr);
        let line = err.trim();
        assert_eq!(line.lines().count(), 1, "{name}: not one line: {err}");
        assert!(line.starts_with("error: "), "{name}: {err}");
        assert!(
            line.contains("train-images-idx3-ubyte.gz"),
            "{name}: file not named: {err}"
        );
        assert!(
            line.contains(needle),
            "{name}: problem not named ({needle}): {err}"
        );
    }
}

#[test]
fn missing_dataset_names_files_and_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let o = recog(&["data", "fetch", "fashion-mnist"], tmp.path());
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("train-images-idx3-ubyte.gz") && err.contains("fashion-mnist"),
        "{err}"
    );
    assert!(err.contains("put "), "{err}");
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("toy");
    write_toy_set(&data, 30, 9);
    let o = recog(
        &[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--p",
            "1",
            "--out",
            tmp.path().join("r").to_str().unwrap(),
        ],
        tmp.path(),
    );
    let err = error_naming(&o, "P >= 2");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let o = recog(
        &[
            "eval",
            "--model",
            tmp.path().join("nothing").to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: "));
}

/// burn panics on a `BURN_DEVICE` it cannot use ("Unknown BURN_DEVICE override", or a
/// backend whose feature this build lacks); recog reports it as an error naming the
/// backends it has, before any work, and takes the names in any case, as burn does.
#[test]
fn a_burn_device_this_build_lacks_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("nothing");
    let eval = |device: &str| {
        Command::new(env!("CARGO_BIN_EXE_recog"))
            .args(["eval", "--model", model.to_str().unwrap()])
            .env("RECOG_HOME", tmp.path())
            .env("BURN_DEVICE", device)
            .output()
            .expect("the recog binary runs")
    };
    for bad in ["gpu", "cuda-0"] {
        let o = eval(bad);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with("error: ")
                && err.contains(&format!("BURN_DEVICE={bad}: this build has flex")),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // A usable name passes the check: the error is then about the missing model.
    let o = eval("Flex");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.starts_with("error: ") && !err.contains("BURN_DEVICE"),
        "{err}"
    );
}

fn write_png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> u8) {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y)]))
        .save(path)
        .unwrap();
}

/// A toy digit set (`toy/`, 90 training and 30 test images) and an image folder of
/// unknowns (`unk/diag/`: 12 diagonal strokes) under `dir`.
fn write_digits_fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("toy");
    write_toy_set(&data, 90, 30);
    let unk = dir.join("unk");
    std::fs::create_dir_all(unk.join("diag")).unwrap();
    for i in 0..12u32 {
        write_png(
            &unk.join("diag").join(format!("{i}.png")),
            28,
            28,
            |x, y| if x + i % 3 == y { 255 } else { 0 },
        );
    }
    (data, unk)
}

/// `recog digits fit` on a toy set: 15 calibration digits, 2 head epochs, JSON out.
fn digits_fit(model: &str, data: &str, unk: &Path, cwd: &Path) -> Output {
    recog(
        &[
            "digits",
            "fit",
            "--model",
            model,
            "--data",
            data,
            "--unknown",
            unk.to_str().unwrap(),
            "--calibration",
            "15",
            "--head-epochs",
            "2",
            "--json",
        ],
        cwd,
    )
}

#[test]
fn digits_fit_predict_eval_and_checkpoint_guard() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, unk) = write_digits_fixture(tmp.path());
    let d = data.to_str().unwrap();
    let run = tmp.path().join("run");
    let r = run.to_str().unwrap();
    train_toy(d, r, &[], tmp.path());

    let o = digits_fit(r, d, &unk, tmp.path());
    let v = stdout_json(&o);
    assert!(v["threshold"].as_f64().unwrap() > 0.0);
    assert!(run.join("recognizer.json").exists());
    // D = 8: the defaults chosen by eval-logo for D > 3, the distance rule at 0.5%.
    assert_eq!(v["target_frr"], 0.005, "{v}");
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("recognizer.json")).unwrap())
            .unwrap();
    assert_eq!(rec["method"], "distance", "{rec:?}");

    // predict: a dark-on-light bar of another size, a corrupt file, a blank image.
    let good = tmp.path().join("bar.png");
    write_png(&good, 120, 90, |x, y| {
        if (40..50).contains(&x) && (20..70).contains(&y) {
            0
        } else {
            255
        }
    });
    let bad = tmp.path().join("bad.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let blank = tmp.path().join("blank.png");
    write_png(&blank, 30, 30, |_, _| 255);
    let o = recog(
        &[
            "digits",
            "predict",
            "--model",
            r,
            "--json",
            good.to_str().unwrap(),
            bad.to_str().unwrap(),
            blank.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(
        !o.status.success(),
        "a failed file must make the exit code non-zero"
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0]["answer"].is_string(), "{:?}", lines[0]);
    assert!(lines[0]["distance"].as_f64().is_some());
    assert!(lines[1]["error"].as_str().unwrap().contains("bad.png"));
    assert!(lines[2]["error"].as_str().unwrap().contains("blank"));

    // eval: every rule against each generator's evaluation part, confusion plots.
    let o = recog(
        &[
            "digits",
            "eval",
            "--model",
            r,
            "--data",
            d,
            "--generators",
            "glyphs,strokes",
            "--per-generator",
            "30",
            "--json",
        ],
        tmp.path(),
    );
    let v = stdout_json(&o);
    let reports = v["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2 * 7);
    let sets: Vec<&str> = reports
        .iter()
        .map(|r| r["unknown_set"].as_str().unwrap())
        .collect();
    assert!(
        sets.contains(&"glyphs") && sets.contains(&"strokes"),
        "{sets:?}"
    );
    for rep in reports {
        let au = rep["auroc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&au));
        assert_eq!(rep["confusion"].as_array().unwrap().len(), 4);
        // Per kind: each letter drawn, its count and share rejected, adding up to the set.
        let kinds = rep["by_kind"].as_array().unwrap();
        assert!(kinds.len() > 5, "{kinds:?}");
        let images: u64 = kinds.iter().map(|k| k["images"].as_u64().unwrap()).sum();
        assert_eq!(images, 30);
        assert!(kinds
            .iter()
            .all(|k| (0.0..=1.0).contains(&k["rejected"].as_f64().unwrap())));
    }
    for m in [
        "head",
        "distance",
        "both",
        "energy",
        "knn",
        "mahalanobis",
        "ensemble",
    ] {
        assert!(run.join(format!("confusion-{m}.png")).exists(), "{m}");
    }

    // Another checkpoint is refused.
    let other = tmp.path().join("other");
    train_toy(d, other.to_str().unwrap(), &["--seed", "9"], tmp.path());
    let o = recog(
        &[
            "digits",
            "predict",
            "--model",
            other.to_str().unwrap(),
            "--recognizer",
            run.join("recognizer.json").to_str().unwrap(),
            good.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("fit on the checkpoint"), "{err}");
}

/// A committee of two checkpoints: its embedding is both members' (twice the dimension), a
/// recognizer fits and answers on it, and a member trained again afterwards is refused. One
/// checkpoint with `--views shift1` is a committee of five views.
#[test]
fn digits_committee_fits_predicts_and_refuses_a_retrained_member() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, unk) = write_digits_fixture(tmp.path());
    let d = data.to_str().unwrap();
    let runs = tmp.path().join("runs");
    let member = |name: &str, seed: &str| {
        let out = runs.join(name);
        train_toy(d, out.to_str().unwrap(), &["--seed", seed], tmp.path());
        out
    };
    let a = member("a", "1");
    let b = member("b", "2");
    let c = runs.join("ab");
    let (sa, sb, sc) = (
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        c.to_str().unwrap(),
    );
    let o = recog(
        &[
            "digits",
            "committee",
            "--model",
            sa,
            "--model",
            sb,
            "--out",
            sc,
            "--json",
        ],
        tmp.path(),
    );
    let v = stdout_json(&o);
    assert_eq!(v["dim"], 16);
    // Kept relative, so that the runs folder can move as a whole.
    assert_eq!(v["members"][0]["checkpoint"], "../a");
    let o = recog(
        &["digits", "committee", "--model", sa, "--out", sc],
        tmp.path(),
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least two"));
    // One checkpoint with test-time views: five embeddings of each image, concatenated.
    let views = runs.join("a-views");
    let sv = views.to_str().unwrap();
    let o = recog(
        &[
            "digits",
            "committee",
            "--model",
            sa,
            "--views",
            "shift1",
            "--out",
            sv,
            "--json",
        ],
        tmp.path(),
    );
    let v = stdout_json(&o);
    assert_eq!(v["dim"], 40);
    assert_eq!(v["views"], "shift1");
    stdout_json(&digits_fit(sv, d, &unk, tmp.path()));
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(views.join("recognizer.json")).unwrap())
            .unwrap();
    assert_eq!(rec["dim"], 40);

    let o = digits_fit(sc, d, &unk, tmp.path());
    stdout_json(&o);
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.join("recognizer.json")).unwrap()).unwrap();
    assert_eq!(rec["dim"], 16);
    let bar = tmp.path().join("bar.png");
    write_png(
        &bar,
        60,
        60,
        |x, _| if (25..33).contains(&x) { 255 } else { 0 },
    );
    let predict = || {
        recog(
            &[
                "digits",
                "predict",
                "--model",
                sc,
                "--json",
                bar.to_str().unwrap(),
            ],
            tmp.path(),
        )
    };
    let o = predict();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    assert!(line["answer"].is_string(), "{line}");

    // The second member trained again: the committee no longer holds the weights it was
    // formed with.
    std::fs::remove_dir_all(&b).unwrap();
    member("b", "3");
    let o = predict();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("trained again"), "{err}");
}

fn write_npy(path: &Path, rows: &[Vec<f32>]) {
    let d = rows[0].len();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        rows.len(),
        d
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((header.len() as u16).to_le_bytes());
    b.extend(header.as_bytes());
    for r in rows {
        for v in r {
            b.extend(v.to_le_bytes());
        }
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn cluster_npy_finds_the_knee_and_writes_outputs() {
    let dir = tempfile::tempdir().unwrap();
    // Three well separated blobs of 10 points in 8-d.
    let mut rows = Vec::new();
    for c in 0..3 {
        for i in 0..10 {
            let mut r = vec![0f32; 8];
            r[c] = 10.0;
            r[3 + i % 5] += 0.1 * (i as f32 - 5.0) / 5.0;
            rows.push(r);
        }
    }
    let npy = dir.path().join("e.npy");
    write_npy(&npy, &rows);
    let out = dir.path().join("out");
    let o = recog(
        &[
            "cluster",
            npy.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = stdout_json(&o);
    assert_eq!(v["k_auto"], 3, "{v}");
    assert_eq!(v["k"], 3);
    for f in [
        "assignments.csv",
        "clusters.json",
        "scatter.png",
        "scatter.svg",
        "elbow.png",
        "elbow.svg",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let csv = std::fs::read_to_string(out.join("assignments.csv")).unwrap();
    assert_eq!(csv.lines().count(), 31);
    // Same seed, same assignment.
    let o2 = recog(
        &[
            "cluster",
            npy.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    );
    assert_eq!(
        std::fs::read_to_string(out.join("assignments.csv")).unwrap(),
        csv
    );
    assert!(o2.status.success());
    let agg = recog(
        &[
            "cluster",
            npy.to_str().unwrap(),
            "--method",
            "agglomerative",
            "--threshold",
            "3",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    );
    assert_eq!(stdout_json(&agg)["k"], 3);
    let forced = recog(
        &[
            "cluster",
            npy.to_str().unwrap(),
            "--k",
            "5",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    );
    assert_eq!(stdout_json(&forced)["k"], 5);
    assert!(std::fs::read_to_string(out.join("elbow.svg"))
        .unwrap()
        .contains("chosen: k = 5"));
    let bad = recog(
        &[
            "cluster",
            npy.to_str().unwrap(),
            "--k",
            "99",
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--k 99"));
}

/// A gallery of 20,000 people from an export (one transaction); listing it into a pipe that
/// closes after a few bytes (`| head`) ends quietly instead of panicking.
#[test]
fn import_a_large_export_and_list_into_a_closed_pipe() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let people: Vec<serde_json::Value> = (0..20_000)
        .map(|i| serde_json::json!({"name": format!("p{i:05}"), "photos": [["a.jpg", "h", [0.0, 1.0]]]}))
        .collect();
    let export = serde_json::json!({
        "model": {"name": "m", "sha256": "0", "dim": 2},
        "calibration": null,
        "people": people,
    });
    let file = dir.path().join("big.json");
    std::fs::write(&file, export.to_string()).unwrap();
    let db = dir.path().join("g.sqlite");
    let (f, d) = (file.to_str().unwrap(), db.to_str().unwrap());
    let o = recog(&["gallery", "import", f, "--db", d], dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("imported 20000 photo(s)"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_recog"))
        .args(["gallery", "list", "--db", d])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The read end is dropped here, like `head` exiting.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(&first[..6], b"p00000");
}
