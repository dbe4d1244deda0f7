//! TFLite flatbuffers: any bytes give a model or an error.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let p = recog_fuzz::file("m.tflite", data);
    let _ = recog::weights::tflite::load(&p);
});
