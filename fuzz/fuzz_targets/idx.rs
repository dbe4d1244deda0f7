//! IDX parsing (MNIST's format): any bytes give an array or an error.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = recog::data::idx::parse_idx("fuzz.idx".as_ref(), data);
});
