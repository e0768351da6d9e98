//! Loading OCI image layouts (a directory, or a tar of one, as `skopeo copy ... oci:` and
//! `umoci` make); nested indexes are resolved for the host platform.

use std::path::Path;

use super::{invalid, Files, SourceError};
use crate::digest::Digest;
use crate::manifest::{self, Descriptor, Document, MT_DOCKER_LIST, MT_OCI_INDEX};
use crate::store::ImageStore;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

fn blob_path(d: &str) -> Result<String, SourceError> {
    let dg: Digest = d
        .parse()
        .map_err(|e: crate::digest::DigestError| SourceError::Invalid {
            path: d.to_string(),
            reason: e.to_string(),
        })?;
    Ok(format!("blobs/sha256/{}", dg.hex()))
}

/// Loads every image of the layout at `path`; `name` names them when the layout does not
/// (and overrides it when the layout holds one image). Returns (manifest digest, names).
pub fn load_layout(
    store: &mut ImageStore,
    path: &Path,
    name: Option<&str>,
) -> Result<Vec<(Digest, Vec<String>)>, SourceError> {
    let files = Files::open(path, store)?;
    load_from(store, &files, path, name)
}

pub(super) fn load_from(
    store: &mut ImageStore,
    files: &Files,
    path: &Path,
    name: Option<&str>,
) -> Result<Vec<(Digest, Vec<String>)>, SourceError> {
    if !files.exists("oci-layout") {
        return Err(invalid(
            path,
            "not an OCI image layout (no oci-layout file)",
        ));
    }
    let index_bytes = files.read("index.json")?;
    let index = match manifest::parse_document(&index_bytes, "index.json", Some(MT_OCI_INDEX))
        .map_err(|e| invalid(path, e.to_string()))?
    {
        Document::Index(i) => i,
        Document::Manifest(_) => return Err(invalid(path, "index.json is not an image index")),
    };
    if index.manifests.is_empty() {
        return Err(invalid(path, "index.json lists no images"));
    }
    let single = index.manifests.len() == 1;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_else(|| "image".into());
    let mut out = Vec::new();
    for desc in &index.manifests {
        let names = names_for(desc, name.filter(|_| single), &stem)
            .iter()
            .map(|n| crate::reference::normalize_tag(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| invalid(path, format!("index.json image name: {err}")))?;
        let mdesc = resolve_index(files, desc)?;
        let bytes = files.read(&blob_path(&mdesc.digest)?)?;
        let expected: Digest = mdesc
            .digest
            .parse()
            .map_err(|e: crate::digest::DigestError| invalid(path, e.to_string()))?;
        let mut fetch = |d: &Digest| -> Result<Box<dyn std::io::Read + '_>, crate::StoreError> {
            Ok(files.reader(&format!("blobs/sha256/{}", d.hex()))?)
        };
        let digest = store.ingest(&bytes, Some(&expected), &names, &mut fetch)?;
        out.push((digest, names));
    }
    Ok(out)
}

fn names_for(desc: &Descriptor, name: Option<&str>, stem: &str) -> Vec<String> {
    if let Some(n) = name {
        return vec![n.to_string()];
    }
    let ann = desc.annotations.clone().unwrap_or_default();
    if let Some(full) = ann.get(CONTAINERD_NAME) {
        return vec![full.clone()];
    }
    match ann.get(REF_NAME) {
        Some(r) if r.contains('/') || r.contains(':') => vec![r.clone()],
        Some(tag) => vec![format!("localhost/{stem}:{tag}")],
        None => Vec::new(),
    }
}

/// Follows index entries down to the host platform's image manifest.
fn resolve_index(files: &Files, desc: &Descriptor) -> Result<Descriptor, SourceError> {
    let mut d = desc.clone();
    for _ in 0..4 {
        if d.media_type != MT_OCI_INDEX && d.media_type != MT_DOCKER_LIST {
            return Ok(d);
        }
        let bytes = files.read(&blob_path(&d.digest)?)?;
        if Digest::of(&bytes).to_string() != d.digest {
            return Err(SourceError::Invalid {
                path: d.digest.clone(),
                reason: "image index content does not match its digest".into(),
            });
        }
        let inner =
            match manifest::parse_document(&bytes, &d.digest, Some(&d.media_type)).map_err(|e| {
                SourceError::Invalid {
                    path: d.digest.clone(),
                    reason: e.to_string(),
                }
            })? {
                Document::Index(i) => i,
                Document::Manifest(_) => return Ok(d),
            };
        d = manifest::select_platform(&inner, &d.digest)
            .map_err(|e| SourceError::Invalid {
                path: desc.digest.clone(),
                reason: e.to_string(),
            })?
            .clone();
    }
    Err(SourceError::Invalid {
        path: desc.digest.clone(),
        reason: "image indexes nested too deeply".into(),
    })
}
