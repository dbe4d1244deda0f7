//! Helpers shared by the end-to-end tests that need `RECOG_HOME`'s face models and LFW.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `RECOG_HOME` if it holds the face models and LFW (else a message and `None`: the caller
/// returns, so the test passes without them).
pub fn home() -> Option<PathBuf> {
    let h = PathBuf::from(std::env::var_os("RECOG_HOME")?);
    let ok = h
        .join("models/face-api/face_recognition_model-weights_manifest.json")
        .exists()
        && h.join("models/blazeface/face_detection_front_128x128_barracuda.onnx")
            .exists()
        && h.join("data/lfw/images").is_dir();
    if ok {
        Some(h)
    } else {
        eprintln!("skipping: RECOG_HOME lacks the face models or LFW");
        None
    }
}

/// Runs the `recog` binary with `RECOG_HOME` set.
pub fn recog(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recog"))
        .args(args)
        .env("RECOG_HOME", home)
        .output()
        .expect("run recog")
}
