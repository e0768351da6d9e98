//! Raw system calls that nix does not wrap, one small file per mechanism, each `unsafe` block
//! justified where it is.

pub mod mount_api;
