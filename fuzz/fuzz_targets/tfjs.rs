//! A TFJS manifest and its shard: the input is `manifest JSON, NUL, shard bytes`; the
//! manifest names shard `s` (the seeds do), and any other shard name must be refused or
//! missing.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (manifest, shard) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    recog_fuzz::file("s", shard);
    let m = recog_fuzz::file("m-weights_manifest.json", manifest);
    let _ = recog::weights::tfjs::load(&m);
});
