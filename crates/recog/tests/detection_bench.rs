//! The detection benchmark on `RECOG_HOME`'s LFW and the installed background photos
//! (`recog data fetch backgrounds`), a smaller draw than the README's (seed 5, not the
//! tuning seed 1 or the README's 13). Skips when the data is missing, fails instead when
//! `RECOG_TEST_DATA=required` (as CI sets it).

use recog::eval::detection::{BenchParams, BenchReport, DetectorScore};
use recog::face::{DetectorKind, DetectorSettings};
use recog::{Home, NoProgress};

mod common;
use common::skip;

fn data() -> Option<(Home, Vec<std::path::PathBuf>, Vec<std::path::PathBuf>)> {
    let home = Home::from_env();
    let lfw = home.data_dir("lfw").join("images");
    if !lfw.is_dir() {
        skip("LFW under RECOG_HOME/data/lfw");
        return None;
    }
    let spec = recog::home::backgrounds::builtin_spec();
    let dir = home.backgrounds_dir(&spec);
    let bgs: Vec<_> = spec.files.iter().map(|f| dir.join(&f.name)).collect();
    if !bgs.iter().all(|p| p.is_file()) {
        skip("the background photos (recog data fetch backgrounds)");
        return None;
    }
    for k in DetectorKind::ALL {
        let e = recog::home::registry::entry(k.weights());
        if !home.model_file(e.files[0].install).is_file() {
            skip(&format!("the {} model", e.name));
            return None;
        }
    }
    let images = recog::data::folder::people(&lfw)
        .ok()?
        .into_iter()
        .flat_map(|(_, f)| f)
        .collect();
    Some((home, images, bgs))
}

fn row(r: &BenchReport, k: DetectorKind) -> &DetectorScore {
    r.detectors.iter().find(|d| d.detector == k).unwrap()
}

/// Recall over the buckets whose faces are at least `lo` px and below `hi`.
fn recall(d: &DetectorScore, lo: f32, hi: f32) -> f64 {
    let (mut n, mut f) = (0, 0);
    for b in d.recall_by_size.iter().filter(|b| b.lo >= lo && b.hi <= hi) {
        n += b.faces;
        f += b.found;
    }
    f as f64 / n.max(1) as f64
}

#[test]
fn the_pyramid_finds_the_small_faces_the_front_model_misses() {
    let Some((home, lfw, bgs)) = data() else {
        return;
    };
    let mut p = BenchParams::new(lfw, bgs);
    p.scenes = 30;
    p.face_free = 30;
    p.seed = 5;
    p.timing_images = 1;
    p.detectors = vec![DetectorKind::BlazeFace, DetectorKind::BlazeFacePyramid];
    let device = recog::default_device();
    let load = |k: DetectorKind| k.load(&home, &device, &DetectorSettings::default(), &NoProgress);
    let r = p.check().unwrap().run(&load, &NoProgress).unwrap();
    assert!(r.faces > 60, "{} faces", r.faces);
    let front = row(&r, DetectorKind::BlazeFace);
    let pyr = row(&r, DetectorKind::BlazeFacePyramid);
    eprintln!("{}", serde_json::to_string(&r).unwrap());
    // The acceptance figures, on this smaller draw.
    assert!(recall(pyr, 40.0, 1e9) >= 0.95, "{:?}", pyr.recall_by_size);
    assert!(recall(pyr, 20.0, 40.0) >= 0.85, "{:?}", pyr.recall_by_size);
    assert!(pyr.false_positives_per_face_free_image <= 0.1, "{pyr:?}");
    // What the issue reported: the front model alone misses faces under 80 px.
    assert!(
        recall(front, 20.0, 80.0) < 0.5,
        "{:?}",
        front.recall_by_size
    );
}

#[test]
fn the_pyramid_still_finds_the_face_in_lfw_images() {
    let Some((home, lfw, _)) = data() else {
        return;
    };
    let device = recog::default_device();
    let det = DetectorKind::BlazeFacePyramid
        .load(&home, &device, &DetectorSettings::default(), &NoProgress)
        .unwrap();
    // Every 10th image: 1,324 of the 13,233.
    let sample: Vec<_> = lfw.iter().step_by(10).collect();
    let mut missed = Vec::new();
    for chunk in sample.chunks(16) {
        let imgs: Vec<_> = chunk
            .iter()
            .map(|p| recog::data::image_file::load_rgb(p).unwrap())
            .collect();
        let refs: Vec<_> = imgs.iter().collect();
        for ((p, img), faces) in chunk
            .iter()
            .zip(&imgs)
            .zip(det.detect_batch(&refs).unwrap())
        {
            let central = recog::face::pick_central(img, &faces);
            let covers = central
                .is_some_and(|f| f.x0 < 125.0 && f.x1 > 125.0 && f.y0 < 125.0 && f.y1 > 125.0);
            if !covers {
                missed.push(p.display().to_string());
            }
        }
    }
    assert!(
        missed.is_empty(),
        "{} of {} missed: {missed:?}",
        missed.len(),
        sample.len()
    );
}
