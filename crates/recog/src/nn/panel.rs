//! An `f32` GEMM for the products of recog's convolutions, with the weights packed once
//! into 32-column panels (AVX-512; other CPUs keep gemm's kernels).
//!
//! Why: gemm's kernels pack their operands anew at each call and their tiles suit wide
//! outputs; on BlazeFace's early layers (24-42 output channels, 24-75 inputs per output) they
//! ran at 28-42 GMAC/s on one core. Here a 12-row x 32-column tile (24 rows x 16 for a
//! narrow last panel) keeps its accumulators in registers over the whole of `k`, reading
//! the activations in place (one broadcast per row and step), and the weights are packed
//! when the network loads. Measured on one core (m x k x n, GMAC/s, gemm -> this):
//! 4096x24x24 28 -> 39, 4096x24x28 35 -> 46, 1024x32x36 35 -> 41, 1024x36x42 42 -> 49;
//! MobileFaceNet's shapes about the same (3136x64x128 44 -> 47, 784x128x256 56 -> 54).

/// Output columns of one packed weight panel: two 16-lane registers.
const NR: usize = 32;
/// Output rows of the full kernel tile: 12 rows x 2 registers = 24 accumulators.
const MR: usize = 12;

/// The longest sums the kernel is used for. Up to this depth gemm's kernels sum each output
/// in one chain over `k` in order, as this one does, so the two give the same bits; beyond
/// it gemm sums blocks of 512 and adds them, which rounds differently (measured on AVX-512
/// with `k` from 64 to 1152).
pub const MAX_K: usize = 512;

/// Whether the CPU has AVX-512 F, which the kernel needs.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// A `[k, n]` row-major matrix in the kernel's layout: panels of [`NR`] columns, each
/// `[k][NR]` (columns past `n` zero).
#[derive(Debug, Clone)]
pub struct PackedF32 {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl PackedF32 {
    /// Packs `b` (`k * n` values); `None` if it has fewer or a size overflows.
    pub fn new(b: &[f32], k: usize, n: usize) -> Option<Self> {
        if b.len() < k.checked_mul(n)? {
            return None;
        }
        let panels = n.div_ceil(NR);
        let mut data = vec![0f32; panels.checked_mul(k)?.checked_mul(NR)?];
        for (p, panel) in data.chunks_exact_mut((k * NR).max(1)).enumerate() {
            for (kk, row) in panel.chunks_exact_mut(NR).enumerate() {
                let cols = (n - p * NR).min(NR);
                row[..cols].copy_from_slice(&b[kk * n + p * NR..][..cols]);
            }
        }
        Some(Self { k, n, data })
    }
}

/// `c[m x n] = a[m x k] * b[k x n]`, `a` and `c` row-major; each sum runs over `k` in order
/// from zero, one fused multiply-add at a time. `None` if a slice is too short or the CPU
/// lacks AVX-512 ([`available`]).
pub fn matmul(a: &[f32], b: &PackedF32, c: &mut [f32], m: usize) -> Option<()> {
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
        // SAFETY: the CPU has AVX-512 F (`available`, checked above); `a` holds m*k values,
        // `c` m*n and `b` its panels (checked above and in `PackedF32::new`).
        unsafe { x86::gemm(a, m, b, c) };
        Some(())
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{PackedF32, MR, NR};
    use std::arch::x86_64::*;

    /// One tile: `R` rows of `a` (row stride `k`) times `W` registers of a panel, into `R`
    /// rows of `c` (row stride `ldc`), the first `cols` of the panel's columns.
    #[inline(always)]
    unsafe fn tile<const R: usize, const W: usize>(
        a: *const f32,
        k: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        cols: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); W]; R];
        for kk in 0..k {
            let mut bv = [_mm512_setzero_ps(); W];
            for (w, v) in bv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(b.add(kk * NR + 16 * w));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r * k + kk));
                for w in 0..W {
                    acc[w] = _mm512_fmadd_ps(av, bv[w], acc[w]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (w, v) in acc.iter().enumerate() {
                let m = ((1u32 << cols.saturating_sub(16 * w).min(16)) - 1) as u16;
                _mm512_mask_storeu_ps(c.wrapping_add(r * ldc + 16 * w), m, *v);
            }
        }
    }

    /// Every row of `a` times the first `W` registers of one panel.
    #[inline(always)]
    unsafe fn sweep<const MR: usize, const W: usize>(
        a: *const f32,
        m: usize,
        k: usize,
        bp: *const f32,
        c: *mut f32,
        n: usize,
        cols: usize,
    ) {
        let mut i = 0;
        while i + MR <= m {
            tile::<MR, W>(a.add(i * k), k, bp, c.add(i * n), n, cols);
            i += MR;
        }
        // Past the end when no rows are left (then no tile runs): wrapping, not `add`.
        let ap = a.wrapping_add(i * k);
        let cp = c.wrapping_add(i * n);
        let left = m - i;
        // The tail in tiles of 8 rows, then 4, then 1.
        let at = |r: usize| (ap.wrapping_add(r * k), cp.wrapping_add(r * n));
        let mut r = 0;
        while r + 8 <= left {
            let (a, c) = at(r);
            tile::<8, W>(a, k, bp, c, n, cols);
            r += 8;
        }
        while r + 4 <= left {
            let (a, c) = at(r);
            tile::<4, W>(a, k, bp, c, n, cols);
            r += 4;
        }
        while r < left {
            let (a, c) = at(r);
            tile::<1, W>(a, k, bp, c, n, cols);
            r += 1;
        }
    }

    /// `c[m x n] = a * b`.
    ///
    /// # Safety
    /// AVX-512 F; `a.len() >= m * k`, `c.len() >= m * n`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn gemm(a: &[f32], m: usize, b: &PackedF32, c: &mut [f32]) {
        let (k, n) = (b.k, b.n);
        for (p, panel) in b.data.chunks_exact((k * NR).max(1)).enumerate() {
            let (bp, ap) = (panel.as_ptr(), a.as_ptr());
            let cp = c.as_mut_ptr().add(p * NR);
            let cols = (n - p * NR).min(NR);
            // A panel of at most 16 columns needs one register per row: twice the rows.
            if cols <= 16 {
                sweep::<{ 2 * MR }, 1>(ap, m, k, bp, cp, n, cols);
            } else {
                sweep::<MR, 2>(ap, m, k, bp, cp, n, cols);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::kernel_check;

    #[test]
    fn the_kernel_gives_gemms_bits_on_every_tail_shape() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512");
            return;
        }
        // Rows around the 12- and 24-row tiles and the 8- and 4-row tails, columns around
        // the 16- and 32-column panels, k from 1 to BlazeFace's stem (75) and beyond.
        for &(m, k, n) in &[
            (1, 1, 1),
            (11, 3, 31),
            (12, 27, 32),
            (13, 64, 33),
            (25, 24, 24),
            (37, 75, 28),
            (49, 128, 48),
            (9, MAX_K, 40),
            (23, 96, 17),
            (64, 42, 96),
            (7, 0, 5),
        ] {
            let (a, b) = kernel_check::operands(m, k, n);
            let packed = PackedF32::new(&b, k, n).unwrap();
            let c = kernel_check::on_stale_output(m, k, n, |c| matmul(&a, &packed, c, m).unwrap());
            let mut want = vec![0f32; m * n];
            crate::nn::cpu::matmul(&a, &b, &mut want, m, k, n).unwrap();
            for (i, (x, y)) in c.iter().zip(&want).enumerate() {
                assert_eq!(x.to_bits(), y.to_bits(), "{m}x{k}x{n} at {i}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn short_slices_are_refused() {
        let packed = PackedF32::new(&[1.0; 6], 2, 3).unwrap();
        assert!(PackedF32::new(&[1.0; 5], 2, 3).is_none());
        let mut c = vec![0.0; 6];
        assert!(matmul(&[1.0; 3], &packed, &mut c, 2).is_none());
        assert!(matmul(&[1.0; 4], &packed, &mut c[..5], 2).is_none());
    }
}
