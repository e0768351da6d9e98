//! The virtio-mmio transport (version 2): one 4 KiB register window per device, announced to the
//! guest in the ACPI DSDT as an `LNRO0005` device. Owns feature negotiation, the device status
//! state machine, the virtqueues and the interrupt status; queue notifications run the device
//! synchronously on the vCPU thread that wrote the notify register.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vm_superio::Trigger;

use super::VirtioDevice;
use crate::devices::serial::IrqTrigger;

pub const MMIO_WINDOW: u64 = 0x1000;
const MAGIC: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
const VENDOR: u32 = 0x4c4c_5548; // "HULL"

const REG_MAGIC: u64 = 0x000;
const REG_VERSION: u64 = 0x004;
const REG_DEVICE_ID: u64 = 0x008;
const REG_VENDOR_ID: u64 = 0x00c;
const REG_DEVICE_FEATURES: u64 = 0x010;
const REG_DEVICE_FEATURES_SEL: u64 = 0x014;
const REG_DRIVER_FEATURES: u64 = 0x020;
const REG_DRIVER_FEATURES_SEL: u64 = 0x024;
const REG_QUEUE_SEL: u64 = 0x030;
const REG_QUEUE_NUM_MAX: u64 = 0x034;
const REG_QUEUE_NUM: u64 = 0x038;
const REG_QUEUE_READY: u64 = 0x044;
const REG_QUEUE_NOTIFY: u64 = 0x050;
const REG_INTERRUPT_STATUS: u64 = 0x060;
const REG_INTERRUPT_ACK: u64 = 0x064;
const REG_STATUS: u64 = 0x070;
const REG_QUEUE_DESC_LOW: u64 = 0x080;
const REG_QUEUE_DESC_HIGH: u64 = 0x084;
const REG_QUEUE_DRIVER_LOW: u64 = 0x090;
const REG_QUEUE_DRIVER_HIGH: u64 = 0x094;
const REG_QUEUE_DEVICE_LOW: u64 = 0x0a0;
const REG_QUEUE_DEVICE_HIGH: u64 = 0x0a4;
const REG_CONFIG_GENERATION: u64 = 0x0fc;
const CONFIG_SPACE: u64 = 0x100;

pub const STATUS_ACKNOWLEDGE: u32 = 1;
pub const STATUS_DRIVER: u32 = 2;
pub const STATUS_DRIVER_OK: u32 = 4;
pub const STATUS_FEATURES_OK: u32 = 8;
pub const STATUS_FAILED: u32 = 128;
/// Interrupt status bit: the device added used buffers.
pub const INT_USED_RING: u32 = 1;

/// One virtio device behind its register window.
#[derive(Debug)]
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: GuestMemoryMmap,
    irq: IrqTrigger,
    queues: Vec<Queue>,
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    status: u32,
    interrupt_status: Arc<AtomicU32>,
}

fn reg_value(data: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(data.try_into().ok()?))
}

fn half(value: u64, high: bool) -> u32 {
    let v = if high { value >> 32 } else { value };
    u32::try_from(v & 0xffff_ffff).unwrap_or(0)
}

impl MmioTransport {
    /// Wraps `device`; `irq` is the eventfd of its irqfd.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        irq: IrqTrigger,
    ) -> Result<Self, virtio_queue::Error> {
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|max| Queue::new(*max))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            device,
            mem,
            irq,
            queues,
            queue_sel: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            status: 0,
            interrupt_status: Arc::new(AtomicU32::new(0)),
        })
    }

    pub fn status(&self) -> u32 {
        self.status
    }

    pub fn device(&self) -> &dyn VirtioDevice {
        self.device.as_ref()
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        let i = usize::try_from(self.queue_sel).ok()?;
        self.queues.get_mut(i)
    }

    /// Queue registers are writable only while the driver sets the device up.
    fn queue_setup_allowed(&self) -> bool {
        self.status & (STATUS_FEATURES_OK | STATUS_DRIVER_OK | STATUS_FAILED) == STATUS_FEATURES_OK
    }

    fn reset(&mut self) {
        for q in &mut self.queues {
            q.reset();
        }
        self.queue_sel = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.status = 0;
        self.interrupt_status.store(0, Ordering::SeqCst);
    }

    fn set_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let mut value = value;
        if value & STATUS_FEATURES_OK != 0 && self.status & STATUS_FEATURES_OK == 0 {
            // The driver may only accept what was offered, and must speak virtio 1.x.
            let offered = self.device.features();
            let ok = self.driver_features & !offered == 0
                && self.driver_features & super::VIRTIO_F_VERSION_1 != 0;
            if !ok {
                value &= !STATUS_FEATURES_OK;
            }
        }
        self.status = value;
    }

    fn notify(&mut self, index: u32) {
        if self.status & STATUS_DRIVER_OK == 0 {
            return;
        }
        let Ok(i) = usize::try_from(index) else {
            return;
        };
        if !self.queues.get(i).is_some_and(|q| q.ready()) {
            return;
        }
        if self.device.process_queue(i, &mut self.queues, &self.mem) {
            self.interrupt();
        }
    }

    fn interrupt(&mut self) {
        self.interrupt_status
            .fetch_or(INT_USED_RING, Ordering::SeqCst);
        // A lost interrupt leaves the used buffers for the driver's next look.
        let _ = self.irq.trigger();
    }

    /// The host queued input for the device: let it deliver, once the driver is up.
    pub fn host_input(&mut self) {
        if self.status & STATUS_DRIVER_OK == 0 {
            return;
        }
        if self.device.process_host(&mut self.queues, &self.mem) {
            self.interrupt();
        }
    }

    /// A guest read at `offset` in the window.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_SPACE {
            self.device.read_config(offset - CONFIG_SPACE, data);
            return;
        }
        let value = match offset {
            REG_MAGIC => MAGIC,
            REG_VERSION => VERSION,
            REG_DEVICE_ID => self.device.device_type(),
            REG_VENDOR_ID => VENDOR,
            REG_DEVICE_FEATURES => match self.device_features_sel {
                0 => half(self.device.features(), false),
                1 => half(self.device.features(), true),
                _ => 0,
            },
            REG_QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size())),
            REG_QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready())),
            REG_INTERRUPT_STATUS => self.interrupt_status.load(Ordering::SeqCst),
            REG_STATUS => self.status,
            REG_CONFIG_GENERATION => 0,
            _ => 0,
        };
        let bytes = value.to_le_bytes();
        let n = data.len().min(4);
        data[..n].copy_from_slice(&bytes[..n]);
    }

    /// A guest write at `offset` in the window.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= CONFIG_SPACE {
            return; // no device here has writable configuration
        }
        let Some(v) = reg_value(data) else {
            return; // registers are 32 bits wide
        };
        let setup = self.queue_setup_allowed();
        match offset {
            REG_DEVICE_FEATURES_SEL => self.device_features_sel = v,
            REG_DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            REG_DRIVER_FEATURES if self.status & STATUS_FEATURES_OK == 0 => {
                match self.driver_features_sel {
                    0 => {
                        self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v)
                    }
                    1 => {
                        self.driver_features =
                            (self.driver_features & 0xffff_ffff) | (u64::from(v) << 32)
                    }
                    _ => {}
                }
            }
            REG_QUEUE_SEL => self.queue_sel = v,
            REG_QUEUE_NUM if setup => {
                if let (Some(q), Ok(n)) = (self.selected_queue(), u16::try_from(v)) {
                    q.set_size(n);
                }
            }
            REG_QUEUE_READY if setup => {
                let mem = self.mem.clone();
                if let Some(q) = self.selected_queue() {
                    // Only a queue whose rings lie in guest memory goes live (is_valid looks
                    // at a ready queue only).
                    q.set_ready(v == 1);
                    if v == 1 && !q.is_valid(&mem) {
                        q.set_ready(false);
                    }
                }
            }
            REG_QUEUE_DESC_LOW | REG_QUEUE_DESC_HIGH if setup => {
                let high = offset == REG_QUEUE_DESC_HIGH;
                if let Some(q) = self.selected_queue() {
                    q.set_desc_table_address((!high).then_some(v), high.then_some(v));
                }
            }
            REG_QUEUE_DRIVER_LOW | REG_QUEUE_DRIVER_HIGH if setup => {
                let high = offset == REG_QUEUE_DRIVER_HIGH;
                if let Some(q) = self.selected_queue() {
                    q.set_avail_ring_address((!high).then_some(v), high.then_some(v));
                }
            }
            REG_QUEUE_DEVICE_LOW | REG_QUEUE_DEVICE_HIGH if setup => {
                let high = offset == REG_QUEUE_DEVICE_HIGH;
                if let Some(q) = self.selected_queue() {
                    q.set_used_ring_address((!high).then_some(v), high.then_some(v));
                }
            }
            REG_QUEUE_NOTIFY => self.notify(v),
            REG_INTERRUPT_ACK => {
                self.interrupt_status.fetch_and(!v, Ordering::SeqCst);
            }
            REG_STATUS => self.set_status(v),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::console::{Console, VIRTIO_ID_CONSOLE};
    use crate::test_util::SharedBuf as Sink;
    use vm_memory::{Bytes, GuestAddress};
    use vmm_sys_util::eventfd::EventFd;

    const DESC: u64 = 0x1000;
    const AVAIL: u64 = 0x2000;
    const USED: u64 = 0x3000;
    const BUF: u64 = 0x4000;

    fn console() -> (MmioTransport, Sink, EventFd, GuestMemoryMmap) {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).expect("mem");
        let sink = Sink::default();
        let irq = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
        let dev = Box::new(Console::new(Box::new(sink.clone())));
        let t = MmioTransport::new(
            dev,
            mem.clone(),
            IrqTrigger(irq.try_clone().expect("clone")),
        )
        .expect("transport");
        (t, sink, irq, mem)
    }

    fn rd(t: &mut MmioTransport, off: u64) -> u32 {
        let mut d = [0u8; 4];
        t.read(off, &mut d);
        u32::from_le_bytes(d)
    }

    fn wr(t: &mut MmioTransport, off: u64, v: u32) {
        t.write(off, &v.to_le_bytes());
    }

    /// The Linux driver's probe sequence up to FEATURES_OK, accepting `features`.
    fn negotiate(t: &mut MmioTransport, features: u64) {
        wr(t, REG_STATUS, STATUS_ACKNOWLEDGE);
        wr(t, REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        wr(t, REG_DRIVER_FEATURES_SEL, 0);
        wr(t, REG_DRIVER_FEATURES, half(features, false));
        wr(t, REG_DRIVER_FEATURES_SEL, 1);
        wr(t, REG_DRIVER_FEATURES, half(features, true));
        wr(
            t,
            REG_STATUS,
            STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK,
        );
    }

    #[test]
    fn identifies_as_a_virtio_console() {
        let (mut t, ..) = console();
        assert_eq!(rd(&mut t, REG_MAGIC), 0x7472_6976);
        assert_eq!(rd(&mut t, REG_VERSION), 2);
        assert_eq!(rd(&mut t, REG_DEVICE_ID), VIRTIO_ID_CONSOLE);
        wr(&mut t, REG_DEVICE_FEATURES_SEL, 1);
        assert_eq!(
            rd(&mut t, REG_DEVICE_FEATURES),
            1,
            "VIRTIO_F_VERSION_1 is bit 32"
        );
        wr(&mut t, REG_QUEUE_SEL, 1);
        assert_eq!(rd(&mut t, REG_QUEUE_NUM_MAX), 256);
        wr(&mut t, REG_QUEUE_SEL, 7);
        assert_eq!(rd(&mut t, REG_QUEUE_NUM_MAX), 0, "no such queue");
    }

    #[test]
    fn legacy_driver_is_refused() {
        let (mut t, ..) = console();
        negotiate(&mut t, 0);
        assert_eq!(rd(&mut t, REG_STATUS) & STATUS_FEATURES_OK, 0);
        let (mut t, ..) = console();
        negotiate(&mut t, super::super::VIRTIO_F_VERSION_1 | 1 << 1); // SIZE was not offered
        assert_eq!(rd(&mut t, REG_STATUS) & STATUS_FEATURES_OK, 0);
    }

    #[test]
    fn transmit_queue_reaches_the_output_and_interrupts() {
        let (mut t, sink, irq, mem) = console();
        negotiate(&mut t, super::super::VIRTIO_F_VERSION_1);
        assert_ne!(rd(&mut t, REG_STATUS) & STATUS_FEATURES_OK, 0);
        wr(&mut t, REG_QUEUE_SEL, 1);
        wr(&mut t, REG_QUEUE_NUM, 4);
        wr(&mut t, REG_QUEUE_DESC_LOW, half(DESC, false));
        wr(&mut t, REG_QUEUE_DESC_HIGH, 0);
        wr(&mut t, REG_QUEUE_DRIVER_LOW, half(AVAIL, false));
        wr(&mut t, REG_QUEUE_DEVICE_LOW, half(USED, false));
        wr(&mut t, REG_QUEUE_READY, 1);
        assert_eq!(rd(&mut t, REG_QUEUE_READY), 1);
        wr(&mut t, REG_STATUS, 0xf);

        // One readable descriptor holding "hi\n", made available.
        mem.write_slice(b"hi\n", GuestAddress(BUF)).expect("buf");
        mem.write_obj(BUF, GuestAddress(DESC)).expect("addr");
        mem.write_obj(3u32, GuestAddress(DESC + 8)).expect("len");
        mem.write_obj(0u16, GuestAddress(DESC + 12)).expect("flags");
        mem.write_obj(0u16, GuestAddress(AVAIL + 4))
            .expect("ring[0]");
        mem.write_obj(1u16, GuestAddress(AVAIL + 2)).expect("idx");
        wr(&mut t, REG_QUEUE_NOTIFY, 1);

        assert_eq!(sink.bytes(), b"hi\n");
        let used_idx: u16 = mem.read_obj(GuestAddress(USED + 2)).expect("used idx");
        assert_eq!(used_idx, 1);
        assert_eq!(rd(&mut t, REG_INTERRUPT_STATUS), INT_USED_RING);
        assert_eq!(irq.read().expect("interrupt"), 1);
        wr(&mut t, REG_INTERRUPT_ACK, INT_USED_RING);
        assert_eq!(rd(&mut t, REG_INTERRUPT_STATUS), 0);
    }

    #[test]
    fn queue_setup_needs_features_ok_and_status_zero_resets() {
        let (mut t, ..) = console();
        wr(&mut t, REG_QUEUE_SEL, 1);
        wr(&mut t, REG_QUEUE_READY, 1);
        assert_eq!(rd(&mut t, REG_QUEUE_READY), 0, "not before FEATURES_OK");
        negotiate(&mut t, super::super::VIRTIO_F_VERSION_1);
        wr(&mut t, REG_STATUS, 0);
        assert_eq!(t.status(), 0);
        assert_eq!(rd(&mut t, REG_STATUS), 0);
    }

    #[test]
    fn notify_before_driver_ok_is_ignored() {
        let (mut t, sink, irq, _) = console();
        negotiate(&mut t, super::super::VIRTIO_F_VERSION_1);
        wr(&mut t, REG_QUEUE_NOTIFY, 1);
        assert!(sink.bytes().is_empty());
        assert!(irq.read().is_err(), "no interrupt");
    }
}
