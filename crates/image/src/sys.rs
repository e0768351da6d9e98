//! The few raw syscalls nix 0.32 lacks that only the image code needs: extended attributes,
//! sync_file_range, inode flags and a legacy overlay mount(2) in a helper child (the new mount
//! API, mountinfo and openat2 lookups are hull-sys's).
//! Each wrapper is small, returns `io::Result`, and documents why its `unsafe` is sound.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStringExt;

fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Path through /proc that names `name` inside the directory `dir` without following a
/// final symlink once used with an `l*xattr` call; the directory itself is already resolved.
fn proc_path(dir: impl AsFd, name: &[u8]) -> io::Result<CString> {
    let mut p = hull_sys::fd::proc_self_fd(dir).into_os_string().into_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    cstr(&p)
}

/// Starts the writeback of every dirty page of `fd` without waiting for it
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so that the one syncfs at the end of a pull
/// finds the data already on its way to disk instead of stalling on all of it.
pub fn start_writeback(fd: impl AsFd) -> io::Result<()> {
    // SAFETY: a plain syscall on a valid descriptor; no memory is passed.
    let r =
        unsafe { libc::sync_file_range(fd.as_fd().as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    check(r.into()).map(drop)
}

/// Marks the directory `fd` as the top of independent hierarchies (`chattr +T`): ext4 then
/// spreads the directories created in it over its block groups (Orlov) instead of packing
/// them into the parent's group, where the inodes of just-deleted layers would make every
/// new inode's allocation skip past them one by one. Only a placement hint.
pub fn set_topdir(fd: impl AsFd) -> io::Result<()> {
    const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;
    let raw = fd.as_fd().as_raw_fd();
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int through the valid pointer it is given.
    check(unsafe { libc::ioctl(raw, libc::FS_IOC_GETFLAGS, &mut flags) }.into())?;
    if flags & FS_TOPDIR_FL == 0 {
        flags |= FS_TOPDIR_FL;
        // SAFETY: FS_IOC_SETFLAGS reads one int through the valid pointer it is given.
        check(unsafe { libc::ioctl(raw, libc::FS_IOC_SETFLAGS, &flags) }.into())?;
    }
    Ok(())
}

/// Sets an xattr on the open file `fd`.
pub fn fsetxattr(fd: impl AsFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let k = cstr(key)?;
    // SAFETY: k is a valid NUL-terminated string and value a valid slice for its length.
    let r = unsafe {
        libc::fsetxattr(
            fd.as_fd().as_raw_fd(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    check(r.into()).map(drop)
}

/// Sets an xattr on `name` in `dir` without following a symlink at `name`.
pub fn lsetxattr_at(dir: impl AsFd, name: &[u8], key: &[u8], value: &[u8]) -> io::Result<()> {
    let p = proc_path(dir, name)?;
    let k = cstr(key)?;
    // SAFETY: p and k are valid NUL-terminated strings, value a valid slice for its length.
    let r = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    check(r.into()).map(drop)
}

/// Lists xattr names of `path` (not following a final symlink).
pub fn llistxattr(path: &CStr) -> io::Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: path is NUL-terminated; buf is writable for buf.len() bytes.
        let r = unsafe { libc::llistxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        match check(r as libc::c_long) {
            Ok(n) => {
                let n = usize::try_from(n).unwrap_or(0);
                return Ok(buf[..n]
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect());
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e),
        }
    }
}

/// Reads one xattr of `path` (not following a final symlink); `None` when absent.
pub fn lgetxattr(path: &CStr, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let k = cstr(key)?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: path and k are NUL-terminated; buf is writable for buf.len() bytes.
        let r = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                k.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        match check(r as libc::c_long) {
            Ok(n) => {
                buf.truncate(usize::try_from(n).unwrap_or(0));
                return Ok(Some(buf));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e),
        }
    }
}

/// mount(2) run in a forked child that first changes into `dir`, so relative paths in `data`
/// resolve there without changing the caller's (multi-threaded) working directory.
pub fn mount_in_dir(
    dir: &std::path::Path,
    source: &str,
    target: &std::path::Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &[u8],
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    // Everything the child touches is prepared before fork: it only makes raw syscalls.
    let dir = cstr(dir.as_os_str().as_bytes())?;
    let src = cstr(source.as_bytes())?;
    let tgt = cstr(target.as_os_str().as_bytes())?;
    let fst = cstr(fstype.as_bytes())?;
    let dat = cstr(data)?;
    // SAFETY: the child only calls the async-signal-safe chdir, mount and _exit on memory
    // prepared before the fork, so no lock held by another thread can be touched.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: plain syscalls on NUL-terminated strings that live until _exit.
            unsafe {
                if libc::chdir(dir.as_ptr()) != 0 {
                    libc::_exit(*libc::__errno_location());
                }
                let r = libc::mount(
                    src.as_ptr(),
                    tgt.as_ptr(),
                    fst.as_ptr(),
                    flags,
                    dat.as_ptr().cast(),
                );
                libc::_exit(if r == 0 { 0 } else { *libc::__errno_location() });
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            match nix::sys::wait::waitpid(child, None).map_err(io::Error::from)? {
                nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
                nix::sys::wait::WaitStatus::Exited(_, code) => {
                    Err(io::Error::from_raw_os_error(code))
                }
                other => Err(io::Error::other(format!(
                    "mount helper ended with {other:?}"
                ))),
            }
        }
    }
}
