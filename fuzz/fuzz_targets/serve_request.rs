//! What `recog serve` reads from a client before the engine: the first byte picks the
//! request part, the rest is its bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    recog_serve::fuzzing::request(which, rest);
});
