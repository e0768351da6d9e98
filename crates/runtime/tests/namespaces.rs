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

/// A created container whose process sleeps, to join the namespaces of; and its pid.
fn created_sleeper(id: &str) -> (TestContainer, i64) {
    let mut c = TestContainer::new(id);
    c.set_args(&["sleep", "100"]);
    c.create();
    let pid = c.state()["pid"].as_i64().unwrap();
    (c, pid)
}

#[test]
fn joining_namespaces_by_path() {
    if !can_run() {
        return;
    }
    let (_first, pid) = created_sleeper("nsjoin-a");
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
fn a_lone_network_namespace_joined_beside_new_ones() {
    // Joined by the process itself after the clone that makes the others (no intermediate).
    if !can_run() {
        return;
    }
    let (_first, pid) = created_sleeper("netjoin-a");
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let mut second = TestContainer::new("netjoin-b");
    second.config["linux"]["namespaces"] = json!([
        {"type": "mount"},
        {"type": "network", "path": format!("/proc/{pid}/ns/net")},
        {"type": "ipc"},
        {"type": "pid"},
    ]);
    second.config.as_object_mut().unwrap().remove("hostname");
    second.script("readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; echo $$");
    let out = second.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], theirs.to_string_lossy());
    assert_ne!(lines[1], host_ns("ipc"));
    // The clone made the pid namespace: the shell is its first process.
    assert_eq!(lines[2], "1");
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

/// Runs `script` with sh in a private mount namespace of its own (`unshare -m`), so that what the
/// runtime mounts in its caller's namespace never reaches the host's; `$RT` runs the runtime for
/// `c`, `$DIR` is the test's directory. The script's stdout, after asserting it succeeded.
fn in_private_mount_ns(c: &TestContainer, script: &str) -> String {
    c.write_config();
    let rt = format!(
        "{} --root {} run --bundle {} {}",
        common::runtime_bin(),
        c.root.display(),
        c.bundle.display(),
        c.id
    );
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .env("RT", rt)
        .env("DIR", &c.dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = c.dir.to_str().unwrap();
    assert!(
        !host.lines().any(|l| l.contains(dir)),
        "a mount reached the host: {host}"
    );
    stdout
}

/// The namespace's mount table before and after the container, and the container's output.
const BEFORE_RUN_AFTER: &str = r#"cat /proc/self/mountinfo > "$DIR/before"
$RT > "$DIR/out" || { cat "$DIR/out"; exit 1; }
cat /proc/self/mountinfo > "$DIR/after"
cat "$DIR/out"
cmp -s "$DIR/before" "$DIR/after" && echo table-unchanged || diff "$DIR/before" "$DIR/after""#;

#[test]
fn an_omitted_mount_namespace_is_the_callers() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("mntns-inherited");
    c.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "mount");
    // Masking would change the caller's own paths: runc refuses it without a mount namespace.
    let linux = c.config["linux"].as_object_mut().unwrap();
    linux.remove("maskedPaths");
    linux.remove("readonlyPaths");
    c.script("readlink /proc/self/ns/mnt; awk '$5 == \"/proc\"' /proc/self/mountinfo | wc -l; ls /bin/busybox; sleep 1");
    // `exec` gets the container's root too: no mount namespace gives it one.
    std::fs::write(c.bundle.join("rootfs/only-in-the-container"), "").unwrap();
    let exec = format!(
        "(sleep 0.5; {} --root {} exec {} ls /only-in-the-container > \"$DIR/exec\" 2>&1) &",
        common::runtime_bin(),
        c.root.display(),
        c.id
    );
    let out = in_private_mount_ns(
        &c,
        &format!("readlink /proc/self/ns/mnt\n{exec}\n{BEFORE_RUN_AFTER}\nwait; cat \"$DIR/exec\""),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert_eq!(
        lines[0], lines[1],
        "the container has a mount namespace of its own: {out}"
    );
    assert_eq!(
        lines[2..],
        [
            "1",
            "/bin/busybox",
            "table-unchanged",
            "/only-in-the-container"
        ],
        "{out}"
    );
}

#[test]
fn a_mount_namespace_joined_by_path_holds_the_rootfs() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("mntns-joined");
    // A symlink to /proc/PID/ns/mnt of a process the script starts in a new mount namespace.
    let ns_file = c.dir.join("mntns");
    for n in c.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "mount" {
            *n = json!({"type": "mount", "path": ns_file});
        }
    }
    c.script("readlink /proc/self/ns/mnt; awk '$5 == \"/\"' /proc/self/mountinfo | wc -l");
    let out = in_private_mount_ns(
        &c,
        &format!(
            "unshare --mount --propagation private sleep 100 &\n\
             while [ \"$(readlink /proc/$!/ns/mnt)\" = \"$(readlink /proc/self/ns/mnt)\" ]; do sleep 0.01; done\n\
             ln -s /proc/$!/ns/mnt \"$DIR/mntns\"\n\
             readlink /proc/$!/ns/mnt\n\
             {BEFORE_RUN_AFTER}\nkill $!"
        ),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        lines[0], lines[1],
        "the container is not in the joined namespace: {out}"
    );
    // pivot_root there: the rootfs is its / and the old root is gone.
    assert_eq!(lines[2..], ["1", "table-unchanged"], "{out}");
}
