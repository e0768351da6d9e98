//! The layer dir being written, and resolution of parent directories strictly inside it.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use hull_sys::resolve::open_in_root;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{utimensat, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::UnpackError;

/// A layer dir opened once; every lookup is relative to it and cannot escape it.
#[derive(Debug)]
pub struct LayerRoot {
    root: OwnedFd,
    /// The last parent dir resolved, as tar entries come grouped by directory.
    cached: Option<(Vec<u8>, OwnedFd)>,
    /// Directory mtimes, applied last because creating children changes them.
    dir_times: Vec<(Vec<u8>, TimeSpec)>,
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY.union(OFlag::O_DIRECTORY);

impl LayerRoot {
    pub fn open(dest: &Path) -> io::Result<Self> {
        let root = nix::fcntl::open(
            dest,
            DIR_FLAGS | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )?;
        Ok(Self {
            root,
            cached: None,
            dir_times: Vec::new(),
        })
    }

    /// A directory already open (read-only, `O_DIRECTORY`).
    pub fn from_fd(root: OwnedFd) -> Self {
        Self {
            root,
            cached: None,
            dir_times: Vec::new(),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Forgets the cached parent: an entry just replaced something that may be on its path.
    pub fn invalidate(&mut self) {
        self.cached = None;
    }

    /// Opens the directory `comps` (already clean) inside the root, creating missing ones
    /// with mode 0755 as tar does for entries whose parents were not listed.
    pub fn dir(&mut self, comps: &[&[u8]]) -> io::Result<BorrowedFd<'_>> {
        let key = comps.join(&b'/');
        if self.cached.as_ref().is_some_and(|(k, _)| *k == key) {
            return Ok(self
                .cached
                .as_ref()
                .map(|(_, fd)| fd.as_fd())
                .unwrap_or(self.root.as_fd()));
        }
        let fd = if comps.is_empty() {
            self.root.try_clone()?
        } else {
            match open_in_root(self.root.as_fd(), key.as_slice(), DIR_FLAGS) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => self.create_path(comps)?,
                Err(e) => return Err(e.into()),
            }
        };
        self.cached = Some((key, fd));
        Ok(self
            .cached
            .as_ref()
            .map(|(_, fd)| fd.as_fd())
            .unwrap_or(self.root.as_fd()))
    }

    /// Opens the existing directory `comps` inside the root, creating nothing.
    pub fn existing_dir(&self, comps: &[&[u8]]) -> io::Result<OwnedFd> {
        if comps.is_empty() {
            return self.root.try_clone();
        }
        Ok(open_in_root(
            self.root.as_fd(),
            comps.join(&b'/').as_slice(),
            DIR_FLAGS,
        )?)
    }

    fn create_path(&self, comps: &[&[u8]]) -> io::Result<OwnedFd> {
        let mut parent = self.root.try_clone()?;
        for i in 0..comps.len() {
            // Each prefix resolves inside the root again, so a symlink met here stays inside.
            let prefix = comps[..=i].join(&b'/');
            parent = match open_in_root(self.root.as_fd(), prefix.as_slice(), DIR_FLAGS) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    match nix::sys::stat::mkdirat(
                        parent.as_fd(),
                        comps[i],
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    open_in_root(self.root.as_fd(), prefix.as_slice(), DIR_FLAGS)?
                }
                Err(e) => return Err(e.into()),
            };
        }
        Ok(parent)
    }

    pub fn defer_dir_time(&mut self, comps: &[&[u8]], t: TimeSpec) {
        self.dir_times.push((comps.join(&b'/'), t));
    }

    /// Applies the deferred directory mtimes, deepest first.
    pub fn finish(&mut self) -> Result<(), UnpackError> {
        self.cached = None;
        let mut times = std::mem::take(&mut self.dir_times);
        times.sort_by_key(|t| std::cmp::Reverse(t.0.len()));
        for (path, t) in times {
            let fd = if path.is_empty() {
                self.root.try_clone()
            } else {
                open_in_root(self.root.as_fd(), path.as_slice(), DIR_FLAGS).map_err(io::Error::from)
            };
            let res = fd.and_then(|fd| {
                utimensat(fd.as_fd(), ".", &t, &t, UtimensatFlags::NoFollowSymlink)
                    .map_err(io::Error::from)
            });
            res.map_err(|source| UnpackError::Entry {
                entry: String::from_utf8_lossy(&path).into_owned(),
                err: source,
            })?;
        }
        Ok(())
    }
}
