//! The container process's security settings: everything the OCI `process` object and
//! `linux.seccomp` / `linux.personality` / `linux.memoryPolicy` say about what the process may do and as whom it runs.
//!
//! [`SecurityPlan::new`] runs in the runtime before clone: it validates every name and value
//! against this host and compiles the seccomp filter, so a bad config fails before anything
//! exists. [`SecurityPlan::apply`] runs in the container process as the last step before
//! execve, in runc's order.

mod capabilities;
mod cbpf;
mod cpu_affinity;
mod error;
mod lsm;
mod memory_policy;
mod oom;
mod personality;
mod plan;
mod rlimits;
mod scheduling;
mod seccomp;
mod seccomp_agent;
mod seccomp_cache;
mod seccomp_enosys;
mod seccomp_features;
mod seccomp_shrink;
mod seccomp_x32;
mod user;

#[cfg(test)]
mod tests;

pub use capabilities::{grantable_capabilities, known_capabilities};

/// What a create's security plan reads of the host, read now (`crate::read_host_ahead`).
pub(crate) fn read_ahead() {
    capabilities::read_ahead();
    seccomp_cache::read_ahead();
}
pub use cpu_affinity::{parse_exec_cpu_affinity, set_cpu_affinity};
pub use error::SecurityError;
pub use memory_policy::memory_policy_features;
pub use oom::set_oom_score_adj;
pub use plan::{PlanOptions, SecurityPlan};
pub use seccomp::compile_elsewhere;
pub use seccomp_agent::send_seccomp_listener;
pub use seccomp_features::seccomp_features;
pub use user::override_user;
