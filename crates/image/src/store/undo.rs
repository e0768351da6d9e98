//! All or nothing for the operations that add images from outside (`import`, `load`): what a
//! failed one added (its input stored as a blob, a config, unpacked layers and their rows) is
//! removed before the error is returned, so a rejected input leaves the store as it was.

use std::borrow::Borrow;
use std::collections::HashSet;

use rusqlite::Connection;

use super::{ImageStore, StoreError};
use crate::digest::Digest;

/// The blobs and layer dirs present before an operation.
struct Snapshot {
    blobs: HashSet<Digest>,
    layers: HashSet<String>,
}

impl<C: Borrow<Connection>> ImageStore<C> {
    fn snapshot(&self) -> Snapshot {
        let layers = std::fs::read_dir(self.layers.dir())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        Snapshot {
            blobs: self.blobs.list().unwrap_or_default().into_iter().collect(),
            layers,
        }
    }

    /// Runs `op`; when it fails, removes the blobs and layers that appeared meanwhile and that
    /// no image references. `op` must release the store lock it takes before it returns: the
    /// removal runs under the exclusive lock, when no other process is half-way through adding
    /// content (adders hold the shared lock throughout), so whatever another process added
    /// meanwhile is recorded by then and stays.
    pub fn all_or_nothing<T, E>(
        &mut self,
        op: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let before = self.snapshot();
        let res = op(self);
        if res.is_err() {
            self.remove_new(&before)?;
        }
        res
    }

    fn remove_new(&self, before: &Snapshot) -> Result<(), StoreError> {
        let _lock = self.lock_exclusive()?;
        let after = self.snapshot();
        let used = self.db.used_layers()?;
        for name in after.layers.difference(&before.layers) {
            let chain = format!("sha256:{name}");
            let Ok(d) = chain.parse::<Digest>() else {
                continue;
            };
            if used.contains(&chain) {
                continue;
            }
            self.db.forget_layer(&chain)?;
            self.layers
                .remove(&d)
                .map_err(super::io_err(format!("removing layer {chain}")))?;
        }
        let live = self.db.live_blobs()?;
        for d in after.blobs.difference(&before.blobs) {
            if !live.contains(&d.to_string()) {
                self.blobs
                    .remove(d)
                    .map_err(super::io_err(format!("removing blob {d}")))?;
            }
        }
        Ok(())
    }
}
