//! The cgroup plan without root and without touching /sys: layouts from mountinfo and
//! /proc/self/cgroup texts, where a container's dirs go, and which file each resource is written
//! to on unified, hybrid and legacy hosts.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde_json::json;

use crate::cgroup::{Cgroup, Placement};
use crate::error::CgroupError;
use crate::layout::{Layout, System};
use crate::plan::{self, DeviceRules, Mode, Plan};

/// A systemd host on pure cgroup v2, the caller in a session scope.
const UNIFIED: &str = "\
22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 23 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
const UNIFIED_OWN: &str = "0::/user.slice/user-1000.slice/session-3.scope\n";
const UNIFIED_CONTROLLERS: &str = "cpuset cpu io memory hugetlb pids rdma misc";

/// This host's kind (see DESIGN.md): v1 controllers, cgroup2 at /sys/fs/cgroup/unified with only
/// hugetlb; the caller's memory cgroup is not the root.
const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
const HYBRID_OWN: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/929896c6
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";
const HYBRID_CONTROLLERS: &str = "hugetlb";

/// v1 only, with co-mounted controllers, a foreign named hierarchy, and an rdma hierarchy the
/// caller is not a member of.
const LEGACY: &str = "\
25 20 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:5 - cgroup cgroup rw,xattr,name=systemd
27 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:6 - cgroup cgroup rw,cpu,cpuacct
28 25 0:26 / /sys/fs/cgroup/cpuset rw,nosuid shared:7 - cgroup cgroup rw,cpuset
29 25 0:27 / /sys/fs/cgroup/memory rw,nosuid shared:8 - cgroup cgroup rw,memory
30 25 0:28 / /sys/fs/cgroup/devices rw,nosuid shared:9 - cgroup cgroup rw,devices
31 25 0:29 / /sys/fs/cgroup/pids rw,nosuid shared:10 - cgroup cgroup rw,pids
32 25 0:30 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid shared:11 - cgroup cgroup rw,net_cls,net_prio
33 25 0:31 / /sys/fs/cgroup/hugetlb rw,nosuid shared:12 - cgroup cgroup rw,hugetlb
34 25 0:32 / /sys/fs/cgroup/rdma rw,nosuid shared:13 - cgroup cgroup rw,rdma
35 25 0:33 / /sys/fs/cgroup/foo rw,nosuid shared:14 - cgroup cgroup rw,name=foo
";
const LEGACY_OWN: &str = "\
10:name=foo:/
9:hugetlb:/
8:net_cls,net_prio:/
7:pids:/system.slice/ssh.service
6:devices:/system.slice/ssh.service
5:memory:/system.slice/ssh.service
4:cpuset:/
3:cpu,cpuacct:/system.slice/ssh.service
1:name=systemd:/system.slice/ssh.service
";

#[derive(Clone, Copy, Debug)]
enum Host {
    Unified,
    Hybrid,
    Legacy,
}

const HOSTS: [Host; 3] = [Host::Unified, Host::Hybrid, Host::Legacy];

fn system(host: Host) -> System {
    let (mountinfo, own) = match host {
        Host::Unified => (UNIFIED, UNIFIED_OWN),
        Host::Hybrid => (HYBRID, HYBRID_OWN),
        Host::Legacy => (LEGACY, LEGACY_OWN),
    };
    System::from_texts(mountinfo, own).unwrap()
}

fn cgroup_at(host: Host, cgroups_path: Option<&str>) -> Result<Cgroup, CgroupError> {
    let controllers = match host {
        Host::Unified => UNIFIED_CONTROLLERS,
        Host::Hybrid => HYBRID_CONTROLLERS,
        Host::Legacy => "",
    };
    let placement = Placement::new(cgroups_path.map(Path::new), "abc")?;
    let controllers = controllers.split_whitespace().map(str::to_string).collect();
    Ok(Cgroup::place(system(host), controllers, &placement))
}

fn cgroup(host: Host) -> Cgroup {
    cgroup_at(host, None).unwrap()
}

/// The dir of the hierarchy holding `controller` ("" for the cgroup2 one).
fn dir_of<'a>(cg: &'a Cgroup, controller: &str) -> &'a crate::cgroup::Dir {
    cg.dirs
        .iter()
        .find(|d| {
            if controller.is_empty() {
                d.version == 2
            } else {
                d.controllers.iter().any(|c| c == controller)
            }
        })
        .unwrap_or_else(|| panic!("no hierarchy holds {controller:?}"))
}

fn resources(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).unwrap()
}

fn build(cg: &Cgroup, r: serde_json::Value) -> Result<Plan, CgroupError> {
    plan::build(cg, &resources(r), Mode::Create)
}

/// The plan's writes as (full file path, value), in order.
fn writes(cg: &Cgroup, r: serde_json::Value) -> Vec<(PathBuf, String)> {
    let plan = build(cg, r).unwrap();
    plan.writes
        .iter()
        .map(|w| (cg.dir(w.dir).path.join(&w.file), w.value.clone()))
        .collect()
}

fn w(path: &str, value: &str) -> (PathBuf, String) {
    (PathBuf::from(path), value.to_string())
}

fn err(r: Result<Plan, CgroupError>) -> String {
    r.map(|p| format!("unexpected plan {p:?}"))
        .unwrap_or_else(|e| e.to_string())
}

#[test]
fn layouts_are_detected() {
    assert_eq!(system(Host::Unified).layout, Layout::Unified);
    assert_eq!(system(Host::Hybrid).layout, Layout::Hybrid);
    assert_eq!(system(Host::Legacy).layout, Layout::Legacy);
    // Only named v1 hierarchies plus cgroup2: still unified, as runc classifies it.
    let named = format!("{UNIFIED}40 24 0:37 / /run/foo rw - cgroup cgroup rw,name=foo\n");
    assert_eq!(
        System::from_texts(&named, UNIFIED_OWN).unwrap().layout,
        Layout::Unified
    );
}

#[test]
fn only_hierarchies_the_caller_belongs_to_are_used() {
    let legacy = system(Host::Legacy);
    let points: Vec<&Path> = legacy
        .mounts
        .iter()
        .map(|(m, _)| m.mount_point.as_path())
        .collect();
    assert!(
        !points.contains(&Path::new("/sys/fs/cgroup/rdma")),
        "{points:?}"
    );
    assert!(points.contains(&Path::new("/sys/fs/cgroup/cpu,cpuacct")));
    // Joined: every real controller and name=systemd; the foreign name=foo is left alone.
    let cg = cgroup(Host::Legacy);
    let joined: Vec<String> = cg.dirs.iter().map(|d| d.controllers.join(",")).collect();
    assert_eq!(
        joined,
        [
            "name=systemd",
            "cpu,cpuacct",
            "cpuset",
            "memory",
            "devices",
            "pids",
            "net_cls,net_prio",
            "hugetlb"
        ]
    );
}

#[test]
fn bad_mountinfo_and_proc_cgroup() {
    // No cgroup file system at all, or only lines that are not mountinfo: a clear error.
    for text in [
        "",
        "22 28 0:21 / /proc rw - proc proc rw\n",
        "garbage\n/sys/fs/cgroup cgroup2\n1 2 3 - cgroup2\n",
    ] {
        let e = System::from_texts(text, UNIFIED_OWN).err();
        assert!(
            matches!(e, Some(CgroupError::NotMounted)),
            "{text:?}: {e:?}"
        );
    }
    // Malformed lines around a good one are skipped, not misread.
    let noisy = format!("garbage\n\n{UNIFIED}1 2 - cgroup\n");
    let s = System::from_texts(&noisy, UNIFIED_OWN).unwrap();
    assert_eq!(s.layout, Layout::Unified);
    assert_eq!(s.mounts.len(), 1);
    // A /proc/self/cgroup without our line for a hierarchy: that hierarchy is not used.
    let s = System::from_texts(HYBRID, "4:memory:/x\nnonsense\n").unwrap();
    assert_eq!(s.layout, Layout::Hybrid);
    assert_eq!(s.mounts.len(), 1);
    assert_eq!(s.mounts[0].1, Path::new("/sys/fs/cgroup/memory/x"));
}

#[test]
fn default_path_is_hull_id_under_our_own_cgroup() {
    // Unified: under the parent of our own cgroup (it holds processes, so cannot delegate).
    let cg = cgroup(Host::Unified);
    assert_eq!(cg.layout(), Layout::Unified);
    assert_eq!(cg.dirs.len(), 1);
    let d = dir_of(&cg, "");
    assert_eq!(
        d.base,
        Path::new("/sys/fs/cgroup/user.slice/user-1000.slice")
    );
    assert_eq!(
        d.chain(),
        [Path::new(
            "/sys/fs/cgroup/user.slice/user-1000.slice/hull-abc"
        )]
    );

    // Hybrid: under our own cgroup in each hierarchy, the cgroup2 one included.
    let cg = cgroup(Host::Hybrid);
    assert_eq!(cg.dirs.len(), 10);
    assert_eq!(
        dir_of(&cg, "memory").chain(),
        [Path::new(
            "/sys/fs/cgroup/memory/process_api/929896c6/hull-abc"
        )]
    );
    assert_eq!(
        dir_of(&cg, "cpu").path,
        Path::new("/sys/fs/cgroup/cpu/hull-abc")
    );
    assert_eq!(
        dir_of(&cg, "").path,
        Path::new("/sys/fs/cgroup/unified/hull-abc")
    );
    assert_eq!(
        dir_of(&cg, "name=systemd").path,
        Path::new("/sys/fs/cgroup/systemd/hull-abc")
    );

    let cg = cgroup(Host::Legacy);
    assert_eq!(
        dir_of(&cg, "cpuacct").path,
        Path::new("/sys/fs/cgroup/cpu,cpuacct/system.slice/ssh.service/hull-abc")
    );
    assert_eq!(
        dir_of(&cg, "cpuset").path,
        Path::new("/sys/fs/cgroup/cpuset/hull-abc")
    );
}

#[test]
fn unified_root_cgroup_is_its_own_base() {
    // In a cgroup namespace (or as PID 1) our cgroup is the mount's root: no parent to climb to.
    let s = System::from_texts(UNIFIED, "0::/\n").unwrap();
    let placement = Placement::new(None, "abc").unwrap();
    let cg = Cgroup::place(s, Vec::new(), &placement);
    assert_eq!(cg.dirs[0].base, Path::new("/sys/fs/cgroup"));
    assert_eq!(cg.dirs[0].path, Path::new("/sys/fs/cgroup/hull-abc"));
}

#[test]
fn relative_path_nests_under_own_cgroup() {
    for host in HOSTS {
        let cg = cgroup_at(host, Some("kube/pod1/abc")).unwrap();
        for d in &cg.dirs {
            assert!(d.path.starts_with(&d.base), "{host:?}: {d:?}");
            let chain = d.chain();
            assert_eq!(
                chain,
                [
                    d.base.join("kube"),
                    d.base.join("kube/pod1"),
                    d.base.join("kube/pod1/abc")
                ],
                "{host:?}"
            );
        }
    }
    let cg = cgroup_at(Host::Legacy, Some("./a/./b")).unwrap();
    assert_eq!(
        dir_of(&cg, "memory").path,
        Path::new("/sys/fs/cgroup/memory/system.slice/ssh.service/a/b")
    );
}

#[test]
fn absolute_path_starts_at_each_mount_point() {
    for host in HOSTS {
        let cg = cgroup_at(host, Some("/hull/abc")).unwrap();
        assert!(!cg.dirs.is_empty());
        for d in &cg.dirs {
            assert_eq!(d.base, d.mount_point, "{host:?}");
            assert_eq!(
                d.chain(),
                [d.mount_point.join("hull"), d.mount_point.join("hull/abc")],
                "{host:?}"
            );
        }
    }
    let cg = cgroup_at(Host::Unified, Some("/hull/abc")).unwrap();
    assert_eq!(cg.dirs[0].path, Path::new("/sys/fs/cgroup/hull/abc"));
}

#[test]
fn bad_paths_and_ids_are_refused() {
    for bad in ["../x", "a/../../b", "/a/../b", "/", "", "."] {
        let e = cgroup_at(Host::Unified, Some(bad))
            .err()
            .unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert!(
            e.to_string().starts_with("linux.cgroupsPath: "),
            "{bad:?}: {e}"
        );
    }
    for id in ["", "a/b", "..", "a b", &"x".repeat(300)] {
        let e = Placement::new(None, id)
            .err()
            .unwrap_or_else(|| panic!("id {id:?} accepted"));
        assert!(e.to_string().starts_with("container id: "), "{id:?}: {e}");
    }
}

#[test]
fn memory_files_per_layout() {
    let r = json!({"memory": {"limit": 1_073_741_824_i64, "reservation": 536_870_912}});
    assert_eq!(
        writes(&cgroup(Host::Unified), r.clone()),
        [
            w(
                "/sys/fs/cgroup/user.slice/user-1000.slice/hull-abc/memory.max",
                "1073741824"
            ),
            w(
                "/sys/fs/cgroup/user.slice/user-1000.slice/hull-abc/memory.low",
                "536870912"
            ),
        ]
    );
    let mem = "/sys/fs/cgroup/memory/process_api/929896c6/hull-abc";
    assert_eq!(
        writes(&cgroup(Host::Hybrid), r),
        [
            w(&format!("{mem}/memory.limit_in_bytes"), "1073741824"),
            w(&format!("{mem}/memory.soft_limit_in_bytes"), "536870912"),
        ]
    );
    // -1 is "unlimited": v2 spells it max.
    let r = json!({"memory": {"limit": -1}});
    assert_eq!(writes(&cgroup(Host::Unified), r.clone())[0].1, "max");
    assert_eq!(writes(&cgroup(Host::Legacy), r)[0].1, "-1");
    // 0 means unset, as runc reads it: nothing to write.
    assert!(writes(&cgroup(Host::Legacy), json!({"memory": {"limit": 0}})).is_empty());
}

#[test]
fn memory_v2_conversions_and_refusals() {
    let cg = cgroup(Host::Unified);
    // OCI swap is memory+swap; memory.swap.max is swap alone, and is written first.
    let ws = writes(
        &cg,
        json!({"memory": {"limit": 100_000_000, "swap": 300_000_000}}),
    );
    let files: Vec<_> = ws
        .iter()
        .map(|(p, v)| (p.file_name().unwrap().to_str().unwrap(), v.as_str()))
        .collect();
    assert_eq!(
        files,
        [
            ("memory.swap.max", "200000000"),
            ("memory.max", "100000000")
        ]
    );
    let ws = writes(&cg, json!({"memory": {"limit": 100_000_000, "swap": -1}}));
    assert_eq!(ws[0].1, "max");
    for (r, field) in [
        (json!({"memory": {"swap": 300_000_000}}), "memory.swap"),
        (json!({"memory": {"swappiness": 10}}), "memory.swappiness"),
        (
            json!({"memory": {"disableOOMKiller": true}}),
            "memory.disableOOMKiller",
        ),
        (
            json!({"memory": {"limit": 200_000_000, "swap": 100_000_000}}),
            "memory.swap",
        ),
        (json!({"memory": {"limit": -2}}), "memory.limit"),
    ] {
        let e = err(build(&cg, r.clone()));
        assert!(
            e.starts_with(&format!("linux.resources.{field}: ")),
            "{r}: {e}"
        );
    }
    // v1 has them.
    let ws = writes(
        &cgroup(Host::Legacy),
        json!({"memory": {"swappiness": 10, "disableOOMKiller": true}}),
    );
    let mem = "/sys/fs/cgroup/memory/system.slice/ssh.service/hull-abc";
    assert_eq!(
        ws,
        [
            w(&format!("{mem}/memory.swappiness"), "10"),
            w(&format!("{mem}/memory.oom_control"), "1"),
        ]
    );
}

#[test]
fn cpu_files_per_layout() {
    let r = json!({"cpu": {"shares": 1024, "quota": 50_000, "period": 100_000}});
    let v2 = "/sys/fs/cgroup/user.slice/user-1000.slice/hull-abc";
    assert_eq!(
        writes(&cgroup(Host::Unified), r.clone()),
        [
            w(&format!("{v2}/cpu.weight"), "39"),
            w(&format!("{v2}/cpu.max"), "50000 100000"),
        ]
    );
    // v1: the period before the quota, which the kernel checks against the period in force.
    for (host, dir) in [
        (Host::Hybrid, "/sys/fs/cgroup/cpu/hull-abc"),
        (
            Host::Legacy,
            "/sys/fs/cgroup/cpu,cpuacct/system.slice/ssh.service/hull-abc",
        ),
    ] {
        assert_eq!(
            writes(&cgroup(host), r.clone()),
            [
                w(&format!("{dir}/cpu.shares"), "1024"),
                w(&format!("{dir}/cpu.cfs_period_us"), "100000"),
                w(&format!("{dir}/cpu.cfs_quota_us"), "50000"),
            ],
            "{host:?}"
        );
    }
    // Unlimited quota alone.
    let ws = writes(&cgroup(Host::Unified), json!({"cpu": {"quota": -1}}));
    assert_eq!(ws, [w(&format!("{v2}/cpu.max"), "max")]);
    let ws = writes(&cgroup(Host::Legacy), json!({"cpu": {"quota": -1}}));
    assert_eq!(ws[0].1, "-1");
    assert!(ws[0].0.ends_with("cpu.cfs_quota_us"));
}

#[test]
fn cpu_refusals() {
    for host in HOSTS {
        let cg = cgroup(host);
        for (r, field) in [
            (json!({"cpu": {"quota": 10}}), "cpu.quota"),
            (json!({"cpu": {"period": 10}}), "cpu.period"),
            (json!({"cpu": {"shares": 1}}), "cpu.shares"),
            (json!({"cpu": {"burst": 1000}}), "cpu.burst"),
            (json!({"cpu": {"idle": 2}}), "cpu.idle"),
            (json!({"cpu": {"cpus": "2-1"}}), "cpu.cpus"),
            (json!({"cpu": {"mems": "zero"}}), "cpu.mems"),
        ] {
            let e = err(build(&cg, r.clone()));
            assert!(
                e.starts_with(&format!("linux.resources.{field}: ")),
                "{host:?} {r}: {e}"
            );
        }
    }
    let e = err(build(
        &cgroup(Host::Unified),
        json!({"cpu": {"realtimeRuntime": 1000}}),
    ));
    assert!(e.contains("no cgroup v2 interface"), "{e}");
}

#[test]
fn pids_and_cpuset_files_per_layout() {
    let r = json!({"pids": {"limit": 100}, "cpu": {"cpus": "0-1", "mems": "0"}});
    let v2 = "/sys/fs/cgroup/user.slice/user-1000.slice/hull-abc";
    assert_eq!(
        writes(&cgroup(Host::Unified), r.clone()),
        [
            w(&format!("{v2}/cpuset.cpus"), "0-1"),
            w(&format!("{v2}/cpuset.mems"), "0"),
            w(&format!("{v2}/pids.max"), "100"),
        ]
    );
    assert_eq!(
        writes(&cgroup(Host::Hybrid), r),
        [
            w("/sys/fs/cgroup/cpuset/hull-abc/cpuset.cpus", "0-1"),
            w("/sys/fs/cgroup/cpuset/hull-abc/cpuset.mems", "0"),
            w("/sys/fs/cgroup/pids/hull-abc/pids.max", "100"),
        ]
    );
    // 0 and -1 both lift the limit.
    for limit in [0, -1] {
        let ws = writes(&cgroup(Host::Legacy), json!({"pids": {"limit": limit}}));
        assert_eq!(ws[0].1, "max", "{limit}");
    }
    let e = err(build(&cgroup(Host::Legacy), json!({"pids": {"limit": -5}})));
    assert!(e.starts_with("linux.resources.pids.limit: "), "{e}");
}

#[test]
fn controllers_enabled_in_the_v2_subtree() {
    let r = json!({"memory": {"limit": 1_000_000}, "pids": {"limit": 10}});
    let p = build(&cgroup(Host::Unified), r.clone()).unwrap();
    assert_eq!(p.enable_v2, ["memory", "pids"]);
    // Hybrid: memory and pids are v1 hierarchies, nothing to enable on cgroup2.
    assert!(build(&cgroup(Host::Hybrid), r)
        .unwrap()
        .enable_v2
        .is_empty());
}

#[test]
fn hugetlb_goes_where_the_controller_is() {
    let sizes = crate::controllers::hugetlb::page_sizes();
    let Some(size) = sizes.first() else {
        // A kernel without huge pages refuses every size, naming the field.
        let e = err(build(
            &cgroup(Host::Unified),
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}),
        ));
        assert!(
            e.starts_with("linux.resources.hugepageLimits[0].pageSize"),
            "{e}"
        );
        return;
    };
    let r = json!({"hugepageLimits": [{"pageSize": size, "limit": 4_194_304}]});
    // Hybrid: only on the cgroup2 mount (this host's case).
    let cg = cgroup(Host::Hybrid);
    let p = build(&cg, r.clone()).unwrap();
    assert_eq!(p.enable_v2, ["hugetlb"]);
    assert_eq!(
        writes(&cg, r.clone()),
        [w(
            &format!("/sys/fs/cgroup/unified/hull-abc/hugetlb.{size}.max"),
            "4194304"
        )]
    );
    assert_eq!(
        writes(&cgroup(Host::Legacy), r.clone()),
        [w(
            &format!("/sys/fs/cgroup/hugetlb/hull-abc/hugetlb.{size}.limit_in_bytes"),
            "4194304"
        )]
    );
    let ws = writes(
        &cgroup(Host::Unified),
        json!({"hugepageLimits": [{"pageSize": size, "limit": -1}]}),
    );
    assert_eq!(ws[0].1, "max");
    assert!(ws[0].0.ends_with(format!("hugetlb.{size}.max")));
    let e = err(build(
        &cgroup(Host::Unified),
        json!({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}),
    ));
    assert!(
        e.starts_with("linux.resources.hugepageLimits[0].pageSize"),
        "{e}"
    );
    // A hybrid host whose cgroup2 mount offers nothing has no hugetlb at all.
    let placement = Placement::new(None, "abc").unwrap();
    let cg = Cgroup::place(system(Host::Hybrid), Vec::new(), &placement);
    let e = err(build(&cg, r));
    assert!(
        e.contains("the hugetlb cgroup controller is not mounted"),
        "{e}"
    );
}

#[test]
fn devices_rules_go_to_v1_or_bpf() {
    let r = json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}
    ]});
    let cg = cgroup(Host::Unified);
    match build(&cg, r.clone()).unwrap().devices {
        Some(DeviceRules::Bpf(i, rules)) => {
            assert_eq!(cg.dir(i).version, 2);
            assert_eq!(rules.len(), 2);
            assert_eq!(rules[1].v1_string(), "c 1:3 rw");
        }
        other => panic!("unified: {other:?}"),
    }
    for host in [Host::Hybrid, Host::Legacy] {
        let cg = cgroup(host);
        match build(&cg, r.clone()).unwrap().devices {
            Some(DeviceRules::V1(i, rules, update)) => {
                assert_eq!(cg.dir(i).controllers, ["devices"], "{host:?}");
                assert!(!update);
                assert_eq!(rules[0].v1_string(), "a *:* rwm");
            }
            other => panic!("{host:?}: {other:?}"),
        }
    }
    let e = err(build(
        &cgroup(Host::Legacy),
        json!({"devices": [{"allow": true, "type": "c", "access": "rx"}]}),
    ));
    assert!(e.starts_with("linux.resources.devices[0].access"), "{e}");
}

#[test]
fn unified_keys_per_layout() {
    let r = json!({"unified": {"memory.high": "1000000", "cgroup.max.depth": "3"}});
    let v2 = "/sys/fs/cgroup/user.slice/user-1000.slice/hull-abc";
    assert_eq!(
        writes(&cgroup(Host::Unified), r.clone()),
        [
            w(&format!("{v2}/cgroup.max.depth"), "3"),
            w(&format!("{v2}/memory.high"), "1000000"),
        ]
    );
    let e = err(build(&cgroup(Host::Hybrid), r.clone()));
    assert!(
        e.contains("the memory controller is a cgroup v1 hierarchy"),
        "{e}"
    );
    let e = err(build(&cgroup(Host::Legacy), r));
    assert!(e.contains("need a cgroup v2 host"), "{e}");
    let ws = writes(
        &cgroup(Host::Hybrid),
        json!({"unified": {"hugetlb.2MB.max": "max"}}),
    );
    assert_eq!(
        ws,
        [w("/sys/fs/cgroup/unified/hull-abc/hugetlb.2MB.max", "max")]
    );
    for key in [
        "cgroup.procs",
        "memory",
        "memory.",
        "../memory.max",
        "bogus.max",
    ] {
        let e = err(build(
            &cgroup(Host::Unified),
            json!({"unified": {key: "1"}}),
        ));
        assert!(
            e.starts_with(&format!("linux.resources.unified.{key}: ")),
            "{key}: {e}"
        );
    }
}

#[test]
fn network_is_v1_only() {
    let r =
        json!({"network": {"classID": 1_048_577, "priorities": [{"name": "eth0", "priority": 5}]}});
    let dir = "/sys/fs/cgroup/net_cls,net_prio/hull-abc";
    assert_eq!(
        writes(&cgroup(Host::Legacy), r.clone()),
        [
            w(&format!("{dir}/net_cls.classid"), "1048577"),
            w(&format!("{dir}/net_prio.ifpriomap"), "eth0 5"),
        ]
    );
    let e = err(build(&cgroup(Host::Unified), r));
    assert!(e.starts_with("linux.resources.network.classID: "), "{e}");
}

#[test]
fn update_mode_marks_v1_device_rules_live() {
    let cg = cgroup(Host::Legacy);
    let r = resources(json!({"devices": [{"allow": false, "access": "rwm"}]}));
    match plan::build(&cg, &r, Mode::Update).unwrap().devices {
        Some(DeviceRules::V1(_, _, update)) => assert!(update),
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_resources_plan_nothing() {
    for host in HOSTS {
        let p = build(&cgroup(host), json!({})).unwrap();
        assert!(p.writes.is_empty() && p.devices.is_none() && p.enable_v2.is_empty());
    }
}

#[test]
fn dropped_fields_are_ignored_once_and_the_rest_applied() {
    let r = json!({
        "memory": {"limit": 100_000_000, "kernel": 50_000_000, "kernelTCP": 1_000_000},
        "blockIO": {"weight": 0, "leafWeight": 300,
                    "weightDevice": [{"major": 1, "minor": 0, "leafWeight": 200}, {"major": 1, "minor": 1, "leafWeight": 100}]},
    });
    for host in HOSTS {
        let p = build(&cgroup(host), r.clone()).unwrap();
        let files: Vec<&str> = p.writes.iter().map(|w| w.file.as_str()).collect();
        assert!(
            files.contains(&"memory.max") || files.contains(&"memory.limit_in_bytes"),
            "{host:?}: {files:?}"
        );
        assert!(!files
            .iter()
            .any(|f| f.contains("kmem.limit") || f.contains("leaf")));
        // No tcp file in these made-up hierarchies: kernelTCP is skipped too, and said so.
        assert_eq!(
            p.ignored,
            [
                "linux.resources.memory.kernel: ignored: kernel memory limits were removed from the kernel (5.16+, and cgroup v2 never had them)",
                "linux.resources.memory.kernelTCP: ignored: this kernel has no memory.kmem.tcp.limit_in_bytes (cgroup v2 charges TCP memory to memory.max)",
                "linux.resources.blockIO.leafWeight: ignored: leaf weights were removed from the kernel with the cfq scheduler",
            ],
            "{host:?}"
        );
    }
    let p = build(
        &cgroup(Host::Hybrid),
        json!({"blockIO": {"weightDevice": [{"major": 1, "minor": 0, "leafWeight": 200}]}}),
    )
    .unwrap();
    assert_eq!(p.ignored.len(), 1);
    assert!(
        p.ignored[0].starts_with("linux.resources.blockIO.weightDevice[0].leafWeight: ignored: "),
        "{:?}",
        p.ignored
    );
    assert!(p.writes.is_empty());
}

#[test]
fn zero_weights_are_unset() {
    // docker 20.10 writes `"blockIO": {"weight": 0}` into every config.
    for host in HOSTS {
        let p = build(
            &cgroup(host),
            json!({"blockIO": {"weight": 0, "leafWeight": 0, "weightDevice": [{"major": 1, "minor": 0, "weight": 0}]}}),
        )
        .unwrap();
        assert!(
            p.writes.is_empty() && p.ignored.is_empty(),
            "{host:?}: {p:?}"
        );
    }
}

#[test]
fn update_keeps_what_is_zero() {
    let cg = cgroup(Host::Legacy);
    let r = resources(
        json!({"pids": {"limit": 0}, "memory": {"limit": 0}, "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": ""}, "blockIO": {"weight": 0}}),
    );
    let p = plan::build(&cg, &r, Mode::Update).unwrap();
    assert!(p.writes.is_empty(), "{p:?}");
}
