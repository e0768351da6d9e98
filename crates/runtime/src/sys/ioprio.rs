//! ioprio_set(2)/ioprio_get(2) for one process.

use std::io;

const IOPRIO_WHO_PROCESS: libc::c_int = 1;
const IOPRIO_CLASS_SHIFT: u32 = 13;

/// Builds the kernel's ioprio value from a class (1 RT, 2 BE, 3 IDLE) and a level (0-7).
pub fn ioprio_value(class: u32, level: u32) -> u32 {
    (class << IOPRIO_CLASS_SHIFT) | level
}

/// Sets the I/O priority of `pid` (0: the caller).
pub fn ioprio_set(pid: i32, value: u32) -> io::Result<()> {
    // SAFETY: ioprio_set takes integers only.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, pid, value) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads the I/O priority of `pid` (0: the caller) as (class, level).
#[cfg(test)]
pub fn ioprio_get(pid: i32) -> io::Result<(u32, u32)> {
    // SAFETY: ioprio_get takes integers only.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, pid) };
    let value = u32::try_from(rc).map_err(|_| io::Error::last_os_error())?;
    Ok((value >> IOPRIO_CLASS_SHIFT, value & 0xff))
}
