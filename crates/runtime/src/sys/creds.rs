//! setresuid/setresgid/setgroups as raw syscalls on the calling thread.
//!
//! glibc's wrappers broadcast the change to every thread it believes exists; in a process made
//! by a raw clone that belief may be stale, so the container init calls the kernel directly.

use std::io;

fn check(rc: libc::c_long) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets real, effective and saved user ids to `uid`.
pub fn setresuid(uid: u32) -> io::Result<()> {
    // SAFETY: setresuid takes three integers and touches no memory of ours.
    check(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) })
}

/// Sets real, effective and saved group ids to `gid`.
pub fn setresgid(gid: u32) -> io::Result<()> {
    // SAFETY: setresgid takes three integers and touches no memory of ours.
    check(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) })
}

/// Replaces the supplementary group list.
pub fn setgroups(gids: &[u32]) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live slice of gid_t-sized integers that the
    // kernel only reads.
    check(unsafe { libc::syscall(libc::SYS_setgroups, gids.len(), gids.as_ptr()) })
}
