//! Loading docker-archive tars (`docker save`), including archives of several images:
//! each image's config and layer tars become an OCI manifest in the store.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::{invalid, Files, SourceError};
use crate::digest::Digest;
use crate::manifest::{Descriptor, Manifest};
use crate::store::ImageStore;
use crate::unpack::Compression;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Loads every image of a docker archive; returns (manifest digest, names) per image.
pub fn load_docker_archive(
    store: &mut ImageStore,
    path: &Path,
) -> Result<Vec<(Digest, Vec<String>)>, SourceError> {
    let files = Files::open(path, store)?;
    load_from(store, &files, path)
}

pub(super) fn load_from(
    store: &mut ImageStore,
    files: &Files,
    path: &Path,
) -> Result<Vec<(Digest, Vec<String>)>, SourceError> {
    let entries: Vec<Entry> = serde_json::from_slice(&files.read("manifest.json")?)
        .map_err(|e| invalid(path, format!("manifest.json: {e}")))?;
    if entries.is_empty() {
        return Err(invalid(path, "manifest.json lists no images"));
    }
    let mut out = Vec::new();
    for e in entries {
        let config = files.read(&e.config)?;
        let config_digest = store
            .blobs()
            .put_bytes(&config, None)
            .map_err(crate::StoreError::from)?;
        let mut layers = Vec::new();
        for l in &e.layers {
            let mut head = [0u8; 4];
            let n = files.reader(l)?.read(&mut head).unwrap_or(0);
            let kind = Compression::detect(&head[..n]);
            let mut r = files.reader(l)?;
            let (d, size) = store
                .blobs()
                .put(&mut r, None)
                .map_err(crate::StoreError::from)?;
            let want = files.size(l)?;
            if size != want {
                return Err(invalid(
                    path,
                    format!("{l}: truncated ({size} of {want} bytes)"),
                ));
            }
            layers.push(Descriptor::new(kind.oci_media_type(), &d, size));
        }
        let m = Manifest::oci(&config_digest, config.len() as u64, layers);
        let bytes = serde_json::to_vec(&m).map_err(|e| invalid(path, e.to_string()))?;
        let names = e
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|n| crate::reference::normalize_tag(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| invalid(path, format!("manifest.json RepoTags: {err}")))?;
        let mut fetch = |d: &Digest| -> Result<Box<dyn Read + '_>, crate::StoreError> {
            Err(crate::StoreError::NotFound(format!(
                "blob {d} in {}",
                path.display()
            )))
        };
        let digest = store.ingest(&bytes, None, &names, &mut fetch)?;
        out.push((digest, names));
    }
    Ok(out)
}

/// `load`: an OCI layout or a docker archive, told apart by their index files. All or
/// nothing: an archive with one bad member leaves nothing in the store.
pub fn load(
    store: &mut ImageStore,
    path: &Path,
    name: Option<&str>,
) -> Result<Vec<(Digest, Vec<String>)>, SourceError> {
    store.all_or_nothing(|store| {
        // Held throughout: a docker archive's blobs are stored before its image is.
        let _lock = store.lock_shared()?;
        load_any(store, path, name)
    })
}

fn load_any(
    store: &mut ImageStore,
    path: &Path,
    name: Option<&str>,
) -> Result<Vec<(Digest, Vec<String>)>, SourceError> {
    let files = Files::open(path, store)?;
    // docker save >= 25 writes both; the OCI index keeps the original manifest digests.
    if files.exists("oci-layout") {
        super::layout::load_from(store, &files, path, name)
    } else if files.exists("manifest.json") {
        load_from(store, &files, path)
    } else {
        Err(invalid(
            path,
            "neither an OCI image layout nor a docker archive",
        ))
    }
}
