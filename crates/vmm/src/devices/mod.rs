//! The emulated devices and the port I/O / MMIO bus the exit handler routes to.

pub mod i8042;
pub mod input;
pub mod serial;
pub mod virtio;

use std::io::Write;

use vmm_sys_util::eventfd::EventFd;

use i8042::{I8042, I8042_COMMAND, I8042_DATA};
use serial::{ConsoleSerial, COM1_BASE, COM1_LEN};
use virtio::mmio::{MmioTransport, MMIO_WINDOW};

/// What a device access did, beyond the data it moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Handled,
    /// No device there: reads return zeroes, writes are dropped.
    Unhandled,
    /// The guest asked for a machine reset.
    Reset,
}

/// Where the exit handler sends port I/O and MMIO.
pub trait Bus {
    fn pio_read(&mut self, port: u16, data: &mut [u8]) -> Access;
    fn pio_write(&mut self, port: u16, data: &[u8]) -> Access;
    fn mmio_read(&mut self, addr: u64, data: &mut [u8]) -> Access;
    fn mmio_write(&mut self, addr: u64, data: &[u8]) -> Access;
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("cannot create the serial interrupt eventfd: {0}")]
    EventFd(std::io::Error),
}

/// The legacy devices of a hull microVM.
#[derive(Debug)]
pub struct Devices {
    pub serial: ConsoleSerial,
    pub i8042: I8042,
    /// virtio-mmio devices by the base address of their register window.
    pub virtio: Vec<(u64, MmioTransport)>,
    /// Set when the UART could not write to the console; the guest carries on.
    pub console_error: Option<String>,
}

impl Devices {
    /// COM1 writing to `console`; returns the eventfd to register as the serial irqfd.
    pub fn new(console: Box<dyn Write + Send>) -> Result<(Self, EventFd), DeviceError> {
        let irq = EventFd::new(libc::EFD_NONBLOCK).map_err(DeviceError::EventFd)?;
        let irq2 = irq.try_clone().map_err(DeviceError::EventFd)?;
        let devices = Self {
            serial: serial::com1(irq2, console),
            i8042: i8042::i8042(),
            virtio: Vec::new(),
            console_error: None,
        };
        Ok((devices, irq))
    }

    /// The virtio device whose window holds `addr`, and the offset in it.
    fn virtio_at(&mut self, addr: u64) -> Option<(&mut MmioTransport, u64)> {
        self.virtio.iter_mut().find_map(|(base, dev)| {
            let off = addr.checked_sub(*base).filter(|o| *o < MMIO_WINDOW)?;
            Some((dev, off))
        })
    }

    /// Writes out the console's last partial line.
    pub fn flush_console(&mut self) -> std::io::Result<()> {
        self.serial.writer_mut().drain()
    }
}

fn com1_offset(port: u16) -> Option<u8> {
    port.checked_sub(COM1_BASE)
        .filter(|o| *o < COM1_LEN)
        .and_then(|o| u8::try_from(o).ok())
}

impl Bus for Devices {
    fn pio_read(&mut self, port: u16, data: &mut [u8]) -> Access {
        if let Some(off) = com1_offset(port) {
            data.fill(0);
            if let Some(b) = data.first_mut() {
                *b = self.serial.read(off);
            }
            return Access::Handled;
        }
        match port {
            I8042_DATA | I8042_COMMAND => {
                let off = u8::try_from(port - I8042_DATA).unwrap_or(0);
                data.fill(0);
                if let Some(b) = data.first_mut() {
                    *b = self.i8042.read(off);
                }
                Access::Handled
            }
            _ => {
                // Zero, not 0xff: "all ones" made Linux poll the absent CMOS RTC for seconds.
                data.fill(0);
                Access::Unhandled
            }
        }
    }

    fn pio_write(&mut self, port: u16, data: &[u8]) -> Access {
        let Some(&value) = data.first() else {
            return Access::Handled;
        };
        if let Some(off) = com1_offset(port) {
            if let Err(e) = self.serial.write(off, value) {
                self.console_error.get_or_insert_with(|| e.to_string());
            }
            return Access::Handled;
        }
        match port {
            I8042_DATA | I8042_COMMAND => {
                let off = u8::try_from(port - I8042_DATA).unwrap_or(0);
                // The trigger is infallible.
                let _ = self.i8042.write(off, value);
                if self.i8042.reset_evt().take() {
                    Access::Reset
                } else {
                    Access::Handled
                }
            }
            _ => Access::Unhandled,
        }
    }

    fn mmio_read(&mut self, addr: u64, data: &mut [u8]) -> Access {
        data.fill(0);
        match self.virtio_at(addr) {
            Some((dev, off)) => {
                dev.read(off, data);
                Access::Handled
            }
            None => Access::Unhandled,
        }
    }

    fn mmio_write(&mut self, addr: u64, data: &[u8]) -> Access {
        match self.virtio_at(addr) {
            Some((dev, off)) => {
                dev.write(off, data);
                Access::Handled
            }
            None => Access::Unhandled,
        }
    }
}
