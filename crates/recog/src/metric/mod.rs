//! Metric learning: distances, losses and miners, as separate pieces.
//!
//! A miner looks at a batch's embeddings and labels and returns (anchor, positive, negative)
//! index triplets; a loss takes the embeddings and those triplets.
//!
//! ```
//! use recog::metric::{Distance, Miner, Reduction, TripletMarginLoss};
//! use rand::SeedableRng;
//! // Mine the batch, then score the triplets: two separate pieces.
//! let labels = [0u32, 0, 1, 1];
//! let x = [0.0f32, 0.0, 0.1, 0.0, 1.0, 0.0, 1.1, 0.0];
//! let dist = Distance::Euclidean.pairwise_host(&x, 4, 2);
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let t = Miner::BatchAll.mine(&dist, &labels, 0.2, &mut rng);
//! assert_eq!(t.len(), 8);
//! let loss = TripletMarginLoss { margin: 0.2, distance: Distance::Euclidean, reduction: Reduction::Mean };
//! let e = burn::tensor::Tensor::<2>::from_data(burn::tensor::TensorData::new(x.to_vec(), [4, 2]), &recog::default_device());
//! let v: f32 = loss.forward(e, &t).loss.into_scalar();
//! assert!(v < 1e-6); // every triplet already satisfies the margin
//! ```

pub mod distance;
pub mod loss;
pub mod miner;
pub mod prototype;

pub use distance::Distance;
pub use loss::{Reduction, TripletMarginLoss};
pub use miner::{Miner, Triplets};
pub use prototype::PrototypeLoss;
