//! Paying the kernel's wait for a migration into a cgroup ahead of time, off the caller's path.
//!
//! Every write to a `cgroup.procs` file takes one global lock for writing (the kernel's
//! `cgroup_threadgroup_rwsem`, shared by all hierarchies, v1 and v2, unless the hierarchy is
//! mounted with `favordynmods`). A writer that finds it unused within the last RCU grace
//! period first waits for a full grace period (5-15 ms on an idle host, more on a busy one),
//! holding the cgroup mutex, so a `mkdir` of a cgroup waits too; one that comes while another
//! writer holds it, or within a grace period after, does not wait. A container's first process
//! is moved into its cgroups while its runtime waits, so that wait lands on every container's
//! start. A process with nothing else to do can take it earlier instead, and keep the lock warm
//! until the container's process is moved, by moving itself again and again into the cgroup it
//! is in already: a move that changes nothing else.

use std::path::PathBuf;

use crate::error::CgroupError;
use crate::fs;
use crate::layout::System;

/// This process's own `cgroup.procs` in one hierarchy, to move itself into.
#[derive(Debug)]
pub struct MigrationPrimer {
    procs: PathBuf,
    pid: String,
}

impl MigrationPrimer {
    /// The primer of the calling process: its cgroup in the unified hierarchy when there is one
    /// (on a pure v2 host, the only one), else in its first v1 hierarchy.
    pub fn new() -> Result<MigrationPrimer, CgroupError> {
        let system = System::read()?;
        let (_, dir) = system
            .mounts
            .iter()
            .find(|(m, _)| m.version == 2)
            .or_else(|| system.mounts.first())
            .ok_or(CgroupError::NotMounted)?;
        Ok(MigrationPrimer {
            procs: dir.join("cgroup.procs"),
            pid: std::process::id().to_string(),
        })
    }

    /// Moves this process into the cgroup it is in; returns once the kernel has, after the wait
    /// when the lock was cold. A migration into any cgroup within a grace period of its return
    /// starts without the wait.
    pub fn prime(&self) -> Result<(), CgroupError> {
        fs::write_file(&self.procs, &self.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priming_leaves_the_process_in_its_cgroups() {
        if !nix::unistd::Uid::effective().is_root() {
            hull_testkit::skip!("needs root to write cgroup.procs");
        }
        let before = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let primer = MigrationPrimer::new().unwrap();
        assert!(primer.procs.ends_with("cgroup.procs"), "{:?}", primer.procs);
        for _ in 0..3 {
            primer.prime().unwrap();
        }
        assert_eq!(
            std::fs::read_to_string("/proc/self/cgroup").unwrap(),
            before
        );
    }
}
