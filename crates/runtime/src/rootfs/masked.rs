//! After pivot_root: maskedPaths (a directory gets an empty read-only tmpfs, anything else a bind
//! of /dev/null; a missing path is skipped) and readonlyPaths (a recursive read-only bind of the
//! path onto itself; missing: skipped). Both through the new mount API on resolved descriptors, so
//! they need no /proc.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use hull_sys::mount_api::{
    mount_setattr, move_mount_fd, FsContext, MountAttr, AT_EMPTY_PATH, AT_RECURSIVE,
    MOUNT_ATTR_RDONLY,
};
use nix::errno::Errno;
use nix::sys::stat::{fstat, major, minor, SFlag};

use super::bind::clone_fd;
use super::error::{Context, RootfsError};
use super::resolve::{file_type, Root};

/// The path's descriptor, or None when it does not exist (skipped, as runc does).
fn existing(root: &Root, path: &Path) -> Result<Option<OwnedFd>, RootfsError> {
    match root.resolve(path) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
        Err(e) => Err(e).ctx(|| format!("resolve {}", path.display())),
    }
}

pub(super) fn readonly_path(root: &Root, path: &Path) -> Result<(), RootfsError> {
    let what = || format!("linux.readonlyPaths {}", path.display());
    let Some(fd) = existing(root, path)? else {
        return Ok(());
    };
    let tree = clone_fd(fd.as_fd(), true).ctx(|| format!("{}: clone", what()))?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        ..MountAttr::default()
    };
    mount_setattr(tree.as_fd(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr)
        .ctx(|| format!("{}: make read-only", what()))?;
    move_mount_fd(tree.as_fd(), fd.as_fd()).ctx(|| format!("{}: attach", what()))
}

pub(super) fn mask_path(
    root: &Root,
    path: &Path,
    dev_null: BorrowedFd<'_>,
) -> Result<(), RootfsError> {
    let what = || format!("linux.maskedPaths {}", path.display());
    let Some(fd) = existing(root, path)? else {
        return Ok(());
    };
    let tree = if file_type(fd.as_fd()).ctx(|| format!("{}: stat", what()))? == SFlag::S_IFDIR {
        // As runc's: source "tmpfs" and no options (read-only and empty, it needs no size).
        let ctx = FsContext::open("tmpfs").ctx(|| format!("{}: fsopen tmpfs", what()))?;
        ctx.set_string("source", "tmpfs")
            .ctx(|| format!("{}: configure tmpfs", what()))?;
        ctx.mount(MOUNT_ATTR_RDONLY)
            .ctx(|| format!("{}: create tmpfs", what()))?
    } else {
        clone_fd(dev_null, false).ctx(|| format!("{}: clone /dev/null", what()))?
    };
    move_mount_fd(tree.as_fd(), fd.as_fd()).ctx(|| format!("{}: attach", what()))
}

/// The container's /dev/null, checked to really be the null device: binding whatever a rootfs
/// calls /dev/null over a masked path would mask nothing.
pub(super) fn dev_null(root: &Root) -> Result<OwnedFd, RootfsError> {
    let fd = root
        .resolve(Path::new("/dev/null"))
        .ctx(|| "linux.maskedPaths: resolve /dev/null")?;
    let st = fstat(&fd).ctx(|| "linux.maskedPaths: stat /dev/null")?;
    let is_char = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    if !is_char || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3 {
        return Err(RootfsError::invalid(
            "linux.maskedPaths",
            "/dev/null in the container is not the null device",
        ));
    }
    Ok(fd)
}
