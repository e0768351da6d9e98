//! The hull-vmm backend of VM isolation (`--vmm hull`): the small `hull-vmm` binary installed
//! beside `hull`, given the VM of a [`QemuConfig`] (the same kernel, initramfs, layer disks
//! found by the same serials, agent socket and console) as its JSON orders
//! (hull_vmm::launch::Launch with `agent_socket`), so the monitor drives both backends alike.
//! It needs a /dev/kvm that boots a stock kernel ([`super::plan`] checks).
//!
//! Not jailed yet: hull-vmm runs as the monitor's child in the VMM's cgroup (as qemu does),
//! with its parent-death signal, but without the namespaces, read-only root and seccomp filter
//! that `hull vm run` gives it through `crate::vm_jail`, whose foreground run cannot be started
//! from the monitor's threads.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use hull_vmm::boot::BootProtocol;
use hull_vmm::launch::{Launch, STOCK_CMDLINE};
use hull_vmm::{BootSource, DiskConfig, VmConfig};

use super::qemu::{layer_serial, owned_by_this_thread, QemuConfig};
use crate::error::EngineError;
use crate::options::{Network, RunOptions};

/// The VMM's binary name, beside `hull`.
pub const HULL_VMM: &str = "hull-vmm";
/// Where hull-vmm's own messages go, in the VM's directory.
pub const VMM_LOG: &str = "hull-vmm.log";

/// hull-vmm's orders for `cfg`.
pub fn launch(cfg: &QemuConfig) -> Launch {
    let disks = cfg
        .disks
        .iter()
        .enumerate()
        .map(|(i, path)| DiskConfig {
            path: path.clone(),
            read_only: true,
            id: layer_serial(i),
        })
        .collect();
    Launch {
        vm: VmConfig {
            mem_size: cfg.memory,
            vcpus: usize::try_from(cfg.vcpus).unwrap_or(1),
            boot: BootSource {
                kernel: cfg.kernel.clone(),
                initrd: Some(cfg.initrd.clone()),
                cmdline: format!("{STOCK_CMDLINE} quiet"),
                protocol: BootProtocol::Auto,
            },
            disks,
            agent: true,
        },
        spec: None,
        interactive: false,
        stats: false,
        api_dir: None,
        remove_api_dir: false,
        agent_socket: Some(cfg.agent_socket.clone()),
    }
}

/// hull-vmm can run `opts` here: a /dev/kvm that boots a stock kernel, the binary, and no
/// network (hull-vmm has no virtio-net device yet).
pub fn check_host(opts: &RunOptions) -> Result<(), EngineError> {
    if opts.network != Network::None {
        return Err(EngineError::Invalid(
            "--isolation vm --vmm hull needs --network none: hull-vmm has no network device \
             yet; use --vmm qemu for a network"
                .into(),
        ));
    }
    let why = match hull_vmm::host_kvm() {
        hull_vmm::HostKvm::Hardware => return binary().map(drop),
        hull_vmm::HostKvm::Pvm => {
            "--isolation vm with --vmm hull cannot run here: this host's /dev/kvm is kvm-pvm, \
             which does not boot a stock Linux kernel; use --vmm qemu"
        }
        hull_vmm::HostKvm::Missing => {
            "--isolation vm with --vmm hull needs /dev/kvm, which this host lacks; use --vmm \
             qemu (it emulates without KVM)"
        }
    };
    Err(EngineError::Invalid(why.into()))
}

/// The hull-vmm binary beside this process's.
pub fn binary() -> Result<PathBuf, EngineError> {
    let exe = std::env::current_exe()
        .map_err(EngineError::io("finding this process's binary".to_string()))?;
    let vmm = exe.with_file_name(HULL_VMM);
    if vmm.is_file() {
        Ok(vmm)
    } else {
        Err(EngineError::Invalid(format!(
            "--vmm hull needs {HULL_VMM} beside {} (it is built and installed with hull)",
            exe.display()
        )))
    }
}

/// Starts hull-vmm for `cfg` in `cfg.dir`, its stdout (the guest's consoles) into
/// `cfg.console_log`; like qemu, in the cgroups of `join` and killed when the calling thread
/// ends (`owned_by_this_thread`).
pub fn spawn(cfg: &QemuConfig, join: &[std::fs::File]) -> Result<Child, EngineError> {
    let vmm = binary()?;
    let create = |name: &std::path::Path| {
        std::fs::File::create(cfg.dir.join(name)).map_err(EngineError::io(format!(
            "creating {} in {}",
            name.display(),
            cfg.dir.display()
        )))
    };
    let console = create(&cfg.console_log)?;
    let log = create(std::path::Path::new(VMM_LOG))?;
    let json = serde_json::to_string(&launch(cfg))
        .map_err(|e| EngineError::Invalid(format!("encoding hull-vmm's orders: {e}")))?;
    let mut cmd = Command::new(&vmm);
    cmd.arg(json)
        .current_dir(&cfg.dir)
        .stdin(Stdio::null())
        .stdout(console)
        .stderr(log);
    owned_by_this_thread(&mut cmd, join, None, None);
    cmd.spawn()
        .map_err(|e| EngineError::Invalid(format!("cannot start {}: {e}", vmm.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::qemu::Accel;

    #[test]
    fn a_network_is_refused_naming_the_way_out() {
        let opts = RunOptions::default();
        assert_ne!(opts.network, Network::None);
        let err = check_host(&opts).unwrap_err().to_string();
        assert!(
            err.contains("--network none") && err.contains("--vmm qemu"),
            "{err}"
        );
    }

    #[test]
    fn layers_are_read_only_disks_with_the_guests_serials() {
        let cfg = QemuConfig {
            kernel: "/k/vmlinuz".into(),
            initrd: "/k/initrd".into(),
            memory: 200 << 20,
            vcpus: 2,
            disks: vec!["/l/top.erofs".into(), "/l/base.erofs".into()],
            dir: "/c".into(),
            agent_socket: "agent.sock".into(),
            console_log: "console.log".into(),
            accel: Accel::Kvm,
        };
        let l = launch(&cfg);
        assert_eq!((l.vm.mem_size, l.vm.vcpus), (200 << 20, 2));
        let disks: Vec<_> =
            l.vm.disks
                .iter()
                .map(|d| (d.path.to_str().unwrap(), d.read_only, d.id.as_str()))
                .collect();
        assert_eq!(
            disks,
            [
                ("/l/top.erofs", true, "hull-layer0"),
                ("/l/base.erofs", true, "hull-layer1")
            ]
        );
        assert!(l.vm.agent && l.spec.is_none());
        assert_eq!(l.agent_socket, Some(PathBuf::from("agent.sock")));
        assert_eq!(l.vm.boot.initrd, Some(PathBuf::from("/k/initrd")));
        assert!(
            l.vm.boot.cmdline.ends_with(" quiet"),
            "{}",
            l.vm.boot.cmdline
        );
    }
}
