//! hull-runtime: an OCI runtime with runc's command line.

pub mod rootfs;
pub mod sys;
