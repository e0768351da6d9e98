//! The one error type of the rootfs module tree: every message is a single line naming the
//! config field, mount entry or path it is about.

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The config asks for something invalid or unsupported; found before anything is created.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A system call failed while building the root file system.
    #[error("{what}: {errno}")]
    Sys { what: String, errno: Errno },
    /// A file operation failed while building the root file system.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl RootfsError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Attach a description of the failed step to a nix result.
pub(crate) trait Context<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, RootfsError>;
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, RootfsError> {
        self.map_err(|errno| RootfsError::Sys {
            what: what().into(),
            errno,
        })
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, RootfsError> {
        self.map_err(|source| RootfsError::Io {
            what: what().into(),
            source,
        })
    }
}
