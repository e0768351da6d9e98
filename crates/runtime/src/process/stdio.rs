//! What a container process gets as stdin, stdout and stderr: handed in by the caller, never
//! opened by the runtime. Without a terminal, the caller's own descriptors or ones it gives (a
//! monitor's pipes, log files); with one (`process.terminal` in the config), a pty made inside
//! the container whose master goes to a console socket or back to the caller.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg};
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout};

use crate::process::error::{sys, ProcessError};

/// Stdin, stdout and stderr of a process without a terminal. A process with a terminal has the
/// pty as its stdio, so only [`Stdio::Inherit`] may go with one.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The caller's own descriptors 0, 1 and 2 (runc's behaviour).
    #[default]
    Inherit,
    /// These descriptors become the process's 0, 1 and 2. The caller's copies are closed once
    /// the process exists, so the read end of a pipe sees EOF when the container is done with it.
    Fds {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
}

/// Where the pty master of a process with a terminal goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Console {
    /// Sent over this unix socket with SCM_RIGHTS, as runc's `--console-socket`.
    Socket(PathBuf),
    /// Returned to the caller, who relays it (`Created::console`, `Executed::console`).
    Return,
}

impl Console {
    pub(crate) fn socket(console: Option<&Console>) -> Option<&Path> {
        match console {
            Some(Console::Socket(path)) => Some(path),
            _ => None,
        }
    }
}

/// Refuses what cannot be wired: a terminal with nowhere for its master, or with stdio fds.
pub(crate) fn check(
    terminal: bool,
    stdio: &Stdio,
    console: Option<&Console>,
) -> Result<(), ProcessError> {
    if terminal && console.is_none() {
        return Err(ProcessError::Invalid(
            "cannot allocate tty if hull-runtime will detach without setting console socket".into(),
        ));
    }
    if terminal && !matches!(stdio, Stdio::Inherit) {
        return Err(ProcessError::Invalid(
            "a process with a terminal has the pty as its stdio: no stdio fds can be given".into(),
        ));
    }
    Ok(())
}

impl Stdio {
    /// In the container process: makes the given descriptors its 0, 1 and 2.
    pub(crate) fn install(&self) -> Result<(), ProcessError> {
        let Stdio::Fds {
            stdin,
            stdout,
            stderr,
        } = self
        else {
            return Ok(());
        };
        // Copies above 2 first: a given descriptor may itself be 0, 1 or 2 of another slot.
        let stdin = above_stdio(stdin.as_fd())?;
        let stdout = above_stdio(stdout.as_fd())?;
        let stderr = above_stdio(stderr.as_fd())?;
        dup2_stdin(&stdin).map_err(sys("dup2 of the given stdin"))?;
        dup2_stdout(&stdout).map_err(sys("dup2 of the given stdout"))?;
        dup2_stderr(&stderr).map_err(sys("dup2 of the given stderr"))?;
        Ok(())
    }
}

fn above_stdio(fd: BorrowedFd) -> Result<OwnedFd, ProcessError> {
    let raw =
        fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(3)).map_err(sys("duplicating a given stdio fd"))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
