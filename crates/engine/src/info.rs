//! `info`: what the engine finds on this host, in docker's field names: its containers by
//! state and its images, the storage (overlay under the root), the cgroup layout and version,
//! the kernel, and the kernel features it needs (namespaces, seccomp, overlayfs).

use serde_json::{json, Value};

use crate::store::State;
use crate::{Engine, EngineError};

/// The namespace kinds the runtime can make, as /proc/self/ns names them.
const NAMESPACES: [&str; 8] = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];

impl Engine {
    /// docker's `info` document, with hull's kernel view.
    pub fn info(&self) -> Result<Value, EngineError> {
        let (mut running, mut paused, mut stopped) = (0, 0, 0);
        let list = self.list()?;
        for r in &list {
            match r.state {
                State::Running if self.is_paused(r) => paused += 1,
                State::Running | State::Starting | State::Restarting => running += 1,
                State::Created | State::Exited => stopped += 1,
            }
        }
        let images = match self.image_store()? {
            Some(store) => store.list()?.len(),
            None => 0,
        };
        let layout = hull_cgroups::detect_layout().ok();
        let uname = nix::sys::utsname::uname().map_err(EngineError::sys("uname"))?;
        let text = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
        let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
        let overlay = filesystems
            .lines()
            .any(|l| l.trim_end().ends_with("\toverlay"));
        let namespaces: Vec<&str> = NAMESPACES
            .iter()
            .copied()
            .filter(|n| std::path::Path::new("/proc/self/ns").join(n).exists())
            .collect();
        let seccomp = std::path::Path::new("/proc/sys/kernel/seccomp/actions_avail").exists();
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "Linux".into());
        let mut security = Vec::new();
        if seccomp {
            security.push("name=seccomp,profile=builtin");
        }
        if namespaces.contains(&"user") {
            security.push("name=userns");
        }
        Ok(json!({
            "Containers": list.len(),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": stopped,
            "Images": images,
            "Driver": "overlay",
            "DriverStatus": [["Backing Filesystem", backing_fs(&self.root)], ["Supports d_type", "true"]],
            "DockerRootDir": self.root,
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": match layout {
                Some(hull_cgroups::Layout::Unified) => "2",
                Some(_) => "1",
                None => "none",
            },
            "CgroupLayout": match layout {
                Some(hull_cgroups::Layout::Unified) => "unified",
                Some(hull_cgroups::Layout::Hybrid) => "hybrid",
                Some(hull_cgroups::Layout::Legacy) => "legacy",
                None => "none",
            },
            "KernelVersion": text(uname.release()),
            "OperatingSystem": os,
            "OSType": "linux",
            "Architecture": text(uname.machine()),
            "Name": text(uname.nodename()),
            "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "MemTotal": crate::stats::host_memory(),
            "SecurityOptions": security,
            "KernelFeatures": {
                "Namespaces": namespaces,
                "Seccomp": seccomp,
                "Overlayfs": overlay,
            },
            "ServerVersion": env!("CARGO_PKG_VERSION"),
            "DefaultRuntime": "hull-runtime",
        }))
    }
}

/// The file system type under the engine's root (what overlay's upper dirs sit on).
fn backing_fs(root: &std::path::Path) -> String {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return "unknown".into();
    };
    // The longest mount point that holds the root.
    hull_sys::mountinfo::parse(&info)
        .filter_map(Result::ok)
        .filter(|e| root.starts_with(e.mount_point()))
        .max_by_key(|e| e.mount_point().as_os_str().len())
        .map_or_else(|| "unknown".into(), |e| e.fs_type.to_string())
}
