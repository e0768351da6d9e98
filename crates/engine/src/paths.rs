//! Where the engine keeps things under its root: `containers/<id>/` (config.json, the overlay's
//! `merged` root, `upper`, `work`, `etc/` with hosts, hostname and resolv.conf, `ctr.log`, the
//! `attach` socket), the runtime's state directory, `mount-targets/` (the layer under every
//! container's root, [`crate::mount_targets`]), `trash/` (removed containers' files, deleted
//! off the foreground path), and `vm/` (the jails of `hull vm run`: their runtime state and
//! bundles).

use std::path::{Path, PathBuf};

pub fn container_dir(root: &Path, id: &str) -> PathBuf {
    root.join("containers").join(id)
}

/// Directories of removed containers whose files are still being deleted.
pub fn trash_dir(root: &Path) -> PathBuf {
    root.join("trash")
}

/// hull-runtime's state (its `--root`) for the engine's containers.
pub fn runtime_root(root: &Path) -> PathBuf {
    root.join("runtime")
}

pub fn etc_dir(root: &Path, id: &str) -> PathBuf {
    container_dir(root, id).join("etc")
}

pub fn log_file(root: &Path, id: &str) -> PathBuf {
    container_dir(root, id).join("ctr.log")
}

/// The unix socket where the container's monitor serves attach clients.
pub fn attach_socket(root: &Path, id: &str) -> PathBuf {
    container_dir(root, id).join("attach")
}

/// hull-runtime's state for the jails of `hull vm run`'s VMMs.
pub fn vm_runtime_root(root: &Path) -> PathBuf {
    root.join("vm").join("runtime")
}

/// The jails' bundles, one directory per running VMM.
pub fn vm_bundles_dir(root: &Path) -> PathBuf {
    root.join("vm").join("bundles")
}
