//! The few libnftables calls hull uses (Debian libnftables-dev, libnftables.so.1): a context,
//! buffered output and errors, and running a batch of commands given as text.

use std::ffi::{c_char, c_int, c_uint, CStr, CString};
use std::ptr::NonNull;

#[repr(C)]
struct NftCtx {
    _private: [u8; 0],
}

#[link(name = "nftables")]
extern "C" {
    fn nft_ctx_new(flags: u32) -> *mut NftCtx;
    fn nft_ctx_free(ctx: *mut NftCtx);
    fn nft_ctx_buffer_output(ctx: *mut NftCtx) -> c_int;
    fn nft_ctx_get_output_buffer(ctx: *mut NftCtx) -> *const c_char;
    fn nft_ctx_buffer_error(ctx: *mut NftCtx) -> c_int;
    fn nft_ctx_get_error_buffer(ctx: *mut NftCtx) -> *const c_char;
    fn nft_ctx_output_set_flags(ctx: *mut NftCtx, flags: c_uint);
    fn nft_run_cmd_from_buffer(ctx: *mut NftCtx, buf: *const c_char) -> c_int;
}

/// An owned libnftables context with buffered output and error streams.
#[derive(Debug)]
pub struct Ctx(NonNull<NftCtx>);

impl Ctx {
    pub fn new() -> Option<Ctx> {
        // SAFETY: nft_ctx_new has no preconditions; NULL means failure and is checked.
        let ptr = NonNull::new(unsafe { nft_ctx_new(0) })?;
        // SAFETY: ptr is a live context owned by us; these only set fields of it.
        unsafe {
            nft_ctx_output_set_flags(ptr.as_ptr(), 0);
            nft_ctx_buffer_output(ptr.as_ptr());
            nft_ctx_buffer_error(ptr.as_ptr());
        }
        Some(Ctx(ptr))
    }

    /// Runs `cmds` as one batch (one netlink transaction: all or nothing).
    /// Returns Ok(output) or Err(error text).
    pub fn run(&mut self, cmds: &str) -> Result<String, String> {
        let c = CString::new(cmds).map_err(|_| "command text contains a NUL byte".to_string())?;
        // SAFETY: the context is live and exclusively borrowed; c outlives the call.
        let rc = unsafe { nft_run_cmd_from_buffer(self.0.as_ptr(), c.as_ptr()) };
        // SAFETY: the context is live; the buffers it returns are valid NUL-terminated
        // strings until the next run on it, and we copy them out at once.
        let (out, err) = unsafe {
            (
                text(nft_ctx_get_output_buffer(self.0.as_ptr())),
                text(nft_ctx_get_error_buffer(self.0.as_ptr())),
            )
        };
        if rc == 0 {
            Ok(out)
        } else {
            Err(err)
        }
    }
}

/// Copies a C string that may be NULL.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: we own the context and never use it after this.
        unsafe { nft_ctx_free(self.0.as_ptr()) }
    }
}
