//! `save`: images to a docker archive (see `docker_save`) or an OCI image layout tar
//! (readable by `skopeo copy oci-archive:` and by `hull load`), written to a temp file and
//! renamed into place.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use super::SourceError;
use crate::digest::Digest;
use crate::manifest::{Descriptor, Index, MT_OCI_INDEX};
use crate::store::{ImageStore, StoreError};

pub(super) fn header(size: u64, dir: bool) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_mtime(0);
    h
}

/// What `save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveFormat {
    /// docker's archive (`docker save`, read by `docker load`): manifest.json, repositories,
    /// the config and uncompressed layer tars.
    DockerArchive,
    /// An OCI image layout in a tar (`skopeo copy oci-archive:`).
    OciArchive,
    /// An OCI image layout as a directory (`skopeo copy oci:`).
    OciDir,
}

impl std::str::FromStr for SaveFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "docker-archive" => Ok(Self::DockerArchive),
            "oci-archive" => Ok(Self::OciArchive),
            "oci-dir" => Ok(Self::OciDir),
            other => Err(format!(
                "unknown format {other:?}: expected docker-archive, oci-archive or oci-dir"
            )),
        }
    }
}

/// One image to save: its manifest and the name it was asked by, if it is one of its names.
pub(super) struct Saved {
    pub digest: Digest,
    pub manifest: crate::manifest::Manifest,
    pub name: Option<String>,
}

fn resolve(store: &ImageStore, images: &[String]) -> Result<Vec<Saved>, SourceError> {
    let mut out = Vec::new();
    for name in images {
        let digest = store.resolve(name)?;
        let manifest = store.manifest(&digest)?;
        let full = crate::reference::normalize_tag(name).ok().filter(|n| {
            store.db().manifest_for_tag(n).ok().flatten().as_deref() == Some(&digest.to_string())
        });
        out.push(Saved {
            digest,
            manifest,
            name: full,
        });
    }
    Ok(out)
}

/// Writes `images` to `out` ("-" for stdout) in `format`; a file is written under a temp
/// name and renamed into place, so a failed save leaves no partial archive.
pub fn save(
    store: &ImageStore,
    images: &[String],
    out: &Path,
    format: SaveFormat,
) -> Result<(), SourceError> {
    let saved = resolve(store, images)?;
    if format == SaveFormat::OciDir {
        return save_dir(store, &saved, out);
    }
    let write = |w: &mut dyn Write| match format {
        SaveFormat::DockerArchive => super::docker_save::write(store, w, &saved),
        _ => {
            let (index, blobs) = oci_index(store, &saved)?;
            write_tar(store, w, &index, &blobs)
        }
    };
    if out == Path::new("-") {
        return write(&mut std::io::stdout().lock());
    }
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = crate::store::temp_name(dir, ".hull-save");
    let io_err = |e| SourceError::Io {
        what: out.display().to_string(),
        err: e,
    };
    let file = std::fs::File::create_new(&tmp).map_err(io_err)?;
    let res = write(&mut std::io::BufWriter::new(&file))
        .and_then(|()| file.sync_all().map_err(io_err))
        .and_then(|()| std::fs::rename(&tmp, out).map_err(io_err));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// The OCI layout's index.json for `saved`, and every blob it needs.
fn oci_index(store: &ImageStore, saved: &[Saved]) -> Result<(Vec<u8>, Vec<Digest>), SourceError> {
    let mut manifests = Vec::new();
    let mut blobs: Vec<Digest> = Vec::new();
    for s in saved {
        let m = &s.digest;
        let manifest = &s.manifest;
        let size = store.blobs().read(m).map_err(StoreError::from)?.len() as u64;
        let mut desc = Descriptor::new(
            manifest
                .media_type
                .as_deref()
                .unwrap_or(crate::manifest::MT_OCI_MANIFEST),
            m,
            size,
        );
        if let Some(full) = &s.name {
            let mut ann = BTreeMap::new();
            ann.insert(
                "org.opencontainers.image.ref.name".to_string(),
                full.clone(),
            );
            ann.insert("io.containerd.image.name".to_string(), full.clone());
            desc.annotations = Some(ann);
        }
        manifests.push(desc);
        blobs.push(m.clone());
        blobs.push(crate::store::dig_field(&manifest.config.digest)?);
        for l in &manifest.layers {
            blobs.push(crate::store::dig_field(&l.digest)?);
        }
    }
    blobs.sort();
    blobs.dedup();
    let index = Index {
        schema_version: 2,
        media_type: Some(MT_OCI_INDEX.into()),
        manifests,
    };
    let index = serde_json::to_vec(&index)
        .map_err(|e| crate::store::io_err("index.json")(std::io::Error::other(e)))?;
    Ok((index, blobs))
}

/// The OCI layout as a directory: written under a temp name beside `out`, then renamed, so
/// `out` appears complete or not at all (an existing `out` is refused).
fn save_dir(store: &ImageStore, saved: &[Saved], out: &Path) -> Result<(), SourceError> {
    let io_err = |e| SourceError::Io {
        what: out.display().to_string(),
        err: e,
    };
    if out == Path::new("-") {
        return Err(SourceError::Invalid {
            path: "-".into(),
            reason: "an oci-dir layout needs a directory: use -o DIR".into(),
        });
    }
    if out.exists() {
        return Err(io_err(std::io::ErrorKind::AlreadyExists.into()));
    }
    let (index, blobs) = oci_index(store, saved)?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = crate::store::temp_name(parent, ".hull-save");
    let res = (|| {
        std::fs::create_dir_all(tmp.join("blobs/sha256"))?;
        std::fs::write(tmp.join("oci-layout"), OCI_LAYOUT)?;
        std::fs::write(tmp.join("index.json"), &index)?;
        for d in &blobs {
            std::fs::copy(
                store.blobs().path(d),
                tmp.join("blobs/sha256").join(d.hex()),
            )?;
        }
        std::fs::rename(&tmp, out)
    })()
    .map_err(io_err);
    if res.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    res
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

fn write_tar(
    store: &ImageStore,
    w: &mut dyn Write,
    index: &[u8],
    blobs: &[Digest],
) -> Result<(), SourceError> {
    let err = |e| SourceError::Io {
        what: "writing OCI archive".into(),
        err: e,
    };
    let mut b = tar::Builder::new(w);
    b.append_data(
        &mut header(OCI_LAYOUT.len() as u64, false),
        "oci-layout",
        OCI_LAYOUT,
    )
    .map_err(err)?;
    b.append_data(&mut header(index.len() as u64, false), "index.json", index)
        .map_err(err)?;
    b.append_data(&mut header(0, true), "blobs/", std::io::empty())
        .map_err(err)?;
    b.append_data(&mut header(0, true), "blobs/sha256/", std::io::empty())
        .map_err(err)?;
    for d in blobs {
        let f = store.blobs().open(d).map_err(StoreError::from)?;
        let len = f.metadata().map_err(err)?.len();
        b.append_data(
            &mut header(len, false),
            format!("blobs/sha256/{}", d.hex()),
            f,
        )
        .map_err(err)?;
    }
    b.into_inner().map_err(err)?.flush().map_err(err)
}
