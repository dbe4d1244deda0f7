//! What the tests of the packed GEMM kernels (`bf16`, `panel`) share: their operands, and a
//! run on a stale output that shows every value was written and none past the end.

/// `a` (`m x k`) and `b` (`k x n`), row-major, deterministic values in [-1, 1).
pub fn operands(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    let a = (0..m * k)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let b = (0..k * n)
        .map(|i| ((i * 104_729) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    (a, b)
}

/// Runs `kernel` (an `m x k` by `k x n` product) on an `m x n` output that starts NaN-filled, with three more values past
/// its end; asserts those three are untouched and returns the `m * n` outputs.
pub fn on_stale_output(m: usize, k: usize, n: usize, kernel: impl FnOnce(&mut [f32])) -> Vec<f32> {
    let mut c = vec![f32::NAN; m * n + 3];
    kernel(&mut c);
    assert!(
        c[m * n..].iter().all(|v| v.is_nan()),
        "{m}x{k}x{n}: wrote past the output"
    );
    c.truncate(m * n);
    c
}
