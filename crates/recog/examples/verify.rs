//! Verify two photos: are they the same person?
//!
//! ```text
//! cargo run --release -p recog --example verify -- A.jpg B.jpg
//! ```
//!
//! With `RECOG_HOME` holding LFW (the models install themselves on first use):
//!
//! ```text
//! $ cd $RECOG_HOME/data/lfw/images
//! $ verify Colin_Powell/Colin_Powell_0001.jpg Colin_Powell/Colin_Powell_0002.jpg
//! Colin_Powell/Colin_Powell_0001.jpg vs Colin_Powell/Colin_Powell_0002.jpg: distance 0.544 (threshold 1.060): same person
//! $ verify Colin_Powell/Colin_Powell_0001.jpg Tony_Blair/Tony_Blair_0001.jpg
//! Colin_Powell/Colin_Powell_0001.jpg vs Tony_Blair/Tony_Blair_0001.jpg: distance 1.156 (threshold 1.060): different people
//! ```

use std::path::PathBuf;

fn main() -> Result<(), recog::Error> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [a, b] = &args[..] else {
        eprintln!("usage: verify A.jpg B.jpg");
        std::process::exit(2);
    };
    let faces = recog::Faces::load()?;
    let v = faces.verify(a, b)?;
    println!(
        "{} vs {}: distance {:.3} (threshold {:.3}): {}",
        a.display(),
        b.display(),
        v.distance,
        v.threshold,
        if v.same {
            "same person"
        } else {
            "different people"
        }
    );
    Ok(())
}
