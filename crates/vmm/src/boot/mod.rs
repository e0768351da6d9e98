//! Loading Linux into guest memory: the kernel (ELF vmlinux or bzImage, by linux-loader), the
//! initrd, the command line, and the zero page (64-bit boot protocol) or `hvm_start_info` (PVH).

mod kernel;
pub mod params;
pub mod pvh;

pub use kernel::{load, BootError, BootProtocol, BootSource, Entry, LoadedKernel};
