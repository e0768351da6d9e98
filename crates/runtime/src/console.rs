//! The container's terminal: a pty made inside the container (so its slave belongs to the
//! container's devpts), whose slave becomes the process's stdio and /dev/console, and whose master
//! goes to the caller: over `--console-socket` with SCM_RIGHTS, or to `run`'s own stdio.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout};

use crate::sys::pty;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console: {what}: {source}")]
    Sys {
        what: &'static str,
        source: nix::errno::Errno,
    },
    #[error("console socket {path}: {source}")]
    Socket {
        path: String,
        source: std::io::Error,
    },
}

fn sys(what: &'static str) -> impl FnOnce(nix::errno::Errno) -> ConsoleError {
    move |source| ConsoleError::Sys { what, source }
}

/// In the container process (a session leader, after pivot_root): makes the pty, wires the slave
/// as stdio and controlling terminal, and returns the master for the runtime.
pub fn setup_pty(size: Option<(u16, u16)>, mount_console: bool) -> Result<OwnedFd, ConsoleError> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(sys("opening /dev/ptmx"))?;
    grantpt(&master).map_err(sys("grantpt"))?;
    unlockpt(&master).map_err(sys("unlockpt"))?;
    let slave = pty::open_peer(master.as_fd()).map_err(sys("opening the pty slave"))?;
    if let Some((rows, cols)) = size {
        pty::set_window_size(slave.as_fd(), rows, cols).map_err(sys("setting the window size"))?;
    }
    if mount_console {
        let name = ptsname_r(&master).map_err(sys("ptsname"))?;
        if Path::new("/dev/console").exists() {
            mount(
                Some(name.as_str()),
                "/dev/console",
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys("bind-mounting /dev/console"))?;
        }
    }
    dup2_stdin(&slave).map_err(sys("dup2 of the pty slave"))?;
    dup2_stdout(&slave).map_err(sys("dup2 of the pty slave"))?;
    dup2_stderr(&slave).map_err(sys("dup2 of the pty slave"))?;
    pty::set_controlling_terminal(slave.as_fd()).map_err(sys("TIOCSCTTY"))?;
    let master_fd: OwnedFd = master.into();
    Ok(master_fd)
}

/// Sends the pty master to the socket named by `--console-socket`, as runc does.
pub fn send_to_socket(path: &Path, master: BorrowedFd) -> Result<(), ConsoleError> {
    let socket_err = |source| ConsoleError::Socket {
        path: path.display().to_string(),
        source,
    };
    let stream = UnixStream::connect(path).map_err(socket_err)?;
    let name = b"/dev/ptmx";
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(name)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| socket_err(e.into()))?;
    Ok(())
}
