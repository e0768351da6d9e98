//! Host input for the guest console: bytes queued into COM1's receive FIFO (16 bytes deep in a
//! 16550, 64 in vm-superio), waiting while it is full, with the receive interrupt raised.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use vm_superio::serial::Error as SerialError;

use super::Devices;

/// How long to wait for the guest to drain a full FIFO before trying again.
const FULL_FIFO_WAIT: Duration = Duration::from_millis(1);

#[derive(Debug, thiserror::Error)]
#[error("cannot pass input to the guest console: {0}")]
pub struct InputError(String);

/// A handle that feeds the guest's serial console; clone it into an input thread.
#[derive(Debug, Clone)]
pub struct SerialInput(pub(crate) Arc<Mutex<Devices>>);

impl SerialInput {
    /// Queues all of `bytes`, waiting while the FIFO is full.
    pub fn send(&self, mut bytes: &[u8]) -> Result<(), InputError> {
        while !bytes.is_empty() {
            let queued = self
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .serial
                .enqueue_raw_bytes(bytes);
            match queued {
                Ok(n) => bytes = &bytes[n..],
                Err(SerialError::FullFifo) => thread::sleep(FULL_FIFO_WAIT),
                Err(e) => return Err(InputError(e.to_string())),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::serial::COM1_BASE;
    use crate::devices::Bus;

    #[test]
    fn input_reaches_the_receive_register() {
        let (devices, irq) = Devices::new(Box::new(std::io::sink())).expect("devices");
        let devices = Arc::new(Mutex::new(devices));
        // The guest enables the received-data interrupt, as the 8250 driver does.
        devices
            .lock()
            .expect("lock")
            .pio_write(COM1_BASE + 1, &[0x01]);
        let input = SerialInput(Arc::clone(&devices));
        input.send(b"ok").expect("send");
        let mut d = devices.lock().expect("lock");
        let mut lsr = [0u8];
        d.pio_read(COM1_BASE + 5, &mut lsr);
        assert_eq!(lsr[0] & 1, 1, "data ready");
        let mut rbr = [0u8];
        d.pio_read(COM1_BASE, &mut rbr);
        assert_eq!(rbr[0], b'o');
        d.pio_read(COM1_BASE, &mut rbr);
        assert_eq!(rbr[0], b'k');
        assert!(irq.read().expect("interrupt raised") >= 1);
    }
}
