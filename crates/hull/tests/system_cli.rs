//! Engine-wide commands end to end: `info` and `version` against what the kernel says,
//! `system df` rows, `system prune` of stopped containers and unused networks, and `ps`
//! with `--filter` and `--format`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[macro_use]
mod common;

use common::code;

#[test]
fn info_and_version_report_this_host() {
    let mut r = root!("info");
    let id = r.detach(&["--network", "none", "busybox", "sleep", "1000"]);
    r.ok(&["create", "--network", "none", "busybox", "true"]);
    let info: serde_json::Value =
        serde_json::from_str(&r.ok(&["info", "--format", "json"])).unwrap();
    assert_eq!(info["Containers"], 2, "{info:#}");
    assert_eq!(info["ContainersRunning"], 1);
    assert_eq!(info["ContainersStopped"], 1);
    assert_eq!(info["Images"], 1);
    assert_eq!(info["Driver"], "overlay");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(info["KernelVersion"], release.trim());
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    assert_eq!(info["CgroupVersion"], if v2 { "2" } else { "1" });
    let overlay = std::fs::read_to_string("/proc/filesystems")
        .unwrap()
        .contains("\toverlay");
    assert_eq!(info["KernelFeatures"]["Overlayfs"], overlay);
    let ns = info["KernelFeatures"]["Namespaces"].as_array().unwrap();
    assert!(ns.iter().any(|n| n == "pid") && ns.iter().any(|n| n == "mnt"));
    let text = r.ok(&["info"]);
    assert!(
        text.contains(" Storage Driver: overlay") && text.contains("  Running: 1"),
        "{text}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&r.ok(&["version", "--format", "json"])).unwrap();
    assert_eq!(v["Client"]["Version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["Server"]["KernelVersion"], release.trim());
    assert!(!v["Client"]["RustVersion"].as_str().unwrap().is_empty());
    let text = r.ok(&["version"]);
    assert!(
        text.contains("OS/Arch:") && text.contains("Rust version:"),
        "{text}"
    );
    assert_eq!(code(&r.hull(&["info", "--format", "yaml"])), Some(125));
    r.ok(&["rm", "-f", &id]);
    r.ok(&["container", "prune", "-f"]);
    r.assert_clean();
}

#[test]
fn df_rows_and_system_prune() {
    let mut r = root!("sysprune");
    let net = format!("prb{}", std::process::id() % 100_000);
    let subnet = format!("10.253.{}.0/24", std::process::id() % 250);
    r.ok(&["network", "create", "--subnet", &subnet, &net]);
    let running = r.detach(&["--network", "none", "busybox", "sleep", "1000"]);
    let stopped = r.detach(&[
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "head -c 200000 /dev/zero > /f",
    ]);
    r.ok(&["wait", &stopped]);
    let df = r.ok(&["system", "df"]);
    let rows: Vec<Vec<&str>> = df.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows[0],
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        "{df}"
    );
    assert_eq!(&rows[1][..3], ["Images", "1", "1"], "{df}");
    assert_eq!(&rows[2][..3], ["Containers", "2", "1"], "{df}");
    assert_ne!(
        rows[2][4], "0B",
        "the stopped container's file is reclaimable: {df}"
    );
    assert_eq!(&rows[3][..4], ["Local", "Volumes", "0", "0"], "{df}");
    assert_eq!(&rows[4][..4], ["Build", "Cache", "0", "0"], "{df}");
    let json = r.ok(&["system", "df", "--format", "json"]);
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["Type"], "Images");
    // Without -f and without a terminal: refused, nothing removed.
    assert_eq!(code(&r.hull(&["system", "prune"])), Some(125));
    let out = r.ok(&["system", "prune", "-f"]);
    assert!(
        out.contains("Deleted Containers:") && out.contains(&stopped),
        "{out}"
    );
    assert!(
        out.contains("Deleted Networks:") && out.contains(&net),
        "{out}"
    );
    assert!(!out.contains(&running), "{out}");
    assert!(out.contains("Total reclaimed space: "), "{out}");
    let nets = r.ok(&["network", "ls"]);
    assert!(!nets.contains(&net), "{nets}");
    // The image is still used by the running container: not dangling, kept.
    assert!(r.ok(&["images"]).contains("busybox"));
    assert_eq!(r.ok(&["ps", "-a", "-q", "--no-trunc"]).trim(), running);
    r.ok(&["rm", "-f", &running]);
    r.assert_clean();
}

#[test]
fn ps_filters_and_formats() {
    let mut r = root!("psfmt");
    let web = r.detach(&[
        "--name",
        "web",
        "--label",
        "tier=front",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    let job = r.detach(&[
        "--name",
        "job",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    r.ok(&["wait", &job]);
    let q = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["ps", "-a", "--format", "{{.Names}}"];
        all.extend_from_slice(args);
        let mut v: Vec<String> = r.ok(&all).lines().map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(q(&[]), ["job", "web"]);
    assert_eq!(
        r.ok(&["container", "ls", "--format", "{{.Names}}"]).trim(),
        "web"
    );
    assert_eq!(q(&["--filter", "status=exited"]), ["job"]);
    assert_eq!(q(&["--filter", "status=running"]), ["web"]);
    assert_eq!(q(&["--filter", "exited=3"]), ["job"]);
    assert_eq!(q(&["--filter", "exited=0"]), Vec::<String>::new());
    assert_eq!(q(&["--filter", "label=tier=front"]), ["web"]);
    assert_eq!(q(&["--filter", "label=tier"]), ["web"]);
    assert_eq!(q(&["--filter", "name=we"]), ["web"]);
    assert_eq!(q(&["--filter", &format!("id={}", &job[..10])]), ["job"]);
    assert_eq!(q(&["--filter", "ancestor=busybox"]), ["job", "web"]);
    assert_eq!(q(&["--filter", "ancestor=nginx"]), Vec::<String>::new());
    // Alternatives of one key, all of several keys.
    assert_eq!(
        q(&["--filter", "status=running", "--filter", "status=exited"]),
        ["job", "web"]
    );
    assert_eq!(
        q(&["--filter", "status=running", "--filter", "name=job"]),
        Vec::<String>::new()
    );
    // A status filter shows stopped containers also without -a, as docker's does.
    assert_eq!(
        r.ok(&["ps", "--filter", "status=exited", "-q"]).trim(),
        &job[..12]
    );
    let table = r.ok(&[
        "ps",
        "-a",
        "--format",
        "table {{.ID}}\\t{{.Names}}\\t{{.Labels}}",
    ]);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["CONTAINER", "ID", "NAMES", "LABELS"], "{table}");
    assert!(
        lines.contains(&vec![&web[..12], "web", "tier=front"]),
        "{table}"
    );
    let line = r.ok(&[
        "ps",
        "--format",
        "{{.ID}}: {{.Image}} {{.Status}} {{.Command}}",
    ]);
    assert!(
        line.starts_with(&format!("{}: busybox Up ", &web[..12])),
        "{line}"
    );
    assert!(line.trim_end().ends_with("\"sleep 1000\""), "{line}");
    for l in r.ok(&["ps", "-a", "--format", "json"]).lines() {
        let doc: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(doc["Names"] == "web" || doc["State"] == "exited", "{doc}");
    }
    for bad in [
        vec!["ps", "--filter", "colour=red"],
        vec!["ps", "--filter", "status=sleepy"],
        vec!["ps", "--filter", "exited=x"],
        vec!["ps", "--format", "{{.Nope}}"],
    ] {
        let o = r.hull(&bad);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(code(&o), Some(125), "{bad:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    r.ok(&["rm", "-f", &web, &job]);
    r.assert_clean();
}

/// `system reset` leaves nothing of the root: no container, monitor, volume or mount, no
/// address of its networks on a bridge (the default network's too, which `network rm` refuses
/// and which would otherwise outlive the root's directory on hull0), none of their subnets in
/// hull's nftables sets, no directory. Without `-f` and no terminal to ask on, it refuses.
#[test]
fn system_reset_leaves_nothing_of_the_root() {
    let mut r = root!("reset");
    let net = format!("rst{}", std::process::id() % 100_000);
    r.ok(&["network", "create", &net]);
    r.detach(&["--network", &net, "busybox", "sleep", "1000"]);
    r.detach(&["-v", "rstvol:/data", "busybox", "sleep", "1000"]);
    r.ok(&["image", "mount", "busybox"]);
    let networks: Vec<serde_json::Value> = [net.as_str(), "hull"]
        .iter()
        .map(|n| serde_json::from_str::<serde_json::Value>(&r.ok(&["network", "inspect", n])))
        .map(|v| v.unwrap()[0].clone())
        .collect();
    let nft = || {
        let out = std::process::Command::new("nft")
            .args(["list", "table", "ip", "hull"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for n in &networks {
        assert!(nft().contains(n["subnet"].as_str().unwrap()), "{n}");
    }

    let refused = r.hull(&["system", "reset"]);
    assert_eq!(code(&refused), Some(125));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("all containers, all volumes"), "{err}");
    assert_eq!(r.ok(&["ps", "-q"]).lines().count(), 2, "nothing removed");

    r.ok(&["system", "reset", "-f"]);
    assert!(!r.path.exists());
    let me = r.path.display().to_string();
    assert!(common::processes_naming(&me).is_empty());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(&me), "mounts left under {me}");
    let listed = nft();
    for n in &networks {
        let (bridge, gateway) = (
            n["bridge"].as_str().unwrap(),
            n["gateway"].as_str().unwrap(),
        );
        let addrs = std::process::Command::new("ip")
            .args(["-4", "-o", "addr", "show", "dev", bridge])
            .output()
            .unwrap();
        let addrs = String::from_utf8_lossy(&addrs.stdout);
        assert!(
            !addrs.contains(&format!(" {gateway}/")),
            "{bridge}: {addrs}"
        );
        let subnet = n["subnet"].as_str().unwrap();
        assert!(
            !listed.contains(subnet),
            "{subnet} still in hull's nftables: {listed}"
        );
    }
    // Dropping the root resets a root that is gone: nothing to do, no error.
    r.ok(&["system", "reset", "-f"]);
}
