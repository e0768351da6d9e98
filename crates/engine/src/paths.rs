//! Where the engine keeps things under its root (a private directory: `hull_db::open`):
//! `containers/<id>/` (config.json, the overlay's `merged` root, `upper`, `work`, hosts,
//! hostname and resolv.conf, `ctr.log`, the `attach` socket), the runtime's state directory,
//! `mount-targets/` (the layer under every container's root, [`crate::mount_targets`]),
//! `trash/` (removed containers' files, deleted off the foreground path), `spare/` (removed
//! containers' directories emptied for the next ones, [`crate::spare`]), `cache/` (derived
//! files, [`crate::seccomp_cache`]), and `vm/` (the jails of `hull vm run`: their runtime
//! state and bundles).

use std::path::{Path, PathBuf};

pub fn container_dir(root: &Path, id: &str) -> PathBuf {
    root.join("containers").join(id)
}

/// Directories of removed containers whose files are still being deleted.
pub fn trash_dir(root: &Path) -> PathBuf {
    root.join("trash")
}

/// What the engine derives from slower inputs and keeps across runs (the seccomp sections of
/// [`crate::seccomp_cache`]): any file in it may be removed.
pub fn cache_dir(root: &Path) -> PathBuf {
    root.join("cache")
}

/// hull-runtime's state (its `--root`) for the engine's containers.
pub fn runtime_root(root: &Path) -> PathBuf {
    root.join("runtime")
}

/// Where the container's hosts, hostname and resolv.conf are: in its directory itself (one
/// directory fewer to make and remove per container), or in `etc/` for a container made by a
/// hull before that, whose config.json names them there.
pub fn etc_dir(root: &Path, id: &str) -> PathBuf {
    let dir = container_dir(root, id);
    let old = dir.join("etc");
    if old.is_dir() {
        old
    } else {
        dir
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etc_files_in_the_container_dir_unless_an_older_hull_made_etc() {
        let root = std::env::temp_dir().join(format!("hull-paths-etc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(etc_dir(&root, "c1"), container_dir(&root, "c1"));
        std::fs::create_dir_all(container_dir(&root, "c2").join("etc")).unwrap();
        assert_eq!(etc_dir(&root, "c2"), container_dir(&root, "c2").join("etc"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
