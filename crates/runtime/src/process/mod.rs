//! Starting processes in containers: the first one (`create`), later ones (`exec`), and staying
//! with one in the foreground (`run`, `exec` without `--detach`).

pub mod create;
pub mod error;
pub mod exec;
pub mod foreground;
pub mod handoff;
mod home;
pub mod init;
mod placing;
pub mod program;
pub mod stdio;

pub use create::{CreateOptions, Overlap};
pub use error::ProcessError;
pub use exec::{ExecOptions, Executed};
pub use stdio::{Console, Stdio};
