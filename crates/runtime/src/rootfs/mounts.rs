//! The entries of config.json's `mounts`, in order: each target resolved (and created) inside the
//! rootfs, then mounted on through its descriptor; propagation and recursive attributes after.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use hull_sys::fd::proc_self_fd;
use hull_sys::mount_api::{mount_setattr, MountAttr, AT_EMPTY_PATH, AT_RECURSIVE};
use nix::mount::{mount, MsFlags};

use super::error::{Context, RootfsError};
use super::plan::{MountKind, PlannedMount, RootfsPlan};
use super::resolve::{file_type, Create, Root};
use super::{bind, cgroup_mounts, copyup, idmap};

/// Files under /proc that a bind mount may cover (lxcfs and the like), as runc allows.
const PROC_BIND_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/crypto/fips_enabled",
];

/// Mounts `list`, a run of `plan.mounts`, in order.
pub(super) fn mount_all(
    plan: &RootfsPlan,
    root: &Root,
    list: &[PlannedMount],
) -> Result<(), RootfsError> {
    for m in list {
        match &m.kind {
            MountKind::Bind { source } => mount_bind(plan, root, m, source)?,
            MountKind::Cgroup => cgroup_mounts::mount_cgroup(root, m, &plan.opts)?,
            MountKind::Fs { fstype, source } => mount_fs(root, m, fstype, source)?,
        }
        finish(root, m)?;
    }
    Ok(())
}

fn mount_fs(root: &Root, m: &PlannedMount, fstype: &str, source: &str) -> Result<(), RootfsError> {
    if fstype == "proc" || fstype == "sysfs" {
        refuse_non_directory(root, m, fstype)?;
    }
    let target = root.create(&m.destination, Create::Dir)?;
    check_proc_target(root, m, target.as_fd(), fstype == "proc", None)?;
    let mut flags = m.opts.flags;
    if m.defer_ro {
        flags.remove(MsFlags::MS_RDONLY);
    }
    let original = if m.opts.tmpcopyup {
        Some(copyup::open_original(root, &m.destination, &m.field)?)
    } else {
        None
    };
    let data = m.opts.data.join(",");
    mount(
        Some(source),
        &proc_self_fd(target.as_fd()),
        Some(fstype),
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .ctx(|| format!("{}: mount {fstype}", m.field))?;
    match original {
        Some(fd) => copyup::copy_up(fd, root, &m.destination, &m.field),
        None => Ok(()),
    }
}

fn mount_bind(
    plan: &RootfsPlan,
    root: &Root,
    m: &PlannedMount,
    source: &Path,
) -> Result<(), RootfsError> {
    let is_dir = std::fs::metadata(source)
        .map_err(|e| {
            RootfsError::invalid(m.field.clone(), format!("source {}: {e}", source.display()))
        })?
        .is_dir();
    let target = root.create(
        &m.destination,
        if is_dir { Create::Dir } else { Create::File },
    )?;
    let target_is_dir = file_type(target.as_fd()).ctx(|| format!("{}: stat target", m.field))?
        == nix::sys::stat::SFlag::S_IFDIR;
    if target_is_dir != is_dir {
        return Err(RootfsError::invalid(
            m.field.clone(),
            format!(
                "source {} is {}a directory but the target is {}",
                source.display(),
                if is_dir { "" } else { "not " },
                if target_is_dir { "one" } else { "not" }
            ),
        ));
    }
    check_proc_target(root, m, target.as_fd(), false, Some(source))?;
    let recursive = m.opts.flags.contains(MsFlags::MS_REC);
    let tree = match &m.idmap {
        Some(spec) => idmap::tree_for(plan, m, source, recursive, spec)?,
        None => bind::clone_tree(source, recursive)
            .ctx(|| format!("{}: open_tree {}", m.field, source.display()))?,
    };
    let mut flags = m.opts.flags;
    if m.defer_ro {
        flags.remove(MsFlags::MS_RDONLY);
    }
    bind::attach(tree, target.as_fd(), flags, m.opts.cleared, &m.field)
}

/// Propagation flags and recursive attributes, on the mount now at the destination.
fn finish(root: &Root, m: &PlannedMount) -> Result<(), RootfsError> {
    let rec = m.opts.rec_set != 0 || m.opts.rec_clr != 0;
    if m.opts.propagation.is_empty() && !rec {
        return Ok(());
    }
    let fd = root
        .resolve(&m.destination)
        .ctx(|| format!("{}: resolve mounted target", m.field))?;
    for &flags in &m.opts.propagation {
        mount(
            None::<&str>,
            &proc_self_fd(fd.as_fd()),
            None::<&str>,
            flags,
            None::<&str>,
        )
        .ctx(|| format!("{}: set propagation {flags:?}", m.field))?;
    }
    if rec {
        let attr = MountAttr {
            attr_set: m.opts.rec_set,
            attr_clr: m.opts.rec_clr,
            ..MountAttr::default()
        };
        mount_setattr(fd.as_fd(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr)
            .ctx(|| format!("{}: set recursive mount attributes", m.field))?;
    }
    Ok(())
}

/// proc and sysfs only on an ordinary directory: mounting them through a symlink planted in the
/// rootfs was an attack (CVE-2019-16884 and friends).
fn refuse_non_directory(root: &Root, m: &PlannedMount, fstype: &str) -> Result<(), RootfsError> {
    match root.resolve_nofollow(&m.destination) {
        Ok(fd) => {
            let t = file_type(fd.as_fd()).ctx(|| format!("{}: stat", m.field))?;
            if t == nix::sys::stat::SFlag::S_IFDIR {
                Ok(())
            } else {
                Err(RootfsError::invalid(
                    m.field.clone(),
                    format!("{fstype} must be mounted on an ordinary directory, and the target is not one (a symlink?)"),
                ))
            }
        }
        Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("{}: resolve target", m.field)),
    }
}

/// Nothing but proc itself at /proc, and binds of a few harmless files under it (runc's
/// checkProcMount). Checked on the resolved target, so a symlink cannot smuggle a mount there.
fn check_proc_target(
    root: &Root,
    m: &PlannedMount,
    target: BorrowedFd<'_>,
    is_proc: bool,
    bind_source: Option<&Path>,
) -> Result<(), RootfsError> {
    let Some(path) = root.container_path(target)? else {
        return Err(RootfsError::invalid(
            m.field.clone(),
            "target resolves outside the rootfs",
        ));
    };
    if !path.starts_with("/proc") {
        return Ok(());
    }
    if is_proc && path == Path::new("/proc") {
        return Ok(());
    }
    let allowed = bind_source.is_some() && PROC_BIND_ALLOWED.iter().any(|a| path == Path::new(a));
    if allowed {
        return Ok(());
    }
    Err(RootfsError::invalid(
        m.field.clone(),
        format!(
            "{} cannot be mounted because it is inside /proc",
            path.display()
        ),
    ))
}
