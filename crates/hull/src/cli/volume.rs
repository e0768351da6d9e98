//! `hull volume`: create, list, inspect, remove and prune volumes, as docker's commands do.

use std::path::Path;

use clap::Subcommand;
use hull_engine::EngineError;

use super::format;

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (a random name when none is given); print its name
    Create {
        /// Volume name: [a-zA-Z0-9][a-zA-Z0-9_.-]+
        name: Option<String>,
        /// Set a label (K=V)
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Print names only
        #[arg(short, long)]
        quiet: bool,
        /// Output format: table (default) or json
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Show volumes' details as JSON
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes (never one a container uses)
    #[command(alias = "remove")]
    Rm {
        /// No error for volumes that do not exist
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused anonymous volumes (all unused volumes with -a)
    Prune {
        /// Also remove unused named volumes
        #[arg(short, long)]
        all: bool,
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

/// `--label K=V` (a bare K has an empty value).
pub(super) fn label(text: &str) -> Result<(String, String), EngineError> {
    let (k, v) = text.split_once('=').unwrap_or((text, ""));
    if k.is_empty() {
        return Err(EngineError::Invalid(format!(
            "invalid label {text:?}: use KEY=VALUE"
        )));
    }
    Ok((k.to_string(), v.to_string()))
}

pub fn run(root: &Path, cmd: VolumeCommand) -> anyhow::Result<i32> {
    let reads_only = matches!(
        cmd,
        VolumeCommand::Ls { .. } | VolumeCommand::Inspect { .. }
    );
    let mut engine = super::engine(root, reads_only)?;
    match cmd {
        VolumeCommand::Create { name, labels } => {
            let labels: Vec<(String, String)> =
                labels.iter().map(|l| label(l)).collect::<Result<_, _>>()?;
            let v = engine.volume_create(name.as_deref(), &labels)?;
            println!("{}", v.name);
        }
        VolumeCommand::Ls { quiet, format } => {
            let list = engine.volumes()?;
            if quiet {
                for v in &list {
                    println!("{}", v.name);
                }
                return Ok(0);
            }
            match format.as_str() {
                "json" => {
                    let docs: Vec<serde_json::Value> = list
                        .iter()
                        .map(|v| engine.volume_inspect(&v.name))
                        .collect::<Result<_, _>>()?;
                    println!("{}", serde_json::to_string_pretty(&docs)?);
                }
                "table" => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|v| vec!["local".to_string(), v.name.clone()])
                        .collect();
                    format::table(&["DRIVER", "VOLUME NAME"], &rows);
                }
                other => {
                    return Err(EngineError::Invalid(format!(
                        "unknown --format {other:?}: use table or json"
                    ))
                    .into())
                }
            }
        }
        VolumeCommand::Inspect { names } => {
            let docs: Vec<serde_json::Value> = names
                .iter()
                .map(|n| engine.volume_inspect(n))
                .collect::<Result<_, _>>()?;
            println!("{}", serde_json::to_string_pretty(&docs)?);
        }
        VolumeCommand::Rm { force, names } => {
            // As docker: each one is tried; the command fails if any could not be removed.
            let mut code = 0;
            for n in names {
                match engine.volume_remove(&n) {
                    Ok(()) => println!("{n}"),
                    Err(EngineError::NoSuchVolume(_)) if force => {}
                    Err(e) => {
                        eprintln!("hull: {e}");
                        code = 1;
                    }
                }
            }
            return Ok(code);
        }
        VolumeCommand::Prune { all, force } => {
            if !force && !confirm(all)? {
                return Ok(0);
            }
            let (removed, bytes) = engine.volume_prune(all)?;
            if !removed.is_empty() {
                println!("Deleted Volumes:");
                for n in &removed {
                    println!("{n}");
                }
                println!();
            }
            println!("Total reclaimed space: {}", format::size(bytes));
        }
    }
    Ok(0)
}

/// docker's prompt before `volume prune`.
fn confirm(all: bool) -> anyhow::Result<bool> {
    format::confirm(if all {
        "all local volumes not used by at least one container"
    } else {
        "all anonymous local volumes not used by at least one container"
    })
}
