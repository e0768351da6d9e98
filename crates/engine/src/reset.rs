//! `system reset`: a root emptied of everything it holds, as podman's: its containers (killed
//! first, their anonymous volumes with them), its volumes, its networks (the default one too,
//! whose bridge and nftables entries otherwise outlive the root), its image mounts, and then
//! its directory, images and hull.db included.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Engine, EngineError};

/// How long a removed container's monitor is waited for (as `rm -f` waits).
const MONITOR_EXIT: Duration = Duration::from_secs(30);

/// Removes everything `root` holds, and the directory itself. A root that does not exist is
/// left as it is.
pub fn reset(root: &Path) -> Result<(), EngineError> {
    if !root.exists() {
        return Ok(());
    }
    if hull_db::path(root).exists() {
        let mut engine = Engine::open(root)?;
        let records = engine.list()?;
        for record in &records {
            match engine.remove_with_volumes(&record.id, true) {
                // Removed by another command meanwhile.
                Ok(_) | Err(EngineError::NoSuchContainer(_)) => {}
                Err(e) => return Err(e),
            }
        }
        // A monitor still tearing its container down writes under the root.
        for record in &records {
            crate::control::wait_monitor(record, MONITOR_EXIT);
        }
        for volume in engine.volumes()? {
            engine.volume_remove(&volume.name)?;
        }
        hull_net::engine::Net::open(root)?.remove_all_networks()?;
    }
    for target in mounts_under(root)? {
        hull_image::overlay::unmount(&target)?;
    }
    remove_root(root)
}

/// Mount points under `root` (image mounts: the containers' are gone with them), deepest first.
fn mounts_under(root: &Path) -> Result<Vec<PathBuf>, EngineError> {
    let root = std::fs::canonicalize(root)
        .map_err(EngineError::io(format!("resolving {}", root.display())))?;
    let mut found: Vec<PathBuf> = hull_image::overlay::mount_points()
        .into_iter()
        .filter(|p| p.starts_with(&root))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    Ok(found)
}

/// Deletes the root's directory. A removed container's monitor may still be emptying the
/// trash under it for a moment: entries vanishing meanwhile make another pass.
fn remove_root(root: &Path) -> Result<(), EngineError> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir_all(root) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !root.exists() => return Ok(()),
            Err(_) if tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(EngineError::io(format!("removing {}", root.display()))(e)),
        }
    }
}
