//! `hull vm`: the bare microVM (hull-vmm) without images: boot a kernel and show its console, or
//! (with a command after `--`) run that command through hull-guest (`vm_agent`). By default the
//! VMM runs jailed (`vm_jailed`): this process makes the jail, and the `hull` binary re-executed
//! in it (`--in-jail`) is the VMM, which installs its seccomp filter once the VM is built.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use hull_vmm::boot::{BootProtocol, Entry};
use hull_vmm::proto::{ProcessSpec, RootSpec, RunSpec};
use hull_vmm::{
    host_kvm, BootSource, Consoles, DiskConfig, HostKvm, RunReport, StopReason, Vm, VmConfig,
};

use super::vm_agent::{self, ConsoleTail};
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
        /// Keep the command's stdin open and pass hull's stdin to it
        #[arg(short, long)]
        interactive: bool,
        /// Run the command on a terminal (stdout and stderr are then one stream; hull's own
        /// terminal, if stdin is one, goes raw and passes its size on)
        #[arg(short, long)]
        tty: bool,
        /// The command's environment (NAME=value), more than once
        #[arg(short, long = "env", value_name = "NAME=value")]
        env: Vec<String>,
        /// The command's working directory
        #[arg(short = 'w', long, default_value = "/")]
        workdir: String,
        /// The command's user: UID[:GID] (numbers: the guest has no user database to look in)
        #[arg(short, long, default_value = "0:0")]
        user: String,
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
        /// The command to run in the VM (needs an --initrd with hull-guest as /init:
        /// scripts/build-guest-initramfs.sh builds one)
        #[arg(last = true, value_name = "CMD")]
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

/// The PATH a command gets when --env sets none (docker's default).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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

/// `UID` or `UID:GID`, numbers only.
fn parse_user(user: &str) -> anyhow::Result<(u32, u32)> {
    let (u, g) = user.split_once(':').unwrap_or((user, "0"));
    match (u.parse(), g.parse()) {
        (Ok(u), Ok(g)) => Ok((u, g)),
        _ => {
            bail!("--user {user}: give UID[:GID] as numbers (the VM has no user names to look up)")
        }
    }
}

/// What the guest is told to run, from the flags.
fn run_spec(
    command: Vec<String>,
    disks: &[DiskConfig],
    env: Vec<String>,
    workdir: String,
    user: &str,
    hostname: String,
) -> anyhow::Result<RunSpec> {
    let (uid, gid) = parse_user(user)?;
    let mut env = env;
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.into());
    }
    if let Some(bad) = env.iter().find(|e| !e.contains('=')) {
        bail!("--env {bad}: give NAME=value");
    }
    Ok(RunSpec {
        hostname,
        root: disks.first().map(|d| RootSpec {
            serial: d.id.clone(),
            overlay: d.read_only,
            read_only: d.read_only,
            lower_serials: Vec::new(),
        }),
        process: ProcessSpec {
            args: command,
            env,
            cwd: workdir,
            uid,
            gid,
            additional_gids: Vec::new(),
            terminal: false,
            rlimits: Vec::new(),
            no_new_privileges: false,
        },
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
    match run_vm(root, cmd) {
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
        interactive,
        tty,
        env,
        workdir,
        user,
        hostname,
        stats,
        allow_pvm,
        boot_protocol,
        no_jail,
        in_jail,
        command,
    } = cmd;
    let agent = !command.is_empty();
    if !agent && (interactive || tty || !env.is_empty() || workdir != "/" || user != "0:0") {
        bail!("-i, -t, --env, --workdir and --user are for a command: give one after `--`");
    }
    if agent && initrd.is_none() {
        bail!(
            "a command needs --initrd with hull-guest as its /init \
             (scripts/build-guest-initramfs.sh builds it)"
        );
    }
    let disks = parse_disks(&disks)?;
    let spec = agent
        .then(|| {
            run_spec(
                command.clone(),
                &disks,
                env.clone(),
                workdir.clone(),
                &user,
                hostname.clone(),
            )
        })
        .transpose()?
        .map(|mut s| {
            s.process.terminal = tty;
            s
        });
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
    if !no_jail && !in_jail {
        let spec = vm_jailed::Passed {
            protocol: boot_protocol,
            stats,
            allow_pvm,
            interactive,
            tty,
            env: &env,
            workdir: &workdir,
            user: &user,
            hostname: &hostname,
            command: &command,
        };
        return vm_jailed::run(root, &cfg, &spec);
    }
    if in_jail {
        vm_jailed::vmm_setup(agent)?;
    }
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
    let vm = Vm::new(&cfg, consoles).context("cannot create the microVM")?;
    if in_jail {
        hull_vmm::seccomp::install()?;
    }
    let setup = vm.setup_time;
    let entry = match vm.kernel().entry {
        Entry::Pvh(_) => "PVH",
        Entry::Linux64(_) => "64-bit boot protocol",
    };
    if let Some(spec) = spec {
        let (code, report, ready) = vm_agent::run(vm, spec, interactive, &console)?;
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
    fn disks_and_users() {
        let d = parse_disks(&["a.img".into(), "/x/b.img:ro".into()]).unwrap();
        assert_eq!((d[0].read_only, d[1].read_only), (false, true));
        assert_eq!(d[1].path, PathBuf::from("/x/b.img"));
        assert_eq!(d[1].id, "hull-disk1");
        assert!(parse_disks(&["a.img:rx".into()]).is_err());
        assert!(parse_disks(&[":ro".into()]).is_err());
        assert_eq!(parse_user("1000").unwrap(), (1000, 0));
        assert_eq!(parse_user("1000:100").unwrap(), (1000, 100));
        assert!(parse_user("nobody").is_err());
    }

    #[test]
    fn run_spec_roots_on_the_first_disk_with_an_overlay_when_read_only() {
        let disks = parse_disks(&["r.img:ro".into(), "d.img".into()]).unwrap();
        let s = run_spec(
            vec!["true".into()],
            &disks,
            vec![],
            "/".into(),
            "0",
            "h".into(),
        )
        .unwrap();
        let root = s.root.unwrap();
        assert_eq!(root.serial, "hull-disk0");
        assert!(root.overlay && root.read_only);
        assert!(s.process.env[0].starts_with("PATH="));
        assert!(run_spec(
            vec!["x".into()],
            &[],
            vec!["NOEQ".into()],
            "/".into(),
            "0",
            "h".into()
        )
        .is_err());
    }
}
