//! `recog gallery import`: the export JSON, imported into a fresh gallery.
#![no_main]
use recog::gallery::{Export, Gallery};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(x) = serde_json::from_slice::<Export>(data) else {
        return;
    };
    let Ok(mut g) = Gallery::open(":memory:".as_ref()) else {
        return;
    };
    if g.import(&x).is_ok() {
        let _ = g.list();
        let _ = g.index();
        let _ = g.export();
    }
});
