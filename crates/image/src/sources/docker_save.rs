//! `save --format docker-archive`: the archive `docker save` writes and `docker load` reads
//! (docker 25's layout): `manifest.json` listing each image's config and layers,
//! `repositories`, and under `blobs/sha256/` the configs and the layers as uncompressed tars
//! named by their diff ids, which `docker load` checks against the config.

use std::collections::{BTreeMap, HashSet};
use std::io::{Seek, Write};

use super::save::{header, Saved};
use super::SourceError;
use crate::digest::{Digest, HashingWriter};
use crate::manifest;
use crate::store::{dig_field, ImageStore, StoreError};

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// A temp file removed when dropped.
struct Temp(std::path::PathBuf, std::fs::File);

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(super) fn write(
    store: &ImageStore,
    w: &mut dyn Write,
    saved: &[Saved],
) -> Result<(), SourceError> {
    let err = |e| SourceError::Io {
        what: "writing docker archive".into(),
        err: e,
    };
    let mut b = tar::Builder::new(w);
    b.append_data(&mut header(0, true), "blobs/", std::io::empty())
        .map_err(err)?;
    b.append_data(&mut header(0, true), "blobs/sha256/", std::io::empty())
        .map_err(err)?;
    let mut written: HashSet<Digest> = HashSet::new();
    let mut entries = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for s in saved {
        let config_digest = dig_field(&s.manifest.config.digest)?;
        let config = store
            .blobs()
            .read(&config_digest)
            .map_err(StoreError::from)?;
        let (_, diff_ids) =
            manifest::parse_config(&config, &s.manifest.config.digest, s.manifest.layers.len())
                .map_err(StoreError::from)?;
        if written.insert(config_digest.clone()) {
            b.append_data(
                &mut header(config.len() as u64, false),
                format!("blobs/sha256/{}", config_digest.hex()),
                &config[..],
            )
            .map_err(err)?;
        }
        let mut layers = Vec::new();
        for (l, diff) in s.manifest.layers.iter().zip(&diff_ids) {
            if written.insert(diff.clone()) {
                let mut t = uncompressed(store, &dig_field(&l.digest)?, diff)?;
                let len = t.1.metadata().map_err(err)?.len();
                t.1.rewind().map_err(err)?;
                b.append_data(
                    &mut header(len, false),
                    format!("blobs/sha256/{}", diff.hex()),
                    &mut t.1,
                )
                .map_err(err)?;
            }
            layers.push(format!("blobs/sha256/{}", diff.hex()));
        }
        let mut repo_tags = Vec::new();
        if let Some(n) = &s.name {
            let (repo, tag) = crate::reference::display(n);
            repo_tags.push(format!("{repo}:{tag}"));
            if let Some(top) = diff_ids.last() {
                repositories
                    .entry(repo)
                    .or_default()
                    .insert(tag, top.hex().to_string());
            }
        }
        entries.push(Entry {
            config: format!("blobs/sha256/{}", config_digest.hex()),
            repo_tags,
            layers,
        });
    }
    let to_json = |e: serde_json::Error| SourceError::Io {
        what: "writing docker archive".into(),
        err: std::io::Error::other(e),
    };
    let manifest_json = serde_json::to_vec(&entries).map_err(to_json)?;
    let repositories = serde_json::to_vec(&repositories).map_err(to_json)?;
    for (name, data) in [
        ("manifest.json", manifest_json),
        ("repositories", repositories),
    ] {
        b.append_data(&mut header(data.len() as u64, false), name, &data[..])
            .map_err(err)?;
    }
    b.into_inner().map_err(err)?.flush().map_err(err)
}

/// The layer blob `blob` decompressed into a temp file, checked against its diff id.
fn uncompressed(store: &ImageStore, blob: &Digest, diff: &Digest) -> Result<Temp, SourceError> {
    let path = crate::store::temp_name(&store.root().join("tmp"), "save-layer");
    let io_err = |e| SourceError::Io {
        what: format!("decompressing layer {blob}"),
        err: e,
    };
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err)?;
    let t = Temp(path, file);
    let src = store.blobs().open(blob).map_err(StoreError::from)?;
    let (mut r, _) = crate::unpack::decompress(src).map_err(io_err)?;
    let mut w = HashingWriter::new(std::io::BufWriter::new(&t.1));
    std::io::copy(&mut r, &mut w).map_err(io_err)?;
    let (mut inner, got, _) = w.finish();
    inner.flush().map_err(io_err)?;
    drop(inner);
    if got != *diff {
        return Err(SourceError::Invalid {
            path: blob.to_string(),
            reason: format!("layer content is {got}, its config says {diff}"),
        });
    }
    Ok(t)
}
