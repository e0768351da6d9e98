//! Lookups confined to a directory with openat2(2): with [`IN_ROOT`] every path, symlinks and
//! ".." included, resolves as if the directory were `/`, so a symlink in an untrusted tree (a
//! container's rootfs, an image layer being unpacked) can never lead out of it, and magic links
//! (/proc/self/fd/N and friends) are refused.

use std::os::fd::{BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::NixPath;

/// Resolve inside the directory as if it were the root, and follow no magic link.
pub const IN_ROOT: ResolveFlag =
    ResolveFlag::RESOLVE_IN_ROOT.union(ResolveFlag::RESOLVE_NO_MAGICLINKS);

/// openat2(dirfd, path, flags | O_CLOEXEC, resolve), retried on EAGAIN (a concurrent rename or
/// mount raced with a scoped lookup, which the kernel asks the caller to retry) and EINTR.
pub fn openat2<P: ?Sized + NixPath>(
    dirfd: BorrowedFd<'_>,
    path: &P,
    flags: OFlag,
    resolve: ResolveFlag,
) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve);
    // Bounded: a scoped ".." fails with EAGAIN whenever any mount or rename happened on the
    // system during the walk, which on a busy host (or for a path a hostile tree made long)
    // can go on; the caller then gets EAGAIN rather than a spinning process.
    let mut tries = 0;
    loop {
        match nix::fcntl::openat2(dirfd, path, how) {
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) if tries < MAX_TRIES => {
                tries += 1;
                std::thread::yield_now();
            }
            other => return other,
        }
    }
}

/// How many times a lookup that raced with a mount or rename is tried.
const MAX_TRIES: u32 = 4096;

/// `path` opened with `flags` inside the directory `root` ([`IN_ROOT`]).
pub fn open_in_root<P: ?Sized + NixPath>(
    root: BorrowedFd<'_>,
    path: &P,
    flags: OFlag,
) -> nix::Result<OwnedFd> {
    openat2(root, path, flags, IN_ROOT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::Mode;
    use std::os::fd::AsFd;

    #[test]
    fn symlinks_and_dotdot_stay_inside() {
        let dir = std::env::temp_dir().join(format!("hull-sys-resolve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc/passwd"), b"inside").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc/passwd", dir.join("rel")).unwrap();
        std::os::unix::fs::symlink("/proc/self/fd/0", dir.join("magic")).unwrap();
        let root =
            nix::fcntl::open(&dir, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        for p in ["abs", "rel", "/etc/passwd", "../etc/passwd"] {
            let fd = open_in_root(root.as_fd(), p, OFlag::O_RDONLY).unwrap();
            let text = std::io::read_to_string(std::fs::File::from(fd)).unwrap();
            assert_eq!(text, "inside", "{p}");
        }
        assert!(open_in_root(root.as_fd(), "magic", OFlag::O_RDONLY).is_err());
        assert_eq!(
            open_in_root(root.as_fd(), "missing", OFlag::O_RDONLY).unwrap_err(),
            Errno::ENOENT
        );
        let fd = open_in_root(root.as_fd(), "etc", OFlag::O_PATH).unwrap();
        // SAFETY: F_GETFD reads a flag of a valid descriptor; no memory is passed.
        let fl = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::F_GETFD) };
        assert_eq!(fl & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
