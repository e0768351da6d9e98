//! The `run` flags for /etc files, resources, devices and security, end to end as root: each
//! flag's effect seen from inside the container (its /proc/self/status, /etc files, ulimits,
//! processes, its cgroup through /sys/fs/cgroup) or from `stop`'s timing, and bad values
//! refused with one line, exit 125 and nothing left.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::Root;

/// `hull run --rm --network none FLAGS busybox sh -c SCRIPT`: its stdout.
fn inside(r: &Root, flags: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    r.ok(&args)
}

/// A `run` that fails with 125, one line containing `words`, and leaves nothing.
fn refused(r: &Root, flags: &[&str], words: &str) {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "true"]);
    let err = r.bad(&args);
    assert!(err.contains(words), "hull {args:?}: {err}");
}

/// A capability set line (`CapEff:`) of a /proc/PID/status text, as a mask.
fn caps(status: &str, set: &str) -> u64 {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{set}:")))
        .unwrap_or_else(|| panic!("no {set} in {status}"));
    u64::from_str_radix(line.trim(), 16).unwrap()
}

fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim()
        .to_string()
}

/// Whether the container sees cgroup v2 (a unified /sys/fs/cgroup).
fn v2(r: &Root) -> bool {
    inside(
        r,
        &[],
        "test -e /sys/fs/cgroup/cgroup.controllers && echo v2 || echo v1",
    )
    .trim()
        == "v2"
}

#[test]
fn add_host_and_dns_fill_the_etc_files() {
    let r = root!("flags-etc");
    let out = inside(
        &r,
        &[
            "--add-host",
            "db:10.0.0.5",
            "--add-host",
            "v6:fd00::1",
            "--dns",
            "10.1.1.1",
            "--dns",
            "10.1.1.2",
            "--dns-search",
            "corp.example",
            "--dns-option",
            "ndots:2",
        ],
        "cat /etc/hosts; echo ---; cat /etc/resolv.conf",
    );
    let (hosts, resolv) = out.split_once("---\n").unwrap();
    assert!(hosts.contains("10.0.0.5\tdb\n"), "{hosts}");
    assert!(hosts.contains("fd00::1\tv6\n"), "{hosts}");
    assert!(hosts.contains("localhost"), "{hosts}");
    let servers: Vec<&str> = resolv
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .collect();
    assert_eq!(servers, ["10.1.1.1", "10.1.1.2"], "{resolv}");
    assert!(resolv.contains("search corp.example\n"), "{resolv}");
    assert!(resolv.contains("options ndots:2\n"), "{resolv}");
    refused(&r, &["--add-host", "db"], "--add-host");
    refused(&r, &["--add-host", "db:not-an-ip"], "not an IP address");
    refused(&r, &["--dns", "dns.example"], "--dns");
    refused(&r, &["--add-host", "h:host-gateway"], "--network none");
    r.assert_clean();
}

#[test]
fn add_host_gateway_is_the_bridge_address() {
    let r = root!("flags-gw");
    let net = format!("gw{}", std::process::id() % 100_000);
    let third = std::process::id() % 200 + 30;
    r.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.238.{third}.0/24"),
        &net,
    ]);
    let out = r.ok(&[
        "run",
        "--rm",
        "--network",
        &net,
        "--add-host",
        "host.docker.internal:host-gateway",
        "busybox",
        "sh",
        "-c",
        "grep host.docker.internal /etc/hosts; ip route | grep default",
    ]);
    let gw = format!("10.238.{third}.1");
    assert!(
        out.contains(&format!("{gw}\thost.docker.internal\n")),
        "{out}"
    );
    assert!(out.contains(&format!("default via {gw}")), "{out}");
    r.assert_clean();
}

#[test]
fn resource_flags_reach_the_cgroup() {
    let r = root!("flags-res");
    let v2 = v2(&r);
    let script = if v2 {
        "cat /sys/fs/cgroup/cpu.weight /sys/fs/cgroup/cpuset.cpus /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory.swap.max"
    } else {
        "cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpuset/cpuset.cpus /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"
    };
    let out = inside(
        &r,
        &[
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0",
            "--memory",
            "64m",
            "--memory-swap",
            "96m",
        ],
        script,
    );
    let v: Vec<&str> = out.lines().collect();
    let mib = |n: u64| (n << 20).to_string();
    if v2 {
        // runc's shares -> weight conversion; swap.max is the swap alone.
        assert_eq!(v, ["20", "0", &mib(64), &mib(32)], "{out}");
    } else {
        assert_eq!(v, ["512", "0", &mib(64), &mib(96)], "{out}");
    }
    // Unset: as much swap as memory (docker's default); -1: swap without limit.
    if !v2 {
        let out = inside(
            &r,
            &["--memory", "64m"],
            "cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
        );
        assert_eq!(out.trim(), mib(128));
        let out = inside(
            &r,
            &["--memory", "64m", "--memory-swap", "-1"],
            "cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
        );
        assert!(out.trim().parse::<u64>().unwrap() > 1 << 50, "{out}");
    }
    refused(&r, &["--memory-swap", "128m"], "needs --memory");
    refused(
        &r,
        &["--memory", "64m", "--memory-swap", "32m"],
        "at least --memory",
    );
    refused(&r, &["--cpu-shares", "1"], "--cpu-shares");
    // 0 is docker's "the default" (1024).
    if !v2 {
        let out = inside(
            &r,
            &["--cpu-shares", "0"],
            "cat /sys/fs/cgroup/cpu/cpu.shares",
        );
        assert_eq!(out, "1024\n");
    }
    refused(&r, &["--cpuset-cpus", "4096"], "not available");
    refused(&r, &["--cpuset-cpus", "zero"], "--cpuset-cpus");
    refused(&r, &["--cpuset-mems", "77"], "not available");
    refused(&r, &["--blkio-weight", "5"], "10 to 1000");
    r.assert_clean();
}

#[test]
fn block_io_throttles_and_weight() {
    let r = root!("flags-blkio");
    let Some(dev) = ["/dev/loop0", "/dev/vda", "/dev/sda", "/dev/nvme0n1"]
        .into_iter()
        .find(|d| std::path::Path::new(d).exists())
    else {
        hull_testkit::skip!("no block device node (/dev/loop0, vda, sda, nvme0n1) to throttle");
    };
    let rdev = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dev).unwrap().rdev()
    };
    let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
    let read = format!("{dev}:1mb");
    let write = format!("{dev}:2mb");
    let flags = ["--device-read-bps", &read, "--device-write-bps", &write];
    if v2(&r) {
        let out = inside(&r, &flags, "cat /sys/fs/cgroup/io.max");
        assert!(
            out.contains(&format!("{major}:{minor} rbps=1048576 wbps=2097152")),
            "{out}"
        );
    } else {
        let out = inside(
            &r,
            &flags,
            "cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device /sys/fs/cgroup/blkio/blkio.throttle.write_bps_device",
        );
        assert_eq!(
            out,
            format!("{major}:{minor} 1048576\n{major}:{minor} 2097152\n")
        );
    }
    refused(
        &r,
        &["--device-read-bps", "/dev/null:1mb"],
        "not a block device",
    );
    refused(&r, &["--device-write-bps", "/dev/nope:1mb"], "/dev/nope");
    refused(
        &r,
        &["--device-read-bps", &format!("{dev}:fast")],
        "invalid",
    );
    // The weight acts only where the host honours it; elsewhere a clear refusal.
    let dir = hull_engine::run_flags::blkio_controller_dir();
    if hull_engine::run_flags::weight_honoured(&dir) {
        inside(&r, &["--blkio-weight", "300"], "true");
    } else {
        refused(&r, &["--blkio-weight", "300"], "no I/O weight control");
    }
    r.assert_clean();
}

#[test]
fn capabilities_privileged_and_seccomp() {
    let r = root!("flags-caps");
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    let host_bounding = caps(&host, "CapBnd");
    let status = "cat /proc/self/status";
    let default = inside(&r, &[], status);
    let base = caps(&default, "CapEff");
    const CHOWN: u64 = 1 << 0;
    const NET_ADMIN: u64 = 1 << 12;
    assert_ne!(base & CHOWN, 0);
    assert_eq!(base & NET_ADMIN, 0);
    assert_eq!(status_field(&default, "Seccomp"), "2");
    assert_eq!(status_field(&default, "NoNewPrivs"), "0");
    let changed = inside(
        &r,
        &["--cap-add", "net_admin", "--cap-drop", "CAP_CHOWN"],
        status,
    );
    assert_eq!(caps(&changed, "CapEff"), (base | NET_ADMIN) & !CHOWN);
    assert_eq!(caps(&changed, "CapBnd"), (base | NET_ADMIN) & !CHOWN);
    let none = inside(&r, &["--cap-drop", "ALL"], status);
    assert_eq!(caps(&none, "CapEff"), 0);
    let only = inside(&r, &["--cap-drop", "all", "--cap-add", "KILL"], status);
    assert_eq!(caps(&only, "CapEff"), 1 << 5);
    let all = inside(&r, &["--cap-add", "ALL"], status);
    assert_eq!(caps(&all, "CapEff"), host_bounding);
    // Privileged: every capability, no seccomp, nothing masked, the host's devices, /sys rw.
    let out = inside(
        &r,
        &["--privileged"],
        "cat /proc/self/status; echo ---; wc -c < /proc/timer_list; ls /dev; echo ---; grep ' /sys ' /proc/self/mountinfo",
    );
    let mut parts = out.split("---\n");
    let (st, devs, sys) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    assert_eq!(caps(st, "CapEff"), host_bounding);
    assert_eq!(status_field(st, "Seccomp"), "0");
    let mut lines = devs.lines();
    assert!(
        lines.next().unwrap().trim().parse::<u64>().unwrap() > 0,
        "{devs}"
    );
    if std::path::Path::new("/dev/loop0").exists() {
        assert!(devs.lines().any(|l| l == "loop0"), "{devs}");
    }
    assert!(sys.contains(" rw,") || sys.contains(" rw "), "{sys}");
    let masked = inside(&r, &[], "wc -c < /proc/timer_list");
    assert_eq!(masked.trim(), "0", "the default masks /proc/timer_list");
    refused(&r, &["--cap-add", "bogus"], "unknown capability");
    refused(&r, &["--cap-drop", "CAP_NOPE"], "unknown capability");
    // A capability the kernel knows but this host's bounding set lacks: said before any
    // container exists.
    let known = hull_runtime::known_capabilities();
    let grantable = hull_runtime::grantable_capabilities();
    if let Some(missing) = known.iter().find(|c| !grantable.contains(c)) {
        refused(&r, &["--cap-add", missing], "bounding set");
    }
    r.assert_clean();
}

#[test]
fn read_only_root_and_security_opts() {
    let r = root!("flags-sec");
    let out = inside(
        &r,
        &["--read-only"],
        "touch /x 2>/dev/null; echo root=$?; touch /dev/shm/x; echo shm=$?; echo h > /etc/hosts; echo hosts=$?",
    );
    assert_eq!(out, "root=1\nshm=0\nhosts=0\n");
    let out = inside(
        &r,
        &[
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "no-new-privileges",
        ],
        "cat /proc/self/status",
    );
    assert_eq!(status_field(&out, "Seccomp"), "0");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    // A profile of the user's (docker's format): mkdir refused, the rest allowed.
    let profile = r.path.join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = inside(
        &r,
        &["--security-opt", &opt],
        "mkdir /tmp/d 2>/dev/null; echo mkdir=$?; touch /tmp/f; echo touch=$?; grep Seccomp: /proc/self/status",
    );
    assert_eq!(out, "mkdir=1\ntouch=0\nSeccomp:\t2\n");
    refused(&r, &["--security-opt", "apparmor=unconfined"], "apparmor");
    refused(&r, &["--security-opt", "label=disable"], "not supported");
    refused(
        &r,
        &["--security-opt", "seccomp=/nonexistent/profile.json"],
        "/nonexistent/profile.json",
    );
    std::fs::write(&profile, "{not json").unwrap();
    refused(&r, &["--security-opt", &opt], "seccomp profile");
    r.assert_clean();
}

#[test]
fn devices_are_made_and_allowed() {
    let r = root!("flags-dev");
    let out = inside(
        &r,
        &["--device", "/dev/null:/dev/mynull"],
        "stat -c '%F %t %T' /dev/mynull; echo x > /dev/mynull; echo w=$?",
    );
    assert_eq!(out, "character special file 1 3\nw=0\n");
    if std::path::Path::new("/dev/fuse").exists() {
        let out = inside(&r, &[], "test -e /dev/fuse; echo $?");
        assert_eq!(out, "1\n", "no /dev/fuse without --device");
        let out = inside(
            &r,
            &["--device", "/dev/fuse:r"],
            "stat -c '%t %T' /dev/fuse; echo > /dev/fuse 2>/dev/null; echo w=$?",
        );
        // 10:229, written to: refused by the device cgroup's read-only rule.
        assert_eq!(out, "a e5\nw=1\n");
    }
    if std::path::Path::new("/dev/net/tun").exists() {
        // A directory: every node under it, at the same place under the container's path.
        let out = inside(
            &r,
            &["--device", "/dev/net:/dev/n"],
            "stat -c '%F %t %T' /dev/n/tun",
        );
        assert_eq!(out, "character special file a c8\n");
    }
    refused(&r, &["--device", "/etc/passwd"], "not a device node");
    refused(&r, &["--device", "/dev/shm"], "no device nodes");
    refused(&r, &["--device", "/dev/nope"], "/dev/nope");
    refused(&r, &["--device", "/dev/null:/dev/x:rwq"], "permissions");
    refused(&r, &["--device", "dev/null"], "absolute");
    r.assert_clean();
}

#[test]
fn ulimits_and_init() {
    let r = root!("flags-ulimit");
    let out = inside(
        &r,
        &["--ulimit", "nofile=100:200", "--ulimit", "core=0"],
        "ulimit -n; ulimit -Hn; ulimit -c",
    );
    assert_eq!(out, "100\n200\n0\n");
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    if hard < u64::MAX {
        let above = format!("nofile={}", hard + 1);
        refused(&r, &["--ulimit", &above], "above this host's");
    }
    refused(&r, &["--ulimit", "nofile=300:200"], "soft limit");
    refused(&r, &["--ulimit", "files=1"], "unknown limit");
    refused(&r, &["--ulimit", "nofile"], "NAME=SOFT");
    // --init: the init is PID 1, the command its child.
    let ps = inside(&r, &["--init"], "ps -o pid,args");
    let pid1 = ps
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap();
    assert!(pid1.contains("/dev/init -- sh"), "{ps}");
    let plain = inside(&r, &[], "ps -o pid,args");
    assert!(!plain.contains("/dev/init"), "{plain}");
    r.assert_clean();
}

#[test]
fn init_stop_signal_and_stop_timeout_shape_stop() {
    let mut r = root!("flags-stop");
    // `sleep` as PID 1 ignores SIGTERM (no handler); behind --init it gets it and dies.
    let id = r.detach(&["--network", "none", "--init", "busybox", "sleep", "300"]);
    let t = Instant::now();
    r.ok(&["stop", "-t", "20", &id]);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let inspect = r.inspect(&id);
    assert_eq!(inspect["State"]["ExitCode"], 143);
    assert_eq!(inspect["HostConfig"]["Init"], true);
    assert_eq!(inspect["HostConfig"]["Privileged"], false);
    r.ok(&["rm", &id]);
    let id = r.create(&[
        "--network",
        "none",
        "--read-only",
        "--cap-add",
        "net_admin",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--add-host",
        "db:10.0.0.5",
        "--dns",
        "10.1.1.1",
        "busybox",
        "true",
    ]);
    let host = &r.inspect(&id)["HostConfig"];
    assert_eq!(host["ReadonlyRootfs"], true);
    assert_eq!(host["CapAdd"], serde_json::json!(["CAP_NET_ADMIN"]));
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]));
    assert_eq!(
        host["SecurityOpt"],
        serde_json::json!(["no-new-privileges"])
    );
    assert_eq!(host["ExtraHosts"], serde_json::json!(["db:10.0.0.5"]));
    assert_eq!(host["Dns"], serde_json::json!(["10.1.1.1"]));
    r.ok(&["rm", &id]);
    let ignores = "trap '' TERM; while true; do sleep 1; done";
    let id = r.detach(&[
        "--network",
        "none",
        "--stop-signal",
        "KILL",
        "busybox",
        "sh",
        "-c",
        ignores,
    ]);
    assert_eq!(r.inspect(&id)["Config"]["StopSignal"], "SIGKILL");
    let t = Instant::now();
    r.ok(&["stop", "-t", "20", &id]);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(r.inspect(&id)["State"]["ExitCode"], 137);
    r.ok(&["rm", &id]);
    let id = r.detach(&[
        "--network",
        "none",
        "--stop-timeout",
        "1",
        "busybox",
        "sh",
        "-c",
        ignores,
    ]);
    assert_eq!(r.inspect(&id)["Config"]["StopTimeout"], 1);
    let t = Instant::now();
    r.ok(&["stop", &id]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(r.inspect(&id)["State"]["ExitCode"], 137);
    r.ok(&["rm", &id]);
    refused(&r, &["--stop-signal", "SIGNOPE"], "--stop-signal");
    refused(&r, &["--stop-timeout", "x"], "--stop-timeout");
    r.assert_clean();
}

/// docker's `--stop-timeout -1` and `stop -t -1`: the stop signal, then a wait as long as the
/// container takes, never SIGKILL.
#[test]
fn a_negative_stop_timeout_waits_for_the_exit() {
    let mut r = root!("flags-stopwait");
    // Exits 3 a while after SIGTERM: SIGKILL would make it 137.
    let slow = "trap 'sleep 2; exit 3' TERM; while true; do sleep 0.2; done";
    let run = |r: &mut Root, flags: &[&str]| {
        let mut args = vec!["--network", "none"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "sh", "-c", slow]);
        r.detach(&args)
    };
    let forever = run(&mut r, &["--stop-timeout", "-1"]);
    assert_eq!(r.inspect(&forever)["Config"]["StopTimeout"], -1);
    let plain = run(&mut r, &[]);
    for stop in [
        &["stop", forever.as_str()][..],
        &["stop", "-t", "-1", plain.as_str()],
    ] {
        let t = Instant::now();
        r.ok(stop);
        let took = t.elapsed();
        let id = stop[stop.len() - 1];
        assert_eq!(r.inspect(id)["State"]["ExitCode"], 3, "{stop:?}");
        assert!(took >= Duration::from_millis(1500), "{stop:?}: {took:?}");
        r.ok(&["rm", id]);
    }
    r.assert_clean();
}

#[test]
fn init_reaps_orphans() {
    let mut r = root!("flags-reap");
    // PID 1 `sleep` never waits: the orphaned `sleep 0.1` stays a zombie, unless an init reaps it.
    let script = "(sleep 0.1 &); exec sleep 30";
    let mut zombies = Vec::new();
    for init in [false, true] {
        let mut args = vec!["--network", "none"];
        if init {
            args.push("--init");
        }
        args.extend_from_slice(&["busybox", "sh", "-c", script]);
        let id = r.detach(&args);
        std::thread::sleep(Duration::from_millis(800));
        let ps = r.ok(&["exec", &id, "ps", "-o", "stat,args"]);
        r.ok(&["rm", "-f", &id]);
        zombies.push(
            ps.lines()
                .filter(|l| l.trim_start().starts_with('Z'))
                .count(),
        );
    }
    assert_eq!(
        zombies,
        [1, 0],
        "PID 1 sleep leaves the zombie, the init reaps it"
    );
    r.assert_clean();
}
