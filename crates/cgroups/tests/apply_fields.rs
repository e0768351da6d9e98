//! Every supported field lands in the right kernel file with the right conversion, for the host's
//! layout (v1 names and units on legacy/hybrid, v2 names and runc's conversions on unified).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{res, skip_unless_root, CgGuard};
use hull_cgroups::{Cgroup, Layout};
use serde_json::json;

/// The value of `file` in whichever hierarchy of `cg` has it.
fn read(cg: &Cgroup, file: &str) -> String {
    cg.hierarchies()
        .iter()
        .find_map(|h| std::fs::read_to_string(h.path.join(file)).ok())
        .unwrap_or_else(|| panic!("no hierarchy has {file}"))
        .trim()
        .to_string()
}

const MIB: i64 = 1 << 20;

fn mib(n: i64) -> String {
    (n * MIB).to_string()
}

/// Mount point of the v1 hierarchy holding `controller`.
fn v1_mount(controller: &str) -> std::path::PathBuf {
    Cgroup::new(None, "probe")
        .unwrap()
        .hierarchies()
        .into_iter()
        .find(|h| h.controllers.iter().any(|c| c == controller))
        .map(|h| h.mount_point)
        .unwrap()
}

fn unified() {
    let r = res(json!({
        "cpu": {"shares": 1024, "quota": 20000, "period": 50000, "burst": 1000, "idle": 0},
        "memory": {"limit": 64 * MIB, "reservation": 32 * MIB, "swap": 128 * MIB},
        "pids": {"limit": 33},
        "unified": {"memory.high": "100000000"}
    }));
    let cg = CgGuard::create("fields-v2", Some(&r));
    // runc 1.1: 1 + (1024 - 2) * 9999 / 262142
    assert_eq!(read(&cg.0, "cpu.weight"), "39");
    assert_eq!(read(&cg.0, "cpu.max"), "20000 50000");
    assert_eq!(read(&cg.0, "cpu.max.burst"), "1000");
    assert_eq!(read(&cg.0, "memory.max"), mib(64));
    assert_eq!(read(&cg.0, "memory.low"), mib(32));
    // OCI swap is memory+swap; v2 wants swap alone.
    assert_eq!(read(&cg.0, "memory.swap.max"), mib(64));
    // Rounded down to pages by the kernel.
    assert_eq!(read(&cg.0, "memory.high"), "99999744");
    assert_eq!(read(&cg.0, "pids.max"), "33");
    let upd = res(json!({"cpu": {"period": 100000, "idle": 1}}));
    cg.0.update(&upd).unwrap();
    let max = read(&cg.0, "cpu.max");
    assert_eq!(max, "20000 100000", "a period alone keeps the quota");
    assert_eq!(read(&cg.0, "cpu.idle"), "1");
    cg.finish();
}

fn v1() {
    let rt = v1_mount("cpu").join("cpu.rt_runtime_us").exists();
    let mut r = res(json!({
        "cpu": {"shares": 512, "quota": 20000, "period": 50000, "burst": 1000, "idle": 0},
        "memory": {"limit": 64 * MIB, "reservation": 32 * MIB, "swap": 128 * MIB,
                   "swappiness": 10, "disableOOMKiller": true, "kernelTCP": 16 * MIB,
                   "useHierarchy": true},
        "pids": {"limit": -1}
    }));
    if rt {
        let cpu = r.cpu_mut().as_mut().unwrap();
        cpu.set_realtime_period(Some(1_000_000));
        cpu.set_realtime_runtime(Some(0));
    } else {
        hull_testkit::skip("no CONFIG_RT_GROUP_SCHED: realtime fields not checked (the rest is)");
    }
    let cg = CgGuard::create("fields-v1", Some(&r));
    assert_eq!(read(&cg.0, "cpu.shares"), "512");
    assert_eq!(read(&cg.0, "cpu.cfs_quota_us"), "20000");
    assert_eq!(read(&cg.0, "cpu.cfs_period_us"), "50000");
    assert_eq!(read(&cg.0, "cpu.cfs_burst_us"), "1000");
    if rt {
        assert_eq!(read(&cg.0, "cpu.rt_period_us"), "1000000");
    }
    assert_eq!(read(&cg.0, "memory.limit_in_bytes"), mib(64));
    assert_eq!(read(&cg.0, "memory.soft_limit_in_bytes"), mib(32));
    assert_eq!(read(&cg.0, "memory.memsw.limit_in_bytes"), mib(128));
    assert_eq!(read(&cg.0, "memory.swappiness"), "10");
    assert!(read(&cg.0, "memory.oom_control").contains("oom_kill_disable 1"));
    assert_eq!(read(&cg.0, "memory.kmem.tcp.limit_in_bytes"), mib(16));
    assert_eq!(read(&cg.0, "pids.max"), "max");
    // Raising the limit above the current memsw needs memsw raised first; update orders it.
    let upd = res(json!({"memory": {"limit": 256 * MIB, "swap": 512 * MIB}}));
    cg.0.update(&upd).unwrap();
    assert_eq!(read(&cg.0, "memory.limit_in_bytes"), mib(256));
    assert_eq!(read(&cg.0, "memory.memsw.limit_in_bytes"), mib(512));
    cg.finish();
}

#[test]
fn fields_map_to_kernel_files() {
    if skip_unless_root() {
        return;
    }
    if hull_cgroups::detect_layout().unwrap() == Layout::Unified {
        unified();
    } else {
        v1();
    }
}
