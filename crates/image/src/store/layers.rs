//! Unpacked layers by chain id under `layers/`: unpacked into a temp dir, checked against the
//! expected diff id, then renamed into place; the store flushes once (syncfs) before its
//! database records the layer. A dir already in place is whole (see [`super::boot`]), so it is
//! kept rather than replaced under whoever renamed it there.

use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::unpack::{self, UnpackError, UnpackOptions, UnpackStats};

/// Errors from the layer store.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error("layer {blob}: uncompressed content is {actual}, the image config says {expected}; nothing was stored")]
    DiffId {
        blob: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("layer dir {path}: {err}")]
    Io { path: String, err: io::Error },
    #[error("layer {chain}: cannot make its erofs image: {why}")]
    Erofs { chain: String, why: String },
}

#[derive(Debug, Clone)]
pub struct LayerStore {
    dir: PathBuf,
    tmp: PathBuf,
}

impl LayerStore {
    pub fn new(dir: PathBuf, tmp: PathBuf) -> Self {
        Self { dir, tmp }
    }

    pub fn path(&self, chain: &Digest) -> PathBuf {
        self.dir.join(chain.hex())
    }

    pub fn exists(&self, chain: &Digest) -> bool {
        self.path(chain).is_dir()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// Unpacks `input` as the layer above `parent`; returns its chain id and stats.
    /// `blob` names the layer in errors; `expected` is the config's diff id, when known.
    pub fn unpack(
        &self,
        input: impl Read + Send,
        parent: Option<&Digest>,
        expected: Option<&Digest>,
        blob: &str,
        opts: &UnpackOptions,
    ) -> Result<(Digest, UnpackStats), LayerError> {
        self.pending_with(expected, blob, |dir| unpack::unpack(input, dir, opts))?
            .commit(parent)
    }

    /// Unpacks into a temp dir and checks the diff id, but does not put the layer in place:
    /// a registry pull unpacks while the blob downloads, and commits only once the blob's
    /// digest is verified. Runs on the calling thread alone ([`unpack::unpack_inline`]).
    pub fn unpack_pending(
        &self,
        input: impl BufRead + Send,
        expected: Option<&Digest>,
        blob: &str,
        opts: &UnpackOptions,
    ) -> Result<PendingLayer, LayerError> {
        self.pending_with(expected, blob, |dir| {
            unpack::unpack_inline(input, dir, opts)
        })
    }

    /// [`LayerStore::unpack`] from a blob file: a plain tar is copied in the kernel.
    pub fn unpack_file(
        &self,
        file: &std::fs::File,
        parent: Option<&Digest>,
        expected: Option<&Digest>,
        blob: &str,
        opts: &UnpackOptions,
    ) -> Result<(Digest, UnpackStats), LayerError> {
        self.pending_with(expected, blob, |dir| unpack::unpack_file(file, dir, opts))?
            .commit(parent)
    }

    fn pending_with(
        &self,
        expected: Option<&Digest>,
        blob: &str,
        run: impl FnOnce(&Path) -> Result<UnpackStats, unpack::UnpackError>,
    ) -> Result<PendingLayer, LayerError> {
        let tmp = super::temp_name(&self.tmp, "layer");
        std::fs::create_dir(&tmp).map_err(|err| LayerError::Io {
            path: tmp.display().to_string(),
            err,
        })?;
        let guard = TempDir(tmp);
        let stats = run(&guard.0)?;
        if let Some(want) = expected {
            if *want != stats.diff_id {
                return Err(LayerError::DiffId {
                    blob: blob.to_string(),
                    expected: want.clone(),
                    actual: stats.diff_id,
                });
            }
        }
        Ok(PendingLayer {
            dir: guard,
            stats,
            layers: self.dir.clone(),
        })
    }

    /// Removes a layer dir, and its erofs image: the dir renamed out of the way first, so it
    /// vanishes atomically.
    pub fn remove(&self, chain: &Digest) -> io::Result<()> {
        match std::fs::remove_file(self.erofs_path(chain)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let tmp = super::temp_name(&self.tmp, "rm");
        match std::fs::rename(self.path(chain), &tmp) {
            Ok(()) => std::fs::remove_dir_all(&tmp),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A fully unpacked, verified layer waiting in a temp dir; dropped, it is removed.
#[derive(Debug)]
pub struct PendingLayer {
    dir: TempDir,
    stats: UnpackStats,
    layers: PathBuf,
}

impl PendingLayer {
    /// Renames the layer into place as the layer above `parent`. A dir already there is the
    /// same verified content, put there by a concurrent import or a crashed one in this boot
    /// (the store's first open after a boot removes what the database does not record), and
    /// may already be recorded and mounted: it is kept and this one dropped.
    /// Durability comes from [`super::ImageStore::sync`] before the layer is recorded.
    pub fn commit(self, parent: Option<&Digest>) -> Result<(Digest, UnpackStats), LayerError> {
        let chain = Digest::chain(parent, &self.stats.diff_id);
        let dest = self.layers.join(chain.hex());
        match std::fs::rename(&self.dir.0, &dest) {
            Ok(()) => std::mem::forget(self.dir),
            Err(_) if dest.is_dir() => drop(self.dir),
            Err(err) => {
                return Err(LayerError::Io {
                    path: dest.display().to_string(),
                    err,
                })
            }
        }
        Ok((chain, self.stats))
    }
}

/// Removes a temp dir on drop (error paths), unless forgotten.
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
