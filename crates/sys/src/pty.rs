//! Terminals: the window size ioctls nix does not wrap, and a terminal put in raw mode for as
//! long as a guard lives (a relay of a container's pty: `hull run -it`, `exec -t`, the runtime's
//! foreground `run`, a microVM's process); and the signals such a relay passes on.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

/// The signals a client passes on to the process it relays (docker's sig-proxy).
pub const FORWARDED_SIGNALS: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Sets the window size of a terminal (TIOCSWINSZ; the foreground process group gets SIGWINCH).
pub fn set_window_size(tty: BorrowedFd, rows: u16, cols: u16) -> Result<(), Errno> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the whole call.
    let ret = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    if ret < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The window size of a terminal (rows, columns), or None if `tty` is not one.
pub fn window_size(tty: BorrowedFd) -> Option<(u16, u16)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize struct into memory we own for the whole call.
    let ret = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    (ret == 0).then_some((size.ws_row, size.ws_col))
}

/// A terminal in raw mode (no echo, no line editing, no signals from keys) until dropped, when
/// its previous settings come back.
#[derive(Debug)]
pub struct RawMode {
    tty: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Raw mode for `tty`; None when it is not a terminal.
    pub fn enter(tty: BorrowedFd) -> Result<Option<RawMode>, Errno> {
        let Ok(saved) = tcgetattr(tty) else {
            return Ok(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(tty, SetArg::TCSANOW, &raw)?;
        // A copy of the descriptor: the settings are restored even if the caller's is closed.
        let tty = tty.try_clone_to_owned().map_err(|e| {
            let _ = tcsetattr(tty, SetArg::TCSANOW, &saved);
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EBADF))
        })?;
        Ok(Some(RawMode { tty, saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // TCSADRAIN: what was written in raw mode is shown before the settings change.
        let _ = tcsetattr(&self.tty, SetArg::TCSADRAIN, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::termios::LocalFlags;
    use std::os::fd::AsFd;

    #[test]
    fn window_size_and_raw_mode_on_a_pty() {
        let pty = nix::pty::openpty(None, None).unwrap();
        set_window_size(pty.master.as_fd(), 33, 101).unwrap();
        assert_eq!(window_size(pty.slave.as_fd()), Some((33, 101)));
        let canonical = |fd: BorrowedFd| {
            tcgetattr(fd)
                .unwrap()
                .local_flags
                .contains(LocalFlags::ICANON)
        };
        assert!(canonical(pty.slave.as_fd()));
        let raw = RawMode::enter(pty.slave.as_fd()).unwrap().unwrap();
        assert!(!canonical(pty.slave.as_fd()));
        drop(raw);
        assert!(canonical(pty.slave.as_fd()));

        let file = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(window_size(file.as_fd()), None);
        assert!(RawMode::enter(file.as_fd()).unwrap().is_none());
    }
}
