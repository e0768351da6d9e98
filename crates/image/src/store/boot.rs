//! What a power loss may leave in the layer store, and its removal: a layer dir renamed into
//! place before the store's flush keeps its names without their data. Within one boot a dir
//! in place is whole, whoever renamed it there (its unpack was verified first), so imports
//! keep it; the store's first open after each boot removes the layer dirs the database does
//! not record, under the exclusive lock, before any import of that boot can add one. The
//! root's `boot-id` says which boot did that last.

use std::borrow::Borrow;
use std::io::Write;

use rusqlite::Connection;

use super::{io_err, ImageStore, StoreError};

/// Which boot last settled the store: the kernel's boot id then.
const MARKER: &str = "boot-id";
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

impl<C: Borrow<Connection>> ImageStore<C> {
    /// Removes the unrecorded layer dirs of earlier boots, once per boot.
    pub(crate) fn settle_after_boot(&self) -> Result<(), StoreError> {
        let boot =
            std::fs::read_to_string(BOOT_ID).map_err(io_err(format!("reading {BOOT_ID}")))?;
        let marker = self.root().join(MARKER);
        let settled = || std::fs::read_to_string(&marker).is_ok_and(|m| m == boot);
        if settled() {
            return Ok(());
        }
        let _lock = self.lock_exclusive()?;
        if settled() {
            return Ok(());
        }
        self.remove_unrecorded_layers()?;
        // Lost in a crash, the marker only makes the next open look again.
        let tmp = super::temp_name(&self.root().join("tmp"), "boot-id");
        std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(boot.as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, &marker))
            .map_err(io_err(format!("writing {}", marker.display())))
    }
}
