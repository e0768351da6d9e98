//! `hull vm`: the bare microVM (hull-vmm) without images: boot a kernel and show its console, or
//! (with a command after `--`) run that command through hull-guest (`vm_agent`). By default the
//! VMM runs jailed (`vm_jailed`): this process makes the jail, and the `hull` binary re-executed
//! in it (`--in-jail`) is the VMM, which installs its seccomp filter once the VM is built.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use hull_vmm::boot::{BootProtocol, Entry};
use hull_vmm::proto::{RootSpec, RunSpec};
use hull_vmm::{
    host_kvm, BootSource, Consoles, DiskConfig, HostKvm, RunReport, StopReason, Vm, VmConfig,
};

use super::vm_agent::{self, ConsoleTail};
use super::vm_api;
use super::vm_exec::{self, ProcessFlags};
use super::vm_jailed;

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
        /// Kernel command line [default: the console on ttyS0, reset through the i8042, no PCI;
        /// `quiet` too when running a command]
        #[arg(long)]
        cmdline: Option<String>,
        /// A disk image as a virtio-blk device (/dev/vda first), `:ro` for read-only; with a
        /// command, the first disk (ext4 or erofs) is its root, under a tmpfs overlay if read-only
        #[arg(long = "disk", value_name = "IMG[:ro]")]
        disks: Vec<String>,
        #[command(flatten)]
        process: ProcessFlags,
        /// The guest's hostname
        #[arg(long, default_value = "hull-vm")]
        hostname: String,
        /// Guest memory: a number with a K, M or G suffix (MiB without one)
        #[arg(long, default_value = "256M", value_parser = parse_size)]
        mem: u64,
        /// Number of vCPUs
        #[arg(long, default_value_t = 2)]
        vcpus: usize,
        /// Print the exit counters and timings to stderr when the VM stops
        #[arg(long)]
        stats: bool,
        /// Run even on kvm-pvm (which boots purpose-built guests, not a stock kernel)
        #[arg(long, hide = true)]
        allow_pvm: bool,
        /// Kernel entry: PVH when an ELF vmlinux has the Xen PVH note (auto), or forced
        #[arg(long, value_enum, default_value = "auto")]
        boot_protocol: Protocol,
        /// Run the VMM in this process, without its jail (namespaces, cgroup, seccomp): for
        /// debugging
        #[arg(long)]
        no_jail: bool,
        /// This process is the VMM inside its jail (set by the jailing `hull vm run`)
        #[arg(long, hide = true, conflicts_with = "no_jail")]
        in_jail: bool,
        /// Name the VM, so `hull vm exec NAME` can run more processes in it (needs a command)
        #[arg(long)]
        name: Option<String>,
        /// Where the VMM makes its API socket (set by the jailing `hull vm run`)
        #[arg(long, hide = true, requires = "in_jail")]
        api_dir: Option<PathBuf>,
        /// The command to run in the VM (needs an --initrd with hull-guest as /init:
        /// scripts/build-guest-initramfs.sh builds one)
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Run another command in a microVM started with `hull vm run --name`
    Exec {
        #[command(flatten)]
        process: ProcessFlags,
        /// The VM: its --name, or the path of its API socket
        vm: String,
        /// The command and its arguments
        #[arg(trailing_var_arg = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
}

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

/// `IMG` or `IMG:ro`; the guest finds disk i by its serial `hull-disk<i>`.
fn parse_disks(disks: &[String]) -> anyhow::Result<Vec<DiskConfig>> {
    disks
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let (path, read_only) = match d.rsplit_once(':') {
                Some((p, "ro")) => (p, true),
                Some((p, "rw")) => (p, false),
                Some((_, opt)) => bail!("--disk {d}: unknown option {opt:?} (ro or rw)"),
                None => (d.as_str(), false),
            };
            if path.is_empty() {
                bail!("--disk {d}: no image path");
            }
            Ok(DiskConfig {
                path: path.into(),
                read_only,
                id: format!("hull-disk{i}"),
            })
        })
        .collect()
}

/// What the guest is told to run, from the flags: rooted on the first disk, under an overlay
/// when it is read-only.
fn run_spec(
    command: Vec<String>,
    disks: &[DiskConfig],
    process: &ProcessFlags,
    hostname: String,
) -> anyhow::Result<RunSpec> {
    Ok(RunSpec {
        hostname,
        root: disks.first().map(|d| RootSpec {
            serial: d.id.clone(),
            overlay: d.read_only,
            read_only: d.read_only,
        }),
        process: process.spec(command)?,
    })
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

fn print_stats(report: &RunReport, setup: std::time::Duration, entry: &str) {
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

/// Runs `hull vm run`; returns hull's exit code: the command's with a command, and docker's
/// 125 when hull could not run the VM or it ended without the command's exit.
pub fn run(root: &Path, cmd: VmCommand) -> anyhow::Result<i32> {
    let result = match cmd {
        VmCommand::Exec {
            process,
            vm,
            command,
        } => vm_exec::exec(root, &vm, &process, command),
        run => run_vm(root, run),
    };
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("hull: {e:#}");
            Ok(EXIT_VM_FAILED)
        }
    }
}

/// docker's status for a failure of the engine rather than of the command.
const EXIT_VM_FAILED: i32 = 125;

fn run_vm(root: &Path, cmd: VmCommand) -> anyhow::Result<i32> {
    let VmCommand::Run {
        kernel,
        initrd,
        cmdline,
        mem,
        vcpus,
        disks,
        process,
        hostname,
        stats,
        allow_pvm,
        boot_protocol,
        no_jail,
        in_jail,
        name,
        api_dir,
        command,
    } = cmd
    else {
        bail!("not a run command");
    };
    let agent = !command.is_empty();
    if !agent && (process.given() || name.is_some()) {
        bail!("-i, -t, --env, --workdir, --user and --name are for a command: give one after `--`");
    }
    if let Some(n) = &name {
        vm_api::check_name(n)?;
    }
    if agent && initrd.is_none() {
        bail!(
            "a command needs --initrd with hull-guest as its /init \
             (scripts/build-guest-initramfs.sh builds it)"
        );
    }
    let disks = parse_disks(&disks)?;
    let spec = agent
        .then(|| run_spec(command.clone(), &disks, &process, hostname.clone()))
        .transpose()?;
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
    let cmdline = cmdline.unwrap_or_else(|| {
        if agent {
            format!("{DEFAULT_CMDLINE} quiet")
        } else {
            DEFAULT_CMDLINE.into()
        }
    });
    let cfg = VmConfig {
        mem_size: mem,
        vcpus,
        boot: BootSource {
            kernel,
            initrd,
            cmdline,
            protocol: boot_protocol.into(),
        },
        disks,
        agent,
    };
    // The API directory is this process's to make and remove; in the jail, the VMM's to use.
    let owned_api = match (&name, in_jail) {
        (Some(n), false) => Some(vm_api::claim(root, n)?),
        _ => None,
    };
    let result = run_vmm(VmmRun {
        root,
        cfg: &cfg,
        spec,
        process: &process,
        hostname: &hostname,
        command: &command,
        stats,
        allow_pvm,
        boot_protocol,
        no_jail,
        in_jail,
        api_dir: api_dir.or(owned_api.clone()),
    });
    if let Some(dir) = owned_api {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

/// One `hull vm run`, its flags parsed.
struct VmmRun<'a> {
    root: &'a Path,
    cfg: &'a VmConfig,
    spec: Option<RunSpec>,
    process: &'a ProcessFlags,
    hostname: &'a str,
    command: &'a [String],
    stats: bool,
    allow_pvm: bool,
    boot_protocol: Protocol,
    no_jail: bool,
    in_jail: bool,
    api_dir: Option<PathBuf>,
}

fn run_vmm(r: VmmRun<'_>) -> anyhow::Result<i32> {
    let (cfg, agent, stats) = (r.cfg, r.spec.is_some(), r.stats);
    if !r.no_jail && !r.in_jail {
        let passed = vm_jailed::Passed {
            protocol: r.boot_protocol,
            stats,
            allow_pvm: r.allow_pvm,
            process: r.process,
            hostname: r.hostname,
            api_dir: r.api_dir.as_deref(),
            command: r.command,
        };
        return vm_jailed::run(r.root, cfg, &passed);
    }
    if r.in_jail {
        vm_jailed::vmm_setup(agent)?;
    }
    // Bound before the seccomp filter, which allows accept4 but not socket or bind.
    let api = r
        .api_dir
        .map(|dir| {
            let path = dir.join(vm_api::SOCKET);
            std::os::unix::net::UnixListener::bind(&path)
                .with_context(|| format!("cannot make the API socket {}", path.display()))
        })
        .transpose()?;
    let console = ConsoleTail::default();
    // Without a command, the serial console and the virtio console (hvc0) both print here;
    // with one, stdout is the command's and the console is kept for a failure report.
    let consoles = match agent {
        false => Consoles {
            serial: Box::new(std::io::stdout()),
            virtio: Some(Box::new(std::io::stdout())),
        },
        true => Consoles {
            serial: Box::new(console.clone()),
            virtio: Some(Box::new(console.clone())),
        },
    };
    let vm = Vm::new(cfg, consoles).context("cannot create the microVM")?;
    if r.in_jail {
        hull_vmm::seccomp::install()?;
    }
    let setup = vm.setup_time;
    let entry = match vm.kernel().entry {
        Entry::Pvh(_) => "PVH",
        Entry::Linux64(_) => "64-bit boot protocol",
    };
    if let Some(spec) = r.spec {
        let interactive = r.process.interactive;
        let (code, report, ready) = vm_agent::run(vm, spec, interactive, &console, api)?;
        if stats {
            print_stats(&report, setup, entry);
            if let Some(r) = ready {
                eprintln!(
                    "hull vm: agent ready {:.1} ms after the start",
                    r.as_secs_f64() * 1e3
                );
            }
        }
        return Ok(code);
    }
    run_console(vm, stats, setup, entry)
}

/// The bare VM: stdin types into ttyS0, the console prints on stdout.
fn run_console(
    mut vm: Vm,
    stats: bool,
    setup: std::time::Duration,
    entry: &str,
) -> anyhow::Result<i32> {
    // The thread ends at end of input; at the VM's end it is left blocked in read(2), and the
    // process exit ends it.
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
    let report = vm.run().context("the microVM failed")?;
    if stats {
        print_stats(&report, setup, entry);
    }
    if let Some(e) = &report.console_error {
        eprintln!("hull vm: the guest console could not be written: {e}");
    }
    if report.reason == StopReason::Crash {
        bail!("the guest crashed");
    }
    Ok(0)
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

    #[test]
    fn disks() {
        let d = parse_disks(&["a.img".into(), "/x/b.img:ro".into()]).unwrap();
        assert_eq!((d[0].read_only, d[1].read_only), (false, true));
        assert_eq!(d[1].path, PathBuf::from("/x/b.img"));
        assert_eq!(d[1].id, "hull-disk1");
        assert!(parse_disks(&["a.img:rx".into()]).is_err());
        assert!(parse_disks(&[":ro".into()]).is_err());
    }

    fn flags(env: Vec<String>, user: &str) -> ProcessFlags {
        ProcessFlags {
            interactive: false,
            tty: true,
            env,
            workdir: "/w".into(),
            user: user.into(),
        }
    }

    #[test]
    fn run_spec_roots_on_the_first_disk_with_an_overlay_when_read_only() {
        let disks = parse_disks(&["r.img:ro".into(), "d.img".into()]).unwrap();
        let s = run_spec(
            vec!["true".into()],
            &disks,
            &flags(vec![], "web:10"),
            "h".into(),
        )
        .unwrap();
        let root = s.root.unwrap();
        assert_eq!(root.serial, "hull-disk0");
        assert!(root.overlay && root.read_only);
        assert!(s.process.env[0].starts_with("PATH="));
        // Names go to the guest, which has the root's /etc/passwd.
        assert_eq!(s.process.user.as_deref(), Some("web:10"));
        assert!(s.process.terminal);
        assert_eq!(s.process.cwd, "/w");
        let bad = flags(vec!["NOEQ".into()], "0");
        assert!(run_spec(vec!["x".into()], &[], &bad, "h".into()).is_err());
        assert!(run_spec(vec!["x".into()], &[], &flags(vec![], ""), "h".into()).is_err());
    }
}
