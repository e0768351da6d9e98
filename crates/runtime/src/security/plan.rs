//! [`SecurityPlan`]: every security setting of one process, validated before clone and applied
//! in runc's order as the last steps before execve.

use std::os::fd::OwnedFd;

use oci_spec::runtime::{Linux, Process};

use super::capabilities::CapabilityPlan;
use super::error::SecurityError;
use super::lsm::LsmPlan;
use super::memory_policy::MemoryPolicyPlan;
use super::personality::PersonalityPlan;
use super::rlimits::RlimitPlan;
use super::scheduling::{IoPriorityPlan, SchedulerPlan};
use super::seccomp::SeccompPlan;
use super::user::UserPlan;

/// How the process will be started, beyond what the config says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// The process runs in a new or joined user namespace: ids are checked against the config's
    /// mappings and setgroups may be denied there.
    pub in_user_namespace: bool,
    /// `exec --cap` additions (added to bounding, effective, permitted, and to ambient where
    /// inheritable has them).
    pub extra_caps: Vec<String>,
    /// Where compiled seccomp filters are kept between runs (None: compile every time).
    pub seccomp_cache: Option<std::path::PathBuf>,
}

/// The validated, compiled security settings of one container process.
#[derive(Debug)]
pub struct SecurityPlan {
    rlimits: RlimitPlan,
    io_priority: Option<IoPriorityPlan>,
    scheduler: Option<SchedulerPlan>,
    personality: Option<PersonalityPlan>,
    memory_policy: Option<MemoryPolicyPlan>,
    lsm: LsmPlan,
    no_new_privileges: bool,
    seccomp: Option<SeccompPlan>,
    capabilities: CapabilityPlan,
    user: UserPlan,
}

impl SecurityPlan {
    /// Validates every setting against this host and compiles the seccomp filter. Runs in the
    /// runtime before anything is created; the first bad field is the error.
    pub fn new(
        process: &Process,
        linux: Option<&Linux>,
        opts: PlanOptions,
    ) -> Result<Self, SecurityError> {
        Ok(Self {
            rlimits: RlimitPlan::new(process.rlimits().as_deref().unwrap_or_default())?,
            io_priority: process
                .io_priority()
                .as_ref()
                .map(IoPriorityPlan::new)
                .transpose()?,
            scheduler: process
                .scheduler()
                .as_ref()
                .map(SchedulerPlan::new)
                .transpose()?,
            personality: linux
                .and_then(|l| l.personality().as_ref())
                .map(PersonalityPlan::new)
                .transpose()?,
            memory_policy: linux
                .and_then(|l| l.memory_policy().as_ref())
                .map(MemoryPolicyPlan::new)
                .transpose()?,
            lsm: LsmPlan::new(
                process.apparmor_profile().as_deref(),
                process.selinux_label().as_deref(),
            )?,
            no_new_privileges: process.no_new_privileges().unwrap_or(false),
            seccomp: linux
                .and_then(|l| l.seccomp().as_ref())
                .map(|s| SeccompPlan::new(s, opts.seccomp_cache.as_deref(), true))
                .transpose()?,
            capabilities: CapabilityPlan::new(process.capabilities().as_ref(), &opts.extra_caps)?,
            user: UserPlan::new(process.user(), linux, opts.in_user_namespace)?,
        })
    }

    /// The last steps before execve, in the container process (single-threaded, after
    /// pivot_root, with the container's /proc): rlimits, ioPriority, scheduler, personality,
    /// memory policy, LSM labels, no_new_privs, seccomp (here if noNewPrivileges is false: it needs
    /// CAP_SYS_ADMIN), bounding set, user ids, umask, capabilities, seccomp (here if
    /// noNewPrivileges is true: as late as possible). Returns the seccomp listener when a rule
    /// uses SCMP_ACT_NOTIFY; the caller passes it to the runtime for `listener_path()`.
    pub fn apply(&self) -> Result<Option<OwnedFd>, SecurityError> {
        self.rlimits.apply()?;
        if let Some(p) = &self.io_priority {
            p.apply()?;
        }
        if let Some(s) = &self.scheduler {
            s.apply()?;
        }
        if let Some(p) = &self.personality {
            p.apply()?;
        }
        if let Some(p) = &self.memory_policy {
            p.apply()?;
        }
        self.lsm.apply()?;
        if self.no_new_privileges {
            nix::sys::prctl::set_no_new_privs().map_err(|e| SecurityError::NoNewPrivs(e.into()))?;
        }
        let setgroups = self.user.setgroups_allowed()?;
        let mut listener = None;
        if !self.no_new_privileges {
            listener = self.load_seccomp()?;
        }
        self.capabilities.apply_bounding()?;
        self.switch_user(setgroups)?;
        self.capabilities.apply_sets()?;
        if self.no_new_privileges {
            listener = self.load_seccomp()?;
        }
        Ok(listener)
    }

    fn load_seccomp(&self) -> Result<Option<OwnedFd>, SecurityError> {
        self.seccomp.as_ref().map_or(Ok(None), SeccompPlan::load)
    }

    /// Keeps the permitted set across the switch away from uid 0, then clears the flag so the
    /// program exec'd does not inherit it.
    fn switch_user(&self, setgroups: bool) -> Result<(), SecurityError> {
        let keepcaps = |on: bool| {
            nix::sys::prctl::set_keepcaps(on).map_err(|e| SecurityError::CapabilityApply {
                step: format!("prctl(PR_SET_KEEPCAPS, {})", u8::from(on)),
                source: e.into(),
            })
        };
        keepcaps(true)?;
        self.user.apply_ids(setgroups)?;
        keepcaps(false)?;
        self.user.apply_umask();
        Ok(())
    }

    /// Where the runtime sends the seccomp listener (`linux.seccomp.listenerPath`).
    #[cfg(test)]
    pub fn seccomp_listener_path(&self) -> Option<&std::path::PathBuf> {
        self.seccomp.as_ref().and_then(SeccompPlan::listener_path)
    }

    /// `linux.seccomp.listenerMetadata`, sent along with the listener.
    #[cfg(test)]
    pub fn seccomp_listener_metadata(&self) -> Option<&str> {
        self.seccomp
            .as_ref()
            .and_then(SeccompPlan::listener_metadata)
    }

    /// What the runtime should log as warnings: settings the kernel cannot honour that runc
    /// also skips with a warning (unknown syscall names, unraisable ambient capabilities).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let ambient = self.capabilities.skipped_ambient();
        if !ambient.is_empty() {
            out.push(format!(
                "process.capabilities.ambient: skipping {} (not in both permitted and inheritable, so the kernel cannot raise them)",
                ambient.join(", ")
            ));
        }
        let syscalls = self.ignored_syscalls();
        if !syscalls.is_empty() {
            out.push(format!(
                "linux.seccomp.syscalls: ignoring names libseccomp does not know: {}",
                syscalls.join(", ")
            ));
        }
        out
    }

    /// Syscall names libseccomp does not know, skipped as runc skips them (for a debug log).
    pub fn ignored_syscalls(&self) -> &[String] {
        self.seccomp
            .as_ref()
            .map_or(&[], SeccompPlan::ignored_syscalls)
    }
}
