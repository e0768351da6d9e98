//! Places a kernel, its initrd and command line in guest memory and returns where the boot vCPU
//! enters: the PVH entry of an ELF vmlinux that names one (with `hvm_start_info`), else the
//! 64-bit boot protocol's (with the zero page).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use linux_loader::cmdline::Cmdline;
use linux_loader::loader::elf::PvhBootCapability;
use linux_loader::loader::{load_cmdline, BzImage, Elf, KernelLoader};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use super::params::{boot_params, BootParamsConfig, ParamsError};
use super::pvh::{self, PvhError};
use crate::layout::{ACPI_START, CMDLINE_MAX_SIZE, CMDLINE_START, HIMEM_START, ZERO_PAGE_START};

/// The 64-bit entry of a bzImage's protected-mode kernel is 0x200 past its load address.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;
const PAGE_MASK: u64 = !0xfff;

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("cannot open {path}: {err}")]
    Open { path: PathBuf, err: std::io::Error },
    #[error("cannot read {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("cannot load kernel {path}: {err}")]
    Kernel {
        path: PathBuf,
        err: linux_loader::loader::Error,
    },
    #[error("invalid kernel command line: {0}")]
    Cmdline(linux_loader::cmdline::Error),
    #[error("cannot write the command line: {0}")]
    CmdlineLoad(linux_loader::loader::Error),
    #[error("initrd of {size} bytes does not fit in guest memory above the kernel (ends at {kernel_end:#x})")]
    InitrdTooLarge { size: u64, kernel_end: u64 },
    #[error(transparent)]
    Params(#[from] ParamsError),
    #[error(transparent)]
    Pvh(#[from] PvhError),
    #[error("{0} has no PVH entry (no XEN_ELFNOTE_PHYS32_ENTRY note; a bzImage never has one)")]
    NoPvhEntry(PathBuf),
    #[error("cannot write boot data to guest memory: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
}

/// What to boot.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BootSource {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub protocol: BootProtocol,
}

/// Which entry of the kernel to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BootProtocol {
    /// PVH when the kernel has the note, else the 64-bit boot protocol.
    #[default]
    Auto,
    /// PVH, or an error when the kernel has no PVH entry.
    Pvh,
    /// The 64-bit boot protocol, even for a kernel with a PVH entry.
    Linux64,
}

/// Where, and in which CPU mode, the boot vCPU starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Long mode, paging on, %rsi at the zero page.
    Linux64(u64),
    /// 32-bit protected mode, paging off, %ebx at `hvm_start_info`.
    Pvh(u64),
}

/// Where the kernel landed.
#[derive(Debug, Clone, Copy)]
pub struct LoadedKernel {
    pub entry: Entry,
    pub kernel_end: u64,
    pub initrd: Option<(u64, u64)>,
    pub elf: bool,
}

fn open(path: &Path) -> Result<File, BootError> {
    File::open(path).map_err(|err| BootError::Open {
        path: path.to_owned(),
        err,
    })
}

fn is_elf(file: &mut File, path: &Path) -> Result<bool, BootError> {
    let read_err = |err| BootError::Read {
        path: path.to_owned(),
        err,
    };
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic).map_err(read_err)?;
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    Ok(&magic == b"\x7fELF")
}

/// The entry `src.protocol` asks for, given the 64-bit entry and the PVH one (if the kernel
/// has it).
fn choose_entry(src: &BootSource, linux64: u64, pvh: Option<u64>) -> Result<Entry, BootError> {
    match (src.protocol, pvh) {
        (BootProtocol::Auto | BootProtocol::Pvh, Some(addr)) => Ok(Entry::Pvh(addr)),
        (BootProtocol::Pvh, None) => Err(BootError::NoPvhEntry(src.kernel.clone())),
        (BootProtocol::Auto | BootProtocol::Linux64, _) => Ok(Entry::Linux64(linux64)),
    }
}

/// The highest page-aligned address where `size` bytes end at or below the end of the first RAM
/// region, as Firecracker places the initrd.
pub fn initrd_addr(mem: &GuestMemoryMmap, size: u64, kernel_end: u64) -> Result<u64, BootError> {
    let low_end = mem
        .iter()
        .map(|r| r.start_addr().0 + r.len())
        .next()
        .unwrap_or(0);
    let too_large = BootError::InitrdTooLarge { size, kernel_end };
    let addr = low_end.checked_sub(size).ok_or(too_large)? & PAGE_MASK;
    if addr < kernel_end {
        return Err(BootError::InitrdTooLarge { size, kernel_end });
    }
    Ok(addr)
}

/// Loads everything `src` names into `mem`, and the zero page pointing at it all.
pub fn load(mem: &GuestMemoryMmap, src: &BootSource) -> Result<LoadedKernel, BootError> {
    let mut file = open(&src.kernel)?;
    let elf = is_elf(&mut file, &src.kernel)?;
    let kernel_err = |err| BootError::Kernel {
        path: src.kernel.clone(),
        err,
    };
    let himem = Some(GuestAddress(HIMEM_START));
    let (entry, result) = if elf {
        let r = Elf::load(mem, None, &mut file, himem).map_err(kernel_err)?;
        let pvh = match r.pvh_boot_cap {
            PvhBootCapability::PvhEntryPresent(addr) => Some(addr.0),
            _ => None,
        };
        (choose_entry(src, r.kernel_load.0, pvh)?, r)
    } else {
        let r = BzImage::load(mem, None, &mut file, himem).map_err(kernel_err)?;
        let entry = r.kernel_load.0 + BZIMAGE_64BIT_ENTRY_OFFSET;
        (choose_entry(src, entry, None)?, r)
    };

    let cmdline = Cmdline::try_from(&src.cmdline, CMDLINE_MAX_SIZE).map_err(BootError::Cmdline)?;
    load_cmdline(mem, GuestAddress(CMDLINE_START), &cmdline).map_err(BootError::CmdlineLoad)?;

    let initrd = match &src.initrd {
        None => None,
        Some(path) => {
            let mut f = open(path)?;
            let size = f
                .metadata()
                .map_err(|err| BootError::Read {
                    path: path.clone(),
                    err,
                })?
                .len();
            let addr = initrd_addr(mem, size, result.kernel_end)?;
            let len = usize::try_from(size).map_err(|_| BootError::InitrdTooLarge {
                size,
                kernel_end: result.kernel_end,
            })?;
            mem.read_exact_volatile_from(GuestAddress(addr), &mut f, len)?;
            Some((addr, size))
        }
    };

    let mem_size = mem.iter().map(|r| r.len()).sum();
    match entry {
        Entry::Pvh(_) => pvh::write(mem, &pvh::start_info(mem_size, initrd, ACPI_START)?)?,
        Entry::Linux64(_) => {
            let params = boot_params(&BootParamsConfig {
                mem_size,
                cmdline_len: src.cmdline.len(),
                initrd,
                rsdp_addr: ACPI_START,
                setup_header: result.setup_header,
            })?;
            mem.write_obj(params, GuestAddress(ZERO_PAGE_START))?;
        }
    }
    Ok(LoadedKernel {
        entry,
        kernel_end: result.kernel_end,
        initrd,
        elf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initrd_goes_to_top_of_low_memory() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 64 << 20)]).expect("mem");
        assert_eq!(
            initrd_addr(&mem, 0x1800, 0x200_0000).expect("fits"),
            (64 << 20) - 0x2000
        );
    }

    #[test]
    fn initrd_over_the_kernel_is_refused() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 64 << 20)]).expect("mem");
        assert!(initrd_addr(&mem, 60 << 20, 0x200_0000).is_err());
        assert!(initrd_addr(&mem, 128 << 20, 0).is_err());
    }

    #[test]
    fn protocol_choice() {
        let src = |protocol| BootSource {
            kernel: "/k".into(),
            initrd: None,
            cmdline: String::new(),
            protocol,
        };
        let pick = |p, pvh| choose_entry(&src(p), 0x100_0200, pvh).ok();
        assert_eq!(
            pick(BootProtocol::Auto, Some(0x100_0000)),
            Some(Entry::Pvh(0x100_0000))
        );
        assert_eq!(
            pick(BootProtocol::Auto, None),
            Some(Entry::Linux64(0x100_0200))
        );
        assert_eq!(
            pick(BootProtocol::Linux64, Some(0x100_0000)),
            Some(Entry::Linux64(0x100_0200))
        );
        assert_eq!(pick(BootProtocol::Pvh, None), None);
        let err = choose_entry(&src(BootProtocol::Pvh), 0, None).expect_err("no note");
        assert_eq!(
            err.to_string(),
            "/k has no PVH entry (no XEN_ELFNOTE_PHYS32_ENTRY note; a bzImage never has one)"
        );
    }

    #[test]
    fn missing_kernel_is_a_clear_error() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 64 << 20)]).expect("mem");
        let src = BootSource {
            kernel: "/nonexistent/vmlinux".into(),
            initrd: None,
            cmdline: String::new(),
            protocol: BootProtocol::Auto,
        };
        let err = load(&mem, &src).expect_err("no kernel");
        assert!(
            err.to_string()
                .starts_with("cannot open /nonexistent/vmlinux"),
            "{err}"
        );
    }

    #[test]
    fn garbage_kernel_is_refused() {
        let dir = std::env::temp_dir().join(format!("hull-vmm-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let k = dir.join("junk");
        std::fs::write(&k, vec![0u8; 8192]).expect("write");
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 64 << 20)]).expect("mem");
        let src = BootSource {
            kernel: k,
            initrd: None,
            cmdline: String::new(),
            protocol: BootProtocol::Auto,
        };
        let res = load(&mem, &src);
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert!(matches!(res, Err(BootError::Kernel { .. })));
    }
}
