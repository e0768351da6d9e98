//! Bind mounts through the new mount API: open_tree(OPEN_TREE_CLONE) of the source, then
//! mount_setattr of the flags the options ask for (read-only included, so a read-only bind never
//! exists writable, and locked flags of the source are kept as they are), then move_mount onto the
//! already-resolved target descriptor.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use hull_sys::mount_api::{
    mount_setattr, move_mount_fd, open_tree, AT_EMPTY_PATH, AT_RECURSIVE, OPEN_TREE_CLONE,
};
use nix::mount::MsFlags;

use super::error::{Context, RootfsError};
use super::options::bind_attr;

/// A detached copy of the mount (tree, when `recursive`) at host path `source`.
pub(super) fn clone_tree(source: &Path, recursive: bool) -> nix::Result<OwnedFd> {
    let cwd = nix_cwd();
    let flags = OPEN_TREE_CLONE | if recursive { AT_RECURSIVE } else { 0 };
    let path = source.to_str().ok_or(nix::errno::Errno::EINVAL)?;
    open_tree(cwd, path, flags)
}

/// A detached copy of the mount (tree) at the already-open `fd`.
pub(super) fn clone_fd(fd: BorrowedFd<'_>, recursive: bool) -> nix::Result<OwnedFd> {
    let flags = OPEN_TREE_CLONE | AT_EMPTY_PATH | if recursive { AT_RECURSIVE } else { 0 };
    open_tree(fd, "", flags)
}

fn nix_cwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is a sentinel the kernel interprets, never closed.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

/// Apply the per-mount flags of `flags`/`cleared` to the detached `tree` and attach it on
/// `target`. `what` names the mount in errors.
pub(super) fn attach(
    tree: OwnedFd,
    target: BorrowedFd<'_>,
    flags: MsFlags,
    cleared: MsFlags,
    what: &str,
) -> Result<(), RootfsError> {
    let attr = bind_attr(flags, cleared);
    if attr.attr_set != 0 || attr.attr_clr != 0 {
        mount_setattr(tree.as_fd(), "", AT_EMPTY_PATH, &attr)
            .ctx(|| format!("{what}: set mount flags {flags:?}"))?;
    }
    move_mount_fd(tree.as_fd(), target).ctx(|| format!("{what}: attach bind mount"))
}
