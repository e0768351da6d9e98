//! `hull vm`: the bare microVM (hull-vmm) without images: boot a kernel and show its console, or
//! (with a command after `--`) run that command through hull-guest; `hull vm exec` runs more in
//! a named one (`vm_exec`). The VMM is the small `hull-vmm` binary, given its orders as JSON
//! (hull_vmm::launch): by default jailed (`vm_jailed`: this process makes the jail, hull-vmm
//! runs in it and installs its seccomp filter once the VM is built), with --no-jail in place of
//! this process.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use hull_vmm::boot::BootProtocol;
use hull_vmm::launch::Launch;
use hull_vmm::proto::{RootSpec, RunSpec};
use hull_vmm::{host_kvm, BootSource, DiskConfig, HostKvm, VmConfig};

use super::vm_api;
use super::vm_exec::{self, ProcessFlags};
use super::vm_jailed;
use super::vm_security::SecurityFlags;

pub use hull_vmm::launch::STOCK_CMDLINE as DEFAULT_CMDLINE;
const NESTED_TEST_BED: &str = "crates/vmm/tests/nested/run.sh";

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Boot a Linux kernel in a microVM; the guest console goes to stdout
    Run(Box<RunArgs>),
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

/// The flags of `hull vm run`.
#[derive(Debug, Args)]
pub struct RunArgs {
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
    #[command(flatten)]
    security: SecurityFlags,
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
    /// Name the VM, so `hull vm exec NAME` can run more processes in it (needs a command)
    #[arg(long)]
    name: Option<String>,
    /// The command to run in the VM (needs an --initrd with hull-guest as /init:
    /// scripts/build-guest-initramfs.sh builds one)
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
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
            lower_serials: Vec::new(),
        }),
        process: process.spec(command)?,
        ..RunSpec::default()
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
    let VmCommand::Run(args) = cmd else {
        bail!("not a run command");
    };
    let RunArgs {
        kernel,
        initrd,
        cmdline,
        mem,
        vcpus,
        disks,
        process,
        security,
        hostname,
        stats,
        allow_pvm,
        boot_protocol,
        no_jail,
        name,
        command,
    } = *args;
    let agent = !command.is_empty();
    if !agent && (process.given() || security.given() || name.is_some()) {
        bail!(
            "-i, -t, --env, --workdir, --user, --cap-add, --cap-drop, --security-opt, --ulimit \
             and --name are for a command: give one after `--`"
        );
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
    let mut spec = agent
        .then(|| run_spec(command.clone(), &disks, &process, hostname.clone()))
        .transpose()?;
    if let Some(s) = &mut spec {
        security.apply(root, &mut s.process)?;
    }
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
    let launch = Launch {
        vm: cfg,
        spec,
        interactive: process.interactive,
        stats,
        api_dir: None,
        remove_api_dir: false,
        agent_socket: None,
    };
    let vmm = vmm_binary()?;
    if no_jail {
        return exec_vmm(&vmm, root, launch, name.as_deref());
    }
    // The API directory is this process's to make and remove; the jail shares it with the VMM.
    let api_dir = name
        .as_deref()
        .map(|n| vm_api::claim(root, n))
        .transpose()?;
    let result = vm_jailed::run(root, &vmm, launch, api_dir.as_deref());
    if let Some(dir) = api_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

/// The VMM binary, installed beside `hull`.
fn vmm_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the hull binary")?;
    let vmm = exe.with_file_name("hull-vmm");
    if !vmm.is_file() {
        bail!(
            "no hull-vmm beside {} (it is built and installed with hull)",
            exe.display()
        );
    }
    Ok(vmm)
}

/// --no-jail: this process becomes the VMM, which then removes the API directory itself.
fn exec_vmm(
    vmm: &Path,
    root: &Path,
    mut launch: Launch,
    name: Option<&str>,
) -> anyhow::Result<i32> {
    use std::os::unix::process::CommandExt;
    launch.api_dir = name.map(|n| vm_api::claim(root, n)).transpose()?;
    launch.remove_api_dir = true;
    let json = serde_json::to_string(&launch).context("cannot encode the VM's launch")?;
    let err = std::process::Command::new(vmm).arg(json).exec();
    if let Some(dir) = &launch.api_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    Err(err).with_context(|| format!("cannot run {}", vmm.display()))
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
