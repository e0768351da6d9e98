//! One vCPU: its boot state (CPUID, MSRs, long-mode registers, FPU, LAPIC) and the run loop that
//! turns each KVM_RUN return into an `exits::Exit` for `handle_exit`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use kvm_bindings::{CpuId, Msrs};
use kvm_ioctls::{VcpuExit, VcpuFd, VmFd};

use crate::boot::Entry;
use crate::cpuid;
use crate::devices::Bus;
use crate::exits::{handle_exit, Exit, ExitAction, ExitCounters, ExitError, StopReason};
use crate::regs;

#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    #[error("cannot create vCPU {index}: {err}")]
    Create { index: u8, err: kvm_ioctls::Error },
    #[error("cannot set up vCPU {index} ({what}): {err}")]
    Setup {
        index: u8,
        what: &'static str,
        err: kvm_ioctls::Error,
    },
    #[error("vCPU {index}: KVM took {set} of the {want} boot MSRs")]
    Msrs { index: u8, set: usize, want: usize },
    #[error("vCPU {index}: KVM_RUN failed: {err}")]
    Run { index: u8, err: kvm_ioctls::Error },
    #[error("vCPU {index}: {err}")]
    Exit { index: u8, err: ExitError },
}

/// A configured vCPU, ready to run on its own thread.
#[derive(Debug)]
pub struct Vcpu {
    fd: VcpuFd,
    index: u8,
}

fn exit_data<'a>(exit: VcpuExit<'a>) -> Exit<'a> {
    match exit {
        VcpuExit::IoIn(port, data) => Exit::IoIn { port, data },
        VcpuExit::IoOut(port, data) => Exit::IoOut { port, data },
        VcpuExit::MmioRead(addr, data) => Exit::MmioRead { addr, data },
        VcpuExit::MmioWrite(addr, data) => Exit::MmioWrite { addr, data },
        VcpuExit::Hlt => Exit::Hlt,
        VcpuExit::Shutdown => Exit::Shutdown,
        VcpuExit::SystemEvent(kind, _) => Exit::SystemEvent(kind),
        VcpuExit::FailEntry(reason, cpu) => Exit::FailEntry { reason, cpu },
        VcpuExit::InternalError => Exit::InternalError,
        VcpuExit::Exception => Exit::Other("exception"),
        VcpuExit::Debug(_) => Exit::Other("debug"),
        VcpuExit::IrqWindowOpen => Exit::Other("irq window open"),
        VcpuExit::IoapicEoi(_) => Exit::Other("ioapic eoi"),
        VcpuExit::Unknown => Exit::Other("unknown"),
        _ => Exit::Other("unsupported"),
    }
}

impl Vcpu {
    /// Creates vCPU `index` of `count` with the boot state of `entry`'s protocol. Only the first
    /// one starts at `entry`; KVM holds the others until the guest sends them INIT/SIPI.
    pub fn new(
        vm: &VmFd,
        index: u8,
        count: u8,
        supported: &CpuId,
        entry: Entry,
    ) -> Result<Self, VcpuError> {
        let fd = vm
            .create_vcpu(u64::from(index))
            .map_err(|err| VcpuError::Create { index, err })?;
        let setup = |what| move |err| VcpuError::Setup { index, what, err };

        let mut cpuid = supported.clone();
        cpuid::normalize(cpuid.as_mut_slice(), index, count);
        fd.set_cpuid2(&cpuid).map_err(setup("CPUID"))?;

        let entries = regs::boot_msrs();
        let msrs = Msrs::from_entries(&entries).map_err(|_| VcpuError::Msrs {
            index,
            set: 0,
            want: entries.len(),
        })?;
        let set = fd.set_msrs(&msrs).map_err(setup("MSRs"))?;
        if set != entries.len() {
            return Err(VcpuError::Msrs {
                index,
                set,
                want: entries.len(),
            });
        }

        fd.set_regs(&regs::boot_regs(entry))
            .map_err(setup("registers"))?;
        let mut sregs = fd.get_sregs().map_err(setup("special registers"))?;
        regs::set_boot_mode(&mut sregs, entry);
        fd.set_sregs(&sregs).map_err(setup("special registers"))?;
        fd.set_fpu(&regs::boot_fpu()).map_err(setup("FPU"))?;
        let mut lapic = fd.get_lapic().map_err(setup("LAPIC"))?;
        regs::set_lint(&mut lapic);
        fd.set_lapic(&lapic).map_err(setup("LAPIC"))?;
        Ok(Self { fd, index })
    }

    pub fn index(&self) -> u8 {
        self.index
    }

    /// Runs the guest until an exit stops the VM (`Some`) or `stop` is raised and a signal
    /// kicks the vCPU out of KVM_RUN (`None`).
    pub fn run<B: Bus + ?Sized>(
        &mut self,
        bus: &Mutex<B>,
        counters: &ExitCounters,
        stop: &AtomicBool,
    ) -> Result<Option<StopReason>, VcpuError> {
        let index = self.index;
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            match self.fd.run() {
                Ok(exit) => match handle_exit(exit_data(exit), bus, counters) {
                    Ok(ExitAction::Continue) => {}
                    Ok(ExitAction::Stop(reason)) => return Ok(Some(reason)),
                    Err(err) => return Err(VcpuError::Exit { index, err }),
                },
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    counters.count_interrupted();
                }
                Err(err) => return Err(VcpuError::Run { index, err }),
            }
        }
    }
}
