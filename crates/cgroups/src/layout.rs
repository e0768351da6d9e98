//! Host layout detection: which cgroup hierarchies are mounted where (from /proc/self/mountinfo) and
//! where the calling process sits in each of them (from /proc/self/cgroup).

use std::path::{Path, PathBuf};

use hull_sys::mountinfo;
use serde::{Deserialize, Serialize};

use crate::error::CgroupError;
use crate::fs;

/// How cgroups are mounted on the host, as runc classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Pure cgroup v2: one cgroup2 mount, no v1 controller hierarchies.
    Unified,
    /// v1 controller hierarchies plus a cgroup2 mount (which may host some controllers).
    Hybrid,
    /// v1 hierarchies only.
    Legacy,
}

/// One mounted hierarchy as read from mountinfo (first mount of each hierarchy wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub version: u8,
    /// v1: controllers from the super options, plus "name=..." for named hierarchies; v2: empty.
    pub controllers: Vec<String>,
    pub mount_point: PathBuf,
    /// The cgroup path of the mount's root inside its hierarchy (not "/" under a cgroup namespace).
    pub root: PathBuf,
}

/// The v1 controllers this crate knows; other super options (rw, relatime, ...) are ignored.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "net_cls",
    "net_prio",
    "hugetlb",
    "perf_event",
    "rdma",
    "misc",
];

/// Parses mountinfo text into the cgroup mounts it lists (lines that are not mountinfo entries
/// are passed over).
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = Vec::new();
    for e in mountinfo::parse(text).filter_map(Result::ok) {
        let (version, controllers) = match e.fs_type {
            "cgroup2" => (2, Vec::new()),
            "cgroup" => {
                let mut controllers: Vec<String> = e
                    .super_opts()
                    .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                    .map(str::to_string)
                    .collect();
                controllers.sort();
                (1, controllers)
            }
            _ => continue,
        };
        let m = Mount {
            version,
            controllers,
            mount_point: e.mount_point().into_owned(),
            root: e.root().into_owned(),
        };
        // The same hierarchy may be bind-mounted again elsewhere; the first mount is the host's.
        if !mounts
            .iter()
            .any(|o| o.version == m.version && o.controllers == m.controllers)
        {
            mounts.push(m);
        }
    }
    mounts
}

pub(crate) fn layout_of(mounts: &[Mount]) -> Result<Layout, CgroupError> {
    let v1 = mounts
        .iter()
        .any(|m| m.version == 1 && m.controllers.iter().any(|c| !c.starts_with("name=")));
    let v2 = mounts.iter().any(|m| m.version == 2);
    match (v1, v2) {
        (true, true) => Ok(Layout::Hybrid),
        (true, false) => Ok(Layout::Legacy),
        (false, true) => Ok(Layout::Unified),
        (false, false) => Err(CgroupError::NotMounted),
    }
}

/// One line of /proc/<pid>/cgroup: the hierarchy's controllers (sorted; empty for v2) and the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Membership {
    pub version: u8,
    pub controllers: Vec<String>,
    pub path: PathBuf,
}

pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (id, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            let mut controllers: Vec<String> = ctrls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            controllers.sort();
            let version = if id == "0" && controllers.is_empty() {
                2
            } else {
                1
            };
            Some(Membership {
                version,
                controllers,
                path: path.into(),
            })
        })
        .collect()
}

/// The mounts of this host, and the calling process's own cgroup dir (host path) in each.
pub(crate) struct System {
    pub layout: Layout,
    /// (mount, host path of our own cgroup in it)
    pub mounts: Vec<(Mount, PathBuf)>,
}

/// Maps a cgroup path (as in /proc/self/cgroup) to a host path under the mount point.
pub(crate) fn host_path(m: &Mount, cgroup_path: &Path) -> PathBuf {
    let rel = cgroup_path.strip_prefix(&m.root).unwrap_or(cgroup_path);
    m.mount_point.join(rel.strip_prefix("/").unwrap_or(rel))
}

impl System {
    pub fn read() -> Result<System, CgroupError> {
        let mountinfo = fs::read(Path::new("/proc/self/mountinfo"))?;
        let own = fs::read(Path::new("/proc/self/cgroup"))?;
        Self::from_texts(&mountinfo, &own)
    }

    pub fn from_texts(mountinfo: &str, own: &str) -> Result<System, CgroupError> {
        let all = parse_mountinfo(mountinfo);
        let layout = layout_of(&all)?;
        let own = parse_proc_cgroup(own);
        let mounts = all
            .into_iter()
            .filter_map(|m| {
                // A hierarchy we are not a member of (e.g. mounted but foreign) cannot be used.
                let me = own
                    .iter()
                    .find(|o| o.version == m.version && o.controllers == m.controllers)?;
                let p = host_path(&m, &me.path);
                Some((m, p))
            })
            .collect();
        Ok(System { layout, mounts })
    }
}

/// The cgroup dirs (host paths) of process `pid`, one per hierarchy it is in: (controllers,
/// empty for v2; its path as /proc/PID/cgroup shows it; the dir under this process's mounts).
pub fn process_dirs(pid: i32) -> Result<Vec<(Vec<String>, PathBuf, PathBuf)>, CgroupError> {
    let mounts = parse_mountinfo(&fs::read(Path::new("/proc/self/mountinfo"))?);
    let member = parse_proc_cgroup(&fs::read(Path::new(&format!("/proc/{pid}/cgroup")))?);
    Ok(member
        .into_iter()
        .filter_map(|m| {
            let mount = mounts
                .iter()
                .find(|x| x.version == m.version && x.controllers == m.controllers)?;
            let dir = host_path(mount, &m.path);
            Some((m.controllers, m.path, dir))
        })
        .collect())
}

/// Detects the host's cgroup layout from /proc/self/mountinfo.
pub fn detect_layout() -> Result<Layout, CgroupError> {
    let mountinfo = fs::read(Path::new("/proc/self/mountinfo"))?;
    layout_of(&parse_mountinfo(&mountinfo))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
90 80 0:32 /x /mnt/memory\\040copy rw,relatime - cgroup cgroup rw,memory
";
    const OWN: &str = "9:name=systemd:/\n4:memory:/process_api/e2\n2:cpuacct:/\n1:cpu:/\n0::/\n";

    #[test]
    fn hybrid_is_detected_with_own_paths() {
        let s = System::from_texts(HYBRID, OWN).unwrap();
        assert_eq!(s.layout, Layout::Hybrid);
        assert_eq!(s.mounts.len(), 5);
        let mem = s
            .mounts
            .iter()
            .find(|(m, _)| m.controllers == ["memory"])
            .unwrap();
        assert_eq!(mem.1, Path::new("/sys/fs/cgroup/memory/process_api/e2"));
        let v2 = s.mounts.iter().find(|(m, _)| m.version == 2).unwrap();
        assert_eq!(v2.1, Path::new("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn unified_and_legacy() {
        let u = "1 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(layout_of(&parse_mountinfo(u)).unwrap(), Layout::Unified);
        let l = "1 0 0:1 / /cg/cpu rw - cgroup cgroup rw,cpu,cpuacct\n";
        let m = parse_mountinfo(l);
        assert_eq!(m[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(layout_of(&m).unwrap(), Layout::Legacy);
        assert!(layout_of(&[]).is_err());
    }

    #[test]
    fn cgroup_namespace_root_is_stripped_and_escapes_decoded() {
        let m = Mount {
            version: 1,
            controllers: vec!["memory".into()],
            mount_point: "/sys/fs/cgroup/memory".into(),
            root: "/ns".into(),
        };
        assert_eq!(
            host_path(&m, Path::new("/ns/a/b")),
            Path::new("/sys/fs/cgroup/memory/a/b")
        );
        let e = "90 80 0:32 /a\\040b /mnt/a\\040b rw - cgroup cgroup rw,memory\n";
        let m = parse_mountinfo(e);
        assert_eq!(m[0].root, Path::new("/a b"));
        assert_eq!(m[0].mount_point, Path::new("/mnt/a b"));
    }
}
