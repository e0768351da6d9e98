//! The boot GDTs and the KVM segment registers made from them: flat 64-bit code and data
//! segments and a TSS, as the 64-bit boot protocol expects on entry, or their 32-bit
//! protected-mode counterparts for the PVH entry.

use kvm_bindings::kvm_segment;

/// Null, code (selector 0x8), data (0x10), TSS (0x18).
pub const BOOT_GDT: [u64; 4] = [
    gdt_entry(0, 0, 0),
    gdt_entry(0xa09b, 0, 0xfffff), // code: present, exec/read, long mode, 4 KiB granularity
    gdt_entry(0xc093, 0, 0xfffff), // data: present, read/write, 32-bit, 4 KiB granularity
    gdt_entry(0x808b, 0, 0xfffff), // TSS: present, 64-bit busy TSS
];
/// The PVH entry's: 32-bit flat code and data (base 0, limit 4 GiB), a 32-bit TSS of 0x68 bytes,
/// at the same selectors.
pub const PVH_GDT: [u64; 4] = [
    gdt_entry(0, 0, 0),
    gdt_entry(0xc09b, 0, 0xfffff), // code: present, exec/read, 32-bit, 4 KiB granularity
    gdt_entry(0xc093, 0, 0xfffff), // data: present, read/write, 32-bit, 4 KiB granularity
    gdt_entry(0x008b, 0, 0x67),    // TSS: present, 32-bit busy TSS, byte granularity
];
pub const CODE_INDEX: u16 = 1;
pub const DATA_INDEX: u16 = 2;
pub const TSS_INDEX: u16 = 3;

/// Encodes a descriptor; `flags` holds the access byte in [7:0] and the G/DB/L/AVL nibble in
/// [15:12], as they sit in the descriptor's bits 40..56.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let base = base as u64;
    let limit = limit as u64;
    let flags = flags as u64;
    ((base & 0xff00_0000) << (56 - 24))
        | ((flags & 0x0000_f0ff) << 40)
        | ((limit & 0x000f_0000) << (48 - 16))
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0x0000_ffff)
}

fn bits(entry: u64, shift: u32, mask: u64) -> u8 {
    // Every field read here is at most 4 bits wide.
    u8::try_from((entry >> shift) & mask).unwrap_or(0)
}

/// The KVM segment register a selector of descriptor `entry` at `index` loads.
pub fn segment(entry: u64, index: u16) -> kvm_segment {
    let base = ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000);
    let mut limit = (entry & 0xffff) | ((entry >> 32) & 0x000f_0000);
    let g = bits(entry, 55, 1);
    if g == 1 {
        limit = (limit << 12) | 0xfff;
    }
    let present = bits(entry, 47, 1);
    kvm_segment {
        base,
        limit: u32::try_from(limit).unwrap_or(u32::MAX),
        selector: index * 8,
        type_: bits(entry, 40, 0xf),
        present,
        dpl: bits(entry, 45, 0x3),
        db: bits(entry, 54, 1),
        s: bits(entry, 44, 1),
        l: bits(entry, 53, 1),
        g,
        avl: bits(entry, 52, 1),
        unusable: u8::from(present == 0),
        padding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_segment_is_long_mode() {
        let cs = segment(BOOT_GDT[usize::from(CODE_INDEX)], CODE_INDEX);
        assert_eq!(
            (cs.selector, cs.l, cs.db, cs.present, cs.s, cs.type_),
            (0x8, 1, 0, 1, 1, 0xb)
        );
        assert_eq!((cs.base, cs.limit, cs.g), (0, 0xffff_ffff, 1));
    }

    #[test]
    fn data_segment_is_flat() {
        let ds = segment(BOOT_GDT[usize::from(DATA_INDEX)], DATA_INDEX);
        assert_eq!(
            (ds.selector, ds.type_, ds.db, ds.l, ds.limit),
            (0x10, 3, 1, 0, 0xffff_ffff)
        );
    }

    #[test]
    fn tss_is_system_segment() {
        let tr = segment(BOOT_GDT[usize::from(TSS_INDEX)], TSS_INDEX);
        assert_eq!((tr.selector, tr.s, tr.type_, tr.present), (0x18, 0, 0xb, 1));
    }

    #[test]
    fn pvh_segments_are_32_bit() {
        let cs = segment(PVH_GDT[usize::from(CODE_INDEX)], CODE_INDEX);
        assert_eq!((cs.l, cs.db, cs.type_, cs.limit), (0, 1, 0xb, 0xffff_ffff));
        let tr = segment(PVH_GDT[usize::from(TSS_INDEX)], TSS_INDEX);
        assert_eq!((tr.s, tr.type_, tr.limit, tr.g), (0, 0xb, 0x67, 0));
    }

    #[test]
    fn known_encodings() {
        // The values Linux's own boot GDTs use.
        assert_eq!(gdt_entry(0xa09b, 0, 0xfffff), 0x00af_9b00_0000_ffff);
        assert_eq!(gdt_entry(0xc093, 0, 0xfffff), 0x00cf_9300_0000_ffff);
        assert_eq!(segment(0, 0).unusable, 1);
    }
}
