//! Test harness: busybox-static bundles in unique temp dirs, a private `--root` per test, and a
//! teardown that deletes the container and checks that nothing of it is left behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

pub const BUSYBOX: &str = "/bin/busybox";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn runtime_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hull-runtime")
}

/// Returns false (after saying why) when the host cannot run these tests.
pub fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        hull_testkit::skip("the runtime tests need root");
        return false;
    }
    if !Path::new(BUSYBOX).exists() {
        hull_testkit::skip(format!(
            "{BUSYBOX} is missing (apt-get install busybox-static)"
        ));
        return false;
    }
    true
}

/// One container under test: its bundle, state root and id.
pub struct TestContainer {
    pub id: String,
    pub dir: PathBuf,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub config: Value,
}

impl TestContainer {
    pub fn new(name: &str) -> TestContainer {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("hull-t-{name}-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&id);
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("state");
        let bundle = dir.join("bundle");
        make_rootfs(&bundle.join("rootfs"));
        let out = Command::new(runtime_bin())
            .args(["spec", "--bundle"])
            .arg(&bundle)
            .output()
            .expect("run hull-runtime spec");
        assert!(
            out.status.success(),
            "spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config: Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        let mut container = TestContainer {
            id,
            dir,
            root,
            bundle,
            config,
        };
        container.config["process"]["terminal"] = json!(false);
        container
    }

    pub fn set_args(&mut self, args: &[&str]) {
        self.config["process"]["args"] = json!(args);
    }

    /// `sh -c SCRIPT` as the process.
    pub fn script(&mut self, script: &str) {
        self.set_args(&["sh", "-c", script]);
    }

    /// A host directory of the test, bind-mounted read-write at `target` in the container.
    pub fn share_dir(&mut self, target: &str) -> PathBuf {
        let host = self.dir.join(target.trim_start_matches('/'));
        std::fs::create_dir_all(&host).unwrap();
        self.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": target,
            "type": "bind",
            "source": host,
            "options": ["rbind", "rw"]
        }));
        host
    }

    pub fn linux(&mut self) -> &mut Value {
        &mut self.config["linux"]
    }

    pub fn write_config(&self) {
        std::fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// `hull-runtime --root ROOT ARGS...`, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(runtime_bin());
        cmd.arg("--root").arg(&self.root).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    pub fn runtime(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run hull-runtime")
    }

    /// `run` in the foreground with the current config: (exit code, stdout, stderr). A run that
    /// has not returned after 60 s fails the test rather than hanging the suite.
    pub fn run(&self) -> (i32, String, String) {
        self.write_config();
        let child = self
            .command(&["run", "--bundle", self.bundle.to_str().unwrap(), &self.id])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run hull-runtime");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(out) => out.expect("wait for hull-runtime"),
            Err(_) => {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                panic!("hull-runtime run {} did not return within 60 s", self.id);
            }
        };
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs and asserts success; the stdout.
    pub fn run_ok(&self) -> String {
        let (code, out, err) = self.run();
        assert_eq!(code, 0, "run failed: stdout={out} stderr={err}");
        out
    }

    /// A command that leaves a process behind holding its stdio (create, exec --detach): its
    /// output goes to files, or waiting for EOF on pipes would wait for the container.
    pub fn detached(&self, args: &[&str]) -> (bool, String) {
        let out_path = self.dir.join("detached.out");
        let err_path = self.dir.join("detached.err");
        let status = self
            .command(args)
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .status()
            .expect("run hull-runtime");
        (
            status.success(),
            std::fs::read_to_string(&err_path).unwrap_or_default(),
        )
    }

    /// `create`, asserting success.
    pub fn create(&self) {
        self.write_config();
        let (ok, err) = self.detached(&[
            "create",
            "--bundle",
            self.bundle.to_str().unwrap(),
            &self.id,
        ]);
        assert!(ok, "create: {err}");
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.runtime(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn state(&self) -> Value {
        serde_json::from_str(&self.ok(&["state", &self.id])).unwrap()
    }

    pub fn status(&self) -> String {
        self.state()["status"].as_str().unwrap().to_string()
    }

    /// Waits up to 10 s for the status to become `want` (the container may not exist yet).
    pub fn wait_status(&self, want: &str) {
        for _ in 0..1000 {
            let out = self.runtime(&["state", &self.id]);
            let status = serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v["status"].as_str().map(String::from));
            if status.as_deref() == Some(want) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("container {} never became {want}", self.id);
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        let _ = self.runtime(&["delete", "--force", &self.id]);
        let leaks = leaked_cgroups(&self.id);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mount_leak = mounts.lines().any(|l| l.contains(&self.id));
        let _ = std::fs::remove_dir_all(&self.dir);
        if !std::thread::panicking() {
            assert!(leaks.is_empty(), "cgroups left behind: {leaks:?}");
            assert!(!mount_leak, "mounts of {} left behind", self.id);
        }
    }
}

/// Cgroup directories named after `id` in any hierarchy.
pub fn leaked_cgroups(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return found;
    };
    for h in hierarchies.flatten() {
        find_named(&h.path(), id, 4, &mut found);
    }
    found
}

fn find_named(dir: &Path, needle: &str, depth: u32, found: &mut Vec<PathBuf>) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            let path = entry.path();
            if entry.file_name().to_string_lossy().contains(needle) {
                found.push(path.clone());
            }
            find_named(&path, needle, depth - 1, found);
        }
    }
}

/// A busybox root file system: /bin/busybox plus its applets as symlinks, and a few dirs.
pub fn make_rootfs(rootfs: &Path) {
    hull_testkit::rootfs::busybox(rootfs).unwrap();
}

/// True once `pid` has exited: no such process, or a zombie.
pub fn gone(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        let state = s.rsplit(')').next().unwrap_or("").trim_start();
        state.starts_with('Z') || state.starts_with('X')
    })
}

/// The inode of a namespace of the calling (host) process.
pub fn host_ns(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}
