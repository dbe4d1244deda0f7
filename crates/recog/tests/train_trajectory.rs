//! The gradient check: 12 Adam steps of the notebook's net from fixed weights on fixed
//! batches, recog against PyTorch (`tools/reference/train_trajectory_reference.py`, which
//! documents how the weights and the data are built from an integer hash). Both ways of
//! running the convolutions on the CPU, recog's kernels (`HostTrunk`, the training default)
//! and burn's ops, must follow PyTorch's loss trajectory to 1e-5.

use burn::module::Param;
use burn::optim::GradientsParams;
use burn::prelude::*;
use recog::metric::{Distance, Miner, Reduction, TripletMarginLoss, Triplets};
use recog::nn::{EmbeddingNet, EmbeddingNetConfig, HostTrunk};
use serde::Deserialize;

/// `((h(i, salt) mod 2001) - 1000) / 1000`, `h = (i * 2654435761 + salt * 40503) mod 2^32`.
fn value(n: usize, salt: u64) -> Vec<f64> {
    (0..n as u64)
        .map(|i| {
            let h = (i * 2654435761 + salt * 40503) % (1 << 32);
            ((h % 2001) as f64 - 1000.0) / 1000.0
        })
        .collect()
}

fn param(n: usize, salt: u64, scale: f64) -> Vec<f32> {
    value(n, salt).iter().map(|v| (v * scale) as f32).collect()
}

/// The script's net: PyTorch's parameter order and layouts (Linear weights `[out, in]`,
/// transposed here into burn's `[in, out]`).
fn net(device: &Device) -> EmbeddingNet {
    let cfg = EmbeddingNetConfig {
        dim: 64,
        normalize: false,
        dropout_conv: 0.0,
        dropout_dense: 0.0,
        ..EmbeddingNetConfig::notebook()
    };
    let mut net = cfg.init(device);
    let t4 = |v: Vec<f32>, s: [usize; 4]| {
        Param::from_tensor(Tensor::<4>::from_data(TensorData::new(v, s), device))
    };
    let t1 = |v: Vec<f32>| {
        let n = v.len();
        Some(Param::from_tensor(Tensor::<1>::from_data(
            TensorData::new(v, [n]),
            device,
        )))
    };
    let linear = |v: Vec<f32>, out: usize, inp: usize| {
        let mut t = vec![0f32; v.len()];
        for o in 0..out {
            for i in 0..inp {
                t[i * out + o] = v[o * inp + i];
            }
        }
        Param::from_tensor(Tensor::<2>::from_data(
            TensorData::new(t, [inp, out]),
            device,
        ))
    };
    net.conv1.weight = t4(param(288, 1, 1.0 / 3.0), [32, 1, 3, 3]);
    net.conv1.bias = t1(param(32, 2, 0.1));
    net.conv2.weight = t4(param(18432, 3, 1.0 / 288f64.sqrt()), [64, 32, 3, 3]);
    net.conv2.bias = t1(param(64, 4, 0.1));
    net.fc1.weight = linear(param(9216 * 128, 5, 1.0 / 9216f64.sqrt()), 128, 9216);
    net.fc1.bias = t1(param(128, 6, 0.1));
    net.fc2.weight = linear(param(128 * 64, 7, 1.0 / 128f64.sqrt()), 64, 128);
    net.fc2.bias = t1(param(64, 8, 0.1));
    net
}

/// Batch `b`: 300 images (anchors, positives, negatives) and their labels.
fn batch(b: usize) -> (Vec<f32>, Vec<u32>) {
    let a: Vec<u32> = (0..100).map(|i| ((7 * i + 3 * b) % 10) as u32).collect();
    let n: Vec<u32> = (0..100)
        .map(|i| ((a[i] as usize + 1 + (5 * i + b) % 9) % 10) as u32)
        .collect();
    let labels: Vec<u32> = a.iter().chain(&a).chain(&n).copied().collect();
    let noise = value(300 * 784, 100 + b as u64);
    let mut px = vec![0f32; 300 * 784];
    for (k, &l) in labels.iter().enumerate() {
        for y in 0..28 {
            for x in 0..28 {
                let j = k * 784 + y * 28 + x;
                let proto = if (31 * l as usize + 7 * y + 13 * x) % 5 < 2 {
                    1.0
                } else {
                    -1.0
                };
                px[j] = (proto + 2.0 * noise[j]) as f32;
            }
        }
    }
    (px, labels)
}

#[derive(Deserialize)]
struct Reference {
    simple: Vec<f32>,
    batchhard: Vec<f32>,
}

/// recog's 12 losses with the given miner (`None`: the 100 stacked triplets).
fn trajectory(batch_hard: bool, host: bool) -> Vec<f32> {
    let device = recog::default_device().autodiff();
    let mut net = net(&device);
    let mut optim = recog::train::adam();
    let mut trunk = HostTrunk::default();
    let data: Vec<_> = (0..4).map(batch).collect();
    let loss = TripletMarginLoss {
        margin: 1.0,
        distance: Distance::SquaredEuclidean,
        reduction: Reduction::Mean,
    };
    let mut losses = Vec::new();
    for step in 0..12 {
        let (px, labels) = &data[step % 4];
        let x = Tensor::<4>::from_data(TensorData::new(px.clone(), [300, 1, 28, 28]), &device);
        let emb = if host {
            net.head(trunk.forward(&net, x).expect("the notebook's trunk"))
        } else {
            net.forward(x)
        };
        let triplets = if batch_hard {
            let host_emb: Vec<f32> = emb.clone().detach().into_data().try_to_vec().unwrap();
            let dist = Distance::SquaredEuclidean.pairwise_host(&host_emb, 300, 64);
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
            Miner::BatchHard.mine(&dist, labels, 1.0, &mut rng)
        } else {
            Triplets::stacked(100)
        };
        let out = loss.forward(emb, &triplets);
        losses.push(out.loss.clone().into_scalar::<f32>());
        let grads: GradientsParams = trunk.gradients(&net, out.loss.backward()).unwrap();
        net = optim.step(1e-4, net, grads);
    }
    losses
}

#[test]
fn train_trajectory_matches_pytorch() {
    let path = format!(
        "{}/tests/fixtures/train_trajectory_reference.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let want: Reference = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (name, batch_hard, reference) in [
        ("simple", false, &want.simple),
        ("batch-hard", true, &want.batchhard),
    ] {
        for host in [true, false] {
            let got = trajectory(batch_hard, host);
            let d = got
                .iter()
                .zip(reference)
                .map(|(g, w)| (g - w).abs())
                .fold(0f32, f32::max);
            let path = if host { "CPU kernels" } else { "burn's ops" };
            eprintln!("{name}, {path}: max |recog - PyTorch| = {d:.2e}\n  recog   {got:?}\n  PyTorch {reference:?}");
            assert_eq!(got.len(), 12);
            assert!(d < 1e-5, "{name}, {path}: {d}");
        }
    }
}
