//! Keras HDF5 weights, as written by Keras 2 `model.save_weights`: the root attribute
//! `layer_names` lists the layers in model order; each layer's group has the attribute
//! `weight_names` (e.g. `conv2d_1/kernel:0`, `conv2d_1/bias:0`) naming datasets under it.
//! Read with the pure-Rust `hdf5-reader` (no libhdf5).
//!
//! ```no_run
//! let (map, layers) = recog::weights::hdf5::load_keras("vgg_face_weights.h5".as_ref())?;
//! println!("{} tensors in {} layers", map.tensors.len(), layers.len());
//! # Ok::<(), recog::Error>(())
//! ```

use std::path::Path;

use hdf5_reader::Hdf5File;

use super::{HostTensor, WeightMap};
use crate::{Error, Result};

/// How many times its size a file's chunked (possibly compressed) tensor may take decoded:
/// deflate, HDF5's compression, expands at most 1032 to 1. A tensor stored whole
/// (contiguous or compact) must fit in the file as it is.
const MAX_EXPANSION: u64 = 1032;

/// One Keras layer that holds weights, in model order.
#[derive(Debug, Clone)]
pub struct KerasLayer {
    /// The layer name (`conv2d_1`).
    pub name: String,
    /// Its weights in `weight_names` order, keyed `<layer>/<weight_name>` in the map.
    pub weights: Vec<String>,
}

/// Reads every weight of a Keras 2 weights file. Returns the map (keys
/// `<layer>/<weight_name>`, e.g. `conv2d_1/conv2d_1/kernel:0`) and the layers that hold
/// weights, in model order.
pub fn load_keras(path: &Path) -> Result<(WeightMap, Vec<KerasLayer>)> {
    // hdf5-reader 0.5 multiplied sizes from the file unchecked (the fuzzer's first finding);
    // 0.12 checks the one found, and builds with overflow checks (Cargo.toml) so any other
    // such product panics instead of wrapping. Its panics end here, as this file's error,
    // instead of taking the process down.
    // The panic is this file's error, so the panic hook stays quiet for it: a corrupt file
    // gets one `error:` line, not a panic message and a backtrace before it.
    let _quiet = QuietPanics::on();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_keras(path))).unwrap_or_else(
        |_| {
            Err(Error::Checkpoint {
                path: path.to_path_buf(),
                problem: "not a readable HDF5 file: the HDF5 reader failed on a size in the file"
                    .into(),
            })
        },
    )
}

thread_local! {
    /// Whether this thread is inside [`load_keras`]'s `catch_unwind`.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Silences the panic hook on this thread while it lives; other threads, and this one
/// afterwards, report panics through the hook that was installed before (chained, once).
struct QuietPanics(bool);

impl QuietPanics {
    fn on() -> Self {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !QUIET.with(std::cell::Cell::get) {
                    previous(info);
                }
            }));
        });
        Self(QUIET.with(|q| q.replace(true)))
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        QUIET.with(|q| q.set(self.0));
    }
}

fn read_keras(path: &Path) -> Result<(WeightMap, Vec<KerasLayer>)> {
    let err = |problem: String| Error::Checkpoint {
        path: path.to_path_buf(),
        problem,
    };
    let file_len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    let file = Hdf5File::open(path).map_err(|e| err(format!("not a readable HDF5 file: {e}")))?;
    let root = file.root_group().map_err(|e| err(e.to_string()))?;
    // Keras also saves whole models with the weights under `model_weights`.
    let group = match root.group("model_weights") {
        Ok(g) => g,
        Err(_) => root,
    };
    let names = group
        .attribute("layer_names")
        .and_then(|a| a.read_strings())
        .map_err(|e| {
            err(format!(
                "no `layer_names` attribute (not a Keras weights file?): {e}"
            ))
        })?;
    let mut map = WeightMap::new(path);
    let mut layers = Vec::new();
    for name in names {
        let g = group
            .group(&name)
            .map_err(|e| err(format!("layer {name} listed but missing: {e}")))?;
        let wnames = match g.attribute("weight_names") {
            Ok(a) => a.read_strings().unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let wnames: Vec<String> = wnames.into_iter().filter(|w| !w.is_empty()).collect();
        if wnames.is_empty() {
            continue;
        }
        let mut keys = Vec::new();
        for w in &wnames {
            let ds = walk(&g, w).map_err(|e| err(format!("{name}/{w}: {e}")))?;
            let shape: Vec<usize> = ds.shape().iter().map(|&d| d as usize).collect();
            // hdf5-reader allocates what the shape declares before it looks for the data
            // (fill values, external files), and an allocation that fails aborts the
            // process: a 8 KB file declared 20 PB (fuzz finding). The weights must be in
            // the file, allowing for compression where the layout allows it.
            let limit = if ds.chunks().is_some() {
                file_len.saturating_mul(MAX_EXPANSION)
            } else {
                file_len
            };
            let bytes = ds
                .num_elements()
                .map_err(|e| err(format!("{name}/{w}: {e}")))?
                .checked_mul(4)
                .ok_or_else(|| err(format!("{name}/{w}: shape {shape:?} overflows")))?;
            if bytes > limit {
                return Err(err(format!(
                    "{name}/{w}: shape {shape:?} declares {bytes} bytes of float32, more than a {file_len}-byte file holds"
                )));
            }
            let data: Vec<f32> = ds
                .read_array::<f32>()
                .map_err(|e| err(format!("{name}/{w}: cannot read as float32: {e}")))?
                .into_iter()
                .collect();
            let key = format!("{name}/{w}");
            map.tensors.insert(key.clone(), HostTensor { shape, data });
            keys.push(key);
        }
        layers.push(KerasLayer {
            name,
            weights: keys,
        });
    }
    Ok((map, layers))
}

fn walk(
    g: &hdf5_reader::group::Group,
    path: &str,
) -> std::result::Result<hdf5_reader::Dataset, String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (last, dirs) = parts.split_last().ok_or("empty weight name")?;
    let mut cur = g.clone();
    for d in dirs {
        cur = cur.group(d).map_err(|e| e.to_string())?;
    }
    cur.dataset(last).map_err(|e| e.to_string())
}

#[cfg(test)]
mod fuzz_regressions {
    /// [`super::load_keras`]'s error on the fuzz fixture `name`, which must be `Corrupt`.
    fn corrupt_fixture(name: &str) -> crate::Error {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/fuzz")
            .join(name);
        let e = super::load_keras(&p).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{e}");
        e
    }

    /// Found by the `keras_hdf5` fuzz target: an attribute whose element count times type
    /// size overflows panicked inside hdf5-reader 0.5 (caught here then). hdf5-reader 0.12
    /// checks that product: the reader's own error, naming the file.
    #[test]
    fn an_attribute_size_that_overflows_is_an_error_not_a_panic() {
        let e = corrupt_fixture("keras_hdf5_attribute_size_overflow.h5");
        assert!(
            e.to_string()
                .contains("keras_hdf5_attribute_size_overflow.h5"),
            "{e}"
        );
        assert!(e.to_string().contains("attribute raw data size"), "{e}");
    }

    /// Found by the `keras_hdf5` fuzz target (2026-12-05, a run with `-len_control=0`, after
    /// 2.87 million executions): a 962-byte file whose data layout message (version 1/2)
    /// declares dimensions whose product overflows u64. hdf5-reader 0.12.1 (the newest)
    /// multiplies them unchecked, so with the overflow checks it panics; the panic is caught
    /// as this file's error, and the hook stays quiet for it, so that the CLI prints one
    /// `error:` line instead of a panic message and backtrace.
    #[test]
    fn layout_dimensions_that_overflow_are_an_error_without_a_panic_message() {
        let e = corrupt_fixture("keras_hdf5_layout_dims_overflow.h5");
        assert!(e.to_string().contains("failed on a size"), "{e}");
        // The quiet flag is this call's only: it is off again afterwards.
        assert!(!super::QUIET.with(std::cell::Cell::get));
    }

    /// Found by the `keras_hdf5` fuzz target: an 8 KB file whose dataset declares a shape
    /// of 20 PB made hdf5-reader 0.12 allocate it before reading anything; the failed
    /// allocation aborted the process (no panic to catch). Now refused from the shape.
    #[test]
    fn a_shape_larger_than_the_file_is_refused_before_allocating() {
        let e = corrupt_fixture("keras_hdf5_shape_of_20_petabytes.h5");
        assert!(
            e.to_string().contains("more than a 8087-byte file holds"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod tests {
    /// HDF5 lets a dataset keep its data in external raw files named inside the file, so an
    /// untrusted weights file could make the loader read any file's bytes as weights.
    /// hdf5-reader 0.12 resolves none without a resolver, which the loader never sets; this
    /// pins that: with the named file beside the fixture (h5py reads 1234.5 from it), the
    /// load is refused. `tools/reference/hdf5_external_fixture.py` wrote the fixture.
    #[test]
    fn a_weight_stored_in_an_external_file_is_refused_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("weights.h5");
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/keras_hdf5_external_storage.h5"
            ),
            &p,
        )
        .unwrap();
        let floats: Vec<u8> = [1234.5f32, -2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(dir.path().join("external_weights.bin"), &floats).unwrap();
        let e = super::load_keras(&p).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{e}");
        assert!(e.to_string().contains("external_weights.bin"), "{e}");
    }
}
