//! The command line of `hull`: global options and one module per command group.

mod format;
mod image;
mod network;
mod progress;
mod system;
mod vm;

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
    #[command(flatten)]
    Image(image::ImageCommand),
    /// Engine-wide information
    System {
        #[command(subcommand)]
        command: system::SystemCommand,
    },
    /// Run a bare microVM (hull-vmm)
    Vm {
        #[command(subcommand)]
        command: vm::VmCommand,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Network(cmd) => network::run(&cli.root, cmd),
        Command::Image(c) => image::run(&cli.root, c),
        Command::System { command } => system::run(&cli.root, command),
        Command::Vm { command } => vm::run(command),
    }
}
