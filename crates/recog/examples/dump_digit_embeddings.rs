//! Writes one checkpoint's embeddings of MNIST and of held-out unknowns, for each of the
//! one-pixel-shift views, as raw little-endian `f32` files, so that committee rules can be
//! tried offline (`tools/experiments/committee_rules.py`) before any is built into recog.
//!
//! ```sh
//! cargo run --release -p recog --example dump_digit_embeddings -- runs/d64-oe3s emb-oe3s fragments
//! ```
//!
//! For each set (`train`, `test`, `eval-<generator>`): `<set>-labels.f32` and `<set>-v<i>.f32`
//! (`[n][dim]`, view `i` of `Views::Shift1.shifts()`, the identity first). The unknowns are
//! the evaluation part `recog digits eval-logo` uses (5,000 images, the same seed).

use std::io::Write;
use std::path::{Path, PathBuf};

use recog::data::unknowns::{self, Generator, Part};
use recog::data::{self, KnownSet, Source, Split};
use recog::openset::committee::{shifted, DigitEmbedder, Views};
use recog::openset::tasks::EVAL_SEED;
use recog::progress::NoProgress;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn write(path: &Path, v: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::File::create(path)?.write_all(&bytes)?;
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, out, generators] = args.as_slice() else {
        return Err(
            "usage: dump_digit_embeddings <checkpoint> <out folder> <generator,...>".into(),
        );
    };
    let home = recog::Home::from_env();
    let progress = NoProgress;
    let device = recog::default_device();
    let net = DigitEmbedder::load(Path::new(model), &device)?;
    let mnist = Source::Known(KnownSet::Mnist);
    let mut sets = vec![
        (
            "train".to_string(),
            data::load(&mnist, Split::Train, &home, &progress)?,
        ),
        (
            "test".to_string(),
            data::load(&mnist, Split::Test, &home, &progress)?,
        ),
    ];
    for name in generators.split(',') {
        let g: Generator = serde_json::from_str(&format!("\"{name}\""))?;
        let (set, _) = unknowns::generate(g, Part::Eval, 5000, EVAL_SEED, &home, &progress)?;
        sets.push((format!("eval-{}", g.name()), set));
    }
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    for (name, set) in &sets {
        let labels: Vec<f32> = set.labels.iter().map(|&l| l as f32).collect();
        write(&out.join(format!("{name}-labels.f32")), &labels)?;
        for (i, &shift) in Views::Shift1.shifts().iter().enumerate() {
            let e = net.embed_dataset(&shifted(set, shift), 500, &device, &progress);
            write(&out.join(format!("{name}-v{i}.f32")), &e)?;
        }
    }
    Ok(())
}
