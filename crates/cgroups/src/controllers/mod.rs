//! One module per controller: each validates its part of `linux.resources` and adds the cgroup
//! file writes for the hierarchy (v1 or v2) that hosts it to the plan.

pub(crate) mod blkio;
pub(crate) mod cpu;
pub(crate) mod cpuset;
pub(crate) mod hugetlb;
pub(crate) mod memory;
pub(crate) mod network;
pub(crate) mod pids;
pub(crate) mod rdma;
pub(crate) mod unified;
