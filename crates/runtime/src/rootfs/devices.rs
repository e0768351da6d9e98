//! /dev: the default devices and linux.devices (mknod with mode and owner; in a user namespace,
//! where mknod is refused, a bind of the host's node), /dev/ptmx -> pts/ptmx, the fd/stdin/
//! stdout/stderr links, /dev/shm, and, for a process with a terminal, an empty /dev/console for
//! the console code to cover.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{makedev, mknodat, umask, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, Gid, Uid};

use super::bind;
use super::error::{Context, RootfsError};
use super::plan::{PlannedDevice, RootfsPlan};
use super::resolve::{Create, Root};

const LINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
];

pub(super) fn setup_dev(plan: &RootfsPlan, root: &Root) -> Result<(), RootfsError> {
    if !plan.setup_dev {
        return Ok(());
    }
    // Device modes are exact, not filtered by the runtime's umask.
    let old = umask(Mode::empty());
    let mut parent = None;
    let res = plan
        .devices
        .iter()
        .try_for_each(|d| create_device(root, d, plan.opts.user_namespace, &mut parent));
    umask(old);
    res?;
    let dev = root.create(Path::new("/dev"), Create::Dir)?;
    setup_ptmx(dev.as_fd())?;
    for (target, name) in LINKS {
        link(dev.as_fd(), target, name)?;
    }
    if Path::new("/proc/kcore").exists() {
        link(dev.as_fd(), "/proc/kcore", "core")?;
    }
    root.create(Path::new("/dev/shm"), Create::Dir)?;
    if plan.opts.terminal {
        root.create(Path::new("/dev/console"), Create::File)?;
    }
    Ok(())
}

/// `parent`: the last parent directory resolved, kept for the next device in the same one (all
/// of them in /dev, usually): making a node changes no directory's resolution.
fn create_device(
    root: &Root,
    d: &PlannedDevice,
    user_namespace: bool,
    parent: &mut Option<(PathBuf, OwnedFd)>,
) -> Result<(), RootfsError> {
    let what = || format!("device {}", d.path.display());
    if user_namespace && d.kind != SFlag::S_IFIFO {
        let target = root.create(&d.path, Create::File)?;
        let tree =
            bind::clone_tree(&d.path, false).ctx(|| format!("{}: open host node", what()))?;
        return bind::attach(
            tree,
            target.as_fd(),
            nix::mount::MsFlags::empty(),
            nix::mount::MsFlags::empty(),
            &what(),
        );
    }
    let parent_path = d.path.parent().unwrap_or(Path::new("/"));
    let parent = match parent.take() {
        Some((path, fd)) if path == parent_path => parent.insert((path, fd)),
        _ => parent.insert((
            parent_path.to_path_buf(),
            root.create(parent_path, Create::Dir)?,
        )),
    };
    let parent = &parent.1;
    let name = d
        .path
        .file_name()
        .ok_or_else(|| RootfsError::invalid(what(), "no file name"))?;
    let perm = Mode::from_bits_truncate(d.mode);
    match mknodat(parent, name, d.kind, perm, makedev(d.major, d.minor)) {
        Ok(()) => {}
        // Already there (from the image, or a bind): keep it, as runc does.
        Err(Errno::EEXIST) => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("{}: mknod", what())),
    }
    fchownat(
        parent,
        name,
        Some(Uid::from_raw(d.uid)),
        Some(Gid::from_raw(d.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .ctx(|| format!("{}: chown", what()))
}

fn setup_ptmx(dev: BorrowedFd<'_>) -> Result<(), RootfsError> {
    match nix::unistd::unlinkat(dev, "ptmx", nix::unistd::UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).ctx(|| "remove /dev/ptmx"),
    }
    symlinkat("pts/ptmx", dev, "ptmx").ctx(|| "symlink /dev/ptmx -> pts/ptmx")
}

fn link(dev: BorrowedFd<'_>, target: &str, name: &str) -> Result<(), RootfsError> {
    match symlinkat(target, dev, name) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("symlink /dev/{name} -> {target}")),
    }
}
