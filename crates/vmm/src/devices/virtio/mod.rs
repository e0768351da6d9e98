//! virtio devices over the virtio-mmio transport (virtio 1.x, split virtqueues from the
//! virtio-queue crate). A device only says what it is and what to do with a notified queue; the
//! transport (`mmio`) owns the registers, feature negotiation, queues and interrupt.

pub mod block;
pub mod console;
pub mod input;
pub mod mmio;

use std::fmt::Debug;

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

/// Offered by every device: the modern (1.x) interface, the only one virtio-mmio v2 speaks.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;

/// What a virtio device implements; the transport does the rest.
pub trait VirtioDevice: Debug + Send {
    /// The virtio device id (3 = console).
    fn device_type(&self) -> u32;
    /// Feature bits the device offers.
    fn features(&self) -> u64;
    /// The largest size of each of its queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Reads the device-specific configuration space.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// The driver notified queue `index` (one of `queues`, all of the device's, since a device
    /// may answer on another queue): consume it. Returns whether used buffers were added, so
    /// the guest must be interrupted.
    fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool;
    /// The host has something for the guest (input a handle queued): deliver what the queues
    /// take. Returns whether used buffers were added.
    fn process_host(&mut self, _queues: &mut [Queue], _mem: &GuestMemoryMmap) -> bool {
        false
    }
}
