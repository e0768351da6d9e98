//! What a bundle's config.json asks of its VM, checked before anything exists: the VMM
//! (`org.hull.vmm`), guest memory and vCPUs from `linux.resources`, the root file system, and
//! the spec's mounts — the guest's own kernel file systems, small files copied into a layer of
//! their own, everything else refused by name.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hull_engine::vm::{DEFAULT_MEMORY, MIN_MEMORY};
use serde_json::Value;

/// The annotation that picks the VMM.
pub const VMM_ANNOTATION: &str = "org.hull.vmm";
/// A file bind-mounted into the container is copied into the VM at create: only small ones
/// (/etc/hosts, resolv.conf, hostname, termination-log...).
const MAX_COPIED_FILE: u64 = 1 << 20;
const CPU_PERIOD: u64 = 100_000;

/// Destinations the guest mounts itself (its proc, sysfs, devtmpfs, devpts and /dev/shm
/// tmpfs), or that show the guest kernel's own state (mqueue, cgroups): the host's mount of
/// them has nothing to give the VM.
const GUEST_OWN: [&str; 7] = [
    "/proc",
    "/sys",
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/sys/fs/cgroup",
];

/// One VM's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub memory: u64,
    pub vcpus: u32,
    /// The CPU quota (µs per [`CPU_PERIOD`]) of the VMM's cgroup.
    pub cpu_quota: Option<u64>,
    pub cgroups_path: Option<PathBuf>,
    pub rootfs: PathBuf,
    /// `root.readonly`: the rootfs disk itself is the root, mounted read-only.
    pub read_only: bool,
    /// Files bind-mounted into the container: host source, destination in the guest.
    pub files: Vec<(PathBuf, PathBuf)>,
    /// The network namespace the spec joins by path (a pod's): qemu runs there.
    pub netns: Option<PathBuf>,
}

/// The annotations of `config`.
pub fn annotation<'a>(config: &'a Value, key: &str) -> Option<&'a str> {
    config["annotations"][key].as_str()
}

/// Checks the VMM this host can run for `config`: qemu (the only one this path drives).
fn check_vmm(config: &Value, kvm: hull_vmm::HostKvm) -> anyhow::Result<()> {
    match annotation(config, VMM_ANNOTATION) {
        None | Some("qemu") => Ok(()),
        Some("hull") if kvm == hull_vmm::HostKvm::Pvm => bail!(
            "annotation {VMM_ANNOTATION}=hull cannot run here: this host's /dev/kvm is \
             kvm-pvm, which does not boot a stock Linux kernel; use {VMM_ANNOTATION}=qemu"
        ),
        Some("hull") => bail!(
            "annotation {VMM_ANNOTATION}=hull is not supported by hull-runtime yet; use \
             {VMM_ANNOTATION}=qemu"
        ),
        Some(other) => bail!("invalid annotation {VMM_ANNOTATION}={other:?}: hull or qemu"),
    }
}

/// The plan for the bundle at `bundle` whose config.json is `config`.
pub fn plan(bundle: &Path, config: &Value, kvm: hull_vmm::HostKvm) -> anyhow::Result<Plan> {
    check_vmm(config, kvm)?;
    if config["process"]["terminal"].as_bool() == Some(true) {
        bail!(
            "process.terminal is not supported for a VM container (org.hull.isolation=vm) \
             yet: run it without a terminal"
        );
    }
    let root = config["root"]["path"].as_str().unwrap_or("rootfs");
    let rootfs = bundle.join(root);
    if !rootfs.is_dir() {
        bail!("the bundle's root {} is not a directory", rootfs.display());
    }
    let resources = &config["linux"]["resources"];
    let memory = match resources["memory"]["limit"].as_i64() {
        Some(l) if l > 0 => {
            let bytes = u64::try_from(l).unwrap_or(0).div_ceil(1 << 20) << 20;
            if bytes < MIN_MEMORY {
                bail!(
                    "linux.resources.memory.limit is the VM's memory: at least {}m",
                    MIN_MEMORY >> 20
                );
            }
            bytes
        }
        _ => DEFAULT_MEMORY,
    };
    let quota = resources["cpu"]["quota"].as_i64().filter(|q| *q > 0);
    let period = resources["cpu"]["period"]
        .as_u64()
        .filter(|p| *p > 0)
        .unwrap_or(CPU_PERIOD);
    // In thousandths of a CPU, as the engine's --cpus.
    let millicpus = quota.map(|q| u64::try_from(q).unwrap_or(0).saturating_mul(1000) / period);
    let vcpus = millicpus
        .map_or(1, |m| m.div_ceil(1000))
        .clamp(1, u64::from(u8::MAX));
    let files = files(config)?;
    let read_only = config["root"]["readonly"].as_bool() == Some(true);
    if read_only && !files.is_empty() {
        bail!(
            "root.readonly with bind mounts of files is not supported for a VM container \
             (org.hull.isolation=vm): the files are a layer of an overlay root"
        );
    }
    Ok(Plan {
        read_only,
        memory,
        vcpus: u32::try_from(vcpus).unwrap_or(1),
        cpu_quota: millicpus.map(|m| m.saturating_mul(CPU_PERIOD) / 1000),
        cgroups_path: config["linux"]["cgroupsPath"].as_str().map(PathBuf::from),
        rootfs,
        files,
        netns: crate::net::netns_path(config),
    })
}

/// The spec's mounts the VM honours as copies: file binds. Kernel file systems are the
/// guest's own; anything else is refused by its destination.
fn files(config: &Value) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    let mut out = Vec::new();
    for m in config["mounts"].as_array().into_iter().flatten() {
        let dest = m["destination"].as_str().unwrap_or_default();
        let dest = Path::new(dest);
        if GUEST_OWN.iter().any(|g| dest == Path::new(g)) {
            continue;
        }
        let kind = m["type"].as_str().unwrap_or_default();
        let is_bind = kind == "bind"
            || m["options"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"));
        let source = m["source"].as_str().map(PathBuf::from);
        let file = source.as_ref().and_then(|s| std::fs::metadata(s).ok());
        match (is_bind, source, file) {
            (true, Some(source), Some(meta)) if meta.is_file() => {
                if meta.len() > MAX_COPIED_FILE {
                    bail!(
                        "mount of {} at {}: a file bound into a VM container is copied, and \
                         this one is larger than {} KiB",
                        source.display(),
                        dest.display(),
                        MAX_COPIED_FILE >> 10
                    );
                }
                out.push((source, dest.to_path_buf()));
            }
            _ => bail!(
                "mount at {} ({}) is not supported for a VM container (org.hull.isolation=vm): \
                 only bind mounts of files are copied in, and there is no shared-directory \
                 device yet",
                dest.display(),
                if kind.is_empty() { "bind" } else { kind }
            ),
        }
    }
    Ok(out)
}

/// The staging tree of the files layer: each file at its destination under `dir`.
pub fn stage_files(files: &[(PathBuf, PathBuf)], dir: &Path) -> anyhow::Result<()> {
    for (source, dest) in files {
        let rel = dest.strip_prefix("/").unwrap_or(dest);
        let target = dir.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::copy(source, &target)
            .with_context(|| format!("copying {} for the VM", source.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hull_vmm::HostKvm;
    use serde_json::json;

    fn bundle(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hull-keeper-{name}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rootfs")).unwrap();
        std::fs::write(dir.join("hosts"), "127.0.0.1 localhost\n").unwrap();
        dir
    }

    #[test]
    fn resources_become_guest_memory_vcpus_and_quota() {
        let b = bundle("res");
        let config = json!({"linux": {"cgroupsPath": "/a/b", "resources": {
            "memory": {"limit": 200 * 1024 * 1024 + 1},
            "cpu": {"quota": 150_000, "period": 100_000}}}});
        let p = plan(&b, &config, HostKvm::Pvm).unwrap();
        assert_eq!(p.memory, 201 << 20);
        assert_eq!((p.vcpus, p.cpu_quota), (2, Some(150_000)));
        assert_eq!(p.cgroups_path, Some(PathBuf::from("/a/b")));
        let p = plan(&b, &json!({}), HostKvm::Pvm).unwrap();
        assert_eq!((p.memory, p.vcpus, p.cpu_quota), (DEFAULT_MEMORY, 1, None));
        let small = json!({"linux": {"resources": {"memory": {"limit": 1 << 20}}}});
        let err = plan(&b, &small, HostKvm::Pvm).unwrap_err().to_string();
        assert!(err.contains("at least 96m"), "{err}");
        std::fs::remove_dir_all(&b).unwrap();
    }

    #[test]
    fn vmm_terminal_and_mounts_are_checked_by_name() {
        let b = bundle("mounts");
        let vmm = |v: &str| json!({"annotations": {"org.hull.vmm": v}});
        assert!(plan(&b, &vmm("qemu"), HostKvm::Pvm).is_ok());
        let err = plan(&b, &vmm("hull"), HostKvm::Pvm)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("kvm-pvm") && err.contains("org.hull.vmm=qemu"),
            "{err}"
        );
        let err = plan(&b, &vmm("xen"), HostKvm::Pvm).unwrap_err().to_string();
        assert!(err.contains("invalid annotation org.hull.vmm"), "{err}");
        let tty = json!({"process": {"terminal": true}});
        let err = plan(&b, &tty, HostKvm::Pvm).unwrap_err().to_string();
        assert!(err.contains("process.terminal"), "{err}");
        let hosts = b.join("hosts").to_string_lossy().into_owned();
        let mounts = json!({"mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev/shm", "type": "bind", "source": "/nonexistent"},
            {"destination": "/etc/hosts", "type": "bind", "source": hosts, "options": ["rbind"]}
        ]});
        let p = plan(&b, &mounts, HostKvm::Pvm).unwrap();
        assert_eq!(p.files, [(PathBuf::from(&hosts), "/etc/hosts".into())]);
        let dir = json!({"mounts": [{"destination": "/data", "type": "bind", "source": "/tmp"}]});
        let err = plan(&b, &dir, HostKvm::Pvm).unwrap_err().to_string();
        assert!(
            err.starts_with("mount at /data (bind) is not supported"),
            "{err}"
        );
        let staged = b.join("staged");
        stage_files(&p.files, &staged).unwrap();
        assert_eq!(
            std::fs::read_to_string(staged.join("etc/hosts")).unwrap(),
            "127.0.0.1 localhost\n"
        );
        std::fs::remove_dir_all(&b).unwrap();
    }
}
