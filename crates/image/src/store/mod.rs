//! The image store under the engine root: blobs, unpacked layers, SQLite records, and the
//! operations on images (resolve, tag, remove, prune, disk usage, rootfs for a container).

mod blobs;
mod boot;
mod db;
mod erofs;
mod gc;
mod images;
mod layers;
mod mounts;
mod undo;

use std::borrow::Borrow;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use rusqlite::Connection;

pub use blobs::{BlobError, BlobStore, TempBlob};
pub use db::{Db, DbError, ImageRow, LayerRow};
pub use erofs::MKFS_EROFS;
pub use images::{
    dig_field, du, BlobFetch, DiskUsage, ImageInfo, ImageUsage, PruneReport, RemoveReport, Rootfs,
};
pub use layers::{LayerError, LayerStore, PendingLayer};

use crate::digest::Digest;
use crate::manifest::ManifestError;
use crate::reference::ReferenceError;

/// Errors from store operations.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("image {0:?} not found")]
    NotFound(String),
    #[error("image id prefix {0:?} matches several images: give more digits")]
    Ambiguous(String),
    #[error("unable to remove image {image} (must be forced): it is in use by {holders}")]
    InUse { image: String, holders: String },
    #[error("unable to delete image {image} (must be forced): it is referenced by several names ({names})")]
    MultipleNames { image: String, names: String },
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
    #[error(transparent)]
    Overlay(#[from] crate::overlay::OverlayError),
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    let what = what.into();
    move |err| StoreError::Io { what, err }
}

/// The image store of one engine root; its rows on a connection it owns (`C = Connection`,
/// [`ImageStore::open`]) or borrows ([`ImageStore::with_conn`]).
#[derive(Debug)]
pub struct ImageStore<C = Connection> {
    root: PathBuf,
    pub(crate) db: Db<C>,
    pub(crate) blobs: BlobStore,
    pub(crate) layers: LayerStore,
    lock: PathBuf,
}

/// A held store lock: shared while adding content, exclusive while deleting it.
#[derive(Debug)]
pub struct StoreLock(#[allow(dead_code)] Flock<File>);

impl ImageStore {
    /// Opens (creating if needed) the store under `root`, and removes temp files and dirs
    /// that crashed or killed hull processes left behind, and layers a power loss left.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let conn = Db::open(root)?.conn;
        ImageStore::with_conn(root, conn)
    }
}

impl<C: Borrow<Connection>> ImageStore<C> {
    /// [`ImageStore::open`] on `conn`, a connection to `root`'s hull.db the caller has open
    /// (each open parses hull.db's whole schema: the engine lends its own).
    pub fn with_conn(root: &Path, conn: C) -> Result<Self, StoreError> {
        prepare(root)?;
        let store = Self::prepared(root, conn);
        store.settle_after_boot()?;
        Ok(store)
    }

    /// [`ImageStore::with_conn`] for a root whose store this process has already opened: its
    /// directories made and its temp files cleaned once are enough (an engine opens the store
    /// several times in one `run`).
    pub fn prepared(root: &Path, conn: C) -> Self {
        let tmp = root.join("tmp");
        Self {
            root: root.to_path_buf(),
            db: Db::with_conn(conn),
            blobs: BlobStore::new(root.join("blobs/sha256"), tmp.clone()),
            layers: LayerStore::new(root.join("layers"), tmp),
            lock: root.join("image.lock"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn layers(&self) -> &LayerStore {
        &self.layers
    }

    pub fn db(&self) -> &Db<C> {
        &self.db
    }

    fn flock(&self, arg: FlockArg) -> Result<StoreLock, StoreError> {
        // A fresh open file description per lock: flock locks belong to descriptions, and a
        // dup would let one lock's release drop another's.
        let f = File::options()
            .write(true)
            .open(&self.lock)
            .map_err(io_err("store lock"))?;
        Flock::lock(f, arg)
            .map(StoreLock)
            .map_err(|(_, e)| StoreError::Io {
                what: "store lock".into(),
                err: e.into(),
            })
    }

    /// Held while adding content, so a concurrent prune cannot remove it half-recorded.
    pub fn lock_shared(&self) -> Result<StoreLock, StoreError> {
        self.flock(FlockArg::LockShared)
    }

    /// Held while removing content.
    pub fn lock_exclusive(&self) -> Result<StoreLock, StoreError> {
        self.flock(FlockArg::LockExclusive)
    }

    /// Flushes everything written under the root (one syncfs instead of an fsync per file);
    /// called before the database records content, so a record never outlives its data.
    pub fn sync(&self) -> Result<(), StoreError> {
        let f = File::open(&self.root).map_err(io_err("flushing the store"))?;
        nix::unistd::syncfs(std::os::fd::AsFd::as_fd(&f))
            .map_err(|e| io_err("flushing the store")(e.into()))
    }

    /// Whether blob `d` is present and trustworthy: recorded, or re-verified.
    pub fn has_blob(&self, d: &Digest) -> Result<bool, StoreError> {
        if !self.blobs.exists(d) {
            return Ok(false);
        }
        Ok(self.db.live_blobs()?.contains(&d.to_string()) || self.blobs.verify(d))
    }
}

/// The store's directories (with their modes), its lock file, and no leftover temp files.
fn prepare(root: &Path) -> Result<(), StoreError> {
    let tmp = root.join("tmp");
    for d in [
        root.to_path_buf(),
        root.join("blobs/sha256"),
        root.join("layers"),
        tmp.clone(),
        root.join("mounts"),
        root.join("empty"),
    ] {
        std::fs::create_dir_all(&d).map_err(io_err(format!("creating {}", d.display())))?;
    }
    // Layers hold setuid binaries of every image: other users must not reach them.
    for d in ["layers", "tmp", "mounts"] {
        let p = root.join(d);
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(io_err(format!("restricting {}", p.display())))?;
    }
    // Layers are unpacked in tmp/: a placement hint only, so a filesystem without
    // inode flags loses nothing.
    if let Ok(d) = File::open(&tmp) {
        let _ = crate::sys::set_topdir(&d);
    }
    let lock_path = root.join("image.lock");
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(format!("opening {}", lock_path.display())))?;
    clean_temp(root)
}

/// Removes the temp files and dirs that crashed or killed hull processes left behind.
fn clean_temp(root: &Path) -> Result<(), StoreError> {
    let tmp = root.join("tmp");
    let entries = std::fs::read_dir(&tmp).map_err(io_err(format!("reading {}", tmp.display())))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let owner = name.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = owner.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if alive {
            continue;
        }
        let p = e.path();
        let res = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        res.map_err(io_err(format!("removing leftover {}", p.display())))?;
    }
    Ok(())
}

/// A fresh name in `dir`, prefixed by our pid so that cleanup spares live processes' files.
pub(crate) fn temp_name(dir: &Path, kind: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dir.join(format!("{}-{kind}-{nanos}-{n}", std::process::id()))
}
