//! The three examples of `crates/recog/examples`, run as a user would run them, on small
//! data: their doc comments quote this output, so it must stay true.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/examples/<name>`, built by `cargo test` beside this test.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    profile_dir.join("examples").join(name)
}

fn run(name: &str, args: &[&Path]) -> String {
    let o = Command::new(example(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running example {name}: {e}"));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{name} failed: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn lfw() -> Option<PathBuf> {
    let dir = recog::Home::from_env().data_dir("lfw").join("images");
    if dir.join("Colin_Powell").is_dir() {
        Some(dir)
    } else {
        common::skip("LFW under RECOG_HOME/data");
        None
    }
}

#[test]
fn train_folder_learns_rendered_letters() {
    let out = run("train_folder", &[]);
    let acc: f64 = out
        .split("1-NN accuracy ")
        .nth(1)
        .and_then(|s| s.split('%').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in {out}"));
    assert!(acc >= 90.0, "{out}");
    assert!(out.contains("epoch 3: train loss"), "{out}");
}

#[test]
fn verify_tells_one_person_from_two() {
    let Some(l) = lfw() else { return };
    let powell = l.join("Colin_Powell/Colin_Powell_0001.jpg");
    let out = run(
        "verify",
        &[&powell, &l.join("Colin_Powell/Colin_Powell_0002.jpg")],
    );
    assert!(out.contains("same person"), "{out}");
    let out = run(
        "verify",
        &[&powell, &l.join("Tony_Blair/Tony_Blair_0001.jpg")],
    );
    assert!(out.contains("different people"), "{out}");
}

#[test]
fn gallery_names_an_enrolled_person_and_not_a_stranger() {
    let Some(l) = lfw() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (person, photo) in [("Colin_Powell", 1), ("Tony_Blair", 1)] {
        let d = dir.path().join("people").join(person);
        std::fs::create_dir_all(&d).unwrap();
        let f = format!("{person}_{photo:04}.jpg");
        std::fs::copy(l.join(person).join(&f), d.join(&f)).unwrap();
    }
    let people = dir.path().join("people");
    let db = dir.path().join("g.sqlite");
    let out = run(
        "gallery",
        &[&people, &l.join("Tony_Blair/Tony_Blair_0002.jpg"), &db],
    );
    assert!(out.contains("enrolled Tony_Blair: 1 photo(s)"), "{out}");
    assert!(out.contains(": Tony_Blair (distance"), "{out}");
    let out = run(
        "gallery",
        &[
            &people,
            &l.join("Serena_Williams/Serena_Williams_0001.jpg"),
            &db,
        ],
    );
    assert!(out.contains("1 already enrolled, skipped"), "{out}");
    assert!(out.contains(": unknown (distance"), "{out}");
}
