//! Writing one tar entry into the layer root: whiteouts, files, dirs, links, nodes, metadata.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mknodat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use super::root::LayerRoot;
use super::{components, UnpackError, UnpackOptions};
use crate::sys;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Metadata every created inode gets from its header.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: TimeSpec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn reject(entry: &[u8], reason: impl Into<String>) -> UnpackError {
    UnpackError::Rejected {
        entry: String::from_utf8_lossy(entry).into_owned(),
        reason: reason.into(),
    }
}

fn io_err(entry: &[u8]) -> impl Fn(io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Entry {
        entry: String::from_utf8_lossy(entry).into_owned(),
        err: source,
    }
}

fn errno(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// Writes `e` into `root`. With `src` (the uncompressed archive file itself), regular file
/// data is copied file to file in the kernel instead of through user space.
pub fn write<R: Read>(
    root: &mut LayerRoot,
    e: &mut tar::Entry<'_, R>,
    opts: &UnpackOptions,
    src: Option<&std::fs::File>,
) -> Result<(), UnpackError> {
    let raw = e.path_bytes().into_owned();
    let kind = e.header().entry_type();
    if matches!(
        kind,
        tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
    ) {
        return Ok(());
    }
    let comps = components(&raw).map_err(|r| reject(&raw, r))?;
    let mut meta = meta(e, &raw)?;
    if let Some((uid, gid)) = opts.owner {
        (meta.uid, meta.gid) = (uid, gid);
    }
    let Some((name, parent)) = comps.split_last() else {
        // The layer root itself ("./"): only its metadata applies.
        if kind != tar::EntryType::Directory {
            return Err(reject(&raw, "the layer root must be a directory"));
        }
        let fd = root.fd().try_clone_to_owned().map_err(io_err(&raw))?;
        set_meta_fd(fd.as_fd(), &meta).map_err(io_err(&raw))?;
        root.defer_dir_time(&[], meta.mtime);
        return Ok(());
    };
    if let Some(hidden) = name
        .strip_prefix(WHITEOUT_PREFIX)
        .filter(|_| opts.whiteouts)
    {
        return whiteout(root, parent, name, hidden, &raw);
    }
    match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            // Sparse entries keep their holes in the archive: only the reader expands them.
            let range = src
                .filter(|_| kind != tar::EntryType::GNUSparse)
                .map(|f| (f, e.raw_file_position(), e.size()));
            let dir = root.dir(parent).map_err(io_err(&raw))?;
            match range {
                Some(r) => regular(
                    dir,
                    name,
                    Data::<tar::Entry<'_, R>>::Range(r.0, r.1, r.2),
                    &meta,
                    opts,
                ),
                None => regular(dir, name, Data::Reader(e), &meta, opts),
            }
            .map_err(io_err(&raw))
        }
        tar::EntryType::Directory => {
            let dir = root.dir(parent).map_err(io_err(&raw))?;
            directory(dir, name, &meta).map_err(io_err(&raw))?;
            root.invalidate();
            root.defer_dir_time(&comps, meta.mtime);
            Ok(())
        }
        tar::EntryType::Symlink => {
            let target = e
                .link_name_bytes()
                .ok_or_else(|| reject(&raw, "symlink without a target"))?
                .into_owned();
            root.invalidate();
            let dir = root.dir(parent).map_err(io_err(&raw))?;
            symlink(dir, name, &target, &meta).map_err(io_err(&raw))
        }
        tar::EntryType::Link => {
            let target = e
                .link_name_bytes()
                .ok_or_else(|| reject(&raw, "hard link without a target"))?
                .into_owned();
            hardlink(root, parent, name, &target, &raw)
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let sflag = match kind {
                tar::EntryType::Char => SFlag::S_IFCHR,
                tar::EntryType::Block => SFlag::S_IFBLK,
                _ => SFlag::S_IFIFO,
            };
            if sflag != SFlag::S_IFIFO && !opts.allow_devices {
                return Err(reject(&raw, "device nodes are not allowed"));
            }
            let major = e.header().device_major().ok().flatten().unwrap_or(0);
            let minor = e.header().device_minor().ok().flatten().unwrap_or(0);
            let dir = root.dir(parent).map_err(io_err(&raw))?;
            node(dir, name, sflag, libc::makedev(major, minor), &meta).map_err(io_err(&raw))
        }
        other => Err(reject(
            &raw,
            format!("unsupported tar entry type {other:?}"),
        )),
    }
}

fn meta<R: Read>(e: &mut tar::Entry<'_, R>, raw: &[u8]) -> Result<Meta, UnpackError> {
    let h = e.header();
    let bad = |what: &str| reject(raw, format!("invalid {what} in tar header"));
    let old = h.as_old();
    let mut uid = u32::try_from(numeric(h.uid(), &old.uid).ok_or_else(|| bad("uid"))?)
        .map_err(|_| bad("uid"))?;
    let mut gid = u32::try_from(numeric(h.gid(), &old.gid).ok_or_else(|| bad("gid"))?)
        .map_err(|_| bad("gid"))?;
    let mode = numeric(h.mode().map(u64::from), &old.mode).ok_or_else(|| bad("mode"))? & 0o7777;
    let mode = u32::try_from(mode).map_err(|_| bad("mode"))?;
    let secs = numeric(h.mtime(), &old.mtime).ok_or_else(|| bad("mtime"))?;
    let mut mtime = TimeSpec::new(i64::try_from(secs).map_err(|_| bad("mtime"))?, 0);
    let mut xattrs = Vec::new();
    if let Some(exts) = e.pax_extensions().map_err(UnpackError::Read)? {
        for ext in exts {
            let ext = ext.map_err(UnpackError::Read)?;
            let key = ext.key_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                if name.starts_with(b"trusted.overlay.") {
                    return Err(reject(raw, "carries an overlayfs xattr"));
                }
                xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
            } else if key == b"mtime" {
                if let Some(t) = parse_pax_time(ext.value_bytes()) {
                    mtime = t;
                }
            } else if key == b"uid" || key == b"gid" {
                // Ids too large for the header's octal field travel in PAX records.
                let v = std::str::from_utf8(ext.value_bytes())
                    .ok()
                    .and_then(|v| v.parse::<u32>().ok())
                    .ok_or_else(|| bad(if key == b"uid" { "PAX uid" } else { "PAX gid" }))?;
                if key == b"uid" {
                    uid = v;
                } else {
                    gid = v;
                }
            }
        }
    }
    Ok(Meta {
        uid,
        gid,
        mode,
        mtime,
        xattrs,
    })
}

/// A numeric header field; one left blank (all NUL or spaces, as some writers do) reads as 0.
fn numeric(parsed: io::Result<u64>, raw: &[u8]) -> Option<u64> {
    match parsed {
        Ok(v) => Some(v),
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Some(0),
        Err(_) => None,
    }
}

fn parse_pax_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nsec: i64 = digits.parse().ok()?;
    Some(TimeSpec::new(sec, if sec < 0 { -nsec } else { nsec }))
}

/// Removes whatever `name` is in `dir` so a new entry can take its place; keeps a directory
/// when a directory replaces it (tar semantics: its metadata is updated, children stay).
fn clear(dir: BorrowedFd<'_>, name: &[u8], keep_dir: bool) -> io::Result<()> {
    let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(errno(e)),
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        if keep_dir {
            return Ok(());
        }
        let mut p = hull_sys::fd::proc_self_fd(dir).into_os_string();
        p.push("/");
        p.push(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name));
        // remove_dir_all never follows symlinks inside the tree it removes.
        return std::fs::remove_dir_all(p);
    }
    unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(errno)
}

/// Where a regular file's bytes come from.
enum Data<'a, R> {
    Reader(&'a mut R),
    /// (archive file, offset, length): copied with copy_file_range.
    Range(&'a std::fs::File, u64, u64),
}

fn regular<R: Read>(
    dir: BorrowedFd<'_>,
    name: &[u8],
    data: Data<'_, R>,
    meta: &Meta,
    opts: &UnpackOptions,
) -> io::Result<()> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mode = Mode::from_bits_truncate(0o600);
    let fd = match openat(dir, name, flags, mode) {
        Err(Errno::EEXIST) => {
            clear(dir, name, false)?;
            openat(dir, name, flags, mode)?
        }
        r => r?,
    };
    let mut file = std::fs::File::from(fd);
    match data {
        Data::Reader(r) => copy(r, &mut file)?,
        Data::Range(src, off, len) => copy_range(src, off, len, &file)?,
    }
    if opts.start_writeback {
        // Only a hint: durability comes from the store's syncfs, so a filesystem that
        // refuses it loses nothing.
        let _ = sys::start_writeback(&file);
    }
    set_meta_fd(file.as_fd(), meta)?;
    nix::sys::stat::futimens(file.as_fd(), &meta.mtime, &meta.mtime).map_err(errno)
}

fn copy<R: Read>(from: &mut R, to: &mut std::fs::File) -> io::Result<()> {
    thread_local! {
        // One buffer per thread, reused for every file: a fresh large buffer per file would
        // cost a page-faulting allocation each time.
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 1 << 20]);
    }
    BUF.with(|b| {
        let mut buf = b.borrow_mut();
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            to.write_all(&buf[..n])?;
        }
    })
}

/// Copies `len` bytes at `off` of `src` into `to` inside the kernel.
fn copy_range(src: &std::fs::File, off: u64, len: u64, to: &std::fs::File) -> io::Result<()> {
    let mut off_in =
        i64::try_from(off).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut left = len;
    while left > 0 {
        let chunk = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
        match nix::fcntl::copy_file_range(src, Some(&mut off_in), to, None, chunk) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => left -= n as u64,
            Err(Errno::EINTR) => {}
            // Filesystems that cannot: fall back to positioned reads and writes.
            Err(Errno::EXDEV | Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
                return copy_range_slow(src, u64::try_from(off_in).unwrap_or(0), left, to)
            }
            Err(e) => return Err(errno(e)),
        }
    }
    Ok(())
}

fn copy_range_slow(
    src: &std::fs::File,
    mut off: u64,
    mut left: u64,
    mut to: &std::fs::File,
) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = src.read_at(&mut buf[..want], off)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        to.write_all(&buf[..n])?;
        off += n as u64;
        left -= n as u64;
    }
    Ok(())
}

/// Ownership, then mode (chown clears setuid), then xattrs, on an open inode.
fn set_meta_fd(fd: BorrowedFd<'_>, meta: &Meta) -> io::Result<()> {
    fchown(
        fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )
    .map_err(errno)?;
    fchmod(fd, Mode::from_bits_truncate(meta.mode)).map_err(errno)?;
    for (k, v) in &meta.xattrs {
        sys::fsetxattr(fd, k, v)?;
    }
    Ok(())
}

fn directory(dir: BorrowedFd<'_>, name: &[u8], meta: &Meta) -> io::Result<()> {
    clear(dir, name, true)?;
    match nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(errno(e)),
    }
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    set_meta_fd(fd.as_fd(), meta)
}

fn symlink(dir: BorrowedFd<'_>, name: &[u8], target: &[u8], meta: &Meta) -> io::Result<()> {
    clear(dir, name, false)?;
    symlinkat(target, dir, name).map_err(errno)?;
    set_meta_at(dir, name, meta, true)
}

/// Metadata of a node that cannot be opened for writing (symlink, device, fifo).
fn set_meta_at(dir: BorrowedFd<'_>, name: &[u8], meta: &Meta, is_link: bool) -> io::Result<()> {
    fchownat(
        dir,
        name,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(errno)?;
    if !is_link {
        // Through a descriptor of the node itself: in a tree others write to (a running
        // container's, for `cp`) the name may have become a symlink since we made it, and
        // chmod by name would follow it out of the tree.
        let node = openat(
            dir,
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        if fstat(node.as_fd()).map_err(errno)?.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Err(io::Error::other(
                "replaced by a symlink while being written",
            ));
        }
        std::fs::set_permissions(
            hull_sys::fd::proc_self_fd(node.as_fd()),
            std::os::unix::fs::PermissionsExt::from_mode(meta.mode),
        )?;
    }
    for (k, v) in &meta.xattrs {
        sys::lsetxattr_at(dir, name, k, v)?;
    }
    nix::sys::stat::utimensat(
        dir,
        name,
        &meta.mtime,
        &meta.mtime,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(errno)
}

fn node(
    dir: BorrowedFd<'_>,
    name: &[u8],
    kind: SFlag,
    dev: libc::dev_t,
    meta: &Meta,
) -> io::Result<()> {
    clear(dir, name, false)?;
    mknodat(dir, name, kind, Mode::from_bits_truncate(0o600), dev).map_err(errno)?;
    set_meta_at(dir, name, meta, false)
}

fn hardlink(
    root: &mut LayerRoot,
    parent: &[&[u8]],
    name: &[u8],
    target: &[u8],
    raw: &[u8],
) -> Result<(), UnpackError> {
    let tcomps = components(target).map_err(|r| reject(raw, format!("link target: {r}")))?;
    let Some((tname, tparent)) = tcomps.split_last() else {
        return Err(reject(raw, "hard link to the layer root"));
    };
    let target_err = |e: &dyn std::fmt::Display| {
        reject(
            raw,
            format!(
                "hard link target {:?}: {e}",
                String::from_utf8_lossy(target)
            ),
        )
    };
    let tdir = root.existing_dir(tparent).map_err(|e| target_err(&e))?;
    let st =
        fstatat(tdir.as_fd(), *tname, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| target_err(&e))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Err(reject(raw, "hard link to a directory"));
    }
    let dir = root.dir(parent).map_err(io_err(raw))?;
    clear(dir, name, false).map_err(io_err(raw))?;
    linkat(tdir.as_fd(), *tname, dir, name, AtFlags::empty()).map_err(|e| io_err(raw)(errno(e)))
}

fn whiteout(
    root: &mut LayerRoot,
    parent: &[&[u8]],
    name: &[u8],
    hidden: &[u8],
    raw: &[u8],
) -> Result<(), UnpackError> {
    if name == OPAQUE {
        let dir = root.dir(parent).map_err(io_err(raw))?;
        return sys::fsetxattr(dir, b"trusted.overlay.opaque", b"y").map_err(io_err(raw));
    }
    if hidden.starts_with(WHITEOUT_PREFIX) {
        // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not part of the image's content.
        return Ok(());
    }
    if hidden.is_empty() || hidden == b"." || hidden == b".." {
        return Err(reject(raw, "whiteout of an invalid name"));
    }
    root.invalidate();
    let dir = root.dir(parent).map_err(io_err(raw))?;
    clear(dir, hidden, false).map_err(io_err(raw))?;
    mknodat(
        dir,
        hidden,
        SFlag::S_IFCHR,
        Mode::empty(),
        libc::makedev(0, 0),
    )
    .map_err(|e| io_err(raw)(errno(e)))
}
