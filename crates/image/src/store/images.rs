//! Image records: resolving names and ids, ingesting verified content, tagging, and the
//! container-facing view (a rootfs as a list of lower dirs).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use rusqlite::Connection;

use super::{io_err, ImageStore, StoreError};
use crate::digest::Digest;
use crate::manifest::{self, Descriptor, Document, Manifest};
use crate::reference;
use crate::unpack::UnpackOptions;

/// Where [`ImageStore::ingest`] gets blobs it does not have yet.
pub type BlobFetch<'a> = dyn FnMut(&Digest) -> Result<Box<dyn Read + 'a>, StoreError> + 'a;

/// What a container needs from its image.
#[derive(Debug, Clone)]
pub struct Rootfs {
    /// Manifest digest: the image a container holds with [`ImageStore::hold`].
    pub manifest: Digest,
    /// Config digest: the image id users see.
    pub id: Digest,
    /// Unpacked layer dirs, top-most first (overlayfs `lowerdir` order).
    pub lowers: Vec<PathBuf>,
    /// The image config JSON (env, entrypoint, cmd, user, working dir ...).
    pub config_json: Vec<u8>,
}

impl Rootfs {
    /// The image config as OCI types.
    pub fn config(&self) -> Result<oci_spec::image::ImageConfiguration, serde_json::Error> {
        serde_json::from_slice(&self.config_json)
    }
}

/// One image as `hull images` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageInfo {
    pub id: Digest,
    pub digest: Digest,
    pub names: Vec<String>,
    pub created: Option<String>,
    /// Sum of the layers' uncompressed sizes.
    pub size: u64,
    pub layers: usize,
    pub holders: Vec<String>,
}

fn dig(s: &str) -> Result<Digest, StoreError> {
    s.parse()
        .map_err(|e: crate::digest::DigestError| StoreError::Io {
            what: "image database".into(),
            err: std::io::Error::other(e.to_string()),
        })
}

/// Holds on a connection the caller has open already (a container's monitor, which keeps one
/// connection for everything it does; the engine between its own writes).
impl ImageStore {
    /// [`ImageStore::hold`] on `conn`.
    pub fn hold_with(conn: &Connection, manifest: &Digest, holder: &str) -> Result<(), StoreError> {
        Ok(super::db::Db::with_conn(conn).hold(&manifest.to_string(), holder)?)
    }

    /// [`ImageStore::release`] on `conn`.
    pub fn release_with(conn: &Connection, holder: &str) -> Result<(), StoreError> {
        Ok(super::db::Db::with_conn(conn).release(holder)?)
    }
}

impl<C: Borrow<Connection>> ImageStore<C> {
    /// The manifest digest for a name (`busybox`, `repo:tag`), an image id (the config
    /// digest, as `images` shows it) or a manifest digest, or a unique prefix of either. An id
    /// several manifests share (one image loaded from two sources) is one image: the newest
    /// of them answers.
    pub fn resolve(&self, name: &str) -> Result<Digest, StoreError> {
        let all = self.resolve_all(name)?;
        all.into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound(name.to_string()))
    }

    /// Every manifest `name` means, newest first: one for a name, all those sharing the image
    /// id for an id. Errors when an id prefix matches several images.
    pub fn resolve_all(&self, name: &str) -> Result<Vec<Digest>, StoreError> {
        if let Ok(n) = reference::normalize_tag(name) {
            if let Some(m) = self.db.manifest_for_tag(&n)? {
                return Ok(vec![dig(&m)?]);
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 4 && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hits = self.db.manifests_by_prefix(&hex.to_ascii_lowercase())?;
            let Some((_, config)) = hits.first() else {
                return Err(StoreError::NotFound(name.to_string()));
            };
            if hits.iter().any(|(_, c)| c != config) {
                return Err(StoreError::Ambiguous(name.to_string()));
            }
            return hits.iter().map(|(m, _)| dig(m)).collect();
        }
        Err(StoreError::NotFound(name.to_string()))
    }

    /// The image id (config digest) of a stored manifest: what `images` shows.
    pub fn image_id(&self, manifest: &Digest) -> Result<Digest, StoreError> {
        let row = self
            .db
            .image(&manifest.to_string())?
            .ok_or_else(|| StoreError::NotFound(manifest.to_string()))?;
        dig(&row.config)
    }

    /// Parses a stored manifest.
    pub fn manifest(&self, manifest: &Digest) -> Result<Manifest, StoreError> {
        let bytes = self.blobs.read(manifest)?;
        match manifest::parse_document(&bytes, &manifest.to_string(), None)? {
            Document::Manifest(m) => Ok(m),
            Document::Index(_) => Err(StoreError::NotFound(manifest.to_string())),
        }
    }

    /// Copies a blob from `fetch` unless present, verifying digest and size.
    pub fn ensure_blob(
        &self,
        desc: &Descriptor,
        fetch: &mut BlobFetch<'_>,
    ) -> Result<Digest, StoreError> {
        let d = dig_field(&desc.digest)?;
        if !self.has_blob(&d)? {
            let mut r = fetch(&d)?;
            self.blobs.put(&mut r, Some((&d, Some(desc.size))))?;
        }
        Ok(d)
    }

    /// Unpacks the layer blob `blob` (already in the store) as the layer above `parent`,
    /// unless that chain is present; checks the diff id.
    pub fn ensure_layer(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        parent: Option<&Digest>,
    ) -> Result<Digest, StoreError> {
        let chain = Digest::chain(parent, diff_id);
        if self.layers.exists(&chain) && self.db.has_layer(&chain.to_string())? {
            return Ok(chain);
        }
        let file = self.blobs.open(blob)?;
        let (got, stats) = self.layers.unpack_file(
            &file,
            parent,
            Some(diff_id),
            &blob.to_string(),
            &UnpackOptions::default(),
        )?;
        self.sync()?;
        self.db.add_layer(
            &got.to_string(),
            &stats.diff_id.to_string(),
            parent.map(ToString::to_string).as_deref(),
            stats.tar_bytes,
        )?;
        Ok(got)
    }

    /// Stores an image from a source of blobs (an OCI layout, an archive): the manifest is
    /// verified against `expected`, every blob against its descriptor, every layer against
    /// the config's diff ids; the record is written last, in one transaction.
    pub fn ingest(
        &mut self,
        manifest_bytes: &[u8],
        expected: Option<&Digest>,
        names: &[String],
        fetch: &mut BlobFetch<'_>,
    ) -> Result<Digest, StoreError> {
        let _lock = self.lock_shared()?;
        let label = expected.map(ToString::to_string).unwrap_or_default();
        let m = match manifest::parse_document(manifest_bytes, &label, None)? {
            Document::Manifest(m) => m,
            Document::Index(_) => {
                return Err(StoreError::Manifest(manifest::ManifestError::Invalid {
                    what: "manifest",
                    digest: label,
                    reason: "is an index, not an image manifest".into(),
                }))
            }
        };
        let config = self.ensure_blob(&m.config, fetch)?;
        let (_, diff_ids) =
            manifest::parse_config(&self.blobs.read(&config)?, &m.config.digest, m.layers.len())?;
        let mut parent: Option<Digest> = None;
        for (l, diff) in m.layers.iter().zip(&diff_ids) {
            let blob = self.ensure_blob(l, fetch)?;
            parent = Some(self.ensure_layer(&blob, diff, parent.as_ref())?);
        }
        self.record(manifest_bytes, expected, names)
    }

    /// Writes the records of an image whose blobs and layers are all in the store.
    pub fn record(
        &mut self,
        manifest_bytes: &[u8],
        expected: Option<&Digest>,
        names: &[String],
    ) -> Result<Digest, StoreError> {
        let digest = self.blobs.put_bytes(manifest_bytes, expected)?;
        let m = self.manifest(&digest)?;
        let config_bytes = self.blobs.read(&dig_field(&m.config.digest)?)?;
        let (summary, diff_ids) =
            manifest::parse_config(&config_bytes, &m.config.digest, m.layers.len())?;
        let mut rows = Vec::new();
        let mut parent: Option<Digest> = None;
        for (l, diff) in m.layers.iter().zip(&diff_ids) {
            let chain = Digest::chain(parent.as_ref(), diff);
            if !self.layers.exists(&chain) {
                return Err(StoreError::NotFound(format!("layer {chain}")));
            }
            rows.push(super::LayerRow {
                blob: l.digest.clone(),
                media_type: l.media_type.clone(),
                size: l.size,
                diff_id: diff.to_string(),
                chain_id: chain.to_string(),
            });
            parent = Some(chain);
        }
        let names = names
            .iter()
            .map(|n| reference::normalize_tag(n))
            .collect::<Result<Vec<_>, _>>()?;
        let mt = m
            .media_type
            .clone()
            .unwrap_or_else(|| manifest::MT_OCI_MANIFEST.to_string());
        self.sync()?;
        self.db.add_image(&super::db::NewImage {
            manifest: &digest.to_string(),
            config: &m.config.digest,
            media_type: &mt,
            size: u64::try_from(manifest_bytes.len()).unwrap_or(0),
            created: summary.created.as_deref(),
            layers: &rows,
            names: &names,
        })?;
        Ok(digest)
    }

    /// Gives an existing image one more name.
    pub fn tag(&self, image: &str, name: &str) -> Result<(), StoreError> {
        let m = self.resolve(image)?;
        let n = reference::normalize_tag(name)?;
        self.db.tag(&n, &m.to_string())?;
        Ok(())
    }

    /// The layer dirs (top-most first) and config of an image, for a container's rootfs.
    pub fn rootfs_for(&self, image: &str) -> Result<Rootfs, StoreError> {
        let manifest = self.resolve(image)?;
        let row = self
            .db
            .image(&manifest.to_string())?
            .ok_or_else(|| StoreError::NotFound(image.to_string()))?;
        let id = dig(&row.config)?;
        let mut lowers = Vec::new();
        for l in self.db.layers_of(&manifest.to_string())? {
            let p = self.layers.path(&dig(&l.chain_id)?);
            if !p.is_dir() {
                return Err(StoreError::NotFound(format!(
                    "layer {} of image {image}",
                    l.chain_id
                )));
            }
            lowers.push(p);
        }
        lowers.reverse();
        let config_json = self.blobs.read(&id)?;
        Ok(Rootfs {
            manifest,
            id,
            lowers,
            config_json,
        })
    }

    /// For a new container: records that `holder` (its id) uses the image and returns its
    /// rootfs, under the store lock so no prune or rmi can come in between.
    pub fn acquire(&self, image: &str, holder: &str) -> Result<Rootfs, StoreError> {
        let _lock = self.lock_shared()?;
        let rootfs = self.rootfs_for(image)?;
        self.hold(&rootfs.manifest, holder)?;
        Ok(rootfs)
    }

    /// Records that `holder` (a container id) uses the image, so `rmi` refuses to remove it.
    pub fn hold(&self, manifest: &Digest, holder: &str) -> Result<(), StoreError> {
        Ok(self.db.hold(&manifest.to_string(), holder)?)
    }

    /// Drops every hold of `holder`.
    pub fn release(&self, holder: &str) -> Result<(), StoreError> {
        Ok(self.db.release(holder)?)
    }

    /// The size of each layer (by chain id) as images count it: its uncompressed tar size,
    /// as docker's `images` and `system df` do. The one size rule of the store.
    pub(crate) fn layer_sizes(&self) -> Result<HashMap<String, u64>, StoreError> {
        Ok(self.db.layer_tar_sizes()?)
    }

    /// All images, newest first.
    pub fn list(&self) -> Result<Vec<ImageInfo>, StoreError> {
        let sizes = self.layer_sizes()?;
        // Manifests of one config (one image loaded from two sources) are one image, as
        // docker keys images by config: their names and holders together, the newest
        // manifest's digest.
        let mut out: Vec<ImageInfo> = Vec::new();
        for row in self.db.images()? {
            let id = dig(&row.config)?;
            let holders = self.db.holders(&row.manifest)?;
            if let Some(seen) = out.iter_mut().find(|i| i.id == id) {
                seen.names.extend(row.names.iter().cloned());
                seen.names.sort();
                seen.holders.extend(holders);
                continue;
            }
            let layers = self.db.layers_of(&row.manifest)?;
            out.push(ImageInfo {
                id,
                digest: dig(&row.manifest)?,
                names: row.names.clone(),
                created: row.created.clone(),
                size: layers
                    .iter()
                    .map(|l| sizes.get(&l.chain_id).copied().unwrap_or(0))
                    .sum(),
                layers: layers.len(),
                holders,
            });
        }
        Ok(out)
    }

    /// `image inspect`: the record, manifest and config of an image as one JSON document.
    pub fn inspect(&self, image: &str) -> Result<serde_json::Value, StoreError> {
        let m = self.resolve(image)?;
        let id = self.image_id(&m)?;
        let info = self
            .list()?
            .into_iter()
            .find(|i| i.id == id)
            .ok_or_else(|| StoreError::NotFound(image.to_string()))?;
        let manifest: serde_json::Value = serde_json::from_slice(&self.blobs.read(&m)?)
            .map_err(|e| io_err("stored manifest")(std::io::Error::other(e)))?;
        let config: serde_json::Value = serde_json::from_slice(&self.blobs.read(&info.id)?)
            .map_err(|e| io_err("stored config")(std::io::Error::other(e)))?;
        let layers: Vec<String> = self
            .db
            .layers_of(&m.to_string())?
            .into_iter()
            .map(|l| {
                self.layers
                    .path(&dig(&l.chain_id).unwrap_or_else(|_| info.id.clone()))
                    .display()
                    .to_string()
            })
            .collect();
        Ok(serde_json::json!({
            "Id": info.id,
            "Digest": m.to_string(),
            "RepoTags": info.names,
            "Created": info.created,
            "Size": info.size,
            "Architecture": config.get("architecture"),
            "Os": config.get("os"),
            "Config": config.get("config"),
            "RootFS": config.get("rootfs"),
            "LayerDirs": layers,
            "UsedBy": info.holders,
            "Manifest": manifest,
        }))
    }
}

pub fn dig_field(s: &str) -> Result<Digest, StoreError> {
    s.parse().map_err(|e: crate::digest::DigestError| {
        StoreError::Manifest(manifest::ManifestError::Invalid {
            what: "descriptor",
            digest: s.to_string(),
            reason: e.to_string(),
        })
    })
}

pub use super::gc::{du, DiskUsage, ImageUsage, PruneReport, RemoveReport};
