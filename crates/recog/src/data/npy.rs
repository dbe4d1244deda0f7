//! NumPy `.npy` files of 2-D float32 arrays: how `recog face embed --npy` writes embeddings
//! and `recog cluster` reads them. The header is untrusted: its length, shape and dtype are
//! checked against the file before anything is allocated.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let p = dir.path().join("x.npy");
//! recog::data::npy::write(&p, &[vec![1.0, 2.0], vec![3.0, 4.0]], 2).unwrap();
//! let (x, n, d) = recog::data::npy::read(&p).unwrap();
//! assert_eq!((x, n, d), (vec![1.0, 2.0, 3.0, 4.0], 2, 2));
//! ```

use std::path::Path;

use crate::{Error, Result};

fn bad(path: &Path, problem: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Writes rows of `dim` floats as a C-order float32 array (format version 1.0).
pub fn write(path: &Path, rows: &[Vec<f32>], dim: usize) -> Result<()> {
    if let Some(r) = rows.iter().find(|r| r.len() != dim) {
        return Err(Error::Shape {
            name: format!("{}: row", path.display()),
            expected: vec![dim],
            got: vec![r.len()],
        });
    }
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        rows.len(),
        dim
    );
    // Magic (6) + version (2) + header length (2) + header, padded to a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let len = u16::try_from(header.len()).map_err(|_| bad(path, "header too long"))?;
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend(len.to_le_bytes());
    bytes.extend(header.as_bytes());
    for r in rows {
        for v in r {
            bytes.extend(v.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Reads a 2-D C-order float32 array: `(values, rows, columns)`.
pub fn read(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let b = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(path, &b)
}

/// [`read`] on bytes already in memory; `path` names them in errors.
pub fn parse(path: &Path, b: &[u8]) -> Result<(Vec<f32>, usize, usize)> {
    if !b.starts_with(b"\x93NUMPY") || b.len() < 10 {
        return Err(bad(path, "not a .npy file"));
    }
    let (hl, off): (usize, usize) = match b[6] {
        1 => (usize::from(u16::from_le_bytes([b[8], b[9]])), 10),
        2 | 3 => {
            let l = b
                .get(8..12)
                .ok_or_else(|| bad(path, "truncated .npy header length"))?;
            let l = u32::from_le_bytes([l[0], l[1], l[2], l[3]]);
            (
                usize::try_from(l).map_err(|_| bad(path, "header length overflows"))?,
                12,
            )
        }
        v => {
            return Err(bad(
                path,
                format!(".npy format version {v} is not 1, 2 or 3"),
            ))
        }
    };
    let end = off
        .checked_add(hl)
        .filter(|&e| e <= b.len())
        .ok_or_else(|| {
            bad(
                path,
                format!("header of {hl} bytes runs past the end of the file"),
            )
        })?;
    let header = String::from_utf8_lossy(&b[off..end]).to_string();
    if !header.contains("'<f4'") || header.contains("'fortran_order': True") {
        return Err(bad(
            path,
            format!("need a C-order float32 array, header is {header}"),
        ));
    }
    let shape = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or("")
        .trim()
        .trim_start_matches('(');
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse()
                .map_err(|_| bad(path, format!("shape ({shape}): {t:?} is not a size")))
        })
        .collect::<Result<_>>()?;
    let [n, d] = dims[..] else {
        return Err(bad(path, format!("need a 2-D array, shape is ({shape})")));
    };
    let data = &b[end..];
    let values = n
        .checked_mul(d)
        .filter(|v| v.checked_mul(4) == Some(data.len()))
        .ok_or_else(|| {
            bad(
                path,
                format!(
                    "shape ({n}, {d}) does not match the {} bytes of data",
                    data.len()
                ),
            )
        })?;
    let x: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    debug_assert_eq!(x.len(), values);
    Ok((x, n, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(h: &str, data: &[u8]) -> Vec<u8> {
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        b.extend(data);
        b
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        write(&p, &[vec![0.5; 3], vec![-1.0; 3]], 3).unwrap();
        let (x, n, d) = read(&p).unwrap();
        assert_eq!((n, d), (2, 3));
        assert_eq!(x[3], -1.0);
        assert!(write(&p, &[vec![0.5; 2]], 3).is_err());
    }

    /// Headers that lie: a shape whose product overflows, one larger than the data, a header
    /// length past the end, an unknown version, a 3-D or non-numeric shape.
    #[test]
    fn header_sizes_cannot_steer_allocation() {
        let p = Path::new("t.npy");
        let f4 = "{'descr': '<f4', 'fortran_order': False, 'shape': ";
        let cases: Vec<Vec<u8>> = vec![
            header(&format!("{f4}({}, {}), }}", usize::MAX, 4), &[0; 16]),
            header(&format!("{f4}(1000000, 1000000), }}"), &[0; 16]),
            header(&format!("{f4}(2, 3), }}"), &[0; 16]),
            header(&format!("{f4}(2, 2, 2), }}"), &[0; 32]),
            header(&format!("{f4}(a, 2), }}"), &[0; 8]),
            {
                let mut b = header(&format!("{f4}(1, 1), }}"), &[0; 4]);
                b[8] = 0xff;
                b[9] = 0xff;
                b
            },
            {
                let mut b = header(&format!("{f4}(1, 1), }}"), &[0; 4]);
                b[6] = 9;
                b
            },
            {
                let mut b = header(&format!("{f4}(1, 1), }}"), &[0; 4]);
                b[6] = 2;
                b.truncate(11);
                b
            },
            b"\x93NUMPY".to_vec(),
        ];
        for (i, c) in cases.iter().enumerate() {
            let e = parse(p, c).expect_err(&format!("case {i}"));
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "case {i}: {e}");
        }
        let ok = header(&format!("{f4}(2, 2), }}"), &[0; 16]);
        assert_eq!(parse(p, &ok).unwrap().1, 2);
    }
}
