//! The namespace plan from configs built here, without root: nothing is created or joined.

use std::path::Path;

use nix::sched::CloneFlags;
use oci_spec::runtime::{Linux, LinuxNamespaceType, Spec};
use serde_json::json;

use super::*;
use crate::spec::{validate, SpecError};

const ALL: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::User,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Time,
];

fn linux(v: serde_json::Value) -> Linux {
    serde_json::from_value(v).unwrap()
}

fn plan(v: serde_json::Value) -> NamespacePlan {
    NamespacePlan::new(Some(&linux(v))).unwrap()
}

fn maps() -> serde_json::Value {
    json!([{"containerID": 0, "hostID": 100_000, "size": 65_536}])
}

#[test]
fn names_and_flags_match_the_kernel() {
    let mut flags = CloneFlags::empty();
    for kind in ALL {
        // Each name is an entry of /proc/PID/ns on this kernel.
        let ns = Path::new("/proc/self/ns").join(proc_name(kind));
        assert!(ns.exists(), "{kind}: {} missing", ns.display());
        let f = clone_flag(kind);
        assert_eq!(f.bits().count_ones(), 1, "{kind}");
        assert!(!flags.intersects(f), "{kind} shares a flag");
        flags |= f;
    }
    assert_eq!(
        clone_flag(LinuxNamespaceType::Time).bits(),
        libc::CLONE_NEWTIME
    );
}

#[test]
fn no_linux_section_inherits_everything() {
    let p = NamespacePlan::new(None).unwrap();
    assert!(p.new.is_empty() && p.joins.is_empty());
    assert!(p.first_clone_flags().is_empty());
    assert!(!p.needs_intermediate() && !p.intermediate_forks());
    // Not a new user namespace: no map is written (pid 0 would fail if it tried).
    p.write_id_maps(0).unwrap();
}

#[test]
fn new_namespaces_are_cloned_but_cgroup_and_time_come_later() {
    let p = plan(json!({
        "namespaces": ALL.iter().map(|k| json!({"type": k})).collect::<Vec<_>>(),
        "uidMappings": maps(),
        "gidMappings": maps(),
    }));
    assert_eq!(p.new, ALL);
    for kind in ALL {
        assert!(p.is_new(kind) && p.is_private(kind), "{kind}");
    }
    assert_eq!(
        p.first_clone_flags(),
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUSER
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWNET
    );
    // With a new user namespace the clone makes the network namespace, in the same step.
    assert!(p.deferred().is_empty());
    assert!(!p.needs_intermediate());
    assert!(p.intermediate_forks());
    assert_eq!(p.uid_mappings.len(), 1);
    assert_eq!(p.uid_mappings[0].host_id(), 100_000);
    assert_eq!(p.gid_mappings[0].size(), 65_536);
}

#[test]
fn unlisted_namespaces_are_inherited() {
    let p = plan(json!({"namespaces": [{"type": "mount"}, {"type": "network"}]}));
    // The network namespace is the process's first unshare, not the clone's.
    assert_eq!(p.first_clone_flags(), CloneFlags::CLONE_NEWNS);
    assert_eq!(p.deferred(), CloneFlags::CLONE_NEWNET);
    for kind in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::User,
        LinuxNamespaceType::Uts,
    ] {
        assert!(!p.is_private(kind), "{kind}");
    }
    // No pid namespace: the intermediate's child would land in the host's anyway.
    assert!(!p.intermediate_forks());
}

#[test]
fn joins_come_first_user_namespace_leading() {
    let p = plan(json!({"namespaces": [
        {"type": "mount"},
        {"type": "network", "path": "/proc/self/ns/net"},
        {"type": "pid"},
        {"type": "user", "path": "/proc/self/ns/user"},
        {"type": "uts", "path": "/proc/self/ns/uts"},
    ]}));
    let joined: Vec<_> = p.joins.iter().map(|j| j.kind).collect();
    assert_eq!(
        joined,
        [
            LinuxNamespaceType::User,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Uts
        ]
    );
    assert_eq!(p.joins[0].path, Path::new("/proc/self/ns/user"));
    assert_eq!(p.new, [LinuxNamespaceType::Mount, LinuxNamespaceType::Pid]);
    assert!(p.is_private(LinuxNamespaceType::Network));
    assert!(!p.is_new(LinuxNamespaceType::Network));
    // Joins must happen before anything is created: the first clone creates nothing.
    assert!(p.needs_intermediate());
    assert!(p.first_clone_flags().is_empty());
    assert!(p.intermediate_forks());
    // A joined user namespace already has its maps.
    p.write_id_maps(0).unwrap();
}

#[test]
fn joined_pid_namespace_needs_the_extra_fork() {
    let p = plan(json!({"namespaces": [
        {"type": "mount"},
        {"type": "pid", "path": "/proc/self/ns/pid"},
    ]}));
    assert!(!p.is_new(LinuxNamespaceType::Pid));
    assert!(p.intermediate_forks());
}

#[test]
fn a_missing_namespace_path_is_named() {
    let l = linux(json!({"namespaces": [
        {"type": "mount"},
        {"type": "network", "path": "/nonexistent/hull-test/net"},
    ]}));
    let e = NamespacePlan::new(Some(&l)).unwrap_err();
    assert!(
        matches!(e, NamespaceError::Open { kind: "net", .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.starts_with("namespace net path /nonexistent/hull-test/net: "),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
}

#[test]
fn time_offsets_become_timens_lines() {
    let p = plan(json!({
        "namespaces": [{"type": "mount"}, {"type": "time"}],
        "timeOffsets": {
            "monotonic": {"secs": 86_400, "nanosecs": 5},
            "boottime": {"secs": -3}
        }
    }));
    let mut lines = p.time_offsets.clone();
    lines.sort();
    assert_eq!(lines, ["boottime -3 0", "monotonic 86400 5"]);
    assert!(p.is_new(LinuxNamespaceType::Time));
    assert!(!p
        .first_clone_flags()
        .contains(clone_flag(LinuxNamespaceType::Time)));
}

/// A config that passes validation but for its `linux` section.
fn spec_with(linux: serde_json::Value, hostname: Option<&str>) -> Spec {
    let mut v = json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs"},
        "linux": linux,
    });
    if let Some(h) = hostname {
        v["hostname"] = json!(h);
    }
    serde_json::from_value(v).unwrap()
}

#[test]
fn config_errors_are_caught_before_the_plan() {
    let ok = spec_with(
        json!({"namespaces": [{"type": "mount"}, {"type": "uts"}]}),
        Some("box"),
    );
    validate(&ok).unwrap();
    let cases = [
        (
            json!({"namespaces": [{"type": "mount"}, {"type": "pid"}, {"type": "pid"}]}),
            None,
            "namespace pid is listed twice",
        ),
        (
            json!({"namespaces": [{"type": "mount"}, {"type": "network", "path": "proc/1/ns/net"}]}),
            None,
            "must be absolute",
        ),
        (
            json!({"namespaces": [{"type": "mount"}, {"type": "user"}]}),
            None,
            "a new user namespace needs linux.uidMappings and linux.gidMappings",
        ),
        (
            json!({"namespaces": [{"type": "mount"}], "uidMappings": maps(), "gidMappings": maps()}),
            None,
            "need a new user namespace",
        ),
        (
            json!({"namespaces": [{"type": "mount"}]}),
            Some("box"),
            "need a private UTS namespace",
        ),
        (
            json!({"namespaces": [{"type": "mount"}], "timeOffsets": {"monotonic": {"secs": 1}}}),
            None,
            "need a new time namespace",
        ),
        (
            json!({"namespaces": [{"type": "mount"}, {"type": "time"}], "timeOffsets": {"realtime": {"secs": 1}}}),
            None,
            "unknown clock \"realtime\"",
        ),
    ];
    for (l, hostname, want) in cases {
        let e = validate(&spec_with(l.clone(), hostname)).unwrap_err();
        assert!(matches!(e, SpecError::Invalid(_)), "{l}: {e:?}");
        let msg = e.to_string();
        assert!(msg.starts_with("config.json: "), "{msg}");
        assert!(msg.contains(want), "{l}: {msg}");
    }
}

#[test]
fn a_lone_network_join_is_made_after_the_clone() {
    let mut p =
        plan(json!({"namespaces": [{"type": "mount"}, {"type": "pid"}, {"type": "network"}]}));
    let file = std::fs::File::open("/proc/self/ns/net").unwrap();
    p.join_instead_of_new(LinuxNamespaceType::Network, file)
        .unwrap();
    assert!(!p.is_new(LinuxNamespaceType::Network));
    assert!(p.is_private(LinuxNamespaceType::Network));
    // The clone makes every other namespace, as with no join; no intermediate process.
    assert!(!p.needs_intermediate());
    assert_eq!(
        p.first_clone_flags(),
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID
    );
    assert!(p.lone_network_join().is_some());
}

#[test]
fn a_network_join_beside_a_new_user_namespace_goes_through_the_intermediate() {
    let mut p = plan(json!({"namespaces": [{"type": "user"}, {"type": "network"}]}));
    let file = std::fs::File::open("/proc/self/ns/net").unwrap();
    p.join_instead_of_new(LinuxNamespaceType::Network, file)
        .unwrap();
    assert!(p.needs_intermediate());
    assert_eq!(p.first_clone_flags(), CloneFlags::empty());
}

#[test]
fn the_callers_namespace_needs_a_new_one_in_the_config() {
    let mut p = plan(json!({"namespaces": [{"type": "mount"}]}));
    let file = std::fs::File::open("/proc/self/ns/net").unwrap();
    let err = p
        .join_instead_of_new(LinuxNamespaceType::Network, file)
        .unwrap_err();
    assert!(err.to_string().contains("asks for no new one"), "{err}");
}
