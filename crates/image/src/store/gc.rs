//! Removing images and reclaiming what nothing references: `rmi`, `image prune`, `system df`.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rusqlite::Connection;

use super::{ImageStore, StoreError};
use crate::digest::Digest;
use crate::reference;

/// What `rmi` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RemoveReport {
    pub untagged: Vec<String>,
    pub deleted: Vec<String>,
}

/// What `image prune` reclaimed.
#[derive(Debug, Default, serde::Serialize)]
pub struct PruneReport {
    pub images: Vec<String>,
    pub layers: usize,
    pub blobs: usize,
    pub bytes: u64,
}

/// Disk used by images: shared layers are counted once. Per image sizes are those `images`
/// shows.
#[derive(Debug, Default, serde::Serialize)]
pub struct DiskUsage {
    pub images: usize,
    pub layers: usize,
    /// Bytes of all unpacked layers, as the disk counts them.
    pub layers_bytes: u64,
    /// Size of all images, each layer once, by the measure `images` shows (the layers'
    /// uncompressed tar size, as docker's).
    pub images_bytes: u64,
    /// Bytes of stored blobs (compressed layers, manifests, configs).
    pub blobs_bytes: u64,
    /// Per image: (name or id, total, shared with another image, unique).
    pub per_image: Vec<ImageUsage>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct ImageUsage {
    pub image: String,
    /// The image's id (its config digest).
    pub id: String,
    pub size: u64,
    pub shared: u64,
    pub unique: u64,
}

/// Stored names as users type them ("busybox:latest"), comma-separated.
fn shown(names: &[String]) -> String {
    names
        .iter()
        .map(|n| {
            let (r, t) = reference::display(n);
            format!("{r}:{t}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Disk blocks used under `path` (hard links counted once, symlinks not followed).
pub fn du(path: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
            continue;
        }
        total += md.blocks() * 512;
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    total
}

impl<C: Borrow<Connection>> ImageStore<C> {
    /// `rmi`, as docker's: by name, removes that name, and the image with its last name; by
    /// id, removes the image, which must have at most one name unless `force`. An image a
    /// container holds is refused unless `force`, which then only removes its names: the
    /// container keeps its layers and the image stays, unnamed, until the container goes.
    pub fn remove(&mut self, image: &str, force: bool) -> Result<RemoveReport, StoreError> {
        let _lock = self.lock_exclusive()?;
        // The image is the config: every manifest of it goes with its last name.
        let first = self.resolve(image)?;
        let manifests = self.resolve_all(&self.image_id(&first)?.to_string())?;
        let mut rows = Vec::new();
        for m in &manifests {
            let m = m.to_string();
            let row = self
                .db
                .image(&m)?
                .ok_or_else(|| StoreError::NotFound(image.to_string()))?;
            rows.push(row);
        }
        let names: Vec<String> = rows.iter().flat_map(|r| r.names.iter().cloned()).collect();
        let mut holders = Vec::new();
        for r in &rows {
            holders.extend(self.db.holders(&r.manifest)?);
        }
        let by_name = reference::normalize_tag(image)
            .ok()
            .filter(|n| names.contains(n));
        let mut report = RemoveReport::default();
        if let Some(name) = &by_name {
            if names.len() > 1 {
                self.db.untag(name)?;
                report.untagged.push(name.clone());
                return Ok(report);
            }
        } else if names.len() > 1 && !force {
            return Err(StoreError::MultipleNames {
                image: image.to_string(),
                names: shown(&names),
            });
        }
        if !holders.is_empty() {
            if !force {
                return Err(StoreError::InUse {
                    image: image.to_string(),
                    holders: holders.join(", "),
                });
            }
            for n in &names {
                self.db.untag(n)?;
            }
            report.untagged = names;
            return Ok(report);
        }
        for r in &rows {
            self.release_mount(image, &r.manifest, force)?;
        }
        for r in &rows {
            self.db.delete_manifest(&r.manifest)?;
        }
        report.untagged = names;
        report.deleted.push(rows[0].config.clone());
        self.collect()?;
        Ok(report)
    }

    /// Before an image is deleted: its `image mount` is refused, or unmounted with `force`.
    fn release_mount(&self, image: &str, manifest: &str, force: bool) -> Result<(), StoreError> {
        let Ok(d) = manifest.parse::<Digest>() else {
            return Ok(());
        };
        let mnt = self.root().join("mounts").join(d.hex());
        if !crate::overlay::is_mounted(&mnt) {
            return Ok(());
        }
        if !force {
            return Err(StoreError::InUse {
                image: image.to_string(),
                holders: "an image mount (hull image unmount)".into(),
            });
        }
        self.force_unmount(&d)
    }

    /// `image prune`: removes images without a name (all unused ones with `all`) that no
    /// container holds and no `image mount` shows, then every layer and blob nothing references.
    pub fn prune(&mut self, all: bool) -> Result<PruneReport, StoreError> {
        let _lock = self.lock_exclusive()?;
        let mut report = PruneReport::default();
        for row in self.db.images()? {
            // An `image mount` uses its layers as a container does.
            let mounted = row.manifest.parse::<Digest>().is_ok_and(|d| {
                crate::overlay::is_mounted(&self.root().join("mounts").join(d.hex()))
            });
            if (all || row.names.is_empty())
                && !mounted
                && self.db.holders(&row.manifest)?.is_empty()
            {
                self.db.delete_manifest(&row.manifest)?;
                report.images.push(row.config);
            }
        }
        let (layers, blobs, bytes) = self.collect()?;
        report.layers = layers;
        report.blobs = blobs;
        report.bytes = bytes;
        Ok(report)
    }

    /// Removes layer dirs and blobs no image references (also those a crash left unrecorded).
    /// Callers hold the exclusive lock.
    fn collect(&self) -> Result<(usize, usize, u64), StoreError> {
        self.db.take_unused_layers()?;
        let (layers, mut bytes) = self.remove_unrecorded_layers()?;
        let live = self.db.live_blobs()?;
        let mut blobs = 0;
        for d in self
            .blobs
            .list()
            .map_err(super::io_err("reading blobs dir"))?
        {
            if !live.contains(&d.to_string()) {
                bytes += std::fs::metadata(self.blobs.path(&d))
                    .map(|m| m.blocks() * 512)
                    .unwrap_or(0);
                self.blobs
                    .remove(&d)
                    .map_err(super::io_err(format!("removing blob {d}")))?;
                blobs += 1;
            }
        }
        Ok((layers, blobs, bytes))
    }

    /// Removes the layer dirs (and erofs images) the database does not record; returns how
    /// many dirs and their bytes. Callers hold the exclusive lock.
    pub(crate) fn remove_unrecorded_layers(&self) -> Result<(usize, u64), StoreError> {
        let live = self.db.live_layers()?;
        let (mut layers, mut bytes) = (0, 0);
        let entries =
            std::fs::read_dir(self.layers.dir()).map_err(super::io_err("reading layers dir"))?;
        for e in entries.flatten() {
            // A layer dir, or its erofs image (removed with it; alone, what a crash left).
            let file = e.file_name().to_string_lossy().into_owned();
            let name = format!("sha256:{}", file.strip_suffix(".erofs").unwrap_or(&file));
            let Ok(chain) = name.parse::<Digest>() else {
                continue;
            };
            if !live.contains(&name) {
                bytes += du(&e.path());
                self.layers
                    .remove(&chain)
                    .map_err(super::io_err(format!("removing layer {name}")))?;
                layers += usize::from(!file.ends_with(".erofs"));
            }
        }
        Ok((layers, bytes))
    }

    /// `system df` for images: each layer dir measured once, and attributed to the images
    /// that use it as shared (several images) or unique (one image).
    pub fn disk_usage(&self) -> Result<DiskUsage, StoreError> {
        // Manifests of one config are one image (as `images` lists them), with one set of
        // layers: the newest stands for it.
        let mut seen = HashSet::new();
        let mut images = self.db.images()?;
        images.retain(|row| seen.insert(row.config.clone()));
        let mut users: HashMap<String, usize> = HashMap::new();
        let mut per: Vec<(String, String, Vec<String>)> = Vec::new();
        for row in &images {
            let chains: Vec<String> = self
                .db
                .layers_of(&row.manifest)?
                .into_iter()
                .map(|l| l.chain_id)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            for c in &chains {
                *users.entry(c.clone()).or_default() += 1;
            }
            let label = row
                .names
                .first()
                .map(|n| {
                    let (r, t) = reference::display(n);
                    format!("{r}:{t}")
                })
                .unwrap_or_else(|| row.config.chars().skip(7).take(12).collect());
            per.push((label, row.config.clone(), chains));
        }
        let tar_sizes = self.layer_sizes()?;
        let mut disk = 0;
        for c in users.keys() {
            if let Ok(d) = c.parse::<Digest>() {
                disk += du(&self.layers.path(&d));
            }
        }
        let sizes: HashMap<String, u64> = users
            .keys()
            .map(|c| (c.clone(), tar_sizes.get(c).copied().unwrap_or(0)))
            .collect();
        let mut usage = DiskUsage {
            images: images.len(),
            layers: sizes.len(),
            layers_bytes: disk,
            images_bytes: sizes.values().sum(),
            blobs_bytes: du(self.blobs.dir()),
            per_image: Vec::new(),
        };
        for (image, id, chains) in per {
            let mut u = ImageUsage {
                image,
                id,
                ..Default::default()
            };
            for c in chains {
                let s = sizes.get(&c).copied().unwrap_or(0);
                u.size += s;
                if users.get(&c).copied().unwrap_or(0) > 1 {
                    u.shared += s;
                } else {
                    u.unique += s;
                }
            }
            usage.per_image.push(u);
        }
        Ok(usage)
    }
}
