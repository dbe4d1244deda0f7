//! Metric learning: distances, losses and miners, as separate pieces.
//!
//! A miner looks at a batch's embeddings and labels and returns (anchor, positive, negative)
//! index triplets; a loss takes the embeddings and those triplets.

pub mod distance;
pub mod loss;
pub mod miner;

pub use distance::Distance;
pub use loss::{Reduction, TripletMarginLoss};
pub use miner::{Miner, Triplets};
