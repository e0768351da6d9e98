//! hull-sys: the one home of the raw kernel wrappers that more than one hull crate needs, and of
//! the rules every crate must agree on (the container-id rule). Crates above it keep no copies;
//! what only one crate calls stays in that crate's own `sys` module.

pub mod ahead;
pub mod apart;
pub mod cache_dir;
pub mod fd;
pub mod id;
pub mod mount_api;
pub mod mountinfo;
pub mod overwrite;
pub mod pidfd;
pub mod procfs;
pub mod pty;
pub mod remove;
pub mod resolve;
pub mod users;
