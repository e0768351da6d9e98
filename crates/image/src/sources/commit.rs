//! `commit`: a container's overlay upper dir becomes a new top layer and a new image.
//! Overlay whiteouts (char 0:0) go back to `.wh.NAME` entries and opaque dirs to
//! `.wh..wh..opq`; overlay's own xattrs are left out.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::SourceError;
use crate::digest::{Digest, HashingWriter};
use crate::store::{ImageStore, StoreError};
use crate::sys;

/// A change to an image config; its error says why the change cannot be made.
pub type ConfigEdit<'a> = dyn Fn(&mut serde_json::Value) -> Result<(), String> + 'a;

/// What a commit records beside the layer.
#[derive(Default)]
pub struct CommitSpec<'a> {
    /// Names (REPO:TAG) the new image gets.
    pub names: Vec<String>,
    /// The history entry's `created_by` (docker puts the container's command there).
    pub created_by: String,
    /// `-a`: the image's author.
    pub author: Option<String>,
    /// `-m`: the history entry's comment.
    pub comment: Option<String>,
    /// Applied to the new image config (the parent's, with the new layer) before it is stored:
    /// `commit -c` changes.
    pub edit: Option<&'a ConfigEdit<'a>>,
}

impl std::fmt::Debug for CommitSpec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitSpec")
            .field("names", &self.names)
            .field("created_by", &self.created_by)
            .finish_non_exhaustive()
    }
}

/// Turns `upper` into a layer on top of `base` (an image name or id; `None` for a first
/// layer) and records the new image under `name`; returns its id (the config digest).
pub fn commit(
    store: &mut ImageStore,
    upper: &Path,
    base: Option<&str>,
    name: Option<&str>,
) -> Result<Digest, SourceError> {
    let spec = CommitSpec {
        names: name.map(|n| vec![n.to_string()]).unwrap_or_default(),
        created_by: "hull commit".into(),
        ..Default::default()
    };
    commit_with(store, upper, base, &spec)
}

/// [`commit`] with everything a `hull commit` sets. All or nothing: the layer is archived,
/// unpacked and checked and the config built before anything is recorded, and what was put
/// in the store before a failure is taken out again, so a failed commit stores nothing.
pub fn commit_with(
    store: &mut ImageStore,
    upper: &Path,
    base: Option<&str>,
    spec: &CommitSpec<'_>,
) -> Result<Digest, SourceError> {
    let _lock = store.lock_shared()?;
    let mut added = Added::default();
    let result = commit_locked(store, upper, base, spec, &mut added);
    if result.is_err() {
        added.undo(store);
    }
    result
}

/// Blobs and the layer a commit put in the store, for [`Added::undo`].
#[derive(Default)]
struct Added {
    blobs: Vec<Digest>,
    layer: Option<Digest>,
}

impl Added {
    /// Removes what no recorded image uses (a blob the same content already had stays).
    fn undo(&self, store: &ImageStore) {
        if let Some(chain) = &self.layer {
            if store.db().forget_layer(&chain.to_string()).unwrap_or(false) {
                let _ = store.layers().remove(chain);
            }
        }
        let live = store.db().live_blobs().unwrap_or_default();
        for b in &self.blobs {
            if !live.contains(&b.to_string()) {
                let _ = store.blobs().remove(b);
            }
        }
    }
}

fn commit_locked(
    store: &mut ImageStore,
    upper: &Path,
    base: Option<&str>,
    spec: &CommitSpec<'_>,
    added: &mut Added,
) -> Result<Digest, SourceError> {
    let base = match base {
        Some(b) => {
            let m = store.resolve(b)?;
            let manifest = store.manifest(&m)?;
            let config = store
                .blobs()
                .read(&crate::store::dig_field(&manifest.config.digest)?)
                .map_err(StoreError::from)?;
            let top = store
                .db()
                .layers_of(&m.to_string())
                .map_err(StoreError::from)?
                .last()
                .map(|l| l.chain_id.clone());
            Some((manifest, config, top))
        }
        None => None,
    };
    let io_err = |e| SourceError::Io {
        what: format!("committing {}", upper.display()),
        err: e,
    };
    let temp = store.blobs().temp().map_err(io_err)?;
    let gz = flate2::write::GzEncoder::new(temp, flate2::Compression::fast());
    let mut builder = tar::Builder::new(HashingWriter::new(gz));
    builder.follow_symlinks(false);
    let mut links = HashMap::new();
    walk(&mut builder, upper, Path::new(""), &mut links).map_err(io_err)?;
    let hashed = builder.into_inner().map_err(io_err)?;
    let (gz, diff_id, _) = hashed.finish();
    let temp = gz.finish().map_err(io_err)?;
    let (blob, size) = store.blobs().commit(temp, None).map_err(StoreError::from)?;
    added.blobs.push(blob.clone());
    let parent = match base.as_ref().and_then(|b| b.2.clone()) {
        Some(p) => Some(crate::store::dig_field(&p)?),
        None => None,
    };
    let file = store.blobs().open(&blob).map_err(StoreError::from)?;
    let pending = store
        .layers()
        .unpack_pending(
            std::io::BufReader::new(file),
            Some(&diff_id),
            &blob.to_string(),
            &crate::unpack::UnpackOptions::default(),
        )
        .map_err(StoreError::from)?;
    let mut layers = base
        .as_ref()
        .map(|b| b.0.layers.clone())
        .unwrap_or_default();
    let mut diff_ids = match &base {
        Some((m, c, _)) => {
            crate::manifest::parse_config(c, &m.config.digest, m.layers.len())
                .map_err(StoreError::from)?
                .1
        }
        None => Vec::new(),
    };
    layers.push(crate::manifest::Descriptor::new(
        crate::manifest::MT_LAYER_GZIP,
        &blob,
        size,
    ));
    diff_ids.push(diff_id);
    let config = config_for(base.as_ref().map(|b| b.1.as_slice()), &diff_ids, spec)?;
    let config_digest = store
        .blobs()
        .put_bytes(&config, None)
        .map_err(StoreError::from)?;
    added.blobs.push(config_digest.clone());
    let m = crate::manifest::Manifest::oci(&config_digest, config.len() as u64, layers);
    let manifest = serde_json::to_vec(&m).map_err(|e| io_err(io::Error::other(e)))?;
    added.blobs.push(Digest::of(&manifest));
    let db = store.db();
    let (chain, stats) = pending
        .commit(parent.as_ref(), |c| {
            db.has_layer(&c.to_string()).unwrap_or(false)
        })
        .map_err(StoreError::from)?;
    if !db.has_layer(&chain.to_string()).map_err(StoreError::from)? {
        added.layer = Some(chain.clone());
    }
    store.sync()?;
    store
        .db()
        .add_layer(
            &chain.to_string(),
            &stats.diff_id.to_string(),
            parent.map(|p| p.to_string()).as_deref(),
            stats.tar_bytes,
        )
        .map_err(StoreError::from)?;
    store.record(&manifest, None, &spec.names)?;
    Ok(config_digest)
}

/// The parent's config with the new layer, a history entry and the commit's changes.
fn config_for(
    base: Option<&[u8]>,
    diff_ids: &[Digest],
    spec: &CommitSpec<'_>,
) -> Result<Vec<u8>, SourceError> {
    let mut config = crate::manifest::build_config(base, diff_ids, &spec.created_by);
    if let Some(author) = &spec.author {
        config["author"] = author.clone().into();
    }
    if let Some(entry) = config["history"].as_array_mut().and_then(|h| h.last_mut()) {
        if let Some(author) = &spec.author {
            entry["author"] = author.clone().into();
        }
        if let Some(comment) = &spec.comment {
            entry["comment"] = comment.clone().into();
        }
    }
    if let Some(edit) = spec.edit {
        edit(&mut config).map_err(|reason| SourceError::Invalid {
            path: "commit changes".into(),
            reason,
        })?;
    }
    serde_json::to_vec(&config).map_err(|e| SourceError::Io {
        what: "image config".into(),
        err: io::Error::other(e),
    })
}

type Builder<W> = tar::Builder<HashingWriter<W>>;

fn walk<W: Write>(
    b: &mut Builder<W>,
    dir: &Path,
    rel: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name();
        let rel_path = rel.join(&name);
        let md = std::fs::symlink_metadata(&path)?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            let mut wh = std::ffi::OsString::from(".wh.");
            wh.push(&name);
            empty_file(b, &md, &rel.join(wh))?;
            continue;
        }
        pax_xattrs(b, &path)?;
        if ft.is_dir() {
            let mut h = header(&md, tar::EntryType::Directory);
            b.append_data(&mut h, &rel_path, io::empty())?;
            if opaque(&path)? {
                empty_file(b, &md, &rel_path.join(".wh..wh..opq"))?;
            }
            walk(b, &path, &rel_path, links)?;
        } else if ft.is_symlink() {
            let mut h = header(&md, tar::EntryType::Symlink);
            b.append_link(&mut h, &rel_path, std::fs::read_link(&path)?)?;
        } else if ft.is_file() {
            regular(b, &path, &md, rel_path, links)?;
        } else {
            node(b, &md, &rel_path)?;
        }
    }
    Ok(())
}

/// An empty marker file (`.wh.NAME`, `.wh..wh..opq`).
fn empty_file<W: Write>(b: &mut Builder<W>, md: &std::fs::Metadata, at: &Path) -> io::Result<()> {
    let mut h = header(md, tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(0o644);
    b.append_data(&mut h, at, io::empty())
}

/// The entry's xattrs as a PAX header before it.
fn pax_xattrs<W: Write>(b: &mut Builder<W>, path: &Path) -> io::Result<()> {
    let xattrs = xattrs(path)?;
    if xattrs.is_empty() {
        return Ok(());
    }
    let pax: Vec<(String, Vec<u8>)> = xattrs
        .into_iter()
        .map(|(k, v)| (format!("SCHILY.xattr.{}", String::from_utf8_lossy(&k)), v))
        .collect();
    b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
}

/// A regular file, or a hard link to the first path of an inode seen before.
fn regular<W: Write>(
    b: &mut Builder<W>,
    path: &Path,
    md: &std::fs::Metadata,
    rel_path: PathBuf,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    if md.nlink() > 1 {
        if let Some(first) = links.get(&(md.dev(), md.ino())) {
            let mut h = header(md, tar::EntryType::Link);
            return b.append_link(&mut h, &rel_path, first);
        }
        links.insert((md.dev(), md.ino()), rel_path.clone());
    }
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut h = header(md, tar::EntryType::Regular);
    h.set_size(md.len());
    b.append_data(&mut h, &rel_path, f)
}

/// Devices and fifos; sockets are not part of a file system image and are left out.
fn node<W: Write>(b: &mut Builder<W>, md: &std::fs::Metadata, rel_path: &Path) -> io::Result<()> {
    let ft = md.file_type();
    let kind = if ft.is_char_device() {
        tar::EntryType::Char
    } else if ft.is_block_device() {
        tar::EntryType::Block
    } else if ft.is_fifo() {
        tar::EntryType::Fifo
    } else {
        return Ok(());
    };
    let mut h = header(md, kind);
    h.set_device_major(libc::major(md.rdev()))?;
    h.set_device_minor(libc::minor(md.rdev()))?;
    b.append_data(&mut h, rel_path, io::empty())
}

fn header(md: &std::fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(u64::from(md.uid()));
    h.set_gid(u64::from(md.gid()));
    h.set_mtime(u64::try_from(md.mtime()).unwrap_or(0));
    h.set_size(0);
    h
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// The xattrs a layer carries: all but overlayfs' own.
fn xattrs(p: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let c = cpath(p)?;
    let mut out = Vec::new();
    for k in sys::llistxattr(&c)? {
        if k.starts_with(b"trusted.overlay.") {
            continue;
        }
        if let Some(v) = sys::lgetxattr(&c, &k)? {
            out.push((k, v));
        }
    }
    Ok(out)
}

fn opaque(p: &Path) -> io::Result<bool> {
    Ok(sys::lgetxattr(&cpath(p)?, b"trusted.overlay.opaque")?.as_deref() == Some(b"y"))
}
