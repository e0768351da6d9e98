//! `-u USER[:GROUP]` and the image's User: hull-sys's rule (shared with hull-guest), its
//! errors as the engine's.

use crate::error::EngineError;
pub use hull_sys::users::ResolvedUser;

/// Resolves `spec` (`user`, `uid`, `user:group`, `uid:gid`; empty is root) against the
/// contents of the image's passwd and group files (empty when the image has none).
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<ResolvedUser, EngineError> {
    hull_sys::users::resolve(spec, passwd, group).map_err(|e| EngineError::Invalid(e.to_string()))
}
