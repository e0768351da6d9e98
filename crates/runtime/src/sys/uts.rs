//! The NIS domain name, which nix does not set.

use nix::errno::Errno;

pub fn set_domainname(name: &str) -> Result<(), Errno> {
    let bytes = name.as_bytes();
    // SAFETY: the pointer and length describe `name`'s bytes, valid for the whole call.
    let ret = unsafe { libc::setdomainname(bytes.as_ptr().cast(), bytes.len()) };
    if ret != 0 {
        return Err(Errno::last());
    }
    Ok(())
}
