//! File descriptor helpers: close-on-exec hygiene for processes that enter a container or a VMM
//! jail (nothing of the host may leak in, CVE-2024-21626, apart from the descriptors asked to be
//! preserved), and the /proc path that names an open descriptor.

use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

use nix::errno::Errno;

const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// Marks every descriptor from `first` upward close-on-exec (`close_range(CLOSE_RANGE_CLOEXEC)`).
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

/// "/proc/self/fd/N": a path that names what `fd` refers to, for calls that take only paths
/// (mount(2), the `l*xattr` family) so they act on the already-resolved descriptor.
pub fn proc_self_fd(fd: impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn cloexec(fd: i32) -> bool {
        // SAFETY: F_GETFD reads a flag of a descriptor number; no memory is passed.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert!(flags >= 0);
        flags & libc::FD_CLOEXEC != 0
    }

    #[test]
    fn cloexec_is_set_and_cleared() {
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        let fd = f.as_raw_fd();
        clear_cloexec(fd).unwrap();
        assert!(!cloexec(fd));
        cloexec_from(fd).unwrap();
        assert!(cloexec(fd));
        assert_eq!(clear_cloexec(-1), Err(Errno::EBADF));
        assert_eq!(cloexec_from(-1), Err(Errno::EINVAL));
    }

    #[test]
    fn proc_path_names_the_descriptor() {
        let f = std::fs::File::open("/").unwrap();
        let p = proc_self_fd(&f);
        assert_eq!(p, PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())));
        assert_eq!(std::fs::read_link(p).unwrap(), PathBuf::from("/"));
    }
}
