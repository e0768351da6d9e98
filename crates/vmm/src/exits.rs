//! vCPU exit handling as a free function over exit data (Firecracker's `handle_kvm_exit` shape):
//! `handle_exit` routes port I/O and MMIO to a `Bus`, decides when the VM stops, and counts every
//! exit by reason. Nothing here touches KVM, so synthetic exits test it all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::devices::{Access, Bus};

/// One vCPU exit, as the VMM needs it (borrowed from the vCPU's kvm_run page).
#[derive(Debug)]
pub enum Exit<'a> {
    IoIn {
        port: u16,
        data: &'a mut [u8],
    },
    IoOut {
        port: u16,
        data: &'a [u8],
    },
    MmioRead {
        addr: u64,
        data: &'a mut [u8],
    },
    MmioWrite {
        addr: u64,
        data: &'a [u8],
    },
    Hlt,
    /// Triple fault: Linux's `reboot=t`, or a crash.
    Shutdown,
    /// KVM_EXIT_SYSTEM_EVENT with its type (1 shutdown, 2 reset, 3 crash).
    SystemEvent(u32),
    FailEntry {
        reason: u64,
        cpu: u32,
    },
    InternalError,
    /// Anything else KVM reports; the name is for the error message.
    Other(&'static str),
}

/// Why a VM stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The guest reset the machine (i8042, triple fault, or a reset system event): for a microVM
    /// that is how `reboot` ends it.
    Reset,
    /// The guest powered off (a shutdown system event).
    Poweroff,
    /// A vCPU halted with nothing to wake it (only without the in-kernel irqchip).
    Halted,
    /// The guest crashed (a crash system event).
    Crash,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::Reset => "reset",
            StopReason::Poweroff => "poweroff",
            StopReason::Halted => "halted",
            StopReason::Crash => "crash",
        })
    }
}

/// What the vCPU loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitAction {
    Continue,
    Stop(StopReason),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExitError {
    #[error("KVM failed to enter the guest on CPU {cpu} (hardware reason {reason:#x})")]
    FailEntry { reason: u64, cpu: u32 },
    #[error("KVM reported an internal error running the vCPU")]
    InternalError,
    #[error("unexpected vCPU exit: {0}")]
    Unexpected(&'static str),
}

const KVM_SYSTEM_EVENT_SHUTDOWN: u32 = 1;
const KVM_SYSTEM_EVENT_RESET: u32 = 2;
const KVM_SYSTEM_EVENT_CRASH: u32 = 3;

/// Exits by reason, for one VM (all its vCPUs).
#[derive(Debug, Default)]
pub struct ExitCounters {
    pub io_in: AtomicU64,
    pub io_out: AtomicU64,
    pub mmio_read: AtomicU64,
    pub mmio_write: AtomicU64,
    /// Port and MMIO accesses no device claimed (included in the four above).
    pub unhandled: AtomicU64,
    pub hlt: AtomicU64,
    pub shutdown: AtomicU64,
    pub system_event: AtomicU64,
    pub fail_entry: AtomicU64,
    pub internal_error: AtomicU64,
    pub other: AtomicU64,
    /// KVM_RUN returned early because a signal kicked the vCPU (not an exit of the guest).
    pub interrupted: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl ExitCounters {
    /// The counts, named, in a fixed order.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        [
            ("io_in", &self.io_in),
            ("io_out", &self.io_out),
            ("mmio_read", &self.mmio_read),
            ("mmio_write", &self.mmio_write),
            ("unhandled", &self.unhandled),
            ("hlt", &self.hlt),
            ("shutdown", &self.shutdown),
            ("system_event", &self.system_event),
            ("fail_entry", &self.fail_entry),
            ("internal_error", &self.internal_error),
            ("other", &self.other),
            ("interrupted", &self.interrupted),
        ]
        .into_iter()
        .map(|(name, c)| (name, c.load(Ordering::Relaxed)))
        .collect()
    }

    /// Guest exits of every reason (interruptions excluded).
    pub fn total(&self) -> u64 {
        self.snapshot()
            .into_iter()
            .filter(|(n, _)| *n != "unhandled" && *n != "interrupted")
            .map(|(_, v)| v)
            .sum()
    }

    pub fn count_interrupted(&self) {
        bump(&self.interrupted);
    }
}

fn lock<B: Bus + ?Sized>(bus: &Mutex<B>) -> std::sync::MutexGuard<'_, B> {
    // A vCPU thread that panicked mid-access leaves plain device registers, still usable.
    bus.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn after_access(access: Access, counters: &ExitCounters) -> ExitAction {
    match access {
        Access::Handled => ExitAction::Continue,
        Access::Unhandled => {
            bump(&counters.unhandled);
            ExitAction::Continue
        }
        Access::Reset => ExitAction::Stop(StopReason::Reset),
    }
}

/// Handles one exit: emulates the access on `bus`, counts it, and says whether to go on.
pub fn handle_exit<B: Bus + ?Sized>(
    exit: Exit<'_>,
    bus: &Mutex<B>,
    counters: &ExitCounters,
) -> Result<ExitAction, ExitError> {
    match exit {
        Exit::IoIn { port, data } => {
            bump(&counters.io_in);
            Ok(after_access(lock(bus).pio_read(port, data), counters))
        }
        Exit::IoOut { port, data } => {
            bump(&counters.io_out);
            Ok(after_access(lock(bus).pio_write(port, data), counters))
        }
        Exit::MmioRead { addr, data } => {
            bump(&counters.mmio_read);
            Ok(after_access(lock(bus).mmio_read(addr, data), counters))
        }
        Exit::MmioWrite { addr, data } => {
            bump(&counters.mmio_write);
            Ok(after_access(lock(bus).mmio_write(addr, data), counters))
        }
        Exit::Hlt => {
            bump(&counters.hlt);
            Ok(ExitAction::Stop(StopReason::Halted))
        }
        Exit::Shutdown => {
            bump(&counters.shutdown);
            Ok(ExitAction::Stop(StopReason::Reset))
        }
        Exit::SystemEvent(kind) => {
            bump(&counters.system_event);
            match kind {
                KVM_SYSTEM_EVENT_SHUTDOWN => Ok(ExitAction::Stop(StopReason::Poweroff)),
                KVM_SYSTEM_EVENT_RESET => Ok(ExitAction::Stop(StopReason::Reset)),
                KVM_SYSTEM_EVENT_CRASH => Ok(ExitAction::Stop(StopReason::Crash)),
                _ => Err(ExitError::Unexpected("system event of unknown type")),
            }
        }
        Exit::FailEntry { reason, cpu } => {
            bump(&counters.fail_entry);
            Err(ExitError::FailEntry { reason, cpu })
        }
        Exit::InternalError => {
            bump(&counters.internal_error);
            Err(ExitError::InternalError)
        }
        Exit::Other(name) => {
            bump(&counters.other);
            Err(ExitError::Unexpected(name))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::i8042::I8042_COMMAND;
    use crate::devices::serial::COM1_BASE;
    use crate::devices::Devices;
    use crate::test_util::SharedBuf as Sink;

    fn vm() -> (Mutex<Devices>, Sink, ExitCounters) {
        let sink = Sink::default();
        let (devices, _irq) = Devices::new(Box::new(sink.clone())).expect("devices");
        (Mutex::new(devices), sink, ExitCounters::default())
    }

    fn out(port: u16, byte: u8, bus: &Mutex<Devices>, c: &ExitCounters) -> ExitAction {
        handle_exit(
            Exit::IoOut {
                port,
                data: &[byte],
            },
            bus,
            c,
        )
        .expect("handled")
    }

    fn count(c: &ExitCounters, name: &str) -> u64 {
        c.snapshot()
            .into_iter()
            .find(|(n, _)| *n == name)
            .expect("counter")
            .1
    }

    #[test]
    fn serial_output_reaches_the_console() {
        let (bus, sink, c) = vm();
        for b in b"hello\n" {
            assert_eq!(out(COM1_BASE, *b, &bus, &c), ExitAction::Continue);
        }
        assert_eq!(sink.bytes(), b"hello\n");
        assert_eq!(count(&c, "io_out"), 6);
        assert_eq!(count(&c, "unhandled"), 0);
    }

    #[test]
    fn serial_line_status_says_transmitter_empty() {
        let (bus, _, c) = vm();
        let mut lsr = [0u8];
        let a = handle_exit(
            Exit::IoIn {
                port: COM1_BASE + 5,
                data: &mut lsr,
            },
            &bus,
            &c,
        );
        assert_eq!(a, Ok(ExitAction::Continue));
        assert_eq!(lsr[0] & 0x60, 0x60, "THR empty and transmitter empty");
    }

    #[test]
    fn unhandled_port_reads_zero_and_is_counted() {
        let (bus, _, c) = vm();
        let mut data = [0xffu8; 4];
        let a = handle_exit(
            Exit::IoIn {
                port: 0x71,
                data: &mut data,
            },
            &bus,
            &c,
        );
        assert_eq!(a, Ok(ExitAction::Continue));
        assert_eq!(data, [0; 4]);
        assert_eq!(out(0x80, 1, &bus, &c), ExitAction::Continue);
        assert_eq!(
            (
                count(&c, "io_in"),
                count(&c, "io_out"),
                count(&c, "unhandled")
            ),
            (1, 1, 2)
        );
    }

    #[test]
    fn i8042_reset_stops_the_vm() {
        let (bus, _, c) = vm();
        let mut status = [0xffu8];
        handle_exit(
            Exit::IoIn {
                port: I8042_COMMAND,
                data: &mut status,
            },
            &bus,
            &c,
        )
        .expect("in");
        assert_eq!(status[0] & 0x2, 0, "input buffer empty");
        assert_eq!(out(I8042_COMMAND, 0xaa, &bus, &c), ExitAction::Continue);
        assert_eq!(
            out(I8042_COMMAND, 0xfe, &bus, &c),
            ExitAction::Stop(StopReason::Reset)
        );
        assert_eq!(count(&c, "unhandled"), 0);
    }

    #[test]
    fn mmio_without_device_reads_zero() {
        let (bus, _, c) = vm();
        let mut data = [0xffu8; 4];
        let a = handle_exit(
            Exit::MmioRead {
                addr: 0xd000_0000,
                data: &mut data,
            },
            &bus,
            &c,
        );
        assert_eq!((a, data), (Ok(ExitAction::Continue), [0; 4]));
        let a = handle_exit(
            Exit::MmioWrite {
                addr: 0xd000_0000,
                data: &[1, 2],
            },
            &bus,
            &c,
        );
        assert_eq!(a, Ok(ExitAction::Continue));
        assert_eq!(
            (
                count(&c, "mmio_read"),
                count(&c, "mmio_write"),
                count(&c, "unhandled")
            ),
            (1, 1, 2)
        );
    }

    #[test]
    fn shutdown_hlt_and_system_events_stop() {
        let (bus, _, c) = vm();
        let stop = |e| handle_exit(e, &bus, &c);
        assert_eq!(
            stop(Exit::Shutdown),
            Ok(ExitAction::Stop(StopReason::Reset))
        );
        assert_eq!(stop(Exit::Hlt), Ok(ExitAction::Stop(StopReason::Halted)));
        assert_eq!(
            stop(Exit::SystemEvent(1)),
            Ok(ExitAction::Stop(StopReason::Poweroff))
        );
        assert_eq!(
            stop(Exit::SystemEvent(2)),
            Ok(ExitAction::Stop(StopReason::Reset))
        );
        assert_eq!(
            stop(Exit::SystemEvent(3)),
            Ok(ExitAction::Stop(StopReason::Crash))
        );
        assert!(stop(Exit::SystemEvent(99)).is_err());
        assert_eq!(
            (
                count(&c, "shutdown"),
                count(&c, "hlt"),
                count(&c, "system_event")
            ),
            (1, 1, 4)
        );
    }

    #[test]
    fn failures_are_errors() {
        let (bus, _, c) = vm();
        let e = handle_exit(
            Exit::FailEntry {
                reason: 0x7,
                cpu: 1,
            },
            &bus,
            &c,
        );
        assert_eq!(e, Err(ExitError::FailEntry { reason: 7, cpu: 1 }));
        assert_eq!(
            handle_exit(Exit::InternalError, &bus, &c),
            Err(ExitError::InternalError)
        );
        assert_eq!(
            handle_exit(Exit::Other("Debug"), &bus, &c),
            Err(ExitError::Unexpected("Debug"))
        );
        assert_eq!(c.total(), 3);
    }
}
