//! Purpose-built guests for hull-vmm's tests: the smallest ELF64 kernel, whose code the test
//! writes, which runs on any KVM (also kvm-pvm, where a stock kernel does not boot).

/// Where the code is loaded and entered: the kernel's usual 16 MiB.
pub const LOAD: u64 = 0x100_0000;
/// `LOAD` as the PVH note's 32-bit entry holds it.
const LOAD_32: u32 = 0x100_0000;

/// 64-bit code writing `text` to COM1.
pub fn com1_out(text: &[u8]) -> Vec<u8> {
    let mut c = Vec::new();
    for b in text {
        c.extend_from_slice(&[0x66, 0xba, 0xf8, 0x03]); // mov dx, 0x3f8
        c.extend_from_slice(&[0xb0, *b, 0xee]); // mov al, b; out dx, al
    }
    c
}

/// Resets the VM through the i8042 (the end of a run).
pub const I8042_RESET: &[u8] = &[0xb0, 0xfe, 0xe6, 0x64, 0xf4, 0xeb, 0xfd];
/// Halts for good: on kvm-pvm with the in-kernel irqchip the vCPU then blocks in KVM_RUN.
pub const HALT: &[u8] = &[0xf4, 0xeb, 0xfd];

/// The smallest ELF64 executable with one PT_LOAD segment at `LOAD` and, with `pvh`, a PT_NOTE
/// holding the Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) naming `LOAD`.
pub fn elf(code: &[u8], pvh: bool) -> Vec<u8> {
    let mut f = Vec::new();
    let (ehsize, phsize) = (64u16, 56u16);
    let phnum = if pvh { 2u16 } else { 1 };
    let off = u64::from(ehsize + phnum * phsize);
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&LOAD.to_le_bytes()); // e_entry
    f.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&ehsize.to_le_bytes());
    f.extend_from_slice(&phsize.to_le_bytes());
    f.extend_from_slice(&phnum.to_le_bytes()); // e_phnum
    f.extend_from_slice(&[0; 6]); // shentsize, shnum, shstrndx
    f.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f.extend_from_slice(&5u32.to_le_bytes()); // R+X
    f.extend_from_slice(&off.to_le_bytes()); // p_offset
    f.extend_from_slice(&LOAD.to_le_bytes()); // p_vaddr
    f.extend_from_slice(&LOAD.to_le_bytes()); // p_paddr
    let len = code.len() as u64;
    f.extend_from_slice(&len.to_le_bytes());
    f.extend_from_slice(&len.to_le_bytes());
    f.extend_from_slice(&0x1000u64.to_le_bytes());
    let mut note = Vec::new();
    note.extend_from_slice(&4u32.to_le_bytes()); // n_namesz
    note.extend_from_slice(&4u32.to_le_bytes()); // n_descsz
    note.extend_from_slice(&18u32.to_le_bytes()); // XEN_ELFNOTE_PHYS32_ENTRY
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&LOAD_32.to_le_bytes());
    if pvh {
        f.extend_from_slice(&4u32.to_le_bytes()); // PT_NOTE
        f.extend_from_slice(&4u32.to_le_bytes()); // R
        f.extend_from_slice(&(off + len).to_le_bytes()); // p_offset
        f.extend_from_slice(&[0; 16]); // p_vaddr, p_paddr
        let n = note.len() as u64;
        f.extend_from_slice(&n.to_le_bytes());
        f.extend_from_slice(&n.to_le_bytes());
        f.extend_from_slice(&4u64.to_le_bytes());
    }
    f.extend_from_slice(code);
    if pvh {
        f.extend_from_slice(&note);
    }
    f
}
