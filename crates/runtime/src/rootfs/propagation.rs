//! Mount propagation around the rootfs: / made rslave (or rootfsPropagation) so nothing the
//! container mounts reaches the host, the rootfs's parent mount made private (pivot_root refuses
//! a shared one) and the rootfs bind-mounted onto itself so it is a mount point.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use hull_sys::mountinfo;
use nix::mount::{mount, MsFlags};

use super::error::{Context, RootfsError};

const NONE: Option<&str> = None;

/// Before any mount: set / 's propagation, privatise the rootfs's parent mount, bind the rootfs.
pub(super) fn prepare_root(rootfs: &Path, propagation: Option<MsFlags>) -> Result<(), RootfsError> {
    let flags = propagation.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    mount(NONE, "/", NONE, flags, NONE).ctx(|| format!("set propagation {flags:?} on /"))?;
    let parent = mount_point_of(rootfs)?;
    mount(NONE, &parent, NONE, MsFlags::MS_PRIVATE, NONE)
        .ctx(|| format!("make {} private", parent.display()))?;
    bind_onto_itself(rootfs)
}

/// The rootfs made a mount point, with the mounts below it.
pub(super) fn bind_onto_itself(rootfs: &Path) -> Result<(), RootfsError> {
    mount(
        Some(rootfs),
        rootfs,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )
    .ctx(|| format!("bind rootfs {} onto itself", rootfs.display()))
}

/// After pivot_root: rootfsPropagation, when given, applies to the new /.
pub(super) fn after_pivot(propagation: Option<MsFlags>) -> Result<(), RootfsError> {
    match propagation {
        Some(flags) => mount(NONE, "/", NONE, flags, NONE)
            .ctx(|| format!("linux.rootfsPropagation: set {flags:?} on /")),
        None => Ok(()),
    }
}

/// The mount point (from /proc/self/mountinfo) of the mount that contains `path`.
fn mount_point_of(path: &Path) -> Result<PathBuf, RootfsError> {
    let info = mountinfo::read_self().ctx(|| "read /proc/self/mountinfo")?;
    let best = mountinfo::parse(&info)
        .filter_map(Result::ok)
        .map(|m| m.mount_point())
        .filter(|mp| path.starts_with(mp))
        .max_by_key(|mp| mp.as_os_str().len());
    Ok(best.map_or_else(|| PathBuf::from("/"), Cow::into_owned))
}
