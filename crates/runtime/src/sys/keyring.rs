//! The session keyring: each container joins a new one, so that it cannot read the host's keys.

use std::ffi::CString;

use nix::errno::Errno;

const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;

/// Creates and joins a new session keyring named `name`.
pub fn join_new_session_keyring(name: &str) -> Result<(), Errno> {
    let name = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let ret =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if ret == -1 {
        return Err(Errno::last());
    }
    Ok(())
}
