//! Each namespace of the config, seen from inside the container: new ones differ from the host's,
//! joined ones equal the joined, the user namespace maps ids, the time namespace has its offsets.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{can_run, host_ns, TestContainer};
use serde_json::json;

const ALL: [&str; 8] = [
    "mount", "pid", "uts", "ipc", "network", "cgroup", "time", "user",
];

fn proc_name(kind: &str) -> &str {
    match kind {
        "mount" => "mnt",
        "network" => "net",
        other => other,
    }
}

fn with_namespaces(c: &mut TestContainer, kinds: &[&str]) {
    if !kinds.contains(&"uts") {
        c.config.as_object_mut().unwrap().remove("hostname");
    }
    c.config["linux"]["namespaces"] =
        json!(kinds.iter().map(|k| json!({"type": k})).collect::<Vec<_>>());
}

fn user_mapping(c: &mut TestContainer) {
    c.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
}

#[test]
fn every_new_namespace_differs_from_the_host() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("nsnew");
    with_namespaces(&mut c, &ALL);
    user_mapping(&mut c);
    // The host's root owns the rootfs; inside the user namespace it is unmapped, which is fine
    // for reading and executing busybox.
    let names: Vec<&str> = ALL.iter().map(|k| proc_name(k)).collect();
    c.script(&format!(
        "for n in {}; do readlink /proc/self/ns/$n; done",
        names.join(" ")
    ));
    let out = c.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), names.len(), "{out}");
    for (name, inside) in names.iter().zip(lines) {
        assert_ne!(inside, host_ns(name), "{name} namespace is the host's");
        assert!(inside.starts_with(&format!("{name}:[")), "{inside}");
    }
}

#[test]
fn user_namespace_maps_ids() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("userns");
    with_namespaces(&mut c, &["mount", "pid", "user", "ipc", "uts", "network"]);
    user_mapping(&mut c);
    c.script("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g");
    let out = c.run_ok();
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        words,
        ["0", "100000", "65536", "0", "100000", "65536", "0", "0"],
        "{out}"
    );
}

#[test]
fn host_namespaces_are_shared_when_not_listed() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("nshost");
    with_namespaces(&mut c, &["mount", "pid"]);
    c.script("for n in net uts ipc; do readlink /proc/self/ns/$n; done");
    let out = c.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, [host_ns("net"), host_ns("uts"), host_ns("ipc")]);
}

#[test]
fn joining_namespaces_by_path() {
    if !can_run() {
        return;
    }
    let mut first = TestContainer::new("nsjoin-a");
    first.set_args(&["sleep", "100"]);
    first.create();
    let pid = first.state()["pid"].as_i64().unwrap();
    let theirs = |n: &str| {
        std::fs::read_link(format!("/proc/{pid}/ns/{n}"))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let mut second = TestContainer::new("nsjoin-b");
    second.config["linux"]["namespaces"] = json!([
        {"type": "mount"},
        {"type": "network", "path": format!("/proc/{pid}/ns/net")},
        {"type": "ipc", "path": format!("/proc/{pid}/ns/ipc")},
        {"type": "uts", "path": format!("/proc/{pid}/ns/uts")},
        {"type": "pid", "path": format!("/proc/{pid}/ns/pid")},
    ]);
    second.config.as_object_mut().unwrap().remove("hostname");
    second.script("for n in net ipc uts pid; do readlink /proc/self/ns/$n; done");
    let out = second.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [theirs("net"), theirs("ipc"), theirs("uts"), theirs("pid")]
    );
}

#[test]
fn hostname_and_domainname() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("uts");
    c.config["hostname"] = json!("hull-box");
    c.config["domainname"] = json!("hull.test");
    c.script("hostname; cat /proc/sys/kernel/domainname");
    assert_eq!(c.run_ok(), "hull-box\nhull.test\n");
    assert_ne!(
        nix::unistd::gethostname().unwrap().to_string_lossy(),
        "hull-box"
    );
}

#[test]
fn time_namespace_offsets_apply_before_the_process_starts() {
    if !can_run() {
        return;
    }
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        hull_testkit::skip!("this kernel has no time namespaces");
    }
    let mut c = TestContainer::new("timens");
    with_namespaces(&mut c, &["mount", "pid", "time"]);
    c.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 8640000, "nanosecs": 0}});
    c.script("cut -d. -f1 /proc/uptime");
    let inside: u64 = c.run_ok().trim().parse().unwrap();
    let host: u64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(inside >= host + 8640000, "uptime {inside} vs host {host}");
}

#[test]
fn time_namespace_offsets_with_a_user_namespace() {
    if !can_run() {
        return;
    }
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        hull_testkit::skip!("this kernel has no time namespaces");
    }
    let mut c = TestContainer::new("timens-user");
    with_namespaces(&mut c, &["mount", "pid", "ipc", "network", "time", "user"]);
    user_mapping(&mut c);
    c.config["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 86400, "nanosecs": 0}});
    c.script("cat /proc/self/timens_offsets");
    let out = c.run_ok();
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().eq(["monotonic", "86400", "0"])),
        "{out}"
    );
}
