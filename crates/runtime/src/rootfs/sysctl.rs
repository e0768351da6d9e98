//! linux.sysctl: only namespaced kernel parameters, as runc allows them (IPC ones with a new IPC
//! namespace, net.* with a new network namespace, kernel.hostname/domainname with a new UTS
//! namespace), written under the container's /proc/sys after pivot_root.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use hull_sys::resolve::openat2;
use nix::fcntl::{OFlag, ResolveFlag};
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};
use oci_spec::runtime::{Linux, LinuxNamespaceType, Spec};

use super::error::{Context, RootfsError};

const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// A namespace the container gets for itself: new, or joined by a path that is not the
/// runtime's own namespace.
fn own_namespace(linux: &Linux, typ: LinuxNamespaceType, proc_name: &str) -> bool {
    let Some(ns) = linux.namespaces().iter().flatten().find(|n| n.typ() == typ) else {
        return false;
    };
    match ns.path() {
        None => true,
        Some(p) => {
            let host = std::fs::metadata(format!("/proc/self/ns/{proc_name}"));
            let joined = std::fs::metadata(p);
            match (host, joined) {
                (Ok(h), Ok(j)) => {
                    use std::os::unix::fs::MetadataExt;
                    (h.dev(), h.ino()) != (j.dev(), j.ino())
                }
                _ => true,
            }
        }
    }
}

/// Check every linux.sysctl name; returns (name, value) sorted by name.
pub(super) fn validate(spec: &Spec, linux: &Linux) -> Result<Vec<(String, String)>, RootfsError> {
    let mut out: Vec<(String, String)> = linux
        .sysctl()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.sort();
    for (name, _) in &out {
        let field = || format!("linux.sysctl {name:?}");
        let norm = name.replace('/', ".");
        if norm.is_empty() || norm.split('.').any(|c| c.is_empty() || c == "..") {
            return Err(RootfsError::invalid(field(), "not a valid sysctl name"));
        }
        let needs = if IPC_SYSCTLS.contains(&norm.as_str()) || norm.starts_with("fs.mqueue.") {
            (LinuxNamespaceType::Ipc, "ipc")
        } else if norm.starts_with("net.") {
            (LinuxNamespaceType::Network, "net")
        } else if norm == "kernel.hostname" || norm == "kernel.domainname" {
            let conflicting = if norm == "kernel.hostname" {
                spec.hostname().is_some()
            } else {
                spec.domainname().is_some()
            };
            if conflicting {
                return Err(RootfsError::invalid(
                    field(),
                    "conflicts with the hostname/domainname field of config.json",
                ));
            }
            (LinuxNamespaceType::Uts, "uts")
        } else {
            return Err(RootfsError::invalid(
                field(),
                "not in a separate kernel namespace",
            ));
        };
        if !own_namespace(linux, needs.0, needs.1) {
            return Err(RootfsError::invalid(
                field(),
                format!("not allowed in the host's {} namespace", needs.1),
            ));
        }
    }
    Ok(out)
}

/// Write every sysctl under /proc/sys, which must be a procfs (the container's, after pivot).
pub(super) fn apply(sysctls: &[(String, String)]) -> Result<(), RootfsError> {
    if sysctls.is_empty() {
        return Ok(());
    }
    let dir = nix::fcntl::open(
        "/proc/sys",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| "linux.sysctl: open /proc/sys (is /proc mounted?)")?;
    let fs = fstatfs(&dir).ctx(|| "linux.sysctl: statfs /proc/sys")?;
    if fs.filesystem_type() != PROC_SUPER_MAGIC {
        return Err(RootfsError::invalid(
            "linux.sysctl",
            "/proc/sys is not a procfs: mount proc at /proc",
        ));
    }
    for (name, value) in sysctls {
        let rel: PathBuf = name.replace('.', "/").into();
        let what = || format!("linux.sysctl {name:?}: write /proc/sys/{}", rel.display());
        let fd = openat2(
            dir.as_fd(),
            Path::new(&rel),
            OFlag::O_WRONLY,
            ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS,
        )
        .ctx(what)?;
        std::fs::File::from(fd)
            .write_all(value.as_bytes())
            .ctx(what)?;
    }
    Ok(())
}
