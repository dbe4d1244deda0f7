//! Face-free photographs for the detection benchmark: the nature photos of Debian's
//! `mate-backgrounds` package (GPL-2+), installed from the package itself.
//!
//! A `.deb` is an `ar` archive whose `data.tar.xz` member holds the files; only the listed
//! photos are unpacked, each checked by SHA-256 before it is written.
//!
//! ```
//! let spec = recog::home::backgrounds::builtin_spec();
//! assert_eq!(spec.files.len(), 14);
//! ```

use std::io::Read;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::install::write_atomic;
use super::lfw::first_mirror;
use super::{DataFile, Home};
use crate::digest::hex;
use crate::progress::Progress;
use crate::{Error, Result};

/// Where the photos come from and what they must hash to.
#[derive(Debug, Clone)]
pub struct BackgroundSpec {
    /// Base URLs, tried in order, each holding `package`.
    pub mirrors: Vec<String>,
    /// The package file name.
    pub package: String,
    /// SHA-256 of the package file.
    pub package_sha256: String,
    /// Folder of the photos inside the package's data archive.
    pub prefix: String,
    /// The photos, relative to `prefix`, with their SHA-256.
    pub files: Vec<DataFile>,
}

/// The photos recog's benchmark uses: twelve nature photographs, an elephant painting and
/// a logo on a gradient, checked by eye to hold no face.
pub fn builtin_spec() -> BackgroundSpec {
    let files = [
        (
            "nature/Aqua.jpg",
            "5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce",
        ),
        (
            "nature/Blinds.jpg",
            "f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600",
        ),
        (
            "nature/Dune.jpg",
            "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91",
        ),
        (
            "nature/FreshFlower.jpg",
            "972b0a0c4e5e3fa93f4f244fc84bc64b121a5eac3aaa5856f1308c1f38a02f8e",
        ),
        (
            "nature/Garden.jpg",
            "d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78",
        ),
        (
            "nature/GreenMeadow.jpg",
            "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832",
        ),
        (
            "nature/LadyBird.jpg",
            "e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d",
        ),
        (
            "nature/RainDrops.jpg",
            "3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16",
        ),
        (
            "nature/Storm.jpg",
            "77ca53077831d3237f73393a91fc879158abc046d852941c26e90de336356957",
        ),
        (
            "nature/TwoWings.jpg",
            "665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb",
        ),
        (
            "nature/Wood.jpg",
            "19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07",
        ),
        (
            "nature/YellowFlower.jpg",
            "254da96256acb7add685679775a04d1e4a5bc8cd13e5a5a3d61351ce198a5306",
        ),
        (
            "abstract/Elephants.jpg",
            "b402668de7212c568090edc032288759029e15e5153f3ae43f079abfd44105a4",
        ),
        (
            "desktop/GreenTraditional.jpg",
            "68b9870dd49c1b6143cadda4b0cf6e87421bf9be5942e27d2877fc65f8a22a29",
        ),
    ];
    let mirrors = match std::env::var("RECOG_DATA_MIRROR") {
        Ok(m) => vec![format!("{}/backgrounds", m.trim_end_matches('/'))],
        Err(_) => vec!["http://deb.debian.org/debian/pool/main/m/mate-backgrounds".to_string()],
    };
    BackgroundSpec {
        mirrors,
        package: "mate-backgrounds_1.26.0-1_all.deb".into(),
        package_sha256: "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04".into(),
        prefix: "usr/share/backgrounds/mate/".into(),
        files: files
            .iter()
            .map(|(n, h)| DataFile {
                name: n.to_string(),
                sha256: h.to_string(),
            })
            .collect(),
    }
}

impl Home {
    /// The folder that holds (or will hold) the background photos: `data/backgrounds` of
    /// the home if it has them, else `backgrounds/` beside the installed models (the home
    /// itself may be read-only).
    pub fn backgrounds_dir(&self, spec: &BackgroundSpec) -> PathBuf {
        let complete = |d: &PathBuf| spec.files.iter().all(|f| d.join(&f.name).is_file());
        let mut candidates = vec![self.data_dir("backgrounds")];
        candidates.extend(self.model_roots().iter().map(|r| r.join("backgrounds")));
        candidates
            .into_iter()
            .find(complete)
            .unwrap_or_else(|| self.install_root().join("backgrounds"))
    }

    /// The background photos, downloading the package and unpacking the missing ones first
    /// (unless the home is offline).
    pub fn ensure_backgrounds(
        &self,
        spec: &BackgroundSpec,
        progress: &dyn Progress,
    ) -> Result<Vec<PathBuf>> {
        let dir = self.backgrounds_dir(spec);
        let paths: Vec<PathBuf> = spec.files.iter().map(|f| dir.join(&f.name)).collect();
        if paths.iter().all(|p| p.is_file()) {
            return Ok(paths);
        }
        let fail = |problem: String| Error::Download {
            dataset: "backgrounds".into(),
            files: spec.package.clone(),
            dir: dir.clone(),
            problem,
        };
        if self.offline {
            return Err(fail(
                "offline (RECOG_OFFLINE / --offline) forbids downloading it".into(),
            ));
        }
        let deb = first_mirror(&spec.mirrors, &spec.package, 1 << 28, progress).map_err(fail)?;
        let got = hex(&Sha256::digest(&deb));
        if got != spec.package_sha256 {
            return Err(fail(format!(
                "SHA-256 mismatch: expected {}, got {got}",
                spec.package_sha256
            )));
        }
        unpack(&deb, spec, &dir).map_err(fail)?;
        Ok(paths)
    }
}

/// The bytes of the first `ar` member whose name starts with `prefix`.
pub fn ar_member<'a>(ar: &'a [u8], prefix: &str) -> std::result::Result<&'a [u8], String> {
    let mut rest = ar
        .strip_prefix(b"!<arch>\n")
        .ok_or("not an ar archive (no !<arch> magic)")?;
    while rest.len() >= 60 {
        let (head, body) = rest.split_at(60);
        let name = String::from_utf8_lossy(&head[..16]);
        let size: usize = String::from_utf8_lossy(&head[48..58])
            .trim()
            .parse()
            .map_err(|_| format!("ar member {}: bad size field", name.trim()))?;
        let data = body
            .get(..size)
            .ok_or_else(|| format!("ar member {}: truncated", name.trim()))?;
        if name.trim_end().starts_with(prefix) {
            return Ok(data);
        }
        // Members are padded to an even length.
        let next = size
            .checked_add(size % 2)
            .ok_or("ar member size overflows")?;
        rest = body.get(next..).unwrap_or(&[]);
    }
    Err(format!("no {prefix}* member"))
}

/// Unpacks the listed photos from the package's data archive into `dir`, each checked
/// before it is written; the first mismatch or missing file is an error.
fn unpack(
    deb: &[u8],
    spec: &BackgroundSpec,
    dir: &std::path::Path,
) -> std::result::Result<(), String> {
    let data = ar_member(deb, "data.tar")?;
    let reader: Box<dyn Read + '_> = if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
        Box::new(liblzma::read::XzDecoder::new(data))
    } else if data.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(data))
    } else {
        return Err("data archive is neither xz nor gzip".into());
    };
    let mut tar = tar::Archive::new(reader);
    let mut found = 0usize;
    for entry in tar.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        let rel = path.trim_start_matches("./");
        let Some(name) = rel.strip_prefix(spec.prefix.as_str()) else {
            continue;
        };
        let Some(file) = spec.files.iter().find(|f| f.name == name) else {
            continue;
        };
        let mut bytes = Vec::new();
        entry
            .by_ref()
            .take(1 << 27)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{name}: {e}"))?;
        let got = hex(&Sha256::digest(&bytes));
        if got != file.sha256 {
            return Err(format!(
                "{name}: SHA-256 mismatch: expected {}, got {got}",
                file.sha256
            ));
        }
        write_atomic(&dir.join(name), &bytes).map_err(|e| format!("{name}: {e}"))?;
        found += 1;
    }
    if found < spec.files.len() {
        return Err(format!(
            "the package holds {found} of the {} photos",
            spec.files.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = b"!<arch>\n".to_vec();
        for (name, data) in members {
            let head = format!(
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                name,
                0,
                0,
                0,
                100644,
                data.len()
            );
            out.extend(head.as_bytes());
            out.extend(*data);
            if data.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    fn spec(url: &str, deb: &[u8], files: &[(&str, &[u8])]) -> BackgroundSpec {
        BackgroundSpec {
            mirrors: vec![url.to_string()],
            package: "bg.deb".into(),
            package_sha256: hex(&Sha256::digest(deb)),
            prefix: "usr/share/backgrounds/mate/".into(),
            files: files
                .iter()
                .map(|(n, b)| DataFile {
                    name: n.to_string(),
                    sha256: hex(&Sha256::digest(b)),
                })
                .collect(),
        }
    }

    #[test]
    fn ar_members_are_found_past_odd_padding() {
        let a = ar(&[
            ("debian-binary", b"2.0\n"),
            ("odd", b"abc"),
            ("data.tar.gz", b"xyz"),
        ]);
        assert_eq!(ar_member(&a, "data.tar").unwrap(), b"xyz");
        assert!(ar_member(&a, "control").is_err());
        assert!(ar_member(b"garbage", "data").is_err());
        // A size field past the end is an error, not a panic.
        let mut t = ar(&[("data.tar.gz", b"xyz")]);
        t.truncate(t.len() - 2);
        assert!(ar_member(&t, "data.tar").is_err());
    }

    #[test]
    fn installs_only_the_listed_photos_from_a_package() {
        let tgz = crate::home::testing::tgz(&[
            ("./usr/share/backgrounds/mate/nature/A.jpg", b"photo a"),
            ("./usr/share/backgrounds/mate/nature/B.jpg", b"photo b"),
            ("./usr/share/doc/x", b"doc"),
        ]);
        let deb = ar(&[("debian-binary", b"2.0\n"), ("data.tar.gz", &tgz)]);
        let url = crate::home::testing::serve("deb", vec![("bg.deb".into(), deb.clone())]);
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let s = spec(&url, &deb, &[("nature/A.jpg", b"photo a")]);
        let paths = home.ensure_backgrounds(&s, &crate::NoProgress).unwrap();
        assert_eq!(std::fs::read(&paths[0]).unwrap(), b"photo a");
        assert!(!paths[0].with_file_name("B.jpg").exists());

        // A photo that does not match its hash is refused and nothing of it is written.
        let home2 = Home::new(dir.path().join("other"));
        let bad = spec(&url, &deb, &[("nature/B.jpg", b"not photo b")]);
        let err = home2
            .ensure_backgrounds(&bad, &crate::NoProgress)
            .unwrap_err();
        assert!(err.to_string().contains("SHA-256 mismatch"), "{err}");
        assert!(!home2.backgrounds_dir(&bad).join("nature/B.jpg").exists());
    }
}
