//! `start`, `kill`, `delete`, `pause`, `resume`.

use anyhow::Context;
use clap::Args;
use hull_runtime::{parse_signal, Runtime};
use nix::sys::signal::Signal;

#[derive(Debug, Args)]
pub struct IdArg {
    /// The container id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal every process of the container, not only its first.
    #[arg(long, short = 'a')]
    pub(super) all: bool,
    pub(super) id: String,
    /// A signal name (TERM, SIGTERM) or number.
    #[arg(default_value = "SIGTERM")]
    pub(super) signal: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kill the container first if it is still running.
    #[arg(long, short = 'f')]
    pub(super) force: bool,
    pub(super) id: String,
}

pub fn start(runtime: &Runtime, id: &str) -> anyhow::Result<()> {
    runtime.open(id)?.start()?;
    Ok(())
}

pub fn kill(runtime: &Runtime, args: KillArgs) -> anyhow::Result<()> {
    let signal: Signal =
        parse_signal(&args.signal).with_context(|| format!("invalid signal {:?}", args.signal))?;
    runtime.open(&args.id)?.kill(signal, args.all)?;
    Ok(())
}

pub fn delete(runtime: &Runtime, args: DeleteArgs) -> anyhow::Result<()> {
    Ok(runtime.delete(&args.id, args.force)?)
}

pub fn pause(runtime: &Runtime, id: &str) -> anyhow::Result<()> {
    runtime.open(id)?.pause()?;
    Ok(())
}

pub fn resume(runtime: &Runtime, id: &str) -> anyhow::Result<()> {
    runtime.open(id)?.resume()?;
    Ok(())
}
