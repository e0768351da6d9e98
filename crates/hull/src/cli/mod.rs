//! The command line of `hull`: global options and one module per command group.

mod network;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Global options shared by every command.
#[derive(Debug, Parser)]
#[command(
    name = "hull",
    version,
    about = "Run OCI images in containers or microVMs"
)]
pub struct Cli {
    /// Engine state directory (images, layers, containers, metadata).
    #[arg(long, global = true, default_value = "/var/lib/hull")]
    pub root: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage networks.
    #[command(subcommand)]
    Network(network::NetworkCommand),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Network(cmd) => network::run(&cli.root, cmd),
    }
}
