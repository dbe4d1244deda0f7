//! Classical tools on embeddings: PCA.

pub mod pca;

pub use pca::Pca;
