//! Path resolution inside the container's rootfs: every lookup goes through openat2 with
//! RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, so a symlink in the (untrusted) rootfs can never lead
//! out of it, and what is mounted on is the opened descriptor, never a path re-walked later
//! (CVE-2021-30465). Missing directories and files are created on the way, as runc does.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use hull_sys::fd::proc_self_fd;
use hull_sys::resolve::open_in_root;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, Mode, SFlag};

use super::error::{Context, RootfsError};

/// The root directory every container path is resolved in.
pub(crate) struct Root {
    fd: OwnedFd,
    host_path: PathBuf,
}

/// What to create when the last component of a path is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    Dir,
    File,
}

impl Root {
    pub fn open(host_path: &Path) -> Result<Self, RootfsError> {
        let fd = nix::fcntl::open(
            host_path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open rootfs {}", host_path.display()))?;
        Ok(Self {
            fd,
            host_path: host_path.to_path_buf(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// O_PATH descriptor of `path` (a container path), or ENOENT.
    pub fn resolve(&self, path: &Path) -> nix::Result<OwnedFd> {
        self.open_in(path, OFlag::O_PATH)
    }

    /// Like resolve, but a symlink as last component is returned itself, not followed.
    pub fn resolve_nofollow(&self, path: &Path) -> nix::Result<OwnedFd> {
        self.open_in(path, OFlag::O_PATH | OFlag::O_NOFOLLOW)
    }

    pub fn open_in(&self, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
        open_in_root(self.fd.as_fd(), &relative(path), flags)
    }

    /// Resolve `path`, creating missing directories on the way and, if missing, the last
    /// component as `last`. A dangling symlink on the way is followed inside the root and its
    /// target created, as runc's in-root MkdirAll does. Returns an O_PATH descriptor.
    pub fn create(&self, path: &Path, last: Create) -> Result<OwnedFd, RootfsError> {
        match self.resolve(path) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e).ctx(|| format!("resolve {} in rootfs", path.display())),
        }
        let what = || format!("create {} in rootfs", path.display());
        if let Some(fd) = self.create_last(path, last).ctx(what)? {
            return Ok(fd);
        }
        let mut todo: VecDeque<OsString> = components(path);
        let mut walked = PathBuf::from("/");
        let mut parent = self.reopen_root()?;
        let mut links = 0;
        while let Some(name) = todo.pop_front() {
            let kind = if todo.is_empty() { last } else { Create::Dir };
            let next = walked.join(&name);
            match self.resolve(&next) {
                Ok(fd) => {
                    (parent, walked) = (fd, next);
                    continue;
                }
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(e).ctx(what),
            }
            match create_one(parent.as_fd(), &name, kind) {
                Ok(Created::Fd(fd)) => (parent, walked) = (fd, next),
                Ok(Created::Dangling(target)) => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Errno::ELOOP).ctx(what);
                    }
                    for c in components(&target).into_iter().rev() {
                        todo.push_front(c);
                    }
                    if target.is_absolute() {
                        walked = PathBuf::from("/");
                        parent = self.reopen_root()?;
                    }
                }
                Err(e) => return Err(e).ctx(what),
            }
        }
        Ok(parent)
    }

    /// The common case of `create`: only the last component is missing. Its parent is
    /// resolved in one openat2 (instead of one per component from the root, as the walk does)
    /// and the name made in it; the same descriptor the walk would reach, since every prefix
    /// of a parent that resolves resolves too. None when the walk is needed: a missing parent,
    /// a last component that is not a plain name, a dangling symlink in its place.
    fn create_last(&self, path: &Path, last: Create) -> nix::Result<Option<OwnedFd>> {
        let (Some(parent), Some(Component::Normal(name))) =
            (path.parent(), path.components().next_back())
        else {
            return Ok(None);
        };
        let dir = match self.resolve(parent) {
            Ok(dir) => dir,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        match create_one(dir.as_fd(), name, last)? {
            Created::Fd(fd) => Ok(Some(fd)),
            Created::Dangling(_) => Ok(None),
        }
    }

    fn reopen_root(&self) -> Result<OwnedFd, RootfsError> {
        self.fd.try_clone().ctx(|| "dup rootfs descriptor")
    }

    /// The container path of `fd` (a descriptor inside this root), from /proc/self/fd, or
    /// None when it lies outside the root.
    pub fn container_path(&self, fd: BorrowedFd<'_>) -> Result<Option<PathBuf>, RootfsError> {
        let real = std::fs::read_link(proc_self_fd(fd)).ctx(|| "readlink /proc/self/fd")?;
        Ok(real
            .strip_prefix(&self.host_path)
            .ok()
            .map(|p| Path::new("/").join(p)))
    }
}

/// Linux's own limit on symlinks in one lookup.
const MAX_SYMLINKS: u32 = 40;

enum Created {
    Fd(OwnedFd),
    /// `name` is a symlink to this missing target.
    Dangling(PathBuf),
}

/// Create `name` in directory `dir` as `kind` (EEXIST tolerated: a concurrent creator won) and
/// return an O_PATH descriptor of it, never following a symlink in its place.
fn create_one(dir: BorrowedFd<'_>, name: &OsStr, kind: Create) -> nix::Result<Created> {
    let res = match kind {
        Create::Dir => nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(0o755)),
        Create::File => nix::fcntl::openat(
            dir,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(0o644),
        )
        .map(drop),
    };
    match res {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    let fd = nix::fcntl::openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let st = fstat(&fd)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
        let target = nix::fcntl::readlinkat(dir, name)?;
        return Ok(Created::Dangling(PathBuf::from(target)));
    }
    Ok(Created::Fd(fd))
}

/// The components of `path` to walk: names and "..", without "/" and ".".
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// `path` without its leading "/", as openat2 wants it relative to the root descriptor.
pub(crate) fn relative(path: &Path) -> PathBuf {
    let bytes = path.as_os_str().as_bytes();
    let start = bytes.iter().take_while(|b| **b == b'/').count();
    let rest = &bytes[start..];
    if rest.is_empty() {
        PathBuf::from(".")
    } else {
        PathBuf::from(OsStr::from_bytes(rest))
    }
}

/// The file type bits of what `fd` refers to.
pub(crate) fn file_type(fd: BorrowedFd<'_>) -> nix::Result<SFlag> {
    let st = fstat(fd)?;
    Ok(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT)
}
