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
/// (`flex`). `BURN_DEVICE` overrides the choice, as in burn.
pub fn default_device() -> Device {
    Device::default()
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
    if std::env::var_os("BURN_DEVICE").is_some() {
        Device::default()
    } else {
        Device::flex()
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
