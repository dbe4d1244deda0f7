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
//! Callers parallelise over the images of a batch; a single large map (a video frame's finest
//! pyramid level) is split into bands of output rows that run in parallel too.
//!
//! ```
//! use recog::nn::cpu::{Act, Conv, FeatureMap, Precision};
//! // A 1x1 convolution from 2 channels to 1: out = 1*a + 10*b + 0.5.
//! let mut conv = Conv::new(1, 1, 2, 1, [1, 1], false, vec![1.0, 10.0], vec![0.5], None).unwrap();
//! // bfloat16 applies from 32 output channels, on CPUs with AVX512-BF16: this one stays f32.
//! conv.set_precision(Precision::Bf16);
//! assert_eq!(conv.precision(), Precision::F32);
//! let x = FeatureMap { h: 1, w: 2, c: 2, data: vec![1.0, 2.0, 3.0, 4.0] };
//! let before = recog::nn::cpu::multiply_adds();
//! assert_eq!(conv.run(&x).unwrap().data, vec![21.5, 43.5]);
//! // 2 pixels x 2 input channels x 1 output channel.
//! assert!(recog::nn::cpu::multiply_adds() - before >= 4);
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

    /// A `w x h` map of `c` channels from an interleaved 8-bit image (`iw x ih` pixels of
    /// `c` bytes, as `image`'s buffers), each byte through `f`, placed at the top left;
    /// beyond the image the map is 0. Its storage comes from the spares of this thread
    /// ([`recycle`]): building network inputs this way, instead of through a planar copy
    /// and a transpose, took most of `recog bench face`'s page faults away. `None` if
    /// `bytes` holds fewer than `iw * ih * c` values.
    pub fn from_interleaved(
        bytes: &[u8],
        (iw, ih): (usize, usize),
        c: usize,
        (w, h): (usize, usize),
        f: impl Fn(u8) -> f32,
    ) -> Option<Self> {
        let row = iw.checked_mul(c)?;
        let bytes = bytes.get(..row.checked_mul(ih)?)?;
        let n = w.checked_mul(h)?.checked_mul(c)?;
        let mut data = output(n);
        let (cw, ch) = (iw.min(w), ih.min(h));
        for (y, out) in data.chunks_exact_mut((w * c).max(1)).enumerate() {
            let (inside, beyond) = out.split_at_mut(if y < ch { cw * c } else { 0 });
            if y < ch {
                for (o, b) in inside.iter_mut().zip(&bytes[y * row..][..cw * c]) {
                    *o = f(*b);
                }
            }
            beyond.fill(0.0);
        }
        Some(Self { h, w, c, data })
    }

    /// A copy with `max(v, 0)` applied to every value.
    pub fn relu(&self) -> Self {
        Self {
            data: self.data.iter().map(|v| v.max(0.0)).collect(),
            ..*self
        }
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
    #[inline(always)]
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

/// Runs `f` compiled for AVX2 + FMA where the CPU has them: `f`, inlined into a function with
/// those target features, gets 8-lane loops instead of SSE2's 4.
#[inline(always)]
fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU has AVX2 and FMA (checked at run time just above).
        return unsafe { with_avx2(f) };
    }
    f()
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

/// Multiply-adds of this module's GEMMs and depthwise convolutions, on every thread, since
/// the process started (the full kernel window, padding taps included, as FLOP counts of
/// networks are quoted). `recog bench face` divides the change over a stage by its time for
/// the GFLOP/s each network achieves; element-wise work (activations, additions, pooling) is
/// not counted.
pub fn multiply_adds() -> u64 {
    MACS.load(std::sync::atomic::Ordering::Relaxed)
}

static MACS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn count_macs(n: usize) {
    MACS.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
}

/// `c[m x n] = a[m x k] * b[k x n]`, all row-major; `None` if a slice is too short.
pub fn matmul(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) -> Option<()> {
    gemm_strided(m, n, k, c, (a, k, 1), (b, n, 1), false)
}

/// `c[m x n] (+)= a[m x k] * b[k x n]`, `c` row-major; `a` and `b` are read through (row
/// stride, column stride), so a transposed operand costs no copy. With `accumulate` the
/// product is added to `c`, else it replaces it. `None` if a slice is too short for its
/// strides.
pub fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    c: &mut [f32],
    (a, a_rs, a_cs): (&[f32], usize, usize),
    (b, b_rs, b_cs): (&[f32], usize, usize),
    accumulate: bool,
) -> Option<()> {
    // The last element a strided (rows x cols) view touches, plus one.
    let span = |rows: usize, cols: usize, rs: usize, cs: usize| -> Option<usize> {
        if rows == 0 || cols == 0 {
            return Some(0);
        }
        (rows - 1)
            .checked_mul(rs)?
            .checked_add((cols - 1).checked_mul(cs)?)?
            .checked_add(1)
    };
    if a.len() < span(m, k, a_rs, a_cs)?
        || b.len() < span(k, n, b_rs, b_cs)?
        || c.len() < m.checked_mul(n)?
    {
        return None;
    }
    if m == 0 || n == 0 {
        return Some(());
    }
    count_macs(m.saturating_mul(n).saturating_mul(k));
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return Some(());
    }
    let s = |v: usize| isize::try_from(v).ok();
    let (rs_c, a_rs, a_cs, b_rs, b_cs) = (s(n)?, s(a_rs)?, s(a_cs)?, s(b_rs)?, s(b_cs)?);
    // SAFETY: every element the strided views address lies inside its slice (the spans are
    // checked above), `c` holds the m*n row-major output, and `c` is borrowed mutably, so it
    // aliases neither input. With `read_dst` the product is added to `c` (alpha 1), without
    // it `c` is only written.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            rs_c,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    Some(())
}

/// A kernel window: size, stride and padding, dilation 1. Dense and depthwise convolutions
/// walk their taps the same way.
#[derive(Debug, Clone)]
struct Window {
    kh: usize,
    kw: usize,
    stride: [usize; 2],
    same: bool,
}

/// A [`Window`] placed on an input of known size.
struct Placement {
    oh: usize,
    ow: usize,
    pt: usize,
    pl: usize,
    h: usize,
    w: usize,
}

impl Window {
    fn new(kh: usize, kw: usize, stride: [usize; 2], same: bool) -> Option<Self> {
        (kh > 0 && kw > 0 && stride[0] > 0 && stride[1] > 0).then_some(Self {
            kh,
            kw,
            stride,
            same,
        })
    }

    fn taps(&self) -> usize {
        self.kh * self.kw
    }

    /// The output size on an `h x w` input; `None` if a `VALID` window does not fit.
    fn place(&self, h: usize, w: usize) -> Option<Placement> {
        let (oh, pt) = geometry(h, self.kh, self.stride[0], self.same)?;
        let (ow, pl) = geometry(w, self.kw, self.stride[1], self.same)?;
        oh.checked_mul(ow)?;
        Some(Placement {
            oh,
            ow,
            pt,
            pl,
            h,
            w,
        })
    }

    /// Calls `f(tap, pixel)` for each tap (`ky * kw + kx`) of output `(oy, ox)` that lands
    /// inside the input, with the input pixel's index `iy * w + ix`; padding taps are skipped.
    #[inline(always)]
    fn each_tap(&self, p: &Placement, oy: usize, ox: usize, mut f: impl FnMut(usize, usize)) {
        for ky in 0..self.kh {
            let Some(iy) = (oy * self.stride[0] + ky).checked_sub(p.pt) else {
                continue;
            };
            if iy >= p.h {
                continue;
            }
            for kx in 0..self.kw {
                let Some(ix) = (ox * self.stride[1] + kx).checked_sub(p.pl) else {
                    continue;
                };
                if ix < p.w {
                    f(ky * self.kw + kx, iy * p.w + ix);
                }
            }
        }
    }
}

/// What a kernel does to each output pixel after its sums: add the bias, then the
/// activation.
#[derive(Debug, Clone)]
struct Epilogue {
    bias: Vec<f32>,
    act: Option<Act>,
}

impl Epilogue {
    /// `bias` of `c` values (zeros when empty) and an activation that fits `c` channels.
    fn new(c: usize, bias: Vec<f32>, act: Option<Act>) -> Option<Self> {
        let bias = if bias.is_empty() { vec![0.0; c] } else { bias };
        (bias.len() == c && act.as_ref().is_none_or(|a| a.fits(c))).then_some(Self { bias, act })
    }

    /// Sets the activation if there is none yet and it fits; whether it was set.
    fn fuse(&mut self, act: Act) -> bool {
        let ok = self.act.is_none() && act.fits(self.bias.len());
        if ok {
            self.act = Some(act);
        }
        ok
    }

    #[inline(always)]
    fn apply(&self, px: &mut [f32], bias_added: bool) {
        if !bias_added {
            px.iter_mut().zip(&self.bias).for_each(|(v, b)| *v += b);
        }
        if let Some(a) = &self.act {
            a.apply(px);
        }
    }
}

/// A residual shortcut for [`Conv::run_residual`].
#[derive(Debug, Clone, Copy)]
pub enum Shortcut<'a> {
    /// The block's input, at the output's size.
    Identity(&'a FeatureMap),
    /// The block's input at twice the output's size, max-pooled 2x2 with stride 2 (as
    /// [`max_pool_2x2`]).
    MaxPool2x2(&'a FeatureMap),
}

/// The number format of a convolution's multiplications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// `f32` throughout, as the source frameworks compute: the default, the arithmetic
    /// every accuracy figure in README was measured in (and, since the face pipeline's
    /// `f32` path reached 107-114 faces/s on 2 cores, fast enough to need no rounding).
    #[default]
    F32,
    /// Inputs of the dense convolutions' GEMMs rounded to bfloat16, sums in `f32`, on CPUs
    /// with AVX512-BF16 (AMD Zen 4 and later, Intel Sapphire Rapids and later); twice the
    /// multiply-adds per cycle, about 1.25x the face pipeline's throughput, with descriptors
    /// about 0.005 (unit length) from `f32`'s. Elsewhere, and for convolutions of fewer than
    /// 32 output channels (where the kernel's 32-column panels would be mostly padding),
    /// `f32`.
    Bf16,
}

impl Precision {
    /// The precision the kernels use on this CPU for `requested`.
    pub fn effective(requested: Precision) -> Precision {
        match requested {
            Precision::Bf16 if super::bf16::available() => Precision::Bf16,
            _ => Precision::F32,
        }
    }
}

/// A dense convolution's weights as its product kernel reads them.
#[derive(Debug, Clone)]
enum Packed {
    /// gemm's kernels read the `[k, cout]` weights as they are.
    None,
    /// [`super::panel`]'s `f32` kernel (CPUs with AVX-512): the same sums in the same order
    /// as gemm's, so the same bits.
    F32(super::panel::PackedF32),
    /// Rounded to bfloat16 ([`Precision::Bf16`]).
    Bf16(super::bf16::PackedB),
}

impl Packed {
    /// The `f32` packing where the CPU runs [`super::panel`]'s kernel and the sums are no
    /// longer than [`super::panel::MAX_K`] (the same bits as gemm's).
    fn f32(weight: &[f32], k: usize, cout: usize) -> Self {
        if super::panel::available() && k <= super::panel::MAX_K {
            super::panel::PackedF32::new(weight, k, cout).map_or(Packed::None, Packed::F32)
        } else {
            Packed::None
        }
    }
}

/// A dense 2-d convolution (TensorFlow `CONV_2D`), dilation 1.
#[derive(Debug, Clone)]
pub struct Conv {
    window: Window,
    cin: usize,
    cout: usize,
    /// `[kh * kw * cin, cout]`: row `(ky * kw + kx) * cin + ci`.
    weight: Vec<f32>,
    /// `weight` packed for the kernel that runs the product.
    packed: Packed,
    epilogue: Epilogue,
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
        let window = Window::new(kh, kw, stride, same)?;
        let rows = window.taps().checked_mul(cin)?;
        (weight.len() == rows.checked_mul(cout)?).then_some(())?;
        Some(Self {
            window,
            cin,
            cout,
            packed: Packed::f32(&weight, rows, cout),
            weight,
            epilogue: Epilogue::new(cout, bias, act)?,
        })
    }

    /// Sets the number format of the convolution's multiplications (`f32` at construction).
    /// [`Precision::Bf16`] applies only where [`Precision::effective`] allows it and the
    /// convolution has 32 output channels or more.
    pub fn set_precision(&mut self, precision: Precision) {
        let rows = self.weight.len() / self.cout.max(1);
        self.packed = match Precision::effective(precision) {
            Precision::Bf16 if self.cout >= 32 => {
                super::bf16::PackedB::new(&self.weight, rows, self.cout).map(Packed::Bf16)
            }
            _ => None,
        }
        .unwrap_or_else(|| Packed::f32(&self.weight, rows, self.cout));
    }

    /// The number format the convolution runs in.
    pub fn precision(&self) -> Precision {
        if matches!(self.packed, Packed::Bf16(_)) {
            Precision::Bf16
        } else {
            Precision::F32
        }
    }

    /// `out[m x cout] = a[m x k] * weight`, in the convolution's precision.
    #[inline(always)]
    fn product(&self, a: &[f32], out: &mut [f32], m: usize, k: usize) -> Option<()> {
        match &self.packed {
            Packed::Bf16(b) => {
                count_macs(m.saturating_mul(k).saturating_mul(self.cout));
                super::bf16::matmul(a.get(..m.checked_mul(k)?)?, b, out, m)
            }
            Packed::F32(b) => {
                count_macs(m.saturating_mul(k).saturating_mul(self.cout));
                super::panel::matmul(a.get(..m.checked_mul(k)?)?, b, out, m)
            }
            Packed::None => matmul(a, &self.weight, out, m, k, self.cout),
        }
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
        self.epilogue.fuse(act)
    }

    /// Runs the convolution; `None` if `x` does not have `cin` channels or is smaller than
    /// the kernel under `VALID` padding.
    pub fn run(&self, x: &FeatureMap) -> Option<FeatureMap> {
        self.run_then(x, |_, _| Some(()))
    }

    /// `relu(conv(x) + shortcut)`: the convolution with its epilogue, then a residual
    /// shortcut added and ReLU applied while each band of output rows is still in cache
    /// (BlazeFace's block ending; the same sums as [`add_relu`] after [`Self::run`], so the
    /// same bits). The shortcut may have fewer channels than the output (the missing ones
    /// count as zero); `None` if its size does not match the output's.
    pub fn run_residual(&self, x: &FeatureMap, shortcut: Shortcut<'_>) -> Option<FeatureMap> {
        let (s, pooled) = match shortcut {
            Shortcut::Identity(s) => (s, false),
            Shortcut::MaxPool2x2(s) => (s, true),
        };
        let p = self.window.place(x.h, x.w)?;
        let (sh, sw) = if pooled {
            (s.h / 2, s.w / 2)
        } else {
            (s.h, s.w)
        };
        if (sh, sw) != (p.oh, p.ow) || s.c > self.cout || !s.is_consistent() {
            return None;
        }
        let (c, cs, ow) = (self.cout, s.c, p.ow);
        let srow = s.w * cs;
        self.run_then(x, |oy0, band| {
            for (r, orow) in band.chunks_exact_mut((ow * c).max(1)).enumerate() {
                let oy = oy0 + r;
                if cs == 0 {
                    // A shortcut of no channels adds nothing.
                } else if pooled {
                    let top = s.data.get(2 * oy * srow..)?.get(..srow)?;
                    let bottom = s.data.get((2 * oy + 1) * srow..)?.get(..srow)?;
                    let pairs = top.chunks_exact(2 * cs).zip(bottom.chunks_exact(2 * cs));
                    for (o, (t, b)) in orow.chunks_exact_mut(c.max(1)).zip(pairs) {
                        let (a, bb) = t.split_at(cs);
                        let (d, e) = b.split_at(cs);
                        for j in 0..cs {
                            o[j] += a[j].max(bb[j]).max(d[j].max(e[j]));
                        }
                    }
                } else if cs == c {
                    let v = s.data.get(oy * srow..)?.get(..orow.len())?;
                    orow.iter_mut().zip(v).for_each(|(o, v)| *o += v);
                } else {
                    let v = s.data.get(oy * srow..)?.get(..ow * cs)?;
                    for (o, v) in orow
                        .chunks_exact_mut(c.max(1))
                        .zip(v.chunks_exact(cs.max(1)))
                    {
                        o.iter_mut().zip(v).for_each(|(o, v)| *o += v);
                    }
                }
                orow.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            Some(())
        })
    }

    /// The convolution, with `then(oy0, band)` run on each band of output rows after it.
    #[inline(always)]
    fn run_then(
        &self,
        x: &FeatureMap,
        then: impl Fn(usize, &mut [f32]) -> Option<()> + Sync,
    ) -> Option<FeatureMap> {
        if x.c != self.cin || !x.is_consistent() {
            return None;
        }
        let p = self.window.place(x.h, x.w)?;
        let k = self.window.taps() * self.cin;
        let mut out = output((p.oh * p.ow).checked_mul(self.cout)?);
        by_rows(
            &mut out,
            p.oh,
            p.ow * self.cout,
            p.ow * k * self.cout,
            #[inline(always)]
            |oy0, band| {
                self.rows(x, &p, oy0, band)?;
                then(oy0, band)
            },
        )?;
        Some(FeatureMap {
            h: p.oh,
            w: p.ow,
            c: self.cout,
            data: out,
        })
    }

    /// Output rows from `oy0` on, as many as `out` holds.
    #[inline(always)]
    fn rows(&self, x: &FeatureMap, p: &Placement, oy0: usize, out: &mut [f32]) -> Option<()> {
        let m = out.len() / self.cout.max(1);
        let k = self.window.taps() * self.cin;
        if self.window.taps() == 1 && self.window.stride == [1, 1] {
            // Channels-last, a 1x1 convolution is the image as an [h*w, cin] matrix, and a
            // band of output rows is the same band of input rows.
            let a = x.data.get(oy0 * p.ow * self.cin..)?.get(..m * k)?;
            self.product(a, out, m, k)?;
        } else {
            COLS.with(|cols| {
                let mut cols = cols.borrow_mut();
                // Not cleared: every value is written below (zeroing the whole buffer per
                // call was most of the memset time in a profile of `recog bench face`).
                cols.resize(m.checked_mul(k)?, 0.0);
                let (kh, kw, cin) = (self.window.kh, self.window.kw, self.cin);
                let [sy, sx] = self.window.stride;
                for (r, band) in cols.chunks_exact_mut((p.ow * k).max(1)).enumerate() {
                    let oy = oy0 + r;
                    let iy = (oy * sy).checked_sub(p.pt).filter(|iy| iy + kh <= p.h);
                    for (ox, row) in band.chunks_exact_mut(k.max(1)).enumerate() {
                        let ix = (ox * sx).checked_sub(p.pl).filter(|ix| ix + kw <= p.w);
                        if let (Some(iy), Some(ix)) = (iy, ix) {
                            // Inside: each kernel row's taps are one contiguous run of the
                            // channels-last input.
                            for (ky, dst) in row.chunks_exact_mut(kw * cin).enumerate() {
                                let at = ((iy + ky) * p.w + ix) * cin;
                                dst.copy_from_slice(&x.data[at..][..kw * cin]);
                            }
                            continue;
                        }
                        // On the border the padding taps are zeros.
                        row.fill(0.0);
                        self.window.each_tap(p, oy, ox, |tap, px| {
                            row[tap * cin..][..cin].copy_from_slice(&x.data[px * x.c..][..x.c]);
                        });
                    }
                }
                self.product(&cols, out, m, k)
            })?;
        }
        for px in out.chunks_exact_mut(self.cout) {
            self.epilogue.apply(px, false);
        }
        Some(())
    }
}

thread_local! {
    /// Storage of maps a network is done with ([`recycle`]), for this thread's next outputs.
    static SPARE: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Spare storages kept per thread: a network holds a few maps at once, and a thread runs
/// several networks and pyramid levels of different sizes in turn.
const SPARE_MAX: usize = 16;

/// Values the spares of one thread may hold in all (64 MiB): a long-running server that
/// once met a very large photo keeps no more than this per thread.
const SPARE_VALUES_MAX: usize = 16 << 20;

/// Gives a map's storage back, so that the kernels' next output on this thread reuses it
/// instead of a fresh zeroed allocation: zeroing outputs (the allocator's memset, and the
/// kernel clearing fresh pages) was a quarter of `recog bench face` in a profile, and every
/// kernel writes all of its output anyway.
pub fn recycle(map: FeatureMap) {
    let v = map.data;
    if v.capacity() == 0 {
        return;
    }
    if v.capacity() > SPARE_VALUES_MAX {
        return;
    }
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        let held = |s: &Vec<Vec<f32>>| s.iter().map(Vec::capacity).sum::<usize>();
        // Make room by dropping the smallest spares: the larger ones are the costly ones
        // to zero.
        while !s.is_empty() && (s.len() >= SPARE_MAX || held(&s) + v.capacity() > SPARE_VALUES_MAX)
        {
            let Some((i, _)) = s.iter().enumerate().min_by_key(|(_, v)| v.capacity()) else {
                break;
            };
            s.swap_remove(i);
        }
        s.push(v);
    });
}

/// The largest spare an output of `n` values may take. Some outputs leave the kernels for
/// good (a detector's logits, a descriptor): one that took a large map's storage took it
/// out of the spares, and with no bound the spares of `recog bench face` drained that way,
/// two or three per network pass, into fresh allocations (four in five outputs).
fn spare_fit(n: usize) -> usize {
    n.saturating_mul(4).max(4096)
}

/// Values held in this thread's spare storages (see [`recycle`]); at most 16 Mi (64 MiB).
pub fn spare_values() -> usize {
    SPARE.with(|s| s.borrow().iter().map(Vec::capacity).sum())
}

/// A copy of `map` in spare storage (see [`recycle`]) where there is some.
pub fn duplicate(map: &FeatureMap) -> FeatureMap {
    let mut data = output(map.data.len());
    data.copy_from_slice(&map.data);
    FeatureMap { data, ..*map }
}

/// Storage for an output of `n` values: the smallest spare that holds them and is not far
/// larger (its old values left in place, for the kernel to overwrite), else a new zeroed
/// one.
fn output(n: usize) -> Vec<f32> {
    let spare = SPARE.with(|s| {
        let mut s = s.borrow_mut();
        let i = s
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= n && v.capacity() <= spare_fit(n))
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i)?;
        Some(s.swap_remove(i))
    });
    match spare {
        Some(mut v) => {
            // Within the capacity: only values past the old length are zeroed.
            v.truncate(n);
            v.resize(n, 0.0);
            v
        }
        None => vec![0f32; n],
    }
}

thread_local! {
    /// Each thread's im2col buffer, reused from call to call: a fresh one per convolution
    /// was page zeroing and allocator work in the profile.
    static COLS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Multiply-adds below which a map runs whole on the calling thread. Batches already keep
/// every core busy with one image each, where bands only add hand-offs: at 2M (1 << 21)
/// `recog bench face` on LFW's 250 px photos was 3% slower than unbanded, so only maps the
/// size of a video frame's finest pyramid level (a 512x384 input) are split.
const BAND_MACS: usize = 1 << 23;

/// Runs `band(oy0, rows)` over bands of output rows of `out` (`oh` rows of `row_len`
/// values, `macs_per_row` multiply-adds each), vectorised; a large map's bands run in
/// parallel, so one large image (a video frame's finest pyramid level) uses every core, while
/// batches of small maps stay one per thread.
fn by_rows(
    out: &mut [f32],
    oh: usize,
    row_len: usize,
    macs_per_row: usize,
    band: impl Fn(usize, &mut [f32]) -> Option<()> + Sync,
) -> Option<()> {
    let rows = (BAND_MACS / macs_per_row.max(1)).max(1);
    if rows >= oh || row_len == 0 || rayon::current_num_threads() < 2 {
        return vectorised(
            #[inline(always)]
            || band(0, out),
        );
    }
    use rayon::prelude::*;
    out.par_chunks_mut(rows * row_len)
        .enumerate()
        .map(|(i, chunk)| {
            vectorised(
                #[inline(always)]
                || band(i * rows, chunk),
            )
        })
        .collect()
}

/// A depthwise 2-d convolution, one filter per channel (TensorFlow `DEPTHWISE_CONV_2D` with
/// depth multiplier 1), dilation 1.
#[derive(Debug, Clone)]
pub struct Depthwise {
    window: Window,
    c: usize,
    /// `[kh * kw, c]`.
    weight: Vec<f32>,
    epilogue: Epilogue,
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
        let window = Window::new(kh, kw, stride, same)?;
        (weight.len() == window.taps().checked_mul(c)?).then_some(())?;
        Some(Self {
            window,
            c,
            weight,
            epilogue: Epilogue::new(c, bias, act)?,
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
        self.epilogue.fuse(act)
    }

    /// Runs the convolution; `None` if `x` does not have `c` channels or is smaller than the
    /// kernel under `VALID` padding.
    pub fn run(&self, x: &FeatureMap) -> Option<FeatureMap> {
        if x.c != self.c || !x.is_consistent() {
            return None;
        }
        let c = self.c;
        let p = self.window.place(x.h, x.w)?;
        let mut out = output((p.oh * p.ow).checked_mul(c)?);
        by_rows(
            &mut out,
            p.oh,
            p.ow * c,
            p.ow * c * self.window.taps(),
            #[inline(always)]
            |oy0, band| {
                self.rows(x, &p, oy0, band);
                Some(())
            },
        )?;
        count_macs(out.len().saturating_mul(self.window.taps()));
        Some(FeatureMap {
            h: p.oh,
            w: p.ow,
            c,
            data: out,
        })
    }

    /// Output rows from `oy0` on, as many as `out` holds.
    #[inline(always)]
    fn rows(&self, x: &FeatureMap, p: &Placement, oy0: usize, out: &mut [f32]) {
        let c = self.c;
        let [sy, sx] = self.window.stride;
        let three = self.window.kh == 3 && self.window.kw == 3;
        for (r, band) in out.chunks_exact_mut((p.ow * c).max(1)).enumerate() {
            let oy = oy0 + r;
            // A 3x3 window's row of outputs whose taps all lie inside the input: columns
            // lo..hi, from input row iy.
            let iy = (oy * sy)
                .checked_sub(p.pt)
                .filter(|iy| three && iy + 3 <= p.h);
            let (lo, hi) = match iy {
                Some(_) if p.w + p.pl >= 3 => {
                    (p.pl.div_ceil(sx), ((p.w + p.pl - 3) / sx + 1).min(p.ow))
                }
                _ => (0, 0),
            };
            // The span's last tap, checked once here so the sweep reads unchecked.
            let hi = hi.max(lo);
            // Only called with lo < hi, so `hi - 1` does not wrap.
            let fits = |iy: usize| {
                band.len() >= hi * c
                    && x.data.len() >= ((iy + 2) * p.w + (hi - 1) * sx - p.pl + 3) * c
            };
            let iy = iy.filter(|&iy| lo < hi && fits(iy));
            let span = if iy.is_some() { lo..hi } else { 0..0 };
            for (ox, o) in band.chunks_exact_mut(c.max(1)).enumerate() {
                if span.contains(&ox) {
                    continue;
                }
                o.copy_from_slice(&self.epilogue.bias);
                self.window.each_tap(p, oy, ox, |tap, px| {
                    let xi = &x.data[px * c..][..c];
                    let wk = &self.weight[tap * c..][..c];
                    for ((o, a), b) in o.iter_mut().zip(xi).zip(wk) {
                        *o += a * b;
                    }
                });
                self.epilogue.apply(o, true);
            }
            if let Some(iy) = iy {
                self.inside_3x3(x, p, iy, span, band);
            }
        }
    }

    /// Outputs `cols` of one row of a 3x3 window whose taps all lie inside the input, the
    /// window's top row at input row `iy`. The same sums in the same order as the border
    /// path (so the same bits), but swept along the row one block of channels at a time, the
    /// block's nine weights and its sums held in registers: the border path's loads and
    /// stores of every sum at every tap ran at 3-6 GMAC/s. With AVX2, whole blocks of 8
    /// channels go pixel by pixel instead, four blocks' sums side by side
    /// (`x86::depthwise_3x3_span`): each tap then reads consecutive channels, and
    /// MobileFaceNet's 28x28x128 and 14x14x256 layers ran 13% and 28% faster on one core.
    #[inline(always)]
    fn inside_3x3(
        &self,
        x: &FeatureMap,
        p: &Placement,
        iy: usize,
        cols: std::ops::Range<usize>,
        band: &mut [f32],
    ) {
        let c = self.c;
        let mut ch = 0;
        #[cfg(target_arch = "x86_64")]
        if c >= 8 && avx2() && !cols.is_empty() {
            let sx = self.window.stride[1];
            let at = (iy * p.w + cols.start * sx - p.pl) * c;
            // SAFETY: AVX2 (checked just above); `rows` checked that the span's last tap
            // ends inside `x.data`, so every tap of `cols` for channels below `c` lies
            // inside it; `band` holds `cols.end * c` values, the weights `9 * c` and the
            // bias `c`.
            unsafe {
                x86::depthwise_3x3_span(
                    x.data.as_ptr().add(at),
                    p.w * c,
                    sx * c,
                    cols.len(),
                    c,
                    self.weight.as_ptr(),
                    self.epilogue.bias.as_ptr(),
                    band.as_mut_ptr().add(cols.start * c),
                );
            }
            ch = c / 8 * 8;
        }
        while ch + 8 <= c {
            self.block_3x3::<8>(x, p, iy, cols.clone(), ch, band);
            ch += 8;
        }
        if ch + 4 <= c {
            self.block_3x3::<4>(x, p, iy, cols.clone(), ch, band);
            ch += 4;
        }
        while ch < c {
            self.block_3x3::<1>(x, p, iy, cols.clone(), ch, band);
            ch += 1;
        }
        if self.epilogue.act.is_some() {
            for o in band[cols.start * c..cols.end * c].chunks_exact_mut(c.max(1)) {
                self.epilogue.apply(o, true);
            }
        }
    }

    /// Channels `ch..ch + N` of [`Self::inside_3x3`], before the activation.
    #[inline(always)]
    fn block_3x3<const N: usize>(
        &self,
        x: &FeatureMap,
        p: &Placement,
        iy: usize,
        cols: std::ops::Range<usize>,
        ch: usize,
        band: &mut [f32],
    ) {
        let c = self.c;
        let sx = self.window.stride[1];
        let mut wk = [[0f32; N]; 9];
        for (t, w) in wk.iter_mut().enumerate() {
            w.copy_from_slice(&self.weight[t * c + ch..][..N]);
        }
        let mut bias = [0f32; N];
        bias.copy_from_slice(&self.epilogue.bias[ch..][..N]);
        let row = p.w * c;
        let data = x.data.as_ptr();
        for ox in cols {
            let at = (iy * p.w + ox * sx - p.pl) * c + ch;
            let mut acc = bias;
            for ky in 0..3 {
                for kx in 0..3 {
                    // SAFETY: `rows` checked that the span's last tap, `(iy + 2, (hi - 1) *
                    // sx - pl + 2)`, ends inside `x.data`, and `ch + N <= c`; every other
                    // tap of the span comes before it.
                    let xi = unsafe { &*data.add(at + ky * row + kx * c).cast::<[f32; N]>() };
                    let w = &wk[ky * 3 + kx];
                    for j in 0..N {
                        acc[j] += xi[j] * w[j];
                    }
                }
            }
            band[ox * c + ch..][..N].copy_from_slice(&acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// `n` outputs of a 3x3 depthwise window, channels `0..c / 8 * 8` of a `c`-channel map:
    /// output `j` (at `out + j * c`) is the bias, then each tap's product added in row-major
    /// tap order (a multiply, then an add: the bits of the scalar sum); its window's
    /// top-left value is at `x + j * x_step`, its rows `row` apart. `w` is `[9][c]`.
    ///
    /// # Safety
    /// AVX2; every tap of the `n` windows, every weight and bias and every output lies
    /// inside its allocation.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn depthwise_3x3_span(
        x: *const f32,
        row: usize,
        x_step: usize,
        n: usize,
        c: usize,
        w: *const f32,
        bias: *const f32,
        out: *mut f32,
    ) {
        let blocks = c / 8;
        let offs: [usize; 9] = std::array::from_fn(|t| (t / 3) * row + (t % 3) * c);
        for j in 0..n {
            let xj = x.add(j * x_step);
            let oj = out.add(j * c);
            let mut b = 0;
            // Four blocks of channels side by side: four independent chains of additions.
            while b + 4 <= blocks {
                let mut acc: [__m256; 4] =
                    std::array::from_fn(|i| _mm256_loadu_ps(bias.add(8 * (b + i))));
                for (t, off) in offs.iter().enumerate() {
                    for (i, a) in acc.iter_mut().enumerate() {
                        let ch = 8 * (b + i);
                        let v = _mm256_loadu_ps(xj.add(off + ch));
                        let wt = _mm256_loadu_ps(w.add(t * c + ch));
                        *a = _mm256_add_ps(*a, _mm256_mul_ps(v, wt));
                    }
                }
                for (i, a) in acc.iter().enumerate() {
                    _mm256_storeu_ps(oj.add(8 * (b + i)), *a);
                }
                b += 4;
            }
            while b < blocks {
                let ch = 8 * b;
                let mut a = _mm256_loadu_ps(bias.add(ch));
                for (t, off) in offs.iter().enumerate() {
                    let v = _mm256_loadu_ps(xj.add(off + ch));
                    let wt = _mm256_loadu_ps(w.add(t * c + ch));
                    a = _mm256_add_ps(a, _mm256_mul_ps(v, wt));
                }
                _mm256_storeu_ps(oj.add(ch), a);
                b += 1;
            }
        }
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

/// `out += other`, element-wise; `None` if the shapes differ.
pub fn add(out: &mut FeatureMap, other: &FeatureMap) -> Option<()> {
    if (out.h, out.w, out.c) != (other.h, other.w, other.c)
        || !out.is_consistent()
        || !other.is_consistent()
    {
        return None;
    }
    out.data
        .iter_mut()
        .zip(&other.data)
        .for_each(|(a, b)| *a += b);
    Some(())
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
