//! Enrolment policy: what happens to the photos a user hands over, beyond storing them.
//!
//! - A photo with no face is skipped with a warning; with several faces, the central one is
//!   enrolled, with a warning.
//! - A photo far from the person's other photos (beyond the model's verification distance)
//!   is enrolled with a warning: is it the same person?
//! - A photo already enrolled for this person (same file SHA-256) is skipped, so that
//!   enrolment can be re-run; one enrolled under another name is refused.
//! - An unreadable file is reported and the others go on.
//! - Each person is one transaction: an interrupted folder enrolment leaves whole people.
//!
//! ```
//! use recog::gallery::enroll::EnrollReport;
//! let r = EnrollReport { enrolled: 3, already: 1, ..Default::default() };
//! assert_eq!(r.tail(), "; 1 already enrolled, skipped");
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{check_name, model_id, Gallery, NewPhoto};
use crate::face::{draw, FacePipeline};
use crate::{Error, Progress, Result};

/// What enrolment did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct EnrollReport {
    /// Photos enrolled.
    pub enrolled: usize,
    /// People given photos (enrolled or not).
    pub people: usize,
    /// Photos already enrolled for their person (same file SHA-256): skipped.
    pub already: usize,
    /// Photos already enrolled under another name: refused.
    pub refused: usize,
    /// Photos skipped for having no face.
    pub no_face: usize,
    /// Files that could not be read, with the reason.
    pub failed: Vec<(PathBuf, String)>,
    /// People none of whose photos could be used.
    pub not_enrolled: Vec<String>,
}

impl EnrollReport {
    /// The summary's tail: "; 3 already enrolled, skipped; 1 enrolled under another name,
    /// refused".
    pub fn tail(&self) -> String {
        let mut tail = String::new();
        if self.already > 0 {
            tail.push_str(&format!("; {} already enrolled, skipped", self.already));
        }
        if self.refused > 0 {
            tail.push_str(&format!(
                "; {} enrolled under another name, refused",
                self.refused
            ));
        }
        tail
    }

    /// Files given.
    pub fn files(&self) -> usize {
        self.enrolled + self.already + self.refused + self.no_face + self.failed.len()
    }
}

/// Embeds a person's photos under the policy above; `stored` are the embeddings the gallery
/// already holds for this person, which a new photo is also compared with.
fn embed_person(
    pipe: &FacePipeline,
    g: &Gallery,
    name: &str,
    images: &[PathBuf],
    stored: &[Vec<f32>],
    progress: &dyn Progress,
    report: &mut EnrollReport,
) -> Result<Vec<NewPhoto>> {
    let mut out: Vec<NewPhoto> = Vec::new();
    for p in images {
        // One read: the bytes are hashed for the re-run check and decoded from memory.
        let bytes = match std::fs::read(p) {
            Ok(b) => b,
            Err(e) => {
                report.failed.push((p.clone(), Error::io(p, e).to_string()));
                continue;
            }
        };
        let sha = crate::digest::sha256_bytes(&bytes);
        match g.owner_of(&sha)? {
            Some(owner) if owner == name => {
                report.already += 1;
                continue;
            }
            Some(owner) => {
                report.refused += 1;
                progress.warn(&format!(
                    "{}: this photo is already enrolled as {owner}; not enrolled as {name}",
                    p.display()
                ));
                continue;
            }
            None => {}
        }
        if out.iter().any(|o| o.sha256 == sha) {
            report.already += 1;
            continue;
        }
        let img = match crate::data::image_file::decode_bytes(&bytes) {
            Ok(i) => i.to_rgb8(),
            Err(problem) => {
                let e = Error::Image {
                    path: p.clone(),
                    problem,
                };
                report.failed.push((p.clone(), e.to_string()));
                continue;
            }
        };
        let (central, n_faces) = pipe.central_face(&img)?;
        let Some((f, emb)) = central else {
            report.no_face += 1;
            progress.warn(&format!("{}: no face found; skipped", p.display()));
            continue;
        };
        if n_faces > 1 {
            progress.warn(&format!(
                "{}: {n_faces} faces; enrolled the central one ({:.0},{:.0})",
                p.display(),
                f.x0,
                f.y0
            ));
        }
        out.push(NewPhoto {
            path: p.display().to_string(),
            sha256: sha,
            thumbnail: draw::face_thumbnail(&img, &f, 96).ok(),
            embedding: emb,
        });
    }
    let far = pipe.embedder.verification_distance();
    for (i, a) in out.iter().enumerate() {
        let nearest = out
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, b)| b.embedding.as_slice())
            .chain(stored.iter().map(Vec::as_slice))
            .map(|b| crate::metric::distance::euclidean(&a.embedding, b))
            .reduce(f32::min);
        if let Some(min) = nearest.filter(|&m| m > far) {
            progress.warn(&format!(
                "{}: far from {name}'s other photos (nearest {min:.3} > {far}): is it the same person?",
                a.path
            ));
        }
    }
    Ok(out)
}

/// Enrols photos of one person. Fails when none of them could be used and none was already
/// enrolled.
pub fn enroll_person(
    g: &mut Gallery,
    pipe: &FacePipeline,
    name: &str,
    images: &[PathBuf],
    progress: &dyn Progress,
) -> Result<EnrollReport> {
    let name = check_name(name)?;
    let model = model_id(pipe);
    g.check_model(&model)?;
    let stored: Vec<Vec<f32>> = g
        .embeddings()?
        .into_iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, e)| e)
        .collect();
    let mut report = EnrollReport {
        people: 1,
        ..Default::default()
    };
    let photos = embed_person(pipe, g, &name, images, &stored, progress, &mut report)?;
    if photos.is_empty() && report.already == 0 && report.refused == 0 {
        report.not_enrolled.push(name.clone());
        if report.failed.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "no usable photo of {name}: nothing enrolled"
            )));
        }
    }
    if !photos.is_empty() {
        report.enrolled = g.enroll(&name, &model, &photos)?;
    }
    Ok(report)
}

/// The people of a folder: `<person>/<photo>`, and `<person>.jpg` directly in it (the
/// notebook's layout), named by the sub-folder or the file stem.
pub fn folder_people(dir: &Path) -> Result<BTreeMap<String, Vec<PathBuf>>> {
    let mut by: BTreeMap<String, Vec<PathBuf>> =
        crate::data::folder::people(dir)?.into_iter().collect();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = e.map_err(|e| Error::io(dir, e))?.path();
        if !path.is_dir() && crate::data::folder::is_image(&path) {
            let name = path
                .file_stem()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            by.entry(name).or_default().push(path);
        }
    }
    Ok(by)
}

/// Enrols a folder ([`folder_people`]), one transaction per person, so that a kill leaves
/// whole people and a re-run skips the photos already enrolled. A name the gallery refuses
/// ([`check_name`]) is reported and the other people go on.
pub fn enroll_folder(
    g: &mut Gallery,
    pipe: &FacePipeline,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<EnrollReport> {
    let model = model_id(pipe);
    g.check_model(&model)?;
    let by = folder_people(dir)?;
    let mut report = EnrollReport {
        people: by.len(),
        ..Default::default()
    };
    for (name, files) in &by {
        let name = match check_name(name) {
            Ok(n) => n,
            Err(e) => {
                progress.warn(&format!("{e}; not enrolled"));
                report.not_enrolled.push(name.clone());
                continue;
            }
        };
        let before = report.already;
        let photos = embed_person(pipe, g, &name, files, &[], progress, &mut report)?;
        if photos.is_empty() {
            if report.already == before {
                progress.warn(&format!("{name}: no usable photo; not enrolled"));
                report.not_enrolled.push(name.clone());
            }
            continue;
        }
        report.enrolled += g.enroll(&name, &model, &photos)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_names_skipped_and_refused_photos() {
        let r = EnrollReport {
            already: 2,
            refused: 1,
            ..Default::default()
        };
        assert_eq!(
            r.tail(),
            "; 2 already enrolled, skipped; 1 enrolled under another name, refused"
        );
        assert_eq!(EnrollReport::default().tail(), "");
    }

    #[test]
    fn folder_people_reads_both_layouts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ada")).unwrap();
        std::fs::write(dir.path().join("ada/1.jpg"), b"x").unwrap();
        std::fs::write(dir.path().join("bob.png"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let by = folder_people(dir.path()).unwrap();
        assert_eq!(by.keys().collect::<Vec<_>>(), ["ada", "bob"]);
    }
}
