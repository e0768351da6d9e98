//! The new mount API (open_tree, move_mount, mount_setattr, fsopen/fsconfig/fsmount), which nix
//! 0.32 lacks: mounts built on file descriptors, so a target is never named by a path an
//! untrusted rootfs could swap for a symlink.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

pub const OPEN_TREE_CLONE: u32 = 0x1;
pub const OPEN_TREE_CLOEXEC: u32 = 0o2_000_000;
pub const AT_EMPTY_PATH: u32 = 0x1000;
pub const AT_RECURSIVE: u32 = 0x8000;
pub const AT_SYMLINK_NOFOLLOW: u32 = 0x100;

pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_IDMAP: u64 = 0x10_0000;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x20_0000;

const FSOPEN_CLOEXEC: u32 = 0x1;
const FSMOUNT_CLOEXEC: u32 = 0x1;
const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;

/// `struct mount_attr` of the kernel ABI (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

fn cstr(s: &str) -> nix::Result<CString> {
    CString::new(s).map_err(|_| Errno::EINVAL)
}

fn fd_result(ret: libc::c_long) -> nix::Result<OwnedFd> {
    if ret < 0 {
        return Err(Errno::last());
    }
    let fd = i32::try_from(ret).map_err(|_| Errno::EOVERFLOW)?;
    // SAFETY: the kernel just returned this new descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn unit_result(ret: libc::c_long) -> nix::Result<()> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// open_tree(dirfd, path, flags): with OPEN_TREE_CLONE a detached copy of the mount (tree, with
/// AT_RECURSIVE) at `path`, ready to be configured and attached with move_mount.
pub fn open_tree(dirfd: BorrowedFd<'_>, path: &str, flags: u32) -> nix::Result<OwnedFd> {
    let p = cstr(path)?;
    // SAFETY: p is a NUL-terminated string alive for the call; dirfd is a valid descriptor.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dirfd.as_raw_fd(),
            p.as_ptr(),
            flags | OPEN_TREE_CLOEXEC,
        )
    };
    fd_result(ret)
}

/// move_mount(from, "", to, "", F_EMPTY_PATH|T_EMPTY_PATH): attach the mount `from` on top of
/// the file or directory `to` refers to.
pub fn move_mount_fd(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> nix::Result<()> {
    let empty: &CStr = c"";
    // SAFETY: both strings are static NUL-terminated; both descriptors are valid.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            to.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    unit_result(ret)
}

/// mount_setattr(dirfd, path, flags, attr): change per-mount attributes (recursively with
/// AT_RECURSIVE), including MOUNT_ATTR_IDMAP with a user namespace fd.
pub fn mount_setattr(
    dirfd: BorrowedFd<'_>,
    path: &str,
    flags: u32,
    attr: &MountAttr,
) -> nix::Result<()> {
    let p = cstr(path)?;
    // SAFETY: p and attr are valid for the call, the size passed is attr's exact size.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd.as_raw_fd(),
            p.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    unit_result(ret)
}

/// A filesystem context from fsopen(2), configured key by key, then turned into a detached mount.
pub struct FsContext(OwnedFd);

impl FsContext {
    pub fn open(fstype: &str) -> nix::Result<Self> {
        let t = cstr(fstype)?;
        // SAFETY: t is a NUL-terminated string alive for the call.
        let ret = unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), FSOPEN_CLOEXEC) };
        fd_result(ret).map(Self)
    }

    fn config(&self, cmd: u32, key: Option<&CStr>, value: Option<&CStr>) -> nix::Result<()> {
        let k = key.map_or(std::ptr::null(), CStr::as_ptr);
        let v = value.map_or(std::ptr::null(), CStr::as_ptr);
        // SAFETY: key/value are NUL-terminated strings (or NULL where the command takes none),
        // alive for the call; the context fd is valid.
        let ret = unsafe { libc::syscall(libc::SYS_fsconfig, self.0.as_raw_fd(), cmd, k, v, 0i32) };
        unit_result(ret)
    }

    /// One `key` or `key=value` option, as mount(2)'s data string would carry it.
    pub fn set(&self, option: &str) -> nix::Result<()> {
        match option.split_once('=') {
            Some((k, v)) => self.config(FSCONFIG_SET_STRING, Some(&cstr(k)?), Some(&cstr(v)?)),
            None => self.config(FSCONFIG_SET_FLAG, Some(&cstr(option)?), None),
        }
    }

    /// Create the superblock and return a detached mount of it with the given MOUNT_ATTR_* flags.
    pub fn mount(self, attr_flags: u64) -> nix::Result<OwnedFd> {
        self.config(FSCONFIG_CMD_CREATE, None, None)?;
        let attrs = u32::try_from(attr_flags).map_err(|_| Errno::EINVAL)?;
        // SAFETY: the context fd is valid; flags are plain integers.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                self.0.as_fd().as_raw_fd(),
                FSMOUNT_CLOEXEC,
                attrs,
            )
        };
        fd_result(ret)
    }
}
