//! `image mount`: a read-only overlay of an image's layers, to look at its files before any
//! container exists (as `podman image mount`).

use std::path::PathBuf;

use super::{io_err, ImageStore, StoreError};
use crate::overlay::{self, MountApi, Overlay};

impl ImageStore {
    fn mount_point(&self, image: &str) -> Result<(PathBuf, String), StoreError> {
        let m = self.resolve(image)?;
        Ok((
            self.root().join("mounts").join(m.hex()),
            m.short().to_string(),
        ))
    }

    /// Mounts the image read-only (once) and returns the mount point.
    pub fn mount_image(&self, image: &str) -> Result<PathBuf, StoreError> {
        let rootfs = self.rootfs_for(image)?;
        let (target, short) = self.mount_point(image)?;
        if overlay::is_mounted(&target) {
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
            source: format!("hull-image-{short}"),
            target: target.clone(),
            readonly: true,
            inert: true,
        };
        if let Err(e) = overlay::mount(&ov, MountApi::Auto) {
            let _ = std::fs::remove_dir(&target);
            return Err(e.into());
        }
        Ok(target)
    }

    /// Unmounts an image mounted by [`ImageStore::mount_image`]; `false` if it was not.
    pub fn unmount_image(&self, image: &str) -> Result<bool, StoreError> {
        let (target, _) = self.mount_point(image)?;
        let was = overlay::unmount(&target)?;
        match std::fs::remove_dir(&target) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_err(format!("removing {}", target.display()))(e))
            }
            _ => {}
        }
        Ok(was)
    }
}
