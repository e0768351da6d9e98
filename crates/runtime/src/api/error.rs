//! The facade's one error type: each module's error as it is (so a message reads the same from
//! the library as from the hull-runtime binary), plus what only the facade refuses.

use std::path::PathBuf;

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Process(#[from] crate::process::ProcessError),
    #[error(transparent)]
    Container(#[from] crate::container::ContainerError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    #[error(transparent)]
    Cgroup(#[from] hull_cgroups::CgroupError),
    #[error(transparent)]
    Resources(#[from] crate::resource_update::ResourcesError),
    /// clone(2) used as fork is only sound with one thread: the child would get the caller's
    /// memory with other threads' locks held forever.
    #[error(
        "cannot {op} from a multi-threaded process ({threads} threads): clone is only sound in a \
         single-threaded process; call hull-runtime from one (its binary, or a helper process)"
    )]
    MultiThreaded { op: &'static str, threads: u64 },
    #[error(transparent)]
    Subreaper(Errno),
    #[error("File {} exists. Remove it first", .0.display())]
    SpecExists(PathBuf),
    #[error("writing {}", .path.display())]
    WriteSpec {
        path: PathBuf,
        source: crate::state::StateError,
    },
}
