//! The kernel's view of a VM-isolated container (`inspect --kernel`): its VMM process and how
//! it runs the guest (KVM with nested paging, or TCG's software MMU), the host mapping behind
//! guest memory (from the VMM's /proc/PID/smaps), the vCPU threads, and each disk with the
//! shared layer image behind it (and whether the VMM holds it open).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::qemu::{layer_serial, Accel};
use super::VmSettings;

/// How the host translates guest memory under `accel`.
fn paging(accel: Accel) -> String {
    if accel == Accel::Tcg {
        return "software MMU: qemu's TCG translates every guest access (no KVM)".into();
    }
    for (module, name) in [("kvm_amd", "npt"), ("kvm_intel", "ept")] {
        let p = format!("/sys/module/{module}/parameters/{name}");
        if let Ok(v) = std::fs::read_to_string(&p) {
            let on = matches!(v.trim(), "Y" | "1");
            return format!(
                "{} ({module}.{name}={})",
                if on { "nested paging" } else { "shadow paging" },
                v.trim()
            );
        }
    }
    "KVM (paging mode not shown by the kvm module)".into()
}

/// The VMM's mapping that holds guest memory: the smallest one at least `memory` bytes long.
fn guest_mapping(pid: i32, memory: u64) -> Value {
    let Ok(smaps) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return Value::Null;
    };
    let mut best: Option<(u64, String, u64)> = None;
    let mut current: Option<(u64, String)> = None;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or_default();
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let (a, b) = (
                u64::from_str_radix(a, 16).unwrap_or(0),
                u64::from_str_radix(b, 16).unwrap_or(0),
            );
            current = Some((b.saturating_sub(a), first.to_string()));
        } else if let (Some(rest), Some((size, range))) = (line.strip_prefix("Rss:"), &current) {
            let rss = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
                << 10;
            if *size >= memory && best.as_ref().is_none_or(|(s, _, _)| size < s) {
                best = Some((*size, range.clone(), rss));
            }
        }
    }
    best.map_or(
        Value::Null,
        |(size, range, rss)| json!({"HostRange": range, "Bytes": size, "ResidentBytes": rss}),
    )
}

/// The VMM's threads that run vCPUs (qemu names them `CPU N/KVM` or `CPU N/TCG`).
fn vcpu_threads(pid: i32) -> Vec<Value> {
    let mut threads: Vec<Value> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            let comm = comm.trim();
            comm.starts_with("CPU ").then(|| {
                json!({"Tid": t.file_name().to_string_lossy().parse::<i32>().unwrap_or(0), "Name": comm})
            })
        })
        .collect();
    threads.sort_by_key(|t| t["Name"].as_str().unwrap_or_default().to_string());
    threads
}

/// The VM part of the kernel view; `pid` is the live VMM's.
pub fn view(vm: &VmSettings, pid: Option<i32>, disks: &[PathBuf], layers: &[PathBuf]) -> Value {
    let accel = Accel::for_host();
    let open: Vec<PathBuf> = pid
        .and_then(|p| std::fs::read_dir(format!("/proc/{p}/fd")).ok())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .collect();
    let disks: Vec<Value> = disks
        .iter()
        .zip(layers)
        .enumerate()
        .map(|(i, (image, dir))| {
            json!({
                "Serial": layer_serial(i),
                "ReadOnly": true,
                "Image": image,
                "ImageBytes": std::fs::metadata(image).map(|m| m.len()).ok(),
                "LayerDir": dir,
                "OpenByVmm": pid.map(|_| open.iter().any(|o| Path::new(o) == image.as_path())),
            })
        })
        .collect();
    json!({
        "Vmm": vm.vmm.name(),
        "Accel": accel.name(),
        "Paging": paging(accel),
        "Pid": pid,
        "MemoryBytes": vm.memory,
        "Vcpus": vm.vcpus,
        "Kernel": vm.kernel,
        "Initrd": vm.initrd,
        "GuestMemory": pid.map_or(Value::Null, |p| guest_mapping(p, vm.memory)),
        "VcpuThreads": pid.map(vcpu_threads).unwrap_or_default(),
        "Disks": disks,
    })
}

/// The report lines of the VM part.
pub fn report(v: &Value) -> String {
    let mut out = format!(
        "  vm: {} ({}), {} vCPUs, {} MiB guest memory, vmm pid {}\n  paging: {}\n",
        v["Vmm"].as_str().unwrap_or_default(),
        v["Accel"].as_str().unwrap_or_default(),
        v["Vcpus"],
        v["MemoryBytes"].as_u64().unwrap_or(0) >> 20,
        v["Pid"],
        v["Paging"].as_str().unwrap_or_default(),
    );
    let m = &v["GuestMemory"];
    if !m.is_null() {
        out.push_str(&format!(
            "  guest memory: host mapping {} ({} MiB, {} MiB resident)\n",
            m["HostRange"].as_str().unwrap_or_default(),
            m["Bytes"].as_u64().unwrap_or(0) >> 20,
            m["ResidentBytes"].as_u64().unwrap_or(0) >> 20,
        ));
    }
    for t in v["VcpuThreads"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  vcpu thread {} ({})\n",
            t["Tid"],
            t["Name"].as_str().unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "  kernel {}\n  initrd {}\n",
        v["Kernel"].as_str().unwrap_or_default(),
        v["Initrd"].as_str().unwrap_or_default()
    ));
    for d in v["Disks"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  disk {} (ro{}): {} <- layer {}\n",
            d["Serial"].as_str().unwrap_or_default(),
            if d["OpenByVmm"].as_bool() == Some(true) {
                ", open by the vmm"
            } else {
                ""
            },
            d["Image"].as_str().unwrap_or_default(),
            d["LayerDir"].as_str().unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_memory_mapping_is_found_in_smaps() {
        // This test process's own maps: some mapping is at least a page long.
        let pid = i32::try_from(std::process::id()).unwrap();
        let m = guest_mapping(pid, 4096);
        assert!(m["Bytes"].as_u64().unwrap() >= 4096, "{m}");
        assert!(m["HostRange"].as_str().unwrap().contains('-'), "{m}");
        assert!(guest_mapping(pid, u64::MAX).is_null());
        assert!(paging(Accel::Tcg).contains("TCG"));
    }
}
