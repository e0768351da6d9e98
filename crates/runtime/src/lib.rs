//! hull-runtime: an OCI runtime. A bundle (config.json + root file system) becomes a process
//! isolated by namespaces, placed in a cgroup, on its own root, with runc's lifecycle
//! (create, start, kill, delete) and command line.
//!
//! The public API is the facade below ([`Runtime`], [`Container`] and their options); the
//! modules behind it are private. Run a container to exit, its output into a log file:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hull_runtime::{CreateOptions, Runtime, Stdio};
//!
//! let log = std::fs::File::create("/tmp/web.log")?;
//! let mut opts = CreateOptions::new("web", "/tmp/bundle");
//! opts.stdio = Stdio::Fds {
//!     stdin: std::fs::File::open("/dev/null")?.into(),
//!     stdout: log.try_clone()?.into(),
//!     stderr: log.into(),
//! };
//! let status = Runtime::new("/run/hull-runtime").run(opts, false, &mut |w| eprintln!("{w}"))?;
//! # let _ = status;
//! # Ok(())
//! # }
//! ```

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
mod resource_update;
mod rootfs;
mod security;
mod spec;
mod state;
mod sync;
mod sys;

pub use api::{
    features, override_user, parse_resources, read_host_ahead, write_default_spec, Container,
    Created, Error, Runtime, Watch,
};
pub use container::parse_signal;
pub use oci_state::{now_rfc3339, OciState, OCI_VERSION};
pub use process::foreground::{DetachFilter, Input, Waited};
pub use process::{Console, CreateOptions, ExecOptions, Executed, Overlap, Stdio};
/// The capability names this kernel knows, and those of them this process can still grant
/// (what `--cap-add ALL` and `--privileged` give).
pub use security::{grantable_capabilities, known_capabilities};
/// The one way the runtime reads OCI JSON (a config, a process): see `spec::decode`.
pub use spec::{decode as decode_oci_json, Config};
pub use state::Status;
