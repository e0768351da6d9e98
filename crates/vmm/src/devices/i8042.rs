//! The i8042 keyboard controller, only as far as a guest resets the machine through it (command
//! 0xfe on port 0x64, Linux's `reboot=k`). Status reads are 0: input buffer empty, so the
//! guest's wait before the reset command ends at once.

use std::sync::atomic::{AtomicBool, Ordering};

use vm_superio::{I8042Device, Trigger};

pub const I8042_DATA: u16 = 0x60;
pub const I8042_COMMAND: u16 = 0x64;

/// Remembers that the guest asked for a reset.
#[derive(Debug, Default)]
pub struct ResetFlag(AtomicBool);

impl ResetFlag {
    /// Whether a reset was requested since the last call.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }
}

impl Trigger for ResetFlag {
    type E = std::convert::Infallible;
    fn trigger(&self) -> Result<(), Self::E> {
        self.0.store(true, Ordering::SeqCst);
        Ok(())
    }
}

pub type I8042 = I8042Device<ResetFlag>;

pub fn i8042() -> I8042 {
    I8042Device::new(ResetFlag::default())
}
