//! Staying with a process in the foreground (`run`, `exec` without `--detach`): forward every
//! signal to it, relay its terminal, and return its exit status as a shell would (128+N for a
//! signal). Signals are blocked and read from a signalfd made before the process exists, so an
//! exit that comes at once is never missed.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{read, write, Pid};

use crate::process::error::{sys, ProcessError};
use crate::sys::pty;
use hull_sys::pty::RawMode;

/// Spots the caller's detach keys in what it types to the process's terminal: takes the input
/// and returns what goes on to the terminal, and whether the keys are complete.
pub type DetachFilter<'a> = &'a mut KeyFn<'a>;
type KeyFn<'a> = dyn FnMut(&[u8]) -> (Vec<u8>, bool) + 'a;

/// What the caller's stdin gives the process's terminal.
pub enum Input<'a> {
    /// All of it, the caller's terminal in raw mode (runc's `exec -t`).
    All,
    /// What the filter passes, until it spots the caller's detach keys.
    Keys(DetachFilter<'a>),
    /// Nothing, and the caller's terminal is left as it is (docker's `exec -t` without `-i`).
    Closed,
}

impl std::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Input::All => "All",
            Input::Keys(_) => "Keys",
            Input::Closed => "Closed",
        })
    }
}

/// How staying with a process ended.
#[derive(Debug)]
pub enum Waited {
    /// It exited with this status (128+N for a signal).
    Exited(i32),
    /// The caller typed its detach keys: the process runs on, and its terminal's master is the
    /// caller's to keep open (the process gets SIGHUP once the last one is closed).
    Detached(OwnedFd),
}

/// Signals blocked and readable from a signalfd, for as long as this lives.
pub struct Foreground {
    signals: SignalFd,
    /// The mask to restore, and to give the container's program.
    pub original_mask: SigSet,
}

impl Foreground {
    /// Blocks all signals. Call before creating the process.
    pub fn new() -> Result<Foreground, ProcessError> {
        let mut original_mask = SigSet::empty();
        let all = SigSet::all();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut original_mask))
            .map_err(sys("sigprocmask"))?;
        let signals = SignalFd::with_flags(&all, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(sys("signalfd"))?;
        Ok(Foreground {
            signals,
            original_mask,
        })
    }

    /// Waits for `pid` to exit, forwarding signals and relaying `console`. Returns its exit code.
    pub fn wait(&self, pid: Pid, console: Option<OwnedFd>) -> Result<i32, ProcessError> {
        match self.wait_or_detach(pid, console, Input::All)? {
            Waited::Exited(code) => Ok(code),
            // Without keys the relay never detaches.
            Waited::Detached(_) => Ok(0),
        }
    }

    /// Waits as [`Foreground::wait`] does, relaying to `console` the caller's `input`; also ends
    /// when its filter spots the detach keys.
    pub fn wait_or_detach(
        &self,
        pid: Pid,
        console: Option<OwnedFd>,
        mut input: Input<'_>,
    ) -> Result<Waited, ProcessError> {
        let stdin = !matches!(input, Input::Closed);
        let mut relay = console.map(|m| Relay::new(m, stdin)).transpose()?;
        loop {
            if let Some(code) = reap(pid)? {
                if let Some(relay) = relay.as_mut() {
                    relay.drain();
                }
                return Ok(Waited::Exited(code));
            }
            let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            if let Some(relay) = &relay {
                relay.poll_fds(&mut fds);
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                Err(err) => return Err(sys("poll")(err)),
                Ok(_) => {}
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            if ready[0] {
                self.forward(pid, relay.as_ref())?;
            }
            if let Some(r) = relay.as_mut() {
                let keys = match &mut input {
                    Input::Keys(keys) => Some(&mut **keys),
                    Input::All | Input::Closed => None,
                };
                if r.pump(&ready[1..], keys) {
                    if let Some(r) = relay.take() {
                        return Ok(Waited::Detached(r.master));
                    }
                }
            }
        }
    }

    fn forward(&self, pid: Pid, relay: Option<&Relay>) -> Result<(), ProcessError> {
        while let Some(info) = self
            .signals
            .read_signal()
            .map_err(sys("reading signalfd"))?
        {
            let Ok(signal) = Signal::try_from(i32::try_from(info.ssi_signo).unwrap_or(0)) else {
                continue;
            };
            match signal {
                Signal::SIGCHLD => {}
                Signal::SIGWINCH => {
                    if let Some(relay) = relay {
                        relay.resize();
                    }
                }
                other => {
                    let _ = kill(pid, other);
                }
            }
        }
        Ok(())
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.original_mask), None);
    }
}

/// Reaps every exited child (the runtime may be a subreaper); the exit code of `pid` once it
/// has exited.
fn reap(pid: Pid) -> Result<Option<i32>, ProcessError> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return Ok(None),
            Ok(status) if status.pid() == Some(pid) => {
                if let Some(code) = exit_code(status) {
                    return Ok(Some(code));
                }
            }
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(sys("waitpid")(err)),
        }
    }
}

/// A shell's exit status: the code, or 128+N for a signal.
fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, signal, _) => Some(128 + signal as i32),
        _ => None,
    }
}

/// Waits, without touching signals, until `pid` (started at `start`) has exited. Its exit status
/// when it is a child of the caller (or the caller is its subreaper), else None: only a parent
/// can learn it.
pub fn wait_exit(pid: Pid, start: u64) -> Result<Option<i32>, ProcessError> {
    loop {
        match waitpid(pid, None) {
            Ok(status) => match exit_code(status) {
                Some(code) => return Ok(Some(code)),
                None => continue,
            },
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => break,
            Err(err) => return Err(sys("waitpid")(err)),
        }
    }
    let mut pause = std::time::Duration::from_millis(1);
    while crate::procfs::is_alive(pid.as_raw(), start) {
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(100));
    }
    Ok(None)
}

/// Copies between the runtime's stdio and a pty master, with our terminal in raw mode.
struct Relay {
    master: OwnedFd,
    _raw: Option<RawMode>,
    stdin_open: bool,
    master_open: bool,
}

impl Relay {
    /// The relay of `master`, with the caller's stdin (in raw mode) when `stdin`.
    fn new(master: OwnedFd, stdin: bool) -> Result<Relay, ProcessError> {
        let raw = if stdin {
            RawMode::enter(std::io::stdin().as_fd()).map_err(sys("tcsetattr"))?
        } else {
            None
        };
        let relay = Relay {
            master,
            _raw: raw,
            stdin_open: stdin,
            master_open: true,
        };
        relay.resize();
        Ok(relay)
    }

    fn resize(&self) {
        if let Some((rows, cols)) = pty::window_size(std::io::stdin().as_fd()) {
            let _ = pty::set_window_size(self.master.as_fd(), rows, cols);
        }
    }

    fn poll_fds<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) {
        // Closed sides are polled with no events, so indexes stay stable.
        let stdin = stdin_fd();
        let flags = |open: bool| {
            if open {
                PollFlags::POLLIN
            } else {
                PollFlags::empty()
            }
        };
        fds.push(PollFd::new(self.master.as_fd(), flags(self.master_open)));
        fds.push(PollFd::new(stdin, flags(self.stdin_open)));
    }

    /// Copies what is ready; whether `keys` spotted the detach keys in the input (what was
    /// typed before them has reached the terminal).
    fn pump(&mut self, ready: &[bool], keys: Option<&mut KeyFn<'_>>) -> bool {
        if ready.first() == Some(&true) && self.master_open {
            self.master_open = copy(self.master.as_fd(), std::io::stdout().as_fd());
        }
        if ready.get(1) == Some(&true) && self.stdin_open {
            let mut buf = [0u8; 8192];
            let Some(n) = read_some(stdin_fd(), &mut buf) else {
                self.stdin_open = false;
                return false;
            };
            let (pass, detached) = match keys {
                Some(keys) => keys(&buf[..n]),
                None => (buf[..n].to_vec(), false),
            };
            self.stdin_open = write_all(self.master.as_fd(), &pass);
            return detached;
        }
        false
    }

    /// Output the process wrote just before exiting.
    fn drain(&mut self) {
        while self.master_open {
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::ZERO) {
                Ok(n) if n > 0 => {
                    self.master_open = copy(self.master.as_fd(), std::io::stdout().as_fd())
                }
                _ => break,
            }
        }
    }
}

fn stdin_fd() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process; we never close it.
    unsafe { BorrowedFd::borrow_raw(0) }
}

/// One read and its full write; false once the source is closed (EOF, or EIO from a pty whose
/// slave is gone).
fn copy(from: BorrowedFd, to: BorrowedFd) -> bool {
    let mut buf = [0u8; 8192];
    match read_some(from, &mut buf) {
        Some(n) => write_all(to, &buf[..n]),
        None => false,
    }
}

/// One read: how many bytes (0 when interrupted), or None once the source is closed.
fn read_some(from: BorrowedFd, buf: &mut [u8]) -> Option<usize> {
    match read(from, buf) {
        Ok(0) => None,
        Ok(n) => Some(n),
        Err(Errno::EINTR) | Err(Errno::EAGAIN) => Some(0),
        Err(_) => None,
    }
}

/// Writes all of `data`; false once the destination is closed.
fn write_all(to: BorrowedFd, data: &[u8]) -> bool {
    let mut rest = data;
    while !rest.is_empty() {
        match write(to, rest) {
            Ok(written) => rest = &rest[written..],
            Err(Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
    true
}
