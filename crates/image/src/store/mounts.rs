//! `image mount`: a read-only overlay of an image's layers, to look at its files before any
//! container exists (as `podman image mount`). Mounts are counted in hull.db, so that across
//! hull processes only the last `image unmount` unmounts (also as podman's).

use std::borrow::Borrow;
use std::path::PathBuf;

use rusqlite::Connection;

use super::{io_err, ImageStore, StoreError};
use crate::digest::Digest;
use crate::overlay::{self, MountApi, Overlay};

impl<C: Borrow<Connection>> ImageStore<C> {
    fn mount_point(&self, manifest: &Digest) -> PathBuf {
        self.root().join("mounts").join(manifest.hex())
    }

    /// Mounts the image read-only (or counts one more user of its mount) and returns the
    /// mount point.
    pub fn mount_image(&self, image: &str) -> Result<PathBuf, StoreError> {
        // Exclusive: the kernel's mount and the count change together, and a concurrent rmi
        // cannot delete the layers in between.
        let _lock = self.lock_exclusive()?;
        let rootfs = self.rootfs_for(image)?;
        let target = self.mount_point(&rootfs.manifest);
        let key = rootfs.manifest.to_string();
        if overlay::is_mounted(&target) {
            self.db.add_mount(&key)?;
            return Ok(target);
        }
        std::fs::create_dir_all(&target)
            .map_err(io_err(format!("creating {}", target.display())))?;
        let mut lowers = rootfs.lowers;
        // overlayfs wants two lowers without an upper; an empty dir at the bottom changes
        // nothing but still lets whiteouts of a single layer hide their names.
        lowers.push(self.root().join("empty"));
        let ov = Overlay {
            lowers,
            upper: None,
            source: format!("hull-image-{}", rootfs.manifest.short()),
            target: target.clone(),
            readonly: true,
            inert: true,
            volatile: false,
        };
        if let Err(e) = overlay::mount(&ov, MountApi::Auto) {
            let _ = std::fs::remove_dir(&target);
            return Err(e.into());
        }
        // A count left by a mount a reboot undid starts again from one.
        if let Err(e) = self.db.set_mount(&key, 1) {
            let _ = overlay::unmount(&target);
            let _ = std::fs::remove_dir(&target);
            return Err(e.into());
        }
        Ok(target)
    }

    /// Drops one `image mount` of the image (every one with `force`); the last one unmounts.
    /// `Ok(None)` if it was not mounted, else the mounts left.
    pub fn unmount_image(&self, image: &str, force: bool) -> Result<Option<u64>, StoreError> {
        let _lock = self.lock_exclusive()?;
        let manifest = self.resolve(image)?;
        let target = self.mount_point(&manifest);
        let key = manifest.to_string();
        if !overlay::is_mounted(&target) {
            self.db.set_mount(&key, 0)?;
            let _ = std::fs::remove_dir(&target);
            return Ok(None);
        }
        let left = if force {
            0
        } else {
            self.db.mount_count(&key)?.saturating_sub(1)
        };
        if left > 0 {
            self.db.set_mount(&key, left)?;
            return Ok(Some(left));
        }
        self.force_unmount(&manifest)?;
        Ok(Some(0))
    }

    /// Unmounts an image's mount whatever its count (rmi --force); the caller holds the lock.
    pub(super) fn force_unmount(&self, manifest: &Digest) -> Result<(), StoreError> {
        let target = self.mount_point(manifest);
        overlay::unmount(&target)?;
        self.db.set_mount(&manifest.to_string(), 0)?;
        match std::fs::remove_dir(&target) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_err(format!("removing {}", target.display()))(e))
            }
            _ => Ok(()),
        }
    }
}
