//! The three steps the container's init runs, in order: prepare (mounts and /dev, before
//! pivot_root; its first mounts possibly before the process is in its cgroups), pivot,
//! finalize (read-only root, sysctl, readonly and masked paths).

use std::os::fd::AsFd;
use std::path::Path;

use hull_sys::mount_api::{mount_setattr, MountAttr, AT_EMPTY_PATH, MOUNT_ATTR_RDONLY};

use super::error::{Context, RootfsError};
use super::plan::{MountKind, RootfsPlan};
use super::resolve::Root;
use super::{devices, masked, mounts, pivot, propagation, shared, sysctl};

/// How far phase 1 got before the process was in its cgroups.
pub struct Prepared {
    root: Root,
    mounts_done: usize,
}

impl RootfsPlan {
    /// Phase 1, its first part, done while the runtime makes the process's cgroups instead of
    /// after: / made rslave and the rootfs bound onto itself, then `mounts` up to the first
    /// that belongs in the cgroups (a cgroup mount shows them; a tmpcopyup one writes pages
    /// that count against the memory cgroup of its writer; an idmapped one is left with it).
    /// None in the caller's mount namespace, where nothing is done ahead.
    pub fn prepare_before_cgroups(&self) -> Result<Option<Prepared>, RootfsError> {
        if self.inherited_mount_ns {
            return Ok(None);
        }
        propagation::prepare_root(&self.rootfs, self.root_propagation)?;
        let root = Root::open(&self.rootfs)?;
        let end = self
            .mounts
            .iter()
            .position(|m| {
                matches!(m.kind, MountKind::Cgroup) || m.opts.tmpcopyup || m.idmap.is_some()
            })
            .unwrap_or(self.mounts.len());
        mounts::mount_all(self, &root, &self.mounts[..end])?;
        Ok(Some(Prepared {
            root,
            mounts_done: end,
        }))
    }

    /// Phase 1, in the container's mount namespace, before pivot: / made rslave (or
    /// rootfsPropagation) and the rootfs bound onto itself (in the caller's: only the bind),
    /// every entry of `mounts` in order, then /dev (devices, ptmx, links, shm, an empty
    /// /dev/console for a terminal). What `prepare_before_cgroups` did (`early`) is not done
    /// again.
    pub fn prepare(&self, early: Option<Prepared>) -> Result<(), RootfsError> {
        let (root, done) = match early {
            Some(p) => (p.root, p.mounts_done),
            None => {
                if self.inherited_mount_ns {
                    shared::bind_rootfs(&self.rootfs)?;
                } else {
                    propagation::prepare_root(&self.rootfs, self.root_propagation)?;
                }
                (Root::open(&self.rootfs)?, 0)
            }
        };
        mounts::mount_all(self, &root, &self.mounts[done..])?;
        devices::setup_dev(self, &root)
    }

    /// Phase 2: pivot_root (or MS_MOVE + chroot with no_pivot, or chroot in the caller's mount
    /// namespace); the cwd ends at the new /.
    pub fn pivot(&self) -> Result<(), RootfsError> {
        if self.inherited_mount_ns {
            shared::enter(&self.rootfs)?;
        } else if self.opts.no_pivot {
            pivot::move_root(&self.rootfs)?;
        } else {
            pivot::pivot_root(&self.rootfs)?;
        }
        propagation::after_pivot(self.root_propagation)
    }

    /// Phase 3, after pivot (and after the console is bound on /dev/console): a read-only /dev
    /// and root, linux.sysctl, readonlyPaths, maskedPaths.
    pub fn finalize(&self) -> Result<(), RootfsError> {
        let root = Root::open(Path::new("/"))?;
        let ro = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY,
            ..MountAttr::default()
        };
        for m in self.mounts.iter().filter(|m| m.defer_ro) {
            let fd = root
                .resolve(&m.destination)
                .ctx(|| format!("{}: resolve", m.field))?;
            mount_setattr(fd.as_fd(), "", AT_EMPTY_PATH, &ro)
                .ctx(|| format!("{}: make read-only", m.field))?;
        }
        if self.readonly {
            mount_setattr(root.fd(), "", AT_EMPTY_PATH, &ro)
                .ctx(|| "root.readonly: remount / read-only")?;
        }
        sysctl::apply(&self.sysctl)?;
        for p in &self.readonly_paths {
            masked::readonly_path(&root, p)?;
        }
        if !self.masked_paths.is_empty() {
            let null = masked::dev_null(&root)?;
            for p in &self.masked_paths {
                masked::mask_path(&root, p, null.as_fd())?;
            }
        }
        Ok(())
    }
}
