//! The zero page of the Linux x86 boot protocol (`struct boot_params`): the e820 memory map,
//! command line, initrd and ACPI RSDP location the kernel reads at its 64-bit entry.

use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};

use crate::layout::{
    ACPI_END, ACPI_START, CMDLINE_START, EBDA_START, HIMEM_START, MMIO_GAP_END, MMIO_GAP_START,
};
use crate::memory::ram_ranges;

pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;

const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448; // "HdrS"
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT: u32 = 0x100_0000;

#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error("the e820 map has {0} entries, more than the zero page holds")]
    TooManyE820(usize),
    #[error("{what} at {addr:#x} does not fit the 32-bit field of the boot protocol")]
    Above4G { what: &'static str, addr: u64 },
}

/// What the zero page describes besides memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct BootParamsConfig {
    pub mem_size: u64,
    /// Command line length without the NUL.
    pub cmdline_len: usize,
    /// Guest address and size of the initrd.
    pub initrd: Option<(u64, u64)>,
    pub rsdp_addr: u64,
    /// A bzImage's own setup header, kept as the protocol asks; `None` for an ELF vmlinux.
    pub setup_header: Option<setup_header>,
}

fn e820(addr: u64, size: u64, r#type: u32) -> boot_e820_entry {
    boot_e820_entry { addr, size, r#type }
}

/// The guest's physical memory map: low RAM up to the EBDA, the ACPI tables reserved, RAM from
/// 1 MiB to the MMIO gap, and the rest above 4 GiB.
pub fn e820_map(mem_size: u64) -> Vec<boot_e820_entry> {
    let mut map = vec![
        e820(0, EBDA_START, E820_RAM),
        e820(ACPI_START, ACPI_END - ACPI_START, E820_RESERVED),
    ];
    for (start, len) in ram_ranges(mem_size) {
        if start == 0 {
            map.push(e820(HIMEM_START, len - HIMEM_START, E820_RAM));
        } else {
            map.push(e820(start, len, E820_RAM));
        }
    }
    debug_assert!(map
        .iter()
        .all(|e| e.addr + e.size <= MMIO_GAP_START || e.addr >= MMIO_GAP_END));
    map
}

fn low32(what: &'static str, addr: u64) -> Result<u32, ParamsError> {
    u32::try_from(addr).map_err(|_| ParamsError::Above4G { what, addr })
}

/// Builds the zero page.
pub fn boot_params(cfg: &BootParamsConfig) -> Result<boot_params, ParamsError> {
    let mut p = boot_params::default();
    if let Some(hdr) = cfg.setup_header {
        p.hdr = hdr;
    }
    p.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    p.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    p.hdr.header = KERNEL_HDR_MAGIC;
    p.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT;
    p.hdr.cmd_line_ptr = low32("the command line", CMDLINE_START)?;
    p.hdr.cmdline_size = u32::try_from(cfg.cmdline_len).unwrap_or(u32::MAX);
    if let Some((addr, size)) = cfg.initrd {
        p.hdr.ramdisk_image = low32("the initrd", addr)?;
        p.hdr.ramdisk_size = low32("the initrd size", size)?;
    }
    p.acpi_rsdp_addr = cfg.rsdp_addr;
    let map = e820_map(cfg.mem_size);
    if map.len() > p.e820_table.len() {
        return Err(ParamsError::TooManyE820(map.len()));
    }
    p.e820_entries = u8::try_from(map.len()).map_err(|_| ParamsError::TooManyE820(map.len()))?;
    p.e820_table[..map.len()].copy_from_slice(&map);
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{le32, le64};
    use vm_memory::ByteValued;

    #[test]
    fn e820_for_small_guest() {
        let m = e820_map(256 << 20);
        let got: Vec<_> = m.iter().map(|e| (e.addr, e.size, e.r#type)).collect();
        assert_eq!(
            got,
            vec![
                (0, 0x9fc00, E820_RAM),
                (0xe0000, 0x20000, E820_RESERVED),
                (0x10_0000, (256 << 20) - 0x10_0000, E820_RAM)
            ]
        );
    }

    #[test]
    fn e820_for_large_guest_skips_gap() {
        let m = e820_map(5 << 30);
        let last = m.last().expect("entry");
        assert_eq!(
            (last.addr, last.size),
            (1 << 32, (5 << 30) - MMIO_GAP_START)
        );
        assert_eq!(m[2].addr + m[2].size, MMIO_GAP_START);
    }

    /// The byte offsets are the ones Documentation/arch/x86/zero-page.rst and boot.rst give.
    #[test]
    fn zero_page_bytes() {
        let cfg = BootParamsConfig {
            mem_size: 128 << 20,
            cmdline_len: 42,
            initrd: Some((0x700_0000, 0x10_0000)),
            rsdp_addr: ACPI_START,
            setup_header: None,
        };
        let p = boot_params(&cfg).expect("params");
        let b = p.as_slice();
        assert_eq!(b.len(), 4096);
        assert_eq!(le64(b, 0x070), ACPI_START); // acpi_rsdp_addr
        assert_eq!(b[0x1e8], 3); // e820_entries
        assert_eq!(u16::from_le_bytes([b[0x1fe], b[0x1ff]]), 0xaa55); // boot_flag
        assert_eq!(le32(b, 0x202), 0x5372_6448); // header "HdrS"
        assert_eq!(b[0x210], 0xff); // type_of_loader
        assert_eq!(le32(b, 0x218), 0x700_0000); // ramdisk_image
        assert_eq!(le32(b, 0x21c), 0x10_0000); // ramdisk_size
        assert_eq!(u64::from(le32(b, 0x228)), CMDLINE_START); // cmd_line_ptr
        assert_eq!(le32(b, 0x238), 42); // cmdline_size
                                        // e820_table at 0x2d0, 20 bytes an entry: the third is high RAM.
        assert_eq!(le64(b, 0x2d0 + 40), HIMEM_START);
        assert_eq!(le64(b, 0x2d0 + 48), (128 << 20) - HIMEM_START);
        assert_eq!(le32(b, 0x2d0 + 56), E820_RAM);
    }

    #[test]
    fn bzimage_header_is_kept() {
        let hdr = setup_header {
            version: 0x20f,
            setup_sects: 27,
            ..Default::default()
        };
        let cfg = BootParamsConfig {
            mem_size: 128 << 20,
            setup_header: Some(hdr),
            ..Default::default()
        };
        let p = boot_params(&cfg).expect("params");
        let (v, s) = (p.hdr.version, p.hdr.setup_sects);
        assert_eq!((v, s), (0x20f, 27));
    }
}
