//! File descriptor helpers: close-on-exec hygiene for processes that enter a container or a VMM
//! jail (nothing of the host may leak in, CVE-2024-21626, apart from the descriptors asked to be
//! preserved), closing what a forked process inherited but does not own, and the /proc path
//! that names an open descriptor.

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

/// Closes every descriptor from 3 upward but `keep`: close_range(2) over the gaps between the
/// kept ones, a few system calls where a listing of /proc/self/fd and a close each took dozens.
/// For a process that owns none of the descriptors it inherited (a forked monitor).
pub fn close_all_but(keep: &[i32]) {
    let mut kept: Vec<libc::c_uint> = keep
        .iter()
        .filter_map(|&fd| libc::c_uint::try_from(fd).ok())
        .filter(|&fd| fd > 2)
        .collect();
    kept.sort_unstable();
    kept.dedup();
    let mut first: libc::c_uint = 3;
    for fd in kept.into_iter().chain(std::iter::once(libc::c_uint::MAX)) {
        if fd > first {
            // SAFETY: close_range passes no memory; the caller owns no object that uses the
            // descriptors it closes (the contract of this function).
            unsafe { libc::syscall(libc::SYS_close_range, first, fd - 1, 0) };
        }
        first = fd.saturating_add(1);
    }
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
    fn close_all_but_closes_the_others_and_keeps_stdio() {
        let files: Vec<std::fs::File> = (0..6)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let fds: Vec<i32> = files.iter().map(AsRawFd::as_raw_fd).collect();
        let keep = [fds[4], fds[1], 1];
        // SAFETY: the child only calls close_range and fcntl (and malloc, which glibc's fork
        // leaves usable), then leaves with _exit.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                close_all_but(&keep);
                // SAFETY: F_GETFD on descriptor numbers; no memory is passed.
                let open = |fd: i32| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
                let kept = [0, 1, 2, fds[1], fds[4]].into_iter().all(open);
                let closed = [fds[0], fds[2], fds[3], fds[5]]
                    .into_iter()
                    .all(|fd| !open(fd));
                // SAFETY: leaves the forked child without running the test harness's code.
                unsafe { libc::_exit(if kept && closed { 0 } else { 1 }) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }

    #[test]
    fn proc_path_names_the_descriptor() {
        let f = std::fs::File::open("/").unwrap();
        let p = proc_self_fd(&f);
        assert_eq!(p, PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())));
        assert_eq!(std::fs::read_link(p).unwrap(), PathBuf::from("/"));
    }
}
