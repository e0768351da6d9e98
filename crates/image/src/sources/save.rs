//! `save`: images to an OCI image layout tar (readable by `skopeo copy oci-archive:` and by
//! `hull load`), written to a temp file and renamed into place.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use super::SourceError;
use crate::digest::Digest;
use crate::manifest::{Descriptor, Index, MT_OCI_INDEX};
use crate::store::{ImageStore, StoreError};

fn header(size: u64, dir: bool) -> tar::Header {
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

/// Writes `images` to `out` ("-" for stdout) as an OCI layout tar.
pub fn save(store: &ImageStore, images: &[String], out: &Path) -> Result<(), SourceError> {
    let mut manifests = Vec::new();
    let mut blobs: Vec<Digest> = Vec::new();
    for name in images {
        let m = store.resolve(name)?;
        let manifest = store.manifest(&m)?;
        let size = store.blobs().read(&m).map_err(StoreError::from)?.len() as u64;
        let mut desc = Descriptor::new(
            manifest
                .media_type
                .as_deref()
                .unwrap_or(crate::manifest::MT_OCI_MANIFEST),
            &m,
            size,
        );
        let full = crate::reference::normalize_tag(name).ok().filter(|n| {
            store.db().manifest_for_tag(n).ok().flatten().as_deref() == Some(&m.to_string())
        });
        if let Some(full) = full {
            let mut ann = BTreeMap::new();
            ann.insert(
                "org.opencontainers.image.ref.name".to_string(),
                full.clone(),
            );
            ann.insert("io.containerd.image.name".to_string(), full);
            desc.annotations = Some(ann);
        }
        manifests.push(desc);
        blobs.push(m);
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
    if out == Path::new("-") {
        return write_tar(store, std::io::stdout().lock(), &index, &blobs);
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
    let res = write_tar(store, std::io::BufWriter::new(&file), &index, &blobs)
        .and_then(|()| file.sync_all().map_err(io_err))
        .and_then(|()| std::fs::rename(&tmp, out).map_err(io_err));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

fn write_tar<W: Write>(
    store: &ImageStore,
    w: W,
    index: &[u8],
    blobs: &[Digest],
) -> Result<(), SourceError> {
    let err = |e| SourceError::Io {
        what: "writing OCI archive".into(),
        err: e,
    };
    let mut b = tar::Builder::new(w);
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    b.append_data(
        &mut header(layout.len() as u64, false),
        "oci-layout",
        &layout[..],
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
