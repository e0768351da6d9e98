//! Raw syscalls that nix 0.32 does not wrap: bpf(2) for cgroup device programs, and inotify.
//! Every `unsafe` block is here, each with the reason it is sound.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
pub(crate) const BPF_F_ALLOW_MULTI: u32 = 2;

/// The prefix of `union bpf_attr` used by BPF_PROG_LOAD (the kernel zero-fills the rest).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// BPF_PROG_ATTACH / BPF_PROG_DETACH.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// BPF_PROG_QUERY.
#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn fd_u32(fd: BorrowedFd) -> u32 {
    // A valid fd is never negative.
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

/// bpf(cmd, attr, sizeof attr) returning the syscall's non-negative result.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed #[repr(C)] prefix of union bpf_attr whose size
    // is passed along, so the kernel reads/writes only within it; pointers inside it (set by the
    // callers) reference buffers that outlive this call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr).cast::<libc::c_void>(),
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(r: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(r).map_err(|_| io::Error::other("bpf returned a bad fd"))?;
    // SAFETY: bpf() returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Loads a BPF_PROG_TYPE_CGROUP_DEVICE program; on rejection the error carries the verifier log.
pub(crate) fn load_device_prog(insns: &[u64]) -> io::Result<OwnedFd> {
    let license = c"Apache";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len()).map_err(|_| io::Error::other("program too long"))?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..4].copy_from_slice(b"hull");
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(r) => owned(r),
        Err(e) => {
            let mut log = vec![0u8; 16 * 1024];
            attr.log_level = 1;
            attr.log_size = u32::try_from(log.len()).unwrap_or(0);
            attr.log_buf = log.as_mut_ptr() as u64;
            let _ = bpf(BPF_PROG_LOAD, &mut attr);
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            Err(io::Error::new(
                e.kind(),
                format!("{e}; verifier: {}", text.trim()),
            ))
        }
    }
}

pub(crate) fn attach_device_prog(
    cgroup: BorrowedFd,
    prog: BorrowedFd,
    flags: u32,
) -> io::Result<()> {
    let mut attr = ProgAttachAttr {
        target_fd: fd_u32(cgroup),
        attach_bpf_fd: fd_u32(prog),
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

pub(crate) fn detach_device_prog(cgroup: BorrowedFd, prog: BorrowedFd) -> io::Result<()> {
    let mut attr = ProgAttachAttr {
        target_fd: fd_u32(cgroup),
        attach_bpf_fd: fd_u32(prog),
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}

/// Ids of the device programs attached directly to `cgroup`.
pub(crate) fn query_device_progs(cgroup: BorrowedFd) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = ProgQueryAttr {
        target_fd: fd_u32(cgroup),
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: u32::try_from(ids.len()).unwrap_or(0),
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate(usize::try_from(attr.prog_cnt).unwrap_or(0));
    Ok(ids)
}

pub(crate) fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        prog_id: id,
        ..Default::default()
    };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).and_then(owned)
}

/// A non-blocking inotify fd watching `path` for modification (cgroup2 signals memory.events so).
pub(crate) fn inotify_modify(path: &Path) -> io::Result<OwnedFd> {
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: inotify_init1 takes no pointers; a non-negative result is a new fd we then own.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by inotify_init1 and is owned by nothing else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: cpath is a NUL-terminated string alive for the call; fd is a valid inotify fd.
    let wd = unsafe { libc::inotify_add_watch(fd, cpath.as_ptr(), libc::IN_MODIFY) };
    if wd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(owned)
}

/// Reads and discards whatever is pending on a non-blocking fd (inotify events).
pub(crate) fn drain(fd: BorrowedFd) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = nix::unistd::read(fd, &mut buf) {
        if n == 0 {
            break;
        }
    }
}
