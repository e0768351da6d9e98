//! VM isolation of the engine's containers (`hull run --isolation vm`): the same image, config
//! and flags as a container, run in a microVM whose guest kernel, initramfs and agent
//! (hull-guest) are those of `hull vm run`. The image's layers reach the guest as read-only
//! disks, one shared erofs image per layer (hull-image makes them), which the guest stacks with
//! overlayfs over a tmpfs upper layer. This module owns the choice of isolation and its checks
//! ([`plan`]); [`qemu`] launches the qemu backend, [`hull`] the hull-vmm one, and `cgroup`
//! makes the VMM's cgroup; `spec`
//! turns config.json into what the agent runs; [`control`] is how other `hull` commands reach a
//! running VM (signals, and exec sessions: `exec`); [`kernel`] is its part of `inspect
//! --kernel`. The container's monitor runs the VM (`monitor/vm.rs`): the VMM process, the agent
//! channel, the container's stdio.
//!
//! Ownership: the VMM process is the monitor's child and dies with it (parent-death signal);
//! its pid and start time are in `containers/<id>/vm/vmm.pid` and its cgroup in
//! `vmm-cgroup.json` beside it, so the teardown of a container whose monitor died kills a VMM
//! that somehow survived, removes its cgroup and the VM's files.

pub(crate) mod cgroup;
pub mod control;
pub mod exec;
pub mod hull;
pub mod kernel;
pub mod qemu;
pub(crate) mod spec;

pub use cgroup::{procs_files, VMM_OVERHEAD};
pub use spec::{guest_seccomp, interface_of, process_of};

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::options::{Network, RestartPolicy, RunOptions};
use crate::procfs;

/// Guest memory without `--memory`.
pub const DEFAULT_MEMORY: u64 = 256 << 20;
/// Less does not boot the guest kernel with its initramfs.
pub const MIN_MEMORY: u64 = 96 << 20;
/// Where the guest kernel is looked for without `HULL_VM_KERNEL` (the cache of Debian's cloud
/// kernel that scripts/qemu-guest-lib.sh fills).
const KERNEL_CACHE: &str = "/var/cache/hull-qemu/x/boot";
/// The names of an engine root's own guest kernel and initramfs in [`assets_dir`].
pub const KERNEL_NAME: &str = "vmlinuz";
pub const INITRD_NAME: &str = "initramfs.cpio.gz";

/// The VMM that runs a VM-isolated container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vmm {
    /// hull-vmm, hull's own KVM VMM.
    Hull,
    /// qemu `-M microvm`: KVM where it boots a stock kernel, TCG (emulation) otherwise.
    Qemu,
}

impl Vmm {
    pub fn parse(text: &str) -> Result<Vmm, EngineError> {
        match text {
            "hull" => Ok(Vmm::Hull),
            "qemu" => Ok(Vmm::Qemu),
            _ => Err(EngineError::Invalid(format!(
                "invalid --vmm {text:?}: hull or qemu"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Vmm::Hull => "hull",
            Vmm::Qemu => "qemu",
        }
    }
}

/// `--isolation`: a container (the host's kernel) or a microVM (a guest kernel of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    #[default]
    Container,
    Vm(Vmm),
}

/// What a VM-isolated container keeps beside its bundle: how its VM is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSettings {
    pub vmm: Vmm,
    /// Guest memory in bytes (`--memory`).
    pub memory: u64,
    /// vCPUs (`--cpus`, rounded up).
    pub vcpus: u32,
    /// `--cpus` in thousandths of a CPU: the VMM's CPU quota.
    #[serde(default)]
    pub millicpus: Option<u64>,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// The flags a VM does not honour yet, named as the user typed them; the first one set.
fn unsupported_flag(opts: &RunOptions) -> Option<&'static str> {
    let set = [
        (
            !opts.mounts.is_empty(),
            "volumes and mounts (-v, --mount, --tmpfs: the VM has no shared-directory device yet)",
        ),
        (opts.tty, "-t/--tty"),
        (opts.restart != RestartPolicy::No, "--restart"),
        (opts.pids_limit.is_some(), "--pids-limit"),
        (opts.memory_swap.is_some(), "--memory-swap"),
        (opts.cpu_shares.is_some(), "--cpu-shares"),
        (opts.cpuset_cpus.is_some(), "--cpuset-cpus"),
        (opts.cpuset_mems.is_some(), "--cpuset-mems"),
        (!opts.device_read_bps.is_empty(), "--device-read-bps"),
        (!opts.device_write_bps.is_empty(), "--device-write-bps"),
        (opts.blkio_weight.is_some(), "--blkio-weight"),
        (!opts.devices.is_empty(), "--device"),
        // It means the host's devices, which the VM has no way to reach.
        (opts.privileged, "--privileged"),
        (opts.read_only, "--read-only"),
        (opts.init, "--init"),
    ];
    set.into_iter().find_map(|(on, flag)| on.then_some(flag))
}

/// Checks `opts` for a VM of `vmm` on this host and finds its kernel and initramfs (for the
/// engine at `root`).
pub fn plan(root: &Path, opts: &RunOptions, vmm: Vmm) -> Result<VmSettings, EngineError> {
    if let Some(flag) = unsupported_flag(opts) {
        return Err(EngineError::Invalid(format!(
            "{flag} is not supported with --isolation vm yet"
        )));
    }
    if opts.network == Network::Host {
        return Err(EngineError::Invalid(
            "--network host is not supported with --isolation vm: the guest has a kernel and \
             network stack of its own; use a bridge network (the default) or none"
                .into(),
        ));
    }
    if vmm == Vmm::Hull {
        hull::check_host(opts)?;
    }
    let memory = match opts.memory {
        None => DEFAULT_MEMORY,
        Some(m) => guest_memory(m)?,
    };
    let vcpus = opts
        .millicpus
        .map_or(1, |m| m.div_ceil(1000))
        .clamp(1, u64::from(u8::MAX));
    Ok(VmSettings {
        vmm,
        memory,
        vcpus: u32::try_from(vcpus).unwrap_or(1),
        millicpus: opts.millicpus,
        kernel: kernel(root)?,
        initrd: initrd(root)?,
    })
}

/// `--memory` as guest memory: whole MiB (rounded up), at least what the guest needs.
fn guest_memory(bytes: i64) -> Result<u64, EngineError> {
    let bytes = u64::try_from(bytes).unwrap_or(0).div_ceil(1 << 20) << 20;
    if bytes < MIN_MEMORY {
        return Err(EngineError::Invalid(format!(
            "--memory with --isolation vm is the guest's memory: at least {}m",
            MIN_MEMORY >> 20
        )));
    }
    Ok(bytes)
}

/// The guest kernel: `HULL_VM_KERNEL`, else the root's `vm/vmlinuz`, else Debian's cloud kernel
/// in the qemu cache.
pub fn kernel(root: &Path) -> Result<PathBuf, EngineError> {
    if let Some(k) = std::env::var_os("HULL_VM_KERNEL") {
        return existing(PathBuf::from(k), "HULL_VM_KERNEL");
    }
    let own = assets_dir(root).join(KERNEL_NAME);
    if own.is_file() {
        return Ok(own);
    }
    std::fs::read_dir(KERNEL_CACHE)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or_else(|| {
            EngineError::Invalid(format!(
                "--isolation vm needs a guest kernel: set HULL_VM_KERNEL, put one at {}, or \
                 unpack Debian's linux-image-cloud-amd64 into {KERNEL_CACHE} \
                 (scripts/build-guest-initramfs.sh does)",
                own.display()
            ))
        })
}

/// hull-guest's initramfs: `HULL_VM_INITRD`, else the root's `vm/initramfs.cpio.gz`.
pub fn initrd(root: &Path) -> Result<PathBuf, EngineError> {
    if let Some(i) = std::env::var_os("HULL_VM_INITRD") {
        return existing(PathBuf::from(i), "HULL_VM_INITRD");
    }
    let own = assets_dir(root).join(INITRD_NAME);
    if own.is_file() {
        return Ok(own);
    }
    Err(EngineError::Invalid(format!(
        "--isolation vm needs hull-guest's initramfs: put what scripts/build-guest-initramfs.sh \
         prints at {}, or set HULL_VM_INITRD to it",
        own.display()
    )))
}

/// Where an engine root's own guest kernel and initramfs are.
pub fn assets_dir(root: &Path) -> PathBuf {
    root.join("vm")
}

fn existing(path: PathBuf, var: &str) -> Result<PathBuf, EngineError> {
    let path = std::path::absolute(&path).unwrap_or(path);
    if path.is_file() {
        Ok(path)
    } else {
        Err(EngineError::Invalid(format!(
            "{var}={}: no such file",
            path.display()
        )))
    }
}

/// The directory of a VM-isolated container's VM files (agent and control sockets, the
/// VMM's pid, the guest console).
pub fn dir(root: &Path, id: &str) -> PathBuf {
    crate::paths::container_dir(root, id).join("vm")
}

/// A unix socket's address in `dir` that fits the 108 bytes of sun_path however long the
/// engine's root is: through a descriptor of the directory.
fn socket_address(dir: &Path, name: &str) -> Result<(std::fs::File, PathBuf), EngineError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)
        .map_err(EngineError::io(format!("opening {}", dir.display())))?;
    let addr = PathBuf::from(format!("/proc/self/fd/{}/{name}", f.as_raw_fd()));
    Ok((f, addr))
}

/// Listens on the unix socket `name` in `dir`.
pub fn bind_in(dir: &Path, name: &str) -> Result<UnixListener, EngineError> {
    let (_dir, addr) = socket_address(dir, name)?;
    UnixListener::bind(&addr).map_err(EngineError::io(format!(
        "listening on {}",
        dir.join(name).display()
    )))
}

/// Connects to the unix socket `name` in `dir`.
pub fn connect_in(dir: &Path, name: &str) -> Result<UnixStream, EngineError> {
    let (_dir, addr) = socket_address(dir, name)?;
    UnixStream::connect(&addr).map_err(EngineError::io(format!(
        "connecting to {}",
        dir.join(name).display()
    )))
}

fn pid_file(root: &Path, id: &str) -> PathBuf {
    dir(root, id).join("vmm.pid")
}

/// The VMM process of container `id`, if it still runs (pid and start time both match).
pub fn vmm_pid(root: &Path, id: &str) -> Option<i32> {
    let text = std::fs::read_to_string(pid_file(root, id)).ok()?;
    let mut words = text.split_whitespace();
    let pid: i32 = words.next()?.parse().ok()?;
    let start: u64 = words.next()?.parse().ok()?;
    procfs::is_alive(pid, start).then_some(pid)
}

/// Records the VMM's pid and start time (by rename: a reader sees all of it or nothing).
pub(crate) fn record_vmm(root: &Path, id: &str, pid: i32) -> Result<(), EngineError> {
    let start = procfs::start_time(pid).unwrap_or(0);
    let path = pid_file(root, id);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{pid} {start}\n"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(EngineError::io(format!("writing {}", path.display())))
}

/// Kills a VMM that outlived its monitor and removes the VM's files; what failed, if anything.
pub(crate) fn teardown(root: &Path, id: &str) -> Option<String> {
    if let Some(pid) = vmm_pid(root, id) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while vmm_pid(root, id).is_some() {
            if std::time::Instant::now() > deadline {
                return Some(format!("vmm: process {pid} does not die"));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    if let Some(e) = cgroup::remove(&dir(root, id)) {
        return Some(e);
    }
    match std::fs::remove_dir_all(dir(root, id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Some(format!("vm files: {e}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_flags_are_named() {
        let mut opts = RunOptions {
            network: Network::None,
            ..Default::default()
        };
        assert_eq!(unsupported_flag(&opts), None);
        // The guest applies these as a container's runtime would.
        opts.cap_add = vec!["CAP_NET_ADMIN".into()];
        opts.cap_drop = vec!["ALL".into()];
        opts.seccomp = crate::run_flags::Seccomp::Unconfined;
        opts.no_new_privileges = true;
        assert_eq!(unsupported_flag(&opts), None);
        opts.privileged = true;
        assert_eq!(unsupported_flag(&opts), Some("--privileged"));
        let err = plan(Path::new("/nonexistent"), &opts, Vmm::Qemu)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "--privileged is not supported with --isolation vm yet");
        opts.privileged = false;
        opts.network = Network::Host;
        let err = plan(Path::new("/nonexistent"), &opts, Vmm::Qemu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--network host"), "{err}");
        // A bridge network and its published ports: the VM's NIC mirrors the container's eth0.
        opts.network = Network::Named("web".into());
        opts.ports = vec!["127.0.0.1:8080:80".parse().unwrap()];
        opts.publish_all = true;
        assert_eq!(unsupported_flag(&opts), None);
    }

    #[test]
    fn memory_and_vcpus() {
        assert_eq!(guest_memory(200 << 20).unwrap(), 200 << 20);
        assert_eq!(guest_memory((200 << 20) + 1).unwrap(), 201 << 20);
        assert!(guest_memory(32 << 20).is_err());
        assert_eq!(Vmm::parse("qemu").unwrap(), Vmm::Qemu);
        assert!(Vmm::parse("firecracker").is_err());
    }
}
