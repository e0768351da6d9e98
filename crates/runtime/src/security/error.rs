//! The one error type of the security module; each message names the config field and value.

use std::io;
use std::path::PathBuf;

/// Why a security setting could not be planned or applied.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("{set}: {name} is not a capability this kernel knows (its last is {last})")]
    UnknownCapability {
        set: String,
        name: String,
        last: String,
    },
    #[error("{set}: {name} is not in this host's capability bounding set, so no process here can hold it")]
    CapabilityNotInBounding { set: String, name: String },
    #[error("process.capabilities.{set}: {name} must also be in {needs}")]
    CapabilityNotInSet {
        set: &'static str,
        name: String,
        needs: &'static str,
    },
    #[error("process.capabilities: {step}: {source}")]
    CapabilityApply { step: String, source: io::Error },

    #[error("process.rlimits: {kind} appears more than once")]
    DuplicateRlimit { kind: String },
    #[error("process.rlimits: {kind} soft limit {soft} is above its hard limit {hard}")]
    RlimitSoftAboveHard { kind: String, soft: u64, hard: u64 },
    #[error("process.rlimits: {kind} hard limit {hard} is above this host's hard limit {host_hard}, and raising it needs CAP_SYS_RESOURCE, which this process lacks")]
    RlimitAboveHost {
        kind: String,
        hard: u64,
        host_hard: u64,
    },
    #[error("process.rlimits: setting {kind} to soft {soft}, hard {hard}: {source}")]
    Rlimit {
        kind: String,
        soft: u64,
        hard: u64,
        source: io::Error,
    },

    #[error("process.ioPriority.priority: {0} is outside 0..=7")]
    IoPriorityRange(i64),
    #[error("process.ioPriority: ioprio_set({class}, {priority}): {source}")]
    IoPriority {
        class: String,
        priority: i64,
        source: io::Error,
    },
    #[error("process.scheduler: {0}")]
    SchedulerInvalid(String),
    #[error("process.scheduler: sched_setattr({policy}): {source}")]
    Scheduler { policy: String, source: io::Error },

    #[error("{field} {value:?}: {why}")]
    CpuAffinity {
        field: String,
        value: String,
        why: String,
    },
    #[error("process.execCPUAffinity: sched_setaffinity({pid}): {source}")]
    CpuAffinityApply { pid: i32, source: io::Error },

    #[error("{field}: {why}")]
    MemoryPolicy { field: String, why: String },
    #[error("linux.memoryPolicy: set_mempolicy({mode}): {source}")]
    MemoryPolicyApply { mode: String, source: io::Error },

    #[error("linux.personality.flags: {0:?} is not a personality flag")]
    PersonalityFlag(String),
    #[error("linux.personality: personality({domain}): {source}")]
    Personality { domain: String, source: io::Error },

    #[error("process.{field} {value:?}: {lsm} is not enabled on this host")]
    LsmAbsent {
        field: &'static str,
        value: String,
        lsm: &'static str,
    },
    #[error("process.{field} {value:?}: writing {path}: {source}")]
    LsmApply {
        field: &'static str,
        value: String,
        path: PathBuf,
        source: io::Error,
    },

    #[error("linux.seccomp.{field}: {message}")]
    Seccomp { field: String, message: String },
    #[error("linux.seccomp: compiling the filter: {0}")]
    SeccompCompile(String),
    #[error("linux.seccomp: loading the filter (flags {flags:#x}): {source}")]
    SeccompLoad { flags: u32, source: io::Error },
    #[error("linux.seccomp.listenerPath {path:?}: sending the listener: {source}")]
    SeccompListener { path: PathBuf, source: io::Error },
    #[error("process.noNewPrivileges: prctl(PR_SET_NO_NEW_PRIVS): {0}")]
    NoNewPrivs(io::Error),

    #[error("process.user: {0}")]
    UserInvalid(String),
    #[error("process.user: {step}: {source}")]
    User { step: String, source: io::Error },
    #[error("--user {0:?}: expected UID[:GID] with numeric ids")]
    ParseUser(String),

    #[error("process.oomScoreAdj: {0} is outside -1000..=1000")]
    OomRange(i32),
    #[error("process.oomScoreAdj: lowering it to {value} (now {current}) needs CAP_SYS_RESOURCE, which this process lacks")]
    OomDenied { value: i32, current: String },
    #[error("process.oomScoreAdj: writing {value} to {path}: {source}")]
    Oom {
        value: i32,
        path: PathBuf,
        source: io::Error,
    },

    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

/// Reads a small kernel file, naming it in the error.
pub(super) fn read_to_string(path: &str) -> Result<String, SecurityError> {
    hull_sys::procfs::read_pseudo(path).map_err(|source| SecurityError::Read {
        path: path.into(),
        source,
    })
}

/// The name a config value has in config.json (its serde form), e.g. "RLIMIT_NOFILE".
pub(super) fn spec_name<T: serde::Serialize + std::fmt::Debug>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{v:?}"))
}
