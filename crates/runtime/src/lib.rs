//! hull-runtime: an OCI runtime. A bundle (config.json + root file system) becomes a process
//! isolated by namespaces, placed in a cgroup, on its own root, with runc's lifecycle
//! (create, start, kill, delete) and command line.
//!
//! The public API is the facade below ([`Runtime`], [`Container`] and their options); the
//! modules behind it are private.

mod api;
mod cgroup_rules;
mod console;
mod container;
mod hooks;
mod namespaces;
mod oci_state;
mod process;
mod procfs;
mod resource_keys;
mod rootfs;
mod security;
mod spec;
mod state;
mod sync;
mod sys;

pub use api::{
    features, override_user, write_default_spec, Container, CreateOptions, Created, Error,
    ExecOptions, Executed, Runtime, Watch,
};
pub use container::parse_signal;
pub use oci_state::{now_rfc3339, OciState, OCI_VERSION};
pub use process::{Console, Stdio};
pub use state::Status;
