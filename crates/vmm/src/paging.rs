//! Identity page tables for the first GiB (2 MiB pages), enough for the kernel's 64-bit entry
//! to reach itself, the zero page and the command line before it builds its own.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::layout::{PDE_START, PDPTE_START, PML4_START};

const PRESENT_RW: u64 = 0x3;
const PAGE_SIZE_2M: u64 = 0x80;

#[derive(Debug, thiserror::Error)]
#[error("cannot write the boot page tables to guest memory: {0}")]
pub struct PagingError(#[from] vm_memory::GuestMemoryError);

/// The page directory mapping 0..1 GiB onto itself.
pub fn identity_pde() -> Vec<u64> {
    (0..512u64)
        .map(|i| (i << 21) | PAGE_SIZE_2M | PRESENT_RW)
        .collect()
}

/// Writes PML4 -> PDPT -> PD into guest memory; CR3 is then `PML4_START`.
pub fn write_page_tables(mem: &GuestMemoryMmap) -> Result<(), PagingError> {
    mem.write_obj(PDPTE_START | PRESENT_RW, GuestAddress(PML4_START))?;
    mem.write_obj(PDE_START | PRESENT_RW, GuestAddress(PDPTE_START))?;
    for (i, e) in (0u64..).zip(identity_pde()) {
        mem.write_obj(e, GuestAddress(PDE_START + 8 * i))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_first_gib_identically() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).expect("mem");
        write_page_tables(&mem).expect("write");
        let pml4: u64 = mem.read_obj(GuestAddress(PML4_START)).expect("read");
        let pdpt: u64 = mem.read_obj(GuestAddress(PDPTE_START)).expect("read");
        assert_eq!(pml4, PDPTE_START | 3);
        assert_eq!(pdpt, PDE_START | 3);
        let last: u64 = mem
            .read_obj(GuestAddress(PDE_START + 511 * 8))
            .expect("read");
        assert_eq!(last, (511 << 21) | 0x83);
        let first: u64 = mem.read_obj(GuestAddress(PDE_START)).expect("read");
        assert_eq!(first, 0x83);
    }
}
