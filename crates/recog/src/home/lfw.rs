//! Downloading Labeled Faces in the Wild (deep-funneled) into `data/lfw`: the image tarball
//! and the protocol files from the data set's public home, each checked by SHA-256.
//!
//! The tarball's own hash is not published by its authors; what is checked instead is the
//! content: a SHA-256 over the sorted list of `<person>/<file>.jpg` paths and the SHA-256 of
//! each image (the [`tree_digest`] of the 13,233 images), so any re-packed copy with the same
//! images passes and any changed image fails.
//!
//! ```
//! let spec = recog::home::lfw::builtin_spec();
//! assert_eq!(spec.images, 13_233);
//! assert!(spec.files.iter().any(|f| f.name == "pairs.txt"));
//! ```

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{fetch_bytes, install::write_atomic, DataFile, Home};
use crate::digest::hex;
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Where LFW comes from and what it must hash to.
#[derive(Debug, Clone)]
pub struct LfwSpec {
    /// Base URLs tried in order (`<base>/<tarball>`, `<base>/<file>`).
    pub mirrors: Vec<String>,
    /// The image tarball's name.
    pub tarball: String,
    /// The [`tree_digest`] of its images.
    pub tree_sha256: String,
    /// How many images it holds.
    pub images: usize,
    /// The protocol files (`pairs.txt`, View 1's files, `people.txt`).
    pub files: Vec<DataFile>,
}

/// LFW deep-funneled from its public home (`RECOG_DATA_MIRROR=URL` replaces it with
/// `URL/lfw`).
pub fn builtin_spec() -> LfwSpec {
    let mirrors = match std::env::var("RECOG_DATA_MIRROR") {
        Ok(m) if !m.is_empty() => vec![format!("{}/lfw", m.trim_end_matches('/'))],
        _ => vec!["http://vis-www.cs.umass.edu/lfw".to_string()],
    };
    let file = |name: &str, sha256: &str| DataFile {
        name: name.into(),
        sha256: sha256.into(),
    };
    LfwSpec {
        mirrors,
        tarball: "lfw-deepfunneled.tgz".into(),
        tree_sha256: "671d2a790a1bc200b41bed03b7b5fd6d4dbf17d75bbc7d88cd3da5c5ed3801af".into(),
        images: 13_233,
        files: vec![
            file(
                "pairs.txt",
                "ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592",
            ),
            file(
                "pairsDevTrain.txt",
                "1d454dada7dfeca0e7eab6f65dc4e97a6312d44cf142207be28d688be92aabfa",
            ),
            file(
                "pairsDevTest.txt",
                "7cb06600ea8b2814ac26e946201cdb304296262aad67d046a16a7ec85d0ff87c",
            ),
            file(
                "people.txt",
                "bc8fa2b7f25c895cf7efb6de4f4fc27ca8b8d1cfa63350ad8b96eae2b198d365",
            ),
        ],
    }
}

/// SHA-256 over `"<path>\0<sha256 of the file>\n"` for each path, in sorted order.
pub fn tree_digest(files: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (path, sha) in files {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(sha.as_bytes());
        h.update(b"\n");
    }
    hex(&h.finalize())
}

impl Home {
    /// `data/lfw`, downloading what is missing first: the protocol files, then the images
    /// (unpacked into a temporary folder, checked, then renamed to `images/`).
    pub fn ensure_lfw(&self, spec: &LfwSpec, progress: &dyn Progress) -> Result<PathBuf> {
        let dir = self.data_dir("lfw");
        let fail = |files: String, problem: String| Error::Download {
            dataset: "lfw".into(),
            files,
            dir: dir.clone(),
            problem,
        };
        if self.offline
            && !(dir.join("images").is_dir()
                && spec.files.iter().all(|f| dir.join(&f.name).is_file()))
        {
            return Err(fail(
                spec.tarball.clone(),
                "offline (RECOG_OFFLINE / --offline) forbids downloading it".into(),
            ));
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| fail(dir.display().to_string(), e.to_string()))?;
        for f in &spec.files {
            if dir.join(&f.name).is_file() {
                continue;
            }
            let bytes = first_mirror(&spec.mirrors, &f.name, 1 << 24, progress)
                .map_err(|p| fail(f.name.clone(), p))?;
            let got = hex(&Sha256::digest(&bytes));
            if got != f.sha256 {
                return Err(fail(
                    f.name.clone(),
                    format!("SHA-256 mismatch: expected {}, got {got}", f.sha256),
                ));
            }
            write_atomic(&dir.join(&f.name), &bytes)
                .map_err(|e| fail(f.name.clone(), e.to_string()))?;
        }
        if dir.join("images").is_dir() {
            return Ok(dir);
        }
        let tgz = first_mirror(&spec.mirrors, &spec.tarball, 1 << 30, progress)
            .map_err(|p| fail(spec.tarball.clone(), p))?;
        let tmp = dir.join(format!(".images.part-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let res = unpack_images(&tgz, &tmp, spec, progress)
            .and_then(|()| std::fs::rename(&tmp, dir.join("images")).map_err(|e| e.to_string()));
        if let Err(p) = res {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(fail(spec.tarball.clone(), p));
        }
        Ok(dir)
    }
}

/// The bytes of `name` from the first of `mirrors` that serves it, or the last failure.
pub(crate) fn first_mirror(
    mirrors: &[String],
    name: &str,
    limit: u64,
    progress: &dyn Progress,
) -> std::result::Result<Vec<u8>, String> {
    let mut last = String::from("no mirror configured");
    for base in mirrors {
        let url = format!("{}/{name}", base.trim_end_matches('/'));
        match fetch_bytes(&url, limit, name, progress) {
            Ok(b) => return Ok(b),
            Err(e) => last = format!("{url}: {e}"),
        }
    }
    Err(last)
}

/// Unpacks the `.jpg` files of `<top>/<person>/<file>.jpg` into `dest/<person>/<file>.jpg`
/// and checks the tree digest; anything else in the tarball is ignored.
fn unpack_images(
    tgz: &[u8],
    dest: &Path,
    spec: &LfwSpec,
    progress: &dyn Progress,
) -> std::result::Result<(), String> {
    let corrupt = |e: std::io::Error| format!("corrupt tarball: {e}");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let mut hashes = BTreeMap::new();
    progress.start("unpacking LFW", spec.images as u64);
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(corrupt)?.into_owned();
        let parts: Vec<&str> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => s.to_str(),
                _ => None,
            })
            .collect();
        // Only <top>/<person>/<file>.jpg, plain names: nothing can land outside `dest`.
        if parts.len() != 3 || parts.len() != path.components().count() {
            continue;
        }
        let (person, file) = (parts[1], parts[2]);
        if !file.ends_with(".jpg") || person.starts_with('.') || file.starts_with('.') {
            continue;
        }
        if hashes.len() > spec.images {
            return Err(format!("more than the {} images expected", spec.images));
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(1 << 24)
            .read_to_end(&mut bytes)
            .map_err(corrupt)?;
        let out = dest.join(person).join(file);
        if let Some(d) = out.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        std::fs::write(&out, &bytes).map_err(|e| format!("{}: {e}", out.display()))?;
        hashes.insert(format!("{person}/{file}"), hex(&Sha256::digest(&bytes)));
        progress.inc(1);
    }
    progress.finish();
    let got = tree_digest(&hashes);
    if hashes.len() != spec.images || got != spec.tree_sha256 {
        return Err(format!(
            "the images do not match: {} images with tree SHA-256 {got}, expected {} with {}",
            hashes.len(),
            spec.images,
            spec.tree_sha256
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{serve, tgz};
    use super::*;
    use crate::progress::NoProgress;

    fn spec(url: &str, images: &[(&str, &[u8])]) -> LfwSpec {
        let tree: BTreeMap<String, String> = images
            .iter()
            .map(|(p, b)| (p.to_string(), hex(&Sha256::digest(b))))
            .collect();
        LfwSpec {
            mirrors: vec![url.into()],
            tarball: "lfw-deepfunneled.tgz".into(),
            tree_sha256: tree_digest(&tree),
            images: images.len(),
            files: vec![DataFile {
                name: "pairs.txt".into(),
                sha256: hex(&Sha256::digest(b"10\t300\n")),
            }],
        }
    }

    #[test]
    fn downloads_checks_and_unpacks_only_the_images() {
        let imgs: [(&str, &[u8]); 2] = [
            ("Ann_A/Ann_A_0001.jpg", b"a"),
            ("Bob_B/Bob_B_0001.jpg", b"b"),
        ];
        let url = serve(
            "lfw",
            vec![
                (
                    "lfw-deepfunneled.tgz".into(),
                    tgz(&[
                        ("lfw-deepfunneled/Ann_A/Ann_A_0001.jpg", b"a"),
                        ("lfw-deepfunneled/Bob_B/Bob_B_0001.jpg", b"b"),
                        ("lfw-deepfunneled/.DS_Store", b"junk"),
                    ]),
                ),
                ("pairs.txt".into(), b"10\t300\n".to_vec()),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let d = home.ensure_lfw(&spec(&url, &imgs), &NoProgress).unwrap();
        assert_eq!(
            std::fs::read(d.join("images/Bob_B/Bob_B_0001.jpg")).unwrap(),
            b"b"
        );
        assert!(d.join("pairs.txt").is_file());
        assert!(!d.join("images/.DS_Store").exists());
    }

    #[test]
    fn a_changed_image_or_a_missing_file_leaves_no_images_folder() {
        let imgs: [(&str, &[u8]); 1] = [("Ann_A/Ann_A_0001.jpg", b"a")];
        let url = serve(
            "lfw",
            vec![
                (
                    "lfw-deepfunneled.tgz".into(),
                    tgz(&[("lfw-deepfunneled/Ann_A/Ann_A_0001.jpg", b"changed")]),
                ),
                ("pairs.txt".into(), b"10\t300\n".to_vec()),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let e = home
            .ensure_lfw(&spec(&url, &imgs), &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(e.contains("do not match"), "{e}");
        assert!(!home.data_dir("lfw").join("images").exists());
        let names: Vec<_> = std::fs::read_dir(home.data_dir("lfw"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "only pairs.txt is left: {names:?}");

        let url404 = serve("lfw", vec![]);
        let dir = tempfile::tempdir().unwrap();
        let e = Home::new(dir.path())
            .ensure_lfw(&spec(&url404, &imgs), &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(e.contains("404") && e.contains("pairs.txt"), "{e}");
    }
}
