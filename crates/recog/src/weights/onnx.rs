//! ONNX initializers: the weights stored in an ONNX model's graph.
//!
//! A model file is a protobuf `ModelProto`; its `graph` (field 7) holds `initializer`
//! tensors (field 5, `TensorProto`: `dims` = 1, `data_type` = 2, `float_data` = 4,
//! `int32_data` = 5, `int64_data` = 7, `name` = 8, `raw_data` = 9, `double_data` = 10).
//! This reader decodes just that much protobuf by hand, so no code generator or schema
//! crate is needed. The graph's operators are not interpreted: each model in [`crate::nn`]
//! is written out as a burn module and takes its parameters from here by name.
//!
//! ```no_run
//! let paths = recog::face::ModelPaths::in_home(&recog::Home::from_env());
//! let map = recog::weights::onnx::load(&paths.blazeface)?;
//! println!("{} initializers", map.tensors.len());
//! # Ok::<(), recog::Error>(())
//! ```

use std::path::Path;

use super::{read_file, HostTensor, WeightMap};
use crate::{Error, Result};

const FLOAT: i64 = 1;
const UINT8: i64 = 2;
const INT8: i64 = 3;
const INT32: i64 = 6;
const INT64: i64 = 7;
const DOUBLE: i64 = 11;

/// Reads every initializer of an ONNX model as `f32` (integer tensors are converted).
pub fn load(path: &Path) -> Result<WeightMap> {
    let bytes = read_file(path)?;
    parse(&bytes)
        .map_err(|problem| Error::Checkpoint {
            path: path.to_path_buf(),
            problem: format!("not a readable ONNX model: {problem}"),
        })
        .map(|tensors| {
            let mut map = WeightMap::new(path);
            for (name, t) in tensors {
                map.tensors.insert(name, t);
            }
            map
        })
}

type Parsed = std::result::Result<Vec<(String, HostTensor)>, String>;

fn parse(model: &[u8]) -> Parsed {
    let mut out = Vec::new();
    for field in Fields::new(model) {
        let (num, val) = field?;
        if let (7, Value::Bytes(graph)) = (num, val) {
            for g in Fields::new(graph) {
                let (gnum, gval) = g?;
                if let (5, Value::Bytes(t)) = (gnum, gval) {
                    out.push(tensor(t)?);
                }
            }
        }
    }
    if out.is_empty() {
        return Err("no graph initializers found".into());
    }
    Ok(out)
}

/// A dimension read as a varint: ONNX stores int64, so a negative one arrives as a huge
/// unsigned value.
fn dim(v: u64) -> std::result::Result<usize, String> {
    i64::try_from(v)
        .ok()
        .and_then(|d| usize::try_from(d).ok())
        .ok_or_else(|| format!("dimension {} is negative or too large", v as i64))
}

fn tensor(b: &[u8]) -> std::result::Result<(String, HostTensor), String> {
    let mut dims = Vec::new();
    let mut dtype = 0i64;
    let mut name = String::new();
    let mut raw: Option<&[u8]> = None;
    let mut values: Vec<f32> = Vec::new();
    for f in Fields::new(b) {
        match f? {
            (1, Value::Varint(v)) => dims.push(dim(v)?),
            (1, Value::Bytes(p)) => {
                for v in varints(p)? {
                    dims.push(dim(v)?);
                }
            }
            (2, Value::Varint(v)) => dtype = v as i64,
            (4, Value::Bytes(p)) => values.extend(super::le_f32(p)),
            (4, Value::Fixed32(v)) => values.push(f32::from_bits(v)),
            (5 | 7, Value::Bytes(p)) => {
                values.extend(varints(p)?.into_iter().map(|v| v as i64 as f32))
            }
            (5 | 7, Value::Varint(v)) => values.push(v as i64 as f32),
            (10, Value::Bytes(p)) => values.extend(p.chunks_exact(8).map(|c| {
                f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
            })),
            (8, Value::Bytes(p)) => name = String::from_utf8_lossy(p).into_owned(),
            (9, Value::Bytes(p)) => raw = Some(p),
            _ => {}
        }
    }
    if let Some(r) = raw {
        values = match dtype {
            FLOAT => super::le_f32(r),
            DOUBLE => r
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            INT64 => r
                .chunks_exact(8)
                .map(|c| {
                    i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            INT32 => super::le_i32(r),
            UINT8 => r.iter().map(|&v| v as f32).collect(),
            INT8 => r.iter().map(|&v| v as i8 as f32).collect(),
            other => return Err(format!("{name}: unsupported data type {other}")),
        };
    }
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("{name}: shape {dims:?} overflows"))?;
    if values.len() != n {
        return Err(format!(
            "{name}: shape {dims:?} needs {n} values, found {}",
            values.len()
        ));
    }
    Ok((
        name,
        HostTensor {
            shape: dims,
            data: values,
        },
    ))
}

enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

struct Fields<'a> {
    b: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self {
            b,
            pos: 0,
            failed: false,
        }
    }
}

fn varint(b: &[u8], pos: &mut usize) -> std::result::Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

fn varints(b: &[u8]) -> std::result::Result<Vec<u64>, String> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < b.len() {
        out.push(varint(b, &mut pos)?);
    }
    Ok(out)
}

impl<'a> Iterator for Fields<'a> {
    type Item = std::result::Result<(u64, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.b.len() {
            return None;
        }
        let r = (|| {
            let key = varint(self.b, &mut self.pos)?;
            let (num, wire) = (key >> 3, key & 7);
            let v = match wire {
                0 => Value::Varint(varint(self.b, &mut self.pos)?),
                1 => {
                    self.pos += 8;
                    Value::Fixed64
                }
                2 => {
                    let len = varint(self.b, &mut self.pos)? as usize;
                    let end = self.pos.checked_add(len).ok_or("length overflow")?;
                    let s = self.b.get(self.pos..end).ok_or("truncated field")?;
                    self.pos = end;
                    Value::Bytes(s)
                }
                5 => {
                    let s = self
                        .b
                        .get(self.pos..self.pos + 4)
                        .ok_or("truncated fixed32")?;
                    self.pos += 4;
                    Value::Fixed32(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
                }
                w => return Err(format!("unsupported wire type {w}")),
            };
            if self.pos > self.b.len() {
                return Err("truncated message".to_string());
            }
            Ok((num, v))
        })();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn key(num: u64, wire: u64) -> Vec<u8> {
        enc_varint((num << 3) | wire)
    }
    fn enc_varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }
    fn bytes_field(num: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = key(num, 2);
        out.extend(enc_varint(payload.len() as u64));
        out.extend(payload);
        out
    }

    /// A model with one raw-data float initializer and one float_data initializer, written
    /// field by field as protoc would.
    pub(crate) fn tiny_model() -> Vec<u8> {
        let mut t1 = Vec::new();
        for d in [2u64, 3] {
            t1.extend(key(1, 0));
            t1.extend(enc_varint(d));
        }
        t1.extend(key(2, 0));
        t1.extend(enc_varint(1));
        t1.extend(bytes_field(8, b"w"));
        let raw: Vec<u8> = (0..6)
            .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
            .collect();
        t1.extend(bytes_field(9, &raw));
        let mut t2 = Vec::new();
        t2.extend(bytes_field(1, &enc_varint(2)));
        t2.extend(key(2, 0));
        t2.extend(enc_varint(1));
        t2.extend(bytes_field(8, b"b"));
        let fl: Vec<u8> = [1.0f32, -1.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        t2.extend(bytes_field(4, &fl));
        let mut graph = bytes_field(2, b"g");
        graph.extend(bytes_field(5, &t1));
        graph.extend(bytes_field(5, &t2));
        let mut model = key(1, 0);
        model.extend(enc_varint(7)); // ir_version
        model.extend(bytes_field(7, &graph));
        model
    }

    #[test]
    fn reads_raw_and_typed_initializers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.onnx");
        std::fs::write(&p, tiny_model()).unwrap();
        let mut map = load(&p).unwrap();
        assert_eq!(
            map.take("w", &[2, 3]).unwrap().data,
            vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
        );
        assert_eq!(map.take("b", &[2]).unwrap().data, vec![1.0, -1.0]);
    }

    #[test]
    fn truncated_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.onnx");
        let m = tiny_model();
        std::fs::write(&p, &m[..m.len() - 5]).unwrap();
        let err = load(&p).unwrap_err().to_string();
        assert!(err.contains("m.onnx") && err.contains("ONNX"), "{err}");
    }

    /// Dimensions whose product wraps (2^32 x 2^32 is 0 in wrapping arithmetic, which matched
    /// an empty data field) and negative ones are refused.
    #[test]
    fn dimensions_cannot_overflow_or_be_negative() {
        for dims in [vec![1u64 << 32, 1 << 32], vec![u64::MAX, 1]] {
            let mut t = Vec::new();
            for d in &dims {
                t.extend(key(1, 0));
                t.extend(enc_varint(*d));
            }
            t.extend(key(2, 0));
            t.extend(enc_varint(1));
            t.extend(bytes_field(8, b"w"));
            t.extend(bytes_field(9, b""));
            let e = tensor(&t).unwrap_err();
            assert!(
                e.contains("overflows") || e.contains("negative"),
                "{dims:?}: {e}"
            );
        }
    }
}
