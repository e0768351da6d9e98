//! Raw syscall wrappers that nix 0.32 lacks; each file owns one kernel interface.

pub mod capset;
pub mod creds;
pub mod ioprio;
pub mod sched;
pub mod seccomp;
