//! hull-runtime behind the tools that drive runc: podman (through conmon and the console socket),
//! containerd (through its runc v2 shim) and docker (dockerd on containerd). Each test uses
//! private storage, a private containerd and dockerd, and a cgroup parent under the test's own
//! cgroup, and removes all of it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{can_run, make_rootfs, runtime_bin};
use hull_testkit::host::{mounts_under, CgroupParent};

/// podman instances share host-wide state (/dev/shm locks) even with private roots: one at a time.
static PODMAN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn text(out: &Output) -> String {
    format!(
        "status={:?} stdout={} stderr={}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` (`what` names it in a failure) and returns its stdout, asserting success.
fn checked(mut cmd: Command, what: &str) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{what}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `probe` until it succeeds (a daemon came up), for up to 15 s; else fails with `log`.
fn wait_ready(daemon: &str, log: &Path, probe: impl Fn() -> Command) {
    for _ in 0..300 {
        if probe().output().is_ok_and(|o| o.status.success()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!(
        "{daemon} did not come up: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Runs the shell command `line` under a new pty from script(1); its output after asserting
/// success, or None (after a skip notice) without script(1).
fn in_pty(tool: &str, line: &str) -> Option<String> {
    if !have("script") {
        hull_testkit::skip(format!("{tool} -it needs script(1) from bsdutils"));
        return None;
    }
    let out = Command::new("script")
        .args(["-qec", line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A busybox image tarball (the rootfs as one layer), made once per test.
fn rootfs_tar(dir: &Path) -> PathBuf {
    let rootfs = dir.join("image-rootfs");
    make_rootfs(&rootfs);
    let tar = dir.join("rootfs.tar");
    let out = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    tar
}

struct Podman {
    dir: PathBuf,
    cgroup_parent: CgroupParent,
}

impl Podman {
    fn new(name: &str) -> Podman {
        let dir = std::env::temp_dir().join(format!("hull-podman-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cgroup_parent =
            CgroupParent::new(&format!("hull-podman-{name}-{}", std::process::id()));
        let podman = Podman { dir, cgroup_parent };
        let tar = rootfs_tar(&podman.dir);
        let out = podman
            .cmd(&[
                "import",
                tar.to_str().unwrap(),
                "localhost/hull-busybox:test",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "import: {}", text(&out));
        podman
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(self.dir.join("storage"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .args(["--runtime", runtime_bin()])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// `podman run` options every container here needs: this host's hard limits are below
    /// podman's defaults (1048576), and raising them needs CAP_SYS_RESOURCE (runc fails too).
    fn run_args(&self) -> Vec<String> {
        vec![
            // No podman network: its bridge, veths and firewall rules are not what is tested, and
            // must not outlive the test.
            "--network".into(),
            "none".into(),
            "--ulimit".into(),
            "nofile=4096:4096".into(),
            "--ulimit".into(),
            "nproc=4096:4096".into(),
            "--cgroup-parent".into(),
            self.cgroup_parent.path.clone(),
        ]
    }

    fn ok(&self, args: &[&str]) -> String {
        checked(self.cmd(args), &format!("podman {args:?}"))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .cmd(&["rm", "--all", "--force", "--time", "0"])
            .output();
        let _ = self.cmd(&["rmi", "--all", "--force"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn podman_run_exec_pause_tty() {
    if !can_run() {
        return;
    }
    if !have("podman") {
        hull_testkit::skip!("podman is not installed (apt-get install podman)");
    }
    let _serial = PODMAN.lock().unwrap_or_else(|e| e.into_inner());
    let podman = Podman::new("all");
    let image = "localhost/hull-busybox:test";
    let extra = podman.run_args();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();

    // run --rm, output and exit status.
    let mut args = vec!["run", "--rm"];
    args.extend(&extra);
    args.extend([image, "sh", "-c", "echo hello-podman; ulimit -n; exit 3"]);
    let out = podman.cmd(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello-podman\n4096\n");

    // -d, exec, pause/unpause, stop, rm.
    let name = format!("hull-podman-d-{}", std::process::id());
    let mut args = vec!["run", "-d", "--name", &name];
    args.extend(&extra);
    args.extend([image, "sleep", "1000"]);
    podman.ok(&args);
    let out = podman.ok(&[
        "exec",
        &name,
        "sh",
        "-c",
        "echo exec-ok; cat /proc/1/cmdline",
    ]);
    assert!(out.starts_with("exec-ok\nsleep"), "{out:?}");
    podman.ok(&["pause", &name]);
    let status = podman.ok(&["inspect", "--format", "{{.State.Status}}", &name]);
    assert_eq!(status.trim(), "paused");
    podman.ok(&["unpause", &name]);
    let status = podman.ok(&["inspect", "--format", "{{.State.Status}}", &name]);
    assert_eq!(status.trim(), "running");
    podman.ok(&["stop", "--time", "1", &name]);
    podman.ok(&["rm", &name]);

    // -it: the console socket path, under a real pty from script(1).
    let mut line = format!(
        "podman --root {} --runroot {} --tmpdir {} --storage-driver vfs --cgroup-manager cgroupfs --events-backend file --runtime {} run -it --rm",
        podman.dir.join("storage").display(),
        podman.dir.join("run").display(),
        podman.dir.join("tmp").display(),
        runtime_bin()
    );
    for a in &extra {
        line.push(' ');
        line.push_str(a);
    }
    // podman's attach races a process that is done at once (runc loses its output too).
    line.push_str(&format!(" {image} sh -c 'sleep 1; tty; echo it-ok'"));
    if let Some(stdout) = in_pty("podman", &line) {
        assert!(
            stdout.contains("/dev/pts/0") && stdout.contains("it-ok"),
            "{stdout:?}"
        );
    }
}

struct Containerd {
    dir: PathBuf,
    daemon: Child,
    cgroup_parent: CgroupParent,
}

impl Containerd {
    fn start(name: &str) -> Containerd {
        let dir = std::env::temp_dir().join(format!("hull-ctrd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{0}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{0}/containerd-ttrpc.sock\"\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n",
            dir.display()
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let cgroup_parent = CgroupParent::new(&format!("hull-ctrd-{name}-{}", std::process::id()));
        let ctrd = Containerd {
            dir,
            daemon,
            cgroup_parent,
        };
        wait_ready("containerd", &ctrd.dir.join("containerd.log"), || {
            ctrd.ctr(&["version"])
        });
        ctrd
    }

    fn ctr(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.dir.join("containerd.sock"))
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        checked(self.ctr(args), &format!("ctr {args:?}"))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // Snapshot mounts of containers that did not finish cleanly.
        for target in mounts_under(&self.dir) {
            let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn containerd_shim_runs_execs_and_kills() {
    if !can_run() {
        return;
    }
    if !have("containerd") || !have("ctr") {
        hull_testkit::skip!("containerd is not installed (apt-get install containerd)");
    }
    if !have("podman") {
        hull_testkit::skip!(
            "the containerd test builds its image archive with podman (apt-get install podman)"
        );
    }
    // containerd imports docker/OCI archives; podman makes one from the busybox rootfs.
    let _serial = PODMAN.lock().unwrap_or_else(|e| e.into_inner());
    let podman = Podman::new("forctrd");
    let archive = podman.dir.join("image.tar");
    podman.ok(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        archive.to_str().unwrap(),
        "localhost/hull-busybox:test",
    ]);
    let ctrd = Containerd::start("shim");
    ctrd.ok(&["images", "import", archive.to_str().unwrap()]);
    let image = "localhost/hull-busybox:test";
    let runtime = runtime_bin();

    let cgroup = format!("{}/one", ctrd.cgroup_parent.path);
    let out = ctrd
        .ctr(&[
            "run",
            "--rm",
            "--runc-binary",
            runtime,
            "--cgroup",
            &cgroup,
            image,
            "hull-ctr-one",
            "sh",
            "-c",
            "echo hello-containerd; exit 5",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello-containerd",
        "{}",
        text(&out)
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));

    let cgroup = format!("{}/two", ctrd.cgroup_parent.path);
    ctrd.ok(&[
        "run",
        "-d",
        "--runc-binary",
        runtime,
        "--cgroup",
        &cgroup,
        image,
        "hull-ctr-two",
        "sleep",
        "1000",
    ]);
    let out = ctrd.ok(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "hull-ctr-two",
        "sh",
        "-c",
        "echo exec-ok; cat /proc/1/cmdline",
    ]);
    assert!(out.starts_with("exec-ok\nsleep"), "{out:?}");
    let tasks = ctrd.ok(&["task", "ls"]);
    assert!(
        tasks
            .lines()
            .any(|l| l.starts_with("hull-ctr-two") && l.contains("RUNNING")),
        "{tasks}"
    );
    ctrd.ok(&["task", "kill", "--signal", "SIGKILL", "hull-ctr-two"]);
    let mut stopped = false;
    for _ in 0..100 {
        if ctrd
            .ok(&["task", "ls"])
            .lines()
            .any(|l| l.starts_with("hull-ctr-two") && l.contains("STOPPED"))
        {
            stopped = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(stopped, "task never stopped");
    ctrd.ok(&["task", "rm", "hull-ctr-two"]);
    ctrd.ok(&["containers", "rm", "hull-ctr-two"]);
    assert!(common::leaked_cgroups("hull-ctr-two").is_empty());
}

use hull_testkit::dockerd::{DOCKER, DOCKERD};

/// A private dockerd (docker.io 20.10; /usr/local/bin/docker may be an unrelated newer CLI) on
/// its own containerd: its own data and exec roots, socket, pidfile and key, no bridge and no
/// firewall rules, containers under the test's cgroup parent, hull-runtime as runtime `hull`.
struct Docker {
    dir: PathBuf,
    daemon: Option<Child>,
    /// /run/docker(/plugins), which dockerd makes whatever its exec root: removed after if the
    /// test made it.
    made_run_docker: bool,
    /// Whether the host's own trust key existed before (dockerd must not write one).
    had_key: bool,
    ctrd: Containerd,
}

const HOST_KEY: &str = "/etc/docker/key.json";

impl Docker {
    fn start(name: &str) -> Docker {
        let ctrd = Containerd::start(&format!("docker-{name}"));
        let dir = std::env::temp_dir().join(format!("hull-docker-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let made_run_docker = !Path::new("/run/docker").exists();
        let had_key = Path::new(HOST_KEY).exists();
        let mut cmd = hull_testkit::dockerd::dockerd(&dir).unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let daemon = cmd
            .arg("--containerd")
            .arg(ctrd.dir.join("containerd.sock"))
            // This host's hard RLIMIT_NOFILE is below docker's defaults, and raising it needs
            // CAP_SYS_RESOURCE.
            .arg("--default-ulimit=nofile=4096:4096")
            .arg(format!("--cgroup-parent={}", ctrd.cgroup_parent.path))
            .arg(format!("--add-runtime=hull={}", runtime_bin()))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let docker = Docker {
            dir,
            daemon: Some(daemon),
            made_run_docker,
            had_key,
            ctrd,
        };
        wait_ready("dockerd", &docker.dir.join("dockerd.log"), || {
            docker.cmd(&["version"])
        });
        docker
    }

    fn cmd(&self, args: &[&str]) -> Command {
        hull_testkit::dockerd::docker(&self.dir, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        checked(self.cmd(args), &format!("docker {args:?}"))
    }

    /// Host processes started for this test (dockerd, containerd, shims, containers' inits
    /// hold the private paths on their command lines).
    fn processes(&self) -> Vec<String> {
        let dirs = [
            self.dir.to_string_lossy().into_owned(),
            self.ctrd.dir.to_string_lossy().into_owned(),
        ];
        let me = std::process::id().to_string();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
                continue;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if dirs.iter().any(|d| cmdline.contains(d.as_str())) {
                found.push(format!("{name}: {cmdline}"));
            }
        }
        found
    }

    /// Removes the containers and the image, stops dockerd by its pid and checks that nothing
    /// of them is left: processes, mounts, /run/docker.
    fn stop(&mut self) {
        let ids = self
            .cmd(&["ps", "-aq"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for id in ids.split_whitespace() {
            let _ = self.cmd(&["rm", "--force", id]).output();
        }
        let _ = self.cmd(&["rmi", "--force", "hull-busybox:test"]).output();
        let Some(mut daemon) = self.daemon.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let mut stopped = false;
        for _ in 0..300 {
            if daemon.try_wait().ok().flatten().is_some() {
                stopped = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if !stopped {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        if self.made_run_docker {
            let _ = std::fs::remove_dir("/run/docker/plugins");
            let _ = std::fs::remove_dir("/run/docker");
        }
        let left = mounts_under(&self.dir);
        let processes = self.processes();
        if !std::thread::panicking() {
            assert!(stopped, "dockerd did not stop on SIGTERM within 15 s");
            assert!(left.is_empty(), "mounts left behind: {left:?}");
            assert!(
                processes.iter().all(|p| p.contains("containerd --config")),
                "processes left behind: {processes:?}"
            );
            assert!(
                !self.made_run_docker || !Path::new("/run/docker").exists(),
                "/run/docker left behind"
            );
            assert!(
                self.had_key || !Path::new(HOST_KEY).exists(),
                "dockerd wrote {HOST_KEY}"
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn docker_runs_execs_updates_and_resizes() {
    if !can_run() {
        return;
    }
    if !Path::new(DOCKER).exists() || !Path::new(DOCKERD).exists() {
        hull_testkit::skip!("docker.io is not installed (apt-get install docker.io)");
    }
    if !have("containerd") || !have("ctr") {
        hull_testkit::skip!("containerd is not installed (apt-get install containerd)");
    }
    let mut docker = Docker::start("all");
    let tar = rootfs_tar(&docker.dir);
    docker.ok(&["import", tar.to_str().unwrap(), "hull-busybox:test"]);
    let image = "hull-busybox:test";
    let run = ["run", "--runtime", "hull", "--network", "none"];

    // run --rm: output and exit code; docker 20.10 writes `"blockIO": {"weight": 0}` into each
    // config. (A death by signal is checked with `stop` below: pid 1 ignores its own kill -9.)
    let mut args = run.to_vec();
    args.extend([
        "--rm",
        image,
        "sh",
        "-c",
        "echo hello-docker; ulimit -n; exit 3",
    ]);
    let out = docker.cmd(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello-docker\n4096\n");

    // -d, exec, top, stats, update, pause/unpause, stop, rm.
    let name = format!("hull-docker-d-{}", std::process::id());
    let mut args = run.to_vec();
    args.extend(["-d", "--name", &name, image, "sleep", "1000"]);
    docker.ok(&args);
    let out = docker.ok(&[
        "exec",
        &name,
        "sh",
        "-c",
        "echo exec-ok; cat /proc/1/cmdline",
    ]);
    assert!(out.starts_with("exec-ok\nsleep"), "{out:?}");
    let out = docker
        .cmd(&["exec", &name, "sh", "-c", "exit 7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let top = docker.ok(&["top", &name]);
    assert!(top.contains("sleep 1000"), "{top}");
    let pids = docker.ok(&["stats", "--no-stream", "--format", "{{.PIDs}}", &name]);
    assert_eq!(pids.trim(), "1");
    docker.ok(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--pids-limit",
        "77",
        "--cpu-shares",
        "512",
        &name,
    ]);
    let id = docker.ok(&["inspect", "--format", "{{.Id}}", &name]);
    let cgroup = |hierarchy: &str, file: &str| {
        let path = format!(
            "/sys/fs/cgroup/{hierarchy}{}/{}/{file}",
            docker.ctrd.cgroup_parent.path,
            id.trim()
        );
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .trim()
            .to_string()
    };
    if Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        assert_eq!(cgroup("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(cgroup("memory", "memory.memsw.limit_in_bytes"), "134217728");
        assert_eq!(cgroup("pids", "pids.max"), "77");
        assert_eq!(cgroup("cpu", "cpu.shares"), "512");
    } else {
        assert_eq!(cgroup("", "memory.max"), "67108864");
        assert_eq!(cgroup("", "pids.max"), "77");
    }
    let usage = docker.ok(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &name]);
    assert!(usage.trim().ends_with("/ 64MiB"), "{usage}");
    docker.ok(&["pause", &name]);
    let status = docker.ok(&["inspect", "--format", "{{.State.Status}}", &name]);
    assert_eq!(status.trim(), "paused");
    docker.ok(&["unpause", &name]);
    let status = docker.ok(&["inspect", "--format", "{{.State.Status}}", &name]);
    assert_eq!(status.trim(), "running");
    // sleep as pid 1 ignores SIGTERM: docker kills it after the timeout.
    docker.ok(&["stop", "--time", "1", &name]);
    let code = docker.ok(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    assert_eq!(code.trim(), "137");
    docker.ok(&["rm", &name]);
    assert!(common::leaked_cgroups(id.trim()).is_empty());

    // -it under a real pty from script(1), whose size docker passes on with a resize.
    let line = format!(
        "stty rows 41 cols 97; DOCKER_CONFIG={} {DOCKER} -H unix://{} run -it --rm --runtime hull --network none {image} sh -c 'sleep 1; stty size; tty; echo it-ok'",
        docker.dir.join("cli").display(),
        docker.dir.join("docker.sock").display(),
    );
    if let Some(stdout) = in_pty("docker", &line) {
        assert!(
            stdout.contains("41 97") && stdout.contains("/dev/pts/0") && stdout.contains("it-ok"),
            "{stdout:?}"
        );
    }
    docker.stop();
}
