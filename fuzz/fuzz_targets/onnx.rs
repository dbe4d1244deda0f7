//! ONNX initializers (protobuf): any bytes give tensors or an error.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let p = recog_fuzz::file("m.onnx", data);
    let _ = recog::weights::onnx::load(&p);
});
