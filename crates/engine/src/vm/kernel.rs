//! The kernel's view of a VM-isolated container (`inspect --kernel`): its VMM process and how
//! it runs the guest (KVM with nested paging, or TCG's software MMU), the host mapping behind
//! guest memory (from the VMM's /proc/PID/smaps), the vCPU threads, and each disk with the
//! shared layer image behind it (and whether the VMM holds it open), and the VM's exits to the
//! host by reason (KVM's per-VM counters in debugfs: the same for qemu and hull-vmm).

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

/// Where KVM keeps each VM's counters: a directory `<vmm pid>-<vm fd>` per VM.
const KVM_DEBUGFS: &str = "/sys/kernel/debug/kvm";

/// The VM's exits to the host by reason (`exits`, `io_exits`, `mmio_exits`, `halt_exits`...:
/// each of KVM's counters whose name ends in `exits`), biggest first, or why there are none.
fn exits(pid: i32, accel: Accel) -> Value {
    if accel == Accel::Tcg {
        return json!({"Note": "none: under TCG qemu runs the guest in its own process, nothing exits to the host kernel"});
    }
    let base = Path::new(KVM_DEBUGFS);
    if !base.is_dir() {
        return json!({"Note": format!("KVM's exit counters are in debugfs: mount it (mount -t debugfs none /sys/kernel/debug) to see {KVM_DEBUGFS}")});
    }
    let prefix = format!("{pid}-");
    let dirs: Vec<PathBuf> = std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    match dirs.as_slice() {
        [] => json!({"Note": format!("no VM of pid {pid} under {KVM_DEBUGFS}")}),
        dirs => json!({"Counters": exit_counters(dirs)}),
    }
}

/// The `*exits` counters in KVM's VM directories `dirs`, summed, biggest first.
fn exit_counters(dirs: &[PathBuf]) -> Vec<Value> {
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with("exits") {
                continue;
            }
            if let Some(n) = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
            {
                *counts.entry(name).or_default() += n;
            }
        }
    }
    let mut sorted: Vec<(String, u64)> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted
        .into_iter()
        .map(|(name, count)| json!({"Reason": name, "Count": count}))
        .collect()
}

/// The VMM's threads that run vCPUs (qemu names them `CPU N/KVM` or `CPU N/TCG`, hull-vmm
/// `hull-vcpuN`).
fn vcpu_threads(pid: i32) -> Vec<Value> {
    let mut threads: Vec<Value> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            let comm = comm.trim();
            (comm.starts_with("CPU ") || comm.starts_with("hull-vcpu")).then(|| {
                json!({"Tid": t.file_name().to_string_lossy().parse::<i32>().unwrap_or(0), "Name": comm})
            })
        })
        .collect();
    threads.sort_by_key(|t| t["Name"].as_str().unwrap_or_default().to_string());
    threads
}

/// The VM part of the kernel view; `pid` is the live VMM's.
pub fn view(vm: &VmSettings, pid: Option<i32>, disks: &[PathBuf], layers: &[PathBuf]) -> Value {
    // hull-vmm runs on KVM only (`plan` refuses it elsewhere).
    let accel = match vm.vmm {
        super::Vmm::Hull => Accel::Kvm,
        super::Vmm::Qemu => Accel::for_host(),
    };
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
        "Exits": pid.map_or(Value::Null, |p| exits(p, accel)),
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
    let e = &v["Exits"];
    if let Some(counters) = e["Counters"].as_array() {
        let list: Vec<String> = counters
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c["Reason"].as_str().unwrap_or_default(),
                    c["Count"]
                )
            })
            .collect();
        out.push_str(&format!("  vm exits (kvm): {}\n", list.join(", ")));
    } else if let Some(note) = e["Note"].as_str() {
        out.push_str(&format!("  vm exits: {note}\n"));
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

    #[test]
    fn exit_counters_are_summed_over_vms_and_sorted() {
        let base = std::env::temp_dir().join(format!("hull-kvm-exits-{}", std::process::id()));
        let (a, b) = (base.join("7-11"), base.join("7-12"));
        for (dir, io, halt) in [(&a, "900\n", "40\n"), (&b, "50\n", "2\n")] {
            std::fs::create_dir_all(dir.join("vcpu0")).unwrap();
            std::fs::write(dir.join("io_exits"), io).unwrap();
            std::fs::write(dir.join("halt_exits"), halt).unwrap();
            std::fs::write(dir.join("halt_successful_poll"), "99\n").unwrap();
        }
        let got = exit_counters(&[a, b]);
        assert_eq!(
            Value::Array(got),
            json!([{"Reason": "io_exits", "Count": 950}, {"Reason": "halt_exits", "Count": 42}])
        );
        std::fs::remove_dir_all(&base).unwrap();
        assert!(exits(1, Accel::Tcg)["Note"]
            .as_str()
            .unwrap()
            .contains("TCG"));
    }
}
