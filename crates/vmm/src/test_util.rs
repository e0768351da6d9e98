//! Helpers for the unit tests.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// A `Write` whose bytes the test reads back.
#[derive(Clone, Debug, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().expect("lock").clone()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, d: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(d);
        Ok(d.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The little-endian u32 at `off` in `b`.
pub fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

/// The little-endian u64 at `off` in `b`.
pub fn le64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// A split virtqueue in a 1 MiB guest memory, as a driver sets it up: by default descriptor table
/// at 0x1000, available ring at 0x2000, used ring at 0x3000 (data goes above 0x4000).
#[derive(Debug)]
pub struct TestQueue {
    pub mem: vm_memory::GuestMemoryMmap,
    pub queue: virtio_queue::Queue,
    desc: u64,
    avail: u64,
    used: u64,
    next_desc: u16,
    avail_idx: u16,
}

impl TestQueue {
    const SIZE: u16 = 16;

    pub fn new() -> Self {
        let mem =
            vm_memory::GuestMemoryMmap::from_ranges(&[(vm_memory::GuestAddress(0), 0x10_0000)])
                .expect("mem");
        Self::in_memory(mem, 0x1000)
    }

    /// Queue `n` of several sharing `mem`: its rings at 0x10000 * (n + 1) (data below 0x10000).
    pub fn nth(mem: &vm_memory::GuestMemoryMmap, n: u64) -> Self {
        Self::in_memory(mem.clone(), 0x10000 * (n + 1))
    }

    fn in_memory(mem: vm_memory::GuestMemoryMmap, base: u64) -> Self {
        use virtio_queue::QueueT;
        let (desc, avail, used) = (base, base + 0x1000, base + 0x2000);
        let mut queue = virtio_queue::Queue::new(256).expect("queue");
        queue.set_size(Self::SIZE);
        queue.set_desc_table_address(Some(u32::try_from(desc).unwrap()), Some(0));
        queue.set_avail_ring_address(Some(u32::try_from(avail).unwrap()), Some(0));
        queue.set_used_ring_address(Some(u32::try_from(used).unwrap()), Some(0));
        queue.set_ready(true);
        assert!(queue.is_valid(&mem));
        Self {
            mem,
            queue,
            desc,
            avail,
            used,
            next_desc: 0,
            avail_idx: 0,
        }
    }

    /// Makes a chain of (address, length, device-writable) buffers available.
    pub fn add_chain(&mut self, bufs: &[(u64, u32, bool)]) {
        use vm_memory::{Bytes, GuestAddress};
        let head = self.next_desc;
        for (i, (addr, len, write)) in bufs.iter().enumerate() {
            let idx = (self.next_desc + 1) % Self::SIZE;
            let more = i + 1 < bufs.len();
            let flags = u16::from(more) | if *write { 2 } else { 0 };
            let at = self.desc + 16 * u64::from(self.next_desc);
            self.mem.write_obj(*addr, GuestAddress(at)).expect("addr");
            self.mem.write_obj(*len, GuestAddress(at + 8)).expect("len");
            self.mem
                .write_obj(flags, GuestAddress(at + 12))
                .expect("flags");
            self.mem
                .write_obj(idx, GuestAddress(at + 14))
                .expect("next");
            self.next_desc = idx;
        }
        let slot = u64::from(self.avail_idx % Self::SIZE);
        self.mem
            .write_obj(head, GuestAddress(self.avail + 4 + 2 * slot))
            .expect("ring");
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem
            .write_obj(self.avail_idx, GuestAddress(self.avail + 2))
            .expect("idx");
    }

    pub fn used_idx(&self) -> u16 {
        use vm_memory::{Bytes, GuestAddress};
        self.mem
            .read_obj(GuestAddress(self.used + 2))
            .expect("used idx")
    }

    /// The (head, length) of the last used element.
    pub fn last_used(&self) -> (u32, u32) {
        use vm_memory::{Bytes, GuestAddress};
        let slot = u64::from(self.used_idx().wrapping_sub(1) % Self::SIZE);
        let at = self.used + 4 + 8 * slot;
        let head = self.mem.read_obj(GuestAddress(at)).expect("id");
        let len = self.mem.read_obj(GuestAddress(at + 4)).expect("len");
        (head, len)
    }
}
