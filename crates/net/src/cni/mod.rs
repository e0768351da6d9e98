//! `hull-cni`, a CNI 1.0 plugin doing hull's attach/detach: the environment and stdin of the
//! CNI spec in, a result or the spec's error JSON out. Accepts the reference bridge plugin's
//! keys and the portmap plugin's `runtimeConfig.portMappings`; `ipam` without a type (or of
//! type "hull") uses hull's IPAM, any other type is delegated to that plugin via CNI_PATH.
//!
//! State lives in the hull root: the config key `hullRoot`, else the environment variable
//! `HULL_ROOT`, else /var/lib/hull (`<root>/hull.db`, shared with the engine).

mod add;
mod check;
mod commands;
mod config;
mod delegate;
mod error;
mod result;

pub use commands::run;
pub use config::{Config, Env};
pub use error::CniError;

/// CNI versions this plugin speaks.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];
