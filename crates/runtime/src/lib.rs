//! hull-runtime: an OCI runtime. A bundle (config.json + root file system) becomes a process
//! isolated by namespaces, placed in a cgroup, on its own root, with runc's lifecycle
//! (create, start, kill, delete) and command line.

pub mod cgroup_rules;
pub mod console;
pub mod container;
pub mod hooks;
pub mod namespaces;
pub mod oci_state;
pub mod process;
pub mod procfs;
pub mod resource_keys;
pub mod rootfs;
pub mod security;
pub mod spec;
pub mod state;
pub mod sync;
pub mod sys;
