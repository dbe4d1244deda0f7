//! TensorFlow Lite models (`.tflite`): a FlatBuffer holding tensors, their constant buffers
//! and the operators of one subgraph.
//!
//! Only what running a float32 convolutional network needs is read: tensors (shape, type,
//! name, constant data), the operator codes and, for convolutions and element-wise ops,
//! their options (padding, strides, dilations, fused activation). Field numbers follow
//! TensorFlow's `schema.fbs` (version 3). Quantised models are refused.
//!
//! ```
//! // Not a TFLite file: an error naming the file, never a panic.
//! let dir = tempfile::tempdir().unwrap();
//! let p = dir.path().join("x.tflite");
//! std::fs::write(&p, b"definitely not a flatbuffer").unwrap();
//! assert!(recog::weights::tflite::load(&p).unwrap_err().to_string().contains("x.tflite"));
//! ```

use std::path::{Path, PathBuf};

use super::read_file;
use crate::{Error, Result};

/// TFLite builtin operator codes (`BuiltinOperator` in `schema.fbs`) that recog runs.
pub mod op {
    /// `ADD`.
    pub const ADD: i32 = 0;
    /// `CONV_2D`.
    pub const CONV_2D: i32 = 3;
    /// `DEPTHWISE_CONV_2D`.
    pub const DEPTHWISE_CONV_2D: i32 = 4;
    /// `MUL`.
    pub const MUL: i32 = 18;
    /// `RELU`.
    pub const RELU: i32 = 19;
    /// `RELU6`.
    pub const RELU6: i32 = 21;
    /// `RESHAPE`.
    pub const RESHAPE: i32 = 22;
    /// `SUB`.
    pub const SUB: i32 = 41;
    /// `ABS`.
    pub const ABS: i32 = 101;
}

/// One tensor of the subgraph.
#[derive(Debug, Clone)]
pub struct TfLiteTensor {
    /// Name given by the converter.
    pub name: String,
    /// Shape (NHWC for images; conv filters `[out, h, w, in]`, depthwise `[1, h, w, out]`).
    pub shape: Vec<usize>,
    /// `TensorType`: 0 float32, 2 int32, 3 uint8, 9 int8, ...
    pub dtype: i8,
    /// The constant values (float32 and int32 as `f32`), if the tensor has a buffer.
    pub data: Option<Vec<f32>>,
}

/// A convolution's `Padding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Output `ceil(in / stride)`, the odd pixel of padding after (code 0).
    Same,
    /// No padding (code 1).
    Valid,
}

impl Padding {
    fn from_code(c: i8) -> Option<Self> {
        match c {
            0 => Some(Padding::Same),
            1 => Some(Padding::Valid),
            _ => None,
        }
    }
}

/// A fused `ActivationFunctionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FusedActivation {
    /// None (code 0).
    None,
    /// ReLU (1).
    Relu,
    /// Clamp to [-1, 1] (2).
    ReluN1To1,
    /// Clamp to [0, 6] (3).
    Relu6,
    /// tanh (4).
    Tanh,
    /// Sign bit (5).
    SignBit,
}

impl FusedActivation {
    fn from_code(c: i8) -> Option<Self> {
        Some(match c {
            0 => FusedActivation::None,
            1 => FusedActivation::Relu,
            2 => FusedActivation::ReluN1To1,
            3 => FusedActivation::Relu6,
            4 => FusedActivation::Tanh,
            5 => FusedActivation::SignBit,
            _ => return None,
        })
    }
}

/// Options of an operator (those of convolutions and element-wise ops; the defaults
/// elsewhere).
#[derive(Debug, Clone, PartialEq)]
pub struct TfLiteOptions {
    /// The convolution's padding.
    pub padding: Padding,
    /// (height, width).
    pub stride: [usize; 2],
    /// (height, width).
    pub dilation: [usize; 2],
    /// The fused activation.
    pub activation: FusedActivation,
}

impl Default for TfLiteOptions {
    /// SAME padding, unit strides and dilations, no activation (the schema's defaults).
    fn default() -> Self {
        Self {
            padding: Padding::Same,
            stride: [1, 1],
            dilation: [1, 1],
            activation: FusedActivation::None,
        }
    }
}

/// One operator: its builtin code, tensor indices and options.
#[derive(Debug, Clone)]
pub struct TfLiteOp {
    /// `BuiltinOperator` code (see [`op`]).
    pub code: i32,
    /// Input tensor indices (-1 for an omitted optional input).
    pub inputs: Vec<i32>,
    /// Output tensor indices.
    pub outputs: Vec<i32>,
    /// Parsed options.
    pub options: TfLiteOptions,
}

/// The first subgraph of a `.tflite` file.
#[derive(Debug, Clone)]
pub struct TfLiteModel {
    /// Where it was read from.
    pub source: PathBuf,
    /// Tensors by index.
    pub tensors: Vec<TfLiteTensor>,
    /// Operators in execution order.
    pub ops: Vec<TfLiteOp>,
    /// Subgraph input tensor indices.
    pub inputs: Vec<i32>,
    /// Subgraph output tensor indices.
    pub outputs: Vec<i32>,
    /// SHA-256 of the file.
    pub sha256: String,
}

/// A FlatBuffer table, by its position in the buffer.
#[derive(Clone, Copy)]
struct Table {
    pos: usize,
}

struct Reader<'a> {
    buf: &'a [u8],
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn err(&self, what: impl std::fmt::Display) -> Error {
        Error::Checkpoint {
            path: self.path.to_path_buf(),
            problem: format!("not a valid TFLite FlatBuffer: {what}"),
        }
    }

    fn bytes<const N: usize>(&self, at: usize) -> Result<[u8; N]> {
        at.checked_add(N)
            .and_then(|end| self.buf.get(at..end))
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| self.err(format!("read past the end at byte {at}")))
    }

    fn u32(&self, at: usize) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes(at)?))
    }

    fn i32(&self, at: usize) -> Result<i32> {
        Ok(i32::from_le_bytes(self.bytes(at)?))
    }

    fn u16(&self, at: usize) -> Result<u16> {
        Ok(u16::from_le_bytes(self.bytes(at)?))
    }

    fn table(&self, pos: usize) -> Table {
        Table { pos }
    }

    /// Position of field `id` of table `t`, if present.
    fn field(&self, t: Table, id: usize) -> Result<Option<usize>> {
        let vt = usize::try_from(t.pos as i64 - self.i32(t.pos)? as i64)
            .map_err(|_| self.err(format!("vtable before the start at table {}", t.pos)))?;
        let vt_len = self.u16(vt)? as usize;
        let slot = 4 + 2 * id;
        if slot + 2 > vt_len {
            return Ok(None);
        }
        let off = self.u16(vt + slot)? as usize;
        Ok((off != 0).then_some(t.pos + off))
    }

    /// Follows the offset stored at `at` (tables, vectors, strings).
    fn deref(&self, at: usize) -> Result<usize> {
        Ok(at + self.u32(at)? as usize)
    }

    fn sub_table(&self, t: Table, id: usize) -> Result<Option<Table>> {
        Ok(match self.field(t, id)? {
            Some(p) => Some(self.table(self.deref(p)?)),
            None => None,
        })
    }

    /// (element start, length) of the vector in field `id`.
    fn vector(&self, t: Table, id: usize) -> Result<Option<(usize, usize)>> {
        Ok(match self.field(t, id)? {
            Some(p) => {
                let v = self.deref(p)?;
                Some((v + 4, self.u32(v)? as usize))
            }
            None => None,
        })
    }

    fn tables(&self, t: Table, id: usize) -> Result<Vec<Table>> {
        let Some((start, n)) = self.vector(t, id)? else {
            return Ok(Vec::new());
        };
        (0..n)
            .map(|i| Ok(self.table(self.deref(start + 4 * i)?)))
            .collect()
    }

    fn ints(&self, t: Table, id: usize) -> Result<Vec<i32>> {
        let Some((start, n)) = self.vector(t, id)? else {
            return Ok(Vec::new());
        };
        (0..n).map(|i| self.i32(start + 4 * i)).collect()
    }

    fn string(&self, t: Table, id: usize) -> Result<String> {
        let Some((start, n)) = self.vector(t, id)? else {
            return Ok(String::new());
        };
        let b = self
            .buf
            .get(start..start + n)
            .ok_or_else(|| self.err("string past the end"))?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }

    fn scalar_i32(&self, t: Table, id: usize, default: i32) -> Result<i32> {
        Ok(match self.field(t, id)? {
            Some(p) => self.i32(p)?,
            None => default,
        })
    }

    fn scalar_i8(&self, t: Table, id: usize, default: i8) -> Result<i8> {
        Ok(match self.field(t, id)? {
            Some(p) => self.bytes::<1>(p)?[0] as i8,
            None => default,
        })
    }
}

/// The values of a constant tensor whose buffer holds `n` bytes at `start`.
fn constant(
    r: &Reader,
    start: usize,
    n: usize,
    dtype: i8,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>> {
    let bytes = start
        .checked_add(n)
        .and_then(|end| r.buf.get(start..end))
        .ok_or_else(|| r.err("buffer past the end"))?;
    let values = match dtype {
        0 => super::le_f32(bytes),
        2 => super::le_i32(bytes),
        other => {
            return Err(Error::Checkpoint {
                path: r.path.to_path_buf(),
                problem: format!(
                    "tensor {name} has type {other}; float32 and int32 constants are supported"
                ),
            })
        }
    };
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if count != Some(values.len()) {
        return Err(Error::Shape {
            name: format!("{name} in {}", r.path.display()),
            expected: shape.to_vec(),
            got: vec![values.len()],
        });
    }
    Ok(values)
}

/// Reads a `.tflite` file's first subgraph.
pub fn load(path: &Path) -> Result<TfLiteModel> {
    use sha2::{Digest, Sha256};
    let buf = read_file(path)?;
    let sha256 = crate::digest::hex(&Sha256::digest(&buf));
    let r = Reader { buf: &buf, path };
    if buf.get(4..8) != Some(b"TFL3".as_slice()) {
        return Err(r.err("no TFL3 file identifier"));
    }
    let model = r.table(r.deref(0)?);
    let codes: Vec<i32> = r
        .tables(model, 1)?
        .into_iter()
        .map(|c| {
            // `builtin_code` (field 3) replaced the byte-sized `deprecated_builtin_code`
            // (field 0); files carry the larger of the two.
            let old = r.scalar_i8(c, 0, 0)? as i32;
            let new = r.scalar_i32(c, 3, 0)?;
            Ok(old.max(new))
        })
        .collect::<Result<_>>()?;
    let buffers = r.tables(model, 4)?;
    let subgraph = *r
        .tables(model, 2)?
        .first()
        .ok_or_else(|| r.err("no subgraph"))?;
    let mut tensors = Vec::new();
    for t in r.tables(subgraph, 0)? {
        let shape: Vec<usize> = r
            .ints(t, 0)?
            .into_iter()
            .map(|d| d.max(0) as usize)
            .collect();
        let dtype = r.scalar_i8(t, 1, 0)?;
        let name = r.string(t, 3)?;
        if r.sub_table(t, 4)?
            .map(|q| r.field(q, 2)) // quantization.scale
            .transpose()?
            .flatten()
            .is_some()
        {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                problem: format!("tensor {name} is quantised; only float32 models are supported"),
            });
        }
        let buffer = match r.field(t, 2)? {
            Some(p) => r.u32(p)? as usize,
            None => 0,
        };
        let data = match buffers.get(buffer) {
            Some(&b) => r.vector(b, 0)?.filter(|&(_, n)| n > 0),
            None => None,
        };
        let data = match data {
            Some((start, n)) => Some(constant(&r, start, n, dtype, &name, &shape)?),
            None => None,
        };
        tensors.push(TfLiteTensor {
            name,
            shape,
            dtype,
            data,
        });
    }
    let mut ops = Vec::new();
    for o in r.tables(subgraph, 3)? {
        let idx = match r.field(o, 0)? {
            Some(p) => r.u32(p)? as usize,
            None => 0,
        };
        let code = *codes
            .get(idx)
            .ok_or_else(|| r.err(format!("operator code index {idx}")))?;
        let mut options = TfLiteOptions::default();
        let padding = |c: i8| {
            Padding::from_code(c).ok_or_else(|| r.err(format!("operator {idx}: padding code {c}")))
        };
        let activation = |c: i8| {
            FusedActivation::from_code(c)
                .ok_or_else(|| r.err(format!("operator {idx}: fused activation code {c}")))
        };
        let step = |v: i32| {
            conv_step(v).ok_or_else(|| {
                r.err(format!(
                    "operator {idx}: stride or dilation {v} (1-{MAX_STEP} expected)"
                ))
            })
        };
        if let Some(opt) = r.sub_table(o, 4)? {
            match code {
                op::CONV_2D => {
                    options.padding = padding(r.scalar_i8(opt, 0, 0)?)?;
                    options.stride = [
                        step(r.scalar_i32(opt, 2, 1)?)?,
                        step(r.scalar_i32(opt, 1, 1)?)?,
                    ];
                    options.activation = activation(r.scalar_i8(opt, 3, 0)?)?;
                    options.dilation = [
                        step(r.scalar_i32(opt, 5, 1)?)?,
                        step(r.scalar_i32(opt, 4, 1)?)?,
                    ];
                }
                op::DEPTHWISE_CONV_2D => {
                    options.padding = padding(r.scalar_i8(opt, 0, 0)?)?;
                    options.stride = [
                        step(r.scalar_i32(opt, 2, 1)?)?,
                        step(r.scalar_i32(opt, 1, 1)?)?,
                    ];
                    options.activation = activation(r.scalar_i8(opt, 4, 0)?)?;
                    options.dilation = [
                        step(r.scalar_i32(opt, 6, 1)?)?,
                        step(r.scalar_i32(opt, 5, 1)?)?,
                    ];
                }
                op::ADD | op::SUB | op::MUL => {
                    options.activation = activation(r.scalar_i8(opt, 0, 0)?)?;
                }
                _ => {}
            }
        }
        ops.push(TfLiteOp {
            code,
            inputs: r.ints(o, 1)?,
            outputs: r.ints(o, 2)?,
            options,
        });
    }
    Ok(TfLiteModel {
        source: path.to_path_buf(),
        tensors,
        ops,
        inputs: r.ints(subgraph, 1)?,
        outputs: r.ints(subgraph, 2)?,
        sha256,
    })
}

/// The largest stride or dilation accepted (far beyond any real network's).
const MAX_STEP: usize = 1024;

/// A convolution's stride or dilation as stored: 0 divides by zero downstream and a negative
/// one wraps to a huge size, so both are refused.
fn conv_step(v: i32) -> Option<usize> {
    usize::try_from(v)
        .ok()
        .filter(|s| (1..=MAX_STEP).contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_tflite_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.tflite");
        std::fs::write(&p, b"{\"format\": \"graph-model\"}").unwrap();
        let err = load(&p).unwrap_err().to_string();
        assert!(
            err.contains("model.tflite") && err.contains("TFL3"),
            "{err}"
        );
        // A header that points past the end is an error, not a panic.
        let mut b = vec![0xff, 0xff, 0, 0];
        b.extend(b"TFL3");
        std::fs::write(&p, &b).unwrap();
        let err = load(&p).unwrap_err().to_string();
        assert!(err.contains("past the end"), "{err}");
    }

    /// A zero stride panicked (division by zero) in the graph builder.
    #[test]
    fn zero_negative_and_absurd_strides_are_refused() {
        assert_eq!(conv_step(0), None);
        assert_eq!(conv_step(-1), None);
        assert_eq!(conv_step(i32::MAX), None);
        assert_eq!(conv_step(2), Some(2));
    }

    #[test]
    fn option_codes_become_enums_and_unknown_codes_are_refused() {
        assert_eq!(Padding::from_code(1), Some(Padding::Valid));
        assert_eq!(Padding::from_code(7), None);
        assert_eq!(FusedActivation::from_code(3), Some(FusedActivation::Relu6));
        assert_eq!(FusedActivation::from_code(-1), None);
    }
}
