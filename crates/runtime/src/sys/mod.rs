//! Raw system calls that nix does not wrap, one small file per mechanism, each `unsafe` block
//! justified where it is.

pub mod clone;
pub mod fds;
pub mod keyring;
pub mod pty;
pub mod uts;
