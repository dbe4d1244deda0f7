//! Neural networks, one model per file.

pub mod embedding_net;

pub use embedding_net::{EmbeddingNet, EmbeddingNetConfig};
