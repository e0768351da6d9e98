//! `clone(2)` used like `fork(2)`, but with namespace flags, so the container's first process is
//! created inside its new namespaces by a single system call; and `clone3(2)` for the same with
//! the child born in a given cgroup2 cgroup.

use std::os::fd::{AsRawFd, BorrowedFd};

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
    forked(ret)
}

/// From linux/sched.h (Linux 5.7); the libc crate has no name for it.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` up to its `cgroup` field (CLONE_ARGS_SIZE_VER2, Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// As [`clone_process`], with the child starting life in the cgroup2 cgroup `cgroup` (an open
/// directory of it): no write to `cgroup.procs` after, the write that takes the kernel's global
/// migration lock (see `hull_cgroups::Cgroup::join_v1`). The errors on which the caller clones
/// as before instead are `Placing::clone_process`'s to pick (ENOSYS or E2BIG from a kernel
/// without it, ENOSYS or EPERM from a seccomp filter, EAGAIN at the cgroup's pids limit).
pub fn clone_process_into(flags: CloneFlags, cgroup: BorrowedFd<'_>) -> Result<Forked, Errno> {
    let args = CloneArgs {
        flags: u64::try_from(flags.bits()).map_err(|_| Errno::EINVAL)? | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: u64::try_from(cgroup.as_raw_fd()).map_err(|_| Errno::EBADF)?,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed, alive for the call; a zero stack
    // gives the child a copy-on-write copy of the parent's, as fork(2) does; no flag asks the
    // kernel to write through a pointer (no CLONE_PIDFD, CLONE_*_SETTID).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    forked(ret)
}

fn forked(ret: libc::c_long) -> Result<Forked, Errno> {
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(
            i32::try_from(pid).map_err(|_| Errno::EOVERFLOW)?,
        ))),
    }
}
