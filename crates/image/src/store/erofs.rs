//! Layers as erofs images, for microVMs: each unpacked layer turned once into a read-only erofs
//! file system (`layers/<chain>.erofs`, beside `layers/<chain>/`) that a VMM attaches as a
//! read-only disk. Every VM of an image opens the same files, so the host keeps one copy of each
//! layer on disk and in its page cache. The file is made by mkfs.erofs (Debian's erofs-utils) in
//! the store's temp dir and renamed into place without replacing one already there, so VMs
//! started together end up on one file; it goes with its layer ([`LayerStore::remove`]).
//! Uncompressed: the guest reads it straight from the page cache, with no decompression in a
//! guest that may run under emulation.

use std::borrow::Borrow;
use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};

use rusqlite::Connection;

use super::layers::{LayerError, LayerStore};
use super::{ImageStore, StoreError};
use crate::digest::Digest;

/// The program that writes erofs images.
pub const MKFS_EROFS: &str = "mkfs.erofs";

impl LayerStore {
    /// Where the erofs image of layer `chain` is (made or not).
    pub fn erofs_path(&self, chain: &Digest) -> PathBuf {
        self.dir().join(format!("{}.erofs", chain.hex()))
    }

    /// The erofs image of the unpacked layer `chain`, made the first time it is asked for.
    pub fn erofs(&self, chain: &Digest) -> Result<PathBuf, LayerError> {
        let dest = self.erofs_path(chain);
        if dest.is_file() {
            return Ok(dest);
        }
        let src = self.path(chain);
        let io_err = |path: &std::path::Path| {
            let path = path.display().to_string();
            move |err| LayerError::Io { path, err }
        };
        if !src.is_dir() {
            return Err(io_err(&src)(io::Error::from(io::ErrorKind::NotFound)));
        }
        let tmp = super::temp_name(self.tmp(), "erofs");
        let guard = TempFile(tmp.clone());
        // -x1: the overlay xattrs of the unpacked layer (opaque dirs) are kept, and an xattr
        // that cannot be read is an error rather than dropped.
        let out = Command::new(MKFS_EROFS)
            .args(["--quiet", "-x1"])
            .arg(&tmp)
            .arg(&src)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| LayerError::Erofs {
                chain: chain.to_string(),
                why: format!("cannot run {MKFS_EROFS} (Debian's erofs-utils): {e}"),
            })?;
        if !out.status.success() {
            return Err(LayerError::Erofs {
                chain: chain.to_string(),
                why: format!(
                    "{MKFS_EROFS} failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        // Durable before it is visible: a VM must never read a half-written image.
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&tmp))?;
        match renameat2(
            AT_FDCWD,
            &tmp,
            AT_FDCWD,
            &dest,
            RenameFlags::RENAME_NOREPLACE,
        ) {
            // Another process made it meanwhile: its file is the one every VM shares.
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(io_err(&dest)(e.into())),
        }
        drop(guard);
        Ok(dest)
    }
}

impl<C: Borrow<Connection>> ImageStore<C> {
    /// The chain ids of `image`'s layers, top layer first (the order of overlayfs's lowerdir).
    fn chains_top_first(&self, image: &str) -> Result<Vec<Digest>, StoreError> {
        let manifest = self.resolve(image)?;
        let mut chains = Vec::new();
        for l in self.db.layers_of(&manifest.to_string())? {
            chains.push(l.chain_id.parse().map_err(|_| {
                StoreError::NotFound(format!("layer {} of image {image}", l.chain_id))
            })?);
        }
        chains.reverse();
        Ok(chains)
    }

    /// The erofs images of `image`'s layers, top layer first, made where missing.
    pub fn layer_disks(&self, image: &str) -> Result<Vec<PathBuf>, StoreError> {
        // Adding content: a prune must not remove a layer half-way through.
        let _lock = self.lock_shared()?;
        let chains = self.chains_top_first(image)?;
        Ok(chains
            .iter()
            .map(|c| self.layers.erofs(c))
            .collect::<Result<_, _>>()?)
    }

    /// Where the erofs images of `image`'s layers are, top layer first, made or not.
    pub fn layer_disk_paths(&self, image: &str) -> Result<Vec<PathBuf>, StoreError> {
        let chains = self.chains_top_first(image)?;
        Ok(chains.iter().map(|c| self.layers.erofs_path(c)).collect())
    }
}

/// Removes a temp file on drop; after the rename there is nothing left to remove.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
