//! The container's namespaces: which are created by the clone itself, which are joined by path
//! (setns), which must wait until the process is in its cgroup (cgroup) or until its clocks are set
//! (time), and the user namespace's id maps.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::sched::{setns, unshare, CloneFlags};
use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("namespace {kind} path {path}: {source}")]
    Open {
        kind: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("joining {kind} namespace {path}: {source}")]
    Join {
        kind: &'static str,
        path: PathBuf,
        source: nix::errno::Errno,
    },
    #[error("creating {kind} namespace: {source}")]
    Create {
        kind: &'static str,
        source: nix::errno::Errno,
    },
    #[error("writing {what} of pid {pid}: {source}")]
    WriteMap {
        what: &'static str,
        pid: i32,
        source: std::io::Error,
    },
    #[error("the caller's {kind} namespace: config.json asks for no new one")]
    NotNew { kind: &'static str },
    #[error("setting time namespace offsets: {0}")]
    TimeOffsets(std::io::Error),
}

/// The kernel's name for a namespace type, as under /proc/PID/ns.
pub fn proc_name(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

pub fn clone_flag(kind: LinuxNamespaceType) -> CloneFlags {
    match kind {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// A namespace to join, opened in the runtime (so the path resolves on the host) before any clone.
#[derive(Debug)]
pub struct Join {
    pub kind: LinuxNamespaceType,
    pub path: PathBuf,
    file: File,
}

/// How the container's namespaces come to be.
#[derive(Debug, Default)]
pub struct NamespacePlan {
    /// Namespaces to create (time and cgroup included, though they are made later).
    pub new: Vec<LinuxNamespaceType>,
    pub joins: Vec<Join>,
    pub uid_mappings: Vec<LinuxIdMapping>,
    pub gid_mappings: Vec<LinuxIdMapping>,
    /// "monotonic SECS NANOS" / "boottime SECS NANOS" lines.
    pub time_offsets: Vec<String>,
}

impl NamespacePlan {
    pub fn new(linux: Option<&Linux>) -> Result<NamespacePlan, NamespaceError> {
        let mut plan = NamespacePlan::default();
        let Some(linux) = linux else {
            return Ok(plan);
        };
        for ns in linux.namespaces().as_deref().unwrap_or_default() {
            match ns.path() {
                None => plan.new.push(ns.typ()),
                Some(path) => {
                    let file = File::open(path).map_err(|source| NamespaceError::Open {
                        kind: proc_name(ns.typ()),
                        path: path.clone(),
                        source,
                    })?;
                    plan.joins.push(Join {
                        kind: ns.typ(),
                        path: path.clone(),
                        file,
                    });
                }
            }
        }
        // The user namespace first: it owns the others, and joining it gives the capabilities
        // needed to join them.
        plan.joins
            .sort_by_key(|j| j.kind != LinuxNamespaceType::User);
        plan.uid_mappings = linux.uid_mappings().clone().unwrap_or_default();
        plan.gid_mappings = linux.gid_mappings().clone().unwrap_or_default();
        if let Some(offsets) = linux.time_offsets() {
            for (clock, offset) in offsets {
                plan.time_offsets.push(format!(
                    "{clock} {} {}",
                    offset.secs().unwrap_or(0),
                    offset.nanosecs().unwrap_or(0)
                ));
            }
        }
        Ok(plan)
    }

    /// The process joins `file` (a namespace of type `kind` its caller made) instead of making
    /// the new one config.json asks for.
    pub fn join_instead_of_new(
        &mut self,
        kind: LinuxNamespaceType,
        file: File,
    ) -> Result<(), NamespaceError> {
        let Some(at) = self.new.iter().position(|k| *k == kind) else {
            return Err(NamespaceError::NotNew {
                kind: proc_name(kind),
            });
        };
        self.new.remove(at);
        self.joins.push(Join {
            kind,
            path: PathBuf::from("(the caller's)"),
            file,
        });
        self.joins
            .sort_by_key(|j| j.kind != LinuxNamespaceType::User);
        Ok(())
    }

    pub fn is_new(&self, kind: LinuxNamespaceType) -> bool {
        self.new.contains(&kind)
    }

    pub fn is_private(&self, kind: LinuxNamespaceType) -> bool {
        self.is_new(kind) || self.joins.iter().any(|j| j.kind == kind)
    }

    /// The namespaces a single clone can create: all new ones but cgroup (made once the process is
    /// in its cgroup, so that its cgroup root is the container's) and time (its clocks are set
    /// between creation and entry, which only unshare + setns allows).
    fn cloned(&self) -> CloneFlags {
        self.new
            .iter()
            .filter(|k| !matches!(k, LinuxNamespaceType::Cgroup | LinuxNamespaceType::Time))
            .fold(CloneFlags::empty(), |acc, k| acc | clone_flag(*k))
    }

    /// Whether the container process must be a grandchild: after joins, a new or joined pid
    /// namespace applies only to children of the process that made the change. A lone network
    /// namespace to join is no such join: the process joins it itself after the clone
    /// (`lone_network_join`).
    pub fn needs_intermediate(&self) -> bool {
        !self.joins.is_empty() && self.lone_network_join().is_none()
    }

    /// The one namespace to join when it is a network namespace and no user namespace is new:
    /// joining it after the clone changes nothing for the container (the clone's other new
    /// namespaces do not own it, and the process still has its capabilities in the namespace
    /// that does), so the clone can make everything else, as with no join.
    fn lone_network_join(&self) -> Option<&Join> {
        match self.joins.as_slice() {
            [join]
                if join.kind == LinuxNamespaceType::Network
                    && !self.is_new(LinuxNamespaceType::User) =>
            {
                Some(join)
            }
            _ => None,
        }
    }

    /// Flags for the first clone: everything when nothing is joined; nothing otherwise, as joins
    /// must come before creation (a namespace created first would own the process and deny them).
    pub fn first_clone_flags(&self) -> CloneFlags {
        if self.needs_intermediate() {
            CloneFlags::empty()
        } else {
            self.cloned() - self.deferred()
        }
    }

    /// New namespaces the process makes itself right after the clone, before it reports
    /// Created: a new network namespace (about a millisecond of sysctl and device registration
    /// in the kernel) then takes shape while the runtime makes the cgroup dirs, instead of
    /// inside the clone, with the runtime waiting. Nothing differs for the container: it is
    /// made by the same process, in the same user namespace (none new: a new one stays in the
    /// clone, to keep its ownership of the network namespace beyond doubt), before the process
    /// is in its cgroup, as the clone made it.
    fn deferred(&self) -> CloneFlags {
        if self.needs_intermediate() || self.is_new(LinuxNamespaceType::User) {
            return CloneFlags::empty();
        }
        self.cloned() & CloneFlags::CLONE_NEWNET
    }

    /// In the container process, first thing: the namespaces `first_clone_flags` left out, or
    /// the lone network namespace to join.
    pub fn unshare_deferred(&self) -> Result<(), NamespaceError> {
        if let Some(join) = self.lone_network_join() {
            return setns(join.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| {
                NamespaceError::Join {
                    kind: "net",
                    path: join.path.clone(),
                    source,
                }
            });
        }
        let flags = self.deferred();
        if flags.is_empty() {
            return Ok(());
        }
        unshare(flags).map_err(|source| NamespaceError::Create {
            kind: "network",
            source,
        })
    }

    /// In the intermediate process: join by path, then create the new namespaces except pid (its
    /// children get that), cgroup and time.
    pub fn join_and_unshare(&self) -> Result<(), NamespaceError> {
        for join in &self.joins {
            if join.kind == LinuxNamespaceType::Time {
                continue;
            }
            setns(join.file.as_fd(), clone_flag(join.kind)).map_err(|source| {
                NamespaceError::Join {
                    kind: proc_name(join.kind),
                    path: join.path.clone(),
                    source,
                }
            })?;
        }
        let flags = self.cloned();
        if !flags.is_empty() {
            unshare(flags).map_err(|source| NamespaceError::Create {
                kind: "container",
                source,
            })?;
        }
        Ok(())
    }

    /// Whether the intermediate must fork once more so its child lands in the pid namespace.
    pub fn intermediate_forks(&self) -> bool {
        self.is_private(LinuxNamespaceType::Pid)
    }

    /// The offsets file, opened while this process still has the ids it was cloned with: the
    /// process is not dumpable, so its /proc files belong to the host's root, whom a root mapped
    /// from another id in a new user namespace may not open (runc has its parent write them).
    /// The kernel checks CAP_SYS_TIME against the opener, who owns the time namespace to come.
    pub fn open_time_offsets(&self) -> Result<Option<File>, NamespaceError> {
        if !self.is_new(LinuxNamespaceType::Time) || self.time_offsets.is_empty() {
            return Ok(None);
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open("/proc/self/timens_offsets")
            .map(Some)
            .map_err(NamespaceError::TimeOffsets)
    }

    /// In the container process, once it is in its cgroup: the cgroup namespace, then the time
    /// namespace with its offsets (`offsets` from `open_time_offsets`) written before the process
    /// enters it.
    pub fn finish(&self, offsets: Option<File>) -> Result<(), NamespaceError> {
        if self.is_new(LinuxNamespaceType::Cgroup) {
            unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|source| NamespaceError::Create {
                kind: "cgroup",
                source,
            })?;
        }
        if let Some(join) = self
            .joins
            .iter()
            .find(|j| j.kind == LinuxNamespaceType::Time)
        {
            setns(join.file.as_fd(), clone_flag(join.kind)).map_err(|source| {
                NamespaceError::Join {
                    kind: "time",
                    path: join.path.clone(),
                    source,
                }
            })?;
        }
        if self.is_new(LinuxNamespaceType::Time) {
            let time = clone_flag(LinuxNamespaceType::Time);
            unshare(time).map_err(|source| NamespaceError::Create {
                kind: "time",
                source,
            })?;
            if let Some(mut file) = offsets {
                // One write: the kernel parses the offsets of a write as a whole.
                file.write_all(self.time_offsets.join("\n").as_bytes())
                    .map_err(NamespaceError::TimeOffsets)?;
            }
            let for_children = File::open("/proc/self/ns/time_for_children")
                .map_err(NamespaceError::TimeOffsets)?;
            setns(for_children.as_fd(), time).map_err(|source| NamespaceError::Join {
                kind: "time",
                path: "/proc/self/ns/time_for_children".into(),
                source,
            })?;
        }
        Ok(())
    }

    /// In the runtime: writes the id maps of the process that made the new user namespace.
    pub fn write_id_maps(&self, pid: i32) -> Result<(), NamespaceError> {
        if !self.is_new(LinuxNamespaceType::User) {
            return Ok(());
        }
        write_map(pid, "uid_map", &self.uid_mappings)?;
        write_map(pid, "gid_map", &self.gid_mappings)
    }
}

fn write_map(pid: i32, what: &'static str, maps: &[LinuxIdMapping]) -> Result<(), NamespaceError> {
    let text: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect();
    std::fs::write(format!("/proc/{pid}/{what}"), text).map_err(|source| NamespaceError::WriteMap {
        what,
        pid,
        source,
    })
}

#[cfg(test)]
#[path = "namespaces_tests.rs"]
mod tests;
