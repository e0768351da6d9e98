//! `Cgroup`: one container's cgroup across every mounted hierarchy; creation, placement of
//! processes, listing, and removal of exactly the dirs it created.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use hull_sys::ahead::ReadAhead;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::error::CgroupError;
use crate::fs;
use crate::layout::{Layout, System};
use crate::plan::{self, Mode};

/// One container's cgroup across all hierarchies. Persisted by the runtime (state.json) and reloaded
/// by later commands, so it holds everything needed to find and remove its dirs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cgroup {
    pub(crate) layout: Layout,
    pub(crate) dirs: Vec<Dir>,
    /// Controllers the cgroup2 mount offers (its root's cgroup.controllers); empty without one.
    pub(crate) v2_controllers: Vec<String>,
}

/// This container's cgroup in one hierarchy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Dir {
    pub version: u8,
    pub controllers: Vec<String>,
    pub mount_point: PathBuf,
    /// Where the chain of dirs to create starts: our own cgroup (relative path) or the mount point.
    pub base: PathBuf,
    pub path: PathBuf,
    /// Dirs this Cgroup created, outermost first; only these are ever removed.
    #[serde(default)]
    pub created: Vec<PathBuf>,
    /// Made already, ahead of the others ([`Cgroup::make_v2_dir`]): `create` leaves it be.
    #[serde(skip)]
    pub made: bool,
}

/// One mounted hierarchy, for the runtime's in-container cgroup mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// 1 or 2.
    pub version: u8,
    /// e.g. ["cpu", "cpuacct"] or ["name=systemd"]; empty for a cgroup2 mount.
    pub controllers: Vec<String>,
    /// Host mount point of the hierarchy.
    pub mount_point: PathBuf,
    /// Full host path of this container's cgroup dir in it.
    pub path: PathBuf,
}

/// Controllers hull joins on v1 (runc's list); named hierarchies other than systemd's are left alone.
fn joins_v1(controllers: &[String]) -> bool {
    controllers
        .iter()
        .any(|c| !c.starts_with("name=") || c == "name=systemd")
}

fn check_id(id: &str) -> Result<(), CgroupError> {
    hull_sys::id::validate_id(id).map_err(|e| CgroupError::invalid("container id", e.to_string()))
}

/// The relative part of a cgroups path; rejects ".." so a config cannot climb out of the hierarchy.
fn relative_part(p: &Path) -> Result<PathBuf, CgroupError> {
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => rel.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(CgroupError::invalid(
                    "linux.cgroupsPath",
                    format!("{} must not contain \"..\"", p.display()),
                ))
            }
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(CgroupError::invalid(
            "linux.cgroupsPath",
            format!("{} names a hierarchy root, not a cgroup", p.display()),
        ));
    }
    Ok(rel)
}

/// A validated `linux.cgroupsPath` (or the default `hull-<id>`): the dirs to create, and whether
/// they go under each mount point (absolute) or under our own cgroup (relative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    pub rel: PathBuf,
    pub absolute: bool,
}

impl Placement {
    pub fn new(cgroups_path: Option<&Path>, id: &str) -> Result<Placement, CgroupError> {
        check_id(id)?;
        let default = PathBuf::from(format!("hull-{id}"));
        let given = cgroups_path.unwrap_or(&default);
        Ok(Placement {
            rel: relative_part(given)?,
            absolute: given.is_absolute(),
        })
    }
}

impl Dir {
    /// The leaf, opened: what `clone3` takes for CLONE_INTO_CGROUP.
    fn open(&self) -> Result<OwnedFd, CgroupError> {
        std::fs::File::open(&self.path)
            .map(OwnedFd::from)
            .map_err(|source| CgroupError::Read {
                path: self.path.clone(),
                source,
            })
    }

    /// Makes the chain of dirs; what exists now is known exactly: it replaces a claim.
    fn make(&mut self) -> Result<(), CgroupError> {
        self.created.clear();
        for cur in self.chain() {
            match std::fs::create_dir(&cur) {
                Ok(()) => self.created.push(cur),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(CgroupError::Create { path: cur, source });
                }
            }
        }
        Ok(())
    }

    /// The dirs from `base` (exclusive) down to `path` (inclusive), outermost first: what
    /// creating this cgroup makes when none of them exists yet.
    pub(crate) fn chain(&self) -> Vec<PathBuf> {
        let rel = self.path.strip_prefix(&self.base).unwrap_or(&self.path);
        let mut cur = self.base.clone();
        rel.components()
            .map(|c| {
                cur.push(c);
                cur.clone()
            })
            .collect()
    }
}

/// What [`Cgroup::new`] reads of the host, read ahead by [`read_host_ahead`].
static AHEAD: ReadAhead<(System, Vec<String>)> = ReadAhead::new();

/// Reads now what the next [`Cgroup::new`] of this process reads of the host (the cgroup mounts,
/// this process's own cgroups, the controllers the cgroup2 mount offers), for a caller with
/// time to spare before it knows its container (the engine's monitor, waiting for the id):
/// that call takes this instead of reading, as if it had read at this moment. Best effort: a
/// failure leaves the reading to that call.
pub fn read_host_ahead() {
    AHEAD.fill(read_host);
}

/// The host's cgroup mounts with this process's cgroup in each, and the controllers the
/// cgroup2 mount offers (none without one).
fn read_host() -> Result<(System, Vec<String>), CgroupError> {
    let sys = System::read()?;
    let v2_controllers = match sys.mounts.iter().find(|(m, _)| m.version == 2) {
        Some((m, _)) => fs::read(&m.mount_point.join("cgroup.controllers"))?
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    };
    Ok((sys, v2_controllers))
}

impl Cgroup {
    /// `cgroups_path` as in config.json; None => `hull-<id>` relative. Relative paths go under the
    /// calling process's own cgroup in each hierarchy (on a pure v2 host under its parent, as runc
    /// does, since a cgroup with processes cannot delegate controllers); absolute ones are relative
    /// to each mount point.
    pub fn new(cgroups_path: Option<&Path>, id: &str) -> Result<Cgroup, CgroupError> {
        let placement = Placement::new(cgroups_path, id)?;
        let (sys, v2_controllers) = AHEAD.take_or(read_host)?;
        Ok(Cgroup::place(sys, v2_controllers, &placement))
    }

    /// Where `placement` puts the container on the host `sys` describes, whose cgroup2 mount
    /// offers `v2_controllers`. Reads and touches nothing, so layouts are testable from texts.
    pub(crate) fn place(sys: System, v2_controllers: Vec<String>, placement: &Placement) -> Cgroup {
        let mut dirs = Vec::new();
        for (m, own) in sys.mounts {
            if m.version == 1 && !joins_v1(&m.controllers) {
                continue;
            }
            let base = if placement.absolute {
                m.mount_point.clone()
            } else if m.version == 2 && sys.layout == Layout::Unified && own != m.mount_point {
                // As runc: on cgroup v2 our own cgroup holds this process, and a cgroup with
                // processes cannot hand controllers to children; its parent can.
                own.parent().map_or(own.clone(), Path::to_path_buf)
            } else {
                own
            };
            dirs.push(Dir {
                version: m.version,
                controllers: m.controllers,
                path: base.join(&placement.rel),
                mount_point: m.mount_point,
                base,
                created: Vec::new(),
                made: false,
            });
        }
        Cgroup {
            layout: sys.layout,
            dirs,
            v2_controllers,
        }
    }

    /// The host layout this cgroup was placed for.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The v1 hierarchy holding `controller`.
    pub(crate) fn v1(&self, controller: &str) -> Option<usize> {
        self.dirs
            .iter()
            .position(|d| d.version == 1 && d.controllers.iter().any(|c| c == controller))
    }

    pub(crate) fn v2(&self) -> Option<usize> {
        self.dirs.iter().position(|d| d.version == 2)
    }

    /// The hierarchy that hosts `controller`: its v1 hierarchy, else the cgroup2 mount if it offers it.
    pub(crate) fn host_of(&self, controller: &str) -> Option<usize> {
        self.v1(controller).or_else(|| {
            self.v2()
                .filter(|_| self.v2_controllers.iter().any(|c| c == controller))
        })
    }

    pub(crate) fn dir(&self, i: usize) -> &Dir {
        &self.dirs[i]
    }

    /// Records as created the dirs that [`create`](Self::create) will make: those of each chain
    /// that do not exist yet. A caller persists this value before `create`, so that a crash at
    /// any moment of it leaves a record from which [`remove`](Self::remove) finds every dir
    /// made; one that another process makes in between is claimed too, a race of creators only.
    pub fn claim(&mut self) {
        for d in &mut self.dirs {
            d.created = d.chain().into_iter().filter(|p| !p.exists()).collect();
        }
    }

    /// Validates `resources` fully before touching the disk, then creates the dirs and applies the
    /// limits; on any error removes what it created. Returns the fields skipped because the
    /// kernel dropped them (deprecated in the runtime spec), one line each, for the caller to log.
    pub fn create(
        &mut self,
        resources: Option<&LinuxResources>,
    ) -> Result<Vec<String>, CgroupError> {
        let plan = match resources {
            Some(r) => plan::build(self, r, Mode::Create)?,
            None => plan::Plan::default(),
        };
        let result = self
            .make_dirs()
            .and_then(|()| plan::enable_v2(self, &plan))
            .and_then(|()| crate::controllers::cpuset::init_v1(self))
            .and_then(|()| plan.apply(self));
        if let Err(e) = result {
            // Best effort: the original error is the one worth reporting.
            let _ = self.remove();
            for d in &mut self.dirs {
                d.created.clear();
            }
            return Err(e);
        }
        Ok(plan.ignored)
    }

    /// This cgroup's dir in the cgroup2 hierarchy, opened, for a process to be born in it
    /// (see [`make_v2_dir`](Self::make_v2_dir)); None without a cgroup2 hierarchy.
    pub fn open_v2_dir(&self) -> Result<Option<OwnedFd>, CgroupError> {
        self.v2().map(|i| self.dirs[i].open()).transpose()
    }

    fn make_dirs(&mut self) -> Result<(), CgroupError> {
        for d in self.dirs.iter_mut().filter(|d| !d.made) {
            d.make()?;
        }
        Ok(())
    }

    /// Makes this cgroup's dirs in the cgroup2 hierarchy now, ahead of the others, and opens
    /// the leaf, for a process to be born in it (`clone3` with CLONE_INTO_CGROUP) rather than
    /// moved into it; [`create`](Self::create) makes the rest and applies the limits. None
    /// without a cgroup2 hierarchy. On an error, removes what it made.
    pub fn make_v2_dir(&mut self) -> Result<Option<OwnedFd>, CgroupError> {
        let Some(i) = self.v2() else {
            return Ok(None);
        };
        let d = &mut self.dirs[i];
        let opened = d.make().and_then(|()| d.open());
        match opened {
            Ok(fd) => {
                d.made = true;
                Ok(Some(fd))
            }
            Err(e) => {
                let _ = self.remove();
                for d in &mut self.dirs {
                    d.created.clear();
                }
                Err(e)
            }
        }
    }

    /// Applies new limits to an existing cgroup (`runc update`); a field left out or zero keeps
    /// the value in force. Returns the skipped fields, as `create` does.
    pub fn update(&self, resources: &LinuxResources) -> Result<Vec<String>, CgroupError> {
        let plan = plan::build(self, resources, Mode::Update)?;
        plan::enable_v2(self, &plan)?;
        plan.apply(self)?;
        Ok(plan.ignored)
    }

    /// Moves `pid` into this container's cgroup in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        self.add_process_where(pid, |_| true)
    }

    /// Moves `pid` into this container's cgroup in the cgroup2 hierarchy only (when a process
    /// could not be born there, and moves itself into the v1 ones with [`join_v1`](Self::join_v1)).
    pub fn add_process_v2(&self, pid: i32) -> Result<(), CgroupError> {
        self.add_process_where(pid, |d| d.version == 2)
    }

    fn add_process_where(&self, pid: i32, which: impl Fn(&Dir) -> bool) -> Result<(), CgroupError> {
        let v = pid.to_string();
        for d in self.dirs.iter().filter(|d| which(d)) {
            fs::write_file(&d.path.join("cgroup.procs"), &v)?;
        }
        Ok(())
    }

    /// Moves the calling thread into this cgroup in every v1 hierarchy, by writing 0 to each
    /// `tasks` file; for a single-threaded process, the whole process. A thread moving itself is
    /// the one migration the kernel makes without its global migration lock
    /// (`cgroup_threadgroup_rwsem`, shared by all hierarchies): a write of a pid to
    /// `cgroup.procs` takes it, and its first taking after a pause waits for an RCU grace
    /// period (5-18 ms here), holding the cgroup mutex, so that every `mkdir` of a cgroup waits
    /// too. On cgroup2 a process cannot move itself so; it is born in its cgroup instead
    /// ([`make_v2_dir`](Self::make_v2_dir)).
    pub fn join_v1(&self) -> Result<(), CgroupError> {
        for d in self.dirs.iter().filter(|d| d.version == 1) {
            fs::write_file(&d.path.join("tasks"), "0")?;
        }
        Ok(())
    }

    /// The dir whose cgroup.procs is authoritative: the cgroup2 one on unified hosts, else a v1
    /// hierarchy with a real controller.
    fn procs_dir(&self) -> Option<&Dir> {
        if self.layout == Layout::Unified {
            return self.v2().map(|i| &self.dirs[i]);
        }
        ["pids", "freezer", "memory", "cpu", "devices"]
            .iter()
            .find_map(|c| self.v1(c))
            .or_else(|| self.v2())
            .map(|i| &self.dirs[i])
    }

    /// Every process in the container's cgroup, including nested cgroups the container made.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut out = Vec::new();
        if let Some(d) = self.procs_dir() {
            collect_pids(&d.path, &mut out)?;
        }
        Ok(out)
    }

    /// Every hierarchy this cgroup lives in, for the container's own /sys/fs/cgroup mounts.
    pub fn hierarchies(&self) -> Vec<Hierarchy> {
        self.dirs
            .iter()
            .map(|d| Hierarchy {
                version: d.version,
                controllers: d.controllers.clone(),
                mount_point: d.mount_point.clone(),
                path: d.path.clone(),
            })
            .collect()
    }

    /// Removes only the dirs this Cgroup created (and cgroups the container nested inside its own),
    /// retrying for about a second while the kernel still counts exiting tasks. Missing dirs are fine.
    pub fn remove(&self) -> Result<(), CgroupError> {
        // One deadline for all hierarchies: the tasks leave every hierarchy at the same moment.
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut first_err = None;
        for d in &self.dirs {
            // Outer dirs we created may be shared with other containers: only try them once.
            for (i, p) in d.created.iter().enumerate().rev() {
                let leaf = i + 1 == d.created.len() && *p == d.path;
                let r = if leaf {
                    remove_tree(p, deadline)
                } else {
                    match std::fs::remove_dir(p) {
                        Err(e)
                            if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) =>
                        {
                            Ok(())
                        }
                        r => r.map_err(|source| CgroupError::Remove {
                            path: p.clone(),
                            source,
                        }),
                    }
                    .or_else(missing_ok)
                };
                if let Err(e) = r {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

fn missing_ok(e: CgroupError) -> Result<(), CgroupError> {
    match &e {
        CgroupError::Remove { source, .. } if source.kind() == io::ErrorKind::NotFound => Ok(()),
        _ => Err(e),
    }
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    let procs = dir.join("cgroup.procs");
    let Some(text) = fs::read_opt(&procs)? else {
        return Ok(());
    };
    for l in text.lines() {
        let pid = l.trim().parse().map_err(|_| CgroupError::Parse {
            path: procs.clone(),
            reason: format!("{l:?} is not a pid"),
        })?;
        out.push(pid);
    }
    for sub in child_dirs(dir)? {
        collect_pids(&sub, out)?;
    }
    Ok(())
}

fn child_dirs(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    Ok(rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect())
}

/// Removes a cgroup and the cgroups nested in it, deepest first, retrying EBUSY until `deadline`.
fn remove_tree(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    // Most containers nest no cgroup and leave no task: one rmdir then, rather than listing
    // the directory first (four syscalls more per hierarchy, ten hierarchies on a v1 host).
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    for sub in child_dirs(dir)? {
        remove_tree(&sub, deadline)?;
    }
    let mut delay = Duration::from_millis(1);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}
