//! Where images come from and go to besides registries: OCI image layouts (dirs or tars),
//! docker-archive tars, plain rootfs tars (`import`), OCI layout tars (`save`), and a
//! container's upper dir (`commit`).

mod archive;
mod commit;
mod docker;
mod docker_save;
mod import;
mod layout;
mod save;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use archive::TarIndex;
pub use commit::{commit, commit_with, CommitSpec, ConfigEdit};
pub use docker::{load, load_docker_archive};
pub use import::import_tar;
pub use layout::load_layout;
pub use save::{save, SaveFormat};

use crate::store::{ImageStore, StoreError};

/// Errors from reading or writing image sources.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
    #[error("{archive}: not a valid tar archive: {reason}")]
    Archive { archive: String, reason: String },
    #[error("{archive}: missing {member}")]
    MissingMember { archive: String, member: String },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SourceError> for StoreError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Store(s) => s,
            other => StoreError::Io {
                what: "image source".into(),
                err: io::Error::other(other.to_string()),
            },
        }
    }
}

/// The files of an image err: source, whether it is a directory or a tar of one.
#[derive(Debug)]
pub enum Files {
    Dir(PathBuf),
    Tar(TarIndex),
}

impl Files {
    pub fn open(path: &Path, store: &ImageStore) -> Result<Self, SourceError> {
        if path.is_dir() {
            Ok(Files::Dir(path.to_path_buf()))
        } else {
            Ok(Files::Tar(TarIndex::open(path, &store.root().join("tmp"))?))
        }
    }

    pub fn exists(&self, rel: &str) -> bool {
        match self {
            Files::Dir(d) => d.join(rel).is_file(),
            Files::Tar(t) => t.contains(rel),
        }
    }

    pub fn read(&self, rel: &str) -> Result<Vec<u8>, SourceError> {
        match self {
            Files::Dir(d) => std::fs::read(d.join(rel)).map_err(|e| SourceError::Io {
                what: d.join(rel).display().to_string(),
                err: e,
            }),
            Files::Tar(t) => t.read_member(rel),
        }
    }

    pub fn reader(&self, rel: &str) -> Result<Box<dyn Read + '_>, SourceError> {
        match self {
            Files::Dir(d) => Ok(Box::new(std::fs::File::open(d.join(rel)).map_err(|e| {
                SourceError::Io {
                    what: d.join(rel).display().to_string(),
                    err: e,
                }
            })?)),
            Files::Tar(t) => Ok(t.open_member(rel)?.0),
        }
    }

    pub fn size(&self, rel: &str) -> Result<u64, SourceError> {
        match self {
            Files::Dir(d) => std::fs::metadata(d.join(rel))
                .map(|m| m.len())
                .map_err(|e| SourceError::Io {
                    what: d.join(rel).display().to_string(),
                    err: e,
                }),
            Files::Tar(t) => Ok(t.open_member(rel)?.1),
        }
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> SourceError {
    SourceError::Invalid {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}
