//! What the `hull` end-to-end tests share: a private `--root` with a busybox image imported from
//! Debian's busybox-static, the `hull` binary run as a user runs it, and the check on the way out
//! that nothing of the test's containers is left (mounts, runtime state, monitors, cgroups, veths,
//! rows).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test file uses a part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub struct Root {
    pub path: PathBuf,
    /// Every container id the test saw, for the cgroup and veth checks.
    pub ids: Vec<String>,
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A tar of a busybox root file system.
pub fn busybox_tar(dir: &Path) -> PathBuf {
    let path = dir.join("busybox.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let mut dirs = tar::Header::new_gnu();
    dirs.set_entry_type(tar::EntryType::Directory);
    dirs.set_mode(0o755);
    dirs.set_size(0);
    for d in ["bin/", "etc/", "tmp/", "root/"] {
        b.append_data(&mut dirs.clone(), d, std::io::empty())
            .unwrap();
    }
    b.append_path_with_name("/bin/busybox", "bin/busybox")
        .unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet == "busybox" {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    for (name, text) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(text.len() as u64);
        b.append_data(&mut h, name, text.as_bytes()).unwrap();
    }
    b.finish().unwrap();
    path
}

/// Live (not zombie) hull processes whose command line contains `text`.
pub fn processes_naming(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
        if line.contains(text) && line.contains("hull") && !stat.contains(") Z") {
            found.push(line);
        }
    }
    found
}

pub fn cmd(path: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hull"));
    c.arg("--root").arg(path).args(args);
    c
}

pub fn hull(path: &Path, args: &[&str]) -> Output {
    cmd(path, args).output().unwrap()
}

pub fn ok(path: &Path, args: &[&str]) -> String {
    let o = hull(path, args);
    assert!(
        o.status.success(),
        "hull {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command that must fail with exit 125, one line on stderr, and nothing left behind.
pub fn bad(path: &Path, args: &[&str]) -> String {
    let o = hull(path, args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(125), "hull {args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
    assert_eq!(
        ok(path, &["ps", "-a", "-q"]),
        "",
        "hull {args:?} left a container"
    );
    err
}

/// Nothing of the containers under `path` is left in the kernel or on disk: mounts, runtime
/// state, container dirs, rows, monitors, removed files.
pub fn assert_engine_clean(path: &Path) {
    let me = path.display().to_string();
    // Monitors are forked `hull --root ROOT ...` processes: their command line names the
    // root. One reports its container's exit before it takes the container down (and
    // removes an `--rm` one): what it owns is checked once it is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_naming(&me);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "processes left: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&me))
        .map(String::from)
        .collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    let state: Vec<_> = std::fs::read_dir(path.join("runtime"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name())
                // The runtime's compiled seccomp filters: a bounded cache, no container's state.
                .filter(|name| name != "@seccomp-cache")
                .collect()
        })
        .unwrap_or_default();
    assert!(state.is_empty(), "runtime state left: {state:?}");
    let containers: Vec<_> = std::fs::read_dir(path.join("containers"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(containers.is_empty(), "container dirs left: {containers:?}");
    assert_eq!(ok(path, &["ps", "-a", "-q"]), "", "rows left");
    // A monitor empties the trash after its container's row is gone (off every command's
    // path), so a monitor this check could not wait for above (one started with a relative
    // root) may still be at it.
    loop {
        let trash: Vec<_> = std::fs::read_dir(path.join("trash"))
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        if trash.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "removed containers' files left: {trash:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Root {
    pub fn new(tag: &str) -> Option<Root> {
        if !is_root() {
            return None;
        }
        if !Path::new("/bin/busybox").exists() {
            return None;
        }
        let path = std::env::temp_dir().join(format!("hull-ctr-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        let root = Root {
            path,
            ids: Vec::new(),
        };
        let tar = busybox_tar(&root.path);
        root.ok(&["import", tar.to_str().unwrap(), "busybox"]);
        Some(root)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        cmd(&self.path, args)
    }

    pub fn hull(&self, args: &[&str]) -> Output {
        hull(&self.path, args)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        ok(&self.path, args)
    }

    /// A command that must fail with exit 125, one line on stderr, and nothing left behind.
    pub fn bad(&self, args: &[&str]) -> String {
        bad(&self.path, args)
    }

    pub fn detach(&mut self, args: &[&str]) -> String {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        let id = self.ok(&all).trim().to_string();
        assert_eq!(id.len(), 64, "{id}");
        self.ids.push(id.clone());
        id
    }

    /// `hull create ARGS`: the new container's id (kept for the leak check).
    pub fn create(&mut self, args: &[&str]) -> String {
        let mut all = vec!["create"];
        all.extend_from_slice(args);
        let id = self.ok(&all).trim().to_string();
        assert_eq!(id.len(), 64, "{id}");
        self.ids.push(id.clone());
        id
    }

    /// `hull ARGS` running, with `stdin` and piped stdout and stderr.
    pub fn spawn(&self, args: &[&str], stdin: std::process::Stdio) -> std::process::Child {
        self.cmd(args)
            .stdin(stdin)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn inspect(&self, id: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", id])).unwrap();
        v[0].clone()
    }

    /// The names of this root's volumes.
    pub fn volumes(&self) -> Vec<String> {
        self.ok(&["volume", "ls", "-q"])
            .lines()
            .map(String::from)
            .collect()
    }

    /// Nothing of this root's containers and volumes is left in the kernel or on disk.
    pub fn assert_clean(&self) {
        assert_engine_clean(&self.path);
        let left: Vec<_> = std::fs::read_dir(self.path.join("volumes"))
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "volume dirs left: {left:?}");
        assert_eq!(self.volumes(), Vec::<String>::new(), "volume rows left");
        let links = String::from_utf8_lossy(
            &Command::new("ip")
                .args(["-o", "link"])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned();
        for id in &self.ids {
            for cg in cgroup_candidates(id) {
                assert!(!cg.exists(), "cgroup left: {}", cg.display());
            }
            assert!(
                !links.contains(&format!("hull{}", &id[..5])),
                "veth of {id} left"
            );
        }
    }
}

/// Where the runtime may have made container `id`'s cgroup in each v1 hierarchy: at its root,
/// or under this process's own cgroup (a nested host places some hierarchies there).
pub fn cgroup_candidates(id: &str) -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut out = Vec::new();
    for ctl in [
        "pids", "memory", "cpu", "freezer", "devices", "blkio", "cpuset",
    ] {
        let base = Path::new("/sys/fs/cgroup").join(ctl);
        out.push(base.join(format!("hull-{id}")));
        let nested = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, p) = (f.next()?, f.next()?, f.next()?);
            ctrls
                .split(',')
                .any(|c| c == ctl)
                .then(|| p.trim_start_matches('/').to_string())
        });
        if let Some(p) = nested.filter(|p| !p.is_empty()) {
            out.push(base.join(p).join(format!("hull-{id}")));
        }
    }
    out
}

impl Drop for Root {
    fn drop(&mut self) {
        // A failed test still removes what it made: `system reset` also takes the default
        // network's bridge and nftables entries, which would outlive the root's directory.
        let _ = self.cmd(&["system", "reset", "-f"]).output();
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

macro_rules! root {
    ($tag:expr) => {
        match $crate::common::Root::new($tag) {
            Some(r) => r,
            None => hull_testkit::skip!("needs root and /bin/busybox (busybox-static)"),
        }
    };
}

/// The guest kernel and initramfs the VM tests boot, as `(kernel, initramfs)`; or a skip naming
/// what is missing and what makes it.
#[allow(unused_macros)] // only the VM test files boot guests
macro_rules! guest_assets {
    () => {{
        let initrd = hull_testkit::guest::initramfs();
        if !initrd.exists() {
            hull_testkit::skip!(
                "no guest initramfs at {} (scripts/build-guest-initramfs.sh)",
                initrd.display()
            );
        }
        let Some(kernel) = hull_testkit::guest::kernel() else {
            hull_testkit::skip!(
                "no Debian cloud kernel in the qemu cache (scripts/build-guest-initramfs.sh fetches it)"
            );
        };
        (kernel, initrd)
    }};
}

pub fn code(o: &Output) -> Option<i32> {
    o.status.code()
}
