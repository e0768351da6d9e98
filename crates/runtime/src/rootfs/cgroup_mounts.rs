//! `cgroup` entries of `mounts`: the container's view of its cgroups. Pure cgroup v2: a cgroup2
//! mount (a bind of the container's cgroup when a fresh mount is refused). v1 and hybrid: a tmpfs
//! holding one directory per hierarchy, each a bind of the container's host cgroup directory
//! (or, in a cgroup namespace, a fresh cgroup mount), plus runc's cpu -> cpu,cpuacct symlinks.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use hull_sys::fd::proc_self_fd;
use hull_sys::mount_api::{mount_setattr, MountAttr, AT_EMPTY_PATH, MOUNT_ATTR_RDONLY};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

use super::bind;
use super::error::{Context, RootfsError};
use super::plan::PlannedMount;
use super::resolve::{Create, Root};
use super::{CgroupMount, RootfsOptions};

pub(super) fn mount_cgroup(
    root: &Root,
    m: &PlannedMount,
    opts: &RootfsOptions,
) -> Result<(), RootfsError> {
    match opts.cgroups.as_slice() {
        [only] if only.version == 2 => mount_v2(root, m, only),
        all => mount_v1_view(root, m, all, opts.cgroup_namespace),
    }
}

/// Host directory of the container's cgroup in hierarchy `cg`.
fn host_dir(cg: &CgroupMount) -> PathBuf {
    if cg.path.starts_with(&cg.mount_point) {
        cg.path.clone()
    } else {
        cg.mount_point
            .join(cg.path.strip_prefix("/").unwrap_or(&cg.path))
    }
}

fn mount_v2(root: &Root, m: &PlannedMount, cg: &CgroupMount) -> Result<(), RootfsError> {
    let target = root.create(&m.destination, Create::Dir)?;
    let flags = m.opts.flags;
    let res = mount(
        Some("cgroup2"),
        &proc_self_fd(target.as_fd()),
        Some("cgroup2"),
        flags,
        None::<&str>,
    );
    match res {
        Ok(()) => Ok(()),
        // In a user namespace without its own cgroup namespace the kernel refuses a fresh
        // cgroup2 mount: show the container's own cgroup directory instead, as runc does.
        Err(Errno::EPERM | Errno::EBUSY) => bind_host_dir(m, target.as_fd(), cg, flags),
        Err(e) => Err(e).ctx(|| format!("{}: mount cgroup2", m.field)),
    }
}

fn bind_host_dir(
    m: &PlannedMount,
    target: std::os::fd::BorrowedFd<'_>,
    cg: &CgroupMount,
    flags: MsFlags,
) -> Result<(), RootfsError> {
    let src = host_dir(cg);
    let tree = bind::clone_tree(&src, false)
        .ctx(|| format!("{}: open cgroup {}", m.field, src.display()))?;
    bind::attach(tree, target, flags, MsFlags::empty(), &m.field)
}

fn mount_v1_view(
    root: &Root,
    m: &PlannedMount,
    cgroups: &[CgroupMount],
    cgroupns: bool,
) -> Result<(), RootfsError> {
    let target = root.create(&m.destination, Create::Dir)?;
    let mut tmpfs_flags = m.opts.flags;
    tmpfs_flags.remove(MsFlags::MS_RDONLY);
    nix::mount::mount(
        Some("tmpfs"),
        &proc_self_fd(target.as_fd()),
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
    )
    .ctx(|| format!("{}: mount tmpfs for the cgroup view", m.field))?;
    for cg in cgroups {
        let name = cg.mount_point.file_name().ok_or_else(|| {
            RootfsError::invalid(
                m.field.clone(),
                format!(
                    "cgroup mount point {} has no name",
                    cg.mount_point.display()
                ),
            )
        })?;
        let sub = m.destination.join(name);
        let fd = root.create(&sub, Create::Dir)?;
        if cgroupns {
            let (fstype, data) = if cg.version == 2 {
                ("cgroup2", String::new())
            } else {
                ("cgroup", cg.controllers.join(","))
            };
            mount(
                Some(fstype),
                &proc_self_fd(fd.as_fd()),
                Some(fstype),
                m.opts.flags,
                (!data.is_empty()).then_some(data.as_str()),
            )
            .ctx(|| format!("{}: mount {fstype} {}", m.field, sub.display()))?;
        } else {
            bind_host_dir(m, fd.as_fd(), cg, m.opts.flags)?;
        }
        symlink_controllers(root, m, cg, name)?;
    }
    if m.opts.flags.contains(MsFlags::MS_RDONLY) {
        let fd = root
            .resolve(&m.destination)
            .ctx(|| format!("{}: resolve", m.field))?;
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY,
            ..MountAttr::default()
        };
        mount_setattr(fd.as_fd(), "", AT_EMPTY_PATH, &attr)
            .ctx(|| format!("{}: make the cgroup view read-only", m.field))?;
    }
    Ok(())
}

/// cpu -> cpu,cpuacct and cpuacct -> cpu,cpuacct, so programs find each controller by name.
fn symlink_controllers(
    root: &Root,
    m: &PlannedMount,
    cg: &CgroupMount,
    dir_name: &std::ffi::OsStr,
) -> Result<(), RootfsError> {
    if cg.controllers.len() < 2 {
        return Ok(());
    }
    let parent = root
        .resolve(&m.destination)
        .ctx(|| format!("{}: resolve", m.field))?;
    for c in cg.controllers.iter().filter(|c| !c.starts_with("name=")) {
        if Path::new(c) == Path::new(dir_name) {
            continue;
        }
        match nix::unistd::symlinkat(dir_name, &parent, c.as_str()) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("{}: symlink {c}", m.field)),
        }
    }
    Ok(())
}
