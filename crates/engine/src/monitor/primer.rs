//! A short-lived process that takes the kernel's wait for the first migration into a cgroup
//! while a container is being made, so that the runtime's move of the container's process
//! into its cgroups does not wait ([`hull_cgroups::MigrationPrimer`] says why it would).
//!
//! A starter forks it as soon as it knows it will start a container, before it writes the
//! container's bundle; it primes at once and again every few milliseconds until every copy of
//! its stop pipe's write end is closed: the starter's, once the monitor is forked, and the
//! monitor's, at its first report (the container's process is in its cgroups by then).
//! It is a grandchild (its parent exits at once), so nobody has to reap it, and it holds
//! nothing of its starter's but the pipe. Best effort throughout: when it cannot run,
//! the runtime's move waits as it would have.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe2, ForkResult, Pid};

/// How often it primes again: well within the shortest grace period, after which the lock
/// would be cold again.
const EVERY: Duration = Duration::from_millis(3);

/// How long it primes at most, should the monitor hang before its first report.
const AT_MOST: Duration = Duration::from_secs(10);

/// The starter's handle: the pipe's write end, and the primer's parent to reap.
#[derive(Debug)]
pub struct Primer {
    stop: Option<OwnedFd>,
    parent: Option<Pid>,
}

impl Primer {
    /// Forks the primer; None when it cannot be forked. The caller must be single-threaded.
    pub fn start() -> Option<Primer> {
        let (read, write) = pipe2(OFlag::O_CLOEXEC).ok()?;
        // SAFETY: the caller is single-threaded (as for the monitor's fork), so the child gets
        // a consistent copy of its memory; both children leave with _exit.
        match unsafe { fork() }.ok()? {
            ForkResult::Parent { child } => {
                drop(read);
                Some(Primer {
                    stop: Some(write),
                    parent: Some(child),
                })
            }
            ForkResult::Child => {
                drop(write);
                // SAFETY: as above; the intermediate process only forks and leaves.
                if let Ok(ForkResult::Child) = unsafe { fork() } {
                    let _ = nix::sys::prctl::set_name(c"hull-primer");
                    super::close_inherited(&[read.as_raw_fd()]);
                    prime_until_closed(&read);
                }
                // SAFETY: leaving without running the starter's exit handlers or destructors.
                unsafe { libc::_exit(0) }
            }
        }
    }

    /// The write end, for the monitor (a copy of the starter) to keep until its first report;
    /// the primer's parent is the starter's to reap.
    pub(super) fn into_stop(mut self) -> Option<OwnedFd> {
        self.parent = None;
        self.stop.take()
    }
}

impl Drop for Primer {
    fn drop(&mut self) {
        if let Some(parent) = self.parent.take() {
            // It exits as soon as it has forked the primer.
            let _ = waitpid(parent, None);
        }
    }
}

fn prime_until_closed(stop: &OwnedFd) {
    let Ok(primer) = hull_cgroups::MigrationPrimer::new() else {
        return;
    };
    let deadline = Instant::now() + AT_MOST;
    while Instant::now() < deadline {
        if primer.prime().is_err() {
            return;
        }
        let mut fds = [PollFd::new(stop.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(EVERY.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {}
            // Readable means closed: nobody writes to it.
            _ => return,
        }
    }
}
