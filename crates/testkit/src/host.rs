//! What tests that drive other daemons (podman, containerd, dockerd) leave on the host, and
//! its removal: a cgroup parent under the test process's own cgroup, and the mounts under a
//! test's directory.

use std::path::{Path, PathBuf};

/// The deepest cgroup the test process is in (v1 controllers may differ): a parent under it is
/// under the test's cgroup in every hierarchy.
pub fn own_cgroup() -> String {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .max_by_key(|p| p.len())
        .unwrap_or("/")
        .trim_end_matches('/')
        .to_string()
}

/// Mount points under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mounts = hull_sys::mountinfo::read_self().unwrap_or_default();
    let mut targets: Vec<PathBuf> = hull_sys::mountinfo::parse(&mounts)
        .filter_map(Result::ok)
        .map(|m| m.mount_point().into_owned())
        .filter(|t| t.starts_with(dir))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.as_os_str().len()));
    targets
}

/// A cgroup parent for the containers of one test: `<own cgroup>/<name>` (absolute, as runc's
/// cgroupsPath). Hierarchies where the test runs at the root get the intermediate directories
/// too; those are recorded so that only what the test created is removed. Dropping it kills
/// what is still inside (the test's containers, after a failure) and removes it all.
#[derive(Debug)]
pub struct CgroupParent {
    pub path: String,
    created: Vec<PathBuf>,
}

impl CgroupParent {
    pub fn new(name: &str) -> CgroupParent {
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

    /// This parent's directory in each hierarchy where it exists.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
            return Vec::new();
        };
        hierarchies
            .flatten()
            .map(|h| h.path().join(self.path.trim_start_matches('/')))
            .filter(|d| d.exists())
            .collect()
    }

    /// Kills every process under the parent and removes its directories (the parent too).
    pub fn clear(&self) {
        let roots = self.dirs();
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
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        self.clear();
        self.created
            .sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in &self.created {
            let _ = std::fs::remove_dir(dir);
        }
        let left = self.dirs();
        assert!(
            std::thread::panicking() || left.is_empty(),
            "cgroups left behind: {left:?}"
        );
    }
}

/// `dir` and every directory below it, parents after their children are listed.
pub fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
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
