//! `import`: a plain root filesystem tarball (plain, gzip or zstd) becomes a one-layer image,
//! as `docker import` does. Also the shared step of adding a new top layer (import, commit).

use std::io::{Read, Seek};

use super::SourceError;
use crate::digest::Digest;
use crate::manifest::{self, Descriptor, Manifest};
use crate::store::{ImageStore, StoreError};
use crate::unpack::{Compression, UnpackOptions};

/// A layer just added to the store.
pub(crate) struct NewLayer {
    pub desc: Descriptor,
    pub diff_id: Digest,
}

/// Stores the layer blob read from `r`, unpacks it above `parent`, records the layer.
pub(crate) fn add_layer(
    store: &ImageStore,
    r: &mut dyn Read,
    parent: Option<&Digest>,
    expected_diff: Option<&Digest>,
) -> Result<NewLayer, StoreError> {
    let (blob, size) = store.blobs().put(r, None)?;
    unpack_blob(store, &blob, size, parent, expected_diff)
}

/// Unpacks a layer blob already in the store above `parent` and records the layer.
pub(crate) fn unpack_blob(
    store: &ImageStore,
    blob: &Digest,
    size: u64,
    parent: Option<&Digest>,
    expected_diff: Option<&Digest>,
) -> Result<NewLayer, StoreError> {
    let mut f = store.blobs().open(blob)?;
    let mut head = [0u8; 4];
    let n = f
        .read(&mut head)
        .map_err(crate::store::io_err("reading layer blob"))?;
    f.rewind()
        .map_err(crate::store::io_err("reading layer blob"))?;
    let kind = Compression::detect(&head[..n]);
    let (chain, stats) = store.layers().unpack_file(
        &f,
        parent,
        expected_diff,
        &blob.to_string(),
        &UnpackOptions::default(),
    )?;
    store.sync()?;
    store.db().add_layer(
        &chain.to_string(),
        &stats.diff_id.to_string(),
        parent.map(ToString::to_string).as_deref(),
        stats.tar_bytes,
    )?;
    Ok(NewLayer {
        desc: Descriptor::new(kind.oci_media_type(), blob, size),
        diff_id: stats.diff_id,
    })
}

/// Writes config and manifest for `base` (its manifest and config) plus `layer`, and records
/// the image under `names`.
pub(crate) fn finish_image(
    store: &mut ImageStore,
    base: Option<(&Manifest, &[u8])>,
    layer: NewLayer,
    created_by: &str,
    names: &[String],
) -> Result<Digest, StoreError> {
    let mut layers = base.map(|(m, _)| m.layers.clone()).unwrap_or_default();
    let mut diff_ids = match base {
        Some((m, c)) => manifest::parse_config(c, &m.config.digest, m.layers.len())?.1,
        None => Vec::new(),
    };
    layers.push(layer.desc);
    diff_ids.push(layer.diff_id);
    let config = manifest::build_config(base.map(|(_, c)| c), &diff_ids, created_by);
    let config = serde_json::to_vec(&config)
        .map_err(|e| crate::store::io_err("image config")(std::io::Error::other(e)))?;
    let config_digest = store.blobs().put_bytes(&config, None)?;
    let m = Manifest::oci(&config_digest, config.len() as u64, layers);
    let bytes = serde_json::to_vec(&m)
        .map_err(|e| crate::store::io_err("manifest")(std::io::Error::other(e)))?;
    store.record(&bytes, None, names)
}

/// Imports a rootfs tarball as a new one-layer image named `name` (if given); returns the
/// manifest digest. A rejected tarball leaves nothing in the store.
pub fn import_tar(
    store: &mut ImageStore,
    r: &mut dyn Read,
    name: Option<&str>,
) -> Result<Digest, SourceError> {
    // Checked first, so that a bad name does not cost an unpack.
    let names: Vec<String> = name
        .map(|n| crate::reference::normalize_tag(n).map(|_| vec![n.to_string()]))
        .transpose()
        .map_err(StoreError::from)?
        .unwrap_or_default();
    store.all_or_nothing(|store| {
        let _lock = store.lock_shared()?;
        let layer = add_layer(store, r, None, None)?;
        Ok(finish_image(store, None, layer, "hull import", &names)?)
    })
}
