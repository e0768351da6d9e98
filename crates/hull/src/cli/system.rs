//! `hull system`: engine-wide information (`df`).

use std::path::Path;

use clap::Subcommand;
use hull_image::ImageStore;

use super::format;

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show disk used by images and layers (shared vs unique)
    Df {
        /// Output format: table or json
        #[arg(long, default_value = "table")]
        format: String,
        /// Per-image detail
        #[arg(short, long)]
        verbose: bool,
    },
}

pub fn run(root: &Path, cmd: SystemCommand) -> anyhow::Result<()> {
    match cmd {
        SystemCommand::Df { format, verbose } => {
            let store = ImageStore::open(root)?;
            let du = store.disk_usage()?;
            match format.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&du)?),
                "table" => {
                    format::table(
                        &["TYPE", "TOTAL", "SIZE"],
                        &[
                            vec![
                                "Images".into(),
                                du.images.to_string(),
                                format::size(du.layers_bytes),
                            ],
                            vec![
                                "Layers".into(),
                                du.layers.to_string(),
                                format::size(du.layers_bytes),
                            ],
                            vec!["Blobs".into(), "-".into(), format::size(du.blobs_bytes)],
                        ],
                    );
                    if verbose {
                        println!();
                        let rows: Vec<Vec<String>> = du
                            .per_image
                            .iter()
                            .map(|u| {
                                vec![
                                    u.image.clone(),
                                    format::size(u.size),
                                    format::size(u.shared),
                                    format::size(u.unique),
                                ]
                            })
                            .collect();
                        format::table(&["IMAGE", "SIZE", "SHARED SIZE", "UNIQUE SIZE"], &rows);
                    }
                }
                other => anyhow::bail!("--format {other:?}: expected table or json"),
            }
            Ok(())
        }
    }
}
