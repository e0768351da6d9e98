//! A tree as a tar stream, read through descriptors only: the top is an already resolved
//! descriptor and every entry below is opened relative to its parent's with `O_NOFOLLOW`, so a
//! symlink in the tree (a container's, which its processes may change meanwhile) is archived as
//! a symlink and never followed out of it. `cp` archives files as they are; a layer (`commit`
//! of an upper dir) also carries xattrs and turns overlay whiteouts into OCI ones (`.wh.NAME`
//! for a 0:0 character device, `.wh..wh..opq` in an opaque directory).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode};

/// Writes entries of the tree into a tar stream.
pub struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    /// Archiving an overlay upper dir as a layer.
    layer: bool,
    /// First path of each multiply-linked inode, for hard link entries.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> std::fmt::Debug for TarWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarWriter").finish_non_exhaustive()
    }
}

fn errno(e: nix::Error) -> io::Error {
    io::Error::from(e)
}

const READ: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_NONBLOCK);

impl<W: Write> TarWriter<W> {
    /// For files as they are (`cp`).
    pub fn new(out: W) -> Self {
        Self::with(out, false)
    }

    /// For an overlay upper dir becoming an image layer.
    pub fn layer(out: W) -> Self {
        Self::with(out, true)
    }

    fn with(out: W, layer: bool) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        TarWriter {
            builder,
            layer,
            links: HashMap::new(),
        }
    }

    /// Archives what `top` (an `O_PATH` descriptor, of a symlink itself when not followed) is,
    /// named `name`; `None` archives a directory's contents without the directory.
    pub fn append_top(&mut self, top: &OwnedFd, name: Option<&Path>) -> io::Result<()> {
        let st = fstat(top.as_fd()).map_err(errno)?;
        match (kind(&st), name) {
            (libc::S_IFDIR, name) => {
                let dir = openat(top.as_fd(), ".", READ | OFlag::O_DIRECTORY, Mode::empty())
                    .map_err(errno)?;
                let rel = name.map(Path::to_path_buf).unwrap_or_default();
                if name.is_some() {
                    self.append_header(&st, &rel, tar::EntryType::Directory)?;
                }
                self.append_dir(dir, &rel)
            }
            (_, None) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a directory",
            )),
            (libc::S_IFLNK, Some(name)) => {
                let target = readlinkat(top.as_fd(), "").map_err(errno)?;
                self.append_link(&st, name, Path::new(&target))
            }
            (libc::S_IFREG, Some(name)) => {
                // Reopened for reading through our own descriptor's /proc link: the inode
                // already resolved, no path of the tree looked up again.
                let f = std::fs::File::open(hull_sys::fd::proc_self_fd(top.as_fd()))?;
                self.append_file(&st, name, f)
            }
            (_, Some(name)) => self.append_node(&st, name),
        }
    }

    pub fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }

    fn append_dir(&mut self, dir: OwnedFd, rel: &Path) -> io::Result<()> {
        let mut d = Dir::from_fd(dir).map_err(errno)?;
        let mut names: Vec<Vec<u8>> = d
            .iter()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_bytes().to_vec())
            .filter(|n| n != b"." && n != b"..")
            .collect();
        names.sort();
        for name in names {
            let os = OsStr::from_bytes(&name);
            let path = rel.join(os);
            self.append_child(d.as_fd(), os, &path)?;
        }
        Ok(())
    }

    fn append_child(&mut self, dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> io::Result<()> {
        // This entry's own calls name it in their errors.
        let at =
            |e: nix::Error| io::Error::new(errno(e).kind(), format!("{}: {e}", path.display()));
        let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Removed meanwhile (a running container's file, a /proc entry): as tar, skipped.
            Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(at(e)),
        };
        if self.layer {
            if kind(&st) == libc::S_IFCHR && st.st_rdev == 0 {
                let mut wh = std::ffi::OsString::from(".wh.");
                wh.push(name);
                return self.append_marker(&st, &path.with_file_name(wh));
            }
            self.append_xattrs(dir, name)?;
        }
        // Each open comes before anything of the entry is written, so one that finds the
        // entry gone skips it whole.
        match kind(&st) {
            libc::S_IFDIR => {
                let sub = match openat(dir, name, READ | OFlag::O_DIRECTORY, Mode::empty()) {
                    Err(nix::errno::Errno::ENOENT) => return Ok(()),
                    r => r.map_err(at)?,
                };
                self.append_header(&st, path, tar::EntryType::Directory)?;
                if self.layer && is_opaque(dir, name)? {
                    self.append_marker(&st, &path.join(".wh..wh..opq"))?;
                }
                self.append_dir(sub, path)
            }
            libc::S_IFLNK => {
                let target = match readlinkat(dir, name) {
                    Err(nix::errno::Errno::ENOENT) => return Ok(()),
                    r => r.map_err(at)?,
                };
                self.append_link(&st, path, Path::new(&target))
            }
            libc::S_IFREG => {
                let fd = match openat(dir, name, READ, Mode::empty()) {
                    Err(nix::errno::Errno::ENOENT) => return Ok(()),
                    r => r.map_err(at)?,
                };
                let now = fstat(fd.as_fd()).map_err(at)?;
                if kind(&now) != libc::S_IFREG {
                    return Err(io::Error::other(format!(
                        "{}: changed while being copied",
                        path.display()
                    )));
                }
                self.append_file(&now, path, std::fs::File::from(fd))
            }
            libc::S_IFSOCK => Ok(()),
            _ => self.append_node(&st, path),
        }
    }

    fn append_file(&mut self, st: &FileStat, path: &Path, f: std::fs::File) -> io::Result<()> {
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                let first = first.clone();
                let mut h = header(st, tar::EntryType::Link);
                return self.builder.append_link(&mut h, path, first);
            }
            self.links.insert(key, path.to_path_buf());
        }
        let size = u64::try_from(st.st_size).unwrap_or(0);
        let mut h = header(st, tar::EntryType::Regular);
        h.set_size(size);
        // Reads at most the size in the header: a file that grows meanwhile is cut there.
        self.builder
            .append_data(&mut h, path, io::Read::take(f, size))
    }

    fn append_link(&mut self, st: &FileStat, path: &Path, target: &Path) -> io::Result<()> {
        let mut h = header(st, tar::EntryType::Symlink);
        self.builder.append_link(&mut h, path, target)
    }

    fn append_node(&mut self, st: &FileStat, path: &Path) -> io::Result<()> {
        let entry = match kind(st) {
            libc::S_IFCHR => tar::EntryType::Char,
            libc::S_IFBLK => tar::EntryType::Block,
            libc::S_IFIFO => tar::EntryType::Fifo,
            _ => return Ok(()),
        };
        let mut h = header(st, entry);
        h.set_device_major(libc::major(st.st_rdev))?;
        h.set_device_minor(libc::minor(st.st_rdev))?;
        self.builder.append_data(&mut h, path, io::empty())
    }

    fn append_header(
        &mut self,
        st: &FileStat,
        path: &Path,
        entry: tar::EntryType,
    ) -> io::Result<()> {
        let mut h = header(st, entry);
        self.builder.append_data(&mut h, path, io::empty())
    }
}

impl<W: Write> TarWriter<W> {
    /// An empty marker file (`.wh.NAME`, `.wh..wh..opq`).
    fn append_marker(&mut self, st: &FileStat, path: &Path) -> io::Result<()> {
        let mut h = header(st, tar::EntryType::Regular);
        h.set_mode(0o644);
        self.builder.append_data(&mut h, path, io::empty())
    }

    /// The entry's xattrs (but overlayfs' own) as a PAX header before it.
    fn append_xattrs(&mut self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        let at = at_path(dir, name)?;
        let mut pax = Vec::new();
        for k in crate::sys::llistxattr(&at)? {
            if k.starts_with(b"trusted.overlay.") {
                continue;
            }
            if let Some(v) = crate::sys::lgetxattr(&at, &k)? {
                pax.push((format!("SCHILY.xattr.{}", String::from_utf8_lossy(&k)), v));
            }
        }
        if pax.is_empty() {
            return Ok(());
        }
        self.builder
            .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }
}

/// A path for the `l*xattr` calls that names `name` in the already open `dir`: the /proc link
/// leads to that very directory, and the last component is not followed.
fn at_path(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<std::ffi::CString> {
    let mut p = hull_sys::fd::proc_self_fd(dir).into_os_string();
    p.push("/");
    p.push(name);
    std::ffi::CString::new(p.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn is_opaque(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    Ok(
        crate::sys::lgetxattr(&at_path(dir, name)?, b"trusted.overlay.opaque")?.as_deref()
            == Some(b"y"),
    )
}

fn kind(st: &FileStat) -> libc::mode_t {
    st.st_mode & libc::S_IFMT
}

fn header(st: &FileStat, entry: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(entry);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    h.set_size(0);
    h
}
