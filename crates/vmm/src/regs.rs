//! The boot vCPU state of the 64-bit boot protocol (long mode with paging on, flat segments from
//! the boot GDT, %rsi pointing at the zero page) or of PVH (32-bit protected mode, paging off,
//! %ebx pointing at `hvm_start_info`); plus the FPU, boot MSRs and LAPIC LINT pins. Pure
//! functions over KVM's structs, applied by `vcpu`.

use kvm_bindings::{kvm_fpu, kvm_lapic_state, kvm_msr_entry, kvm_regs, kvm_sregs};

use crate::boot::Entry;
use crate::gdt::{segment, BOOT_GDT, CODE_INDEX, DATA_INDEX, PVH_GDT, TSS_INDEX};
use crate::layout::{
    BOOT_GDT_START, BOOT_IDT_START, BOOT_STACK_POINTER, PML4_START, PVH_INFO_START, ZERO_PAGE_START,
};

const CR0_PE: u64 = 1;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// General registers at the kernel's entry. IF, TF and VM are clear (rflags has only its
/// always-set bit), as PVH asks.
pub fn boot_regs(entry: Entry) -> kvm_regs {
    let base = kvm_regs {
        rflags: 0x2, // bit 1 is reserved and always set
        ..Default::default()
    };
    match entry {
        Entry::Linux64(rip) => kvm_regs {
            rip,
            rsp: BOOT_STACK_POINTER,
            rbp: BOOT_STACK_POINTER,
            rsi: ZERO_PAGE_START,
            ..base
        },
        Entry::Pvh(rip) => kvm_regs {
            rip,
            rbx: PVH_INFO_START,
            ..base
        },
    }
}

/// The GDT the boot vCPU's segments come from.
pub fn boot_gdt(entry: Entry) -> [u64; 4] {
    match entry {
        Entry::Linux64(_) => BOOT_GDT,
        Entry::Pvh(_) => PVH_GDT,
    }
}

/// Applies the entry's CPU mode to the special registers KVM reported for a fresh vCPU: long
/// mode for the 64-bit protocol; for PVH, CR0.PE only, CR4 and EFER.LME clear.
pub fn set_boot_mode(sregs: &mut kvm_sregs, entry: Entry) {
    let gdt = boot_gdt(entry);
    let code = segment(gdt[usize::from(CODE_INDEX)], CODE_INDEX);
    let data = segment(gdt[usize::from(DATA_INDEX)], DATA_INDEX);
    sregs.gdt.base = BOOT_GDT_START;
    sregs.gdt.limit = u16::try_from(std::mem::size_of_val(&gdt) - 1).unwrap_or(u16::MAX);
    sregs.idt.base = BOOT_IDT_START;
    sregs.idt.limit = u16::try_from(std::mem::size_of::<u64>() - 1).unwrap_or(u16::MAX);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = segment(gdt[usize::from(TSS_INDEX)], TSS_INDEX);
    match entry {
        Entry::Linux64(_) => {
            sregs.cr3 = PML4_START;
            sregs.cr4 |= CR4_PAE;
            sregs.cr0 |= CR0_PE | CR0_PG;
            sregs.efer |= EFER_LME | EFER_LMA;
        }
        Entry::Pvh(_) => {
            sregs.cr0 = CR0_PE;
            sregs.cr4 = 0;
            sregs.efer &= !(EFER_LME | EFER_LMA);
        }
    }
}

/// x87 control word and MXCSR at their reset values (all exceptions masked).
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
const MISC_ENABLE_FAST_STRING: u64 = 1;
/// MTRRs enabled, default memory type write-back: without it the guest maps RAM uncached.
const MTRR_ENABLE_WB: u64 = (1 << 11) | 6;

/// The MSRs a vCPU starts with (the set Firecracker writes).
pub fn boot_msrs() -> Vec<kvm_msr_entry> {
    [
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_CSTAR, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_LSTAR, 0),
        (MSR_IA32_TSC, 0),
        (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
        (MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WB),
    ]
    .into_iter()
    .map(|(index, data)| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    })
    .collect()
}

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

fn lapic_reg(lapic: &kvm_lapic_state, offset: usize) -> u32 {
    let b = |i: usize| lapic.regs[offset + i].to_ne_bytes()[0];
    u32::from_le_bytes([b(0), b(1), b(2), b(3)])
}

fn set_lapic_reg(lapic: &mut kvm_lapic_state, offset: usize, value: u32) {
    for (i, b) in value.to_le_bytes().into_iter().enumerate() {
        lapic.regs[offset + i] = std::ffi::c_char::from_ne_bytes([b]);
    }
}

fn with_delivery_mode(reg: u32, mode: u32) -> u32 {
    (reg & !0x700) | (mode << 8)
}

/// LINT0 delivers the legacy PIC's interrupts (ExtINT), LINT1 NMIs, as a PC's BIOS leaves them.
pub fn set_lint(lapic: &mut kvm_lapic_state) {
    let lvt0 = lapic_reg(lapic, APIC_LVT0);
    set_lapic_reg(lapic, APIC_LVT0, with_delivery_mode(lvt0, APIC_MODE_EXTINT));
    let lvt1 = lapic_reg(lapic, APIC_LVT1);
    set_lapic_reg(lapic, APIC_LVT1, with_delivery_mode(lvt1, APIC_MODE_NMI));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_mode_bits() {
        let mut s = kvm_sregs::default();
        set_boot_mode(&mut s, Entry::Linux64(0x100_0200));
        assert_eq!(s.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
        assert_eq!(s.cr4 & CR4_PAE, CR4_PAE);
        assert_eq!(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(
            (s.cr3, s.cs.selector, s.ss.selector, s.tr.selector),
            (PML4_START, 8, 16, 24)
        );
        assert_eq!((s.gdt.base, s.gdt.limit), (BOOT_GDT_START, 31));
    }

    #[test]
    fn entry_registers() {
        let r = boot_regs(Entry::Linux64(0x100_0000));
        assert_eq!((r.rip, r.rsi, r.rflags), (0x100_0000, ZERO_PAGE_START, 2));
        let r = boot_regs(Entry::Pvh(0x100_0000));
        assert_eq!(
            (r.rip, r.rbx, r.rsi, r.rflags),
            (0x100_0000, PVH_INFO_START, 0, 2)
        );
    }

    /// The PVH spec: CR0.PE set and PG clear, CR4 clear, EFER.LME clear, flat 32-bit cs/ds/ss,
    /// a 32-bit TSS of 0x68 bytes. Starting from a vCPU state that had them set.
    #[test]
    fn pvh_protected_mode_bits() {
        let mut s = kvm_sregs {
            cr0: CR0_PG | 0x10,
            cr4: CR4_PAE,
            efer: EFER_LME | EFER_LMA,
            ..Default::default()
        };
        set_boot_mode(&mut s, Entry::Pvh(0x100_0000));
        assert_eq!((s.cr0, s.cr4, s.efer), (CR0_PE, 0, 0));
        assert_eq!(
            (s.cs.l, s.cs.db, s.cs.base, s.cs.limit),
            (0, 1, 0, 0xffff_ffff)
        );
        assert_eq!((s.ss.db, s.ds.limit, s.ds.type_), (1, 0xffff_ffff, 3));
        assert_eq!((s.tr.limit, s.tr.type_, s.tr.selector), (0x67, 0xb, 0x18));
    }

    #[test]
    fn msrs_enable_write_back_mtrrs() {
        let m = boot_msrs();
        let def = m
            .iter()
            .find(|e| e.index == MSR_MTRR_DEF_TYPE)
            .expect("mtrr");
        assert_eq!(def.data, 0x806);
    }

    #[test]
    fn lint_pins() {
        let mut l = kvm_lapic_state::default();
        set_lapic_reg(&mut l, APIC_LVT0, 0x1_0700); // masked, some mode
        set_lint(&mut l);
        assert_eq!(lapic_reg(&l, APIC_LVT0), 0x1_0700);
        assert_eq!(lapic_reg(&l, APIC_LVT1), 0x400);
    }
}
