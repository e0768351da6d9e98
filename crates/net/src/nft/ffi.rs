//! The few libnftables calls hull uses (Debian libnftables-dev, libnftables.so.1): a context,
//! buffered output and errors, and running a batch of commands given as text.
//!
//! The library is opened with dlopen the first time a context is made, not linked: linking it
//! makes every `hull` process (and every container's monitor) load and relocate it and its
//! dependencies (libnftnl, libmnl, libxtables, libjansson, libgmp) before `main`, about a
//! millisecond on each command, while only the bridge network's port and masquerade rules
//! use it.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::ptr::NonNull;
use std::sync::OnceLock;

#[repr(C)]
struct NftCtx {
    _private: [u8; 0],
}

/// The library's soname (Debian's libnftables1).
const LIBRARY: &CStr = c"libnftables.so.1";

type CtxNew = unsafe extern "C" fn(u32) -> *mut NftCtx;
type CtxFree = unsafe extern "C" fn(*mut NftCtx);
type CtxSet = unsafe extern "C" fn(*mut NftCtx) -> c_int;
type CtxGet = unsafe extern "C" fn(*mut NftCtx) -> *const c_char;
type SetFlags = unsafe extern "C" fn(*mut NftCtx, c_uint);
type RunCmd = unsafe extern "C" fn(*mut NftCtx, *const c_char) -> c_int;

/// The entry points hull calls, resolved once per process.
#[derive(Debug, Clone, Copy)]
struct Api {
    ctx_new: CtxNew,
    ctx_free: CtxFree,
    buffer_output: CtxSet,
    get_output_buffer: CtxGet,
    buffer_error: CtxSet,
    get_error_buffer: CtxGet,
    output_set_flags: SetFlags,
    run_cmd_from_buffer: RunCmd,
}

/// The library's API, or why it could not be loaded (the same answer for the process's life).
fn api() -> Result<Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load).clone()
}

/// The last dlerror() text.
fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl call.
    unsafe { text(libc::dlerror()) }
}

fn load() -> Result<Api, String> {
    // SAFETY: dlopen of a system library by soname; its initialisers are libnftables's own.
    // The handle is never closed: the function pointers below live as long as the process.
    let handle = unsafe { libc::dlopen(LIBRARY.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(dl_error());
    }
    // SAFETY: each type is that of the C prototype (libnftables.h) of the symbol named.
    unsafe {
        Ok(Api {
            ctx_new: symbol(handle, c"nft_ctx_new")?,
            ctx_free: symbol(handle, c"nft_ctx_free")?,
            buffer_output: symbol(handle, c"nft_ctx_buffer_output")?,
            get_output_buffer: symbol(handle, c"nft_ctx_get_output_buffer")?,
            buffer_error: symbol(handle, c"nft_ctx_buffer_error")?,
            get_error_buffer: symbol(handle, c"nft_ctx_get_error_buffer")?,
            output_set_flags: symbol(handle, c"nft_ctx_output_set_flags")?,
            run_cmd_from_buffer: symbol(handle, c"nft_run_cmd_from_buffer")?,
        })
    }
}

/// The function `name` of the library `handle`.
///
/// # Safety
/// `handle` is a live dlopen handle and `F` the function pointer type of `name`'s prototype.
unsafe fn symbol<F: Copy>(handle: *mut c_void, name: &CStr) -> Result<F, String> {
    // SAFETY: guaranteed by the caller; name is NUL-terminated.
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    if p.is_null() || std::mem::size_of::<F>() != std::mem::size_of::<*mut c_void>() {
        return Err(format!("{}: {}", name.to_string_lossy(), dl_error()));
    }
    // SAFETY: a function pointer has the size of a data pointer (checked), and `F` is the
    // symbol's type (guaranteed by the caller).
    Ok(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) })
}

/// An owned libnftables context with buffered output and error streams.
#[derive(Debug)]
pub struct Ctx {
    ctx: NonNull<NftCtx>,
    api: Api,
}

impl Ctx {
    /// A new context; the error says why there is none (the library missing, or out of
    /// memory).
    pub fn new() -> Result<Ctx, String> {
        let api = api()?;
        // SAFETY: nft_ctx_new has no preconditions; NULL means failure and is checked.
        let ptr = NonNull::new(unsafe { (api.ctx_new)(0) })
            .ok_or_else(|| "nft_ctx_new failed".to_string())?;
        // SAFETY: ptr is a live context owned by us; these only set fields of it.
        unsafe {
            (api.output_set_flags)(ptr.as_ptr(), 0);
            (api.buffer_output)(ptr.as_ptr());
            (api.buffer_error)(ptr.as_ptr());
        }
        Ok(Ctx { ctx: ptr, api })
    }

    /// Runs `cmds` as one batch (one netlink transaction: all or nothing).
    /// Returns Ok(output) or Err(error text).
    pub fn run(&mut self, cmds: &str) -> Result<String, String> {
        let c = CString::new(cmds).map_err(|_| "command text contains a NUL byte".to_string())?;
        // SAFETY: the context is live and exclusively borrowed; c outlives the call.
        let rc = unsafe { (self.api.run_cmd_from_buffer)(self.ctx.as_ptr(), c.as_ptr()) };
        // SAFETY: the context is live; the buffers it returns are valid NUL-terminated
        // strings until the next run on it, and we copy them out at once.
        let (out, err) = unsafe {
            (
                text((self.api.get_output_buffer)(self.ctx.as_ptr())),
                text((self.api.get_error_buffer)(self.ctx.as_ptr())),
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
        unsafe { (self.api.ctx_free)(self.ctx.as_ptr()) }
    }
}
