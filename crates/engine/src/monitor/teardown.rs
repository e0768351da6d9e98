//! Removing what a container holds, in the reverse order it was made: the runtime's container
//! (its processes, cgroups and state), its network (veth, address lease, nft rules), its overlay
//! root; and, when the container itself goes, its directory and its hold on the image. The
//! monitor runs this when the container exits; the next `hull` command runs it for a container
//! whose monitor died. Each step is idempotent, so a teardown cut short is simply run again.

use std::path::Path;

use rusqlite::Connection;

use crate::error::EngineError;
use crate::paths;

/// Removes the container's kernel objects; returns what failed, as one line each (every step
/// is tried even when an earlier one failed).
pub(crate) fn kernel_objects(root: &Path, conn: &mut Connection, id: &str) -> Vec<String> {
    let mut failed = Vec::new();
    // A VM's first: its VMM holds the layer disks.
    failed.extend(crate::vm::teardown(root, id));
    if let Err(e) = hull_runtime::Runtime::new(paths::runtime_root(root)).delete(id, true) {
        failed.push(format!("runtime: {e}"));
    }
    if let Err(e) = hull_net::engine::Net::with_conn(conn).detach(id) {
        failed.push(format!("network: {e}"));
    }
    if let Err(e) = hull_image::overlay::unmount_container(&paths::container_dir(root, id)) {
        failed.push(format!("rootfs: {e}"));
    }
    failed
}

/// Removes the container's directory (bundle, upper layer, logs) and its hold on the image.
pub(crate) fn files(root: &Path, conn: &Connection, id: &str) -> Result<(), EngineError> {
    to_trash(root, conn, id)?;
    empty_trash(root);
    Ok(())
}

/// Takes the container's directory out of `containers/` in one rename (into `trash/`) and drops
/// its hold on the image; [`empty_trash`] deletes the files, which takes a while for an upper
/// layer, later (the monitor does it after its final report).
pub(crate) fn to_trash(root: &Path, conn: &Connection, id: &str) -> Result<(), EngineError> {
    let dir = paths::container_dir(root, id);
    let trash = paths::trash_dir(root);
    std::fs::create_dir_all(&trash)
        .map_err(EngineError::io(format!("creating {}", trash.display())))?;
    match std::fs::rename(&dir, trash.join(id)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(EngineError::io(format!("removing {}", dir.display()))(e)),
    }
    hull_image::ImageStore::release_with(conn, id)?;
    Ok(())
}

/// Deletes what [`to_trash`] set aside, also what a process killed meanwhile left there, but
/// for a container directory the next container can reuse ([`crate::spare`]). Best effort:
/// what cannot be deleted now is tried again by the next one.
pub(crate) fn empty_trash(root: &Path) {
    let Ok(entries) = std::fs::read_dir(paths::trash_dir(root)) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let container = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()));
        if !(container && crate::spare::recycle(root, &path)) {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}
