//! What the runtime says about itself and writes for a user: the features document, a default
//! config.json, and a `--user` override of a process's user.

use std::path::Path;

use oci_spec::runtime::{Spec, User};
use serde_json::{json, Value};

use super::Error;
use crate::oci_state::OCI_VERSION;

/// The features this runtime implements, as the runtime-spec features document describes.
pub fn features() -> Value {
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": crate::rootfs::supported_mount_options(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": crate::security::known_capabilities(),
            "cgroup": {
                "v1": true,
                "v2": true,
                "systemd": false,
                "systemdUser": false,
                "rdma": true
            },
            "seccomp": crate::security::seccomp_features(),
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "memoryPolicy": crate::security::memory_policy_features(),
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        "annotations": {
            "io.github.hull.version": env!("CARGO_PKG_VERSION")
        }
    })
}

/// Writes runc's default config.json into `bundle` (a rootless one: user namespace, no
/// cgroups), refusing to overwrite one.
pub fn write_default_spec(bundle: &Path, rootless: bool) -> Result<(), Error> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::SpecExists(path));
    }
    let mut spec = if rootless {
        Spec::rootless(
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    } else {
        Spec::default()
    };
    spec.set_version(OCI_VERSION.to_string());
    spec.set_hostname(Some("hull".to_string()));
    if let Some(process) = spec.process_mut() {
        process.set_terminal(Some(true));
    }
    let text = serde_json::to_value(&spec)
        .and_then(|value| serde_json::to_string_pretty(&value))
        .map_err(|e| Error::WriteSpec {
            path: path.clone(),
            source: crate::state::encode("default config")(e),
        })?;
    crate::state::write_atomic(&path, text.as_bytes(), 0o644)
        .map_err(|source| Error::WriteSpec { path, source })
}

/// `base` with runc's `--user UID[:GID]` applied.
pub fn override_user(base: &User, text: &str) -> Result<User, Error> {
    Ok(crate::security::override_user(base, text)?)
}
