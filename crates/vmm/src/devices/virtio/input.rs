//! Host input for a virtio-console port: bytes queued in the port's inbox, then handed to the
//! device under the bus lock, which moves them into the guest's receive buffers (now, or when
//! the guest posts more or opens the port) and interrupts it.

use std::sync::{Arc, Mutex, PoisonError};

use super::console::Inbox;
use crate::devices::Devices;

/// A handle that feeds one virtio-console port; clone it into an input thread.
#[derive(Debug, Clone)]
pub struct PortInput {
    pub(crate) devices: Arc<Mutex<Devices>>,
    /// The device's place in `Devices::virtio`.
    pub(crate) index: usize,
    pub(crate) inbox: Inbox,
}

impl PortInput {
    /// Queues `bytes` for the guest; they wait in the VMM while the guest reads slower.
    pub fn send(&self, bytes: &[u8]) {
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(bytes);
        let mut devices = self.devices.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, dev)) = devices.virtio.get_mut(self.index) {
            dev.host_input();
        }
    }
}
