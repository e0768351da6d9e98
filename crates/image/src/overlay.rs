//! Overlay mounts of a container or image root: many read-only lower dirs, optionally an
//! upper and work dir. The new mount API passes each lower as its own `lowerdir+` parameter,
//! so the number of layers is not bounded by the one-page mount option limit; kernels without
//! it get mount(2) with paths relative to the layers' common parent.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use hull_sys::mount_api::{
    move_mount_to, FsContext, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
};
use hull_sys::mountinfo;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::sys;

/// Errors from mounting and unmounting overlays.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("overlay on {target}: {reason}")]
    Invalid { target: String, reason: String },
    #[error("overlay on {target}: {step}: {err}{}", kernel.as_deref().map(|k| format!(" (kernel: {k})")).unwrap_or_default())]
    Mount {
        target: String,
        step: &'static str,
        err: io::Error,
        kernel: Option<String>,
    },
    #[error(
        "overlay on {target}: mount options are {len} bytes, over the {max}-byte limit of mount(2)"
    )]
    TooLong {
        target: String,
        len: usize,
        max: usize,
    },
    #[error("unmounting {target}: {err}")]
    Unmount { target: String, err: io::Error },
}

/// Which kernel interface mounts the overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountApi {
    /// The new mount API, falling back to mount(2) when the kernel lacks it.
    Auto,
    /// fsopen/fsconfig(`lowerdir+`)/fsmount/move_mount only.
    New,
    /// mount(2) only.
    Legacy,
}

/// An overlay to mount.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Lower dirs, top-most first.
    pub lowers: Vec<PathBuf>,
    /// Upper and work dirs (same filesystem); `None` for a read-only view.
    pub upper: Option<(PathBuf, PathBuf)>,
    /// Mount source shown in /proc/mounts; hull names it `hull-<id>` so leaks are easy to spot.
    pub source: String,
    pub target: PathBuf,
    pub readonly: bool,
    /// Ignore setuid bits and device nodes (views for inspection, not container roots).
    pub inert: bool,
    /// overlayfs's `volatile`: no sync of the upper dir, on writes nor at unmount. For a root
    /// deleted once its container exits (`--rm`), where the sync at unmount only waits for
    /// the disk (milliseconds, up to a second on a busy one) to keep data about to be
    /// deleted. Kernels before 5.10 mount without it.
    pub volatile: bool,
}

const PAGE: usize = 4096;

impl Overlay {
    fn err(&self, reason: impl Into<String>) -> OverlayError {
        OverlayError::Invalid {
            target: self.target.display().to_string(),
            reason: reason.into(),
        }
    }

    fn validate(&self) -> Result<(), OverlayError> {
        if self.lowers.is_empty() {
            return Err(self.err("no lower dirs"));
        }
        if self.upper.is_none() && self.lowers.len() < 2 {
            return Err(self.err("a read-only overlay needs at least two lower dirs"));
        }
        for p in self
            .lowers
            .iter()
            .chain(self.upper.iter().flat_map(|(u, w)| [u, w]))
        {
            if !p.is_absolute() {
                return Err(self.err(format!("{} is not an absolute path", p.display())));
            }
        }
        Ok(())
    }
}

/// Mounts `ov`; returns the interface that did it.
pub fn mount(ov: &Overlay, api: MountApi) -> Result<MountApi, OverlayError> {
    ov.validate()?;
    clear_volatile_mark(ov);
    if ov.volatile {
        // A kernel without `volatile` (before 5.10) mounts without it; any other failure
        // comes again, and is reported, from the second attempt.
        if let Ok(done) = mount_with(ov, api) {
            return Ok(done);
        }
        let plain = Overlay {
            volatile: false,
            ..ov.clone()
        };
        return mount_with(&plain, api);
    }
    mount_with(ov, api)
}

fn mount_with(ov: &Overlay, api: MountApi) -> Result<MountApi, OverlayError> {
    match api {
        MountApi::New => mount_new(ov).map(|()| MountApi::New),
        MountApi::Legacy => mount_legacy(ov).map(|()| MountApi::Legacy),
        MountApi::Auto => match mount_new(ov) {
            Ok(()) => Ok(MountApi::New),
            Err(e) if needs_legacy(&e) => mount_legacy(ov).map(|()| MountApi::Legacy),
            Err(e) => Err(e),
        },
    }
}

/// Whether the new mount API cannot make an overlay that mount(2) can: no fsopen (ENOSYS), or a
/// kernel before 6.8, which has no `lowerdir+`: refused by fsconfig, or (overlayfs's legacy
/// parameter parsing, as in 6.1) taken by fsconfig and refused when the superblock is created.
fn needs_legacy(e: &OverlayError) -> bool {
    let OverlayError::Mount { err, step, .. } = e else {
        return false;
    };
    err.raw_os_error() == Some(libc::ENOSYS)
        || (matches!(*step, "fsconfig lowerdir+" | "create")
            && err.raw_os_error() == Some(libc::EINVAL))
}

/// A `volatile` mount leaves `work/incompat/volatile` in its work dir, and overlayfs refuses
/// any later mount of that dir until it is removed (the upper dir may have lost writes in a
/// crash). Only a `--rm` container's root is mounted volatile, and its data is not kept: a
/// later mount (after its monitor died, or `cp` from it) clears the mark, as podman's does.
fn clear_volatile_mark(ov: &Overlay) {
    if let Some((_, work)) = &ov.upper {
        let _ = std::fs::remove_dir_all(work.join("work/incompat/volatile"));
    }
}

fn mount_new(ov: &Overlay) -> Result<(), OverlayError> {
    let mnt = fsmount_new(ov)?;
    move_mount_to(mnt.as_fd(), &ov.target).map_err(|source| OverlayError::Mount {
        target: ov.target.display().to_string(),
        step: "move_mount",
        err: source.into(),
        kernel: None,
    })
}

/// Mounts `ov` without attaching it anywhere: the returned descriptor is the overlay's root
/// (fsmount's, so more mounts can be attached inside the detached tree while it is open), and
/// the mount goes away with the last descriptor, so no mount table ever shows it and a process
/// killed while using it leaves nothing behind. Kernels without the new mount API get a mount
/// on `ov.target` detached at once (`ov.target` must exist).
pub fn mount_detached(ov: &Overlay) -> Result<OwnedFd, OverlayError> {
    ov.validate()?;
    clear_volatile_mark(ov);
    let target = ov.target.display().to_string();
    let open_root = |at: &Path| {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        nix::fcntl::open(at, flags, Mode::empty()).map_err(|e| OverlayError::Mount {
            target: target.clone(),
            step: "opening the overlay's root",
            err: e.into(),
            kernel: None,
        })
    };
    match fsmount_new(ov) {
        Ok(mnt) => Ok(mnt),
        Err(e) if needs_legacy(&e) => {
            mount_legacy(ov)?;
            let fd = open_root(&ov.target);
            let detached = nix::mount::umount2(&ov.target, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| OverlayError::Unmount {
                    target: target.clone(),
                    err: e.into(),
                });
            let fd = fd?;
            detached?;
            Ok(fd)
        }
        Err(e) => Err(e),
    }
}

/// The overlay's mount, not yet attached to any place (fsopen, fsconfig, fsmount).
fn fsmount_new(ov: &Overlay) -> Result<OwnedFd, OverlayError> {
    let target = ov.target.display().to_string();
    let fs = FsContext::open("overlay").map_err(|source| OverlayError::Mount {
        target: target.clone(),
        step: "fsopen",
        err: source.into(),
        kernel: None,
    })?;
    let fail = |step: &'static str, fs: &FsContext| {
        let target = target.clone();
        let kernel = fs.message();
        move |source: nix::errno::Errno| OverlayError::Mount {
            target,
            step,
            err: source.into(),
            kernel,
        }
    };
    let set = |key: &'static str, step: &'static str, v: &[u8]| {
        fs.set_string(key, v).map_err(|e| fail(step, &fs)(e))
    };
    set("source", "fsconfig source", ov.source.as_bytes())?;
    for l in &ov.lowers {
        set("lowerdir+", "fsconfig lowerdir+", l.as_os_str().as_bytes())?;
    }
    if let Some((upper, work)) = &ov.upper {
        set(
            "upperdir",
            "fsconfig upperdir",
            upper.as_os_str().as_bytes(),
        )?;
        set("workdir", "fsconfig workdir", work.as_os_str().as_bytes())?;
        if ov.volatile {
            fs.set_flag("volatile")
                .map_err(|e| fail("fsconfig volatile", &fs)(e))?;
        }
    }
    fs.create().map_err(|e| fail("create", &fs)(e))?;
    let mut attrs: u64 = 0;
    if ov.readonly {
        attrs |= MOUNT_ATTR_RDONLY;
    }
    if ov.inert {
        attrs |= MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    }
    fs.fsmount(attrs).map_err(|e| fail("fsmount", &fs)(e))
}

/// The deepest directory containing every lower dir.
fn common_parent(paths: &[PathBuf]) -> PathBuf {
    let mut common = paths[0].parent().map(Path::to_path_buf).unwrap_or_default();
    for p in &paths[1..] {
        while !p.starts_with(&common) {
            if !common.pop() {
                break;
            }
        }
    }
    common
}

fn mount_legacy(ov: &Overlay) -> Result<(), OverlayError> {
    let base = common_parent(&ov.lowers);
    let mut lowers = Vec::new();
    for l in &ov.lowers {
        let rel = l.strip_prefix(&base).unwrap_or(l);
        let s = rel.as_os_str().as_bytes();
        if s.iter().any(|b| matches!(b, b':' | b',' | b'\\')) {
            return Err(ov.err(format!("{} contains ':', ',' or '\\'", l.display())));
        }
        lowers.push(if s.is_empty() {
            b".".to_vec()
        } else {
            s.to_vec()
        });
    }
    let mut opts = b"lowerdir=".to_vec();
    opts.extend(lowers.join(&b':'));
    if let Some((u, w)) = &ov.upper {
        opts.extend(b",upperdir=");
        opts.extend(u.as_os_str().as_bytes());
        opts.extend(b",workdir=");
        opts.extend(w.as_os_str().as_bytes());
        if ov.volatile {
            opts.extend(b",volatile");
        }
    }
    let target = ov.target.display().to_string();
    if opts.len() >= PAGE {
        return Err(OverlayError::TooLong {
            target,
            len: opts.len(),
            max: PAGE - 1,
        });
    }
    let mut flags = if ov.readonly { libc::MS_RDONLY } else { 0 };
    if ov.inert {
        flags |= libc::MS_NOSUID | libc::MS_NODEV;
    }
    sys::mount_in_dir(&base, &ov.source, &ov.target, "overlay", flags, &opts).map_err(|source| {
        OverlayError::Mount {
            target,
            step: "mount(2)",
            err: source,
            kernel: None,
        }
    })
}

/// Unmounts `target`; `Ok(false)` when nothing was mounted there.
pub fn unmount(target: &Path) -> Result<bool, OverlayError> {
    unmount_with(target, nix::mount::MntFlags::empty())
}

/// umount2(2) of `target`; `Ok(false)` when nothing is mounted there. The kernel says so itself
/// (EINVAL: not a mount point; ENOENT: no such path), which spares reading and parsing the whole
/// mount table first, as every container's teardown would.
fn unmount_with(target: &Path, flags: nix::mount::MntFlags) -> Result<bool, OverlayError> {
    match nix::mount::umount2(target, flags) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(OverlayError::Unmount {
            target: target.display().to_string(),
            err: e.into(),
        }),
    }
}

/// Whether a mount sits exactly on `target` (per /proc/self/mountinfo).
pub fn is_mounted(target: &Path) -> bool {
    let want = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
    mount_points().contains(&want)
}

/// Every mount point of this mount namespace, unescaped.
pub fn mount_points() -> Vec<PathBuf> {
    let Ok(text) = mountinfo::read_self() else {
        return Vec::new();
    };
    mountinfo::parse(&text)
        .filter_map(Result::ok)
        .map(|m| m.mount_point().into_owned())
        .collect()
}

/// A container's root: `dir/upper` and `dir/work` (created if missing) over `lowers`
/// (top-most first), mounted read-write on `dir/merged` with source `hull-<id>`.
/// Returns the merged path; [`unmount_container`] undoes it.
/// `volatile` for a root deleted with its container (see [`Overlay::volatile`]).
pub fn mount_container(
    lowers: &[PathBuf],
    dir: &Path,
    id: &str,
    volatile: bool,
) -> Result<PathBuf, OverlayError> {
    let merged = dir.join("merged");
    for d in [dir.join("upper"), dir.join("work"), merged.clone()] {
        std::fs::create_dir_all(&d).map_err(|source| OverlayError::Mount {
            target: merged.display().to_string(),
            step: "creating upper, work and merged dirs",
            err: source,
            kernel: None,
        })?;
    }
    let ov = Overlay {
        lowers: lowers.to_vec(),
        upper: Some((dir.join("upper"), dir.join("work"))),
        source: format!("hull-{id}"),
        target: merged.clone(),
        readonly: false,
        inert: false,
        volatile,
    };
    mount(&ov, MountApi::Auto)?;
    Ok(merged)
}

/// Unmounts `dir/merged` of [`mount_container`]; the upper dir (the container's changes) stays.
/// Detached (lazily): the container's processes are gone, so nothing else holds it, and a
/// synchronous unmount waits out an RCU grace period (tens of ms) that a detached one defers.
pub fn unmount_container(dir: &Path) -> Result<bool, OverlayError> {
    unmount_with(&dir.join("merged"), nix::mount::MntFlags::MNT_DETACH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(step: &'static str, errno: i32) -> OverlayError {
        OverlayError::Mount {
            target: "/m".into(),
            step,
            err: io::Error::from_raw_os_error(errno),
            kernel: None,
        }
    }

    #[test]
    fn kernels_without_lowerdir_plus_fall_back_to_mount() {
        assert!(needs_legacy(&failed("fsopen", libc::ENOSYS)));
        assert!(needs_legacy(&failed("fsconfig lowerdir+", libc::EINVAL)));
        // Linux 6.1 takes the key and refuses it at create.
        assert!(needs_legacy(&failed("create", libc::EINVAL)));
        assert!(!needs_legacy(&failed("create", libc::EPERM)));
        assert!(!needs_legacy(&failed("move_mount", libc::EINVAL)));
    }
}
