//! hull-runtime with a bundle annotated `org.hull.isolation=vm`: the container runs in a qemu
//! microVM kept by hull-vm-keeper (TCG on this host). `run` with stdout and stderr apart and
//! the exit code; create/start/state/list/exec/kill/delete as a shim drives them (the test is
//! the subreaper that waits on the keeper's and the detached exec's pids, as containerd's shim
//! is); a SIGKILL of the keeper takes the VM along and `delete` leaves nothing; a bad
//! annotation is one clear error. Each test holds /tmp/hull-qemu.lock while its VM lives.
//! Needs Debian's cloud kernel in the qemu cache and hull-guest's initramfs
//! (scripts/build-guest-initramfs.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[allow(unused_macros)]
#[macro_use]
mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

/// A state root and a bundle of busybox, removed at the end.
struct Bed {
    dir: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
}

/// The shared qemu lock, the guest's kernel and initramfs, and a bed; or a skip.
macro_rules! bed {
    ($tag:expr) => {{
        if !common::is_root() || !Path::new(hull_testkit::rootfs::BUSYBOX).exists() {
            hull_testkit::skip!("needs root and /bin/busybox (busybox-static)");
        }
        let (kernel, initrd) = guest_assets!();
        let bed = Bed::new($tag, kernel, initrd);
        let lock = File::create("/tmp/hull-qemu.lock").unwrap();
        (bed, Flock::lock(lock, FlockArg::LockExclusive).unwrap())
    }};
}

fn runtime_bin() -> PathBuf {
    // hull-runtime is built into the same target dir (scripts/test.sh builds every binary).
    let bin = Path::new(env!("CARGO_BIN_EXE_hull-vm-keeper")).with_file_name("hull-runtime");
    assert!(
        bin.exists(),
        "{} is not built: cargo build -p hull-runtime",
        bin.display()
    );
    bin
}

impl Bed {
    fn new(tag: &str, kernel: PathBuf, initrd: PathBuf) -> Bed {
        let dir = std::env::temp_dir().join(format!("hull-rtvm-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        hull_testkit::rootfs::busybox(&dir.join("bundle/rootfs")).unwrap();
        Bed {
            dir,
            kernel,
            initrd,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }

    /// Writes the bundle's config.json: `runtime spec`'s, running `args`, with `annotations`.
    fn config(&self, args: &[&str], annotations: serde_json::Value) {
        let path = self.bundle().join("config.json");
        let _ = std::fs::remove_file(&path);
        let out = self
            .cmd(&["spec", "--bundle", self.bundle().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let mut c: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        c["process"]["args"] = serde_json::json!(args);
        c["process"]["terminal"] = false.into();
        c["root"]["readonly"] = false.into();
        c["annotations"] = annotations;
        std::fs::write(&path, serde_json::to_vec(&c).unwrap()).unwrap();
    }

    fn vm_config(&self, args: &[&str]) {
        self.config(args, serde_json::json!({"org.hull.isolation": "vm"}));
    }

    /// `run --detach` of the bundle as `id`: the keeper's pid.
    fn run_detached(&self, id: &str) -> i32 {
        let pid_file = self.dir.join("pid");
        let bundle = self.bundle();
        let args = ["run", "--detach", "--bundle", bundle.to_str().unwrap()];
        self.ok(&[&args[..], &["--pid-file", pid_file.to_str().unwrap(), id]].concat());
        std::fs::read_to_string(&pid_file).unwrap().parse().unwrap()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(runtime_bin());
        c.arg("--root")
            .arg(self.root())
            .args(args)
            .env("HULL_VM_KERNEL", &self.kernel)
            .env("HULL_VM_INITRD", &self.initrd);
        c
    }

    /// Runs hull-runtime with its stdout and stderr in files, not pipes: a keeper left behind
    /// (`create`, `run --detach`) keeps what it inherited, as runc's container does.
    fn out(&self, args: &[&str]) -> Output {
        let (out, err) = (self.dir.join("stdout"), self.dir.join("stderr"));
        let status = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .status()
            .unwrap();
        Output {
            status,
            stdout: std::fs::read(&out).unwrap(),
            stderr: std::fs::read(&err).unwrap(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(o.status.success(), "hull-runtime {args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn state(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    /// Nothing of container `id` is left: its state, a qemu naming the bed, its cgroup.
    fn assert_clean(&self, id: &str) {
        assert!(!self.root().join(id).exists(), "state of {id} left");
        let qemu = common::processes_naming(self.dir.to_str().unwrap());
        assert!(qemu.is_empty(), "processes left: {qemu:?}");
        for cg in common::cgroup_candidates(id) {
            assert!(!cg.exists(), "cgroup left: {}", cg.display());
        }
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for entry in std::fs::read_dir(self.root())
            .into_iter()
            .flatten()
            .flatten()
        {
            let id = entry.file_name().to_string_lossy().into_owned();
            let _ = self.out(&["delete", "--force", &id]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Makes this process the reaper of orphans, as containerd's shim and conmon are, so it can
/// wait on the keeper and on a detached exec's process.
fn subreaper() {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(r, 0);
}

fn exit_code(pid: i32) -> i32 {
    match waitpid(Pid::from_raw(pid), None).unwrap() {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        other => panic!("{other:?}"),
    }
}

fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn run_keeps_stdout_and_stderr_apart_and_returns_the_exit_code() {
    let (bed, _lock) = bed!("run");
    bed.vm_config(&["sh", "-c", "echo out; echo err >&2; uname -r >&2; exit 7"]);
    let started = Instant::now();
    let o = bed.out(&["run", "--bundle", bed.bundle().to_str().unwrap(), "vm-run"]);
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(7), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    let err = String::from_utf8_lossy(&o.stderr);
    // Its own kernel: the guest's release is not the host's.
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert!(err.starts_with("err\n") && !err.contains(&host), "{err}");
    eprintln!("hull-runtime run of a VM bundle: {took:?}");
    bed.assert_clean("vm-run");
}

#[test]
fn a_bad_annotation_is_one_clear_error() {
    if !common::is_root() || !Path::new(hull_testkit::rootfs::BUSYBOX).exists() {
        hull_testkit::skip!("needs root and /bin/busybox (busybox-static)");
    }
    let bed = Bed::new("bad", PathBuf::from("/k"), PathBuf::from("/i"));
    bed.config(&["true"], serde_json::json!({"org.hull.isolation": "kata"}));
    let o = bed.out(&["run", "--bundle", bed.bundle().to_str().unwrap(), "vm-bad"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("invalid annotation org.hull.isolation=\\\"kata\\\": container or vm"),
        "{err}"
    );
    bed.config(
        &["true"],
        serde_json::json!({"org.hull.isolation": "vm", "org.hull.vmm": "xen"}),
    );
    let o = bed.out(&[
        "create",
        "--bundle",
        bed.bundle().to_str().unwrap(),
        "vm-bad",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("invalid annotation org.hull.vmm"), "{err}");
    assert!(!bed.root().join("vm-bad").exists());
}

#[test]
fn create_start_exec_kill_delete_as_a_shim_drives_them() {
    let (bed, _lock) = bed!("life");
    subreaper();
    bed.vm_config(&[
        "sh",
        "-c",
        "trap 'echo term; exit 3' TERM; echo up; while :; do sleep 0.1; done",
    ]);
    let pid_file = bed.dir.join("pid");
    // Files, not pipes: the keeper keeps the stdio it inherits, as runc's container does.
    let out_file = bed.dir.join("out");
    let err_file = bed.dir.join("err");
    let o = bed
        .cmd(&[
            "create",
            "--bundle",
            bed.bundle().to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            "vm-life",
        ])
        .stdin(Stdio::null())
        .stdout(File::create(&out_file).unwrap())
        .stderr(File::create(&err_file).unwrap())
        .status()
        .unwrap();
    let err = std::fs::read_to_string(&err_file).unwrap();
    assert!(o.success(), "{o:?}: {err}");
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let s = bed.state("vm-life");
    assert_eq!(
        (s["status"].as_str(), s["pid"].as_i64()),
        (Some("created"), Some(pid.into()))
    );
    assert!(bed.ok(&["list"]).contains("vm-life"));
    bed.ok(&["start", "vm-life"]);
    assert_eq!(bed.state("vm-life")["status"], "running");
    eventually("the process's output", || {
        std::fs::read_to_string(&out_file).unwrap() == "up\n"
    });
    // exec in the foreground: its stdio and status.
    let o = bed.out(&[
        "exec",
        "vm-life",
        "sh",
        "-c",
        "echo xo; echo xe >&2; exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "xo\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "xe\n");
    // Detached with a pid file, as containerd's ExecSync: that pid exits with the status.
    let exec_pid = bed.dir.join("exec.pid");
    bed.ok(&[
        "exec",
        "--detach",
        "--pid-file",
        exec_pid.to_str().unwrap(),
        "vm-life",
        "sh",
        "-c",
        "exit 4",
    ]);
    let epid: i32 = std::fs::read_to_string(&exec_pid).unwrap().parse().unwrap();
    assert_eq!(exit_code(epid), 4);
    let o = bed.out(&["delete", "vm-life"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not stopped"),
        "{o:?}"
    );
    bed.ok(&["kill", "vm-life", "TERM"]);
    assert_eq!(exit_code(pid), 3);
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "up\nterm\n");
    assert_eq!(bed.state("vm-life")["status"], "stopped");
    let o = bed.out(&["kill", "vm-life", "TERM"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not running"),
        "{o:?}"
    );
    bed.ok(&["delete", "vm-life"]);
    bed.assert_clean("vm-life");
}

#[test]
fn sigkill_of_the_keeper_takes_the_vm_along() {
    let (bed, _lock) = bed!("kill9");
    subreaper();
    bed.vm_config(&["sleep", "1000"]);
    let pid = bed.run_detached("vm-kill9");
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(bed.root().join("vm-kill9/vm.json")).unwrap(),
    )
    .unwrap();
    let vmm = record["vmm"][0].as_i64().unwrap();
    assert!(Path::new(&format!("/proc/{vmm}")).exists());
    // The keeper and the VMM share the spec's cgroup.
    let cgroup = std::fs::read_to_string(format!("/proc/{vmm}/cgroup")).unwrap();
    assert!(cgroup.contains("hull-vm-kill9"), "{cgroup}");
    nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(exit_code(pid), 137);
    // Orphaned by the keeper's death, the VMM is this reaper's to wait for: it dies too.
    assert_eq!(exit_code(i32::try_from(vmm).unwrap()), 137);
    assert_eq!(bed.state("vm-kill9")["status"], "stopped");
    bed.ok(&["delete", "vm-kill9"]);
    bed.assert_clean("vm-kill9");
}

/// A pod's namespace (made here as CNI would: eth0 with an address and a default route,
/// bind-mounted by `ip netns`) outlives its VM container: the keeper mirrors eth0 to a tap
/// there, and `delete` after the keeper's kill -9 removes the tap and eth0's redirect, so
/// the next VM of the pod can mirror it again.
#[test]
fn a_pods_namespace_keeps_no_tap_after_the_keepers_kill9() {
    let (bed, _lock) = bed!("podnet");
    subreaper();
    let name = format!("hull-rtvm-pod-{}", std::process::id());
    let _netns = PodNetns(name.clone());
    let sh = |script: &str| {
        let out = Command::new("sh").args(["-c", script]).output().unwrap();
        assert!(out.status.success(), "{script}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    sh(&format!(
        "ip netns add {name} && ip -n {name} link add eth0 type veth peer name peer0 && \
         ip -n {name} link set peer0 up && \
         ip -n {name} addr add 10.213.7.2/24 dev eth0 && ip -n {name} link set eth0 up && \
         ip -n {name} route add default via 10.213.7.1"
    ));
    let path = bed.bundle().join("config.json");
    let mut c: serde_json::Value = {
        bed.vm_config(&["sleep", "1000"]);
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    };
    for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = format!("/run/netns/{name}").into();
        }
    }
    std::fs::write(&path, serde_json::to_vec(&c).unwrap()).unwrap();
    let links = || sh(&format!("ip -n {name} -o link show"));
    let ingress = || sh(&format!("tc -n {name} qdisc show dev eth0 ingress"));
    for round in 0..2 {
        let id = format!("vm-podnet{round}");
        let pid = bed.run_detached(&id);
        assert!(links().contains(" tap0: "), "{}", links());
        assert!(ingress().contains("ingress"), "{}", ingress());
        nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
        assert_eq!(exit_code(pid), 137);
        bed.ok(&["delete", &id]);
        bed.assert_clean(&id);
        assert!(!links().contains(" tap0: "), "{}", links());
        assert_eq!(ingress(), "");
    }
}

/// The test's pod namespace, removed however the test ends.
struct PodNetns(String);

impl Drop for PodNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// podman (Debian's 4.3, through conmon) with `--runtime` hull-runtime and the annotation:
/// busybox in a VM, its output and exit code, and nothing left (podman's own root, runroot
/// and cgroup parent are the test's).
#[test]
fn podman_runs_a_container_in_a_vm_per_annotation() {
    let (bed, _lock) = bed!("podman");
    if Command::new("podman").arg("--version").output().is_err() {
        hull_testkit::skip!("podman is not installed (apt-get install podman)");
    }
    let parent =
        hull_testkit::host::CgroupParent::new(&format!("hull-rtvm-podman-{}", std::process::id()));
    // podman passes conmon, and so the runtime, none of its environment: a wrapper names
    // the guest's kernel and initramfs (an installed host keeps them in /var/lib/hull/vm/).
    let wrapper = bed.dir.join("hull-runtime");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nHULL_VM_KERNEL={} HULL_VM_INITRD={} exec {} \"$@\"\n",
            bed.kernel.display(),
            bed.initrd.display(),
            runtime_bin().display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&wrapper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&wrapper, perms).unwrap();
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(bed.dir.join("storage"))
            .arg("--runroot")
            .arg(bed.dir.join("run"))
            .arg("--tmpdir")
            .arg(bed.dir.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "none", "--runtime"])
            .arg(&wrapper)
            .args(args)
            .stdin(Stdio::null());
        c.output().unwrap()
    };
    let tar = bed.dir.join("rootfs.tar");
    let o = Command::new("tar")
        .arg("-C")
        .arg(bed.bundle().join("rootfs"))
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let o = podman(&["import", tar.to_str().unwrap(), "localhost/hull-busybox:vm"]);
    assert!(o.status.success(), "{o:?}");
    let o = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--cgroup-parent",
        &parent.path,
        "--annotation",
        "org.hull.isolation=vm",
        "localhost/hull-busybox:vm",
        "sh",
        "-c",
        "echo in-vm $(cat /etc/hostname | wc -c); echo err >&2; exit 9",
    ]);
    let rm = podman(&["rm", "--all", "--force", "--time", "0"]);
    let rmi = podman(&["rmi", "--all", "--force"]);
    assert_eq!(o.status.code(), Some(9), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("in-vm "),
        "{o:?}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("err"), "{o:?}");
    assert!(
        rm.status.success() && rmi.status.success(),
        "{rm:?} {rmi:?}"
    );
    let qemu = common::processes_naming(bed.dir.to_str().unwrap());
    assert!(qemu.is_empty(), "processes left: {qemu:?}");
    let left: Vec<_> = parent
        .dirs()
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        // podman's own cgroup for conmon stays with the parent, as with runc.
        .filter(|e| e.path().is_dir() && e.file_name() != "conmon")
        .map(|e| e.path())
        .collect();
    parent.clear();
    assert!(left.is_empty(), "cgroups left: {left:?}");
    for m in hull_testkit::host::mounts_under(&bed.dir) {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
}
