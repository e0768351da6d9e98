//! The one container-id rule: the runtime (state dir), cgroups (`hull-<id>`) and net (attachment
//! rows, veth names) accept and refuse the same ids, so an id that passes `create` never fails
//! later at network attach.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::Command;

use hull_sys::id::MAX_ID_LEN;

/// (id, accepted)
fn edge_cases() -> Vec<(String, bool)> {
    vec![
        ("a".into(), true),
        ("a+b".into(), true),
        ("A_b-c.d".into(), true),
        ("...".into(), true),
        ("f".repeat(64), true),
        ("x".repeat(128), true),
        ("x".repeat(129), true),
        ("x".repeat(MAX_ID_LEN), true),
        ("x".repeat(MAX_ID_LEN + 1), false),
        (String::new(), false),
        (".".into(), false),
        ("..".into(), false),
        ("a/b".into(), false),
        ("a b".into(), false),
        ("a:b".into(), false),
        ("é".into(), false),
    ]
}

/// The runtime's verdict, through its command line: `state` of an acceptable id that does not
/// exist says so; an unacceptable one is refused as an invalid id.
fn runtime_accepts(root: &std::path::Path, id: &str) -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_hull-runtime"))
        .arg("--root")
        .arg(root)
        .args(["state", id])
        .output()
        .expect("run hull-runtime");
    assert!(!out.status.success(), "state of {id:?} cannot succeed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    match (
        stderr.contains("does not exist"),
        stderr.contains("invalid container id"),
    ) {
        (true, false) => true,
        (false, true) => false,
        _ => panic!("state {id:?}: unexpected error: {stderr}"),
    }
}

#[test]
fn runtime_cgroups_and_net_agree() {
    let root = std::env::temp_dir().join(format!("hull-id-rule-{}", std::process::id()));
    for (id, accepted) in edge_cases() {
        assert_eq!(runtime_accepts(&root, &id), accepted, "runtime, {id:?}");
        let cgroup = hull_cgroups::Cgroup::new(None, &id);
        match (&cgroup, accepted) {
            (Ok(_), true) => {}
            (Err(e), false) => assert!(e.to_string().contains("container id"), "{e}"),
            // A host without cgroups cannot build the plan at all; the id must not be the reason.
            (Err(e), true) => assert!(
                !e.to_string().contains("container id"),
                "cgroups, {id:?}: {e}"
            ),
            (Ok(_), false) => panic!("cgroups accepted {id:?}"),
        }
        assert_eq!(
            hull_net::attach::check_container_id(&id).is_ok(),
            accepted,
            "net, {id:?}"
        );
        if accepted {
            let veth = hull_net::attach::host_veth_name(&id, "eth0", "hull");
            assert!(veth.len() < 16, "veth name {veth:?} exceeds IFNAMSIZ");
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}
