//! hull-vmm: hull's own KVM microVM. Guest memory, vCPUs with Firecracker-style CPUID, Linux
//! boot through PVH (an ELF vmlinux with the Xen PVH note) or the 64-bit boot protocol (ELF
//! vmlinux or bzImage), ACPI tables, a 16550 console, an i8042 for reset, virtio-mmio
//! virtio-blk disks and a virtio-console whose extra port is the channel to hull-guest
//! (`agent`); the vCPU exits are handled by a free function over exit data (`exits`), tested
//! without a guest; the VMM's seccomp filter (`seccomp`). `Vm::new` + `Vm::run` is the whole API a caller
//! needs; the nested test bed (tests/nested/run.sh) boots Debian's kernel with it.

pub mod acpi;
pub mod agent;
pub mod boot;
pub mod cpuid;
pub mod devices;
pub mod exits;
pub mod gdt;
pub mod launch;
pub mod layout;
pub mod memory;
pub mod paging;
pub mod regs;
pub mod seccomp;
pub mod stdio;
pub mod vcpu;
pub mod vm;

pub use agent::{Agent, AgentEvent, AgentSender};
pub use boot::BootSource;
pub use devices::input::SerialInput;
pub use exits::{ExitCounters, StopReason};
pub use hull_vmproto as proto;
pub use vm::{host_kvm, Consoles, DiskConfig, HostKvm, RunReport, Vm, VmConfig, VmError};

#[cfg(test)]
mod test_util;
