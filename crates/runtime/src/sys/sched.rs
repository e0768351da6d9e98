//! sched_setattr(2)/sched_getattr(2): the only call that sets every scheduler attribute the
//! OCI `process.scheduler` object has (deadline parameters and flags included).

use std::io;

/// `struct sched_attr` (SCHED_ATTR_SIZE_VER1, with the utilization clamps).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub sched_policy: u32,
    pub sched_flags: u64,
    pub sched_nice: i32,
    pub sched_priority: u32,
    pub sched_runtime: u64,
    pub sched_deadline: u64,
    pub sched_period: u64,
    pub sched_util_min: u32,
    pub sched_util_max: u32,
}

fn attr_size() -> u32 {
    // The struct is 56 bytes; the kernel wants its size in the size field.
    u32::try_from(std::mem::size_of::<SchedAttr>()).unwrap_or(56)
}

/// Sets the scheduling attributes of `pid` (0: the calling thread).
pub fn sched_setattr(pid: i32, attr: &SchedAttr) -> io::Result<()> {
    let mut attr = *attr;
    attr.size = attr_size();
    // SAFETY: attr points to a live, correctly sized sched_attr that the kernel only reads.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, pid, &attr, 0u32) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads the scheduling attributes of `pid` (0: the calling thread).
#[cfg(test)]
pub fn sched_getattr(pid: i32) -> io::Result<SchedAttr> {
    let mut attr = SchedAttr::default();
    let size = attr_size();
    // SAFETY: attr is a live, writable sched_attr of `size` bytes.
    let rc = unsafe { libc::syscall(libc::SYS_sched_getattr, pid, &mut attr, size, 0u32) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(attr)
}
