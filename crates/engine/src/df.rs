//! `system df`: the disk used by images, containers and volumes, and how much of it a prune
//! would free, in docker's rows (TYPE TOTAL ACTIVE SIZE RECLAIMABLE).

use hull_image::store::du;
use serde::Serialize;

use crate::{paths, volumes, Engine, EngineError};

/// One row of `system df`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiskRow {
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub total: usize,
    pub active: usize,
    pub size: u64,
    pub reclaimable: u64,
}

impl Engine {
    /// Images (shared layers counted once), containers (their writable layers), local volumes
    /// and the build cache (hull has none).
    pub fn disk_usage(&self) -> Result<Vec<DiskRow>, EngineError> {
        let images = match self.image_store()? {
            Some(store) => store.disk_usage()?,
            None => hull_image::store::DiskUsage::default(),
        };
        let containers = self.list()?;
        let in_use = |image_id: &str| containers.iter().any(|c| c.image_id == image_id);
        // docker's rule: what a prune could free is all but the unique part of images in use.
        let used: u64 = images
            .per_image
            .iter()
            .filter(|u| in_use(&u.id))
            .map(|u| u.unique)
            .sum();
        let image_row = DiskRow {
            kind: "Images",
            total: images.images,
            active: images.per_image.iter().filter(|u| in_use(&u.id)).count(),
            // The measure `images` shows, each shared layer once.
            size: images.images_bytes,
            reclaimable: images.images_bytes.saturating_sub(used),
        };
        let mut ctr_row = DiskRow {
            kind: "Containers",
            total: containers.len(),
            active: 0,
            size: 0,
            reclaimable: 0,
        };
        for c in &containers {
            // The whole directory, as a prune frees it (writable layer, log, etc files).
            let size = du(&paths::container_dir(&self.root, &c.id));
            ctr_row.size += size;
            if c.state.is_live() {
                ctr_row.active += 1;
            } else {
                ctr_row.reclaimable += size;
            }
        }
        let mut vol_row = DiskRow {
            kind: "Local Volumes",
            total: 0,
            active: 0,
            size: 0,
            reclaimable: 0,
        };
        for v in self.volumes()? {
            let size = volumes::size_of(&volumes::volume_dir(&self.root, &v.name));
            vol_row.total += 1;
            vol_row.size += size;
            if volumes::users(&self.conn, &v.name)?.is_empty() {
                vol_row.reclaimable += size;
            } else {
                vol_row.active += 1;
            }
        }
        let cache_row = DiskRow {
            kind: "Build Cache",
            total: 0,
            active: 0,
            size: 0,
            reclaimable: 0,
        };
        Ok(vec![image_row, ctr_row, vol_row, cache_row])
    }
}
