//! `hull inspect --kernel` and the `Kernel` object of `inspect`, checked against the kernel
//! itself: namespace inodes against stat(2) of /proc/PID/ns/*, cgroup dirs and limits against
//! the cgroup files, the overlay against mountinfo, the veth and address against `ip`, the nft
//! elements against hull's table.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[macro_use]
mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

#[test]
fn kernel_view_matches_proc_and_cgroup_files() {
    let mut r = root!("kernel");
    let subnet = format!("10.238.{}.0/24", std::process::id() % 200 + 20);
    r.ok(&["network", "create", "kerneltest", "--subnet", &subnet]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let publish = format!("127.0.0.1:{port}:80");
    let id = r.detach(&[
        "--network",
        "kerneltest",
        "-p",
        &publish,
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "--cpus",
        "0.5",
        "busybox",
        "sleep",
        "1000",
    ]);
    let doc = r.inspect(&id);
    let k = &doc["Kernel"];
    assert_eq!(k["Live"], true);
    let pid = doc["State"]["Pid"].as_i64().unwrap();
    assert_eq!(k["Pid"].as_i64(), Some(pid));
    for ns in ["net", "mnt", "pid", "uts", "ipc"] {
        let md = std::fs::metadata(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_eq!(
            k["Namespaces"][ns]["Inode"].as_u64(),
            Some(md.ino()),
            "{ns}"
        );
    }
    // Its own namespaces, not the host's.
    let host_net = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    assert_ne!(k["Namespaces"]["net"]["Inode"].as_u64(), Some(host_net));

    // Each cgroup dir holds the container's process; the limits are the files' values.
    let cgroups = k["Cgroups"].as_array().unwrap();
    assert!(!cgroups.is_empty());
    for c in cgroups {
        let dir = Path::new(c["Dir"].as_str().unwrap());
        assert!(dir.to_str().unwrap().contains(&id), "{dir:?}");
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|p| p == pid.to_string()),
            "{dir:?}: {procs}"
        );
    }
    let res = &k["Resources"];
    assert_eq!(res["memory"]["usage"]["limit"].as_u64(), Some(64 << 20));
    assert_eq!(res["pids"]["limit"].as_u64(), Some(50));
    let usage = res["memory"]["usage"]["usage"].as_u64().unwrap();
    assert!(usage > 0 && usage < 64 << 20, "{usage}");
    assert_eq!(k["Limits"]["cpu"]["quota"].as_i64(), Some(50_000));
    let quota = cgroups
        .iter()
        .find_map(|c| {
            let d = Path::new(c["Dir"].as_str().unwrap());
            std::fs::read_to_string(d.join("cpu.cfs_quota_us"))
                .or_else(|_| std::fs::read_to_string(d.join("cpu.max")))
                .ok()
        })
        .unwrap();
    assert!(quota.starts_with("50000"), "{quota}");
    let pids_dir = cgroups
        .iter()
        .map(|c| Path::new(c["Dir"].as_str().unwrap()).join("pids.max"))
        .find(|p| p.exists())
        .unwrap();
    assert_eq!(std::fs::read_to_string(pids_dir).unwrap().trim(), "50");

    // The overlay: the image's layer below, this container's upper, mounted.
    let ov = &k["Overlay"];
    assert_eq!(ov["Mounted"], true);
    let image = r.ok(&["inspect", "busybox"]);
    let lower = ov["LowerDirs"][0].as_str().unwrap();
    assert!(image.contains(lower), "{lower} is not the image's layer");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mountinfo
        .lines()
        .find(|l| l.contains(&format!("hull-{id}")))
        .unwrap();
    assert!(
        line.contains(ov["UpperDir"].as_str().unwrap()) || line.contains(&id),
        "{line}"
    );

    // The veth pair on the network's bridge, its address, its nft elements.
    let n = &k["Network"][0];
    let veth = n["HostVeth"].as_str().unwrap();
    let link = Command::new("ip")
        .args(["-o", "link", "show", veth])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(
        link.contains(&format!("master {}", n["Bridge"].as_str().unwrap())),
        "{link}"
    );
    let addr = Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-n",
            "ip",
            "-o",
            "-4",
            "addr",
            "show",
        ])
        .output()
        .unwrap();
    let addr = String::from_utf8_lossy(&addr.stdout);
    assert!(addr.contains(n["Address"].as_str().unwrap()), "{addr}");
    assert_eq!(n["Nft"]["Subnet"], subnet.as_str());
    assert_eq!(n["Nft"]["PublishedPorts"][0]["Dnat"], true);

    // The report says the same in a few lines.
    let report = r.ok(&["inspect", "--kernel", &id]);
    let net_ino = k["Namespaces"]["net"]["Inode"].to_string();
    for want in [
        net_ino.as_str(),
        veth,
        lower,
        "memory: usage",
        "limit 67108864",
    ] {
        assert!(report.contains(want), "{want} missing from:\n{report}");
    }
    assert!(report.lines().count() < 40, "{report}");

    // Stopped: the paths, and that nothing is live.
    r.ok(&["stop", "-t", "0", &id]);
    let report = r.ok(&["inspect", "--kernel", &id]);
    assert!(report.contains("not running"), "{report}");
    assert!(
        report.contains(lower) && report.contains("not mounted"),
        "{report}"
    );
    let k = &r.inspect(&id)["Kernel"];
    assert_eq!(k["Live"], false);
    assert!(k["Namespaces"].is_null());
    r.ok(&["rm", &id]);
    r.assert_clean();
}
