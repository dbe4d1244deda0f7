//! CPU inference kernels on channels-last (`[h, w, c]`) `f32` feature maps.
//!
//! Why: on the `flex` device, burn runs a depthwise convolution as one small im2col + GEMM per
//! channel group and gives every element-wise op a freshly allocated (and, for large maps,
//! freshly zeroed by the kernel) output. A `perf` profile of `recog bench face` (README, "Speed
//! notes") put 18% of the run in page zeroing and most of the rest in those per-op copies,
//! so MobileFaceNet ran at about 30 GFLOP/s. Channels innermost, the depthwise taps are
//! contiguous vector loads, a 1x1 convolution is a single GEMM with no data movement, and the
//! bias and activation are applied while the output is still in cache.
//!
//! These kernels run one image at a time; callers parallelise over the images of a batch.
//!
//! ```
//! use recog::nn::cpu::{Act, Conv, FeatureMap};
//! // A 1x1 convolution from 2 channels to 1: out = 1*a + 10*b + 0.5.
//! let conv = Conv::new(1, 1, 2, 1, [1, 1], false, vec![1.0, 10.0], vec![0.5], None).unwrap();
//! let x = FeatureMap { h: 1, w: 2, c: 2, data: vec![1.0, 2.0, 3.0, 4.0] };
//! assert_eq!(conv.run(&x).unwrap().data, vec![21.5, 43.5]);
//! # let _ = Act::Relu;
//! ```

/// A channels-last feature map of one image: `data[(y * w + x) * c + channel]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMap {
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Channels.
    pub c: usize,
    /// `h * w * c` values.
    pub data: Vec<f32>,
}

impl FeatureMap {
    /// A feature map from one image's planar (`[c, h, w]`) values; `data` must hold
    /// `c * h * w` of them (extra ones are ignored, missing ones read as 0).
    pub fn from_planar(data: &[f32], c: usize, h: usize, w: usize) -> Self {
        let n = h * w;
        let mut out = vec![0f32; n * c];
        for ch in 0..c {
            let plane = data.get(ch * n..(ch + 1) * n).unwrap_or(&[]);
            for (p, v) in plane.iter().enumerate() {
                out[p * c + ch] = *v;
            }
        }
        Self { h, w, c, data: out }
    }

    /// Whether `data` holds exactly `h * w * c` values.
    pub fn is_consistent(&self) -> bool {
        self.h
            .checked_mul(self.w)
            .and_then(|p| p.checked_mul(self.c))
            .is_some_and(|n| n == self.data.len())
    }
}

/// An activation applied in a kernel's epilogue.
#[derive(Debug, Clone, PartialEq)]
pub enum Act {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x` for `x >= 0`, else `slope[channel] * x` (one slope per channel).
    PRelu(Vec<f32>),
}

impl Act {
    /// Applies the activation to one pixel's channels (`v.len()` channels).
    #[inline]
    pub fn apply(&self, v: &mut [f32]) {
        match self {
            Act::Relu => v.iter_mut().for_each(|x| *x = x.max(0.0)),
            Act::Relu6 => v.iter_mut().for_each(|x| *x = x.clamp(0.0, 6.0)),
            // Branch-free so that it vectorises: for x < 0, x * a + 0; else 0 * a + x = x.
            Act::PRelu(s) => v
                .iter_mut()
                .zip(s)
                .for_each(|(x, a)| *x = x.min(0.0) * a + x.max(0.0)),
        }
    }

    /// Whether the activation fits `c` channels.
    fn fits(&self, c: usize) -> bool {
        match self {
            Act::PRelu(s) => s.len() == c,
            _ => true,
        }
    }
}

/// Whether the CPU runs the AVX2 + FMA versions of the kernels (portable builds target
/// SSE2 only, so these are chosen at run time).
#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

/// Output size and leading padding of a convolution along one axis: TensorFlow's `SAME`
/// (output `ceil(n / stride)`, odd padding after) or `VALID`.
fn geometry(n: usize, k: usize, stride: usize, same: bool) -> Option<(usize, usize)> {
    if stride == 0 || k == 0 {
        return None;
    }
    if same {
        let out = n.div_ceil(stride);
        let need = ((out.checked_sub(1)?) * stride + k).saturating_sub(n);
        Some((out, need / 2))
    } else {
        Some((n.checked_sub(k)? / stride + 1, 0))
    }
}

/// `c[m x n] = a[m x k] * b[k x n]`, all row-major; `None` if a slice is too short.
pub fn matmul(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) -> Option<()> {
    if a.len() < m.checked_mul(k)? || b.len() < k.checked_mul(n)? || c.len() < m.checked_mul(n)? {
        return None;
    }
    if m == 0 || n == 0 {
        return Some(());
    }
    if k == 0 {
        c[..m * n].fill(0.0);
        return Some(());
    }
    let (rs_a, rs_b, rs_c) = (
        isize::try_from(k).ok()?,
        isize::try_from(n).ok()?,
        isize::try_from(n).ok()?,
    );
    // SAFETY: the slices hold at least m*k, k*n and m*n elements (checked above), and the
    // strides (row k, n, n; column 1) address exactly those row-major matrices. `c` is
    // borrowed mutably, so it aliases neither input. `read_dst = false`: `c` is only written.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            rs_c,
            false,
            a.as_ptr(),
            1,
            rs_a,
            b.as_ptr(),
            1,
            rs_b,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    Some(())
}

/// A dense 2-d convolution (TensorFlow `CONV_2D`), dilation 1.
#[derive(Debug, Clone)]
pub struct Conv {
    kh: usize,
    kw: usize,
    cin: usize,
    cout: usize,
    stride: [usize; 2],
    same: bool,
    /// `[kh * kw * cin, cout]`: row `(ky * kw + kx) * cin + ci`.
    weight: Vec<f32>,
    bias: Vec<f32>,
    /// Applied in the epilogue.
    act: Option<Act>,
}

impl Conv {
    /// A convolution with `weight` laid out `[kh, kw, cin, cout]` and `bias` of `cout`
    /// (zeros when empty); `None` if the lengths do not match.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kh: usize,
        kw: usize,
        cin: usize,
        cout: usize,
        stride: [usize; 2],
        same: bool,
        weight: Vec<f32>,
        bias: Vec<f32>,
        act: Option<Act>,
    ) -> Option<Self> {
        let k = kh.checked_mul(kw)?.checked_mul(cin)?;
        let bias = if bias.is_empty() {
            vec![0.0; cout]
        } else {
            bias
        };
        (weight.len() == k.checked_mul(cout)?
            && bias.len() == cout
            && act.as_ref().is_none_or(|a| a.fits(cout))
            && stride[0] > 0
            && stride[1] > 0)
            .then_some(Self {
                kh,
                kw,
                cin,
                cout,
                stride,
                same,
                weight,
                bias,
                act,
            })
    }

    /// A convolution from burn's (and PyTorch's, ONNX's) `[out, in, kh, kw]` weight layout.
    #[allow(clippy::too_many_arguments)]
    pub fn from_oihw(
        w: &[f32],
        [o, i, kh, kw]: [usize; 4],
        bias: Vec<f32>,
        stride: [usize; 2],
        same: bool,
        act: Option<Act>,
    ) -> Option<Self> {
        if w.len() != o.checked_mul(i)?.checked_mul(kh)?.checked_mul(kw)? {
            return None;
        }
        let mut hwio = vec![0f32; w.len()];
        for co in 0..o {
            for ci in 0..i {
                for ky in 0..kh {
                    for kx in 0..kw {
                        hwio[((ky * kw + kx) * i + ci) * o + co] =
                            w[((co * i + ci) * kh + ky) * kw + kx];
                    }
                }
            }
        }
        Self::new(kh, kw, i, o, stride, same, hwio, bias, act)
    }

    /// Sets the epilogue's activation if there is none yet and it fits the output
    /// channels; whether it was set.
    pub fn fuse(&mut self, act: Act) -> bool {
        let ok = self.act.is_none() && act.fits(self.cout);
        if ok {
            self.act = Some(act);
        }
        ok
    }

    /// Runs the convolution; `None` if `x` does not have `cin` channels or is smaller than
    /// the kernel under `VALID` padding.
    pub fn run(&self, x: &FeatureMap) -> Option<FeatureMap> {
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked at run time just above).
            return unsafe { self.run_avx2(x) };
        }
        self.run_portable(x)
    }

    /// The same code compiled for AVX2: 8 lanes for the epilogue and the im2col copies.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, x: &FeatureMap) -> Option<FeatureMap> {
        self.run_portable(x)
    }

    #[inline(always)]
    fn run_portable(&self, x: &FeatureMap) -> Option<FeatureMap> {
        if x.c != self.cin || !x.is_consistent() {
            return None;
        }
        let (oh, pt) = geometry(x.h, self.kh, self.stride[0], self.same)?;
        let (ow, pl) = geometry(x.w, self.kw, self.stride[1], self.same)?;
        let m = oh.checked_mul(ow)?;
        let k = self.kh * self.kw * self.cin;
        let mut out = vec![0f32; m.checked_mul(self.cout)?];
        if self.kh == 1 && self.kw == 1 && self.stride == [1, 1] {
            // Channels-last, a 1x1 convolution is the image as an [h*w, cin] matrix.
            matmul(&x.data, &self.weight, &mut out, m, k, self.cout)?;
        } else {
            let mut cols = vec![0f32; m.checked_mul(k)?];
            for oy in 0..oh {
                for ox in 0..ow {
                    let row = &mut cols[(oy * ow + ox) * k..][..k];
                    for ky in 0..self.kh {
                        let Some(iy) = (oy * self.stride[0] + ky).checked_sub(pt) else {
                            continue;
                        };
                        if iy >= x.h {
                            continue;
                        }
                        for kx in 0..self.kw {
                            let Some(ix) = (ox * self.stride[1] + kx).checked_sub(pl) else {
                                continue;
                            };
                            if ix >= x.w {
                                continue;
                            }
                            row[(ky * self.kw + kx) * self.cin..][..self.cin]
                                .copy_from_slice(&x.data[(iy * x.w + ix) * x.c..][..x.c]);
                        }
                    }
                }
            }
            matmul(&cols, &self.weight, &mut out, m, k, self.cout)?;
        }
        for px in out.chunks_exact_mut(self.cout) {
            px.iter_mut().zip(&self.bias).for_each(|(v, b)| *v += b);
            if let Some(a) = &self.act {
                a.apply(px);
            }
        }
        Some(FeatureMap {
            h: oh,
            w: ow,
            c: self.cout,
            data: out,
        })
    }
}

/// A depthwise 2-d convolution, one filter per channel (TensorFlow `DEPTHWISE_CONV_2D` with
/// depth multiplier 1), dilation 1.
#[derive(Debug, Clone)]
pub struct Depthwise {
    kh: usize,
    kw: usize,
    c: usize,
    stride: [usize; 2],
    same: bool,
    /// `[kh * kw, c]`.
    weight: Vec<f32>,
    bias: Vec<f32>,
    /// Applied in the epilogue.
    act: Option<Act>,
}

impl Depthwise {
    /// A depthwise convolution with `weight` laid out `[kh, kw, c]` and `bias` of `c`
    /// (zeros when empty); `None` if the lengths do not match.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kh: usize,
        kw: usize,
        c: usize,
        stride: [usize; 2],
        same: bool,
        weight: Vec<f32>,
        bias: Vec<f32>,
        act: Option<Act>,
    ) -> Option<Self> {
        let bias = if bias.is_empty() { vec![0.0; c] } else { bias };
        (weight.len() == kh.checked_mul(kw)?.checked_mul(c)?
            && bias.len() == c
            && act.as_ref().is_none_or(|a| a.fits(c))
            && stride[0] > 0
            && stride[1] > 0)
            .then_some(Self {
                kh,
                kw,
                c,
                stride,
                same,
                weight,
                bias,
                act,
            })
    }

    /// A depthwise convolution from burn's `[c, 1, kh, kw]` weight layout.
    pub fn from_c1hw(
        w: &[f32],
        [c, one, kh, kw]: [usize; 4],
        bias: Vec<f32>,
        stride: [usize; 2],
        same: bool,
        act: Option<Act>,
    ) -> Option<Self> {
        if one != 1 || w.len() != c.checked_mul(kh)?.checked_mul(kw)? {
            return None;
        }
        let mut hwc = vec![0f32; w.len()];
        for ch in 0..c {
            for k in 0..kh * kw {
                hwc[k * c + ch] = w[ch * kh * kw + k];
            }
        }
        Self::new(kh, kw, c, stride, same, hwc, bias, act)
    }

    /// Sets the epilogue's activation if there is none yet and it fits the channels;
    /// whether it was set.
    pub fn fuse(&mut self, act: Act) -> bool {
        let ok = self.act.is_none() && act.fits(self.c);
        if ok {
            self.act = Some(act);
        }
        ok
    }

    /// Runs the convolution; `None` if `x` does not have `c` channels or is smaller than the
    /// kernel under `VALID` padding.
    pub fn run(&self, x: &FeatureMap) -> Option<FeatureMap> {
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked at run time just above).
            return unsafe { self.run_avx2(x) };
        }
        self.run_portable(x)
    }

    /// The same code compiled for AVX2: the channel loop in 8 lanes instead of SSE2's 4.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, x: &FeatureMap) -> Option<FeatureMap> {
        self.run_portable(x)
    }

    #[inline(always)]
    fn run_portable(&self, x: &FeatureMap) -> Option<FeatureMap> {
        if x.c != self.c || !x.is_consistent() {
            return None;
        }
        let c = self.c;
        let (oh, pt) = geometry(x.h, self.kh, self.stride[0], self.same)?;
        let (ow, pl) = geometry(x.w, self.kw, self.stride[1], self.same)?;
        let mut out = vec![0f32; oh.checked_mul(ow)?.checked_mul(c)?];
        for oy in 0..oh {
            for ox in 0..ow {
                let o = &mut out[(oy * ow + ox) * c..][..c];
                o.copy_from_slice(&self.bias);
                for ky in 0..self.kh {
                    let Some(iy) = (oy * self.stride[0] + ky).checked_sub(pt) else {
                        continue;
                    };
                    if iy >= x.h {
                        continue;
                    }
                    for kx in 0..self.kw {
                        let Some(ix) = (ox * self.stride[1] + kx).checked_sub(pl) else {
                            continue;
                        };
                        if ix >= x.w {
                            continue;
                        }
                        let xi = &x.data[(iy * x.w + ix) * c..][..c];
                        let wk = &self.weight[(ky * self.kw + kx) * c..][..c];
                        o.iter_mut()
                            .zip(xi)
                            .zip(wk)
                            .for_each(|((o, a), b)| *o += a * b);
                    }
                }
                if let Some(a) = &self.act {
                    a.apply(o);
                }
            }
        }
        Some(FeatureMap {
            h: oh,
            w: ow,
            c,
            data: out,
        })
    }
}

/// 2x2 max pooling with stride 2 (odd trailing rows and columns dropped, as burn and
/// TensorFlow's `VALID` do).
pub fn max_pool_2x2(x: &FeatureMap) -> Option<FeatureMap> {
    if !x.is_consistent() {
        return None;
    }
    let (oh, ow, c) = (x.h / 2, x.w / 2, x.c);
    let mut out = vec![0f32; oh * ow * c];
    for oy in 0..oh {
        for ox in 0..ow {
            let o = &mut out[(oy * ow + ox) * c..][..c];
            let at = |y: usize, xx: usize| &x.data[(y * x.w + xx) * c..][..c];
            let (a, b, d, e) = (
                at(2 * oy, 2 * ox),
                at(2 * oy, 2 * ox + 1),
                at(2 * oy + 1, 2 * ox),
                at(2 * oy + 1, 2 * ox + 1),
            );
            for i in 0..c {
                o[i] = a[i].max(b[i]).max(d[i].max(e[i]));
            }
        }
    }
    Some(FeatureMap {
        h: oh,
        w: ow,
        c,
        data: out,
    })
}

/// `out = relu(out + skip)`, where `skip` may have fewer channels than `out`: the missing
/// ones count as zero (a residual shortcut padded with zero channels).
pub fn add_relu(out: &mut FeatureMap, skip: &FeatureMap) -> Option<()> {
    if (out.h, out.w) != (skip.h, skip.w)
        || skip.c > out.c
        || !out.is_consistent()
        || !skip.is_consistent()
    {
        return None;
    }
    let (c, cs) = (out.c.max(1), skip.c);
    if cs == 0 {
        out.data.iter_mut().for_each(|v| *v = v.max(0.0));
        return Some(());
    }
    for (o, s) in out.data.chunks_exact_mut(c).zip(skip.data.chunks_exact(cs)) {
        o[..cs].iter_mut().zip(s).for_each(|(o, s)| *o += s);
        o.iter_mut().for_each(|v| *v = v.max(0.0));
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::*;
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::TensorData;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
    }

    /// burn's `conv2d` on the same data, NCHW, as the reference.
    #[allow(clippy::too_many_arguments)]
    fn burn_conv(
        x: &FeatureMap,
        w_hwio: &[f32],
        kh: usize,
        kw: usize,
        cout: usize,
        bias: &[f32],
        stride: usize,
        pad: [(usize, usize); 2],
        groups: usize,
    ) -> Vec<f32> {
        let d = crate::default_device();
        let (h, wd, c) = (x.h, x.w, x.c);
        let mut nchw = vec![0f32; c * h * wd];
        for y in 0..h {
            for xx in 0..wd {
                for ch in 0..c {
                    nchw[(ch * h + y) * wd + xx] = x.data[(y * wd + xx) * c + ch];
                }
            }
        }
        let cin_g = c / groups;
        let mut w = vec![0f32; cout * cin_g * kh * kw];
        for o in 0..cout {
            for i in 0..cin_g {
                for ky in 0..kh {
                    for kx in 0..kw {
                        // Dense: [kh, kw, cin, cout]; depthwise: [kh, kw, c].
                        let v = if groups == 1 {
                            w_hwio[((ky * kw + kx) * c + i) * cout + o]
                        } else {
                            w_hwio[(ky * kw + kx) * c + o]
                        };
                        w[((o * cin_g + i) * kh + ky) * kw + kx] = v;
                    }
                }
            }
        }
        let y = conv2d(
            Tensor::<4>::from_data(TensorData::new(nchw, [1, c, h, wd]), &d),
            Tensor::from_data(TensorData::new(w, [cout, cin_g, kh, kw]), &d),
            Some(Tensor::from_data(
                TensorData::new(bias.to_vec(), [cout]),
                &d,
            )),
            ConvOptions::new_with_padding([stride, stride], pad, [1, 1], groups),
        );
        let [_, oc, oh, ow] = y.dims();
        let v = y.into_data().try_to_vec::<f32>().unwrap();
        let mut nhwc = vec![0f32; v.len()];
        for ch in 0..oc {
            for yy in 0..oh {
                for xx in 0..ow {
                    nhwc[(yy * ow + xx) * oc + ch] = v[(ch * oh + yy) * ow + xx];
                }
            }
        }
        nhwc
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn cpu_convolutions_match_burn() {
        // (h, w, cin, cout, k, stride, same): odd sizes make SAME pad unevenly.
        for (i, &(h, w, cin, cout, k, s, same)) in [
            (9, 7, 3, 8, 3, 2, true),
            (8, 8, 5, 6, 3, 1, true),
            (6, 5, 4, 7, 1, 1, false),
            (7, 7, 4, 3, 7, 1, false),
            (10, 9, 6, 6, 1, 2, true),
        ]
        .iter()
        .enumerate()
        {
            let x = FeatureMap {
                h,
                w,
                c: cin,
                data: random(h * w * cin, i as u64),
            };
            let pad = |n: usize| {
                let (out, before) = geometry(n, k, s, same).unwrap();
                let need = ((out - 1) * s + k).saturating_sub(n);
                (before, need - before)
            };
            let pads = if same { [pad(h), pad(w)] } else { [(0, 0); 2] };
            let wt = random(k * k * cin * cout, 100 + i as u64);
            let b = random(cout, 200 + i as u64);
            let conv = Conv::new(k, k, cin, cout, [s, s], same, wt.clone(), b.clone(), None);
            let got = conv.unwrap().run(&x).unwrap();
            let want = burn_conv(&x, &wt, k, k, cout, &b, s, pads, 1);
            assert!(max_diff(&got.data, &want) < 1e-5, "conv case {i}");

            let wd = random(k * k * cin, 300 + i as u64);
            let bd = random(cin, 400 + i as u64);
            let dw = Depthwise::new(k, k, cin, [s, s], same, wd.clone(), bd.clone(), None);
            let got = dw.unwrap().run(&x).unwrap();
            let want = burn_conv(&x, &wd, k, k, cin, &bd, s, pads, cin);
            assert!(max_diff(&got.data, &want) < 1e-5, "depthwise case {i}");
        }
    }

    #[test]
    fn a_feature_map_of_the_wrong_depth_is_refused_not_read_past() {
        let conv = Conv::new(3, 3, 4, 2, [1, 1], true, vec![0.0; 72], vec![], None).unwrap();
        let x = FeatureMap {
            h: 4,
            w: 4,
            c: 3,
            data: vec![0.0; 48],
        };
        assert!(conv.run(&x).is_none());
        let short = FeatureMap {
            h: 4,
            w: 4,
            c: 4,
            data: vec![0.0; 60],
        };
        assert!(conv.run(&short).is_none());
        let tiny = FeatureMap {
            h: 2,
            w: 2,
            c: 4,
            data: vec![0.0; 16],
        };
        let valid = Conv::new(3, 3, 4, 2, [1, 1], false, vec![0.0; 72], vec![], None).unwrap();
        assert!(valid.run(&tiny).is_none());
    }

    #[test]
    fn prelu_scales_only_the_negative_side() {
        let mut v = vec![-2.0, 3.0, -1.0];
        Act::PRelu(vec![0.5, 0.5, 0.25]).apply(&mut v);
        assert_eq!(v, vec![-1.0, 3.0, -0.25]);
    }
}
