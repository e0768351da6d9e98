//! The engine's one error type. Each message reads as one line to a user; [`EngineError::exit_code`]
//! maps it to docker's exit codes.

/// docker's exit code for an error of the engine itself.
pub const EXIT_ENGINE: i32 = 125;
/// docker's exit code when the command exists but cannot be invoked.
pub const EXIT_CANNOT_INVOKE: i32 = 126;
/// docker's exit code when the command is not found.
pub const EXIT_NOT_FOUND: i32 = 127;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error(transparent)]
    Db(#[from] hull_db::DbError),
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Image(#[from] hull_image::StoreError),
    #[error(transparent)]
    Overlay(#[from] hull_image::overlay::OverlayError),
    #[error(transparent)]
    Net(#[from] hull_net::error::NetError),
    #[error(transparent)]
    Port(#[from] hull_net::ports::PortError),
    #[error(transparent)]
    Runtime(#[from] hull_runtime::Error),
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    #[error("container reference {0:?} is ambiguous: it is the prefix of several ids")]
    Ambiguous(String),
    #[error("the container name {name:?} is already in use by container {id}: remove it or choose another name")]
    NameInUse { name: String, id: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0} is not supported yet")]
    Unsupported(&'static str),
    #[error("no such volume: {0}")]
    NoSuchVolume(String),
    #[error("remove {name}: volume is in use - [{containers}]")]
    VolumeInUse { name: String, containers: String },
    #[error("container {0} is running: stop it first or use rm -f")]
    Running(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("container {id} is {state}: cannot {op} it")]
    BadState {
        id: String,
        state: String,
        op: &'static str,
    },
    #[error("{what}: {err}")]
    Io { what: String, err: std::io::Error },
    #[error("{what}: {err}")]
    Sys { what: String, err: nix::Error },
    /// The container's command could not be run (not found: 127, not executable: 126).
    #[error("{message}")]
    Exec { code: i32, message: String },
    #[error("monitor of container {id}: {message}")]
    Monitor { id: String, message: String },
}

impl EngineError {
    /// docker's exit code for this error: 126 or 127 for a command that cannot run, else 125.
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Exec { code, .. } => *code,
            _ => EXIT_ENGINE,
        }
    }

    /// A runtime error, as docker reports it: 126 or 127 when the command could not be run.
    pub(crate) fn from_runtime(e: hull_runtime::Error) -> EngineError {
        let message = e.to_string();
        match exec_code(&message) {
            Some(code) => EngineError::Exec { code, message },
            None => EngineError::Runtime(e),
        }
    }

    /// The reader of this command's output went away (`hull logs -f | head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, EngineError::Io { err, .. } if err.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
        let what = what.into();
        move |err| EngineError::Io { what, err }
    }

    pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> EngineError {
        let what = what.into();
        move |err| EngineError::Sys { what, err }
    }
}

/// The exit code docker gives when the runtime could not run the command: its message says
/// whether the program was missing or not executable (the runtime's own error type is private).
pub fn exec_code(message: &str) -> Option<i32> {
    if !message.starts_with("exec") && !message.contains(": exec") {
        return None;
    }
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        Some(EXIT_NOT_FOUND)
    } else if message.contains("permission denied") {
        Some(EXIT_CANNOT_INVOKE)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_failures_map_to_docker_codes() {
        assert_eq!(
            exec_code("exec: \"nope\": executable file not found in $PATH"),
            Some(127)
        );
        assert_eq!(
            exec_code("exec: \"/etc/passwd\": permission denied"),
            Some(126)
        );
        assert_eq!(
            exec_code("exec: \"/nope\": no such file or directory"),
            Some(127)
        );
        assert_eq!(exec_code("cgroup: no such controller"), None);
    }
}
