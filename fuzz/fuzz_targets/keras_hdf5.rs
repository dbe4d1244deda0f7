//! Keras weights in HDF5, through the Keras loader.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let p = recog_fuzz::file("w.h5", data);
    let _ = recog::weights::hdf5::load_keras(&p);
});
