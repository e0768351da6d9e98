//! Loading Linux into guest memory: the kernel (ELF vmlinux or bzImage, by linux-loader), the
//! initrd, the command line and the zero page, for the 64-bit boot protocol.

mod kernel;
pub mod params;

pub use kernel::{load, BootError, BootSource, LoadedKernel};
