//! The image decode path every photo, upload and frame goes through.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(img) = recog::data::image_file::decode_bytes(data) {
        let _ = img.to_rgb8();
    }
});
