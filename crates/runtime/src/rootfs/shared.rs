//! A rootfs in the caller's mount namespace (the config lists none, which the spec says is
//! shared with the caller): runc sets it up there and enters it by chroot. The rootfs is bound
//! onto itself and made rprivate, so what the container mounts under it reaches no other
//! namespace; the caller's / and the rootfs's parent keep their propagation (runc makes the
//! caller's / rslave, which would change the host's table); pivot_root, which would move every
//! process of the namespace, is not used, nor --no-pivot's MS_MOVE. `delete` detaches that bind
//! and all under it, so the caller's mount table ends as it began.

use std::path::{Path, PathBuf};

use hull_sys::mountinfo;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, chroot};
use serde::{Deserialize, Serialize};

use super::error::{Context, RootfsError};
use super::propagation;

const NONE: Option<&str> = None;

/// In the container's init, before any mount: the rootfs bound onto itself, privately.
pub(super) fn bind_rootfs(rootfs: &Path) -> Result<(), RootfsError> {
    propagation::bind_onto_itself(rootfs)?;
    mount(
        NONE,
        rootfs,
        NONE,
        MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        NONE,
    )
    .ctx(|| format!("make rootfs {} rprivate", rootfs.display()))
}

/// In the container's init, in place of pivot_root.
pub(super) fn enter(rootfs: &Path) -> Result<(), RootfsError> {
    chdir(rootfs).ctx(|| format!("chdir to rootfs {}", rootfs.display()))?;
    chroot(".").ctx(|| "chroot to the rootfs")?;
    chdir("/").ctx(|| "chdir /")
}

/// What `delete` needs to take the container's mounts out of the caller's namespace, recorded
/// in the state before the container's init exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedRootfs {
    pub rootfs: PathBuf,
    /// The mount on top at the rootfs before the container (None: it was no mount point).
    pub below: Option<u32>,
}

impl SharedRootfs {
    /// In the runtime, before the clone.
    pub fn record(rootfs: &Path) -> Result<SharedRootfs, RootfsError> {
        Ok(SharedRootfs {
            rootfs: rootfs.to_path_buf(),
            below: top_mount(rootfs)?,
        })
    }

    /// Detaches the container's bind of the rootfs, and every mount under it, if it was made.
    pub fn release(&self) -> Result<(), RootfsError> {
        let top = top_mount(&self.rootfs)?;
        if top.is_none() || top == self.below {
            return Ok(());
        }
        umount2(&self.rootfs, MntFlags::MNT_DETACH)
            .ctx(|| format!("unmount the container's rootfs {}", self.rootfs.display()))
    }
}

/// The id of the topmost mount at `path` in this namespace: the one at `path` that no other
/// mount at `path` is stacked on.
fn top_mount(path: &Path) -> Result<Option<u32>, RootfsError> {
    let info = mountinfo::read_self().ctx(|| "read /proc/self/mountinfo")?;
    let at_path: Vec<(u32, u32)> = mountinfo::parse(&info)
        .filter_map(Result::ok)
        .filter(|m| m.mount_point() == path)
        .map(|m| (m.mount_id, m.parent_id))
        .collect();
    Ok(at_path
        .iter()
        .map(|&(id, _)| id)
        .find(|&id| !at_path.iter().any(|&(_, parent)| parent == id)))
}
