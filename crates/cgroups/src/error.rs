//! The one error type of this crate; every message reads as one line naming the field or file.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Bad or unsupported input; `field` is the config.json path (e.g. `linux.resources.cpu.quota`).
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },

    /// A write that the kernel refused while applying `field`.
    #[error("{field}: cannot write {value:?} to {}: {source}", path.display())]
    Apply {
        field: String,
        path: PathBuf,
        value: String,
        source: io::Error,
    },

    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },

    #[error("cannot write {value:?} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },

    #[error("cannot parse {}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },

    #[error("cannot create cgroup {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },

    #[error("cannot remove cgroup {}: {source}", path.display())]
    Remove { path: PathBuf, source: io::Error },

    #[error("no cgroup filesystem is mounted (none in /proc/self/mountinfo)")]
    NotMounted,

    #[error("cgroup {} did not reach {state} within {secs}s", path.display())]
    Timeout {
        path: PathBuf,
        state: &'static str,
        secs: u64,
    },

    #[error("{op}: {source}")]
    Sys { op: String, source: io::Error },
}

impl CgroupError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CgroupError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn sys(op: impl Into<String>, source: impl Into<io::Error>) -> Self {
        CgroupError::Sys {
            op: op.into(),
            source: source.into(),
        }
    }
}
