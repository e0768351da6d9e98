//! ID-mapped bind mounts (Linux 5.12+): a user namespace holding the mount's uid/gid mappings is
//! made by a short-lived child, and mount_setattr(MOUNT_ATTR_IDMAP) applies it to a detached clone
//! of the source. With a container user namespace this must happen in the runtime process, before
//! clone (see RootfsPlan::open_idmap_sources): only the host user namespace may idmap host mounts.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Mutex;

use hull_sys::mount_api::{
    mount_setattr, MountAttr, AT_EMPTY_PATH, AT_RECURSIVE, MOUNT_ATTR_IDMAP,
};
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};
use oci_spec::runtime::LinuxIdMapping;

use super::bind::clone_tree;
use super::error::{Context, RootfsError};
use super::plan::{IdmapSpec, MountKind, PlannedMount, RootfsPlan};

/// Detached, already idmapped trees made before clone, by mount index.
#[derive(Debug, Default)]
pub(super) struct IdmapSources(Mutex<HashMap<String, OwnedFd>>);

impl IdmapSources {
    fn take(&self, field: &str) -> Option<OwnedFd> {
        self.0.lock().ok()?.remove(field)
    }
}

impl RootfsPlan {
    /// Make the detached idmapped trees of every idmap mount now, in the calling (host) user
    /// namespace, so that prepare() in the container's user namespace only attaches them. The
    /// descriptors live in the plan (close-on-exec) and are inherited by clone. Needed when the
    /// container has a user namespace; harmless otherwise.
    pub fn open_idmap_sources(&self) -> Result<(), RootfsError> {
        for m in &self.mounts {
            if let (Some(spec), MountKind::Bind { source, .. }) = (&m.idmap, &m.kind) {
                let recursive = m.opts.flags.contains(nix::mount::MsFlags::MS_REC);
                let tree = make_tree(m, source, recursive, spec)?;
                if let Ok(mut map) = self.idmap_sources.0.lock() {
                    map.insert(m.field.clone(), tree);
                }
            }
        }
        Ok(())
    }
}

/// The idmapped tree of mount `m`: the one opened before clone, or a new one.
pub(super) fn tree_for(
    plan: &RootfsPlan,
    m: &PlannedMount,
    source: &Path,
    recursive: bool,
    spec: &IdmapSpec,
) -> Result<OwnedFd, RootfsError> {
    match plan.idmap_sources.take(&m.field) {
        Some(fd) => Ok(fd),
        None => make_tree(m, source, recursive, spec),
    }
}

fn make_tree(
    m: &PlannedMount,
    source: &Path,
    recursive: bool,
    spec: &IdmapSpec,
) -> Result<OwnedFd, RootfsError> {
    let tree = clone_tree(source, recursive)
        .ctx(|| format!("{}: open_tree {}", m.field, source.display()))?;
    let userns = mapped_userns(&spec.uid, &spec.gid)
        .map_err(|e| RootfsError::invalid(m.field.clone(), format!("idmap user namespace: {e}")))?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        userns_fd: u64::try_from(userns.as_raw_fd()).unwrap_or(u64::MAX),
        ..MountAttr::default()
    };
    let flags = AT_EMPTY_PATH | if spec.recursive { AT_RECURSIVE } else { 0 };
    mount_setattr(tree.as_fd(), "", flags, &attr).ctx(|| {
        format!(
            "{}: idmap {} (does its file system support idmapped mounts?)",
            m.field,
            source.display()
        )
    })?;
    Ok(tree)
}

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter().fold(String::new(), |mut s, m| {
        let _ = writeln!(s, "{} {} {}", m.container_id(), m.host_id(), m.size());
        s
    })
}

/// A user namespace with the given mappings, held by its /proc/<pid>/ns/user descriptor.
fn mapped_userns(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd, String> {
    let (ready_r, ready_w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    let (done_r, done_w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the child only calls async-signal-safe functions (unshare, write, read, _exit)
    // before exiting, so forking from a process that may have threads is sound.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(ready_r);
            drop(done_w);
            // Report our pid as the mounted /proc numbers it (the caller may sit in a pid
            // namespace of its own while /proc is still the host's): "/proc/self" -> "<pid>".
            let mut buf = [0u8; 32];
            let len = if unshare(CloneFlags::CLONE_NEWUSER).is_ok() {
                // SAFETY: readlink writes at most buf.len() bytes into buf; the path is a static
                // NUL-terminated string.
                unsafe {
                    libc::readlink(c"/proc/self".as_ptr(), buf.as_mut_ptr().cast(), buf.len())
                }
            } else {
                0
            };
            let len = usize::try_from(len).unwrap_or(0);
            let _ = nix::unistd::write(&ready_w, &buf[..len]);
            drop(ready_w);
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(&done_r, &mut b);
            // SAFETY: _exit ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(done_r);
            let mut buf = [0u8; 32];
            let res = nix::unistd::read(&ready_r, &mut buf)
                .map_err(|e| format!("wait for helper: {e}"))
                .and_then(|n| match std::str::from_utf8(&buf[..n]) {
                    Ok(pid) if !pid.is_empty() => Ok(pid.to_string()),
                    _ => Err("unshare(CLONE_NEWUSER) failed in the helper".to_string()),
                })
                .and_then(|pid| {
                    let base = format!("/proc/{pid}");
                    std::fs::write(format!("{base}/uid_map"), map_text(uid))
                        .map_err(|e| format!("write uid_map: {e}"))?;
                    std::fs::write(format!("{base}/gid_map"), map_text(gid))
                        .map_err(|e| format!("write gid_map: {e}"))?;
                    std::fs::File::open(format!("{base}/ns/user"))
                        .map(OwnedFd::from)
                        .map_err(|e| format!("open ns/user: {e}"))
                });
            drop(done_w);
            let _ = waitpid(child, None);
            res
        }
    }
}
