//! `hull vm run` with its VMM jailed (hull_engine::vm_jail, Firecracker's jailer's shape): this
//! process makes the jail and runs hull-vmm in it, with the kernel, initrd and disks
//! bind-mounted at fixed paths (and the API directory of a named VM, writable) and its launch
//! rewritten to them; hull-vmm's exit status (the guest command's, with a command) is this one's.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hull_engine::vm_jail::{self, Jail, JailFile};
use hull_vmm::launch::Launch;

/// Where the jailed VMM finds the kernel, the initrd and disk N.
const JAILED_KERNEL: &str = "/vm/kernel";
const JAILED_INITRD: &str = "/vm/initrd";
const JAILED_DISK: &str = "/vm/disk";
/// Where the VMM makes its API socket: the host's API directory of the VM, shared writable.
const JAILED_API: &str = "/vm/api";

/// Makes the jail and runs `vmm` in it with `launch`; its exit status.
pub fn run(
    root: &Path,
    vmm: &Path,
    mut launch: Launch,
    api_dir: Option<&Path>,
) -> anyhow::Result<i32> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the microVM's jail (namespaces, a cgroup) needs root: run as root, or pass --no-jail"
        );
    }
    let mut files = Vec::new();
    // Shares `host` at `inside`; the path the jailed VMM uses.
    let mut share = |host: &Path, inside: String, writable: bool| -> anyhow::Result<PathBuf> {
        // A missing file is the user's error, said before any jail exists.
        std::fs::File::open(host).with_context(|| format!("cannot open {}", host.display()))?;
        files.push(JailFile {
            host: host.to_path_buf(),
            inside: inside.clone().into(),
            writable,
        });
        Ok(inside.into())
    };
    let boot = &mut launch.vm.boot;
    boot.kernel = share(&boot.kernel, JAILED_KERNEL.into(), false)?;
    if let Some(initrd) = &boot.initrd {
        boot.initrd = Some(share(initrd, JAILED_INITRD.into(), false)?);
    }
    for (i, disk) in launch.vm.disks.iter_mut().enumerate() {
        disk.path = share(&disk.path, format!("{JAILED_DISK}{i}"), !disk.read_only)?;
    }
    if let Some(dir) = api_dir {
        launch.api_dir = Some(share(dir, JAILED_API.into(), true)?);
    }
    let json = serde_json::to_string(&launch).context("cannot encode the VM's launch")?;
    let jail = Jail {
        exe: vmm.to_path_buf(),
        args: vec!["--in-jail".into(), json],
        files,
        mem_size: launch.vm.mem_size,
        vcpus: launch.vm.vcpus,
    };
    let code = vm_jail::run(root, &jail, &mut |w| eprintln!("hull vm: {w}"))
        .context("cannot run the microVM's jail")?;
    Ok(code)
}
