//! The convolution trunk of [`super::EmbeddingNet`] (conv 3x3 + ReLU, conv
//! 3x3 + ReLU, 2x2 max pooling), forward and backward by hand on the CPU, for training and,
//! forward only ([`HostTrunk::features`]), for embedding data sets.
//!
//! Why: on the `flex` device burn runs these two convolutions as 3-d convolutions with one
//! large im2col per batch (200 MB for the second one at 300 images), their input gradient as a
//! transposed convolution, and allocates and zeroes every intermediate afresh each step; that
//! made a training step about 2.6x PyTorch's (README, "Speed notes"). Here each image is an
//! im2col into a reused buffer that fits in cache plus one GEMM per convolution, and the
//! backward pass is three GEMMs per image (weight gradient, input gradient, first layer's
//! weight gradient), with gradient sums per chunk of 8 images added up in order (so that a
//! seeded run repeats bit for bit). The activations are kept channels-last for
//! the backward pass; the pooled features leave in burn's NCHW flattening order, so the dense
//! layers, the loss and the checkpoints are the same as on burn's path.
//!
//! The rest of the network (dropout, the dense layers, normalisation) and the loss stay in
//! burn's autodiff: the pooled features enter it as a leaf that requires a gradient, and
//! [`HostTrunk::gradients`] turns that gradient into the convolutions' parameter gradients.
//!
//! ```
//! use burn::optim::GradientsParams;
//! use recog::nn::{EmbeddingNetConfig, HostTrunk};
//! let device = recog::default_device().autodiff();
//! let net = EmbeddingNetConfig::retrieval64().init(&device);
//! let mut trunk = HostTrunk::default();
//! let x = burn::tensor::Tensor::<4>::ones([2, 1, 28, 28], &device);
//! let features = trunk.forward(&net, x).expect("the notebook's shapes");
//! let loss = net.head(features).sum();
//! let params: GradientsParams = trunk.gradients(&net, loss.backward()).expect("a gradient");
//! assert!(params.get::<4>(net.conv2.weight.id).is_some());
//! ```

use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Gradients;
use rayon::prelude::*;

use super::cpu::gemm_strided;
use super::EmbeddingNet;

/// One 3x3 VALID stride-1 convolution's parameters, weights as `[9 * cin, cout]` (row
/// `(ky * 3 + kx) * cin + ci`).
#[derive(Debug, Clone, Default)]
struct Layer {
    cin: usize,
    cout: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Layer {
    /// The layer's weights, if it is a 3x3, stride 1, VALID, ungrouped convolution with a bias.
    fn read(conv: &Conv2d) -> Option<Self> {
        let plain = conv.kernel_size == [3, 3]
            && conv.stride == [1, 1]
            && conv.dilation == [1, 1]
            && conv.groups == 1
            && matches!(conv.padding, PaddingConfig2d::Valid);
        if !plain {
            return None;
        }
        let w = conv.weight.val();
        let [cout, cin, kh, kw] = w.dims();
        if [kh, kw] != [3, 3] {
            return None;
        }
        let w = w.into_data().try_to_vec::<f32>().ok()?;
        let bias = conv
            .bias
            .as_ref()?
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .ok()?;
        if w.len() != cout * cin * 9 || bias.len() != cout {
            return None;
        }
        let mut weight = vec![0f32; w.len()];
        for co in 0..cout {
            for ci in 0..cin {
                for t in 0..9 {
                    weight[(t * cin + ci) * cout + co] = w[(co * cin + ci) * 9 + t];
                }
            }
        }
        Some(Self {
            cin,
            cout,
            weight,
            bias,
        })
    }

    /// A `[9 * cin, cout]` gradient back in burn's `[cout, cin, 3, 3]` layout.
    fn to_oihw(&self, g: &[f32]) -> Vec<f32> {
        let (cin, cout) = (self.cin, self.cout);
        let mut w = vec![0f32; g.len()];
        for co in 0..cout {
            for ci in 0..cin {
                for t in 0..9 {
                    w[(co * cin + ci) * 9 + t] = g[(t * cin + ci) * cout + co];
                }
            }
        }
        w
    }
}

/// im2col of a channels-last `[s, s, c]` map for a 3x3 VALID window: `[(s-2)^2, 9c]`.
fn im2col(x: &[f32], s: usize, c: usize, cols: &mut [f32]) {
    let o = s - 2;
    let k = 9 * c;
    for oy in 0..o {
        for ox in 0..o {
            let row = &mut cols[(oy * o + ox) * k..][..k];
            for ky in 0..3 {
                // The three taps of a kernel row are contiguous in a channels-last map.
                let src = &x[((oy + ky) * s + ox) * c..][..3 * c];
                row[ky * 3 * c..][..3 * c].copy_from_slice(src);
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each column's gradient back onto its input pixel.
fn col2im(cols: &[f32], s: usize, c: usize, x: &mut [f32]) {
    let o = s - 2;
    let k = 9 * c;
    x.fill(0.0);
    for oy in 0..o {
        for ox in 0..o {
            let row = &cols[(oy * o + ox) * k..][..k];
            for ky in 0..3 {
                let dst = &mut x[((oy + ky) * s + ox) * c..][..3 * c];
                dst.iter_mut()
                    .zip(&row[ky * 3 * c..][..3 * c])
                    .for_each(|(d, g)| *d += g);
            }
        }
    }
}

/// `y = relu(cols * w + b)`, `[m, cout]`.
fn conv_relu(cols: &[f32], l: &Layer, m: usize, y: &mut [f32]) -> Option<()> {
    let k = 9 * l.cin;
    gemm_strided(m, l.cout, k, y, (cols, k, 1), (&l.weight, l.cout, 1), false)?;
    for px in y.chunks_exact_mut(l.cout) {
        px.iter_mut()
            .zip(&l.bias)
            .for_each(|(v, b)| *v = (*v + b).max(0.0));
    }
    Some(())
}

/// Images per unit of work in the backward pass.
const CHUNK: usize = 8;

/// The trunk's sizes, derived once from the input side and the two layers.
#[derive(Debug, Clone, Copy, Default)]
struct Dims {
    /// Input side; the maps are `s - 2` and `s - 4` wide, the pooled map `(s - 4) / 2`.
    s: usize,
    s1: usize,
    s2: usize,
    sp: usize,
    c1: usize,
    c2: usize,
}

impl Dims {
    fn new(s: usize, l1: &Layer, l2: &Layer) -> Option<Self> {
        (s >= 6 && l1.cin == 1 && l2.cin == l1.cout).then_some(Self {
            s,
            s1: s - 2,
            s2: s - 4,
            sp: (s - 4) / 2,
            c1: l1.cout,
            c2: l2.cout,
        })
    }

    /// Values per image of the first and second layer's outputs and of the pooled features.
    fn per_image(&self) -> Option<(usize, usize, usize)> {
        Some((
            (self.s1 * self.s1).checked_mul(self.c1)?,
            (self.s2 * self.s2).checked_mul(self.c2)?,
            (self.sp * self.sp).checked_mul(self.c2)?,
        ))
    }

    /// Index in the second layer's channels-last map of input `a` (0..4, row-major in the
    /// 2x2 window) of pooled pixel `(py, px)`.
    fn pool_input(&self, py: usize, px: usize, a: usize) -> usize {
        ((2 * py + a / 2) * self.s2 + 2 * px + a % 2) * self.c2
    }

    /// One thread's im2col buffers for the two layers.
    fn cols(&self) -> (Vec<f32>, Vec<f32>) {
        (
            vec![0f32; self.s1 * self.s1 * 9],
            vec![0f32; self.s2 * self.s2 * 9 * self.c1],
        )
    }

    /// One image's forward pass: both convolutions with their ReLU into `y1` and `y2`, then
    /// the pooling into `f`, with the winners in `arg`.
    #[allow(clippy::too_many_arguments)] // one call per image; the buffers are the caller's
    fn image(
        &self,
        l1: &Layer,
        l2: &Layer,
        xi: &[f32],
        (cols1, cols2): (&mut [f32], &mut [f32]),
        (y1, y2): (&mut [f32], &mut [f32]),
        f: &mut [f32],
        arg: &mut [u8],
    ) -> Option<()> {
        im2col(xi, self.s, 1, cols1);
        conv_relu(cols1, l1, self.s1 * self.s1, y1)?;
        im2col(y1, self.s1, self.c1, cols2);
        conv_relu(cols2, l2, self.s2 * self.s2, y2)?;
        self.pool(y2, f, arg);
        Some(())
    }

    /// 2x2 max pooling of one image's `y2` into `f` (NCHW order), with the winning input of
    /// each value in `arg`.
    fn pool(&self, y2: &[f32], f: &mut [f32], arg: &mut [u8]) {
        let (sp, c2) = (self.sp, self.c2);
        for py in 0..sp {
            for px in 0..sp {
                let taps = [0, 1, 2, 3].map(|a| self.pool_input(py, px, a));
                for ch in 0..c2 {
                    let (mut best, mut bi) = (y2[taps[0] + ch], 0u8);
                    for (i, &t) in taps.iter().enumerate().skip(1) {
                        if y2[t + ch] > best {
                            (best, bi) = (y2[t + ch], i as u8);
                        }
                    }
                    let o = (ch * sp + py) * sp + px;
                    f[o] = best;
                    arg[o] = bi;
                }
            }
        }
    }

    /// The adjoint of [`Dims::pool`] and the ReLU before it: each pooled gradient goes to the
    /// input it came from, if that input was positive.
    fn unpool(&self, gf: &[f32], arg: &[u8], y2: &[f32], g2: &mut [f32]) {
        let sp = self.sp;
        g2.fill(0.0);
        for ch in 0..self.c2 {
            for py in 0..sp {
                for px in 0..sp {
                    let o = (ch * sp + py) * sp + px;
                    let p = self.pool_input(py, px, arg[o] as usize) + ch;
                    if y2[p] > 0.0 {
                        g2[p] = gf[o];
                    }
                }
            }
        }
    }
}

/// A chunk's scratch and gradient sums in the backward pass.
struct Scratch {
    cols1: Vec<f32>,
    cols2: Vec<f32>,
    g2: Vec<f32>,
    g1: Vec<f32>,
    dw1: Vec<f32>,
    db1: Vec<f32>,
    dw2: Vec<f32>,
    db2: Vec<f32>,
}

/// The trunk's saved activations and buffers, reused from one training step to the next.
#[derive(Debug, Default)]
pub struct HostTrunk {
    dims: Dims,
    /// Images in the last forward pass.
    n: usize,
    l1: Layer,
    l2: Layer,
    /// Inputs, `[n, s, s]`.
    x: Vec<f32>,
    /// First layer's outputs after ReLU, channels-last `[n, s-2, s-2, c1]`.
    y1: Vec<f32>,
    /// Second layer's outputs after ReLU, channels-last `[n, s-4, s-4, c2]`.
    y2: Vec<f32>,
    /// Which of its four inputs each pooled value came from (0..4), NCHW order.
    arg: Vec<u8>,
    /// The leaf tensor handed to burn, whose gradient [`HostTrunk::gradients`] reads.
    features: Option<Tensor<2>>,
}

impl HostTrunk {
    /// Runs conv1 + ReLU, conv2 + ReLU and 2x2 max pooling of `net` on `x` (`[n, 1, s, s]`)
    /// and returns the pooled features, `[n, c2 * ((s-4)/2)^2]` in NCHW flattening order,
    /// as a leaf on `x`'s device that requires a gradient. `None` if the network is not the
    /// notebook's trunk (3x3 VALID convolutions with biases on one input channel) or `x`
    /// does not fit it; the caller then runs burn's ops.
    pub fn forward(&mut self, net: &EmbeddingNet, x: Tensor<4>) -> Option<Tensor<2>> {
        let device = x.device();
        let (features, n, flat) = self.run(net, x)?;
        let t =
            Tensor::<2>::from_data(TensorData::new(features, [n, flat]), &device).require_grad();
        self.features = Some(t.clone());
        Some(t)
    }

    /// Whether the trunk serves `device`: the CPU (`flex`, or autodiff over it); elsewhere
    /// the convolutions stay on burn's ops.
    pub fn runs_on(device: &Device) -> bool {
        device.clone().inner() == Device::flex()
    }

    /// [`HostTrunk::forward`]'s features for inference: a plain tensor, with no gradient to
    /// follow and no activations kept (embedding a data set, where burn's ops cost about
    /// twice as much; README, "Speed notes"). `None` in the same cases.
    pub fn features(net: &EmbeddingNet, x: Tensor<4>) -> Option<Tensor<2>> {
        let device = x.device();
        let (d, l1, l2, n, x) = Self::prepare(net, x)?;
        let (n1, n2, flat) = d.per_image()?;
        let mut features = vec![0f32; n.checked_mul(flat)?];
        // Each thread's activations are scratch, reused from one image to the next.
        let ok = features
            .par_chunks_mut(flat)
            .zip(x.par_chunks(d.s * d.s))
            .map_init(
                || {
                    let (cols1, cols2) = d.cols();
                    (
                        cols1,
                        cols2,
                        vec![0f32; n1],
                        vec![0f32; n2],
                        vec![0u8; flat],
                    )
                },
                |(cols1, cols2, y1, y2, arg), (f, xi)| {
                    d.image(&l1, &l2, xi, (cols1, cols2), (y1, y2), f, arg)
                },
            )
            .all(|r| r.is_some());
        ok.then(|| Tensor::<2>::from_data(TensorData::new(features, [n, flat]), &device))
    }

    /// The checked sizes and layers of `net`'s trunk on `x`, and `x`'s values.
    fn prepare(net: &EmbeddingNet, x: Tensor<4>) -> Option<(Dims, Layer, Layer, usize, Vec<f32>)> {
        let [n, c0, h, w] = x.dims();
        let (l1, l2) = (Layer::read(&net.conv1)?, Layer::read(&net.conv2)?);
        if c0 != 1 || h != w || n == 0 {
            return None;
        }
        let d = Dims::new(h, &l1, &l2)?;
        let x = x.into_data().try_to_vec::<f32>().ok()?;
        Some((d, l1, l2, n, x))
    }

    /// The forward pass on the host: the pooled features, `[n, flat]` row-major, with the
    /// activations kept for [`HostTrunk::gradients`].
    fn run(&mut self, net: &EmbeddingNet, x: Tensor<4>) -> Option<(Vec<f32>, usize, usize)> {
        let (d, l1, l2, n, x) = Self::prepare(net, x)?;
        let (n1, n2, flat) = d.per_image()?;
        self.y1.resize(n.checked_mul(n1)?, 0.0);
        self.y2.resize(n.checked_mul(n2)?, 0.0);
        self.arg.resize(n.checked_mul(flat)?, 0);
        let mut features = vec![0f32; n * flat];
        let ok = features
            .par_chunks_mut(flat)
            .zip(self.arg.par_chunks_mut(flat))
            .zip(self.y1.par_chunks_mut(n1))
            .zip(self.y2.par_chunks_mut(n2))
            .zip(x.par_chunks(d.s * d.s))
            .map_init(
                || d.cols(),
                |(cols1, cols2), ((((f, arg), y1), y2), xi)| {
                    d.image(&l1, &l2, xi, (cols1, cols2), (y1, y2), f, arg)
                },
            )
            .all(|r| r.is_some());
        if !ok {
            return None;
        }
        self.x = x;
        (self.dims, self.n, self.l1, self.l2) = (d, n, l1, l2);
        Some((features, n, flat))
    }

    /// One image's share of the backward pass, added to the chunk's sums in `sc`.
    fn backward_image(&self, i: usize, gf: &[f32], sc: &mut Scratch) -> Option<()> {
        let (d, l2) = (self.dims, &self.l2);
        let (n1, n2, flat) = d.per_image()?;
        let (y1, y2) = (&self.y1[i * n1..][..n1], &self.y2[i * n2..][..n2]);
        d.unpool(
            &gf[i * flat..][..flat],
            &self.arg[i * flat..][..flat],
            y2,
            &mut sc.g2,
        );
        let (m2, k2, c1, c2) = (d.s2 * d.s2, 9 * d.c1, d.c1, d.c2);
        im2col(y1, d.s1, c1, &mut sc.cols2);
        // dW2 += cols2^T g2; db2 += column sums of g2.
        gemm_strided(
            k2,
            c2,
            m2,
            &mut sc.dw2,
            (&sc.cols2, 1, k2),
            (&sc.g2, c2, 1),
            true,
        )?;
        for px in sc.g2.chunks_exact(c2) {
            sc.db2.iter_mut().zip(px).for_each(|(d, g)| *d += g);
        }
        // d cols2 = g2 W2^T, back onto the first layer's map, through its ReLU.
        gemm_strided(
            m2,
            k2,
            c2,
            &mut sc.cols2,
            (&sc.g2, c2, 1),
            (&l2.weight, 1, c2),
            false,
        )?;
        col2im(&sc.cols2, d.s1, c1, &mut sc.g1);
        sc.g1.iter_mut().zip(y1).for_each(|(g, y)| {
            if *y <= 0.0 {
                *g = 0.0
            }
        });
        let (s, m1) = (d.s, d.s1 * d.s1);
        im2col(&self.x[i * s * s..][..s * s], s, 1, &mut sc.cols1);
        gemm_strided(
            9,
            c1,
            m1,
            &mut sc.dw1,
            (&sc.cols1, 1, 9),
            (&sc.g1, c1, 1),
            true,
        )?;
        for px in sc.g1.chunks_exact(c1) {
            sc.db1.iter_mut().zip(px).for_each(|(d, g)| *d += g);
        }
        Some(())
    }

    /// The parameter gradients of `net` from the loss's `grads`: those of the layers burn's
    /// autodiff ran ([`GradientsParams::from_grads`]) and, after a [`HostTrunk::forward`],
    /// conv1's and conv2's weights and biases from this trunk's backward pass. `None` if the
    /// forward pass's features got no gradient.
    pub fn gradients(&mut self, net: &EmbeddingNet, grads: Gradients) -> Option<GradientsParams> {
        let Some(features) = self.features.take() else {
            return Some(GradientsParams::from_grads(grads, net));
        };
        let device = features.device().inner();
        let gf = features
            .grad(&grads)?
            .into_data()
            .try_to_vec::<f32>()
            .ok()?;
        let mut params = GradientsParams::from_grads(grads, net);
        let (d, n, l1, l2) = (self.dims, self.n, &self.l1, &self.l2);
        let (n1, n2, flat) = d.per_image()?;
        if gf.len() != n * flat {
            return None;
        }
        // Fixed chunks, summed in order: the gradients do not depend on how rayon shares the
        // work out, so a seeded run is repeatable bit for bit.
        let ids: Vec<usize> = (0..n).collect();
        let partial: Option<Vec<[Vec<f32>; 4]>> = ids
            .par_chunks(CHUNK)
            .map(|chunk| {
                let mut sc = Scratch {
                    cols1: vec![0f32; d.s1 * d.s1 * 9],
                    cols2: vec![0f32; d.s2 * d.s2 * 9 * d.c1],
                    g2: vec![0f32; n2],
                    g1: vec![0f32; n1],
                    dw1: vec![0f32; l1.weight.len()],
                    db1: vec![0f32; d.c1],
                    dw2: vec![0f32; l2.weight.len()],
                    db2: vec![0f32; d.c2],
                };
                for &i in chunk {
                    self.backward_image(i, &gf, &mut sc)?;
                }
                Some([sc.dw1, sc.db1, sc.dw2, sc.db2])
            })
            .collect();
        let mut partial = partial?.into_iter();
        let mut sums = partial.next()?;
        for p in partial {
            for (x, y) in sums.iter_mut().zip(p) {
                x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
            }
        }
        let [dw1, db1, dw2, db2] = sums;
        let weight = |l: &Layer, g: &[f32]| {
            Tensor::<4>::from_data(
                TensorData::new(l.to_oihw(g), [l.cout, l.cin, 3, 3]),
                &device,
            )
        };
        let bias = |g: Vec<f32>| {
            let c = g.len();
            Tensor::<1>::from_data(TensorData::new(g, [c]), &device)
        };
        params.register(net.conv1.weight.id, weight(l1, &dw1));
        params.register(net.conv2.weight.id, weight(l2, &dw2));
        params.register(net.conv1.bias.as_ref()?.id, bias(db1));
        params.register(net.conv2.bias.as_ref()?.id, bias(db2));
        Some(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::EmbeddingNetConfig;
    use rand::{Rng, SeedableRng};

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// Largest difference relative to the largest reference value.
    fn rel_diff(got: &[f32], want: &[f32]) -> f32 {
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        got.iter()
            .zip(want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0, f32::max)
            / scale
    }

    #[test]
    fn host_trunk_gradients_match_burns_autodiff() {
        // No dropout, so that both passes see the same network; 26 px checks that nothing
        // assumes MNIST's 28.
        // Width 2 checks that nothing assumes the notebook's 32 and 64 channels; two blocks,
        // that the second block's convolutions (burn's ops, after the host's pooling) get
        // their gradients and pass the features' gradient back to the host.
        for (size, dim, width, blocks) in [
            (28, 64, 1, 1),
            (26, 2, 1, 1),
            (28, 8, 2, 1),
            (28, 64, 1, 2),
            (26, 8, 1, 2),
        ] {
            let cfg = EmbeddingNetConfig {
                input_size: size,
                dropout_conv: 0.0,
                dropout_dense: 0.0,
                dim,
                normalize: dim > 2,
                width,
                blocks,
            };
            let device = crate::default_device().autodiff();
            device.seed(7);
            let net = cfg.init(&device);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(size as u64);
            let n = 5;
            let px: Vec<f32> = (0..n * size * size)
                .map(|_| rng.random_range(0.0f32..1.0))
                .collect();
            let r: Vec<f32> = (0..n * dim)
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect();
            let x =
                || Tensor::<4>::from_data(TensorData::new(px.clone(), [n, 1, size, size]), &device);
            let weights = || Tensor::<2>::from_data(TensorData::new(r.clone(), [n, dim]), &device);

            let emb_burn = net.forward(x());
            let loss = (emb_burn.clone() * weights()).sum();
            let want = GradientsParams::from_grads(loss.backward(), &net);

            let mut trunk = HostTrunk::default();
            let features = trunk.forward(&net, x()).expect("the notebook's trunk");
            let emb_host = net.head(features);
            assert!(rel_diff(&values(emb_host.clone()), &values(emb_burn)) < 1e-5);
            let loss = (emb_host * weights()).sum();
            let got = trunk.gradients(&net, loss.backward()).unwrap();

            let w = |p: &GradientsParams, id| values(p.get::<4>(id).expect("a weight gradient"));
            let b = |p: &GradientsParams, id| values(p.get::<1>(id).expect("a bias gradient"));
            let second = net.conv3.iter().chain(net.conv4.iter());
            assert_eq!(second.clone().count(), if blocks == 2 { 2 } else { 0 });
            for conv in [&net.conv1, &net.conv2].into_iter().chain(second) {
                let (wi, bi) = (conv.weight.id, conv.bias.as_ref().unwrap().id);
                let (dw, db) = (
                    rel_diff(&w(&got, wi), &w(&want, wi)),
                    rel_diff(&b(&got, bi), &b(&want, bi)),
                );
                assert!(
                    dw < 1e-5 && db < 1e-5,
                    "{size} px, {blocks} blocks: weight {dw:.2e}, bias {db:.2e}"
                );
            }
            let fc = net.fc1.weight.id;
            let d = rel_diff(
                &values(got.get::<2>(fc).unwrap()),
                &values(want.get::<2>(fc).unwrap()),
            );
            assert!(d < 1e-5, "fc1: {d:.2e}");
        }
    }

    /// Embedding a data set runs the trunk on the host (inference, no autodiff device): the
    /// same embeddings as burn's ops to float rounding, for every batch split.
    #[test]
    fn embedding_a_data_set_on_the_host_trunk_matches_burns_ops() {
        let device = crate::default_device();
        device.seed(11);
        let cfg = EmbeddingNetConfig {
            dropout_conv: 0.0,
            dropout_dense: 0.0,
            ..EmbeddingNetConfig::retrieval64()
        };
        let net = cfg.init(&device);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let n = 7;
        let images: Vec<u8> = (0..n * 28 * 28)
            .map(|_| rng.random_range(0..=255u8))
            .collect();
        let data = crate::data::Dataset::new(images, vec![0; n], 28, 28, vec!["0".into()])
            .expect("a data set");
        let px = data.batch_f32(&(0..n).collect::<Vec<_>>());
        let x = Tensor::<4>::from_data(TensorData::new(px, [n, 1, 28, 28]), &device);
        let want = values(net.forward(x));
        for batch in [1, 3, 7] {
            let got = net.embed_dataset(&data, batch, &device, &crate::NoProgress);
            let d = rel_diff(&got, &want);
            assert!(d < 1e-5, "batch {batch}: {d:.2e}");
        }
    }

    #[test]
    fn a_trunk_other_than_the_notebooks_falls_back_to_burn() {
        let device = crate::default_device().autodiff();
        let mut net = EmbeddingNetConfig::retrieval64().init(&device);
        net.conv2.stride = [2, 2];
        let x = Tensor::<4>::zeros([1, 1, 28, 28], &device);
        assert!(HostTrunk::default().forward(&net, x).is_none());
        let net = EmbeddingNetConfig::retrieval64().init(&device);
        let three_channels = Tensor::<4>::zeros([1, 3, 28, 28], &device);
        assert!(HostTrunk::default().forward(&net, three_channels).is_none());
    }
}
