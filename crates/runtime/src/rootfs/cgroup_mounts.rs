//! `cgroup` entries of `mounts`: the container's view of its cgroups, laid out as runc lays it.
//! Pure cgroup v2: a cgroup2 mount (when a fresh mount is refused, a bind of the hierarchy, or of
//! the container's cgroup in a cgroup namespace). v1 and hybrid: a writable tmpfs holding one
//! directory per v1 hierarchy (the hybrid's cgroup2 is left out), each a bind of the container's
//! host cgroup directory (or, in a cgroup namespace, a fresh cgroup mount) with the entry's flags,
//! plus the cpu -> cpu,cpuacct symlinks.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use hull_sys::fd::proc_self_fd;
use nix::errno::Errno;
use nix::fcntl::OFlag;
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
        [only] if only.version == 2 => mount_v2(root, m, only, opts.cgroup_namespace),
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

fn mount_v2(
    root: &Root,
    m: &PlannedMount,
    cg: &CgroupMount,
    cgroupns: bool,
) -> Result<(), RootfsError> {
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
        // cgroup2 mount: runc binds the whole hierarchy then, or the container's own cgroup
        // when a cgroup namespace is asked for (which the bind emulates).
        Err(Errno::EPERM | Errno::EBUSY) => {
            let src = if cgroupns {
                host_dir(cg)
            } else {
                cg.mount_point.clone()
            };
            bind_dir(m, target.as_fd(), &src, flags)
        }
        Err(e) => Err(e).ctx(|| format!("{}: mount cgroup2", m.field)),
    }
}

fn bind_dir(
    m: &PlannedMount,
    target: std::os::fd::BorrowedFd<'_>,
    src: &Path,
    flags: MsFlags,
) -> Result<(), RootfsError> {
    let tree = bind::clone_tree(src, false)
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
    // The tmpfs just mounted, resolved again to reach it rather than the dir it covers. It is
    // this process's own and empty: its dirs are made in it directly, with no in-root walk.
    let view = root
        .resolve(&m.destination)
        .ctx(|| format!("{}: resolve the cgroup view", m.field))?;
    // runc lists the v1 hierarchies only: on a hybrid host the cgroup2 one is not shown.
    for cg in cgroups.iter().filter(|cg| cg.version == 1) {
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
        let fd =
            make_dir(view.as_fd(), name).ctx(|| format!("{}: mkdir {}", m.field, sub.display()))?;
        if cgroupns {
            let data = cg.controllers.join(",");
            // The source names a named hierarchy (name=systemd) by its name, as runc does.
            let source = match cg.controllers.as_slice() {
                [only] => only.strip_prefix("name=").unwrap_or("cgroup"),
                _ => "cgroup",
            };
            mount(
                Some(source),
                &proc_self_fd(fd.as_fd()),
                Some("cgroup"),
                m.opts.flags,
                (!data.is_empty()).then_some(data.as_str()),
            )
            .ctx(|| format!("{}: mount cgroup {}", m.field, sub.display()))?;
        } else {
            bind_dir(m, fd.as_fd(), &host_dir(cg), m.opts.flags)?;
        }
        symlink_controllers(view.as_fd(), m, cg, name)?;
    }
    Ok(())
}

/// cpu -> cpu,cpuacct and cpuacct -> cpu,cpuacct, so programs find each controller by name.
fn symlink_controllers(
    parent: BorrowedFd<'_>,
    m: &PlannedMount,
    cg: &CgroupMount,
    dir_name: &std::ffi::OsStr,
) -> Result<(), RootfsError> {
    if cg.controllers.len() < 2 {
        return Ok(());
    }
    for c in cg.controllers.iter().filter(|c| !c.starts_with("name=")) {
        if Path::new(c) == Path::new(dir_name) {
            continue;
        }
        match nix::unistd::symlinkat(dir_name, parent, c.as_str()) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("{}: symlink {c}", m.field)),
        }
    }
    Ok(())
}

/// An O_PATH descriptor of directory `name` in `dir`, made if missing.
fn make_dir(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> nix::Result<OwnedFd> {
    match nix::sys::stat::mkdirat(dir, name, nix::sys::stat::Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    nix::fcntl::openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
}
