//! IDX through the gzip path: inflation is capped, and the inflated bytes are parsed.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.idx.gz");
    if let Ok(raw) = recog::data::idx::decode_maybe_gz(path, data.to_vec()) {
        let _ = recog::data::idx::parse_idx(path, &raw);
    }
});
