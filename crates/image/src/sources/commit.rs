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

use super::import::{finish_image, unpack_blob};
use super::SourceError;
use crate::digest::{Digest, HashingWriter};
use crate::store::{ImageStore, StoreError};
use crate::sys;

/// Turns `upper` into a layer on top of `base` (an image name or id; `None` for a first
/// layer) and records the new image under `name`.
pub fn commit(
    store: &mut ImageStore,
    upper: &Path,
    base: Option<&str>,
    name: Option<&str>,
) -> Result<Digest, SourceError> {
    let _lock = store.lock_shared()?;
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
    let parent = match base.as_ref().and_then(|b| b.2.clone()) {
        Some(p) => Some(crate::store::dig_field(&p)?),
        None => None,
    };
    let layer = unpack_blob(store, &blob, size, parent.as_ref(), Some(&diff_id))?;
    let names: Vec<String> = name.map(|n| vec![n.to_string()]).unwrap_or_default();
    let base_ref = base.as_ref().map(|(m, c, _)| (m, c.as_slice()));
    Ok(finish_image(store, base_ref, layer, "hull commit", &names)?)
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
