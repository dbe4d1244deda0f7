//! IDX files (MNIST, Fashion-MNIST, EMNIST), plain or gzip-compressed.
//!
//! Format (LeCun): two zero bytes, a type byte (0x08 = unsigned byte), a dimension count,
//! then one big-endian u32 per dimension and the row-major data.
//!
//! ```
//! use recog::data::idx::{encode_idx, parse_idx};
//! let bytes = encode_idx(&[2, 2], &[1, 2, 3, 4]);
//! let a = parse_idx("x.idx".as_ref(), &bytes).unwrap();
//! assert_eq!((a.dims, a.data), (vec![2, 2], vec![1, 2, 3, 4]));
//! assert!(parse_idx("x.idx".as_ref(), &bytes[..6]).is_err());
//! ```

use std::io::Read;
use std::path::Path;

use crate::data::Dataset;
use crate::error::{Error, Result};

/// How to interpret the pixel order of an IDX image file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PixelOrder {
    /// Row-major, as in MNIST and Fashion-MNIST.
    #[default]
    RowMajor,
    /// Column-major: EMNIST stores each image transposed.
    Transposed,
}

/// A decoded IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The data, row-major.
    pub data: Vec<u8>,
}

/// The most a gzip-compressed IDX file may inflate to: EMNIST's largest split is about
/// 0.7 GB, so 4 GiB leaves room while a small "gzip bomb" cannot exhaust memory.
pub const MAX_INFLATED_BYTES: u64 = 4 << 30;

/// Reads the whole file, inflating it when it starts with the gzip magic (whatever its name).
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    inflate_limited(path, raw, MAX_INFLATED_BYTES)
}

/// [`read_maybe_gz`] on bytes already in memory (`path` only labels errors): `raw` itself,
/// or its gzip inflation up to [`MAX_INFLATED_BYTES`].
pub fn decode_maybe_gz(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>> {
    inflate_limited(path, raw, MAX_INFLATED_BYTES)
}

/// `raw` itself, or its gzip inflation when it starts with the gzip magic, refusing to
/// inflate beyond `limit` bytes.
fn inflate_limited(path: &Path, raw: Vec<u8>, limit: u64) -> Result<Vec<u8>> {
    if !(raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b) {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(1 << 28));
    // One byte past the limit tells an exact fit from an overflow.
    flate2::read::MultiGzDecoder::new(&raw[..])
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| Error::Idx {
            path: path.to_path_buf(),
            problem: format!("corrupt gzip stream ({e})"),
        })?;
    if out.len() as u64 > limit {
        return Err(Error::Idx {
            path: path.to_path_buf(),
            problem: format!("inflates to more than {limit} bytes; refusing"),
        });
    }
    Ok(out)
}

/// Parses IDX bytes. `path` only labels errors.
pub fn parse_idx(path: &Path, bytes: &[u8]) -> Result<IdxArray> {
    let err = |problem: String| Error::Idx {
        path: path.to_path_buf(),
        problem,
    };
    if bytes.len() < 4 {
        return Err(err(format!(
            "truncated: {} bytes, too short for an IDX header",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(err(format!(
            "wrong magic number 0x{:02x}{:02x}{:02x}{:02x}: not an IDX file",
            bytes[0], bytes[1], bytes[2], bytes[3]
        )));
    }
    if bytes[2] != 0x08 {
        return Err(err(format!(
            "unsupported IDX data type 0x{:02x} (only 0x08, unsigned byte, is used by image sets)",
            bytes[2]
        )));
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 {
        return Err(err("IDX header declares 0 dimensions".into()));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(err(format!(
            "truncated: header needs {header} bytes, file has {}",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| err(format!("dimensions {dims:?} overflow")))?;
    let available = bytes.len() - header;
    if available < expected {
        return Err(err(format!(
            "truncated: dimensions {dims:?} need {expected} data bytes, file has {available}"
        )));
    }
    if available > expected {
        return Err(err(format!(
            "{} trailing bytes after the {expected} data bytes of dimensions {dims:?}",
            available - expected
        )));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Reads an IDX file (plain or gzip).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = read_maybe_gz(path)?;
    parse_idx(path, &bytes)
}

/// Reads an image file (3 dimensions: count x rows x cols) and a label file (1 dimension) into
/// a [`Dataset`] whose classes are named "0", "1", ... up to the largest label.
pub fn read_idx_pair(images: &Path, labels: &Path, order: PixelOrder) -> Result<Dataset> {
    let img = read_idx(images)?;
    if img.dims.len() != 3 {
        return Err(Error::Idx {
            path: images.to_path_buf(),
            problem: format!(
                "wrong dimensions: an image file needs 3 (count, rows, cols), found {:?}",
                img.dims
            ),
        });
    }
    let lab = read_idx(labels)?;
    if lab.dims.len() != 1 {
        return Err(Error::Idx {
            path: labels.to_path_buf(),
            problem: format!(
                "wrong dimensions: a label file needs 1 (count), found {:?}",
                lab.dims
            ),
        });
    }
    let (n, h, w) = (img.dims[0], img.dims[1], img.dims[2]);
    if n != lab.dims[0] {
        return Err(Error::CountMismatch {
            images: images.to_path_buf(),
            n_images: n,
            labels: labels.to_path_buf(),
            n_labels: lab.dims[0],
        });
    }
    let mut pixels = img.data;
    if order == PixelOrder::Transposed {
        let mut t = vec![0u8; pixels.len()];
        for k in 0..n {
            let src = &pixels[k * h * w..(k + 1) * h * w];
            let dst = &mut t[k * h * w..(k + 1) * h * w];
            // Stored column-major (w x h): element (c, r) goes to (r, c).
            for r in 0..h {
                for c in 0..w {
                    dst[r * w + c] = src[c * h + r];
                }
            }
        }
        pixels = t;
    }
    let labels_u: Vec<u32> = lab.data.iter().map(|&l| l as u32).collect();
    let n_classes = labels_u.iter().max().map_or(0, |m| *m as usize + 1);
    Dataset::new(
        pixels,
        labels_u,
        h,
        w,
        (0..n_classes).map(|c| c.to_string()).collect(),
    )
}

/// Encodes a u8 array as IDX bytes (used by tests and by tools that write small sets).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gzip bomb (a few KiB inflating to far more) used to be inflated whole.
    #[test]
    fn gzip_inflation_is_bounded() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 1 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 4096);
        let p = Path::new("bomb.gz");
        let e = inflate_limited(p, bomb.clone(), 1000).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Corrupt);
        assert!(e.to_string().contains("refusing"), "{e}");
        assert_eq!(inflate_limited(p, bomb, 1 << 20).unwrap().len(), 1 << 20);
    }
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn round_trip_plain_and_gz() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        let raw = encode_idx(&[2, 3, 4], &data);
        let p = dir.path().join("a.idx");
        std::fs::write(&p, &raw).unwrap();
        let q = dir.path().join("a.idx.gz");
        std::fs::write(&q, gz(&raw)).unwrap();
        for path in [&p, &q] {
            let a = read_idx(path).unwrap();
            assert_eq!(a.dims, vec![2, 3, 4]);
            assert_eq!(a.data, data);
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let p = Path::new("x.idx");
        let e = parse_idx(p, &[1, 2, 3, 4, 0, 0]).unwrap_err().to_string();
        assert!(
            e.contains("wrong magic number") && e.contains("x.idx"),
            "{e}"
        );
        let raw = encode_idx(&[2, 3, 4], &[0; 20]);
        let e = parse_idx(p, &raw).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let e = parse_idx(p, &raw[..6]).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let mut raw = encode_idx(&[1], &[7]);
        raw.push(0);
        let e = parse_idx(p, &raw).unwrap_err().to_string();
        assert!(e.contains("trailing"), "{e}");
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut z = gz(&encode_idx(&[3], &[1, 2, 3]));
        let n = z.len();
        z.truncate(n / 2);
        let p = dir.path().join("c.gz");
        std::fs::write(&p, &z).unwrap();
        let e = read_idx(&p).unwrap_err().to_string();
        assert!(e.contains("c.gz"), "{e}");
    }

    #[test]
    fn pair_checks_counts_and_dims_and_transposes() {
        let dir = tempfile::tempdir().unwrap();
        let im = dir.path().join("im");
        let lb = dir.path().join("lb");
        // one 2x3 image stored transposed (3x2 column-major)
        let stored = [1u8, 4, 2, 5, 3, 6];
        std::fs::write(&im, encode_idx(&[1, 2, 3], &stored)).unwrap();
        std::fs::write(&lb, encode_idx(&[1], &[4])).unwrap();
        let d = read_idx_pair(&im, &lb, PixelOrder::Transposed).unwrap();
        assert_eq!(d.image(0), &[1, 2, 3, 4, 5, 6]);
        assert_eq!(d.classes.len(), 5);
        std::fs::write(&lb, encode_idx(&[2], &[4, 1])).unwrap();
        let e = read_idx_pair(&im, &lb, PixelOrder::RowMajor).unwrap_err();
        assert!(matches!(e, Error::CountMismatch { .. }));
        std::fs::write(&lb, encode_idx(&[1, 1], &[4])).unwrap();
        let e = read_idx_pair(&im, &lb, PixelOrder::RowMajor)
            .unwrap_err()
            .to_string();
        assert!(e.contains("wrong dimensions"), "{e}");
    }
}
