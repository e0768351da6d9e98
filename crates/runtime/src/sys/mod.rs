//! Raw system calls that nix does not wrap, one small file per kernel interface, each `unsafe`
//! block justified where it is.

pub mod capset;
pub mod clone;
pub mod creds;
pub mod fds;
pub mod ioprio;
pub mod keyring;
pub mod mempolicy;
// Not all of the mount API is used here; hull-sys is to own it for every crate.
#[allow(dead_code)]
pub mod mount_api;
pub mod pty;
pub mod sched;
pub mod seccomp;
pub mod uts;
