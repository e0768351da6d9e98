//! The command line of `hull`: global options and one module per command group.

mod container;
mod container_ops;
mod files;
mod format;
mod image;
mod images;
mod network;
mod progress;
mod ps;
mod run_flags;
mod system;
mod vm;
mod vm_api;
mod vm_exec;
mod vm_jailed;
mod vm_security;
mod volume;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use hull_engine::Engine;

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

/// `hull` with only `run` and `create`: clap builds (and drops) every command's flags on each
/// parse, and this tree is a fraction of the whole one, on the command whose start-up time
/// matters most.
#[derive(Debug, Parser)]
#[command(name = "hull", version)]
struct MakeCli {
    #[arg(long, global = true, default_value = "/var/lib/hull")]
    root: PathBuf,

    #[command(subcommand)]
    command: container::MakeCommand,
}

/// The command line of this process.
pub fn parse() -> Result<Cli, clap::Error> {
    let mut cli = if starts_with_run_or_create(std::env::args().skip(1)) {
        MakeCli::try_parse().map(|c| Cli {
            root: c.root,
            command: Command::Container(container::ContainerCommand::Make(c.command)),
        })?
    } else {
        Cli::try_parse()?
    };
    // The root as every process sees it: a container's monitor leaves this one's working
    // directory, and its bundle's paths are read by the runtime from the bundle's.
    if let Ok(root) = std::path::absolute(&cli.root) {
        cli.root = root;
    }
    Ok(cli)
}

/// Whether the first command word (after global options) is `run` or `create`.
fn starts_with_run_or_create(args: impl Iterator<Item = String>) -> bool {
    matches!(command_words(args).0.as_deref(), Some("run" | "create"))
}

/// The first command word after the global options, and the word after it.
fn command_words(mut args: impl Iterator<Item = String>) -> (Option<String>, Option<String>) {
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--root" => {
                args.next();
            }
            a if a.starts_with("--root=") => {}
            _ => return (Some(arg), args.next()),
        }
    }
    (None, None)
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
    ContainerOps(container_ops::OpsCommand),
    /// Manage containers (every container command, and prune)
    #[command(name = "container")]
    ContainerGroup {
        #[command(subcommand)]
        command: ContainerGroup,
    },
    /// Show engine-wide information
    Info {
        /// Output format: table (default, readable lines) or json
        #[arg(short, long, default_value = "table")]
        format: String,
    },
    /// Show the client's and the engine's versions
    Version {
        /// Output format: table (default) or json
        #[arg(short, long, default_value = "table")]
        format: String,
    },
    #[command(flatten)]
    Image(image::ImageCommand),
    #[command(flatten)]
    Files(files::FilesCommand),
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

/// `hull container COMMAND`: the container commands again, under docker's group name.
#[derive(Debug, Subcommand)]
pub enum ContainerGroup {
    #[command(flatten)]
    Common(container::ContainerCommand),
    #[command(flatten)]
    Ops(container_ops::OpsCommand),
    #[command(flatten)]
    Only(container_ops::GroupOnly),
}

/// Runs the command; the process's exit status (a foreground `run` exits with its container's).
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Container(c) => container::run(&cli.root, c),
        Command::ContainerOps(c) => container_ops::run(&mut engine(&cli.root, c.reads_only())?, c),
        Command::ContainerGroup { command } => match command {
            ContainerGroup::Common(c) => container::run(&cli.root, c),
            ContainerGroup::Ops(c) => {
                container_ops::run(&mut engine(&cli.root, c.reads_only())?, c)
            }
            ContainerGroup::Only(c) => {
                let reads_only = matches!(c, container_ops::GroupOnly::Ls(_));
                container_ops::run_group(&mut engine(&cli.root, reads_only)?, c)
            }
        },
        Command::Info { format } => system::info(&cli.root, &format).map(|()| 0),
        Command::Version { format } => system::version(&cli.root, &format).map(|()| 0),
        Command::Network(cmd) => network::run(&cli.root, cmd).map(|()| 0),
        Command::Volume(cmd) => volume::run(&cli.root, cmd),
        Command::Image(c) => image::run(&cli.root, c).map(|()| 0),
        Command::Files(c) => files::run(&cli.root, c),
        Command::System { command } => system::run(&cli.root, command).map(|()| 0),
        Command::Vm { command } => vm::run(&cli.root, command),
    }
}

/// The engine of `root`; for a command that only reads, one that creates nothing on a root
/// never used (docker's `ps` on a fresh host prints an empty table and makes no state).
fn engine(root: &std::path::Path, reads_only: bool) -> Result<Engine, hull_engine::EngineError> {
    if reads_only {
        Engine::open_existing(root)
    } else {
        Engine::open(root)
    }
}

#[cfg(test)]
mod tests {
    use super::starts_with_run_or_create;

    fn words(s: &str) -> impl Iterator<Item = String> + '_ {
        s.split(' ').map(String::from)
    }

    #[test]
    fn run_and_create_take_the_short_parser() {
        assert!(starts_with_run_or_create(words("run busybox")));
        assert!(starts_with_run_or_create(words("--root /x create busybox")));
        assert!(starts_with_run_or_create(words(
            "--root=/x run --rm busybox"
        )));
        assert!(!starts_with_run_or_create(words("ps -a")));
        assert!(!starts_with_run_or_create(words("--root run ps")));
        assert!(!starts_with_run_or_create(words("--help")));
        assert!(!starts_with_run_or_create(words("container run busybox")));
    }
}
