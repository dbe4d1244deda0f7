//! Helpers shared by the tests that read `RECOG_HOME`'s models and data sets.

/// Skips with a message, or fails when the test data is meant to be there
/// (`RECOG_TEST_DATA=required`, as CI sets it).
pub fn skip(what: &str) {
    assert!(
        std::env::var("RECOG_TEST_DATA").map_or(true, |v| v != "required"),
        "RECOG_TEST_DATA=required but {what} is missing"
    );
    eprintln!("skipping: {what} is missing");
}
