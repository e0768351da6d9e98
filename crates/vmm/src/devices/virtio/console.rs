//! virtio-console. Port 0 is the guest's console (hvc0): what the guest writes to it goes to the
//! VMM's output. With more ports the device speaks the MULTIPORT feature: a control queue pair
//! announces each port (its name, whether it is a console, that the host side is open), and each
//! further port is a byte pipe to the host (/dev/vport0pN in the guest, found by its name in
//! /sys/class/virtio-ports). hull's agent channel is such a port.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestMemoryMmap};

use super::{VirtioDevice, VIRTIO_F_VERSION_1};

pub const VIRTIO_ID_CONSOLE: u32 = 3;
const VIRTIO_CONSOLE_F_MULTIPORT: u64 = 1 << 1;
const QUEUE_SIZE: u16 = 256;
const CONTROL_RX: usize = 2;
const CONTROL_TX: usize = 3;
/// The bytes of `struct virtio_console_control`: id (le32), event (le16), value (le16).
const CONTROL_LEN: usize = 8;

// Control events (virtio spec 5.3.6.2).
pub const DEVICE_READY: u16 = 0;
pub const DEVICE_ADD: u16 = 1;
pub const PORT_READY: u16 = 3;
pub const CONSOLE_PORT: u16 = 4;
pub const PORT_OPEN: u16 = 6;
pub const PORT_NAME: u16 = 7;

/// Host bytes waiting for the guest to post receive buffers on a port.
pub type Inbox = Arc<Mutex<VecDeque<u8>>>;

/// One port: where the guest's bytes go and, for a pipe port, what the host sends it.
pub struct Port {
    /// The name the guest sees (/sys/class/virtio-ports/vport0pN/name).
    pub name: Option<String>,
    pub out: Box<dyn Write + Send>,
    pub inbox: Option<Inbox>,
    /// The guest has the port open: only then may host bytes go in (Linux drops data that
    /// arrives on a closed port).
    guest_open: bool,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("name", &self.name)
            .field("guest_open", &self.guest_open)
            .finish_non_exhaustive()
    }
}

impl Port {
    pub fn new(name: Option<String>, out: Box<dyn Write + Send>, inbox: Option<Inbox>) -> Self {
        Self {
            name,
            out,
            inbox,
            guest_open: false,
        }
    }
}

/// A virtio console with one or more ports; port 0 is the console.
#[derive(Debug)]
pub struct Console {
    ports: Vec<Port>,
    queue_sizes: Vec<u16>,
    /// Control messages waiting for a buffer on the control receive queue.
    control_out: VecDeque<Vec<u8>>,
    /// Bytes the guest wrote, all ports (for tests and stats).
    pub transmitted: u64,
}

fn control(id: u32, event: u16, value: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTROL_LEN);
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&event.to_le_bytes());
    m.extend_from_slice(&value.to_le_bytes());
    m
}

/// Reads a chain's readable buffers; unreadable ones are skipped.
fn read_chain(descs: &[Descriptor], mem: &GuestMemoryMmap) -> Vec<u8> {
    let mut data = Vec::new();
    for d in descs.iter().filter(|d| !d.is_write_only()) {
        let start = data.len();
        data.resize(start + d.len() as usize, 0);
        if mem.read_slice(&mut data[start..], d.addr()).is_err() {
            data.truncate(start);
        }
    }
    data
}

/// Fills a chain's writable buffers from `src`; returns how many bytes went in.
fn fill_chain(descs: &[Descriptor], mem: &GuestMemoryMmap, src: &[u8]) -> usize {
    let mut done = 0;
    for d in descs.iter().filter(|d| d.is_write_only()) {
        let n = (d.len() as usize).min(src.len() - done);
        if n == 0 || mem.write_slice(&src[done..done + n], d.addr()).is_err() {
            break;
        }
        done += n;
    }
    done
}

impl Console {
    /// A single-port console writing the guest's output to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self::with_ports(vec![Port::new(None, out, None)])
    }

    /// A console with `ports` (port 0 first: the console).
    pub fn with_ports(ports: Vec<Port>) -> Self {
        let queues = if ports.len() > 1 {
            2 * (ports.len() + 1)
        } else {
            2
        };
        Self {
            ports,
            queue_sizes: vec![QUEUE_SIZE; queues],
            control_out: VecDeque::new(),
            transmitted: 0,
        }
    }

    fn multiport(&self) -> bool {
        self.ports.len() > 1
    }

    /// The port whose receive (`false`) or transmit (`true`) queue is `index`.
    fn port_of(index: usize) -> Option<(usize, bool)> {
        match index {
            0 | 1 => Some((0, index == 1)),
            CONTROL_RX | CONTROL_TX => None,
            i => Some((i / 2 - 1, i % 2 == 1)),
        }
    }

    fn rx_queue(port: usize) -> usize {
        if port == 0 {
            0
        } else {
            2 * (port + 1)
        }
    }

    fn transmit(&mut self, port: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let descs: Vec<Descriptor> = chain.collect();
            let data = read_chain(&descs, mem);
            if let Some(p) = self.ports.get_mut(port) {
                // Output is best effort, like a serial line: a failed write drops it.
                let _ = p.out.write_all(&data).and_then(|()| p.out.flush());
            }
            self.transmitted += data.len() as u64;
            // Nothing is written into a transmit buffer, hence a used length of 0.
            used |= queue.add_used(mem, head, 0).is_ok();
        }
        used
    }

    /// Moves host bytes of `port` into the guest's receive buffers, while both last.
    fn receive(&mut self, port: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        let Some(p) = self.ports.get(port).filter(|p| p.guest_open) else {
            return false;
        };
        let Some(inbox) = &p.inbox else {
            return false;
        };
        let mut inbox = inbox.lock().unwrap_or_else(PoisonError::into_inner);
        let mut used = false;
        while !inbox.is_empty() {
            let Some(chain) = queue.pop_descriptor_chain(mem) else {
                break;
            };
            let head = chain.head_index();
            let descs: Vec<Descriptor> = chain.collect();
            let pending = inbox.make_contiguous();
            let n = fill_chain(&descs, mem, pending);
            inbox.drain(..n);
            let len = u32::try_from(n).unwrap_or(0);
            used |= queue.add_used(mem, head, len).is_ok();
        }
        used
    }

    /// Control messages from the driver.
    fn control_in(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let descs: Vec<Descriptor> = chain.collect();
            let msg = read_chain(&descs, mem);
            if msg.len() >= CONTROL_LEN {
                let id = u32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]);
                let event = u16::from_le_bytes([msg[4], msg[5]]);
                let value = u16::from_le_bytes([msg[6], msg[7]]);
                self.on_control(id, event, value);
            }
            used |= queue.add_used(mem, head, 0).is_ok();
        }
        used
    }

    fn on_control(&mut self, id: u32, event: u16, value: u16) {
        let port = usize::try_from(id).ok().filter(|p| *p < self.ports.len());
        match (event, port) {
            (DEVICE_READY, _) if value == 1 => {
                for p in 0..self.ports.len() {
                    let id = u32::try_from(p).unwrap_or(u32::MAX);
                    self.control_out.push_back(control(id, DEVICE_ADD, 0));
                }
            }
            (PORT_READY, Some(p)) if value == 1 => {
                if p == 0 {
                    self.control_out.push_back(control(id, CONSOLE_PORT, 1));
                }
                if let Some(name) = &self.ports[p].name {
                    let mut m = control(id, PORT_NAME, 1);
                    m.extend_from_slice(name.as_bytes());
                    self.control_out.push_back(m);
                }
                // The host end of every port is always open.
                self.control_out.push_back(control(id, PORT_OPEN, 1));
            }
            (PORT_OPEN, Some(p)) => self.ports[p].guest_open = value == 1,
            _ => {}
        }
    }

    fn control_out(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        let mut used = false;
        while !self.control_out.is_empty() {
            let Some(chain) = queue.pop_descriptor_chain(mem) else {
                break;
            };
            let head = chain.head_index();
            let descs: Vec<Descriptor> = chain.collect();
            let msg = self.control_out.pop_front().unwrap_or_default();
            let n = fill_chain(&descs, mem, &msg);
            used |= queue
                .add_used(mem, head, u32::try_from(n).unwrap_or(0))
                .is_ok();
        }
        used
    }

    /// Everything the device may have to do now: pending control messages and host bytes.
    fn deliver(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool {
        let mut used = false;
        if self.multiport() {
            if let Some(q) = queues.get_mut(CONTROL_RX).filter(|q| q.ready()) {
                used |= self.control_out(q, mem);
            }
        }
        for port in 0..self.ports.len() {
            if let Some(q) = queues.get_mut(Self::rx_queue(port)).filter(|q| q.ready()) {
                used |= self.receive(port, q, mem);
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
        if self.multiport() {
            VIRTIO_F_VERSION_1 | VIRTIO_CONSOLE_F_MULTIPORT
        } else {
            VIRTIO_F_VERSION_1
        }
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // cols (le16) at 0, rows at 2: 0, no size is offered; max_nr_ports (le32) at 4.
        let mut config = [0u8; 12];
        let ports = u32::try_from(self.ports.len()).unwrap_or(1);
        config[4..8].copy_from_slice(&ports.to_le_bytes());
        data.fill(0);
        if let Some(src) = usize::try_from(offset).ok().and_then(|o| config.get(o..)) {
            let n = src.len().min(data.len());
            data[..n].copy_from_slice(&src[..n]);
        }
    }

    fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool {
        let mut used = false;
        match (index, Self::port_of(index)) {
            (CONTROL_TX, _) if self.multiport() => {
                if let Some(q) = queues.get_mut(CONTROL_TX) {
                    used |= self.control_in(q, mem);
                }
            }
            (_, Some((port, true))) => {
                if let Some(q) = queues.get_mut(index) {
                    used |= self.transmit(port, q, mem);
                }
            }
            // A receive queue got buffers (or the control receive queue did): handled below.
            _ => {}
        }
        used | self.deliver(queues, mem)
    }

    fn process_host(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool {
        self.deliver(queues, mem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{SharedBuf, TestQueue};
    use vm_memory::GuestAddress;

    /// The console's six queues (port 0, control, port 1) in one guest memory.
    struct Rig {
        dev: Console,
        queues: Vec<TestQueue>,
        agent_out: SharedBuf,
        inbox: Inbox,
    }

    impl Rig {
        fn new() -> Self {
            let agent_out = SharedBuf::default();
            let inbox = Inbox::default();
            let dev = Console::with_ports(vec![
                Port::new(None, Box::new(std::io::sink()), None),
                Port::new(
                    Some("org.hull.agent".into()),
                    Box::new(agent_out.clone()),
                    Some(inbox.clone()),
                ),
            ]);
            let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
            let queues = (0..6).map(|n| TestQueue::nth(&mem, n)).collect();
            Self {
                dev,
                queues,
                agent_out,
                inbox,
            }
        }

        /// Runs queue `index` as the guest's notify would.
        fn notify(&mut self, index: usize) -> bool {
            self.with_queues(|dev, qs, mem| dev.process_queue(index, qs, mem))
        }

        /// Lends the device its queues (Queue is not Clone: they are moved out and back).
        fn with_queues(
            &mut self,
            f: impl FnOnce(&mut Console, &mut [Queue], &GuestMemoryMmap) -> bool,
        ) -> bool {
            let mut qs: Vec<Queue> = self
                .queues
                .iter_mut()
                .map(|t| std::mem::replace(&mut t.queue, Queue::new(256).unwrap()))
                .collect();
            let mem = self.queues[0].mem.clone();
            let used = f(&mut self.dev, &mut qs, &mem);
            for (t, q) in self.queues.iter_mut().zip(qs) {
                t.queue = q;
            }
            used
        }

        fn send_control(&mut self, id: u32, event: u16, value: u16) {
            let q = &mut self.queues[CONTROL_TX];
            q.mem
                .write_slice(&control(id, event, value), GuestAddress(0x8000))
                .unwrap();
            q.add_chain(&[(0x8000, 8, false)]);
            self.notify(CONTROL_TX);
        }

        /// Control messages the device sent, each a fresh 64-byte buffer in the rx queue.
        fn receive_control(&mut self, n: usize) -> Vec<Vec<u8>> {
            let mut out = Vec::new();
            for i in 0..n {
                let addr = 0x8000 + 0x100 * i as u64;
                self.queues[CONTROL_RX].add_chain(&[(addr, 64, true)]);
                self.process_rx_control();
                let q = &self.queues[CONTROL_RX];
                let (_, len) = q.last_used();
                let mut m = vec![0u8; len as usize];
                q.mem.read_slice(&mut m, GuestAddress(addr)).unwrap();
                out.push(m);
            }
            out
        }

        fn process_rx_control(&mut self) {
            self.with_queues(|dev, qs, mem| dev.control_out(&mut qs[CONTROL_RX], mem));
        }
    }

    #[test]
    fn multiport_config_and_queues() {
        let rig = Rig::new();
        assert_ne!(rig.dev.features() & VIRTIO_CONSOLE_F_MULTIPORT, 0);
        assert_eq!(rig.dev.queue_max_sizes().len(), 6);
        let mut n = [0u8; 4];
        rig.dev.read_config(4, &mut n);
        assert_eq!(u32::from_le_bytes(n), 2);
        let single = Console::new(Box::new(std::io::sink()));
        assert_eq!(single.features(), VIRTIO_F_VERSION_1);
        assert_eq!(single.queue_max_sizes().len(), 2);
    }

    #[test]
    fn ports_are_announced_named_and_opened() {
        let mut rig = Rig::new();
        rig.send_control(0, DEVICE_READY, 1);
        let adds = rig.receive_control(2);
        assert_eq!(
            adds,
            vec![control(0, DEVICE_ADD, 0), control(1, DEVICE_ADD, 0)]
        );
        rig.send_control(0, PORT_READY, 1);
        let m = rig.receive_control(2);
        assert_eq!(
            m,
            vec![control(0, CONSOLE_PORT, 1), control(0, PORT_OPEN, 1)]
        );
        rig.send_control(1, PORT_READY, 1);
        let m = rig.receive_control(2);
        let mut named = control(1, PORT_NAME, 1);
        named.extend_from_slice(b"org.hull.agent");
        assert_eq!(m, vec![named, control(1, PORT_OPEN, 1)]);
        // Unknown ports and events are ignored.
        rig.send_control(9, PORT_READY, 1);
        rig.send_control(1, 99, 1);
        assert!(rig.dev.control_out.is_empty());
    }

    #[test]
    fn host_bytes_wait_for_the_guest_to_open_the_port() {
        let mut rig = Rig::new();
        rig.inbox.lock().unwrap().extend(b"hello guest");
        rig.queues[4].add_chain(&[(0x8000, 4, true), (0x9000, 64, true)]);
        assert!(!rig.notify(4), "port not open: nothing delivered");
        rig.send_control(1, PORT_OPEN, 1);
        let q = &rig.queues[4];
        assert_eq!(q.last_used().1, 11);
        let mut a = [0u8; 4];
        let mut b = [0u8; 7];
        q.mem.read_slice(&mut a, GuestAddress(0x8000)).unwrap();
        q.mem.read_slice(&mut b, GuestAddress(0x9000)).unwrap();
        assert_eq!((&a, &b), (b"hell", b"o guest"));
        assert!(rig.inbox.lock().unwrap().is_empty());
        // More than a buffer holds waits for the next buffer.
        rig.inbox.lock().unwrap().extend(b"0123456789");
        rig.queues[4].add_chain(&[(0x8000, 4, true)]);
        assert!(rig.with_queues(|dev, qs, mem| dev.process_host(qs, mem)));
        assert_eq!(rig.inbox.lock().unwrap().len(), 6);
    }

    #[test]
    fn guest_bytes_reach_their_port() {
        let mut rig = Rig::new();
        let q = &mut rig.queues[5];
        q.mem.write_slice(b"frame", GuestAddress(0x8000)).unwrap();
        q.add_chain(&[(0x8000, 5, false)]);
        assert!(rig.notify(5));
        assert_eq!(rig.agent_out.bytes(), b"frame");
        assert_eq!(rig.dev.transmitted, 5);
    }
}
