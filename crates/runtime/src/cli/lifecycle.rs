//! `start`, `kill`, `delete`, `pause`, `resume`.

use anyhow::Context;
use clap::Args;
use hull_runtime::container::{parse_signal, Container, ContainerError};
use hull_runtime::state::{StateError, Store};
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
    all: bool,
    id: String,
    /// A signal name (TERM, SIGTERM) or number.
    #[arg(default_value = "SIGTERM")]
    signal: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kill the container first if it is still running.
    #[arg(long, short = 'f')]
    force: bool,
    id: String,
}

pub fn start(store: &Store, id: &str) -> anyhow::Result<()> {
    Container::load(store, id)?.start()?;
    Ok(())
}

pub fn kill(store: &Store, args: KillArgs) -> anyhow::Result<()> {
    let signal: Signal =
        parse_signal(&args.signal).with_context(|| format!("invalid signal {:?}", args.signal))?;
    Container::load(store, &args.id)?.kill(signal, args.all)?;
    Ok(())
}

pub fn delete(store: &Store, args: DeleteArgs) -> anyhow::Result<()> {
    match Container::load(store, &args.id) {
        Ok(container) => Ok(container.delete(args.force)?),
        // A runtime killed before it recorded anything leaves a directory without state: nothing
        // else of it exists yet, so the directory is all there is to remove.
        Err(ContainerError::State(StateError::NotExist)) if args.force => {
            match store.open(&args.id) {
                Ok(dir) => Ok(dir.remove()?),
                // runc: deleting what does not exist is fine with --force.
                Err(StateError::NotExist) => Ok(()),
                Err(err) => Err(err.into()),
            }
        }
        Err(err) => Err(err.into()),
    }
}

pub fn pause(store: &Store, id: &str) -> anyhow::Result<()> {
    Container::load(store, id)?.pause()?;
    Ok(())
}

pub fn resume(store: &Store, id: &str) -> anyhow::Result<()> {
    Container::load(store, id)?.resume()?;
    Ok(())
}
