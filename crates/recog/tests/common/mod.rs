//! Helpers shared by the integration tests (each test binary uses some of them).
#![allow(dead_code)]

/// Skips with a message, or fails when the test data is meant to be there
/// (`RECOG_TEST_DATA=required`, as CI sets it).
pub fn skip(what: &str) {
    assert!(
        std::env::var("RECOG_TEST_DATA").map_or(true, |v| v != "required"),
        "RECOG_TEST_DATA=required but {what} is missing"
    );
    eprintln!("skipping: {what} is missing");
}

/// Largest absolute difference between two equally long outputs.
pub fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "output lengths differ");
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0f32, f32::max)
}

/// An all-zero channels-last map, for the sizes the CPU kernels must refuse.
pub fn zero_map(h: usize, w: usize, c: usize) -> recog::nn::cpu::FeatureMap {
    recog::nn::cpu::FeatureMap {
        h,
        w,
        c,
        data: vec![0.0; h * w * c],
    }
}
