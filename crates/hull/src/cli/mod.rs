//! The command line of `hull`: global options and one module per command group.

mod container;
mod format;
mod image;
mod network;
mod progress;
mod system;
mod vm;
mod vm_agent;
mod volume;

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
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    #[command(flatten)]
    Container(container::ContainerCommand),
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

/// Runs the command; the process's exit status (a foreground `run` exits with its container's).
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Container(c) => container::run(&cli.root, c),
        Command::Network(cmd) => network::run(&cli.root, cmd).map(|()| 0),
        Command::Volume(cmd) => volume::run(&cli.root, cmd),
        Command::Image(c) => image::run(&cli.root, c).map(|()| 0),
        Command::System { command } => system::run(&cli.root, command).map(|()| 0),
        Command::Vm { command } => vm::run(command),
    }
}
