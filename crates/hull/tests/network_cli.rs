//! `hull network` end to end: create, ls, inspect, rm, and bad input with a non-zero exit
//! and a one-line error. Only the database is touched (no attach), so no kernel objects.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::Command;

fn hull(root: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hull"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn network_create_ls_inspect_rm() {
    if !nix_is_root() {
        hull_testkit::skip!("needs root (reads host interfaces over netlink)");
    }
    let root = std::env::temp_dir().join(format!("hull-cli-net-{}", std::process::id()));
    let (ok, out, err) = hull(
        &root,
        &[
            "network",
            "create",
            "web",
            "--subnet",
            "10.237.8.0/24",
            "--internal",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out, "web\n");
    let (ok, _, err) = hull(
        &root,
        &["network", "create", "web2", "--subnet", "10.237.8.128/25"],
    );
    assert!(!ok);
    assert_eq!(
        err,
        "hull: subnet 10.237.8.128/25 overlaps subnet 10.237.8.0/24 of network web\n"
    );
    let (ok, _, err) = hull(
        &root,
        &[
            "network",
            "create",
            "w3",
            "--subnet",
            "10.237.9.0/24",
            "--gateway",
            "10.237.10.1",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("gateway 10.237.10.1 is not a usable address"),
        "{err}"
    );
    let (ok, _, err) = hull(&root, &["network", "create", "auto"]);
    assert!(ok, "{err}");
    let (ok, out, _) = hull(&root, &["network", "inspect", "auto"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v[0]["subnet"].as_str().unwrap().starts_with("10.89."),
        "{v}"
    );
    let (ok, out, _) = hull(&root, &["network", "ls", "-q"]);
    assert!(ok);
    assert_eq!(out, "auto\nhull\nweb\n");
    let (ok, out, _) = hull(&root, &["network", "inspect", "web"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["subnet"], "10.237.8.0/24");
    assert_eq!(v[0]["gateway"], "10.237.8.1");
    assert_eq!(v[0]["internal"], true);
    assert_eq!(v[0]["masquerade"], false);
    let (ok, out, _) = hull(&root, &["network", "rm", "web", "auto"]);
    assert!(ok);
    assert_eq!(out, "web\nauto\n");
    let (ok, _, err) = hull(&root, &["network", "rm", "web"]);
    assert!(!ok);
    assert_eq!(err, "hull: network rm web: no network named web\n");
    std::fs::remove_dir_all(&root).unwrap();
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}
