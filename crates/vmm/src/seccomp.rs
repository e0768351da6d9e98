//! The VMM's seccomp filter, installed (as Firecracker does) once the VM is built and before the
//! vCPU and device threads run: it allows what the run loop needs and kills the process on any
//! other system call. Nothing is opened, mapped from a file, executed or connected after setup,
//! so open, execve, socket, connect, bind, fork (clone without CLONE_THREAD), ptrace, mount and
//! the like are out; ioctl is allowed only for the KVM requests of a running VM and the few a
//! terminal needs. The list follows Firecracker's (resources/seccomp/x86_64-unknown-linux-musl.json)
//! for what a glibc program does on the same path: thread start and exit, memory, signals,
//! futexes, reads and writes of the console, the disk and eventfds.

use kvm_bindings::{kvm_ioeventfd, kvm_irq_level, kvm_irq_routing, kvm_irqfd, kvm_msi};
use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use vmm_sys_util::{ioctl_io_nr, ioctl_iow_nr};

const KVMIO: u32 = 0xAE;
ioctl_io_nr!(KVM_RUN, KVMIO, 0x80);
ioctl_iow_nr!(KVM_IRQ_LINE, KVMIO, 0x61, kvm_irq_level);
ioctl_iow_nr!(KVM_SET_GSI_ROUTING, KVMIO, 0x6a, kvm_irq_routing);
ioctl_iow_nr!(KVM_IRQFD, KVMIO, 0x76, kvm_irqfd);
ioctl_iow_nr!(KVM_IOEVENTFD, KVMIO, 0x79, kvm_ioeventfd);
ioctl_iow_nr!(KVM_SIGNAL_MSI, KVMIO, 0xa5, kvm_msi);

/// System calls allowed with any arguments.
pub const ALLOWED: &[&str] = &[
    // Console, disk images, eventfds, the host side of device channels.
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "lseek",
    "fsync",
    "fdatasync",
    "fstat",
    "newfstatat",
    "statx",
    "close",
    "fcntl",
    "dup",
    "poll",
    "ppoll",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "eventfd2",
    "pipe2",
    "timerfd_create",
    "timerfd_settime",
    "timerfd_gettime",
    "accept4",
    "recvfrom",
    "recvmsg",
    "sendto",
    "sendmsg",
    "shutdown",
    // Memory.
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    // Threads: their start (clone is below), names, exit, and waiting for each other.
    "futex",
    "set_robust_list",
    "rseq",
    "sigaltstack",
    "prctl",
    "sched_yield",
    "sched_getaffinity",
    "getrandom",
    "exit",
    "exit_group",
    "restart_syscall",
    // Signals: the vCPU kick (a real-time signal to a thread) and its handler.
    "rt_sigaction",
    "rt_sigprocmask",
    // `hull vm run -- CMD`: the thread that forwards hull's signals to the command waits in it.
    "rt_sigtimedwait",
    "rt_sigreturn",
    "tgkill",
    "tkill",
    "getpid",
    "gettid",
    // Time (vDSO fallbacks) and the kick loop's sleeps.
    "clock_gettime",
    "clock_nanosleep",
    "nanosleep",
    "gettimeofday",
];

const CLONE_THREAD: u64 = 0x0001_0000;

/// The ioctl requests a running VM makes: KVM_RUN and the interrupt and eventfd wiring devices
/// may do on activation; and what a terminal on stdin asks (is it one, its size, non-blocking,
/// raw mode for `hull vm run -t` and its restoring).
pub fn ioctl_requests() -> Vec<u64> {
    vec![
        KVM_RUN(),
        KVM_IRQ_LINE(),
        KVM_SET_GSI_ROUTING(),
        KVM_IRQFD(),
        KVM_IOEVENTFD(),
        KVM_SIGNAL_MSI(),
        libc::TCGETS,
        libc::TCSETS,
        libc::TIOCGWINSZ,
        libc::FIONBIO,
    ]
}

#[derive(Debug, thiserror::Error)]
#[error("cannot install the VMM's seccomp filter ({what}): {err}")]
pub struct SeccompError {
    what: String,
    err: libseccomp::error::SeccompError,
}

fn err(what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    let what = what.into();
    move |err| SeccompError { what, err }
}

/// Installs the filter on the calling thread; threads it starts afterwards inherit it (threads
/// that exist already do too: the filter is synchronised to all of them).
pub fn install() -> Result<(), SeccompError> {
    let mut f = ScmpFilterContext::new(ScmpAction::KillProcess).map_err(err("new filter"))?;
    f.set_ctl_tsync(true).map_err(err("thread sync"))?;
    for name in ALLOWED {
        // A name this libseccomp does not know on this architecture is no hole: skip it.
        let Ok(sys) = ScmpSyscall::from_name(name) else {
            continue;
        };
        f.add_rule(ScmpAction::Allow, sys).map_err(err(*name))?;
    }
    let ioctl = ScmpSyscall::from_name("ioctl").map_err(err("ioctl"))?;
    for request in ioctl_requests() {
        // The request is an int in the kernel: compare its low 32 bits only.
        let cmp = ScmpArgCompare::new(1, ScmpCompareOp::MaskedEqual(0xffff_ffff), request);
        f.add_rule_conditional(ScmpAction::Allow, ioctl, &[cmp])
            .map_err(err(format!("ioctl {request:#x}")))?;
    }
    // Threads only: a clone without CLONE_THREAD would be a fork. glibc tries clone3 first, whose
    // flags a filter cannot see; ENOSYS makes it fall back to clone.
    let clone = ScmpSyscall::from_name("clone").map_err(err("clone"))?;
    let thread = ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(CLONE_THREAD), CLONE_THREAD);
    f.add_rule_conditional(ScmpAction::Allow, clone, &[thread])
        .map_err(err("clone"))?;
    if let Ok(clone3) = ScmpSyscall::from_name("clone3") {
        f.add_rule(ScmpAction::Errno(libc::ENOSYS), clone3)
            .map_err(err("clone3"))?;
    }
    f.load().map_err(err("load"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers Linux's include/uapi/linux/kvm.h gives.
    #[test]
    fn kvm_ioctl_numbers() {
        assert_eq!(KVM_RUN(), 0xae80);
        assert_eq!(KVM_IRQFD(), 0x4020_ae76);
        assert_eq!(KVM_IOEVENTFD(), 0x4040_ae79);
        assert_eq!(KVM_IRQ_LINE(), 0x4008_ae61);
        assert_eq!(KVM_SIGNAL_MSI(), 0x4020_aea5);
    }

    #[test]
    fn nothing_that_opens_or_executes() {
        for bad in [
            "open", "openat", "execve", "execveat", "socket", "connect", "bind", "mount", "ptrace",
            "fork", "vfork", "kill", "setns", "unshare",
        ] {
            assert!(!ALLOWED.contains(&bad), "{bad} is allowed");
        }
    }
}
