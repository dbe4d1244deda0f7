//! Batches: image tensors (with augmentation), sampling, the loss of one batch.

use burn::prelude::*;
use rand_chacha::ChaCha8Rng;

use super::{augment, Sampling, TrainConfig};
use crate::data::{sampler, Dataset};
use crate::metric::{Miner, Triplets};
use crate::nn::{EmbeddingNet, HostTrunk};

/// Builds the `[n, 1, h, w]` input tensor of dataset images `idx`, shifted at random by up
/// to `shift` pixels.
pub fn images_tensor(
    data: &Dataset,
    idx: &[usize],
    shift: usize,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Tensor<4> {
    images_tensor_aug(data, idx, shift, 0.0, rng, device)
}

/// [`images_tensor`] with a random rotation of up to `rotate` degrees and a random scale of
/// up to `rotate` percent (bilinear); `rotate = 0` keeps whole-pixel shifts.
pub fn images_tensor_aug(
    data: &Dataset,
    idx: &[usize],
    shift: usize,
    rotate: f32,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Tensor<4> {
    let mut px = data.batch_f32(idx);
    if rotate > 0.0 {
        let a = augment::Affine {
            shift: shift as f32,
            rotate_deg: rotate,
            scale: rotate / 100.0,
        };
        augment::random_affine(&mut px, data.height, data.width, a, rng);
    } else if shift > 0 {
        augment::random_shift(&mut px, data.height, data.width, shift, rng);
    }
    Tensor::from_data(
        TensorData::new(px, [idx.len(), 1, data.height, data.width]),
        device,
    )
}

/// Computes the loss of one batch; `Triplets` come from the sampler layout or the miner.
#[allow(clippy::too_many_arguments)] // crate-internal; one call site per use
pub(crate) fn batch_loss(
    net: &EmbeddingNet,
    cfg: &TrainConfig,
    data: &Dataset,
    idx: &[usize],
    rng: &mut ChaCha8Rng,
    shift: usize,
    epoch: Option<usize>,
    device: &Device,
    trunk: Option<&mut HostTrunk>,
) -> (crate::metric::loss::LossOutput, f32) {
    let rotate = if shift > 0 { cfg.augment_rotate } else { 0.0 };
    let x = images_tensor_aug(data, idx, shift, rotate, rng, device);
    // On the CPU the convolutions run on recog's own kernels (`HostTrunk`); elsewhere, or for
    // a trunk they do not cover, on burn's ops.
    let features = match trunk {
        Some(t) if HostTrunk::runs_on(device) => t.forward(net, x.clone()),
        _ => None,
    };
    let emb = match features {
        Some(f) => net.head(f),
        None => net.forward(x),
    };
    let n = idx.len();
    let d = cfg.net.dim;
    let host: Vec<f32> = emb
        .clone()
        .detach()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let dist = cfg.loss.distance.pairwise_host(&host, n, d);
    let mean_dist = if n > 1 {
        dist.iter().sum::<f32>() / (n * (n - 1)) as f32
    } else {
        0.0
    };
    let labels: Vec<u32> = idx.iter().map(|&i| data.labels[i]).collect();
    let triplets = match cfg.sampling {
        Sampling::Triplets { triplets } => Triplets::stacked(triplets.min(n / 3)),
        Sampling::Pk { miner, .. } => {
            let miner = match (cfg.hard_from_epoch, epoch) {
                (Some(h), Some(e)) if e + 1 >= h => Miner::BatchHard,
                _ => miner,
            };
            miner.mine(&dist, &labels, cfg.loss.margin, rng)
        }
    };
    let mut out = cfg.loss.forward(emb.clone(), &triplets);
    if let Some(p) = &cfg.prototype {
        // By name: the validation split has no outlier class, and its last class is a digit.
        let outlier = data
            .classes
            .iter()
            .position(|c| c == super::OUTLIER_CLASS)
            .map(|i| i as u32);
        out.loss = out.loss + p.forward(emb, &labels, outlier);
    }
    (out, mean_dist)
}

/// The parameter gradients of a batch's loss: burn's autodiff for the layers it ran, the
/// host trunk's backward pass for the convolutions when [`batch_loss`] ran them there.
pub(crate) fn gradients(
    loss: Tensor<1>,
    net: &EmbeddingNet,
    trunk: &mut HostTrunk,
) -> crate::Result<burn::optim::GradientsParams> {
    trunk.gradients(net, loss.backward()).ok_or_else(|| {
        crate::Error::InvalidArgument(
            "the convolutions' gradients could not be computed on the CPU kernels".into(),
        )
    })
}

pub(crate) fn sample_batch(
    cfg: &TrainConfig,
    by_class: &[Vec<usize>],
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    match cfg.sampling {
        Sampling::Triplets { triplets } => sampler::random_triplets(by_class, triplets, rng),
        Sampling::Pk { p, k, .. } => sampler::pk_batch(by_class, p, k, rng),
    }
}
