//! The guest physical address map: where the VMM puts each boot structure, and the MMIO gap.
//! One place, so the e820 map, the loaders and the page tables agree.

/// GDT of the boot vCPU (4 entries: null, code, data, TSS).
pub const BOOT_GDT_START: u64 = 0x500;
/// An empty IDT: the kernel installs its own before enabling interrupts.
pub const BOOT_IDT_START: u64 = 0x520;
/// PVH boot: `struct hvm_start_info` (%ebx at the PVH entry), the module list (the initrd) and
/// the memory map it points at, all below the zero page (which a PVH boot does not use).
pub const PVH_INFO_START: u64 = 0x6000;
pub const PVH_MODLIST_START: u64 = 0x6040;
pub const PVH_MEMMAP_START: u64 = 0x6100;
pub const PVH_MEMMAP_END: u64 = 0x7000;
/// The zero page (`struct boot_params`) the 64-bit boot protocol hands over in %rsi.
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack, below the zero page's page tables.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Identity-mapping page tables: PML4, then one PDPT, then one page directory.
pub const PML4_START: u64 = 0x9000;
pub const PDPTE_START: u64 = 0xa000;
pub const PDE_START: u64 = 0xb000;
/// The kernel command line, NUL-terminated.
pub const CMDLINE_START: u64 = 0x20000;
/// Longest command line the VMM accepts (the kernel's COMMAND_LINE_SIZE).
pub const CMDLINE_MAX_SIZE: usize = 2048;
/// End of the low RAM the e820 map reports; above it the EBDA/BIOS hole starts.
pub const EBDA_START: u64 = 0x9fc00;
/// ACPI tables: the RSDP must lie in 0xe0000..0x100000, where Linux scans for it.
pub const ACPI_START: u64 = 0xe0000;
pub const ACPI_END: u64 = 0x10_0000;
/// Start of high memory; the kernel loads at 16 MiB above it.
pub const HIMEM_START: u64 = 0x10_0000;
/// The 32-bit MMIO gap below 4 GiB (IOAPIC, LAPIC, later virtio-mmio): no RAM here.
pub const MMIO_GAP_START: u64 = 0xd000_0000;
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// Where the in-kernel IOAPIC and LAPICs are mapped.
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
pub const APIC_ADDR: u32 = 0xfee0_0000;
/// KVM on Intel needs three pages for the real-mode TSS; put them at the top of the gap.
pub const KVM_TSS_ADDRESS: u64 = 0xfffb_d000;
/// virtio-mmio register windows, one 4 KiB page each, from the start of the MMIO gap.
pub const VIRTIO_MMIO_START: u64 = MMIO_GAP_START;
/// GSIs of the virtio-mmio devices: after the legacy ISA ones in use (COM1 is 4).
pub const VIRTIO_GSI_START: u32 = 5;
/// The in-kernel IOAPIC's pins: GSIs above these have no pin to raise.
pub const IOAPIC_PINS: u32 = 24;
