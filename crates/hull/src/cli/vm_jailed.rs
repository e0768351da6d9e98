//! `hull vm run` with its VMM jailed (hull_engine::vm_jail, Firecracker's jailer's shape): this
//! process makes the jail and re-executes `hull vm run --in-jail` in it, with the kernel, initrd
//! and disks bind-mounted at fixed paths and every other flag passed on; the jailed process is
//! the VMM, and its exit status (the guest command's, with a command) is this one's.

use std::path::Path;

use anyhow::{bail, Context};
use hull_engine::vm_jail::{self, Jail, JailFile};
use hull_vmm::VmConfig;

use super::vm::Protocol;
use super::vm_exec::ProcessFlags;

/// Where the jailed VMM finds the kernel, the initrd and disk N.
const JAILED_KERNEL: &str = "/vm/kernel";
const JAILED_INITRD: &str = "/vm/initrd";
const JAILED_DISK: &str = "/vm/disk";
/// Where the VMM makes its API socket: the host's API directory of the VM, shared writable.
const JAILED_API: &str = "/vm/api";

/// The flags the jailed `hull vm run` gets again, beside what the VmConfig holds.
#[derive(Debug)]
pub struct Passed<'a> {
    pub protocol: Protocol,
    pub stats: bool,
    pub allow_pvm: bool,
    pub process: &'a ProcessFlags,
    pub hostname: &'a str,
    /// The host directory of the VM's API socket (`--name`).
    pub api_dir: Option<&'a Path>,
    pub command: &'a [String],
}

/// Makes the jail and runs this binary in it as the VMM; its exit status.
pub fn run(root: &Path, cfg: &VmConfig, passed: &Passed<'_>) -> anyhow::Result<i32> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the microVM's jail (namespaces, a cgroup) needs root: run as root, or pass --no-jail"
        );
    }
    let boot = &cfg.boot;
    let mut files = Vec::new();
    let mut share = |host: &Path, inside: String, writable: bool| -> anyhow::Result<()> {
        // A missing file is the user's error, said before any jail exists.
        std::fs::File::open(host).with_context(|| format!("cannot open {}", host.display()))?;
        files.push(JailFile {
            host: host.to_path_buf(),
            inside: inside.into(),
            writable,
        });
        Ok(())
    };
    share(&boot.kernel, JAILED_KERNEL.into(), false)?;
    if let Some(initrd) = &boot.initrd {
        share(initrd, JAILED_INITRD.into(), false)?;
    }
    let mut args: Vec<String> = ["vm", "run", "--in-jail", "--kernel", JAILED_KERNEL]
        .map(String::from)
        .into();
    if boot.initrd.is_some() {
        args.extend(["--initrd".into(), JAILED_INITRD.into()]);
    }
    for (i, disk) in cfg.disks.iter().enumerate() {
        let inside = format!("{JAILED_DISK}{i}");
        share(&disk.path, inside.clone(), !disk.read_only)?;
        let mode = if disk.read_only { "ro" } else { "rw" };
        args.extend(["--disk".into(), format!("{inside}:{mode}")]);
    }
    let protocol = clap::ValueEnum::to_possible_value(&passed.protocol)
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
    args.extend(passed.stats.then(|| "--stats".to_string()));
    args.extend(passed.allow_pvm.then(|| "--allow-pvm".to_string()));
    if let Some(dir) = passed.api_dir {
        share(dir, JAILED_API.into(), true)?;
        args.extend(["--api-dir".into(), JAILED_API.into()]);
    }
    if !passed.command.is_empty() {
        let p = passed.process;
        args.extend(p.interactive.then(|| "--interactive".to_string()));
        args.extend(p.tty.then(|| "--tty".to_string()));
        for e in &p.env {
            args.extend(["--env".into(), e.clone()]);
        }
        args.extend([
            "--workdir".into(),
            p.workdir.clone(),
            "--user".into(),
            p.user.clone(),
            "--hostname".into(),
            passed.hostname.into(),
            "--".into(),
        ]);
        args.extend(passed.command.iter().cloned());
    }
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
/// (whose kill -9 would otherwise leave it running). Being its pid namespace's init, which
/// ignores signals it has no handler for, a bare VM ends on SIGINT, SIGTERM and SIGHUP as a
/// plain process would; with a command (`agent`), those go on to the command instead.
pub fn vmm_setup(agent: bool) -> anyhow::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    extern "C" fn end(sig: libc::c_int) {
        // SAFETY: _exit is async-signal-safe and ends the process at once.
        unsafe { libc::_exit(128 + sig) }
    }
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .context("cannot set the parent-death signal")?;
    if agent {
        return Ok(());
    }
    let action = SigAction::new(SigHandler::Handler(end), SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only calls _exit.
        unsafe { sigaction(sig, &action) }.context("cannot install a signal handler")?;
    }
    Ok(())
}
