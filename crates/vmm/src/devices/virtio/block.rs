//! virtio-blk: a disk image file behind one request queue. Reads, writes (refused on a read-only
//! disk, which also offers VIRTIO_BLK_F_RO), flushes (fdatasync) and the device id (the serial
//! the guest reads to find a disk by name). Each request is checked against the chain it came
//! in (header readable, data in the direction of the request, status byte last and writable,
//! all within the disk) before any byte moves.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::{VirtioDevice, VIRTIO_F_VERSION_1};

pub const VIRTIO_ID_BLOCK: u32 = 2;
pub const SECTOR_SIZE: u64 = 512;
const QUEUE_SIZES: [u16; 1] = [256];
/// The largest number of data segments in one request: the queue minus header and status.
const SEG_MAX: u32 = 254;

const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
const VIRTIO_BLK_F_RO: u64 = 1 << 5;
const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;

pub const VIRTIO_BLK_T_IN: u32 = 0;
pub const VIRTIO_BLK_T_OUT: u32 = 1;
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;
pub const VIRTIO_BLK_S_OK: u8 = 0;
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;
/// The id (serial) is at most 20 bytes, NUL-padded.
pub const ID_BYTES: usize = 20;
const HEADER_LEN: u32 = 16;

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("cannot open disk image {path}: {err}")]
    Open { path: String, err: std::io::Error },
    #[error("disk id {0:?} is longer than {ID_BYTES} bytes")]
    IdTooLong(String),
}

/// A disk the guest sees as /dev/vdX.
#[derive(Debug)]
pub struct Block {
    file: File,
    read_only: bool,
    /// Size in 512-byte sectors (a partial last sector is not exposed).
    sectors: u64,
    id: [u8; ID_BYTES],
}

/// Why a request failed, i.e. which status the guest gets.
#[derive(Debug, PartialEq, Eq)]
enum Fail {
    IoErr,
    Unsupported,
}

impl Block {
    /// Opens `path`, read-only or read-write, with `id` as its serial.
    pub fn open(path: &Path, read_only: bool, id: &str) -> Result<Self, BlockError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .and_then(|f| f.metadata().map(|m| (f, m.len())));
        let (file, len) = file.map_err(|err| BlockError::Open {
            path: path.display().to_string(),
            err,
        })?;
        Self::new(file, len, read_only, id)
    }

    fn new(file: File, len: u64, read_only: bool, id: &str) -> Result<Self, BlockError> {
        if id.len() > ID_BYTES {
            return Err(BlockError::IdTooLong(id.into()));
        }
        let mut idb = [0u8; ID_BYTES];
        idb[..id.len()].copy_from_slice(id.as_bytes());
        Ok(Self {
            file,
            read_only,
            sectors: len / SECTOR_SIZE,
            id: idb,
        })
    }

    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// The disk range `len` bytes from `sector`, if it lies inside the disk.
    fn range(&self, sector: u64, len: u64) -> Result<u64, Fail> {
        let start = sector.checked_mul(SECTOR_SIZE).ok_or(Fail::IoErr)?;
        let end = start.checked_add(len).ok_or(Fail::IoErr)?;
        if !len.is_multiple_of(SECTOR_SIZE) || end > self.sectors * SECTOR_SIZE {
            return Err(Fail::IoErr);
        }
        Ok(start)
    }

    /// Runs one request whose data descriptors are `data`; returns the bytes written into guest
    /// memory (for the used ring, status byte excluded).
    fn execute(
        &mut self,
        kind: u32,
        sector: u64,
        data: &[Descriptor],
        mem: &GuestMemoryMmap,
    ) -> Result<u32, Fail> {
        let total: u64 = data.iter().map(|d| u64::from(d.len())).sum();
        let writes_guest = matches!(kind, VIRTIO_BLK_T_IN | VIRTIO_BLK_T_GET_ID);
        if data
            .iter()
            .any(|d| d.is_write_only() != writes_guest && kind != VIRTIO_BLK_T_FLUSH)
        {
            return Err(Fail::IoErr);
        }
        match kind {
            VIRTIO_BLK_T_IN => {
                let mut off = self.range(sector, total)?;
                for d in data {
                    let mut buf = vec![0u8; d.len() as usize];
                    self.file
                        .read_exact_at(&mut buf, off)
                        .map_err(|_| Fail::IoErr)?;
                    mem.write_slice(&buf, d.addr()).map_err(|_| Fail::IoErr)?;
                    off += u64::from(d.len());
                }
                u32::try_from(total).map_err(|_| Fail::IoErr)
            }
            VIRTIO_BLK_T_OUT => {
                if self.read_only {
                    return Err(Fail::IoErr);
                }
                let mut off = self.range(sector, total)?;
                for d in data {
                    let mut buf = vec![0u8; d.len() as usize];
                    mem.read_slice(&mut buf, d.addr())
                        .map_err(|_| Fail::IoErr)?;
                    self.file.write_all_at(&buf, off).map_err(|_| Fail::IoErr)?;
                    off += u64::from(d.len());
                }
                Ok(0)
            }
            VIRTIO_BLK_T_FLUSH => {
                if !self.read_only {
                    self.file.sync_data().map_err(|_| Fail::IoErr)?;
                }
                Ok(0)
            }
            VIRTIO_BLK_T_GET_ID => {
                let d = data.first().ok_or(Fail::IoErr)?;
                let n = (d.len() as usize).min(ID_BYTES);
                mem.write_slice(&self.id[..n], d.addr())
                    .map_err(|_| Fail::IoErr)?;
                u32::try_from(n).map_err(|_| Fail::IoErr)
            }
            _ => Err(Fail::Unsupported),
        }
    }

    /// One descriptor chain: parses it, runs it, writes the status; returns the used length.
    fn request(&mut self, descs: &[Descriptor], mem: &GuestMemoryMmap) -> u32 {
        // The status byte is the last descriptor, writable; without one the guest gets nothing.
        let Some((status, rest)) = descs.split_last() else {
            return 0;
        };
        if !status.is_write_only() || status.len() < 1 {
            return 0;
        }
        let result = match rest.split_first() {
            Some((h, data)) if !h.is_write_only() && h.len() >= HEADER_LEN => {
                let kind: Result<u32, _> = mem.read_obj(h.addr());
                let sector: Result<u64, _> = mem.read_obj(GuestAddress(h.addr().0 + 8));
                match (kind, sector) {
                    (Ok(kind), Ok(sector)) => self.execute(kind, sector, data, mem),
                    _ => Err(Fail::IoErr),
                }
            }
            _ => Err(Fail::IoErr),
        };
        let (code, written) = match result {
            Ok(n) => (VIRTIO_BLK_S_OK, n),
            Err(Fail::IoErr) => (VIRTIO_BLK_S_IOERR, 0),
            Err(Fail::Unsupported) => (VIRTIO_BLK_S_UNSUPP, 0),
        };
        if mem.write_obj(code, status.addr()).is_err() {
            return 0;
        }
        written.saturating_add(1)
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn features(&self) -> u64 {
        let ro = if self.read_only { VIRTIO_BLK_F_RO } else { 0 };
        VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_FLUSH | ro
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // capacity (le64) at 0, size_max (le32) at 8, seg_max (le32) at 12; the rest reads 0.
        let mut config = [0u8; 24];
        config[..8].copy_from_slice(&self.sectors.to_le_bytes());
        config[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        data.fill(0);
        if let Some(src) = usize::try_from(offset).ok().and_then(|o| config.get(o..)) {
            let n = src.len().min(data.len());
            data[..n].copy_from_slice(&src[..n]);
        }
    }

    fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool {
        let Some(queue) = queues.get_mut(index).filter(|_| index == 0) else {
            return false;
        };
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let descs: Vec<Descriptor> = chain.collect();
            let len = self.request(&descs, mem);
            used |= queue.add_used(mem, head, len).is_ok();
        }
        used
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TestQueue;

    const HDR: u64 = 0x8000;
    const DATA: u64 = 0x9000;
    const STATUS: u64 = 0xa000;

    fn disk(read_only: bool) -> (Block, File) {
        let f = tempfile();
        let mut content = vec![0u8; 4096];
        for (i, b) in content.iter_mut().enumerate() {
            *b = u8::try_from(i / 512).unwrap() + 1;
        }
        f.write_all_at(&content, 0).unwrap();
        let clone = f.try_clone().unwrap();
        (
            Block::new(f, 4096 + 100, read_only, "hull-disk0").unwrap(),
            clone,
        )
    }

    fn tempfile() -> File {
        let path = std::env::temp_dir().join(format!(
            "hull-vmm-blk-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    fn header(q: &TestQueue, kind: u32, sector: u64) {
        q.mem.write_obj(kind, GuestAddress(HDR)).unwrap();
        q.mem.write_obj(0u32, GuestAddress(HDR + 4)).unwrap();
        q.mem.write_obj(sector, GuestAddress(HDR + 8)).unwrap();
    }

    /// Runs one chain; returns (status byte, used length).
    fn run(dev: &mut Block, q: &mut TestQueue, chain: &[(u64, u32, bool)]) -> (u8, u32) {
        q.mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
        q.add_chain(chain);
        assert!(dev.process_queue(0, std::slice::from_mut(&mut q.queue), &q.mem));
        let (_, len) = q.last_used();
        (q.mem.read_obj(GuestAddress(STATUS)).unwrap(), len)
    }

    fn rw(kind: u32, sector: u64, len: u32, dev: &mut Block, q: &mut TestQueue) -> (u8, u32) {
        header(q, kind, sector);
        let write = kind == VIRTIO_BLK_T_IN;
        run(
            dev,
            q,
            &[(HDR, 16, false), (DATA, len, write), (STATUS, 1, true)],
        )
    }

    #[test]
    fn config_reports_capacity_and_features() {
        let (dev, _) = disk(true);
        let mut cap = [0u8; 8];
        dev.read_config(0, &mut cap);
        assert_eq!(u64::from_le_bytes(cap), 8, "4196 bytes are 8 whole sectors");
        let mut seg = [0u8; 4];
        dev.read_config(12, &mut seg);
        assert_eq!(u32::from_le_bytes(seg), SEG_MAX);
        assert_ne!(dev.features() & VIRTIO_BLK_F_RO, 0);
        assert_ne!(dev.features() & VIRTIO_BLK_F_FLUSH, 0);
        assert_eq!(disk(false).0.features() & VIRTIO_BLK_F_RO, 0);
        let mut past = [0xffu8; 4];
        dev.read_config(4096, &mut past);
        assert_eq!(past, [0; 4]);
    }

    #[test]
    fn reads_land_in_guest_memory() {
        let (mut dev, _) = disk(true);
        let mut q = TestQueue::new();
        assert_eq!(
            rw(VIRTIO_BLK_T_IN, 2, 1024, &mut dev, &mut q),
            (VIRTIO_BLK_S_OK, 1025)
        );
        let mut got = vec![0u8; 1024];
        q.mem.read_slice(&mut got, GuestAddress(DATA)).unwrap();
        assert!(got[..512].iter().all(|b| *b == 3) && got[512..].iter().all(|b| *b == 4));
    }

    #[test]
    fn scattered_read_fills_each_segment_in_order() {
        let (mut dev, _) = disk(true);
        let mut q = TestQueue::new();
        header(&q, VIRTIO_BLK_T_IN, 0);
        let chain = [
            (HDR, 16, false),
            (DATA, 512, true),
            (DATA + 0x2000, 512, true),
            (STATUS, 1, true),
        ];
        assert_eq!(run(&mut dev, &mut q, &chain), (VIRTIO_BLK_S_OK, 1025));
        let a: u8 = q.mem.read_obj(GuestAddress(DATA)).unwrap();
        let b: u8 = q.mem.read_obj(GuestAddress(DATA + 0x2000)).unwrap();
        assert_eq!((a, b), (1, 2));
    }

    #[test]
    fn writes_reach_the_file_and_flush() {
        let (mut dev, file) = disk(false);
        let mut q = TestQueue::new();
        q.mem.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
        assert_eq!(
            rw(VIRTIO_BLK_T_OUT, 7, 512, &mut dev, &mut q),
            (VIRTIO_BLK_S_OK, 1)
        );
        let mut got = [0u8; 512];
        file.read_exact_at(&mut got, 7 * 512).unwrap();
        assert_eq!(got, [0xab; 512]);
        header(&q, VIRTIO_BLK_T_FLUSH, 0);
        assert_eq!(
            run(&mut dev, &mut q, &[(HDR, 16, false), (STATUS, 1, true)]),
            (VIRTIO_BLK_S_OK, 1)
        );
    }

    #[test]
    fn read_only_disk_refuses_writes() {
        let (mut dev, file) = disk(true);
        let mut q = TestQueue::new();
        q.mem.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
        assert_eq!(
            rw(VIRTIO_BLK_T_OUT, 0, 512, &mut dev, &mut q),
            (VIRTIO_BLK_S_IOERR, 1)
        );
        let mut got = [0u8; 1];
        file.read_exact_at(&mut got, 0).unwrap();
        assert_eq!(got, [1]);
    }

    #[test]
    fn get_id_returns_the_serial() {
        let (mut dev, _) = disk(true);
        let mut q = TestQueue::new();
        header(&q, VIRTIO_BLK_T_GET_ID, 0);
        let r = run(
            &mut dev,
            &mut q,
            &[(HDR, 16, false), (DATA, 20, true), (STATUS, 1, true)],
        );
        assert_eq!(r, (VIRTIO_BLK_S_OK, 21));
        let mut id = [0u8; 20];
        q.mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
        assert_eq!(&id[..10], b"hull-disk0");
        assert_eq!(id[10..], [0; 10]);
        assert!(matches!(
            Block::new(tempfile(), 0, true, "a-name-longer-than-20-bytes"),
            Err(BlockError::IdTooLong(_))
        ));
    }

    #[test]
    fn bad_requests_get_an_error_status() {
        let (mut dev, _) = disk(false);
        let mut q = TestQueue::new();
        // Past the end (the disk has 8 sectors), partial sector, unknown type.
        assert_eq!(
            rw(VIRTIO_BLK_T_IN, 7, 1024, &mut dev, &mut q).0,
            VIRTIO_BLK_S_IOERR
        );
        assert_eq!(
            rw(VIRTIO_BLK_T_IN, u64::MAX, 512, &mut dev, &mut q).0,
            VIRTIO_BLK_S_IOERR
        );
        assert_eq!(
            rw(VIRTIO_BLK_T_IN, 0, 100, &mut dev, &mut q).0,
            VIRTIO_BLK_S_IOERR
        );
        assert_eq!(rw(99, 0, 512, &mut dev, &mut q).0, VIRTIO_BLK_S_UNSUPP);
        // A read into a buffer the device may not write (not write-only).
        header(&q, VIRTIO_BLK_T_IN, 0);
        let r = run(
            &mut dev,
            &mut q,
            &[(HDR, 16, false), (DATA, 512, false), (STATUS, 1, true)],
        );
        assert_eq!(r, (VIRTIO_BLK_S_IOERR, 1));
        // A short header.
        let r = run(&mut dev, &mut q, &[(HDR, 8, false), (STATUS, 1, true)]);
        assert_eq!(r, (VIRTIO_BLK_S_IOERR, 1));
        // A data buffer outside guest memory.
        header(&q, VIRTIO_BLK_T_IN, 0);
        let r = run(
            &mut dev,
            &mut q,
            &[(HDR, 16, false), (1 << 40, 512, true), (STATUS, 1, true)],
        );
        assert_eq!(r, (VIRTIO_BLK_S_IOERR, 1));
    }

    #[test]
    fn chain_without_writable_status_is_returned_unanswered() {
        let (mut dev, _) = disk(false);
        let mut q = TestQueue::new();
        header(&q, VIRTIO_BLK_T_IN, 0);
        let r = run(&mut dev, &mut q, &[(HDR, 16, false), (STATUS, 1, false)]);
        assert_eq!(r, (0xff, 0), "status untouched, nothing used");
        assert_eq!(q.used_idx(), 1, "the chain still goes back to the driver");
    }
}
