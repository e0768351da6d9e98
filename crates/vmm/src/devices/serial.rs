//! COM1: a 16550 UART (vm-superio) whose transmitter writes the guest console to the VMM's
//! output, interrupting the guest on IRQ 4 through an irqfd.

use std::io::{self, Write};

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

pub const COM1_BASE: u16 = 0x3f8;
pub const COM1_LEN: u16 = 8;
pub const COM1_GSI: u32 = 4;

/// An eventfd the KVM irqfd turns into an interrupt.
#[derive(Debug)]
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// The console sink: the UART flushes after every byte, so lines are gathered here and written
/// whole, one write(2) a line rather than one a byte.
pub struct LineOut {
    buf: Vec<u8>,
    out: Box<dyn Write + Send>,
}

impl std::fmt::Debug for LineOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineOut")
            .field("pending", &self.buf.len())
            .finish()
    }
}

impl LineOut {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            buf: Vec::with_capacity(256),
            out,
        }
    }

    /// Writes what is pending, complete line or not (when the VM stops).
    pub fn drain(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        self.out.flush()
    }
}

impl Write for LineOut {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        let end = if self.buf.len() >= 4096 {
            Some(self.buf.len())
        } else {
            self.buf.iter().rposition(|b| *b == b'\n').map(|p| p + 1)
        };
        if let Some(end) = end {
            self.out.write_all(&self.buf[..end])?;
            self.buf.drain(..end);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub type ConsoleSerial = Serial<IrqTrigger, NoEvents, LineOut>;

/// COM1 writing to `out`, interrupting through `irq`.
pub fn com1(irq: EventFd, out: Box<dyn Write + Send>) -> ConsoleSerial {
    Serial::new(IrqTrigger(irq), LineOut::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::SharedBuf;

    #[test]
    fn lines_are_written_whole() {
        let sink = SharedBuf::default();
        let mut out = LineOut::new(Box::new(sink.clone()));
        out.write_all(b"ab").expect("write");
        out.flush().expect("flush");
        assert!(sink.bytes().is_empty());
        out.write_all(b"c\nd").expect("write");
        assert_eq!(sink.bytes(), b"abc\n");
        out.drain().expect("drain");
        assert_eq!(sink.bytes(), b"abc\nd");
    }
}
