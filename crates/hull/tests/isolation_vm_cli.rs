//! `hull run --isolation vm --vmm qemu` end to end on this host (qemu TCG: this host's kvm-pvm
//! boots no stock kernel): stdout and stderr apart and the exit code, the process's
//! capabilities, no_new_privs and seccomp filter as a container's, detached with logs, exec
//! and stop, `--memory` and `--cpus` inside the guest and on the VMM's cgroup, two VMs of one
//! image on the same erofs layer images, a monitor killed with SIGKILL taking its VM along, a VM
//! that cannot boot, and nothing left behind (the common leak check also finds a qemu process,
//! whose command line names the root, and the VMM's cgroup). Flags a VM cannot honour are
//! refused by name. On a network of its own, a VM's eth0 is the container's (address, MAC,
//! /etc files), served to containers by its name and published on loopback with `-p` (its hosts
//! file lists the containers on the network at its boot), and its network goes
//! with it, also after SIGKILL of its monitor. Every test that boots holds /tmp/hull-qemu.lock for as long as its VMs
//! live, so qemu-heavy tests run one at a time.
//! Needs Debian's cloud kernel in the qemu cache and hull-guest's initramfs
//! (scripts/build-guest-initramfs.sh; scripts/test.sh builds both first).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[macro_use]
mod common;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Root;
use nix::fcntl::{Flock, FlockArg};

const VM: [&str; 6] = ["--isolation", "vm", "--vmm", "qemu", "--network", "none"];

/// The shared qemu lock, held while the test's VMs live, with the guest's kernel and
/// initramfs given to the root (`vm/` of the engine root); or a skip.
macro_rules! vm_host {
    ($r:expr) => {{
        let (kernel, initrd) = guest_assets!();
        let assets = $r.path.join("vm");
        std::fs::create_dir_all(&assets).unwrap();
        std::os::unix::fs::symlink(&kernel, assets.join("vmlinuz")).unwrap();
        std::os::unix::fs::symlink(&initrd, assets.join("initramfs.cpio.gz")).unwrap();
        let lock = File::create("/tmp/hull-qemu.lock").unwrap();
        Flock::lock(lock, FlockArg::LockExclusive).unwrap()
    }};
}

fn with_vm<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = VM.to_vec();
    all.extend_from_slice(args);
    all
}

/// Waits for `cond`, for up to two minutes (TCG boots take seconds, more on a loaded host).
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn vmm_pid(r: &Root, id: &str) -> i32 {
    let text =
        std::fs::read_to_string(r.path.join("containers").join(id).join("vm/vmm.pid")).unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

/// The files process `pid` has open, by their paths.
fn open_files(pid: i32) -> Vec<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .collect()
}

#[test]
fn vm_run_keeps_stdout_and_stderr_apart_and_the_exit_code() {
    let r = root!("vmrun");
    let _lock = vm_host!(r);
    // The guest confines its process as a container's runtime would: no capabilities left by
    // --cap-drop ALL, no_new_privs, and the user's seccomp profile (mkdir refused, EPERM).
    let profile = r.path.join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let seccomp = format!("seccomp={}", profile.display());
    let mut args = vec!["run", "--rm"];
    args.extend(with_vm(&[
        "--cap-drop",
        "ALL",
        "--security-opt",
        &seccomp,
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "sh",
        "-c",
        "echo out; grep -E '^(CapEff|NoNewPrivs):' /proc/self/status; \
         mkdir /tmp/d || echo err >&2; exit 7",
    ]));
    let o = r.hull(&args);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(7), "stdout: {out} stderr: {err}");
    assert_eq!(out, "out\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n");
    assert!(err.contains("Operation not permitted"), "{err}");
    assert!(err.ends_with("\nerr\n"), "{err}");
    // A command the image lacks: docker's 127, and the VM is gone.
    let mut args = vec!["run", "--rm"];
    args.extend(with_vm(&["busybox", "/no/such/command"]));
    let o = r.hull(&args);
    assert_eq!(
        o.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    r.assert_clean();
}

#[test]
fn vm_detached_logs_stop_memory_and_cpus() {
    let mut r = root!("vmdetach");
    let _lock = vm_host!(r);
    let script = "echo hi; grep MemTotal /proc/meminfo; nproc; \
                  grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status; hostname; \
                  trap 'echo term; exit 3' TERM; while true; do sleep 0.1; done";
    let id = r.detach(&with_vm(&[
        "--memory",
        "200m",
        "--cpus",
        "2",
        "--hostname",
        "vmhost",
        "busybox",
        "sh",
        "-c",
        script,
    ]));
    eventually("the guest's output", || {
        r.ok(&["logs", &id]).contains("vmhost")
    });
    let logs = r.ok(&["logs", &id]);
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines[0], "hi", "{logs}");
    // The guest's memory is --memory, less what its kernel keeps: not the 256m default.
    let kib: u64 = lines[1].split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        (120 << 10..=200 << 10).contains(&kib),
        "MemTotal {kib} kB for --memory 200m"
    );
    assert_eq!(lines[2], "2", "--cpus 2 is two vCPUs: {logs}");
    // The process's capabilities and seccomp mode are a container's of the same image.
    let container = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "grep",
        "-E",
        "^(CapBnd|CapEff|NoNewPrivs|Seccomp):",
        "/proc/self/status",
    ]);
    assert_eq!(lines[3..7].join("\n") + "\n", container, "{logs}");
    // Not the guest root's full set (which reaches past bit 31), and filtered when podman's
    // default profile is here to be the engine's.
    assert!(container.contains("CapEff:\t00000000"), "{container}");
    if Path::new("/usr/share/containers/seccomp.json").exists() {
        assert!(container.contains("Seccomp:\t2"), "{container}");
    }
    // exec: a second process in the guest, its streams apart and its code; stdin with -i;
    // a user of the image's /etc/passwd; a missing command is 127.
    let o = r.hull(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo x-out; echo x-err >&2; exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "x-out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "x-err\n");
    let mut child = r.spawn(
        &[
            "exec",
            "-i",
            "-u",
            "nobody",
            &id,
            "sh",
            "-c",
            "read x; echo got-$x; id -u",
        ],
        std::process::Stdio::piped(),
    );
    child.stdin.take().unwrap().write_all(b"in\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "got-in\n65534\n");
    let o = r.hull(&["exec", &id, "/no/such/command"]);
    assert_eq!(o.status.code(), Some(127));
    let o = r.hull(&["exec", "-t", &id, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("exec -t"));
    // What needs the container's files or processes on the host says so.
    for op in ["diff", "top", "pause"] {
        let o = r.hull(&[op, &id]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(125), "{op}: {err}");
        assert!(
            err.contains(op) && err.contains("--isolation vm"),
            "{op}: {err}"
        );
    }
    let host = &r.inspect(&id)["HostConfig"];
    assert_eq!(host["Isolation"], "vm");
    assert_eq!(host["Vm"]["vmm"], "qemu");
    assert_eq!(host["Vm"]["memory"], 200 << 20);
    // The VMM's cgroup: guest memory plus its overhead, and --cpus as its CPU quota (the v1
    // files of this host kind, or cgroup2's).
    let cgroups = common::cgroup_candidates(&id);
    let read = |files: [&str; 2]| {
        cgroups
            .iter()
            .flat_map(|d| files.map(|f| d.join(f)))
            .find_map(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_else(|| panic!("no {files:?} in {cgroups:?}"))
    };
    let memory = read(["memory.limit_in_bytes", "memory.max"]);
    assert_eq!(memory.trim(), ((200u64 << 20) + (256 << 20)).to_string());
    let quota = read(["cpu.cfs_quota_us", "cpu.max"]);
    assert!(quota.starts_with("200000"), "{quota}");
    // The kernel view: the VMM, its guest memory, vCPU threads, the layer image behind the disk.
    let kernel = r.ok(&["inspect", "--kernel", &id]);
    for want in [
        "vm: qemu",
        "2 vCPUs, 200 MiB guest memory",
        "guest memory: host mapping",
        "vcpu thread",
        "disk hull-layer0 (ro, open by the vmm)",
        ".erofs <- layer",
    ] {
        assert!(kernel.contains(want), "{want:?} missing from:\n{kernel}");
    }
    // stop's SIGTERM reaches the process in the guest, which exits as it chooses.
    r.ok(&["stop", &id]);
    assert_eq!(r.inspect(&id)["State"]["ExitCode"], 3);
    assert!(r.ok(&["logs", &id]).ends_with("term\n"));
    r.ok(&["rm", &id]);
    r.assert_clean();
}

#[test]
fn two_vms_of_one_image_share_its_layer_images() {
    let mut r = root!("vmshare");
    let _lock = vm_host!(r);
    let a = r.detach(&with_vm(&["busybox", "sh", "-c", "echo up; sleep 600"]));
    // b in the foreground, its `hull run` killed with SIGKILL once it runs: the VM goes on,
    // owned by its monitor (as a container does when docker's client dies).
    let mut args = vec!["run", "--name", "vm-b"];
    args.extend(with_vm(&["busybox", "sh", "-c", "echo up; sleep 600"]));
    let mut client = r.spawn(&args, std::process::Stdio::null());
    let mut first = [0u8; 3];
    std::io::Read::read_exact(client.stdout.as_mut().unwrap(), &mut first).unwrap();
    assert_eq!(&first, b"up\n");
    client.kill().unwrap();
    client.wait().unwrap();
    let b = r.inspect("vm-b")["Id"].as_str().unwrap().to_string();
    r.ids.push(b.clone());
    assert_eq!(r.inspect(&b)["State"]["Status"], "running");
    let layers: Vec<PathBuf> = std::fs::read_dir(r.path.join("layers"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "erofs"))
        .collect();
    assert_eq!(
        layers.len(),
        1,
        "one erofs image for the one layer: {layers:?}"
    );
    let (pa, pb) = (vmm_pid(&r, &a), vmm_pid(&r, &b));
    assert_ne!(pa, pb);
    for pid in [pa, pb] {
        assert!(
            open_files(pid).contains(&layers[0]),
            "qemu {pid} has {} open",
            layers[0].display()
        );
    }
    // SIGKILL of b's monitor takes its VM along; the next command records the exit.
    let monitor = r.inspect(&b)["State"]["MonitorPid"].as_i64();
    let monitor = match monitor {
        Some(p) => i32::try_from(p).unwrap(),
        None => parent_of(pb),
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually("qemu to die with its monitor", || {
        !Path::new(&format!("/proc/{pb}")).exists() || is_zombie(pb)
    });
    assert_eq!(r.inspect(&b)["State"]["Status"], "exited");
    r.ok(&["rm", "-f", &a, &b]);
    r.assert_clean();
}

fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s[s.rfind(')').unwrap_or(0) + 2..].starts_with('Z'))
        .unwrap_or(true)
}

#[test]
fn vm_flags_it_cannot_honour_are_refused_by_name() {
    let r = root!("vmflags");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--rm", "--isolation", "vm", "--vmm", "qemu"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "true"]);
        r.bad(&args)
    };
    let err = run(&["--network", "none", "-v", "/tmp:/x"]);
    assert!(
        err.contains("volumes") && err.contains("--isolation vm"),
        "{err}"
    );
    let err = run(&["--network", "host"]);
    assert!(err.contains("--network host"), "{err}");
    let err = run(&["--network", "none", "--privileged"]);
    assert!(err.contains("--privileged"), "{err}");
    let err = run(&["--network", "none", "-t"]);
    assert!(err.contains("-t/--tty"), "{err}");
    // Where /dev/kvm boots a stock kernel, hull-vmm runs (the nested test bed checks it).
    if !matches!(hull_vmm::host_kvm(), hull_vmm::HostKvm::Hardware) {
        let err = r.bad(&[
            "run",
            "--rm",
            "--isolation",
            "vm",
            "--network",
            "none",
            "busybox",
            "true",
        ]);
        assert!(
            err.contains("--vmm qemu"),
            "the default --vmm hull names the way out: {err}"
        );
        if matches!(hull_vmm::host_kvm(), hull_vmm::HostKvm::Pvm) {
            assert!(err.contains("kvm-pvm"), "{err}");
        }
    }
    let err = r.bad(&["run", "--rm", "--isolation", "jail", "busybox", "true"]);
    assert!(err.contains("--isolation"), "{err}");
    r.assert_clean();
}

#[test]
fn a_vm_that_cannot_boot_says_why_in_one_line() {
    let r = root!("vmnoboot");
    let _lock = vm_host!(r);
    let mut args = vec!["run", "--rm"];
    args.extend(with_vm(&["busybox", "true"]));
    // Not a kernel: qemu refuses it, and its reason reaches the user.
    let o = r
        .cmd(&args)
        .env("HULL_VM_KERNEL", "/etc/hostname")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("qemu-system-x86_64: "), "{err}");
    assert_eq!(r.ok(&["ps", "-a", "-q"]), "");
    r.assert_clean();
}

/// hull's nftables table as `nft` lists it.
fn nft_table() -> String {
    let o = std::process::Command::new("nft")
        .args(["list", "table", "ip", "hull"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `GET /` on `addr` over TCP: the response, or "" when nothing answers.
fn http_get(addr: (&str, u16)) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut text = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut text);
    text
}

#[test]
fn vm_on_a_user_network_serves_containers_and_published_ports() {
    let mut r = root!("vmnet");
    let _lock = vm_host!(r);
    // A network of this test's own, never hull's default one.
    let subnet = format!("10.236.{}.0/24", std::process::id() % 200 + 20);
    r.ok(&["network", "create", "vmnettest", "--subnet", &subnet]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let publish = format!("127.0.0.1:{port}:80");
    // A container already on the network, which the VM's hosts file lists at its boot.
    let (peer, vm_name) = (format!("vmpeer-{port}"), format!("vmweb-{port}"));
    r.detach(&[
        "--name",
        &peer,
        "--network",
        "vmnettest",
        "busybox",
        "sleep",
        "300",
    ]);
    let vm = [
        "--isolation",
        "vm",
        "--vmm",
        "qemu",
        "--network",
        "vmnettest",
    ];
    let mut args = vm.to_vec();
    args.extend([
        "-p",
        &publish,
        "--name",
        &vm_name,
        "--hostname",
        "vmweb",
        "--add-host",
        "extra:10.1.2.3",
        "busybox",
        "sh",
        "-c",
        "echo hello-vm > /tmp/index.html; ip -o -4 addr show eth0; ip -o link show eth0; \
         cat /etc/hosts; echo ready; exec httpd -f -p 80 -h /tmp",
    ]);
    let id = r.detach(&args);
    eventually("the guest's httpd", || {
        r.ok(&["logs", &id]).contains("ready")
    });
    let logs = r.ok(&["logs", &id]);
    // The guest's eth0 is the container's as hull.db and `inspect` have it.
    let net = &r.inspect(&id)["NetworkSettings"][0];
    assert_eq!(net["network"], "vmnettest");
    let ip = net["ip"].as_str().unwrap().to_string();
    let mac = net["mac"].as_str().unwrap().to_string();
    assert!(
        logs.contains(&format!("inet {ip}/24 ")),
        "{ip} not on the guest's eth0: {logs}"
    );
    assert!(
        logs.contains(&format!("link/ether {mac} ")),
        "{mac}: {logs}"
    );
    // Its /etc/hosts is the container's: its own name and address, and --add-host.
    assert!(logs.contains(&format!("{ip}\tvmweb")), "{logs}");
    assert!(logs.contains("10.1.2.3\textra"), "{logs}");
    assert!(logs.contains(&format!("\t{peer} ")), "{logs}");
    // Published on the host's loopback, as a container's port.
    eventually("the published port", || {
        http_get(("127.0.0.1", port)).contains("hello-vm")
    });
    let got = http_get(("127.0.0.1", port));
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    // From a container on the same network, by its address and by its name.
    let out = r.ok(&[
        "run",
        "--rm",
        "--network",
        "vmnettest",
        "busybox",
        "sh",
        "-c",
        &format!(
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 {ip} 80; \
                  printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 {vm_name} 80"
        ),
    ]);
    assert_eq!(out.matches("hello-vm").count(), 2, "{out}");
    let peer_hosts = r.ok(&["exec", &peer, "cat", "/etc/hosts"]);
    assert!(
        peer_hosts.contains(&format!("{ip}\t{vm_name} ")),
        "{peer_hosts}"
    );
    // The kernel view names the NIC and the veth behind it.
    let kernel = r.ok(&["inspect", "--kernel", &id]);
    for want in [
        format!("nic virtio-net-device (mac {mac}) <- tap tap0"),
        "network vmnettest: veth hull".to_string(),
        format!("address {ip}/24"),
        format!("dnat 127.0.0.1:{port}->80/tcp"),
    ] {
        assert!(kernel.contains(&want), "{want:?} missing from:\n{kernel}");
    }
    assert!(nft_table().contains(&ip), "no nft element for {ip}");
    // SIGKILL of the monitor: qemu dies with it, the namespace (veth, tap) with both, and the
    // next command removes the rules and the lease.
    let vmm = vmm_pid(&r, &id);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(parent_of(vmm)),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually("qemu to die with its monitor", || {
        !Path::new(&format!("/proc/{vmm}")).exists() || is_zombie(vmm)
    });
    assert_eq!(r.inspect(&id)["State"]["Status"], "exited");
    assert!(!nft_table().contains(&ip), "nft element of {ip} left");
    assert_eq!(http_get(("127.0.0.1", port)), "");
    let peer_hosts = r.ok(&["exec", &peer, "cat", "/etc/hosts"]);
    assert!(!peer_hosts.contains(&vm_name), "{peer_hosts}");
    r.ok(&["rm", "-f", &id, &peer]);
    // In the foreground with --rm: the address is free again, so the next VM may take it.
    let mut args = vec!["run", "--rm"];
    args.extend(vm);
    args.extend(["busybox", "ip", "-o", "-4", "addr", "show", "eth0"]);
    let out = r.ok(&args);
    assert!(out.contains(" eth0 ") && out.contains("/24"), "{out}");
    r.assert_clean();
    assert!(!nft_table().contains(&ip), "nft element of {ip} left");
}
