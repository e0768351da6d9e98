//! hull-cgroups: places a container's processes in cgroups and enforces `linux.resources` of an OCI
//! config on pure cgroup v2 (unified), hybrid and legacy (v1 only) hosts; reads stats, OOM events,
//! freezes and removes what it created.
//!
//! The layout is detected from /proc/self/mountinfo and /proc/self/cgroup; a controller is applied on
//! whichever hierarchy hosts it (on a hybrid host hugetlb may live only on the cgroup2 mount).
//!
//! Use from a runtime:
//! 1. `Cgroup::new(config.linux.cgroupsPath, id)` (reads the mounts, touches nothing);
//! 2. `create(resources)` with `resources.devices` set to [`runc_device_rules`] (or
//!    [`default_device_rules`] when the config has none): everything is validated first, and a
//!    failure leaves nothing behind; it returns the fields skipped because the kernel dropped
//!    them (`memory.kernel`, leaf weights), for the runtime to log; then persist the `Cgroup`
//!    (serde) in the container state;
//! 3. `add_process(pid)` before the container process runs user code; or, faster, the process
//!    born in the cgroup2 dir (`make_v2_dir` before `create`, then `clone3` into it) moves
//!    itself into the v1 ones with `join_v1`;
//! 4. later commands reload it: `freeze`/`thaw`, `update`, `stats`, `oom_events`, `pids`;
//! 5. `remove()` after the processes are gone (it retries for about a second while they exit).

mod cgroup;
mod controllers;
pub mod devices;
mod error;
mod freezer;
mod fs;
mod layout;
mod oom;
mod plan;
#[cfg(test)]
mod plan_tests;
mod stats;
mod sys;

pub use cgroup::{read_host_ahead, Cgroup, Hierarchy};
pub use devices::{default_device_rules, runc_device_rules};
pub use error::CgroupError;
pub use layout::{detect_layout, process_dirs, Layout};
pub use oom::OomEvents;
pub use stats::{
    BlkioEntry, BlkioStats, CpuStats, CpuUsage, HugetlbStats, MemoryEntry, MemoryStats, PidsStats,
    Stats, Throttling,
};
