//! Classical tools on embeddings: PCA, k-means with the elbow (Kneedle) and silhouette,
//! threshold agglomerative clustering, and clustering metrics.
//!
//! ```
//! // Two blobs: k-means finds them, ARI against the truth is 1.
//! let x = [0.0f32, 0.0, 0.1, 0.1, 5.0, 5.0, 5.1, 4.9];
//! let km = recog::cluster::kmeans(&x, 4, 2, 2, 3, 42);
//! assert_eq!(recog::cluster::metrics::adjusted_rand_index(&[0, 0, 1, 1], &km.labels), 1.0);
//! ```

pub mod agglomerative;
pub mod analysis;
pub mod kmeans;
pub mod metrics;
pub mod pca;

pub use kmeans::{kmeans, kneedle, sweep, ElbowPoint, KMeans};
pub use pca::Pca;
