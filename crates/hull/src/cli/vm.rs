//! `hull vm`: the bare microVM (hull-vmm) without images: boot a kernel, show its console. By
//! default the VMM runs jailed (hull_engine::vm_jail): this process makes the jail, and the
//! `hull` binary re-executed in it (`--in-jail`) is the VMM, which installs its seccomp filter
//! once the VM is built.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use hull_engine::vm_jail::{self, Jail, JailFile};
use hull_vmm::boot::{BootProtocol, Entry};
use hull_vmm::{host_kvm, BootSource, Consoles, HostKvm, StopReason, Vm, VmConfig};

/// The command line a stock kernel needs on hull-vmm: the console on COM1, reset (the only way
/// a microVM's guest ends) through the i8042, no PCI bus to probe, no keyboard or mouse.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 pci=off i8042.noaux i8042.nokbd";
const NESTED_TEST_BED: &str = "crates/vmm/tests/nested/run.sh";

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Boot a Linux kernel in a microVM; the guest console goes to stdout
    Run {
        /// Kernel: an ELF vmlinux or a bzImage
        #[arg(long)]
        kernel: PathBuf,
        /// Initial ramdisk (cpio, optionally compressed)
        #[arg(long)]
        initrd: Option<PathBuf>,
        /// Kernel command line
        #[arg(long, default_value = DEFAULT_CMDLINE)]
        cmdline: String,
        /// Guest memory: a number with a K, M or G suffix (MiB without one)
        #[arg(long, default_value = "256M", value_parser = parse_size)]
        mem: u64,
        /// Number of vCPUs
        #[arg(long, default_value_t = 2)]
        vcpus: usize,
        /// Kernel entry: PVH when an ELF vmlinux has the Xen PVH note (auto), or forced
        #[arg(long, value_enum, default_value = "auto")]
        boot_protocol: Protocol,
        /// Print the exit counters and timings to stderr when the VM stops
        #[arg(long)]
        stats: bool,
        /// Run the VMM in this process, without its jail (namespaces, cgroup, seccomp): for
        /// debugging
        #[arg(long)]
        no_jail: bool,
        /// Run even on kvm-pvm (which boots purpose-built guests, not a stock kernel)
        #[arg(long, hide = true)]
        allow_pvm: bool,
        /// This process is the VMM inside its jail (set by the jailing `hull vm run`)
        #[arg(long, hide = true, conflicts_with = "no_jail")]
        in_jail: bool,
    },
}

/// Where the jailed VMM finds the kernel and initrd.
const JAILED_KERNEL: &str = "/vm/kernel";
const JAILED_INITRD: &str = "/vm/initrd";

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
#[value(rename_all = "lower")]
pub enum Protocol {
    Auto,
    Pvh,
    Linux64,
}

impl From<Protocol> for BootProtocol {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Auto => BootProtocol::Auto,
            Protocol::Pvh => BootProtocol::Pvh,
            Protocol::Linux64 => BootProtocol::Linux64,
        }
    }
}

/// "256M", "1G", "65536K", or "256" (MiB).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, shift) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 30),
        _ => (s, 20),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (like 256M or 1G)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

pub fn run(root: &Path, cmd: VmCommand) -> anyhow::Result<i32> {
    let VmCommand::Run {
        kernel,
        initrd,
        cmdline,
        mem,
        vcpus,
        boot_protocol,
        stats,
        no_jail,
        allow_pvm,
        in_jail,
    } = cmd;
    match host_kvm() {
        HostKvm::Missing => {
            bail!("/dev/kvm is missing: this host has no KVM, so hull cannot run a microVM")
        }
        HostKvm::Pvm if !allow_pvm => bail!(
            "this host's /dev/kvm is kvm-pvm, which does not boot a stock Linux kernel (it spins \
             without exits); run `hull vm run` in the nested test bed instead: {NESTED_TEST_BED}"
        ),
        _ => {}
    }
    let cfg = VmConfig {
        mem_size: mem,
        vcpus,
        boot: BootSource {
            kernel,
            initrd,
            cmdline,
            protocol: boot_protocol.into(),
        },
    };
    if in_jail {
        jailed_vmm_setup()?;
    }
    if no_jail || in_jail {
        run_vmm(&cfg, stats, in_jail)?;
        return Ok(0);
    }
    run_jailed(root, &cfg, boot_protocol, stats, allow_pvm)
}

/// Makes the jail and runs this binary in it as the VMM; its exit status.
fn run_jailed(
    root: &Path,
    cfg: &VmConfig,
    protocol: Protocol,
    stats: bool,
    allow_pvm: bool,
) -> anyhow::Result<i32> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the microVM's jail (namespaces, a cgroup) needs root: run as root, or pass --no-jail"
        );
    }
    let boot = &cfg.boot;
    let mut files = Vec::new();
    for (host, inside) in [
        (Some(&boot.kernel), JAILED_KERNEL),
        (boot.initrd.as_ref(), JAILED_INITRD),
    ] {
        let Some(host) = host else { continue };
        // A missing file is the user's error, said before any jail exists.
        std::fs::File::open(host).with_context(|| format!("cannot open {}", host.display()))?;
        files.push(JailFile {
            host: host.clone(),
            inside: inside.into(),
            writable: false,
        });
    }
    let mut args: Vec<String> = ["vm", "run", "--in-jail", "--kernel", JAILED_KERNEL]
        .map(String::from)
        .into();
    if boot.initrd.is_some() {
        args.extend(["--initrd".into(), JAILED_INITRD.into()]);
    }
    let protocol = clap::ValueEnum::to_possible_value(&protocol)
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    args.extend([
        "--cmdline".into(),
        boot.cmdline.clone(),
        "--mem".into(),
        format!("{}K", cfg.mem_size >> 10),
        "--vcpus".into(),
        cfg.vcpus.to_string(),
        "--boot-protocol".into(),
        protocol,
    ]);
    args.extend(stats.then(|| "--stats".to_string()));
    args.extend(allow_pvm.then(|| "--allow-pvm".to_string()));
    let jail = Jail {
        exe: std::env::current_exe().context("cannot find the hull binary")?,
        args,
        files,
        mem_size: cfg.mem_size,
        vcpus: cfg.vcpus,
    };
    let code = vm_jail::run(root, &jail, &mut |w| eprintln!("hull vm: {w}"))
        .context("cannot run the microVM's jail")?;
    Ok(code)
}

/// The first steps of the VMM in its jail: it dies with the `hull vm run` that made the jail
/// (whose kill -9 would otherwise leave it running), and, being its pid namespace's init, which
/// ignores signals it has no handler for, ends on SIGINT, SIGTERM and SIGHUP as a plain process
/// would.
fn jailed_vmm_setup() -> anyhow::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    extern "C" fn end(sig: libc::c_int) {
        // SAFETY: _exit is async-signal-safe and ends the process at once.
        unsafe { libc::_exit(128 + sig) }
    }
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .context("cannot set the parent-death signal")?;
    let action = SigAction::new(SigHandler::Handler(end), SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only calls _exit.
        unsafe { sigaction(sig, &action) }.context("cannot install a signal handler")?;
    }
    Ok(())
}

/// Builds and runs the VM in this process; with `seccomp`, under the VMM's filter from the
/// moment the VM is built.
fn run_vmm(cfg: &VmConfig, stats: bool, seccomp: bool) -> anyhow::Result<()> {
    // The serial console and the virtio console (hvc0, once the guest loads virtio_mmio and
    // virtio_console) both print here.
    let consoles = Consoles {
        serial: Box::new(std::io::stdout()),
        virtio: Some(Box::new(std::io::stdout())),
    };
    let mut vm = Vm::new(cfg, consoles).context("cannot create the microVM")?;
    if seccomp {
        hull_vmm::seccomp::install()?;
    }
    // stdin types into ttyS0. The thread ends at end of input; at the VM's end it is left
    // blocked in read(2), and the process exit ends it.
    let input = vm.serial_input();
    let _ = std::thread::Builder::new()
        .name("hull-vm-stdin".into())
        .spawn(move || {
            let mut buf = [0u8; 256];
            let mut stdin = std::io::stdin().lock();
            while let Ok(n @ 1..) = std::io::Read::read(&mut stdin, &mut buf) {
                if input.send(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    let setup = vm.setup_time;
    let entry = match vm.kernel().entry {
        Entry::Pvh(_) => "PVH",
        Entry::Linux64(_) => "64-bit boot protocol",
    };
    let report = vm.run().context("the microVM failed")?;
    if stats {
        let counts: Vec<String> = report
            .counters
            .snapshot()
            .into_iter()
            .map(|(name, n)| format!("{name}={n}"))
            .collect();
        eprintln!(
            "hull vm: stopped by {}; entry {entry}; setup {:.1} ms, run {:.1} ms; {} exits: {}",
            report.reason,
            setup.as_secs_f64() * 1e3,
            report.run_time.as_secs_f64() * 1e3,
            report.counters.total(),
            counts.join(" ")
        );
    }
    if let Some(e) = &report.console_error {
        eprintln!("hull vm: the guest console could not be written: {e}");
    }
    if report.reason == StopReason::Crash {
        bail!("the guest crashed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("65536k"), Ok(64 << 20));
        assert_eq!(parse_size("128"), Ok(128 << 20));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }
}
