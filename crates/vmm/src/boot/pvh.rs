//! The PVH boot protocol (xenbits.xen.org/docs/unstable/misc/pvh.html): a kernel whose ELF notes
//! name a 32-bit entry (XEN_ELFNOTE_PHYS32_ENTRY) starts there in protected mode, paging off,
//! with %ebx pointing at `struct hvm_start_info`, which holds the command line, the memory map
//! and the initrd as the first module. Linux then skips its decompressor and real-mode setup.

use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::params::e820_map;
use crate::layout::{
    CMDLINE_START, PVH_INFO_START, PVH_MEMMAP_END, PVH_MEMMAP_START, PVH_MODLIST_START,
};

/// "xEn3" with the high bit of 'E' set, as the spec fixes it.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;
/// Version 1 has `memmap_paddr` and `memmap_entries`.
const START_INFO_VERSION: u32 = 1;
const MEMMAP_ENTRY_SIZE: u64 = 24;
const _: () = assert!(PVH_MODLIST_START >= PVH_INFO_START + 56);

#[derive(Debug, thiserror::Error)]
pub enum PvhError {
    #[error("the PVH memory map has {0} entries, more than its room in guest memory")]
    TooManyEntries(usize),
    #[error("cannot write the PVH start info to guest memory: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
}

/// Everything a PVH boot hands the kernel, before it is written to guest memory.
#[derive(Debug, Clone, PartialEq)]
pub struct StartInfo {
    pub info: hvm_start_info,
    pub modules: Vec<hvm_modlist_entry>,
    pub memmap: Vec<hvm_memmap_table_entry>,
}

/// The start info for a guest of `mem_size` bytes with the command line at `CMDLINE_START`, the
/// ACPI RSDP at `rsdp_addr` and the initrd (guest address, size), if any, as module 0.
pub fn start_info(
    mem_size: u64,
    initrd: Option<(u64, u64)>,
    rsdp_addr: u64,
) -> Result<StartInfo, PvhError> {
    let memmap: Vec<_> = e820_map(mem_size)
        .into_iter()
        .map(|e| hvm_memmap_table_entry {
            addr: e.addr,
            size: e.size,
            type_: e.r#type,
            reserved: 0,
        })
        .collect();
    let room = (PVH_MEMMAP_END - PVH_MEMMAP_START) / MEMMAP_ENTRY_SIZE;
    let entries = u32::try_from(memmap.len())
        .ok()
        .filter(|n| u64::from(*n) <= room)
        .ok_or(PvhError::TooManyEntries(memmap.len()))?;
    let modules: Vec<_> = initrd
        .map(|(paddr, size)| hvm_modlist_entry {
            paddr,
            size,
            ..Default::default()
        })
        .into_iter()
        .collect();
    let info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: START_INFO_VERSION,
        // At most one module: the initrd.
        nr_modules: u32::from(!modules.is_empty()),
        modlist_paddr: if modules.is_empty() {
            0
        } else {
            PVH_MODLIST_START
        },
        cmdline_paddr: CMDLINE_START,
        rsdp_paddr: rsdp_addr,
        memmap_paddr: PVH_MEMMAP_START,
        memmap_entries: entries,
        ..Default::default()
    };
    Ok(StartInfo {
        info,
        modules,
        memmap,
    })
}

/// Writes `s` where its own pointers say; %ebx at the entry is then `PVH_INFO_START`.
pub fn write(mem: &GuestMemoryMmap, s: &StartInfo) -> Result<(), PvhError> {
    mem.write_obj(s.info, GuestAddress(PVH_INFO_START))?;
    for (i, m) in (0u64..).zip(&s.modules) {
        mem.write_obj(*m, GuestAddress(PVH_MODLIST_START + 32 * i))?;
    }
    for (i, e) in (0u64..).zip(&s.memmap) {
        mem.write_obj(*e, GuestAddress(PVH_MEMMAP_START + MEMMAP_ENTRY_SIZE * i))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::params::{E820_RAM, E820_RESERVED};
    use crate::layout::{ACPI_START, HIMEM_START};
    use crate::test_util::{le32, le64};

    fn bytes(mem: &GuestMemoryMmap, addr: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        mem.read_slice(&mut b, GuestAddress(addr)).expect("read");
        b
    }

    /// Offsets from xen/include/public/arch-x86/hvm/start_info.h.
    #[test]
    fn start_info_bytes() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 128 << 20)]).expect("mem");
        let s = start_info(128 << 20, Some((0x700_0000, 0x12_3456)), ACPI_START).expect("info");
        write(&mem, &s).expect("write");
        let b = bytes(&mem, PVH_INFO_START, 56);
        assert_eq!(le32(&b, 0), 0x336e_c578); // magic
        assert_eq!(le32(&b, 4), 1); // version
        assert_eq!(le32(&b, 8), 0); // flags
        assert_eq!(le32(&b, 12), 1); // nr_modules
        assert_eq!(le64(&b, 16), PVH_MODLIST_START); // modlist_paddr
        assert_eq!(le64(&b, 24), CMDLINE_START); // cmdline_paddr
        assert_eq!(le64(&b, 32), ACPI_START); // rsdp_paddr
        assert_eq!(le64(&b, 40), PVH_MEMMAP_START); // memmap_paddr
        assert_eq!(le32(&b, 48), 3); // memmap_entries

        let m = bytes(&mem, PVH_MODLIST_START, 32);
        assert_eq!((le64(&m, 0), le64(&m, 8)), (0x700_0000, 0x12_3456));
        assert_eq!((le64(&m, 16), le64(&m, 24)), (0, 0)); // no module command line

        // 24 bytes an entry: addr, size, type, reserved.
        let e = bytes(&mem, PVH_MEMMAP_START, 72);
        assert_eq!(
            (le64(&e, 0), le64(&e, 8), le32(&e, 16)),
            (0, 0x9fc00, E820_RAM)
        );
        assert_eq!(
            (le64(&e, 24), le64(&e, 32), le32(&e, 40)),
            (ACPI_START, 0x20000, E820_RESERVED)
        );
        assert_eq!(
            (le64(&e, 48), le64(&e, 56), le32(&e, 64)),
            (HIMEM_START, (128 << 20) - HIMEM_START, E820_RAM)
        );
        assert_eq!(le32(&e, 68), 0);
    }

    #[test]
    fn no_initrd_no_modules() {
        let s = start_info(64 << 20, None, ACPI_START).expect("info");
        assert_eq!((s.info.nr_modules, s.info.modlist_paddr), (0, 0));
        assert!(s.modules.is_empty());
    }

    #[test]
    fn large_guest_map_skips_the_gap() {
        let s = start_info(5 << 30, None, ACPI_START).expect("info");
        assert_eq!(s.info.memmap_entries, 4);
        let last = s.memmap.last().expect("entry");
        assert_eq!((last.addr, last.type_), (1 << 32, E820_RAM));
    }

    #[test]
    fn memmap_fits_below_the_zero_page() {
        let s = start_info(5 << 30, None, ACPI_START).expect("info");
        let end = PVH_MEMMAP_START + MEMMAP_ENTRY_SIZE * u64::from(s.info.memmap_entries);
        assert!(end <= crate::layout::ZERO_PAGE_START);
    }
}
