//! Batch work on image files: each file gets a row, and a file that cannot be read gets a
//! row with its error while the others go on.
//!
//! ```
//! use recog::face::files::{embedding_rows, failures};
//! use recog::face::FaceResult;
//! let ok = FaceResult { face: None, fallback: false, embedding: vec![1.0, 2.0], error: None };
//! let bad = FaceResult { error: Some("x.jpg: not an image".into()), embedding: vec![], ..ok.clone() };
//! let rows = embedding_rows(&[ok, bad.clone()], 2);
//! assert!(rows[1][0].is_nan()); // a row per file, NaN where there is no face
//! assert_eq!(failures(&[bad]), 1);
//! ```

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{draw, Detector, FaceBox, FaceResult};
use crate::{Error, Result};

/// The faces one detector found in one file.
#[derive(Debug, Clone, Serialize)]
pub struct DetectRow {
    /// The file.
    pub file: PathBuf,
    /// Image width, px (0 when unreadable).
    pub width: u32,
    /// Image height, px.
    pub height: u32,
    /// The faces, best first.
    pub faces: Vec<FaceBox>,
    /// The annotated copy, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotated: Option<PathBuf>,
    /// Why the file could not be read or annotated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs `detector` on every file; with `annotate`, writes `<stem>.faces.png` there with each
/// box and its score.
pub fn detect_files(
    detector: &dyn Detector,
    files: &[PathBuf],
    annotate: Option<&Path>,
) -> Result<Vec<DetectRow>> {
    if let Some(dir) = annotate {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut rows = Vec::with_capacity(files.len());
    for p in files {
        let mut row = DetectRow {
            file: p.clone(),
            width: 0,
            height: 0,
            faces: Vec::new(),
            annotated: None,
            error: None,
        };
        if let Err(e) = detect_one(detector, p, annotate, &mut row) {
            row.error = Some(e.to_string());
        }
        rows.push(row);
    }
    Ok(rows)
}

fn detect_one(
    detector: &dyn Detector,
    p: &Path,
    annotate: Option<&Path>,
    row: &mut DetectRow,
) -> Result<()> {
    let img = crate::data::image_file::load_rgb(p)?;
    (row.width, row.height) = img.dimensions();
    row.faces = detector.detect(&img)?;
    if let Some(dir) = annotate {
        let out = dir.join(format!("{}.faces.png", stem(p)));
        let marks: Vec<_> = row
            .faces
            .iter()
            .map(|f| (f.clone(), Some(format!("{:.2}", f.score)), draw::GREEN))
            .collect();
        draw::annotate(&img, &marks)
            .save(&out)
            .map_err(|e| Error::io(&out, std::io::Error::other(e)))?;
        row.annotated = Some(out);
    }
    Ok(())
}

/// A file's stem for the names of derived files (`image` when it has none).
pub fn stem(p: &Path) -> &str {
    p.file_stem().and_then(|s| s.to_str()).unwrap_or("image")
}

/// One `dim`-wide row per result, in order: the descriptor, or NaNs where the file had no
/// face or could not be read (so row `i` is always file `i`).
pub fn embedding_rows(results: &[FaceResult], dim: usize) -> Vec<Vec<f32>> {
    results
        .iter()
        .map(|r| {
            if r.embedding.is_empty() {
                vec![f32::NAN; dim]
            } else {
                r.embedding.clone()
            }
        })
        .collect()
}

/// How many results are unreadable files.
pub fn failures(results: &[FaceResult]) -> usize {
    results.iter().filter(|r| r.error.is_some()).count()
}
