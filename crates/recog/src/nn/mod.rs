//! Neural networks, one model per file.
//!
//! ```
//! use recog::nn::EmbeddingNetConfig;
//! let device = recog::default_device();
//! let net = EmbeddingNetConfig::retrieval64().init(&device);
//! let x = burn::tensor::Tensor::<4>::zeros([2, 1, 28, 28], &device);
//! assert_eq!(net.forward(x).dims(), [2, 64]);
//! ```

mod bf16;
pub mod blazeface;
pub mod cpu;
pub mod embedding_net;
pub mod embedding_trunk;
pub mod face_landmark68;
pub mod face_resnet;
#[cfg(test)]
mod kernel_check;
pub mod mobilefacenet;
mod panel;
pub mod tf_graph;
pub mod vgg_face;

pub use blazeface::{BlazeFace, BlazeFaceConfig};
pub use embedding_net::{EmbeddingNet, EmbeddingNetConfig};
pub use embedding_trunk::HostTrunk;
pub use face_landmark68::{FaceLandmark68, FaceLandmark68Config};
pub use face_resnet::{FaceResNet, FaceResNetConfig};
pub use mobilefacenet::{MobileFaceNet, MobileFaceNetConfig};
pub use vgg_face::{VggFace, VggFaceConfig, VggOutput};
