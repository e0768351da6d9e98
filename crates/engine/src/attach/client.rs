//! The client's side of an attach session: the container's output to this process's stdout and
//! stderr, its stdin (with `-i`) to the container until the detach keys, its window size (with
//! `-t`) at the start and on each SIGWINCH, and the signals it gets passed on to the container.
//! With a terminal and stdin, the caller's terminal is in raw mode for the session only.

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use hull_sys::pty::{window_size, RawMode, FORWARDED_SIGNALS as FORWARDED};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{recv, send, MsgFlags};

use super::keys::DetachKeys;
use super::{frame, resize, CHUNK, EXIT, STDERR, STDIN, STDIN_EOF, STDOUT};
use crate::error::EngineError;

/// What the client sends and shows.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Send this process's stdin to the container.
    pub stdin: bool,
    /// The container has a terminal: raw mode here, window sizes there.
    pub tty: bool,
    pub keys: DetachKeys,
    /// Pass the signals this process gets on to the container (docker's `--sig-proxy`).
    pub sig_proxy: bool,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The container's process exited with this status.
    Exited(i32),
    /// The user typed the detach keys; the container runs on.
    Detached,
    /// The monitor went away without an exit status.
    Closed,
}

/// The forwarded signals and SIGWINCH, blocked and read from a signalfd while this lives.
#[derive(Debug)]
pub struct Signals {
    fd: SignalFd,
    old: SigSet,
}

impl Signals {
    /// Blocks them. In a starter, call after forking the monitor: the container inherits the
    /// monitor's mask.
    pub fn block() -> Result<Signals, EngineError> {
        let mut set = SigSet::empty();
        for s in FORWARDED {
            set.add(s);
        }
        set.add(Signal::SIGWINCH);
        let mut old = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
            .map_err(EngineError::sys("sigprocmask"))?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(EngineError::sys("signalfd"))?;
        Ok(Signals { fd, old })
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

/// The size of the terminal this process is attached to (its stdin's, else its stdout's).
pub fn terminal_size() -> Option<(u16, u16)> {
    window_size(std::io::stdin().as_fd()).or_else(|| window_size(std::io::stdout().as_fd()))
}

/// Runs the session over `conn` until the container exits, the user detaches or the monitor
/// goes; `forward` passes a signal on to the container.
pub fn session(
    conn: &OwnedFd,
    opts: &mut SessionOptions,
    signals: &Signals,
    forward: &mut dyn FnMut(Signal),
) -> Result<Ended, EngineError> {
    let stdin = std::io::stdin();
    let mut raw = if opts.tty && opts.stdin {
        RawMode::enter(stdin.as_fd()).map_err(EngineError::sys("raw mode of the terminal"))?
    } else {
        None
    };
    let mut outq: VecDeque<Vec<u8>> = VecDeque::new();
    if opts.tty {
        outq.extend(terminal_size().map(|(r, c)| resize(r, c)));
    }
    let mut stdin_open = opts.stdin;
    let mut buf = vec![0u8; CHUNK + 1];
    loop {
        let conn_flags = if outq.is_empty() {
            PollFlags::POLLIN
        } else {
            PollFlags::POLLIN | PollFlags::POLLOUT
        };
        let mut fds = vec![
            PollFd::new(conn.as_fd(), conn_flags),
            PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN),
        ];
        // Input waits while earlier input is not sent: the container reads at its own pace.
        let read_stdin = stdin_open && outq.is_empty();
        if read_stdin {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(EngineError::sys("poll")(e)),
        }
        let ready: Vec<PollFlags> = fds
            .iter()
            .map(|p| p.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        if read_stdin && !ready[2].is_empty() {
            match nix::unistd::read(stdin.as_fd(), &mut buf[..CHUNK]) {
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    outq.push_back(vec![STDIN_EOF]);
                }
                Ok(n) => {
                    let (pass, detached) = opts.keys.feed(&buf[..n]);
                    if !pass.is_empty() {
                        outq.push_back(frame(STDIN, &pass));
                    }
                    if detached {
                        // What was typed before the keys still reaches the container.
                        send_queued(conn.as_fd(), &mut outq);
                        return Ok(Ended::Detached);
                    }
                }
            }
        }
        if !ready[1].is_empty() {
            while let Ok(Some(info)) = signals.fd.read_signal() {
                let signal = i32::try_from(info.ssi_signo)
                    .ok()
                    .and_then(|n| Signal::try_from(n).ok());
                match signal {
                    Some(Signal::SIGWINCH) if opts.tty => {
                        outq.extend(terminal_size().map(|(r, c)| resize(r, c)))
                    }
                    Some(Signal::SIGWINCH) | None => {}
                    Some(s) if opts.sig_proxy => forward(s),
                    // Not proxied: the signal does to this command what it would have done.
                    Some(s) => {
                        drop(raw.take());
                        let _ = nix::sys::signal::sigprocmask(
                            SigmaskHow::SIG_SETMASK,
                            Some(&signals.old),
                            None,
                        );
                        let _ = nix::sys::signal::raise(s);
                    }
                }
            }
        }
        if !send_queued(conn.as_fd(), &mut outq) {
            stdin_open = false;
        }
        if ready[0].intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            let n = match recv(conn.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Ok(0) | Err(_) => return Ok(Ended::Closed),
                Ok(n) => n,
            };
            let (kind, data) = (buf[0], &buf[1..n]);
            match kind {
                STDOUT => show(&mut std::io::stdout().lock(), data),
                STDERR => show(&mut std::io::stderr().lock(), data),
                EXIT => {
                    let code = data
                        .get(..4)
                        .and_then(|b| b.try_into().ok())
                        .map(i32::from_le_bytes)
                        .unwrap_or(crate::error::EXIT_ENGINE);
                    return Ok(Ended::Exited(code));
                }
                _ => {}
            }
        }
    }
}

/// Sends what it can of the queue without blocking; false once the monitor is gone.
fn send_queued(conn: BorrowedFd<'_>, outq: &mut VecDeque<Vec<u8>>) -> bool {
    while let Some(m) = outq.front() {
        match send(
            conn.as_raw_fd(),
            m,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(_) => {
                outq.pop_front();
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return true,
            Err(_) => {
                outq.clear();
                return false;
            }
        }
    }
    true
}

/// Output to the user; a closed stdout or stderr loses it, as a shell's pipe would.
fn show(out: &mut dyn Write, data: &[u8]) {
    let _ = out.write_all(data);
    let _ = out.flush();
}
