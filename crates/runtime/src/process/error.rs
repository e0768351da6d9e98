//! The one error type of process creation: each step's own error, or a system call that failed.

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Namespace(#[from] crate::namespaces::NamespaceError),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    #[error(transparent)]
    Cgroup(#[from] hull_cgroups::CgroupError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    #[error(transparent)]
    Program(#[from] crate::process::program::ProgramError),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    /// The container process reported this and exited.
    #[error("{0}")]
    Child(String),
    /// The caller's work during the create failed (its `Overlap`).
    #[error("{0}")]
    Alongside(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    Sys { what: String, source: Errno },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// `map_err(sys("what"))` for a failed system call.
pub fn sys(what: impl Into<String>) -> impl FnOnce(Errno) -> ProcessError {
    let what = what.into();
    move |source| ProcessError::Sys { what, source }
}

pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProcessError {
    let what = what.into();
    move |source| ProcessError::Io { what, source }
}
