//! What a run trains: sampling, loss, schedule, augmentation, outlier exposure.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metric::{Distance, Miner, PrototypeLoss, Reduction, TripletMarginLoss};
use crate::nn::EmbeddingNetConfig;

/// Where each batch's triplets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Sampling {
    /// The notebook's random (A, P, N) triplets, `triplets` per batch (3x as many images).
    Triplets {
        /// Triplets per batch.
        triplets: usize,
    },
    /// P classes x K images per batch, triplets mined online.
    Pk {
        /// Classes per batch.
        p: usize,
        /// Images per class.
        k: usize,
        /// The miner.
        miner: Miner,
    },
}

impl Sampling {
    /// Images per batch.
    pub fn batch_images(&self) -> usize {
        match *self {
            Sampling::Triplets { triplets } => 3 * triplets,
            Sampling::Pk { p, k, .. } => p * k,
        }
    }
}

/// Learning-rate schedule over the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Constant learning rate.
    Constant,
    /// Cosine decay from `lr` to 0 over all steps.
    #[default]
    Cosine,
}

/// Everything that defines a training run; saved as `config.json` beside the checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The network.
    pub net: EmbeddingNetConfig,
    /// The loss.
    pub loss: TripletMarginLoss,
    /// A prototype loss added to the triplet loss (`None`: the triplet loss alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prototype: Option<PrototypeLoss>,
    /// The batch sampler / miner.
    pub sampling: Sampling,
    /// Number of epochs.
    pub epochs: usize,
    /// Steps per epoch; 0 means one pass over the training set.
    pub steps_per_epoch: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Random shifts of up to this many pixels (0 = none).
    pub augment_shift: usize,
    /// Random rotation of up to this many degrees, with a random scale of up to the same
    /// number of percent (0 = none; then shifts are whole pixels).
    #[serde(default)]
    pub augment_rotate: f32,
    /// Validation batches per epoch (on the test split, fixed seed).
    pub val_batches: usize,
    /// The seed.
    pub seed: u64,
    /// From this epoch on (1-based), P x K batches switch to batch-hard mining: a curriculum
    /// that starts with the gentler semi-hard triplets (batch-hard from scratch can collapse
    /// normalised embeddings) and ends on the hardest ones.
    #[serde(default)]
    pub hard_from_epoch: Option<usize>,
    /// Outlier exposure: non-digit sources added to training as one extra "unknown" class
    /// (see [`crate::data::unknown_images`]), so that the embedding learns to place
    /// non-digits away from the digits.
    #[serde(default)]
    pub unknown: Option<UnknownSpec>,
    /// The run trained on only the first N images of the training split (`--limit`); `None`:
    /// all of them. `recog digits fit` reads it to tell whether its calibration digits (the
    /// split's last [`crate::openset::CALIBRATION_DIGITS`]) were unseen by the embedding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
}

/// Non-digit images added to training.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownSpec {
    /// The sources; saved as the comma-separated text (`fashion-mnist,glyphs`) that configs
    /// have always held.
    #[serde(with = "unknown_list")]
    pub sources: Vec<crate::data::UnknownSource>,
    /// Images per source.
    pub per_source: usize,
}

/// `Vec<UnknownSource>` as one comma-separated string in JSON.
mod unknown_list {
    use crate::data::UnknownSource;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[UnknownSource], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&UnknownSource::list_string(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<UnknownSource>, D::Error> {
        let text = String::deserialize(d)?;
        UnknownSource::parse_list(&text).map_err(serde::de::Error::custom)
    }
}

impl TrainConfig {
    /// Defaults for an embedding dimension: online semi-hard mining on 10 x 30 batches
    /// (300 images, the notebook's batch size), with an L2-normalised output and margin 0.2 for
    /// D > 3, unnormalised with margin 1 otherwise.
    pub fn for_dim(dim: usize) -> Self {
        let normalized = dim > 3;
        // Dropout before the embedding layer, instead of the notebook's 0.5 (8 epochs, measured):
        // D = 2: 1-NN 96.29% with 0.5, 97.32% with 0.1 (0.5 crowds classes at the origin);
        // D = 64: P@1 98.95% with 0.5, 99.06% with 0.1, 99.25% with 0.
        let net = EmbeddingNetConfig {
            dim,
            normalize: normalized,
            dropout_dense: if normalized { 0.0 } else { 0.1 },
            ..EmbeddingNetConfig::notebook()
        };
        Self {
            net,
            loss: TripletMarginLoss {
                margin: if normalized { 0.2 } else { 1.0 },
                distance: Distance::Euclidean,
                reduction: Reduction::Mean,
            },
            prototype: None,
            sampling: Sampling::Pk {
                p: 10,
                k: 30,
                miner: Miner::SemiHard,
            },
            epochs: 8,
            steps_per_epoch: 0,
            lr: 1e-3,
            schedule: Schedule::Cosine,
            augment_shift: 2,
            augment_rotate: 0.0,
            val_batches: 10,
            seed: 42,
            hard_from_epoch: None,
            unknown: None,
            train_limit: None,
        }
    }

    /// The notebook's setting: D = 2, random triplets, 100 per batch, squared Euclidean,
    /// margin 1 (its `alpha`), dropout 0.5, no augmentation, constant learning rate.
    pub fn notebook() -> Self {
        Self {
            net: EmbeddingNetConfig::notebook(),
            loss: TripletMarginLoss {
                margin: 1.0,
                distance: Distance::SquaredEuclidean,
                reduction: Reduction::Mean,
            },
            sampling: Sampling::Triplets { triplets: 100 },
            schedule: Schedule::Constant,
            augment_shift: 0,
            ..Self::for_dim(2)
        }
    }

    /// Checks ranges before any work starts.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        self.net.validate().map_err(Error::InvalidArgument)?;
        if !(0.0..1.0).contains(&self.net.dropout_conv)
            || !(0.0..1.0).contains(&self.net.dropout_dense)
        {
            return bad("dropout must be in [0, 1)".into());
        }
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("learning rate must be positive, got {}", self.lr));
        }
        if self.loss.margin < 0.0 || !self.loss.margin.is_finite() {
            return bad(format!("margin must be >= 0, got {}", self.loss.margin));
        }
        if let Some(p) = &self.prototype {
            p.validate().map_err(Error::InvalidArgument)?;
        }
        match self.sampling {
            Sampling::Triplets { triplets: 0 } => bad("triplets per batch must be >= 1".into()),
            Sampling::Pk { p, k, .. } if p < 2 || k < 2 => bad(format!(
                "P x K batches need P >= 2 classes and K >= 2 images, got {p} x {k}"
            )),
            _ => Ok(()),
        }
    }
}
