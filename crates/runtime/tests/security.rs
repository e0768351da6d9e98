//! What the process may do, seen from inside: capabilities, rlimits, user and groups,
//! no_new_privs, seccomp.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{can_run, TestContainer};
use serde_json::json;

fn status_field(out: &str, field: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn capabilities_are_exactly_the_configured_sets() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("caps");
    let caps = json!(["CAP_NET_RAW", "CAP_CHOWN"]);
    c.config["process"]["capabilities"] = json!({
        "bounding": caps, "effective": caps, "permitted": caps, "inheritable": [], "ambient": []
    });
    c.set_args(&["cat", "/proc/self/status"]);
    let out = c.run_ok();
    // CAP_CHOWN = bit 0, CAP_NET_RAW = bit 13.
    let want = format!("{:016x}", (1u64 << 13) | 1);
    for field in ["CapEff:", "CapPrm:", "CapBnd:"] {
        assert_eq!(status_field(&out, field), want, "{field} in {out}");
    }
    assert_eq!(status_field(&out, "CapInh:"), "0000000000000000");
    assert_eq!(status_field(&out, "CapAmb:"), "0000000000000000");
}

#[test]
fn unknown_or_unavailable_capability_is_an_error_naming_it() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("badcap");
    // Not in this host's bounding set (see DESIGN.md), or unknown to the kernel elsewhere.
    let bounding = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = u64::from_str_radix(&status_field(&bounding, "CapBnd:"), 16).unwrap();
    if bnd & (1 << 24) != 0 {
        hull_testkit::skip!("CAP_SYS_RESOURCE is in this host's bounding set");
    }
    c.config["process"]["capabilities"]["bounding"] = json!(["CAP_SYS_RESOURCE"]);
    let (code, _, err) = c.run();
    assert_ne!(code, 0);
    assert!(err.contains("CAP_SYS_RESOURCE"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn rlimits_apply() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("rlimits");
    c.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400}
    ]);
    c.script("ulimit -n; ulimit -Hn; ulimit -u");
    assert_eq!(c.run_ok(), "512\n1000\n300\n");
}

#[test]
fn rlimit_above_the_hard_limit_is_reported() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("rlimitmax");
    c.config["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "soft": 1048576, "hard": 1048576}]);
    let (code, _, err) = c.run();
    assert_ne!(code, 0);
    assert!(err.contains("RLIMIT_NOFILE"), "{err}");
}

#[test]
fn user_groups_and_no_new_privileges() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("user");
    c.config["process"]["user"] =
        json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 63});
    c.config["process"]["noNewPrivileges"] = json!(true);
    c.script("id -u; id -g; id -G; umask; grep NoNewPrivs /proc/self/status");
    let out = c.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1001");
    let mut groups: Vec<&str> = lines[2].split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["10", "1001", "20"], "{out}");
    assert_eq!(lines[3], "0077");
    assert!(
        lines[4].ends_with("\t1") || lines[4].ends_with(" 1"),
        "{out}"
    );
}

#[test]
fn seccomp_blocked_syscall_returns_the_errno() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("seccomp");
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}
        ]
    });
    c.config["root"]["readonly"] = json!(false);
    c.script("mkdir /tmp/blocked 2>&1; echo done");
    // The first run compiles the filter and keeps it; the second loads the kept one; the third
    // finds the kept file damaged, compiles again and replaces it.
    let cache = c.root.join("@seccomp-cache");
    for round in ["compiled", "cached", "damaged cache"] {
        let out = c.run_ok();
        assert!(
            out.contains("Not supported") || out.contains("Operation not supported"),
            "{round}: {out}"
        );
        assert!(!c.bundle.join("rootfs/tmp/blocked").exists(), "{round}");
        let kept: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(kept.len(), 1, "{round}: {kept:?}");
        if round == "cached" {
            std::fs::write(&kept[0], b"hullbpf1 but not a filter").unwrap();
        }
    }
}

#[test]
fn seccomp_argument_filters() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("seccompargs");
    // Refuse personality(0xffffffff) queries only; other calls pass.
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{
            "names": ["kill"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1,
            "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]
        }]
    });
    c.script("kill -USR1 $$ 2>&1 || echo usr1-blocked; trap 'echo got-usr2' USR2; kill -USR2 $$; echo end");
    let out = c.run_ok();
    assert!(out.contains("usr1-blocked"), "{out}");
    assert!(out.contains("got-usr2"), "{out}");
}

#[test]
fn host_descriptors_do_not_leak_but_preserved_ones_pass() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("fds");
    c.script("for n in 3 4 5; do readlink /proc/$$/fd/$n || echo closed-$n; done");
    c.write_config();
    let marker = c.dir.join("host-secret");
    std::fs::write(&marker, "secret").unwrap();
    // fds 3, 4 and 5 open in the runtime's caller, not close-on-exec: only 3 may reach the
    // container (--preserve-fds 1).
    let line = format!(
        "exec 3<{m} 4<{m} 5<{m}; exec {rt} --root {root} run --preserve-fds 1 --bundle {b} {id}",
        m = marker.display(),
        rt = common::runtime_bin(),
        root = c.root.display(),
        b = c.bundle.display(),
        id = c.id
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &line])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].ends_with("host-secret"),
        "preserved fd 3 missing: {stdout}"
    );
    assert_eq!(
        &lines[1..],
        ["closed-4", "closed-5"],
        "host fds leaked: {stdout}"
    );
}

#[test]
fn seccomp_notify_listener_gets_the_fd_and_state() {
    use std::io::IoSliceMut;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::os::unix::net::UnixListener;

    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("notify");
    let socket = c.dir.join("agent.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": socket,
        "listenerMetadata": "hull-test-metadata",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    c.script("mkdir /tmp/x 2>&1; echo after-mkdir");
    let agent = std::thread::spawn(move || -> (String, String) {
        let (stream, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 16384];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .unwrap();
        let mut fd = None;
        for cmsg in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                // SAFETY: the fd was just received and nothing else owns it.
                fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
            }
        }
        let len = msg.bytes;
        let fd = fd.expect("no listener fd");
        let kind = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        // Closing the listener makes the blocked mkdir fail (ENOSYS) instead of hanging.
        drop(fd);
        (kind.to_string_lossy().into_owned(), text)
    });
    let (code, out, err) = c.run();
    let (kind, text) = agent.join().unwrap();
    assert_eq!(code, 0, "{out} {err}");
    assert!(kind.contains("seccomp"), "{kind}");
    let state: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], json!("hull-test-metadata"));
    assert_eq!(state["state"]["id"], json!(c.id));
    assert!(state["pid"].as_i64().unwrap() > 0);
    // The agent never answered: the kernel fails the notified mkdir once the listener is gone.
    assert!(out.contains("Function not implemented"), "{out}");
    assert!(out.contains("after-mkdir"), "{out}");
}

#[test]
fn memory_policy_is_the_process_numa_policy() {
    if !can_run() {
        return;
    }
    if !std::path::Path::new("/proc/self/numa_maps").exists() {
        hull_testkit::skip!("this kernel has no NUMA support (CONFIG_NUMA)");
    }
    // (memoryPolicy, what numa_maps shows for the process's own mappings). This host has one
    // node, 0: nodes that do not exist are left to the kernel, which uses those that do.
    let cases = [
        (
            json!({"mode": "MPOL_BIND", "nodes": "0-3", "flags": ["MPOL_F_STATIC_NODES"]}),
            "bind=static:0",
        ),
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0,7"}),
            "interleave:0",
        ),
        (
            json!({"mode": "MPOL_PREFERRED_MANY", "nodes": "1", "flags": ["MPOL_F_RELATIVE_NODES"]}),
            "prefer (many)=relative:0",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]}),
            "bind=balancing:0",
        ),
        // No nodes: MPOL_PREFERRED means local allocation.
        (json!({"mode": "MPOL_PREFERRED"}), "local"),
        (json!({"mode": "MPOL_DEFAULT"}), "default"),
    ];
    for (policy, want) in cases {
        let mut c = TestContainer::new("mempolicy");
        c.config["linux"]["memoryPolicy"] = policy.clone();
        c.script("grep Mems_allowed_list /proc/self/status; head -n1 /proc/self/numa_maps");
        let out = c.run_ok();
        assert_eq!(status_field(&out, "Mems_allowed_list:"), "0", "{out}");
        let maps = out.lines().nth(1).unwrap_or_default();
        // "ADDRESS POLICY file=..."; the policy itself may hold a space ("prefer (many)").
        assert!(maps.contains(&format!(" {want} ")), "{policy}: {out}");
    }
    let refused = [
        (json!({"mode": "MPOL_BIND"}), "needs at least one node"),
        (
            json!({"mode": "MPOL_LOCAL", "nodes": "0"}),
            "takes no nodes",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
            "exclude each other",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "3-1"}),
            "is a range from high to low",
        ),
        (json!({"mode": "MPOL_BIND", "nodes": "40-50"}), "none of"),
    ];
    for (policy, want) in refused {
        let mut c = TestContainer::new("mempolicy-bad");
        c.config["linux"]["memoryPolicy"] = policy.clone();
        let (code, _, err) = c.run();
        assert_ne!(code, 0, "{policy}");
        assert!(
            err.contains("linux.memoryPolicy")
                && err.contains(want)
                && err.trim().lines().count() == 1,
            "{policy}: {err}"
        );
    }
}
