//! File descriptor hygiene for processes that enter a container: nothing of the host may leak in
//! (CVE-2024-21626), apart from the descriptors the caller asked to preserve.

use nix::errno::Errno;

const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// Marks every descriptor from `first` upward close-on-exec.
pub fn cloexec_from(first: i32) -> Result<(), Errno> {
    let first = libc::c_uint::try_from(first).map_err(|_| Errno::EINVAL)?;
    // SAFETY: close_range only changes flags of this process's descriptors; no memory is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == -1 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Clears close-on-exec on `fd`, so that it survives execve (preserved fds, stdio).
pub fn clear_cloexec(fd: i32) -> Result<(), Errno> {
    // SAFETY: F_SETFD on a descriptor number has no memory effects; a bad fd is reported as EBADF.
    let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    if ret == -1 {
        return Err(Errno::last());
    }
    Ok(())
}
