//! The attach socket: how clients (`hull run` in the foreground, `start -a`, `attach`) reach a
//! container's stdio, which its monitor holds. Each container's monitor listens on
//! `<root>/containers/<id>/attach`, a SOCK_SEQPACKET unix socket (as conmon's), so every
//! message arrives whole and the framing is one leading byte:
//! - monitor to client: `1` + stdout bytes, `2` + stderr bytes (a terminal's output is all
//!   stdout), `3` + the exit status (i32, little endian) once the process has exited and its
//!   output has been sent;
//! - client to monitor: `0` + stdin bytes, `1` + rows and columns (u16 each, little endian),
//!   `2`: the client's stdin has ended (the container's stdin is closed).
//!
//! A starter hands the monitor one end of a socket pair instead ([`Attach`]), connected before
//! the container exists, so a foreground run misses none of its output.

pub mod client;
mod commands;
pub mod keys;

pub use commands::Attached;

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sys::socket::{
    bind, connect, socket, socketpair, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
};

use crate::error::EngineError;
use crate::paths;

/// Kinds of the monitor's messages.
pub(crate) const STDOUT: u8 = 1;
pub(crate) const STDERR: u8 = 2;
pub(crate) const EXIT: u8 = 3;
/// Kinds of a client's messages.
pub(crate) const STDIN: u8 = 0;
pub(crate) const RESIZE: u8 = 1;
pub(crate) const STDIN_EOF: u8 = 2;

/// The most data one message carries (a read of the container's output or the client's input).
pub(crate) const CHUNK: usize = 32 * 1024;

/// What a starter lends the monitor it forks: its end of a connected socket pair, and the
/// window size a terminal starts with.
#[derive(Debug)]
pub struct Attach {
    pub conn: OwnedFd,
    pub size: Option<(u16, u16)>,
}

/// A connected socket pair: the client's end, and the [`Attach`] for the monitor.
pub fn pair(size: Option<(u16, u16)>) -> Result<(OwnedFd, Attach), EngineError> {
    let (client, monitor) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(EngineError::sys("socketpair"))?;
    Ok((
        client,
        Attach {
            conn: monitor,
            size,
        },
    ))
}

/// A message of kind `kind` with `data`.
pub(crate) fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(data.len() + 1);
    m.push(kind);
    m.extend_from_slice(data);
    m
}

/// A resize message.
pub(crate) fn resize(rows: u16, cols: u16) -> Vec<u8> {
    let mut m = vec![RESIZE];
    m.extend_from_slice(&rows.to_le_bytes());
    m.extend_from_slice(&cols.to_le_bytes());
    m
}

/// The rows and columns of a resize message's payload.
pub(crate) fn parse_resize(data: &[u8]) -> Option<(u16, u16)> {
    let rows = u16::from_le_bytes(data.get(0..2)?.try_into().ok()?);
    let cols = u16::from_le_bytes(data.get(2..4)?.try_into().ok()?);
    Some((rows, cols))
}

/// The address of container `id`'s socket through an open descriptor of its directory: a unix
/// socket path is at most 107 bytes, and a long `--root` would pass that.
fn address(dir: &File) -> Result<UnixAddr, EngineError> {
    UnixAddr::new(format!("/proc/self/fd/{}/attach", dir.as_raw_fd()).as_str())
        .map_err(EngineError::sys("attach socket address"))
}

fn open_dir(root: &Path, id: &str) -> Result<File, EngineError> {
    let dir = paths::container_dir(root, id);
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(&dir)
        .map_err(EngineError::io(format!("opening {}", dir.display())))
}

/// The monitor's socket for attach clients, not yet bound: [`listen`] names it once the
/// container's process is being made, off the run's path (binding makes an inode, dear on this
/// ext4), and before anyone hears it runs (the only state `attach` connects in).
pub(crate) fn listener() -> Result<OwnedFd, EngineError> {
    socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(EngineError::sys("attach socket"))
}

/// Binds `sock` (from [`listener`]) as container `id`'s attach socket and listens on it (a
/// stale one from an earlier start is replaced).
pub(crate) fn listen(sock: &OwnedFd, root: &Path, id: &str) -> Result<(), EngineError> {
    let _ = std::fs::remove_file(paths::attach_socket(root, id));
    let dir = open_dir(root, id)?;
    bind(sock.as_raw_fd(), &address(&dir)?)
        .map_err(EngineError::sys("bind of the attach socket"))?;
    let backlog = Backlog::new(16).map_err(EngineError::sys("listen"))?;
    nix::sys::socket::listen(sock, backlog).map_err(EngineError::sys("listen on the attach socket"))
}

/// A client's connection to the monitor of running container `id`.
pub(crate) fn connect_socket(root: &Path, id: &str) -> Result<OwnedFd, EngineError> {
    let dir = open_dir(root, id)?;
    let sock = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(EngineError::sys("attach socket"))?;
    connect(sock.as_raw_fd(), &address(&dir)?).map_err(|e| EngineError::Monitor {
        id: id.to_string(),
        message: format!("cannot reach its attach socket: {e}"),
    })?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_round_trips() {
        let m = resize(24, 80);
        assert_eq!(m[0], RESIZE);
        assert_eq!(parse_resize(&m[1..]), Some((24, 80)));
        assert_eq!(parse_resize(&m[1..3]), None);
        assert_eq!(frame(STDERR, b"x"), vec![STDERR, b'x']);
    }
}
