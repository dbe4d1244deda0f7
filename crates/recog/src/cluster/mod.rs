//! Classical tools on embeddings: PCA, k-means with the elbow (Kneedle) and silhouette,
//! threshold agglomerative clustering, and clustering metrics.

pub mod agglomerative;
pub mod analysis;
pub mod kmeans;
pub mod metrics;
pub mod pca;

pub use kmeans::{kmeans, kneedle, sweep, ElbowPoint, KMeans};
pub use pca::Pca;
