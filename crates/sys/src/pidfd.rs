//! Process file descriptors: a handle on one process that a recycled pid cannot redirect. A
//! signal sent through it reaches the process it was opened for or fails with ESRCH, never a
//! stranger that got the same number; it polls readable when the process exits.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// An open pidfd.
#[derive(Debug)]
pub struct PidFd(OwnedFd);

impl PidFd {
    /// `pidfd_open(pid, 0)`: close-on-exec by the kernel's default for pidfds.
    pub fn open(pid: Pid) -> Result<PidFd, Errno> {
        // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1; no memory is
        // passed.
        let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        if ret < 0 {
            return Err(Errno::last());
        }
        let raw = i32::try_from(ret).map_err(|_| Errno::EBADF)?;
        // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
        Ok(PidFd(unsafe { OwnedFd::from_raw_fd(raw) }))
    }

    /// `pidfd_send_signal(fd, sig, NULL, 0)`: ESRCH once the process has exited.
    pub fn send_signal(&self, signal: Signal) -> Result<(), Errno> {
        // SAFETY: a valid descriptor, a signal number, a NULL siginfo (the kernel fills it as
        // kill(2) would) and no flags.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if ret < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    /// Whether the process has exited (the pidfd polls readable), without waiting.
    pub fn has_exited(&self) -> Result<bool, Errno> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::ZERO)?;
        Ok(ready > 0)
    }
}

impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn signals_reach_the_process_and_exit_is_seen() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
        let fd = PidFd::open(pid).unwrap();
        assert!(!fd.has_exited().unwrap());
        fd.send_signal(Signal::SIGKILL).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert!(fd.has_exited().unwrap());
        // Reaped: the pid may be reused, the pidfd still names the dead process.
        assert_eq!(fd.send_signal(Signal::SIGTERM), Err(Errno::ESRCH));
    }

    #[test]
    fn a_pid_that_does_not_exist_is_refused() {
        // Above the kernel's pid_max limit (4194304 at most), so never a live process.
        assert_eq!(
            PidFd::open(Pid::from_raw(i32::MAX)).map(|_| ()),
            Err(Errno::ESRCH)
        );
    }
}
