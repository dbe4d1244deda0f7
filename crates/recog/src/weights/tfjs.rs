//! TensorFlow.js weights: a `*-weights_manifest.json` and its binary shards.
//!
//! The manifest is a list of groups; each group names its shard files (concatenated in
//! order) and its weights: name, shape, dtype and, for quantised weights, `quantization`
//! `{dtype: uint8|uint16|float16, scale, min}` where the stored value `q` decodes to
//! `q * scale + min` (float16 stores IEEE half floats). Weights follow each other in the
//! concatenated shards in manifest order.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let m = dir.path().join("m-weights_manifest.json");
//! std::fs::write(&m, r#"[{"paths":["m.bin"],"weights":[{"name":"a","shape":[2],"dtype":"float32"}]}]"#).unwrap();
//! std::fs::write(dir.path().join("m.bin"), [1.0f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat()).unwrap();
//! let mut map = recog::weights::tfjs::load(&m).unwrap();
//! assert_eq!(map.take("a", &[2]).unwrap().data, vec![1.0, 2.0]);
//! ```

use std::path::Path;

use serde::Deserialize;

use super::{read_file, HostTensor, WeightMap};
use crate::{Error, Result};

#[derive(Debug, Deserialize)]
struct Group {
    paths: Vec<String>,
    weights: Vec<Spec>,
}

#[derive(Debug, Deserialize)]
struct Spec {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    #[serde(default)]
    quantization: Option<Quant>,
}

#[derive(Debug, Deserialize)]
struct Quant {
    dtype: String,
    #[serde(default)]
    scale: f32,
    #[serde(default)]
    min: f32,
}

/// Reads a TFJS manifest and its shards (found next to the manifest).
pub fn load(manifest: &Path) -> Result<WeightMap> {
    use sha2::{Digest, Sha256};
    let text = read_file(manifest)?;
    let mut hash = Sha256::new();
    hash.update(&text);
    let groups: Vec<Group> = serde_json::from_slice(&text).map_err(|source| Error::Json {
        path: manifest.to_path_buf(),
        source,
    })?;
    let mut map = WeightMap::new(manifest);
    read_groups(manifest, groups, &mut hash, &mut map)?;
    map.sha256 = Some(crate::digest::hex(&hash.finalize()));
    Ok(map)
}

/// A shard's path must stay next to the manifest: a plain relative path, no `..`, no root.
fn shard_path<'a>(manifest: &Path, p: &'a str) -> Result<&'a Path> {
    use std::path::Component;
    let path = Path::new(p);
    if p.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Error::Checkpoint {
            path: manifest.to_path_buf(),
            problem: format!("shard path {p:?} leaves the manifest's folder"),
        });
    }
    Ok(path)
}

/// Reads each group's shards (next to `manifest`) and decodes its weights into `map`.
fn read_groups(
    manifest: &Path,
    groups: Vec<Group>,
    hash: &mut sha2::Sha256,
    map: &mut WeightMap,
) -> Result<()> {
    use sha2::Digest;
    let dir = manifest.parent().unwrap_or(Path::new("."));
    for g in groups {
        let mut bytes = Vec::new();
        for p in &g.paths {
            let shard = read_file(&dir.join(shard_path(manifest, p)?))?;
            hash.update(&shard);
            bytes.extend(shard);
        }
        let mut off = 0usize;
        for w in g.weights {
            let n = w
                .shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(|| bad(manifest, &w.name, format!("shape {:?} overflows", w.shape)))?;
            let (elem, kind) = match (&w.quantization, w.dtype.as_str()) {
                (Some(q), _) => match q.dtype.as_str() {
                    "uint8" => (1, Kind::U8(q.scale, q.min)),
                    "uint16" => (2, Kind::U16(q.scale, q.min)),
                    "float16" => (2, Kind::F16),
                    other => return Err(bad(manifest, &w.name, format!("quantization {other}"))),
                },
                (None, "float32") => (4, Kind::F32),
                (None, "int32") => (4, Kind::I32),
                (None, other) => return Err(bad(manifest, &w.name, format!("dtype {other}"))),
            };
            let end = n
                .checked_mul(elem)
                .and_then(|len| off.checked_add(len))
                .ok_or_else(|| bad(manifest, &w.name, format!("shape {:?} overflows", w.shape)))?;
            let len = end - off;
            let chunk = bytes.get(off..end).ok_or_else(|| Error::Checkpoint {
                path: manifest.to_path_buf(),
                problem: format!(
                    "shards end at byte {} but {} (shape {:?}) needs bytes {}..{}",
                    bytes.len(),
                    w.name,
                    w.shape,
                    off,
                    off + len
                ),
            })?;
            off += len;
            let data = decode(chunk, kind);
            map.tensors.insert(
                w.name,
                HostTensor {
                    shape: w.shape,
                    data,
                },
            );
        }
        if off != bytes.len() {
            return Err(Error::Checkpoint {
                path: manifest.to_path_buf(),
                problem: format!(
                    "manifest describes {off} bytes but the shards hold {}",
                    bytes.len()
                ),
            });
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    F32,
    I32,
    F16,
    U8(f32, f32),
    U16(f32, f32),
}

fn decode(b: &[u8], kind: Kind) -> Vec<f32> {
    match kind {
        Kind::F32 => super::le_f32(b),
        Kind::I32 => super::le_i32(b),
        Kind::F16 => b
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Kind::U8(scale, min) => b.iter().map(|&q| q as f32 * scale + min).collect(),
        Kind::U16(scale, min) => b
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as f32 * scale + min)
            .collect(),
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) & 1) as u32;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign << 31,
        (0, f) => {
            // Subnormal: renormalise.
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            (sign << 31) | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, f) => (sign << 31) | (0xff << 23) | (f << 13),
        (e, f) => (sign << 31) | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

fn bad(manifest: &Path, name: &str, what: String) -> Error {
    Error::Checkpoint {
        path: manifest.to_path_buf(),
        problem: format!("{name}: unsupported {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Manifests used to be trusted: a shard path could name any file (`../x`, `/etc/x`) and
    /// a shape's element count could overflow.
    #[test]
    fn a_manifest_cannot_reach_outside_its_folder_or_overflow() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ok.bin"), 0f32.to_le_bytes()).unwrap();
        let m = dir.path().join("m-weights_manifest.json");
        for paths in [
            r#"["../ok.bin"]"#,
            r#"["/etc/passwd"]"#,
            r#"["a/../../ok.bin"]"#,
            r#"[""]"#,
        ] {
            let text = format!(
                r#"[{{"paths":{paths},"weights":[{{"name":"a","shape":[1],"dtype":"float32"}}]}}]"#
            );
            std::fs::write(&m, text).unwrap();
            let e = load(&m).unwrap_err();
            assert!(
                e.to_string().contains("leaves the manifest's folder"),
                "{paths}: {e}"
            );
        }
        let huge = format!(
            r#"[{{"paths":["ok.bin"],"weights":[{{"name":"a","shape":[{}, 4],"dtype":"float32"}}]}}]"#,
            usize::MAX / 2
        );
        std::fs::write(&m, huge).unwrap();
        let e = load(&m).unwrap_err();
        assert!(e.to_string().contains("overflows"), "{e}");
        let big = r#"[{"paths":["ok.bin"],"weights":[{"name":"a","shape":[1000000],"dtype":"float32"}]}]"#;
        std::fs::write(&m, big).unwrap();
        assert!(load(&m)
            .unwrap_err()
            .to_string()
            .contains("shards end at byte 4"));
    }

    #[test]
    fn decodes_float_and_quantised_weights_in_manifest_order() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = r#"[{"paths":["m.bin"],"weights":[
            {"name":"a","shape":[2],"dtype":"float32"},
            {"name":"b","shape":[3],"dtype":"float32","quantization":{"dtype":"uint8","scale":0.5,"min":-1.0}},
            {"name":"c","shape":[1],"dtype":"float32","quantization":{"dtype":"float16"}}]}]"#;
        std::fs::write(dir.path().join("m-weights_manifest.json"), manifest).unwrap();
        let mut bin = Vec::new();
        bin.extend(1.5f32.to_le_bytes());
        bin.extend((-2.0f32).to_le_bytes());
        bin.extend([0u8, 2, 255]);
        bin.extend(0x3c00u16.to_le_bytes()); // 1.0 in half precision
        std::fs::write(dir.path().join("m.bin"), &bin).unwrap();
        let mut map = load(&dir.path().join("m-weights_manifest.json")).unwrap();
        // The hash covers the manifest, then the shards, as read.
        use sha2::{Digest, Sha256};
        let mut all = manifest.as_bytes().to_vec();
        all.extend(&bin);
        assert_eq!(
            map.sha256.as_deref(),
            Some(crate::digest::hex(&Sha256::digest(&all)).as_str())
        );
        assert_eq!(map.take("a", &[2]).unwrap().data, vec![1.5, -2.0]);
        // value = q * scale + min
        assert_eq!(map.take("b", &[3]).unwrap().data, vec![-1.0, 0.0, 126.5]);
        assert_eq!(map.take("c", &[1]).unwrap().data, vec![1.0]);
    }

    #[test]
    fn short_shard_and_wrong_shape_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = r#"[{"paths":["m.bin"],"weights":[{"name":"conv/filters","shape":[2,2],"dtype":"float32"}]}]"#;
        let p = dir.path().join("m-weights_manifest.json");
        std::fs::write(&p, manifest).unwrap();
        std::fs::write(dir.path().join("m.bin"), [0u8; 8]).unwrap();
        let err = load(&p).unwrap_err().to_string();
        assert!(
            err.contains("conv/filters") && err.contains("needs bytes 0..16"),
            "{err}"
        );
        std::fs::write(dir.path().join("m.bin"), [0u8; 16]).unwrap();
        let mut map = load(&p).unwrap();
        let err = map.take("conv/filters", &[4]).unwrap_err().to_string();
        assert!(err.contains("conv/filters") && err.contains("[4]") && err.contains("[2, 2]"));
    }

    #[test]
    fn half_floats() {
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
    }
}
