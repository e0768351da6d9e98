//! seccomp(2): load a compiled BPF filter with any filter flags, and probe what the kernel has.
//!
//! Loading here rather than through libseccomp's `seccomp_load` lets the runtime compile the
//! filter before clone and pass flags libseccomp 2.5 does not know (WAIT_KILLABLE_RECV).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_GET_ACTION_AVAIL: libc::c_uint = 2;

pub const FLAG_TSYNC: u32 = 1 << 0;
pub const FLAG_LOG: u32 = 1 << 1;
pub const FLAG_SPEC_ALLOW: u32 = 1 << 2;
pub const FLAG_NEW_LISTENER: u32 = 1 << 3;
pub const FLAG_TSYNC_ESRCH: u32 = 1 << 4;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

/// Installs `filter` on the calling thread; returns the user-notification listener when
/// `flags` has FLAG_NEW_LISTENER.
pub fn set_mode_filter(filter: &[libc::sock_filter], flags: u32) -> io::Result<Option<OwnedFd>> {
    let len = u16::try_from(filter.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let prog = libc::sock_fprog {
        len,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: prog describes a live array of `len` instructions that the kernel copies.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & FLAG_NEW_LISTENER == 0 {
        return Ok(None);
    }
    let fd = i32::try_from(rc).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: with NEW_LISTENER the kernel returns a new fd that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Whether the kernel knows these filter flags: with a NULL program a known flag set fails
/// with EFAULT, an unknown one with EINVAL (the probe libseccomp and runc use).
pub fn flags_supported(flags: u32) -> bool {
    // SAFETY: a NULL program is never dereferenced: the kernel checks flags first, then
    // fails to copy from NULL.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

/// Whether the kernel implements the filter return action `action` (SECCOMP_RET_*).
pub fn action_available(action: u32) -> bool {
    // SAFETY: the kernel reads one u32 from the pointer, which points to a live u32.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_GET_ACTION_AVAIL,
            0u32,
            &action as *const u32,
        )
    };
    rc == 0
}
