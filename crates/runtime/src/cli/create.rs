//! `create` and `run`.

use std::path::PathBuf;

use clap::Args;
use hull_runtime::container::Container;
use hull_runtime::process::create::{create as create_container, CreateOptions, Created};
use hull_runtime::process::foreground::Foreground;
use hull_runtime::state::Store;
use nix::sys::signal::SigSet;

use super::log::Logger;

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Path to the bundle (the directory holding config.json).
    #[arg(long, short = 'b', default_value = ".")]
    bundle: PathBuf,
    /// A unix socket that receives the pty master when the process has a terminal.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Write the container's pid to this file.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root (for a rootfs on a ramdisk).
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Keep the caller's session keyring instead of a new one.
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass this many extra descriptors (3, 4, ...) to the container's process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u16,
    /// The container id.
    id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    create: CreateArgs,
    /// Return once the container has started.
    #[arg(long, short = 'd')]
    detach: bool,
    /// Do not delete the container after it exits.
    #[arg(long)]
    keep: bool,
}

fn options(args: &CreateArgs, foreground: bool, sigmask: SigSet) -> CreateOptions {
    CreateOptions {
        id: args.id.clone(),
        bundle: args.bundle.clone(),
        pid_file: args.pid_file.clone(),
        console_socket: args.console_socket.clone(),
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        preserve_fds: i32::from(args.preserve_fds),
        foreground,
        sigmask,
    }
}

fn current_sigmask() -> SigSet {
    SigSet::thread_get_mask().unwrap_or_else(|_| SigSet::empty())
}

fn created(store: &Store, opts: &CreateOptions, logger: &Logger) -> anyhow::Result<Created> {
    let created = create_container(store, opts)?;
    for warning in &created.warnings {
        logger.warn(warning);
    }
    Ok(created)
}

pub fn create(store: &Store, args: CreateArgs, logger: &Logger) -> anyhow::Result<()> {
    created(store, &options(&args, false, current_sigmask()), logger)?;
    Ok(())
}

pub fn run(store: &Store, args: RunArgs, logger: &Logger) -> anyhow::Result<i32> {
    if args.detach {
        let created = created(
            store,
            &options(&args.create, false, current_sigmask()),
            logger,
        )?;
        Container::from_parts(created.dir, created.state).start()?;
        return Ok(0);
    }
    // The process may be a grandchild (joined pid namespace): adopt it to be able to wait.
    nix::sys::prctl::set_child_subreaper(true)?;
    let foreground = Foreground::new()?;
    let created = created(
        store,
        &options(&args.create, true, foreground.original_mask),
        logger,
    )?;
    let console = created.console;
    let container = Container::from_parts(created.dir, created.state);
    let pid = container.pid();
    let id = container.state.id.clone();
    let started = container.start();
    // Other commands (state, kill, exec...) must reach the container while it runs.
    drop(container);
    let result = match started {
        Ok(()) => foreground.wait(pid, console).map_err(anyhow::Error::from),
        Err(err) => Err(err.into()),
    };
    if !args.keep {
        if let Ok(container) = Container::load(store, &id) {
            container.delete(true)?;
        }
    }
    result
}
