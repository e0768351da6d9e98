//! `diff`: what a container changed in its root, as docker lists it (`A` added, `C` changed,
//! `D` deleted), read from its overlay upper dir: a whiteout is a deletion, an entry is new or
//! changed by whether the image's layers (their merged view) have it, and an opaque directory
//! deletes what the image had in it. Mount points the runtime had to create for the
//! container's mounts (/proc, /etc/hosts, ...) are not the container's changes and are left out,
//! as docker keeps them in a layer of their own.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode};

use crate::volumes::copy::{is_opaque, is_whiteout, layers_of};
use crate::{paths, Engine, EngineError};

/// One line of `diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `A`, `C` or `D`.
    pub kind: char,
    /// Absolute in the container.
    pub path: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.path)
    }
}

const DIR: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

impl Engine {
    /// The container's changes to its image, sorted by path.
    pub fn diff(&self, reference: &str) -> Result<Vec<Change>, EngineError> {
        let record = self.find(reference)?;
        crate::vm::control::refuse_vm(&record, "diff")?;
        let rootfs =
            hull_image::ImageStore::open(&self.root)?.rootfs_for(&record.settings.manifest)?;
        let dir = paths::container_dir(&self.root, &record.id);
        let upper = dir.join("upper");
        let fd = match nix::fcntl::open(&upper, DIR, Mode::empty()) {
            Ok(fd) => fd,
            // Never started: nothing changed.
            Err(nix::errno::Errno::ENOENT) => return Ok(Vec::new()),
            Err(e) => return Err(EngineError::sys(format!("opening {}", upper.display()))(e)),
        };
        let mut walk = Walk {
            lowers: &rootfs.lowers,
            mount_points: mount_points(&dir.join("config.json")),
            out: Vec::new(),
            hidden_mount_point: BTreeSet::new(),
        };
        walk.dir(fd, Path::new("/"), true, false)
            .map_err(EngineError::io(format!("reading {}", upper.display())))?;
        Ok(walk.finish())
    }
}

struct Walk<'a> {
    lowers: &'a [PathBuf],
    mount_points: BTreeSet<PathBuf>,
    out: Vec<Change>,
    /// Directories that held a mount point left out: not changed for that alone.
    hidden_mount_point: BTreeSet<PathBuf>,
}

impl Walk<'_> {
    /// The entries of the upper directory `fd`, which is `rel` in the container; `in_image`
    /// says whether the image has a directory there.
    fn dir(
        &mut self,
        fd: OwnedFd,
        rel: &Path,
        in_image: bool,
        opaque: bool,
    ) -> std::io::Result<()> {
        let mut d = Dir::from_fd(fd)?;
        let names: Vec<OsString> = d
            .iter()
            .filter_map(Result::ok)
            .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
            .filter(|n| n != "." && n != "..")
            .collect();
        let opaque = in_image && opaque;
        if opaque {
            for gone in self.image_names(rel) {
                if !names.contains(&gone) {
                    self.push('D', rel.join(&gone));
                }
            }
        }
        for name in names {
            let path = rel.join(&name);
            let Ok(st) = fstatat(d.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue;
            };
            self.entry(d.as_fd(), &name, &path, &st, in_image && !opaque)?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        st: &FileStat,
        lower_visible: bool,
    ) -> std::io::Result<()> {
        let kind = st.st_mode & libc::S_IFMT;
        if kind == libc::S_IFCHR && st.st_rdev == 0 {
            self.push('D', path.to_path_buf());
            return Ok(());
        }
        let image = if lower_visible {
            self.image_entry(path)
        } else {
            None
        };
        let is_dir = kind == libc::S_IFDIR;
        if image.is_none() && self.mount_points.contains(path) && is_empty(dir, name, st) {
            if let Some(parent) = path.parent() {
                self.hidden_mount_point.insert(parent.to_path_buf());
            }
            return Ok(());
        }
        self.push(if image.is_some() { 'C' } else { 'A' }, path.to_path_buf());
        if is_dir {
            let sub = openat(dir, name, DIR, Mode::empty())?;
            // By the parent's descriptor: a running container may have swapped a directory on
            // the path for a symlink.
            let mut at = hull_sys::fd::proc_self_fd(dir).into_os_string();
            at.push("/");
            at.push(name);
            let opaque = is_opaque(Path::new(&at));
            self.dir(sub, path, image.is_some_and(|m| m.is_dir()), opaque)?;
        }
        Ok(())
    }

    /// The image's entry at `path` (its top-most layer's, unless a whiteout hides it).
    fn image_entry(&self, path: &Path) -> Option<std::fs::Metadata> {
        let rel = path.strip_prefix("/").ok()?;
        let (parent, name) = (rel.parent()?, rel.file_name()?);
        for d in layers_of(self.lowers, parent) {
            if let Ok(m) = std::fs::symlink_metadata(d.join(name)) {
                return (!is_whiteout(&m)).then_some(m);
            }
        }
        None
    }

    /// What the image has in its directory `path`.
    fn image_names(&self, path: &Path) -> BTreeSet<OsString> {
        let rel = path.strip_prefix("/").unwrap_or(path);
        let mut seen = BTreeSet::new();
        let mut visible = BTreeSet::new();
        for d in layers_of(self.lowers, rel) {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let name = e.file_name();
                if seen.insert(name.clone()) && e.metadata().is_ok_and(|m| !is_whiteout(&m)) {
                    visible.insert(name);
                }
            }
        }
        visible
    }

    fn push(&mut self, kind: char, path: PathBuf) {
        self.out.push(Change {
            kind,
            path: path.to_string_lossy().into_owned(),
        });
    }

    /// Sorted; a directory changed only to hold a mount point is left out too.
    fn finish(mut self) -> Vec<Change> {
        let paths: Vec<String> = self.out.iter().map(|c| c.path.clone()).collect();
        let hidden = std::mem::take(&mut self.hidden_mount_point);
        self.out.retain(|c| {
            let has_child = paths
                .iter()
                .any(|p| p.len() > c.path.len() && p.starts_with(&format!("{}/", c.path)));
            !(c.kind == 'C' && hidden.contains(Path::new(&c.path)) && !has_child)
        });
        self.out.sort_by(|a, b| a.path.cmp(&b.path));
        self.out
    }
}

/// An empty directory or empty file, as the runtime makes a mount point.
fn is_empty(dir: BorrowedFd<'_>, name: &OsStr, st: &FileStat) -> bool {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => st.st_size == 0,
        libc::S_IFDIR => openat(dir, name, DIR, Mode::empty())
            .ok()
            .and_then(|fd| Dir::from_fd(fd).ok())
            .is_some_and(|mut d| d.iter().filter_map(Result::ok).count() <= 2),
        _ => false,
    }
}

/// The destinations of the container's mounts (config.json).
fn mount_points(config: &Path) -> BTreeSet<PathBuf> {
    let Ok(text) = std::fs::read_to_string(config) else {
        return BTreeSet::new();
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return BTreeSet::new();
    };
    v["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["destination"].as_str())
        .map(PathBuf::from)
        .collect()
}
