//! NumPy `.npy` arrays (face embed --npy, projections).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = recog::data::npy::parse("fuzz.npy".as_ref(), data);
});
