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
    let auto = v[0]["subnet"].as_str().unwrap().to_string();
    assert!(auto.ends_with("/24"), "{v}");
    assert_not_routed(&auto);
    assert!(
        v[0]["created"].as_str().unwrap().ends_with('Z'),
        "RFC 3339: {v}"
    );
    let (ok, out, _) = hull(&root, &["network", "ls", "-q"]);
    assert!(ok);
    assert_eq!(out, "auto\nhull\nweb\n");
    // The default network took a /16 of the pool the host does not route either, and
    // neither podman's nor docker's default.
    let rows = json_lines(&root, &["network", "ls", "--format", "json"]);
    let default = rows.iter().find(|r| r["Name"] == "hull").unwrap();
    let sub = default["Subnets"][0].as_str().unwrap().to_string();
    assert!(sub.ends_with("/16"), "{default}");
    assert_ne!(sub, "10.88.0.0/16");
    assert_ne!(sub, "172.17.0.0/16");
    assert_not_routed(&sub);
    assert_eq!(default["Driver"], "bridge");
    assert_eq!(default["Scope"], "local");
    assert_eq!(default["ID"].as_str().unwrap().len(), 12);
    assert!(default["CreatedAt"].as_str().unwrap().contains('T'));
    let (ok, out, _) = hull(&root, &["network", "ls"]);
    assert!(ok);
    let header: Vec<&str> = out.lines().next().unwrap().split("   ").collect();
    let header: Vec<&str> = header
        .iter()
        .map(|h| h.trim())
        .filter(|h| !h.is_empty())
        .collect();
    assert_eq!(header, ["NETWORK ID", "NAME", "DRIVER", "SCOPE"], "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains(" web ") && l.ends_with("local")),
        "{out}"
    );
    let (ok, out, _) = hull(
        &root,
        &["network", "ls", "--format", "{{.Name}}={{.Subnets}}"],
    );
    assert!(ok);
    assert!(out.contains("web=10.237.8.0/24\n"), "{out}");
    let (ok, out, _) = hull(
        &root,
        &[
            "network",
            "ls",
            "--format",
            "table {{.Name}}\\t{{.Subnets}}",
        ],
    );
    assert!(ok);
    assert!(out.starts_with("NAME   SUBNETS\n"), "{out}");
    assert!(out.contains("\nweb    10.237.8.0/24\n"), "{out}");
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

/// No route of the host's main table overlaps `subnet` (a.b.c.d/n).
fn assert_not_routed(subnet: &str) {
    let parse = |s: &str| -> (u32, u32) {
        let (a, p) = s.split_once('/').unwrap_or((s, "32"));
        let a: std::net::Ipv4Addr = a.parse().unwrap();
        let p: u32 = p.parse().unwrap();
        let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
        (u32::from(a) & mask, mask)
    };
    let (net, mask) = parse(subnet);
    let out = Command::new("ip")
        .args(["-4", "route", "show", "table", "main"])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let dst = line.split_whitespace().next().unwrap_or("");
        if dst == "default" || !dst.contains('.') {
            continue;
        }
        let (rnet, rmask) = parse(dst);
        let common = mask & rmask;
        assert_ne!(
            net & common,
            rnet & common,
            "{subnet} overlaps the host route {line}"
        );
    }
}

/// The objects a `--format json` command prints, one a line.
fn json_lines(root: &std::path::Path, args: &[&str]) -> Vec<serde_json::Value> {
    let (ok, out, err) = hull(root, args);
    assert!(ok, "{args:?}: {err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Read-only commands on a root that does not exist yet leave it not existing.
#[test]
fn read_only_commands_create_no_root() {
    let root = std::env::temp_dir().join(format!("hull-cli-noroot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (ok, out, err) = hull(&root, &["network", "ls"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "NETWORK ID   NAME   DRIVER   SCOPE");
    let (ok, out, _) = hull(&root, &["network", "ls", "-q"]);
    assert!(ok && out.is_empty());
    let (ok, _, err) = hull(&root, &["network", "inspect", "web"]);
    assert!(!ok);
    assert!(err.contains("no network named web"), "{err}");
    for args in [
        &["images"][..],
        &["images", "-q"],
        &["image", "ls", "--format", "json"],
    ] {
        let (ok, _, err) = hull(&root, args);
        assert!(ok, "{args:?}: {err}");
    }
    let (ok, _, err) = hull(&root, &["image", "inspect", "busybox"]);
    assert!(!ok);
    assert!(err.contains("not found"), "{err}");
    for args in [
        &["ps", "-a"][..],
        &["ps", "-q"],
        &["volume", "ls"],
        &["volume", "ls", "-q"],
    ] {
        let (ok, _, err) = hull(&root, args);
        assert!(ok, "{args:?}: {err}");
    }
    for args in [
        &["system", "df", "-v"][..],
        &["info"],
        &["container", "ls", "-a"],
        &["stats", "--no-stream"],
    ] {
        let (ok, _, err) = hull(&root, args);
        assert!(ok, "{args:?}: {err}");
    }
    let rows = json_lines(&root, &["system", "df", "--format", "json"]);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows.iter().all(|r| r["TotalCount"] == "0"), "{rows:?}");
    let (ok, out, err) = hull(&root, &["info", "--format", "json"]);
    assert!(ok, "{err}");
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&info["Containers"], &info["Images"]),
        (&0.into(), &0.into())
    );
    for args in [
        &["inspect", "web"][..],
        &["logs", "web"],
        &["top", "web"],
        &["port", "web"],
        &["diff", "web"],
        &["cp", "web:/etc/hosts", "-"],
        &["cp", "/etc/hosts", "web:/tmp"],
        &["volume", "inspect", "data"],
    ] {
        let (ok, _, err) = hull(&root, args);
        assert!(!ok, "{args:?}");
        assert!(
            err.contains("web") || err.contains("data"),
            "{args:?}: {err}"
        );
    }
    assert!(
        !root.exists(),
        "a read-only command created {}",
        root.display()
    );
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
