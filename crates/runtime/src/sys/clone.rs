//! `clone(2)` used like `fork(2)`, but with namespace flags, so the container's first process is
//! created inside its new namespaces by a single system call.

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// Which side of the clone the caller is on.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// Clones the calling process with `flags` (namespace flags only) and SIGCHLD as exit signal.
///
/// The caller must be single-threaded, as for `fork(2)`: the child gets a copy of the address space
/// with only the calling thread in it (and other threads' locks held forever). The facade checks
/// the thread count before every create and exec, the only paths that get here.
pub fn clone_process(flags: CloneFlags) -> Result<Forked, Errno> {
    let raw_flags =
        libc::c_ulong::try_from(flags.bits() | libc::SIGCHLD).map_err(|_| Errno::EINVAL)?;
    // SAFETY: with a NULL stack the kernel gives the child a copy-on-write copy of the parent's
    // stack, exactly as fork(2) does; no pointer arguments are passed (parent_tid, child_tid and tls
    // are unused without the corresponding CLONE_* flags).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            raw_flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(
            i32::try_from(pid).map_err(|_| Errno::EOVERFLOW)?,
        ))),
    }
}
