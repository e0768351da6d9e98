//! virtio-console with a single port (no multiport feature): what the guest writes to /dev/hvc0
//! arrives on the transmit queue and goes to the VMM's output. Host input is not wired yet.

use std::io::Write;

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestMemoryMmap};

use super::{VirtioDevice, VIRTIO_F_VERSION_1};

pub const VIRTIO_ID_CONSOLE: u32 = 3;
const RECEIVEQ: usize = 0;
const TRANSMITQ: usize = 1;
const QUEUE_SIZES: [u16; 2] = [256, 256];

/// A virtio console writing the guest's output to `out`.
pub struct Console {
    out: Box<dyn Write + Send>,
    /// Bytes written out so far (for tests and stats).
    pub transmitted: u64,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("transmitted", &self.transmitted)
            .finish()
    }
}

impl Console {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out,
            transmitted: 0,
        }
    }

    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let mut data = Vec::new();
            for desc in chain.readable() {
                let Ok(len) = usize::try_from(desc.len()) else {
                    continue;
                };
                let start = data.len();
                data.resize(start + len, 0);
                if mem.read_slice(&mut data[start..], desc.addr()).is_err() {
                    data.truncate(start);
                }
            }
            // The guest's output is best effort, like a serial line: a failed write drops it.
            let _ = self.out.write_all(&data).and_then(|()| self.out.flush());
            self.transmitted += data.len() as u64;
            // Nothing is written into a transmit buffer, hence a used length of 0.
            if queue.add_used(mem, head, 0).is_ok() {
                used = true;
            }
        }
        used
    }
}

impl VirtioDevice for Console {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_CONSOLE
    }

    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        // cols, rows, max_nr_ports, emerg_wr: none is offered, all read as 0.
        data.fill(0);
    }

    fn process_queue(&mut self, index: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        match index {
            TRANSMITQ => self.transmit(queue, mem),
            // Receive buffers wait for host input, which is not wired yet.
            RECEIVEQ => false,
            _ => false,
        }
    }
}
