//! runc's "tmpcopyup" extension: a tmpfs mounted over a directory starts with a copy of what the
//! directory held, so an image's /run or /tmp content stays visible. The original directory is
//! opened before the mount covers it and read through descriptors only (no symlink followed).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, mknodat, umask, Mode, SFlag};
use nix::unistd::{fchown, fchownat, symlinkat, Gid, Uid};

use super::error::{Context, RootfsError};
use super::resolve::Root;

/// A tree deeper than this is refused rather than risking the init's stack.
const MAX_DEPTH: u32 = 128;

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// The directory about to be covered, opened for reading.
pub(super) fn open_original(root: &Root, dest: &Path, field: &str) -> Result<OwnedFd, RootfsError> {
    root.open_in(dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
        .ctx(|| format!("{field}: tmpcopyup: open {}", dest.display()))
}

/// Copy the original directory's content, owner and mode into the tmpfs now mounted at `dest`.
pub(super) fn copy_up(
    original: OwnedFd,
    root: &Root,
    dest: &Path,
    field: &str,
) -> Result<(), RootfsError> {
    let what = || format!("{field}: tmpcopyup into {}", dest.display());
    let to = root
        .open_in(dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
        .ctx(what)?;
    // Modes are copied exactly, not filtered by the runtime's umask.
    let old = umask(Mode::empty());
    let res = copy_dir(original.as_fd(), to.as_fd(), 0);
    umask(old);
    res.ctx(what)?;
    let st = fstat(&original).ctx(what)?;
    fchown(
        &to,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )
    .ctx(what)?;
    fchmod(&to, Mode::from_bits_truncate(st.st_mode & 0o7777)).ctx(what)
}

fn copy_dir(from: BorrowedFd<'_>, to: BorrowedFd<'_>, depth: u32) -> nix::Result<()> {
    if depth > MAX_DEPTH {
        return Err(Errno::ELOOP);
    }
    let mut dir = Dir::from_fd(from.try_clone_to_owned().map_err(|_| Errno::EBADF)?)?;
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let st = fstatat(from, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        match kind {
            SFlag::S_IFDIR => {
                mkdirat(to, name, mode)?;
                let sub_from = nix::fcntl::openat(from, name, DIR_FLAGS, Mode::empty())?;
                let sub_to = nix::fcntl::openat(to, name, DIR_FLAGS, Mode::empty())?;
                copy_dir(sub_from.as_fd(), sub_to.as_fd(), depth + 1)?;
            }
            SFlag::S_IFREG => {
                let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let src = nix::fcntl::openat(from, name, flags, Mode::empty())?;
                let flags = OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_WRONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC;
                let dst = nix::fcntl::openat(to, name, flags, mode)?;
                std::io::copy(&mut std::fs::File::from(src), &mut std::fs::File::from(dst))
                    .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(from, name)?;
                symlinkat(target.as_os_str(), to, name)?;
            }
            _ => mknodat(to, name, kind, mode, st.st_rdev)?,
        }
        fchownat(
            to,
            name,
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
    }
    Ok(())
}
