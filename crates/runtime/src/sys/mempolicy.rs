//! set_mempolicy(2): the calling thread's NUMA memory policy, which its children inherit.

use std::io;

/// `mode` is the MPOL_* mode or-ed with its MPOL_F_* flags; `mask` holds nodes 0.. as bits,
/// 64 to a word; an empty mask passes no nodemask.
pub fn set_mempolicy(mode: i32, mask: &[u64]) -> io::Result<()> {
    let bits = mask.len() * 64;
    // The kernel reads maxnode - 1 bits (a historical off-by-one that every caller matches).
    let maxnode = if mask.is_empty() { 0 } else { bits + 1 };
    let ptr = if mask.is_empty() {
        std::ptr::null()
    } else {
        mask.as_ptr()
    };
    // SAFETY: `ptr` is null or points to `mask`, which holds the maxnode - 1 bits the kernel
    // reads and outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
