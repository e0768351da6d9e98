//! hull-runtime behind the tools that drive runc: podman (through conmon and the console socket)
//! and containerd (through its runc v2 shim). Each test uses private storage, a private
//! containerd, and a cgroup parent under the test's own cgroup, and removes all of it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{can_run, make_rootfs, runtime_bin};

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

/// The deepest cgroup the test process is in (v1 controllers may differ): a parent under it is
/// under the test's cgroup in every hierarchy.
fn own_cgroup() -> String {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .max_by_key(|p| p.len())
        .unwrap_or("/")
        .trim_end_matches('/')
        .to_string()
}

/// A cgroup parent for the containers of one test: `<own cgroup>/<name>`. Hierarchies where
/// the test runs at the root get the intermediate directories too; those are recorded so that
/// only what the test created is removed.
struct CgroupParent {
    path: String,
    created: Vec<PathBuf>,
}

impl CgroupParent {
    fn new(name: &str) -> CgroupParent {
        let own = own_cgroup();
        let mut created = Vec::new();
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in hierarchies.flatten() {
                let mut dir = h.path();
                for part in own.split('/').filter(|p| !p.is_empty()) {
                    dir.push(part);
                    if !dir.exists() {
                        created.push(dir.clone());
                    }
                }
            }
        }
        CgroupParent {
            path: format!("{own}/{name}"),
            created,
        }
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        let roots: Vec<PathBuf> = hierarchies
            .flatten()
            .map(|h| h.path().join(self.path.trim_start_matches('/')))
            .filter(|d| d.exists())
            .collect();
        // If podman or containerd failed to stop something, its processes are still in here:
        // they are this test's, and a cgroup with processes cannot be removed.
        for _ in 0..50 {
            let mut dirs = Vec::new();
            for root in &roots {
                collect_dirs(root, &mut dirs);
            }
            if dirs.is_empty() {
                break;
            }
            for dir in &dirs {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            // Deepest first: a parent goes once its children are gone.
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            for dir in &dirs {
                let _ = std::fs::remove_dir(dir);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.created
            .sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in &self.created {
            let _ = std::fs::remove_dir(dir);
        }
        let left = common::leaked_cgroups(self.path.rsplit('/').next().unwrap_or_default());
        assert!(
            std::thread::panicking() || left.is_empty(),
            "cgroups left behind: {left:?}"
        );
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_dirs(&entry.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
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
        let out = self.cmd(args).output().unwrap();
        assert!(out.status.success(), "podman {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
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
    if have("script") {
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
        let out = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            stdout.contains("/dev/pts/0") && stdout.contains("it-ok"),
            "{stdout:?} {}",
            text(&out)
        );
    } else {
        hull_testkit::skip("podman -it needs script(1) from bsdutils");
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
        for _ in 0..200 {
            if ctrd
                .ctr(&["version"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
            {
                return ctrd;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!(
            "containerd did not come up: {}",
            std::fs::read_to_string(ctrd.dir.join("containerd.log")).unwrap_or_default()
        );
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
        let out = self.ctr(args).output().unwrap();
        assert!(out.status.success(), "ctr {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // Snapshot mounts of containers that did not finish cleanly.
        let mounts = hull_sys::mountinfo::read_self().unwrap_or_default();
        let mut targets: Vec<PathBuf> = hull_sys::mountinfo::parse(&mounts)
            .filter_map(Result::ok)
            .map(|m| m.mount_point().into_owned())
            .filter(|t| t.starts_with(&self.dir))
            .collect();
        targets.sort_by_key(|t| std::cmp::Reverse(t.as_os_str().len()));
        for target in targets {
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
