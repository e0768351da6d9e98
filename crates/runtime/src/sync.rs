//! The channel between the runtime and the process it starts in a container: a SOCK_SEQPACKET
//! socket pair carrying one JSON message per packet, and at most one file descriptor with it
//! (a pty master, a seccomp listener).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

// Error messages are one line; 16 KiB keeps the runtime's heap small on the start path.
const MAX_MESSAGE: usize = 16 * 1024;

/// The most a container process reports to `start` through the exec FIFO when it fails after
/// start instead of executing its program: PIPE_BUF, so the write is one piece.
pub const FIFO_REPORT_MAX: usize = 4096;

/// What `start` writes into the exec FIFO for the waiting process to go on to its execve.
pub const START_BYTE: &[u8] = b"0";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("sync socket: {0}")]
    Io(#[from] Errno),
    #[error("sync socket: bad message: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("container process exited during setup")]
    Closed,
    #[error("sync socket: expected {expected}, got {got:?}")]
    Unexpected {
        expected: &'static str,
        got: Message,
    },
}

/// What the two sides tell each other while a container process is set up.
#[derive(Debug, Serialize, Deserialize)]
pub enum Message {
    /// Child: my namespaces exist; map my ids, place me in the cgroup.
    Created,
    /// Parent: go on.
    Proceed,
    /// Child: mounts are done, pivot_root not yet: run prestart and createRuntime hooks.
    CreateRuntimeHooks,
    /// Parent: hooks done; this is the state JSON for the container's own hooks.
    ProceedWithState(String),
    /// Child: the pty master is attached.
    Console,
    /// Child: the seccomp user-notification listener is attached.
    SeccompListener,
    /// Child: set up, waiting for `start` (or about to execve, for exec).
    Ready,
    /// Intermediate child: this is the pid (in the runtime's pid namespace) of the real process.
    Pid(i32),
    /// Either side: a fatal error, as one line.
    Error(String),
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// Both ends, close-on-exec, so that neither leaks into the container's program.
    pub fn pair() -> Result<(Channel, Channel), SyncError> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send(&self, message: &Message) -> Result<(), SyncError> {
        self.send_with_fd(message, None)
    }

    pub fn send_with_fd(&self, message: &Message, fd: Option<BorrowedFd>) -> Result<(), SyncError> {
        let bytes = serde_json::to_vec(message)?;
        let iov = [IoSlice::new(&bytes)];
        let raw = fd.map(|fd| [fd.as_raw_fd()]);
        let cmsgs: Vec<ControlMessage> = raw
            .iter()
            .map(|fds| ControlMessage::ScmRights(fds))
            .collect();
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                &cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Err(Errno::EINTR) => continue,
                Err(Errno::EPIPE) | Err(Errno::ECONNRESET) => return Err(SyncError::Closed),
                Err(err) => return Err(err.into()),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// The next message, with the descriptor that came with it. A closed peer is `Closed`.
    pub fn recv(&self) -> Result<(Message, Option<OwnedFd>), SyncError> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut cmsg_space = nix::cmsg_space!([RawFd; 1]);
        let (len, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg_space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(Errno::EINTR) => continue,
                Err(Errno::ECONNRESET) => return Err(SyncError::Closed),
                Err(err) => return Err(err.into()),
                Ok(msg) => {
                    let mut fd = None;
                    for cmsg in msg.cmsgs()? {
                        if let ControlMessageOwned::ScmRights(fds) = cmsg {
                            for raw in fds {
                                // SAFETY: the kernel just installed `raw` in our table for us;
                                // nothing else owns it.
                                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    break (msg.bytes, fd);
                }
            }
        };
        if len == 0 {
            return Err(SyncError::Closed);
        }
        Ok((serde_json::from_slice(&buf[..len])?, fd))
    }

    /// Waits for `Proceed`; an `Error` from the peer becomes this side's error.
    pub fn expect_proceed(&self) -> Result<(), SyncError> {
        match self.recv()?.0 {
            Message::Proceed => Ok(()),
            got => Err(SyncError::Unexpected {
                expected: "Proceed",
                got,
            }),
        }
    }
}
