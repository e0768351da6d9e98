//! A stopped container's volumes and bind mounts for `cp`, as docker mounts them for a copy:
//! each bind mount of its config.json (named and anonymous volumes, `-v` host dirs, its
//! /etc/hosts and friends) cloned with open_tree and attached inside the copy's own detached
//! overlay tree, at its destination resolved in that root. Nothing is attached in any mount
//! namespace, so the tree goes with the copy's last descriptor. /dev, /proc and /sys are left
//! out (devices and kernel file systems are not the container's files).

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use hull_sys::mount_api::{
    mount_setattr, move_mount_fd, open_tree, MountAttr, AT_EMPTY_PATH, AT_RECURSIVE,
    MOUNT_ATTR_RDONLY, OPEN_TREE_CLONE,
};
use hull_sys::resolve::open_in_root;
use nix::fcntl::OFlag;
use serde_json::Value;

use crate::EngineError;

/// One bind mount of config.json.
struct Bind<'a> {
    source: &'a str,
    destination: &'a str,
    recursive: bool,
    readonly: bool,
}

fn binds(config: &Value) -> Vec<Bind<'_>> {
    config["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let options: Vec<&str> = m["options"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let is_bind =
                m["type"] == "bind" || options.iter().any(|o| *o == "bind" || *o == "rbind");
            let destination = m["destination"].as_str()?;
            let system = ["/dev", "/proc", "/sys"]
                .iter()
                .any(|d| Path::new(destination).starts_with(d));
            (is_bind && !system).then_some(Bind {
                source: m["source"].as_str()?,
                destination,
                recursive: options.contains(&"rbind"),
                readonly: options.contains(&"ro"),
            })
        })
        .collect()
}

/// Attaches the container's bind mounts (config.json at `config`) inside the tree of `root`.
/// A destination the container's root does not have yet is created as a directory (the
/// runtime would make it at start); a file destination that is missing is skipped. A kernel
/// that cannot mount inside a detached tree (before Linux 6.15) gets the copy without them,
/// and a warning saying so.
pub(super) fn attach(root: BorrowedFd<'_>, config: &Path) -> Result<Option<String>, EngineError> {
    let text = std::fs::read_to_string(config)
        .map_err(EngineError::io(format!("reading {}", config.display())))?;
    let config: Value = serde_json::from_str(&text)
        .map_err(|e| EngineError::Invalid(format!("{}: {e}", config.display())))?;
    for b in binds(&config) {
        let fail = |what: &str| {
            let what = format!(
                "mounting {} on {} for the copy: {what}",
                b.source, b.destination
            );
            move |e: nix::Error| EngineError::Sys { what, err: e }
        };
        let is_dir = Path::new(b.source).is_dir();
        let rel = b.destination.trim_start_matches('/');
        let target = match open_in_root(root, rel, OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) if is_dir => {
                let comps: Vec<&[u8]> = rel
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .map(str::as_bytes)
                    .collect();
                let mut tree = hull_image::unpack::LayerRoot::from_fd(
                    root.try_clone_to_owned().map_err(EngineError::io("dup"))?,
                );
                tree.dir(&comps).map_err(EngineError::io(format!(
                    "creating {} for the copy",
                    b.destination
                )))?;
                open_in_root(root, rel, OFlag::O_PATH).map_err(fail("its mount point"))?
            }
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(fail("its mount point")(e)),
        };
        let mut flags = OPEN_TREE_CLONE;
        if b.recursive {
            flags |= AT_RECURSIVE;
        }
        let cwd = nix::fcntl::open(
            ".",
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(fail("open"))?;
        let clone = open_tree(cwd.as_fd(), b.source, flags).map_err(fail("open_tree"))?;
        if b.readonly {
            let attr = MountAttr {
                attr_set: MOUNT_ATTR_RDONLY,
                attr_clr: 0,
                propagation: 0,
                userns_fd: 0,
            };
            mount_setattr(clone.as_fd(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr)
                .map_err(fail("mount_setattr ro"))?;
        }
        match move_mount_fd(clone.as_fd(), target.as_fd()) {
            Ok(()) => {}
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {
                return Ok(Some(
                    "this kernel cannot mount inside a detached mount tree (Linux 6.15 can): \
                     the stopped container's volumes and bind mounts are not part of this copy"
                        .into(),
                ))
            }
            Err(e) => return Err(fail("move_mount")(e)),
        }
    }
    Ok(None)
}
