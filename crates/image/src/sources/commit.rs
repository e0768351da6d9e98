//! `commit`: a container's overlay upper dir becomes a new top layer and a new image.
//! [`crate::archive`] writes the layer: overlay whiteouts (char 0:0) go back to `.wh.NAME`
//! entries and opaque dirs to `.wh..wh..opq`; overlay's own xattrs are left out.

use std::io;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::SourceError;
use crate::archive::TarWriter;
use crate::digest::{Digest, HashingWriter};
use crate::store::{ImageStore, StoreError};

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
    // Read through descriptors: with --pause=false the container may swap a directory for a
    // symlink while it is read, which must not lead out of the upper dir.
    let top = nix::fcntl::open(
        upper,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err(e.into()))?;
    let mut writer = TarWriter::layer(HashingWriter::new(gz));
    writer.append_top(&top, None).map_err(io_err)?;
    let hashed = writer.finish().map_err(io_err)?;
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
    let (chain, stats) = pending.commit(parent.as_ref()).map_err(StoreError::from)?;
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
