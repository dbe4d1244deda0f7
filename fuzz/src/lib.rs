//! Helpers shared by the fuzz targets.

use std::path::PathBuf;

/// A folder of this process's own for loaders that read files: one per process, so parallel
/// fuzzing jobs do not overwrite each other's inputs.
pub fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("recog-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Writes `data` to `name` in [`scratch`] and returns the path.
pub fn file(name: &str, data: &[u8]) -> PathBuf {
    let p = scratch().join(name);
    let _ = std::fs::write(&p, data);
    p
}
