//! Loaders for foreign weight formats, one format per file.
//!
//! Every loader yields a [`WeightMap`]: named host tensors in the layout of the source
//! checkpoint. Models take their parameters out of it by their checkpoint names with
//! [`WeightMap::take`], which checks the shape and names both shapes on a mismatch.
//!
//! ```
//! use recog::weights::{HostTensor, WeightMap};
//! let mut map = WeightMap::new("toy");
//! map.tensors.insert("w".into(), HostTensor { shape: vec![2, 3], data: vec![0.0; 6] });
//! map.tensors.insert("b".into(), HostTensor { shape: vec![3], data: vec![0.0; 3] });
//! assert_eq!(map.take("w", &[2, 3]).unwrap().data.len(), 6);
//! // A shape mismatch names the tensor and both shapes.
//! let e = map.take("b", &[2]).unwrap_err().to_string();
//! assert!(e.contains("b") && e.contains("[2]") && e.contains("[3]"), "{e}");
//! ```

pub mod hdf5;
pub mod onnx;
pub mod tfjs;
pub mod tflite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::{Error, Result};

/// A tensor held on the host: row-major `f32` values and their shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Values in row-major order; `data.len()` is the product of `shape`.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Number of elements the shape implies.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Moves the tensor onto `device` as a burn tensor of rank `D`.
    pub fn to_tensor<const D: usize>(&self, name: &str, device: &Device) -> Result<Tensor<D>> {
        if self.shape.len() != D {
            return Err(Error::Shape {
                name: name.to_string(),
                expected: vec![0; D],
                got: self.shape.clone(),
            });
        }
        Ok(Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        ))
    }

    /// Permutes the axes: output axis `i` is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> HostTensor {
        let rank = self.shape.len();
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let mut in_strides = vec![1usize; rank];
        for i in (0..rank.saturating_sub(1)).rev() {
            in_strides[i] = in_strides[i + 1] * self.shape[i + 1];
        }
        let n = self.numel();
        let mut data = vec![0f32; n];
        let mut idx = vec![0usize; rank];
        for (o, slot) in data.iter_mut().enumerate() {
            let _ = o;
            let mut off = 0;
            for (i, &p) in perm.iter().enumerate() {
                off += idx[i] * in_strides[p];
            }
            *slot = self.data[off];
            for i in (0..rank).rev() {
                idx[i] += 1;
                if idx[i] < shape[i] {
                    break;
                }
                idx[i] = 0;
            }
        }
        HostTensor { shape, data }
    }
}

/// Named tensors read from a checkpoint, in the checkpoint's own names and layouts.
#[derive(Debug, Clone, Default)]
pub struct WeightMap {
    /// Where the tensors came from, for error messages.
    pub source: PathBuf,
    /// The tensors by name.
    pub tensors: BTreeMap<String, HostTensor>,
    /// SHA-256 of the files read, in reading order, where the loader computes it (TFJS:
    /// manifest then shards), so that records can name the exact weights.
    pub sha256: Option<String>,
}

impl WeightMap {
    /// An empty map for tensors read from `source`.
    pub fn new(source: impl Into<PathBuf>) -> Self {
        Self {
            source: source.into(),
            tensors: BTreeMap::new(),
            sha256: None,
        }
    }

    /// Removes the tensor `name`, checking that its shape is `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        let t = self.tensors.remove(name).ok_or_else(|| Error::Checkpoint {
            path: self.source.clone(),
            problem: format!("no tensor named {name}"),
        })?;
        if t.shape != shape {
            return Err(Error::Shape {
                name: format!("{} in {}", name, self.source.display()),
                expected: shape.to_vec(),
                got: t.shape,
            });
        }
        Ok(t)
    }

    /// Names still in the map (parameters no model asked for).
    pub fn remaining(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }
}

/// Little-endian float32 values (a trailing partial value is ignored).
pub(crate) fn le_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Little-endian int32 values, as `f32` (shape and index constants).
pub(crate) fn le_i32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
        .collect()
}

/// Reads a whole file, naming it on failure.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// A parameter from a host tensor, for loading pretrained weights into a module.
pub(crate) fn param<const D: usize>(
    map: &mut WeightMap,
    name: &str,
    shape: &[usize],
    device: &Device,
) -> Result<burn::module::Param<Tensor<D>>> {
    let t = map.take(name, shape)?;
    Ok(burn::module::Param::from_tensor(t.to_tensor(name, device)?))
}
