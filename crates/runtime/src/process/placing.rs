//! Who moves a new container process into its cgroups, and the clone that goes with it.
//!
//! A write of a pid to `cgroup.procs` takes the kernel's global migration lock
//! (`cgroup_threadgroup_rwsem`, shared by every hierarchy), whose first taking after a pause
//! waits out an RCU grace period (5-18 ms here) holding the cgroup mutex. A process born in its
//! cgroup2 cgroup (`clone3` with CLONE_INTO_CGROUP) and moving itself into its v1 ones
//! ([`hull_cgroups::Cgroup::join_v1`]) takes neither: that is the way whenever the process can
//! still see the host's cgroup mounts and write them.

use std::os::fd::BorrowedFd;

use nix::errno::Errno;
use nix::sched::CloneFlags;

use crate::sys::clone::{clone_process, clone_process_into, Forked};

/// Who moves the process into its cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placing {
    /// The runtime, before `Proceed`: the pid written to every `cgroup.procs`.
    ByRuntime,
    /// The process itself, into its v1 cgroups; `born_in_v2`: it was cloned into its cgroup2
    /// cgroup, else the runtime moves it there.
    Itself { born_in_v2: bool },
}

impl Placing {
    /// Clones the process with namespace `flags`: into `v2_dir` (the cgroup2 cgroup, open) when
    /// the process places itself and one is given; as a plain clone, for the runtime to move it
    /// there, where the kernel has no `clone3` that knows CLONE_INTO_CGROUP (ENOSYS, E2BIG), or
    /// a seccomp filter around this runtime refuses `clone3` (docker's answers ENOSYS, others
    /// EPERM; a real refusal of the cgroup then comes back from the move, named), or where the
    /// cgroup is at its pids limit (a fork into it is refused, a move is not: an `exec` into a
    /// full container starts, as runc's does).
    pub(crate) fn clone_process(
        &mut self,
        flags: CloneFlags,
        v2_dir: Option<BorrowedFd<'_>>,
    ) -> Result<Forked, Errno> {
        let (Placing::Itself { born_in_v2 }, Some(dir)) = (self, v2_dir) else {
            return clone_process(flags);
        };
        match clone_process_into(flags, dir) {
            Err(Errno::ENOSYS | Errno::E2BIG | Errno::EPERM | Errno::EAGAIN) => {
                clone_process(flags)
            }
            born => {
                *born_in_v2 = true;
                born
            }
        }
    }

    /// The runtime's part, between the child's `Created` and its `Proceed`.
    pub(crate) fn place(
        self,
        cgroup: &hull_cgroups::Cgroup,
        pid: i32,
    ) -> Result<(), hull_cgroups::CgroupError> {
        match self {
            Placing::ByRuntime => cgroup.add_process(pid),
            Placing::Itself { born_in_v2: false } => cgroup.add_process_v2(pid),
            Placing::Itself { born_in_v2: true } => Ok(()),
        }
    }

    /// The cgroup the child moves itself into (its v1 dirs), if it does.
    pub(crate) fn joined_by_child(
        self,
        cgroup: &hull_cgroups::Cgroup,
    ) -> Option<&hull_cgroups::Cgroup> {
        match self {
            Placing::Itself { .. } => Some(cgroup),
            Placing::ByRuntime => None,
        }
    }
}
