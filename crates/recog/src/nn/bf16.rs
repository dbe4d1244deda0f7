//! A GEMM on bfloat16 inputs with `f32` sums (AVX512-BF16's `VDPBF16PS`), for
//! [`super::cpu::Precision::Bf16`].
//!
//! Why: in `recog bench face`, gemm's `f32` kernels ran MobileFaceNet's 1x1 convolutions at
//! 51-56 GMAC/s per core, the FMA peak of this CPU (AMD Zen 4: one 16-lane FMA per cycle).
//! `VDPBF16PS` does two multiply-adds per lane in the same time, so the same convolutions run
//! at 100-111 GMAC/s here, bfloat16 rounding of both operands included (a 12x32-tile kernel
//! with the weights packed once). The sums stay `f32`; only the inputs lose precision (8
//! significant bits, a relative error of at most 2^-9 per operand).

/// Output columns of one packed weight panel: two 16-lane registers.
const NR: usize = 32;
/// Output rows of the full kernel tile: 12 rows x 2 registers = 24 accumulators of 32.
const MR: usize = 12;

/// Whether the CPU has AVX512-BF16 (and the AVX-512 foundation the kernel needs).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512bf16")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `x` rounded to bfloat16 as `VCVTNE2PS2BF16` does: to nearest, ties to even, subnormal
/// inputs read as (signed) zero; a NaN stays a (quiet) NaN.
pub fn round(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7fc0;
    }
    let b = x.to_bits();
    if b & 0x7f80_0000 == 0 {
        return ((b >> 16) & 0x8000) as u16;
    }
    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// A `[k, n]` row-major `f32` matrix in the kernel's layout: panels of [`NR`] columns, each
/// `[k / 2][NR]` pairs of bfloat16 (`k` rounded up to even with a zero row; columns past `n`
/// zero).
#[derive(Debug, Clone)]
pub struct PackedB {
    k: usize,
    n: usize,
    data: Vec<u32>,
}

impl PackedB {
    /// Packs `b` (`k * n` values); `None` if it has fewer or a size overflows.
    pub fn new(b: &[f32], k: usize, n: usize) -> Option<Self> {
        if b.len() < k.checked_mul(n)? {
            return None;
        }
        let k2 = k.div_ceil(2);
        let panels = n.div_ceil(NR);
        let mut data = vec![0u32; panels.checked_mul(k2)?.checked_mul(NR)?];
        for (p, panel) in data.chunks_exact_mut((k2 * NR).max(1)).enumerate() {
            for (kk, pairs) in panel.chunks_exact_mut(NR).enumerate() {
                for (j, pair) in pairs.iter_mut().enumerate() {
                    let col = p * NR + j;
                    if col >= n {
                        continue;
                    }
                    let lo = round(b[2 * kk * n + col]);
                    let hi = if 2 * kk + 1 < k {
                        round(b[(2 * kk + 1) * n + col])
                    } else {
                        0
                    };
                    *pair = u32::from(lo) | (u32::from(hi) << 16);
                }
            }
        }
        Some(Self { k, n, data })
    }
}

thread_local! {
    /// Each thread's buffer of rounded activations, reused from call to call.
    static A: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `c[m x n] = a[m x k] * b[k x n]`, `a` and `c` row-major `f32`, `b` packed; the inputs
/// rounded to bfloat16, the sums in `f32`. `None` if a slice is too short or the CPU lacks
/// AVX512-BF16 ([`available`]).
pub fn matmul(a: &[f32], b: &PackedB, c: &mut [f32], m: usize) -> Option<()> {
    let (k, n) = (b.k, b.n);
    if a.len() < m.checked_mul(k)? || c.len() < m.checked_mul(n)? || !available() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if k == 0 {
            c[..m * n].fill(0.0);
            return Some(());
        }
        A.with(|buf| {
            let mut buf = buf.borrow_mut();
            let k2 = k.div_ceil(2);
            buf.resize(m.checked_mul(k2)?, 0);
            // SAFETY: the CPU has AVX-512 F, BW and BF16 (`available`, checked above); `a`
            // holds m*k values and `buf` m*ceil(k/2) pairs, `c` m*n values and `b` its
            // panels (checked above and in `PackedB::new`).
            unsafe {
                x86::round_rows(a, m, k, &mut buf);
                x86::gemm(&buf, m, b, c);
            }
            Some(())
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{PackedB, MR, NR};
    use std::arch::x86_64::*;

    /// Rounds each row of `a` (`m x k`) to bfloat16 pairs in `out` (`m x ceil(k/2)`), an odd
    /// row's last value paired with zero.
    ///
    /// # Safety
    /// AVX-512 F, BW and BF16; `a.len() >= m * k`, `out.len() >= m * ceil(k / 2)`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn round_rows(a: &[f32], m: usize, k: usize, out: &mut [u32]) {
        let k2 = k.div_ceil(2);
        for i in 0..m {
            let row = a.as_ptr().add(i * k);
            let dst = out.as_mut_ptr().add(i * k2);
            let mut j = 0;
            while j < k {
                // 32 values (16 pairs) at a time; the masked loads read zeros past the row.
                let left = k - j;
                let mask = |skip: usize| -> u16 {
                    let have = left.saturating_sub(skip).min(16);
                    ((1u32 << have) - 1) as u16
                };
                let lo = _mm512_maskz_loadu_ps(mask(0), row.add(j));
                let hi = _mm512_maskz_loadu_ps(mask(16), row.wrapping_add(j + 16));
                // Lanes 0-15 of the result come from the second operand.
                let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                let pairs = left.min(32).div_ceil(2);
                let keep = ((1u32 << pairs) - 1) as u16;
                _mm512_mask_storeu_epi32(dst.add(j / 2) as *mut i32, keep, v);
                j += 32;
            }
        }
    }

    /// One tile: `R` rows of `a` (pairs, row stride `k2`) times a panel, into `R` rows of
    /// `c` (row stride `ldc`), the first `cols` of the panel's columns.
    #[inline(always)]
    unsafe fn tile<const R: usize>(
        a: *const u32,
        k2: usize,
        b: *const u32,
        c: *mut f32,
        ldc: usize,
        cols: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        for kk in 0..k2 {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(kk * NR) as *const _));
            let b1: __m512bh =
                std::mem::transmute(_mm512_loadu_si512(b.add(kk * NR + 16) as *const _));
            for (r, acc) in acc.iter_mut().enumerate() {
                let av: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*a.add(r * k2 + kk) as i32));
                acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
            }
        }
        let m0 = ((1u32 << cols.min(16)) - 1) as u16;
        let m1 = ((1u32 << cols.saturating_sub(16).min(16)) - 1) as u16;
        for (r, acc) in acc.iter().enumerate() {
            _mm512_mask_storeu_ps(c.add(r * ldc), m0, acc[0]);
            _mm512_mask_storeu_ps(c.wrapping_add(r * ldc + 16), m1, acc[1]);
        }
    }

    /// `c[m x n] = a * b` with `a` already rounded (`m x ceil(k/2)` pairs).
    ///
    /// # Safety
    /// AVX-512 F, BW and BF16; `a.len() >= m * ceil(k / 2)`, `c.len() >= m * n`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn gemm(a: &[u32], m: usize, b: &PackedB, c: &mut [f32]) {
        let (k2, n) = (b.k.div_ceil(2), b.n);
        for (p, panel) in b.data.chunks_exact((k2 * NR).max(1)).enumerate() {
            let bp = panel.as_ptr();
            let cols = (n - p * NR).min(NR);
            let mut i = 0;
            while i + MR <= m {
                tile::<MR>(
                    a.as_ptr().add(i * k2),
                    k2,
                    bp,
                    c.as_mut_ptr().add(i * n + p * NR),
                    n,
                    cols,
                );
                i += MR;
            }
            // Past the end when no rows are left (then no tile runs): wrapping, not `add`.
            let ap = a.as_ptr().wrapping_add(i * k2);
            let cp = c.as_mut_ptr().wrapping_add(i * n + p * NR);
            match m - i {
                1 => tile::<1>(ap, k2, bp, cp, n, cols),
                2 => tile::<2>(ap, k2, bp, cp, n, cols),
                3 => tile::<3>(ap, k2, bp, cp, n, cols),
                4 => tile::<4>(ap, k2, bp, cp, n, cols),
                5 => tile::<5>(ap, k2, bp, cp, n, cols),
                6 => tile::<6>(ap, k2, bp, cp, n, cols),
                7 => tile::<7>(ap, k2, bp, cp, n, cols),
                8 => tile::<8>(ap, k2, bp, cp, n, cols),
                9 => tile::<9>(ap, k2, bp, cp, n, cols),
                10 => tile::<10>(ap, k2, bp, cp, n, cols),
                11 => tile::<11>(ap, k2, bp, cp, n, cols),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::kernel_check;

    fn bf16_value(h: u16) -> f32 {
        f32::from_bits(u32::from(h) << 16)
    }

    /// The product of the rounded inputs, summed in f64: what the kernel should give, up to
    /// the order of its f32 sums.
    fn reference(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let r = |x: f32| f64::from(bf16_value(round(x)));
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k).map(|t| r(a[i * k + t]) * r(b[t * n + j])).sum();
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    #[test]
    fn rounding_is_to_nearest_even_and_keeps_nan() {
        assert_eq!(round(1.0), 0x3f80);
        // 1 + 2^-8 lies half-way between two bfloat16 values: ties go to the even one.
        assert_eq!(round(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(round(1.0 + 3.0 / 256.0), 0x3f82);
        assert!(bf16_value(round(f32::NAN)).is_nan());
        assert_eq!(round(f32::INFINITY), 0x7f80);
        assert_eq!(round(-0.0), 0x8000);
        assert_eq!(
            round(-1e-39),
            0x8000,
            "subnormals read as zero, as the hardware does"
        );
    }

    #[test]
    fn the_kernel_equals_the_rounded_product_on_every_tail_shape() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        // Rows around the 12-row tile, columns around the 32-column panel, odd and even k.
        for &(m, k, n) in &[
            (1, 1, 1),
            (11, 3, 31),
            (12, 27, 32),
            (13, 64, 33),
            (25, 33, 64),
            (49, 128, 192),
            (7, 0, 5),
        ] {
            let (a, b) = kernel_check::operands(m, k, n);
            let packed = PackedB::new(&b, k, n).unwrap();
            // A stale, NaN-filled output: every value must be written.
            let c = kernel_check::on_stale_output(m, k, n, |c| matmul(&a, &packed, c, m).unwrap());
            let want = reference(&a, &b, m, k, n);
            for (i, (x, y)) in c.iter().zip(&want).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                    "{m}x{k}x{n} at {i}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn the_hardware_rounding_agrees_with_round() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let vals: Vec<f32> = (0..4099u32)
            .map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761)))
            .filter(|v| !v.is_nan())
            .collect();
        let mut out = vec![0u32; vals.len().div_ceil(2)];
        // SAFETY: `available()` above; one row of vals.len() values into ceil(len/2) pairs.
        unsafe { x86::round_rows(&vals, 1, vals.len(), &mut out) };
        for (i, v) in vals.iter().enumerate() {
            let h = (out[i / 2] >> (16 * (i % 2))) as u16;
            assert_eq!(h, round(*v), "{v:e}");
        }
    }

    #[test]
    fn short_slices_are_refused() {
        let packed = PackedB::new(&[1.0; 6], 2, 3).unwrap();
        assert!(PackedB::new(&[1.0; 5], 2, 3).is_none());
        let mut c = vec![0.0; 6];
        assert!(matmul(&[1.0; 3], &packed, &mut c, 2).is_none());
        assert!(matmul(&[1.0; 4], &packed, &mut c[..5], 2).is_none());
    }
}
