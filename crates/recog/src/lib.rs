//! # recog
//!
//! Image recognition by metric learning: a conv-net trained with triplet loss embeds images so
//! that distances mean similarity; recognition, retrieval and clustering work on those
//! embeddings.
//!
//! The crate does all the work; the `recog` binary is a thin front end over it.
//!
//! - [`data`] - IDX files (MNIST, Fashion-MNIST, EMNIST), image folders, batch samplers.
//! - [`nn`] - models, one per file.
//! - [`metric`] - distances, triplet losses and miners.
//! - [`train`] - the training loop with checkpoints and metrics.
//! - [`eval`] - retrieval metrics (k-NN accuracy, Precision@1, MAP@R).
//! - [`cluster`] - PCA.
//! - [`plot`] - loss curves and embedding plots (PNG and SVG).
//!
//! ```
//! // The notebook's embedding net, untrained: 28x28 digits in, 2-D embeddings out.
//! use recog::nn::EmbeddingNetConfig;
//! let device = recog::default_device();
//! let net = EmbeddingNetConfig::notebook().init(&device);
//! let x = burn::tensor::Tensor::<4>::zeros([3, 1, 28, 28], &device);
//! assert_eq!(net.forward(x).dims(), [3, 2]);
//! ```

#![warn(missing_docs)]

pub mod bench;
pub mod cluster;
pub mod data;
pub mod demo;
pub mod digest;
pub mod error;
pub mod eval;
pub mod face;
pub mod faces;
pub mod gallery;
pub mod home;
pub mod metric;
pub mod nn;
pub mod openset;
pub mod plot;
pub mod progress;
pub mod train;
pub mod video;
pub mod weights;

pub use error::{Error, ErrorKind, Result};
pub use faces::Faces;
pub use home::Home;
pub use progress::{NoProgress, Progress};

/// Re-exported so that front ends pick devices without depending on burn themselves.
pub use burn::tensor::Device;

/// The compute device: the first GPU backend compiled in (`cuda`, `wgpu`), else the CPU
/// (`flex`). `BURN_DEVICE` overrides the choice, as in burn; a value this build cannot use
/// (see [`check_device_env`], which front ends call first to report it as an error) falls
/// back to the CPU with a warning, where burn would panic.
pub fn default_device() -> Device {
    match check_device_env() {
        Ok(Some(_)) => Device::default(),
        Ok(None) if gpu_adapter_found() => Device::default(),
        Ok(None) => Device::flex(),
        Err(e) => {
            tracing::warn!("{e}; using the CPU");
            Device::flex()
        }
    }
}

/// Whether a GPU build has a GPU to run on. A wgpu build on a machine with only a software
/// rasterizer (llvmpipe through OpenGL, as on this project's 2-core VM) hung: wgpu's OpenGL
/// polling thread panicked ("Could not lock adapter context") and training waited on it for
/// ever. So without `BURN_DEVICE`, wgpu is the default only where it sees a GPU adapter
/// through Vulkan, Metal or DirectX 12 (an H200 through Vulkan still is, checked); otherwise
/// recog warns once and runs on the CPU. `BURN_DEVICE=wgpu` still forces wgpu.
#[cfg(feature = "wgpu")]
fn gpu_adapter_found() -> bool {
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapters: Vec<wgpu::AdapterInfo> =
            block_on(instance.enumerate_adapters(wgpu::Backends::all()))
                .iter()
                .map(wgpu::Adapter::get_info)
                .collect();
        let gpu = adapters
            .iter()
            .any(|a| a.device_type != wgpu::DeviceType::Cpu && a.backend != wgpu::Backend::Gl);
        if !gpu {
            let seen: Vec<String> = adapters
                .iter()
                .map(|a| format!("{} ({:?}, {:?})", a.name, a.backend, a.device_type))
                .collect();
            tracing::warn!(
                "wgpu found no GPU adapter through Vulkan, Metal or DirectX 12 (seen: {}); using the CPU (BURN_DEVICE=wgpu forces wgpu)",
                if seen.is_empty() { "none".to_string() } else { seen.join(", ") }
            );
        }
        gpu
    })
}

/// A build without a GPU backend other than `cuda` takes the backend burn picks.
#[cfg(not(feature = "wgpu"))]
fn gpu_adapter_found() -> bool {
    true
}

/// Runs a future that completes without waiting on anything (wgpu's adapter enumeration on
/// native platforms), without an async runtime.
#[cfg(feature = "wgpu")]
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
    fn noop(_: *const ()) {}
    fn clone(p: *const ()) -> RawWaker {
        RawWaker::new(p, &VTABLE)
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    // SAFETY: the vtable's functions do nothing with the (null) data pointer.
    let waker = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) };
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// The `BURN_DEVICE` values this build can use.
pub const DEVICE_NAMES: &[&str] = &[
    "flex",
    #[cfg(feature = "wgpu")]
    "wgpu",
    #[cfg(feature = "cuda")]
    "cuda",
];

/// Checks `BURN_DEVICE` against [`DEVICE_NAMES`]: `Ok(Some(name))` for a usable override,
/// `Ok(None)` when it is unset. burn panics on any other value (a typo, or a backend this
/// build lacks), so front ends check it before any work starts.
///
/// ```
/// // In a test process BURN_DEVICE is normally unset, or names a backend of this build.
/// assert!(recog::check_device_env().is_ok() || std::env::var_os("BURN_DEVICE").is_some());
/// ```
pub fn check_device_env() -> Result<Option<String>> {
    let Some(v) = std::env::var_os("BURN_DEVICE") else {
        return Ok(None);
    };
    let name = v.to_string_lossy().to_lowercase();
    if DEVICE_NAMES.contains(&name.as_str()) {
        Ok(Some(name))
    } else {
        Err(Error::InvalidArgument(format!(
            "BURN_DEVICE={}: this build has {} (other backends are cargo features: --features wgpu or cuda)",
            v.to_string_lossy(),
            DEVICE_NAMES.join(", ")
        )))
    }
}

/// The device for the face networks (detection, landmarks, descriptors): the CPU, unless
/// `BURN_DEVICE` names one.
///
/// The face networks run on recog's fused CPU kernels ([`nn::cpu`]) only on the CPU; on a GPU
/// they run on burn's generic ops. Measured on an H200 (wgpu) against the same machine's 16
/// cores, the CPU was 4-7x faster (README, "GPU"), so a GPU build still runs faces on the CPU
/// and keeps the GPU for training, where it was 3-7x faster. In a CPU-only build this is
/// [`default_device`].
pub fn face_device() -> Device {
    match check_device_env() {
        Ok(Some(_)) => Device::default(),
        _ => Device::flex(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn faces_run_on_the_cpu_unless_burn_device_says_otherwise() {
        if std::env::var_os("BURN_DEVICE").is_none() {
            assert_eq!(super::face_device(), burn::tensor::Device::flex());
        }
        // In a CPU-only build both are the CPU, so the face tests measure what a GPU build runs.
        #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
        assert_eq!(super::face_device(), super::default_device());
    }
}
