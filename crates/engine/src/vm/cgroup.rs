//! The VMM's cgroup: `hull-<id>` under this process's cgroup (where a container's would be),
//! limited to guest memory plus the VMM's own overhead and, with `--cpus`, to that CPU quota
//! for all its vCPU and device threads together. The monitor records it in the VM's directory
//! (`vmm-cgroup.json`) before it exists, so the teardown of a monitor that died removes it.
//! The VMM joins it between fork and exec ([`super::qemu::spawn`]), before it maps guest
//! memory, so every page it touches is charged there.

use std::fs::File;
use std::path::Path;

use hull_cgroups::Cgroup;
use oci_spec::runtime::LinuxResources;
use serde_json::json;

use super::VmSettings;
use crate::error::EngineError;

/// qemu's memory beyond guest RAM (hull-vmm's is `vm_jail::MEMORY_OVERHEAD`): its binary and libraries, TCG's translated code, device
/// and I/O threads' buffers.
pub const VMM_OVERHEAD: u64 = 256 << 20;
const CPU_PERIOD: u64 = 100_000;
const RECORD: &str = "vmm-cgroup.json";

fn err(id: &str) -> impl FnOnce(hull_cgroups::CgroupError) -> EngineError + '_ {
    move |e| EngineError::Monitor {
        id: id.to_string(),
        message: format!("the VMM's cgroup: {e}"),
    }
}

/// What the cgroup limits.
fn resources(vm: &VmSettings) -> Result<LinuxResources, EngineError> {
    let overhead = match vm.vmm {
        super::Vmm::Qemu => VMM_OVERHEAD,
        super::Vmm::Hull => crate::vm_jail::MEMORY_OVERHEAD,
    };
    let mut r = json!({"memory": {"limit": vm.memory.saturating_add(overhead)}});
    if let Some(m) = vm.millicpus {
        r["cpu"] = json!({"quota": m.saturating_mul(CPU_PERIOD) / 1000, "period": CPU_PERIOD});
    }
    serde_json::from_value(r).map_err(|e| EngineError::Invalid(format!("VMM limits: {e}")))
}

/// Makes the VMM's cgroup for container `id` (recorded first in `dir`); the cgroup and its
/// `cgroup.procs` files, open for the VMM to join.
pub(crate) fn create(
    dir: &Path,
    id: &str,
    vm: &VmSettings,
) -> Result<(Cgroup, Vec<File>), EngineError> {
    let mut cg = Cgroup::new(None, id).map_err(err(id))?;
    cg.claim();
    let record = dir.join(RECORD);
    let text = serde_json::to_string(&cg)
        .map_err(|e| EngineError::Invalid(format!("recording the VMM's cgroup: {e}")))?;
    std::fs::write(&record, text)
        .map_err(EngineError::io(format!("writing {}", record.display())))?;
    cg.create(Some(&resources(vm)?)).map_err(err(id))?;
    match procs_files(&cg) {
        Ok(procs) => Ok((cg, procs)),
        Err(e) => {
            let _ = cg.remove();
            Err(e)
        }
    }
}

/// The `cgroup.procs` files of `cg`, open for a VMM to join them between fork and exec.
pub fn procs_files(cg: &Cgroup) -> Result<Vec<File>, EngineError> {
    cg.hierarchies()
        .iter()
        .map(|h| {
            let p = h.path.join("cgroup.procs");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .map_err(EngineError::io(format!("opening {}", p.display())))
        })
        .collect()
}

/// Removes the VMM's cgroup recorded in `dir`, once the VMM is gone; what failed, if anything.
pub(crate) fn remove(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(RECORD)).ok()?;
    let cg: Cgroup = serde_json::from_str(&text).ok()?;
    cg.remove().err().map(|e| format!("vmm cgroup: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_guest_memory_plus_overhead_and_the_cpu_quota() {
        let mut vm = VmSettings {
            vmm: super::super::Vmm::Qemu,
            memory: 200 << 20,
            vcpus: 2,
            millicpus: Some(1500),
            kernel: "/k".into(),
            initrd: "/i".into(),
        };
        let r = resources(&vm).unwrap();
        let limit = r.memory().as_ref().unwrap().limit().unwrap();
        assert_eq!(limit, i64::try_from((200 << 20) + VMM_OVERHEAD).unwrap());
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!(
            (cpu.quota(), cpu.period()),
            (Some(150_000), Some(CPU_PERIOD))
        );
        vm.millicpus = None;
        assert!(resources(&vm).unwrap().cpu().is_none());
    }
}
