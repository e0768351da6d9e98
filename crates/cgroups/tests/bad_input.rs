//! Bad input: a clear error naming the field, and no cgroup dir left behind in any hierarchy.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{id, res, skip_unless_root};
use hull_cgroups::Cgroup;
use serde_json::{json, Value};

/// Creates with `r`; asserts it fails with a message starting with `field` and leaves nothing.
fn rejected(test: &str, r: Value, field: &str) -> String {
    let mut cg = Cgroup::new(None, &id(test)).unwrap();
    let err = cg
        .create(Some(&res(r)))
        .expect_err("create must fail")
        .to_string();
    eprintln!("{test}: {err}");
    assert!(
        err.starts_with(field),
        "error {err:?} does not name {field}"
    );
    assert!(!err.contains('\n'), "error is not one line: {err:?}");
    common::assert_gone(&cg);
    cg.remove().expect("remove after failed create is a no-op");
    err
}

#[test]
fn negative_and_overflowing_values() {
    if skip_unless_root() {
        return;
    }
    rejected(
        "neg-mem",
        json!({"memory": {"limit": -5}}),
        "linux.resources.memory.limit",
    );
    rejected(
        "neg-quota",
        json!({"cpu": {"quota": -7}}),
        "linux.resources.cpu.quota",
    );
    rejected(
        "big-shares",
        json!({"cpu": {"shares": 1u64 << 40}}),
        "linux.resources.cpu.shares",
    );
    rejected(
        "big-period",
        json!({"cpu": {"period": 5_000_000}}),
        "linux.resources.cpu.period",
    );
    rejected(
        "neg-pids",
        json!({"pids": {"limit": -5}}),
        "linux.resources.pids.limit",
    );
    rejected(
        "swappiness",
        json!({"memory": {"swappiness": 101}}),
        "linux.resources.memory.swappiness",
    );
    rejected(
        "swap-below",
        json!({"memory": {"limit": 1 << 26, "swap": 1 << 25}}),
        "linux.resources.memory.swap",
    );
    rejected(
        "dev-major",
        json!({"devices": [{"allow": true, "type": "c", "major": -3, "access": "rwm"}]}),
        "linux.resources.devices[0].major",
    );
    rejected(
        "dev-access",
        json!({"devices": [{"allow": true, "type": "c", "access": "rwx"}]}),
        "linux.resources.devices[0].access",
    );
    rejected(
        "cpus",
        json!({"cpu": {"cpus": "1-0"}}),
        "linux.resources.cpu.cpus",
    );
    rejected(
        "hugepage-size",
        json!({"hugepageLimits": [{"pageSize": "3MB", "limit": 1 << 21}]}),
        "linux.resources.hugepageLimits[0].pageSize",
    );
}

#[test]
fn missing_device_is_named() {
    if skip_unless_root() {
        return;
    }
    let e = rejected(
        "nodev",
        json!({"blockIO": {"throttleReadBpsDevice": [{"major": 7, "minor": 4000, "rate": 1}]}}),
        "linux.resources.blockIO.throttleReadBpsDevice[0]",
    );
    assert!(e.contains("7:4000 does not exist"), "{e}");
}

#[test]
fn unknown_or_unsupported_controllers() {
    if skip_unless_root() {
        return;
    }
    let layout = hull_cgroups::detect_layout().unwrap();
    rejected(
        "unified-unknown",
        json!({"unified": {"foo.bar": "1"}}),
        "linux.resources.unified.foo.bar",
    );
    if layout != hull_cgroups::Layout::Unified {
        // net_cls / net_prio are not mounted on this host kind; say so.
        let e = rejected(
            "net-cls",
            json!({"network": {"classID": 42}}),
            "linux.resources.network.classID",
        );
        assert!(e.contains("not mounted"), "{e}");
    }
    let e = rejected(
        "use-hierarchy",
        json!({"memory": {"useHierarchy": false}}),
        "linux.resources.memory.useHierarchy",
    );
    assert!(e.contains("hierarchical"), "{e}");
}

#[test]
fn device_rule_punching_a_hole_in_a_wildcard_is_refused() {
    if skip_unless_root() {
        return;
    }
    // As runc: v1 would silently keep /dev/zero's mknod allowed through "c *:* m".
    let mut rules = hull_cgroups::default_device_rules();
    rules.push(
        serde_json::from_value(
            json!({"allow": false, "type": "c", "major": 1, "minor": 5, "access": "rwm"}),
        )
        .unwrap(),
    );
    if hull_cgroups::detect_layout().unwrap() == hull_cgroups::Layout::Unified {
        hull_testkit::skip!("v2's eBPF filter expresses any rule order");
    }
    let e = rejected(
        "devhole",
        json!({ "devices": rules }),
        "linux.resources.devices[12]",
    );
    assert!(e.contains("c *:* m"), "{e}");
}

#[test]
fn blkio_weight_names_the_scheduler() {
    if skip_unless_root() {
        return;
    }
    let any_bfq = std::fs::read_dir("/sys/block").unwrap().flatten().any(|e| {
        std::fs::read_to_string(e.path().join("queue/scheduler")).is_ok_and(|s| s.contains("[bfq]"))
    });
    if any_bfq {
        hull_testkit::skip!("a disk uses bfq here, so blkio weights are supported");
    }
    let e = rejected(
        "weight",
        json!({"blockIO": {"weight": 500}}),
        "linux.resources.blockIO.weight",
    );
    assert!(e.contains("scheduler"), "{e}");
    rejected(
        "weight-range",
        json!({"blockIO": {"weight": 5}}),
        "linux.resources.blockIO.weight",
    );
}

#[test]
fn kernel_refusal_after_creation_removes_the_dirs() {
    if skip_unless_root() {
        return;
    }
    // Valid syntax, but CPU 4000 does not exist: the kernel refuses the write after mkdir.
    let e = rejected(
        "no-such-cpu",
        json!({"cpu": {"cpus": "4000"}}),
        "linux.resources.cpu.cpus",
    );
    assert!(e.contains("cpuset.cpus"), "{e}");
}

#[test]
fn bad_ids_and_paths() {
    for bad in ["", "..", "a/b"] {
        let e = Cgroup::new(None, bad).unwrap_err().to_string();
        assert!(e.starts_with("container id"), "{e}");
    }
    let e = Cgroup::new(Some(std::path::Path::new("/hull/../etc")), "x")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("linux.cgroupsPath"), "{e}");
}
