//! `kill -9` at random points during `gallery import` and `gallery remove`, 20 runs each:
//! afterwards `gallery check` is clean and every person of the interrupted operation has all
//! or none of its photos. No models are needed: the export is synthetic.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PEOPLE: usize = 400;
const PHOTOS: usize = 12;
const DIM: usize = 128;

fn recog(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_recog"))
        .args(args)
        .env("RECOG_OFFLINE", "1")
        .output()
        .unwrap()
}

/// A deterministic export of `PEOPLE` x `PHOTOS` embeddings; `tag` keeps names and hashes
/// apart between exports.
fn export(path: &Path, tag: &str) {
    let people: Vec<serde_json::Value> = (0..PEOPLE)
        .map(|p| {
            let photos: Vec<serde_json::Value> = (0..PHOTOS)
                .map(|i| {
                    let v: Vec<f32> = (0..DIM)
                        .map(|d| ((p * 31 + i * 7 + d) % 97) as f32 / 97.0)
                        .collect();
                    serde_json::json!([format!("{tag}{p}/{i}.jpg"), format!("{tag}-{p}-{i}"), v])
                })
                .collect();
            serde_json::json!({ "name": format!("{tag}{p:04}"), "photos": photos })
        })
        .collect();
    let x = serde_json::json!({
        "model": { "name": "face-resnet-dlib", "sha256": "ab".repeat(32), "dim": DIM },
        "calibration": null,
        "people": people,
    });
    std::fs::write(path, x.to_string()).unwrap();
}

/// People and photo counts from `gallery list --json`, after `gallery check` passed.
fn checked(db: &Path) -> Vec<(String, u64)> {
    let db = db.to_str().unwrap();
    let c = recog(&["gallery", "check", "--db", db, "--json"]);
    assert!(
        c.status.success(),
        "gallery check: {}{}",
        String::from_utf8_lossy(&c.stdout),
        String::from_utf8_lossy(&c.stderr)
    );
    let l = recog(&["gallery", "list", "--db", db, "--json"]);
    assert!(l.status.success(), "{}", String::from_utf8_lossy(&l.stderr));
    let v: serde_json::Value = serde_json::from_slice(&l.stdout).unwrap();
    v["people"]
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
}

/// Runs `args`, killing it after `delay` (if it is still running); true if it was killed.
fn run_and_kill(args: &[&str], delay: Duration) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_recog"))
        .args(args)
        .env("RECOG_OFFLINE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let killed = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    child.wait().unwrap();
    killed
}

/// A small deterministic generator of kill times.
struct Lcg(u64);
impl Lcg {
    fn fraction(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn kill_9_during_import_and_remove_leaves_a_clean_all_or_none_gallery() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.json");
    let more = dir.path().join("more.json");
    export(&base, "a");
    export(&more, "b");
    // How long an uninterrupted import takes: the kills are spread over it.
    let probe = dir.path().join("probe.sqlite");
    let t0 = Instant::now();
    let o = recog(&[
        "gallery",
        "import",
        more.to_str().unwrap(),
        "--db",
        probe.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let full = t0.elapsed();
    eprintln!(
        "an import of {} photos takes {:.0} ms",
        PEOPLE * PHOTOS,
        full.as_secs_f64() * 1e3
    );
    let mut rng = Lcg(17);
    let (mut killed_import, mut killed_remove) = (0, 0);
    for run in 0..20 {
        let db = dir.path().join(format!("g{run}.sqlite"));
        let d = db.to_str().unwrap();
        let o = recog(&["gallery", "import", base.to_str().unwrap(), "--db", d]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // Import: all of the second export's people with all photos, or none of them.
        let delay = full.mul_f64(rng.fraction() * 1.2);
        killed_import += run_and_kill(
            &["gallery", "import", more.to_str().unwrap(), "--db", d],
            delay,
        ) as usize;
        let people = checked(&db);
        let b: Vec<_> = people.iter().filter(|(n, _)| n.starts_with('b')).collect();
        assert!(
            b.is_empty() || b.len() == PEOPLE,
            "run {run}: {} of the import's people",
            b.len()
        );
        assert!(
            people.iter().all(|(_, n)| *n == PHOTOS as u64),
            "run {run}: a person lost photos"
        );
        // Remove: the person is there with every photo, or gone.
        let delay = Duration::from_millis((rng.fraction() * 60.0) as u64);
        killed_remove += run_and_kill(&["gallery", "remove", "a0007", "--db", d], delay) as usize;
        let people = checked(&db);
        match people.iter().find(|(n, _)| n == "a0007") {
            Some((_, n)) => assert_eq!(*n, PHOTOS as u64, "run {run}"),
            None => assert_eq!(
                people.len() % PEOPLE,
                PEOPLE - 1,
                "run {run}: only a0007 went"
            ),
        }
    }
    eprintln!("killed mid-run: {killed_import} of 20 imports, {killed_remove} of 20 removes");
    assert!(
        killed_import >= 5,
        "the kills came after the end; nothing was tested"
    );
}
