//! The new mount API (open_tree, move_mount, mount_setattr, fsopen/fsconfig/fsmount), which nix
//! 0.32 lacks: mounts built on file descriptors, so a target is never named by a path an
//! untrusted rootfs could swap for a symlink, and a superblock is configured one parameter at a
//! time (overlayfs's `lowerdir+`, so the number of layers is not bounded by one page of options).
//!
//! Every call returns the kernel's errno as [`nix::errno::Errno`]; the caller names the call and
//! the path or file system in its own one-line message (as the runtime's `RootfsError` and the
//! image's `OverlayError` do). Paths and strings are anything nix takes as a path (`str`,
//! `[u8]`, `Path`, `CStr`, ...): short ones are made NUL-terminated on the stack, and one with
//! an interior NUL fails with EINVAL.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::NixPath;

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

/// open_tree(dirfd, path, flags | OPEN_TREE_CLOEXEC): with OPEN_TREE_CLONE a detached copy of the
/// mount (tree, with AT_RECURSIVE) at `path`, ready to be configured and attached with move_mount.
pub fn open_tree<P: ?Sized + NixPath>(
    dirfd: BorrowedFd<'_>,
    path: &P,
    flags: u32,
) -> nix::Result<OwnedFd> {
    let ret = path.with_nix_path(|p| {
        // SAFETY: p is a NUL-terminated string alive for the call; dirfd is a valid descriptor.
        unsafe {
            libc::syscall(
                libc::SYS_open_tree,
                dirfd.as_raw_fd(),
                p.as_ptr(),
                flags | OPEN_TREE_CLOEXEC,
            )
        }
    })?;
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

/// move_mount(from, "", AT_FDCWD, target, F_EMPTY_PATH): attach the mount `from` at the path
/// `target` (relative ones to the working directory), for callers that trust the path.
pub fn move_mount_to<P: ?Sized + NixPath>(from: BorrowedFd<'_>, target: &P) -> nix::Result<()> {
    let empty: &CStr = c"";
    let ret = target.with_nix_path(|t| {
        // SAFETY: both strings are NUL-terminated and alive for the call; `from` is valid and
        // AT_FDCWD is a sentinel the kernel interprets.
        unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                from.as_raw_fd(),
                empty.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
        }
    })?;
    unit_result(ret)
}

/// mount_setattr(dirfd, path, flags, attr): change per-mount attributes (recursively with
/// AT_RECURSIVE), including MOUNT_ATTR_IDMAP with a user namespace fd.
pub fn mount_setattr<P: ?Sized + NixPath>(
    dirfd: BorrowedFd<'_>,
    path: &P,
    flags: u32,
    attr: &MountAttr,
) -> nix::Result<()> {
    let ret = path.with_nix_path(|p| {
        // SAFETY: p and attr are valid for the call, the size passed is attr's exact size.
        unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                dirfd.as_raw_fd(),
                p.as_ptr(),
                flags,
                attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        }
    })?;
    unit_result(ret)
}

/// A filesystem context from fsopen(2), configured key by key, then turned into a detached mount.
#[derive(Debug)]
pub struct FsContext(OwnedFd);

impl FsContext {
    /// fsopen(fstype, FSOPEN_CLOEXEC).
    pub fn open<P: ?Sized + NixPath>(fstype: &P) -> nix::Result<Self> {
        let ret = fstype.with_nix_path(|t| {
            // SAFETY: t is a NUL-terminated string alive for the call.
            unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), FSOPEN_CLOEXEC) }
        })?;
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

    /// fsconfig(FSCONFIG_SET_STRING, key, value).
    pub fn set_string<K, V>(&self, key: &K, value: &V) -> nix::Result<()>
    where
        K: ?Sized + NixPath,
        V: ?Sized + NixPath,
    {
        key.with_nix_path(|k| {
            value.with_nix_path(|v| self.config(FSCONFIG_SET_STRING, Some(k), Some(v)))
        })??
    }

    /// fsconfig(FSCONFIG_SET_FLAG, key).
    pub fn set_flag<K: ?Sized + NixPath>(&self, key: &K) -> nix::Result<()> {
        key.with_nix_path(|k| self.config(FSCONFIG_SET_FLAG, Some(k), None))?
    }

    /// One `key` or `key=value` option, as mount(2)'s data string would carry it.
    pub fn set(&self, option: &str) -> nix::Result<()> {
        match option.split_once('=') {
            Some((k, v)) => self.set_string(k, v),
            None => self.set_flag(option),
        }
    }

    /// fsconfig(FSCONFIG_CMD_CREATE): builds the superblock.
    pub fn create(&self) -> nix::Result<()> {
        self.config(FSCONFIG_CMD_CREATE, None, None)
    }

    /// fsmount(2): a detached mount of the created superblock with the given MOUNT_ATTR_* flags.
    pub fn fsmount(&self, attr_flags: u64) -> nix::Result<OwnedFd> {
        let attrs = u32::try_from(attr_flags).map_err(|_| Errno::EINVAL)?;
        // SAFETY: the context fd is valid; flags are plain integers.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                self.0.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                attrs,
            )
        };
        fd_result(ret)
    }

    /// Create the superblock and return a detached mount of it with the given MOUNT_ATTR_* flags.
    pub fn mount(self, attr_flags: u64) -> nix::Result<OwnedFd> {
        self.create()?;
        self.fsmount(attr_flags)
    }

    /// The last message the kernel logged on this context (overlayfs explains its refusals
    /// there), for an error report; `None` when there is none.
    pub fn message(&self) -> Option<String> {
        let mut buf = [0u8; 1024];
        let n = nix::unistd::read(self.0.as_fd(), &mut buf).ok()?;
        let msg = String::from_utf8_lossy(&buf[..n]).trim().to_string();
        (!msg.is_empty()).then_some(msg)
    }
}

impl AsFd for FsContext {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_attr_is_the_kernel_struct() {
        // MOUNT_ATTR_SIZE_VER0
        assert_eq!(std::mem::size_of::<MountAttr>(), 32);
    }

    #[test]
    fn interior_nul_is_einval_before_any_call() {
        assert_eq!(FsContext::open("tmp\0fs").unwrap_err(), Errno::EINVAL);
        assert_eq!(
            open_tree(nix::fcntl::AT_FDCWD, "a\0b", OPEN_TREE_CLONE).unwrap_err(),
            Errno::EINVAL
        );
    }

    /// A scratch dir whose mounts are detached and which is removed when the test ends.
    struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            for d in ["b", "a"] {
                let _ = nix::mount::umount2(&self.0.join(d), nix::mount::MntFlags::MNT_DETACH);
            }
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn entry_at(text: &str, mp: &std::path::Path) -> Option<(String, String, String)> {
        crate::mountinfo::parse(text)
            .filter_map(Result::ok)
            .filter(|m| m.mount_point() == mp)
            .map(|m| {
                let src = m.source().to_string_lossy().into_owned();
                (m.fs_type.to_string(), m.mount_options.to_string(), src)
            })
            .last()
    }

    #[test]
    fn a_tmpfs_is_built_cloned_made_read_only_and_attached() {
        if !nix::unistd::geteuid().is_root() {
            hull_testkit::skip!("mounting needs root");
        }
        let dir = std::env::temp_dir().join(format!("hull-sys-mount-api-{}", std::process::id()));
        let scratch = Scratch(dir.clone());
        for d in ["a", "b"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let (a, b) = (dir.join("a"), dir.join("b"));

        let ctx = FsContext::open("tmpfs").unwrap();
        assert_eq!(ctx.set("hull-no-such-option"), Err(Errno::EINVAL));
        let msg = ctx.message().unwrap_or_default();
        assert!(msg.contains("hull-no-such-option"), "{msg}");
        ctx.set("size=1m").unwrap();
        ctx.set_string("mode", "0700").unwrap();
        ctx.set_string("source", "hull-sys-test").unwrap();
        let mnt = ctx.mount(MOUNT_ATTR_NOSUID).unwrap();
        move_mount_to(mnt.as_fd(), &a).unwrap();

        let tree = open_tree(nix::fcntl::AT_FDCWD, &a, OPEN_TREE_CLONE).unwrap();
        let ro = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY,
            ..MountAttr::default()
        };
        mount_setattr(tree.as_fd(), "", AT_EMPTY_PATH, &ro).unwrap();
        let target = nix::fcntl::open(
            &b,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        move_mount_fd(tree.as_fd(), target.as_fd()).unwrap();

        let text = crate::mountinfo::read_self().unwrap();
        let (fs, opts, src) = entry_at(&text, &a).expect("a is mounted");
        assert_eq!((fs.as_str(), src.as_str()), ("tmpfs", "hull-sys-test"));
        assert!(opts.starts_with("rw,nosuid"), "{opts}");
        let (fs, opts, _) = entry_at(&text, &b).expect("b is mounted");
        assert_eq!(fs, "tmpfs");
        assert!(opts.starts_with("ro,nosuid"), "{opts}");
        drop(scratch);
        let text = crate::mountinfo::read_self().unwrap();
        assert!(entry_at(&text, &a).is_none() && entry_at(&text, &b).is_none());
    }

    #[test]
    fn an_unknown_filesystem_is_refused_by_fsopen() {
        // ENODEV for an unknown type; EPERM without CAP_SYS_ADMIN; ENOSYS before Linux 5.2.
        let e = FsContext::open("hull-no-such-fs").unwrap_err();
        assert!(
            matches!(e, Errno::ENODEV | Errno::EPERM | Errno::ENOSYS),
            "{e}"
        );
    }
}
