//! hull-vm-keeper: what hull-runtime runs for a bundle whose config.json carries the annotation
//! `org.hull.isolation=vm` (found beside hull-runtime, or at `HULL_VM_KEEPER`). It lives in the
//! `hull` package because it drives the engine's VM parts (the qemu launcher, the agent's
//! control protocol), which the runtime, below the engine, must not link.
//!
//! `create` leaves the keeper: the process whose pid is the container's. It owns the VMM as
//! its child (parent-death signal: a SIGKILL of the keeper takes the VM along), sits in the
//! spec's cgroup, relays the stdio it inherited to the guest's process and exits with that
//! process's status. `start` opens `exec.fifo` as runc's does; `kill`, `exec` reach the VM
//! over the keeper's control socket; `delete` removes the VM's files and cgroup.
//!
//! usage: hull-vm-keeper [--error-fd N] VERB --root DIR ... (hull-runtime builds the line).
//! Errors go, as one line, to fd N (hull-runtime logs them as its own) or stderr.

mod exec;
mod lifecycle;
mod net;
mod plan;
mod record;
mod vm;

use std::io::Write;
use std::os::fd::FromRawFd;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hull-vm-keeper",
    about = "hull-runtime's keeper of VM containers"
)]
struct Cli {
    /// Write the error, if any, to this descriptor instead of stderr.
    #[arg(long = "error-fd")]
    error_fd: Option<i32>,
    #[arg(long)]
    root: PathBuf,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    Create(lifecycle::CreateArgs),
    Run(lifecycle::RunArgs),
    Start { id: String },
    State { id: String },
    List,
    Kill(lifecycle::KillArgs),
    Delete(lifecycle::DeleteArgs),
    Exec(Box<exec::ExecArgs>),
}

fn main() {
    let cli = Cli::parse();
    let error_fd = cli.error_fd;
    let root = cli.root;
    let result = match cli.verb {
        Verb::Create(a) => lifecycle::create(&root, a, error_fd).map(|()| 0),
        Verb::Run(a) => lifecycle::run(&root, a, error_fd),
        Verb::Start { id } => lifecycle::start(&root, &id).map(|()| 0),
        Verb::State { id } => lifecycle::state(&root, &id).map(|()| 0),
        Verb::List => lifecycle::list(&root).map(|()| 0),
        Verb::Kill(a) => lifecycle::kill(&root, &a).map(|()| 0),
        Verb::Delete(a) => lifecycle::delete(&root, &a.id, a.force).map(|()| 0),
        Verb::Exec(a) => exec::exec(&root, *a, error_fd),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            report(error_fd, &format!("{e:#}"));
            std::process::exit(1);
        }
    }
}

/// Writes the one-line error to `fd` (or stderr).
pub fn report(fd: Option<i32>, message: &str) {
    let line = message.replace('\n', " ");
    match fd {
        Some(fd) => {
            // SAFETY: the descriptor was handed to this process for this write; ManuallyDrop
            // leaves it open for whoever else holds it.
            let mut f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
            let _ = f.write_all(line.as_bytes());
        }
        None => eprintln!("hull-vm-keeper: {line}"),
    }
}

/// Closes the error descriptor in a process that outlives the command (the keeper, an exec
/// session), so hull-runtime's read of it ends when the command does.
pub fn close_error_fd(fd: Option<i32>) {
    if let Some(fd) = fd {
        // SAFETY: closing a descriptor this process does not otherwise use.
        unsafe { libc::close(fd) };
    }
}
