//! `create` and `run`.

use std::path::PathBuf;

use clap::Args;
use hull_runtime::{Console, CreateOptions, Created, Runtime};

use super::log::Logger;

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Path to the bundle (the directory holding config.json).
    #[arg(long, short = 'b', default_value = ".")]
    pub(super) bundle: PathBuf,
    /// A unix socket that receives the pty master when the process has a terminal.
    #[arg(long = "console-socket")]
    pub(super) console_socket: Option<PathBuf>,
    /// Write the container's pid to this file.
    #[arg(long = "pid-file")]
    pub(super) pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root (for a rootfs on a ramdisk).
    #[arg(long = "no-pivot")]
    pub(super) no_pivot: bool,
    /// Keep the caller's session keyring instead of a new one.
    #[arg(long = "no-new-keyring")]
    pub(super) no_new_keyring: bool,
    /// Pass this many extra descriptors (3, 4, ...) to the container's process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub(super) preserve_fds: u16,
    /// The container id.
    pub(super) id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub(super) create: CreateArgs,
    /// Return once the container has started.
    #[arg(long, short = 'd')]
    pub(super) detach: bool,
    /// Do not delete the container after it exits.
    #[arg(long)]
    pub(super) keep: bool,
}

impl CreateArgs {
    /// `console`: where a terminal's master goes when no socket is given (none: refused).
    fn options(self, console: Option<Console>) -> CreateOptions {
        let mut opts = CreateOptions::new(self.id, self.bundle);
        opts.console = self.console_socket.map(Console::Socket).or(console);
        opts.pid_file = self.pid_file;
        opts.no_pivot = self.no_pivot;
        opts.no_new_keyring = self.no_new_keyring;
        opts.preserve_fds = self.preserve_fds;
        opts
    }
}

fn created(runtime: &Runtime, opts: CreateOptions, logger: &Logger) -> anyhow::Result<Created> {
    let created = runtime.create(opts)?;
    for warning in &created.warnings {
        logger.warn(warning);
    }
    Ok(created)
}

pub fn create(runtime: &Runtime, args: CreateArgs, logger: &Logger) -> anyhow::Result<()> {
    created(runtime, args.options(None), logger)?;
    Ok(())
}

pub fn run(runtime: &Runtime, args: RunArgs, logger: &Logger) -> anyhow::Result<i32> {
    if args.detach {
        created(runtime, args.create.options(None), logger)?
            .container
            .start()?;
        return Ok(0);
    }
    // In the foreground, a terminal is relayed to this process's own stdio.
    let opts = args.create.options(Some(Console::Return));
    Ok(runtime.run(opts, args.keep, &mut |warning| logger.warn(warning))?)
}
