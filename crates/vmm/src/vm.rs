//! A whole microVM: the KVM VM (in-kernel irqchip and PIT), guest memory, the loaded kernel,
//! ACPI tables, devices and vCPUs; `run` drives one thread per vCPU until the guest stops.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kvm_bindings::{
    kvm_pit_config, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Kvm, VmFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

use crate::acpi::VirtioMmio;
use crate::agent::{self, Agent};
use crate::boot::{self, BootError, BootSource, LoadedKernel};
use crate::devices::input::SerialInput;
use crate::devices::serial::{IrqTrigger, COM1_GSI};
use crate::devices::virtio::block::{Block, BlockError};
use crate::devices::virtio::console::{Console, Inbox, Port};
use crate::devices::virtio::input::PortInput;
use crate::devices::virtio::mmio::{MmioTransport, MMIO_WINDOW};
use crate::devices::virtio::VirtioDevice;
use crate::devices::{DeviceError, Devices};
use crate::exits::{ExitCounters, StopReason};
use crate::layout::{
    BOOT_GDT_START, BOOT_IDT_START, IOAPIC_PINS, KVM_TSS_ADDRESS, VIRTIO_GSI_START,
    VIRTIO_MMIO_START,
};
use crate::memory::{create_guest_memory, MemoryError};
use crate::vcpu::{Vcpu, VcpuError};
use crate::{acpi, cpuid, paging};

use hull_vmproto::PORT_NAME;

/// Where KVM lives; a module of this name means the software "pagetable-based" KVM.
const KVM_DEVICE: &str = "/dev/kvm";
const KVM_PVM_MODULE: &str = "/sys/module/kvm_pvm";

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("{KVM_DEVICE} is missing: this host offers no KVM (load kvm_intel/kvm_amd, or run in a VM with nested virtualization)")]
    NoKvm,
    #[error("cannot open {KVM_DEVICE}: {0}")]
    OpenKvm(kvm_ioctls::Error),
    #[error("cannot {what}: {err}")]
    Kvm {
        what: &'static str,
        err: kvm_ioctls::Error,
    },
    #[error("{0} vCPUs requested: between 1 and 254")]
    Vcpus(usize),
    #[error("KVM's CPUID has no KVM signature leaf: the guest would not find kvm-clock")]
    NoKvmLeaves,
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error(transparent)]
    Acpi(#[from] acpi::AcpiError),
    #[error(transparent)]
    Paging(#[from] paging::PagingError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    #[error("cannot write the boot GDT: {0}")]
    Gdt(vm_memory::GuestMemoryError),
    #[error("cannot create a virtio device: {0}")]
    Virtio(String),
    #[error(transparent)]
    Disk(#[from] BlockError),
    #[error("cannot install the vCPU kick signal handler: {0}")]
    Signal(vmm_sys_util::errno::Error),
    #[error("cannot start a vCPU thread: {0}")]
    Thread(std::io::Error),
    #[error("a vCPU thread panicked")]
    Panicked,
    #[error("this VM has already run")]
    AlreadyRan,
}

/// Which KVM this host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKvm {
    Missing,
    /// kvm-pvm: software virtualization that runs purpose-built guests but spins on a stock
    /// kernel.
    Pvm,
    Hardware,
}

pub fn host_kvm() -> HostKvm {
    if !Path::new(KVM_DEVICE).exists() {
        HostKvm::Missing
    } else if Path::new(KVM_PVM_MODULE).exists() {
        HostKvm::Pvm
    } else {
        HostKvm::Hardware
    }
}

/// What to run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VmConfig {
    pub mem_size: u64,
    pub vcpus: usize,
    pub boot: BootSource,
    /// virtio-blk disks, /dev/vda first in the order the guest probes them.
    pub disks: Vec<DiskConfig>,
    /// Give the guest the agent channel (a virtio-console port named `hull_vmproto::PORT_NAME`).
    pub agent: bool,
}

/// A disk image the guest sees as a virtio-blk device.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DiskConfig {
    pub path: std::path::PathBuf,
    pub read_only: bool,
    /// The serial the guest reads (VIRTIO_BLK_T_GET_ID, /sys/block/vdX/serial), 20 bytes at most.
    pub id: String,
}

/// Adds virtio-mmio devices one after another: a register window, a GSI and an irqfd each.
struct VirtioSetup<'a> {
    fd: &'a VmFd,
    mem: &'a GuestMemoryMmap,
    devices: &'a mut Devices,
    irqs: &'a mut Vec<EventFd>,
    announced: Vec<VirtioMmio>,
}

impl VirtioSetup<'_> {
    /// Returns the device's index in `Devices::virtio`.
    fn add(&mut self, device: Box<dyn VirtioDevice>) -> Result<usize, VmError> {
        let index = self.devices.virtio.len();
        let n = u32::try_from(index).map_err(|_| VmError::Virtio("too many devices".into()))?;
        let (base, gsi) = (
            VIRTIO_MMIO_START + u64::from(n) * MMIO_WINDOW,
            VIRTIO_GSI_START + n,
        );
        if gsi >= IOAPIC_PINS {
            return Err(VmError::Virtio(format!(
                "{} virtio devices do not fit the IOAPIC's pins",
                index + 1
            )));
        }
        let event = |e| VmError::Device(DeviceError::EventFd(e));
        let irq = EventFd::new(libc::EFD_NONBLOCK).map_err(event)?;
        let trigger = irq.try_clone().map_err(event)?;
        self.fd
            .register_irqfd(&irq, gsi)
            .map_err(kvm_err("connect a virtio interrupt"))?;
        let transport = MmioTransport::new(device, self.mem.clone(), IrqTrigger(trigger))
            .map_err(|e| VmError::Virtio(e.to_string()))?;
        self.devices.virtio.push((base, transport));
        self.announced.push(VirtioMmio { base, gsi });
        self.irqs.push(irq);
        Ok(index)
    }
}

/// Where the guest's consoles go.
pub struct Consoles {
    /// COM1 (ttyS0).
    pub serial: Box<dyn Write + Send>,
    /// A virtio-console (hvc0) on virtio-mmio, when wanted (with the agent channel, hvc0 is
    /// there anyway, and goes nowhere without this).
    pub virtio: Option<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Consoles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consoles")
            .field("virtio", &self.virtio.is_some())
            .finish_non_exhaustive()
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct RunReport {
    pub reason: StopReason,
    /// From the first KVM_RUN to the stop.
    pub run_time: Duration,
    pub counters: Arc<ExitCounters>,
    /// Why the serial console stopped reaching its output, if it did.
    pub console_error: Option<String>,
}

/// A created, not yet running, microVM.
#[derive(Debug)]
pub struct Vm {
    // Field order is drop order: vCPUs and devices before the VM fd, memory last.
    vcpus: Vec<Vcpu>,
    devices: Arc<Mutex<Devices>>,
    agent: Option<Agent>,
    counters: Arc<ExitCounters>,
    _irqs: Vec<EventFd>,
    fd: VmFd,
    _kvm: Kvm,
    mem: GuestMemoryMmap,
    kernel: LoadedKernel,
    /// Time spent creating the VM and loading the kernel.
    pub setup_time: Duration,
}

fn kvm_err(what: &'static str) -> impl Fn(kvm_ioctls::Error) -> VmError {
    move |err| VmError::Kvm { what, err }
}

fn register_memory(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<(), VmError> {
    for (slot, region) in (0u32..).zip(mem.iter()) {
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(|_| VmError::Kvm {
                what: "find guest memory",
                err: kvm_ioctls::Error::new(libc::EFAULT),
            })?;
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the mapping is owned by `Vm::mem`, which outlives the VM fd (declared after it,
        // so dropped after it), and the region is not registered elsewhere.
        unsafe { vm.set_user_memory_region(region) }.map_err(kvm_err("register guest memory"))?;
    }
    Ok(())
}

fn write_gdt(mem: &GuestMemoryMmap, gdt: [u64; 4]) -> Result<(), VmError> {
    for (i, entry) in (0u64..).zip(gdt) {
        mem.write_obj(entry, GuestAddress(BOOT_GDT_START + 8 * i))
            .map_err(VmError::Gdt)?;
    }
    mem.write_obj(0u64, GuestAddress(BOOT_IDT_START))
        .map_err(VmError::Gdt)
}

impl Vm {
    /// Creates the VM and loads the guest; the console goes to `console`.
    pub fn new(cfg: &VmConfig, consoles: Consoles) -> Result<Self, VmError> {
        let start = Instant::now();
        let count = u8::try_from(cfg.vcpus)
            .ok()
            .filter(|n| (1..255).contains(n))
            .ok_or(VmError::Vcpus(cfg.vcpus))?;
        if host_kvm() == HostKvm::Missing {
            return Err(VmError::NoKvm);
        }
        let kvm = Kvm::new().map_err(VmError::OpenKvm)?;
        let fd = kvm.create_vm().map_err(kvm_err("create the VM"))?;
        let tss = usize::try_from(KVM_TSS_ADDRESS).unwrap_or(usize::MAX);
        fd.set_tss_address(tss)
            .map_err(kvm_err("set the TSS address"))?;
        fd.create_irq_chip()
            .map_err(kvm_err("create the in-kernel irqchip"))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        fd.create_pit2(pit)
            .map_err(kvm_err("create the in-kernel PIT"))?;

        let mem = create_guest_memory(cfg.mem_size)?;
        register_memory(&fd, &mem)?;
        let kernel = boot::load(&mem, &cfg.boot)?;
        write_gdt(&mem, crate::regs::boot_gdt(kernel.entry))?;
        paging::write_page_tables(&mem)?;

        let (mut devices, serial_irq) = Devices::new(consoles.serial)?;
        fd.register_irqfd(&serial_irq, COM1_GSI)
            .map_err(kvm_err("connect the serial interrupt"))?;
        let mut irqs = vec![serial_irq];
        let mut virtio = VirtioSetup {
            fd: &fd,
            mem: &mem,
            devices: &mut devices,
            irqs: &mut irqs,
            announced: Vec::new(),
        };
        for disk in &cfg.disks {
            let block = Block::open(&disk.path, disk.read_only, &disk.id)?;
            virtio.add(Box::new(block))?;
        }
        let mut agent_port = None;
        let mut agent_channel = None;
        if consoles.virtio.is_some() || cfg.agent {
            let console_out = consoles.virtio.unwrap_or_else(|| Box::new(std::io::sink()));
            let mut ports = vec![Port::new(None, console_out, None)];
            if cfg.agent {
                let (sink, events) = agent::FrameSink::new();
                let inbox = Inbox::default();
                ports.push(Port::new(
                    Some(PORT_NAME.into()),
                    Box::new(sink),
                    Some(inbox.clone()),
                ));
                agent_channel = Some((inbox, events));
            }
            let index = virtio.add(Box::new(Console::with_ports(ports)))?;
            agent_port = agent_channel.map(|(inbox, events)| (index, inbox, events));
        }
        let announced = virtio.announced;
        debug_assert!(announced
            .iter()
            .all(|d| d.base + MMIO_WINDOW <= crate::layout::IOAPIC_ADDR.into()));
        acpi::write_tables(&mem, cfg.vcpus, &announced)?;

        let supported = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(kvm_err("get the supported CPUID"))?;
        if !cpuid::has_kvm_leaves(supported.as_slice()) {
            return Err(VmError::NoKvmLeaves);
        }
        let vcpus = (0..count)
            .map(|i| Vcpu::new(&fd, i, count, &supported, kernel.entry))
            .collect::<Result<Vec<_>, _>>()?;
        let devices = Arc::new(Mutex::new(devices));
        let agent = agent_port.map(|(index, inbox, events)| {
            let input = PortInput {
                devices: Arc::clone(&devices),
                index,
                inbox,
            };
            Agent::new(input, events)
        });
        Ok(Self {
            vcpus,
            devices,
            agent,
            counters: Arc::new(ExitCounters::default()),
            _irqs: irqs,
            fd,
            _kvm: kvm,
            mem,
            kernel,
            setup_time: start.elapsed(),
        })
    }

    /// The host end of the agent channel (once; `None` without `VmConfig::agent`).
    pub fn take_agent(&mut self) -> Option<Agent> {
        self.agent.take()
    }

    /// A handle that types into the guest's serial console (ttyS0).
    pub fn serial_input(&self) -> SerialInput {
        SerialInput(Arc::clone(&self.devices))
    }

    pub fn kernel(&self) -> &LoadedKernel {
        &self.kernel
    }

    pub fn guest_memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Runs every vCPU on its own thread until one of them stops the VM, then kicks the others
    /// out of KVM_RUN and joins them.
    pub fn run(&mut self) -> Result<RunReport, VmError> {
        if self.vcpus.is_empty() {
            return Err(VmError::AlreadyRan);
        }
        extern "C" fn kicked(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}
        let kick = SIGRTMIN();
        register_signal_handler(kick, kicked).map_err(VmError::Signal)?;

        let start = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::new();
        let mut spawn_error = None;
        for mut vcpu in std::mem::take(&mut self.vcpus) {
            let (bus, counters, stop, tx) = (
                Arc::clone(&self.devices),
                Arc::clone(&self.counters),
                Arc::clone(&stop),
                tx.clone(),
            );
            let spawned = thread::Builder::new()
                .name(format!("hull-vcpu{}", vcpu.index()))
                .spawn(move || {
                    let result = vcpu.run(&*bus, &counters, &stop);
                    // The receiver only goes away once every thread is joined.
                    let _ = tx.send(result);
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    spawn_error = Some(VmError::Thread(e));
                    break;
                }
            }
        }
        drop(tx);
        let first = match spawn_error {
            Some(e) => Err(e),
            None => rx.recv().map_err(|_| VmError::Panicked),
        };
        let run_time = start.elapsed();
        stop.store(true, Ordering::SeqCst);
        // A kick can land just before a thread enters KVM_RUN; kick until every thread is out.
        while threads.iter().any(|t| !t.is_finished()) {
            for t in threads.iter().filter(|t| !t.is_finished()) {
                let _ = t.kill(kick);
            }
            thread::sleep(Duration::from_millis(2));
        }
        let mut panicked = false;
        for t in threads {
            panicked |= t.join().is_err();
        }
        let console_error = {
            let mut devices = self
                .devices
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let flushed = devices.flush_console().map_err(|e| e.to_string());
            devices.console_error.clone().or(flushed.err())
        };
        let reason = match first? {
            Ok(Some(reason)) => reason,
            Ok(None) => return Err(VmError::Panicked),
            Err(e) => return Err(e.into()),
        };
        if panicked {
            return Err(VmError::Panicked);
        }
        Ok(RunReport {
            reason,
            run_time,
            counters: Arc::clone(&self.counters),
            console_error,
        })
    }

    /// The VM fd, for callers that add devices of their own.
    pub fn fd(&self) -> &VmFd {
        &self.fd
    }
}
