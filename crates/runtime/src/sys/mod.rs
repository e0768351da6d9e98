//! Raw system calls that nix does not wrap, one small file per kernel interface, each `unsafe`
//! block justified where it is.

pub mod capset;
pub mod clone;
pub mod creds;
pub mod ioprio;
pub mod keyring;
pub mod mempolicy;
pub mod pty;
pub mod sched;
pub mod seccomp;
pub mod uts;
