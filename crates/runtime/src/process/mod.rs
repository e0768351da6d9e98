//! Starting processes in containers: the first one (`create`), later ones (`exec`), and staying
//! with one in the foreground (`run`, `exec` without `--detach`).

pub mod create;
pub mod error;
pub mod exec;
pub mod foreground;
pub mod handoff;
pub mod init;
pub mod program;
pub mod stdio;

pub use error::ProcessError;
pub use stdio::{Console, Stdio};
