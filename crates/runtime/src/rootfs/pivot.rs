//! Making the rootfs the container's /: pivot_root(".", ".") with the old root made rslave and
//! lazily unmounted, or, for --no-pivot, MS_MOVE onto / and chroot after unmounting what lies
//! outside the rootfs.

use std::borrow::Cow;
use std::path::Path;

use hull_sys::mountinfo;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, fchdir};

use super::error::{Context, RootfsError};

const NONE: Option<&str> = None;

pub(super) fn pivot_root(rootfs: &Path) -> Result<(), RootfsError> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let old = open("/", flags, Mode::empty()).ctx(|| "open /")?;
    let new =
        open(rootfs, flags, Mode::empty()).ctx(|| format!("open rootfs {}", rootfs.display()))?;
    fchdir(&new).ctx(|| "chdir to the rootfs")?;
    // pivot_root(".", ".") stacks the old root under the new one, so no directory for it is
    // needed inside the rootfs.
    nix::unistd::pivot_root(".", ".").ctx(|| format!("pivot_root to {}", rootfs.display()))?;
    fchdir(&old).ctx(|| "chdir to the old root")?;
    // The lazy unmount must not propagate to the host's mounts.
    mount(NONE, ".", NONE, MsFlags::MS_SLAVE | MsFlags::MS_REC, NONE)
        .ctx(|| "make the old root rslave")?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "unmount the old root")?;
    chdir("/").ctx(|| "chdir /")
}

pub(super) fn move_root(rootfs: &Path) -> Result<(), RootfsError> {
    unmount_outside(rootfs)?;
    chdir(rootfs).ctx(|| format!("chdir to rootfs {}", rootfs.display()))?;
    mount(Some("."), "/", NONE, MsFlags::MS_MOVE, NONE).ctx(|| "move the rootfs onto /")?;
    chroot(".").ctx(|| "chroot to the rootfs")?;
    chdir("/").ctx(|| "chdir /")
}

/// Without pivot_root the host's mounts stay in this namespace under the moved rootfs: detach
/// every one that is neither the rootfs's ancestor nor inside it, deepest first.
fn unmount_outside(rootfs: &Path) -> Result<(), RootfsError> {
    let info = mountinfo::read_self().ctx(|| "read /proc/self/mountinfo")?;
    let mut points: Vec<Cow<'_, Path>> = mountinfo::parse(&info)
        .filter_map(Result::ok)
        .map(|m| m.mount_point())
        .filter(|p| !rootfs.starts_with(p) && !p.starts_with(rootfs))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for p in points {
        match umount2(&*p, MntFlags::MNT_DETACH) {
            // Already gone with a parent, or not a mount point any more.
            Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(e).ctx(|| format!("--no-pivot: unmount {}", p.display())),
        }
    }
    Ok(())
}
