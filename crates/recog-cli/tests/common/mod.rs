//! Helpers shared by the end-to-end tests that need `RECOG_HOME`'s face models and LFW.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Whether the test data is meant to be there (`RECOG_TEST_DATA=required`, as CI sets it):
/// then a missing model or LFW fails the test instead of skipping it.
pub fn data_required() -> bool {
    std::env::var("RECOG_TEST_DATA").is_ok_and(|v| v == "required")
}

/// Skips (a message, then `None`) or, when the data is required, fails.
pub fn missing<T>(what: &str) -> Option<T> {
    assert!(
        !data_required(),
        "RECOG_TEST_DATA=required but {what} is missing"
    );
    eprintln!("skipping: {what} is missing");
    None
}

/// `RECOG_HOME` if it holds LFW and every face model is installed in its models search path
/// (`RECOG_MODEL_PATH`, then `RECOG_HOME/models`); else see [`missing`].
pub fn home() -> Option<PathBuf> {
    let Some(h) = std::env::var_os("RECOG_HOME").map(PathBuf::from) else {
        return missing("RECOG_HOME");
    };
    if !h.join("data/lfw/images").is_dir() {
        return missing("LFW under RECOG_HOME/data/lfw");
    }
    let home = recog::Home::from_env();
    if let Some(m) = home.model_status().into_iter().find(|s| !s.installed) {
        return missing(&format!("the {} model (recog models fetch)", m.entry.name));
    }
    Some(h)
}

/// Runs the `recog` binary with `RECOG_HOME` set, offline: no test reaches the internet.
#[allow(dead_code)] // not every test file that shares these helpers runs recog this way
pub fn recog(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recog"))
        .args(args)
        .env("RECOG_HOME", home)
        .env("RECOG_OFFLINE", "1")
        .output()
        .expect("run recog")
}

/// A new, empty PostgreSQL database called `name` on the server `RECOG_TEST_POSTGRES` names
/// (`tools/pg/start.sh` starts one), as a `--db` URL; see [`missing`] when it is not set.
#[allow(dead_code)] // only the gallery tests use a server
pub fn postgres_db(name: &str) -> Option<String> {
    let Some(server) = std::env::var("RECOG_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        return missing("RECOG_TEST_POSTGRES (a PostgreSQL server with pgvector)");
    };
    let db = format!("recog_cli_{name}_{}", std::process::id());
    Some(
        recog::gallery::postgres::PgStore::create_database(&server, &db)
            .expect("create a test database"),
    )
}
