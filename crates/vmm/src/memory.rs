//! Guest RAM: anonymous private mappings (vm-memory), laid out around the 32-bit MMIO gap.

use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::layout::{MMIO_GAP_END, MMIO_GAP_START};

/// Smallest guest the VMM agrees to boot: the kernel at 16 MiB plus room to decompress and run.
pub const MIN_MEM_SIZE: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("guest memory of {0} bytes is too small (at least {MIN_MEM_SIZE} bytes)")]
    TooSmall(u64),
    #[error("guest memory of {0} bytes does not fit this host's address space")]
    TooLarge(u64),
    #[error("cannot map guest memory: {0}")]
    Map(#[from] vm_memory::mmap::FromRangesError),
}

/// The guest physical ranges backing `size` bytes of RAM: one below the MMIO gap and, for
/// larger guests, the rest above 4 GiB.
pub fn ram_ranges(size: u64) -> Vec<(u64, u64)> {
    if size <= MMIO_GAP_START {
        vec![(0, size)]
    } else {
        vec![(0, MMIO_GAP_START), (MMIO_GAP_END, size - MMIO_GAP_START)]
    }
}

/// Maps `size` bytes of guest RAM.
pub fn create_guest_memory(size: u64) -> Result<GuestMemoryMmap, MemoryError> {
    if size < MIN_MEM_SIZE {
        return Err(MemoryError::TooSmall(size));
    }
    let ranges = ram_ranges(size)
        .into_iter()
        .map(|(start, len)| {
            usize::try_from(len)
                .map(|len| (GuestAddress(start), len))
                .map_err(|_| MemoryError::TooLarge(size))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(GuestMemoryMmap::from_ranges(&ranges)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryBackend;

    #[test]
    fn small_guest_is_one_range() {
        assert_eq!(ram_ranges(256 << 20), vec![(0, 256 << 20)]);
    }

    #[test]
    fn large_guest_skips_the_mmio_gap() {
        let r = ram_ranges(4 << 30);
        assert_eq!(
            r,
            vec![
                (0, MMIO_GAP_START),
                (MMIO_GAP_END, (4 << 30) - MMIO_GAP_START)
            ]
        );
    }

    #[test]
    fn too_small_is_refused() {
        assert!(matches!(
            create_guest_memory(1 << 20),
            Err(MemoryError::TooSmall(_))
        ));
    }

    #[test]
    fn maps_the_requested_size() {
        let mem = create_guest_memory(64 << 20).expect("map");
        assert_eq!(mem.num_regions(), 1);
        assert_eq!(mem.last_addr().0, (64 << 20) - 1);
    }
}
