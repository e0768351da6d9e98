//! The `run`/`create` flags for DNS and hosts, resources, devices and security (`--add-host`,
//! `--dns`, `--memory-swap`, `--cpu-shares`, `--cpuset-*`, `--device*`, `--blkio-weight`,
//! `--cap-add/--cap-drop`, `--security-opt`, `--ulimit`, `--stop-signal`): each parsed and checked
//! against the host as docker does, before anything is created.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::EngineError;

fn invalid(text: String) -> EngineError {
    EngineError::Invalid(text)
}

/// `--add-host HOST:IP|host-gateway` (docker also takes `HOST=IP`; an IPv6 address keeps its
/// colons).
pub fn parse_add_host(text: &str) -> Result<(String, String), EngineError> {
    let (host, ip) = text
        .split_once('=')
        .or_else(|| text.split_once(':'))
        .ok_or_else(|| invalid(format!("invalid --add-host {text:?}: use HOST:IP")))?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(invalid(format!(
            "invalid --add-host {text:?}: no host name"
        )));
    }
    if ip != hull_net::etc::HOST_GATEWAY && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(invalid(format!(
            "invalid --add-host {text:?}: {ip:?} is not an IP address nor host-gateway"
        )));
    }
    Ok((host.to_string(), ip.to_string()))
}

/// `--dns IP`: a nameserver address.
pub fn parse_dns(text: &str) -> Result<String, EngineError> {
    text.parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| invalid(format!("invalid --dns {text:?}: not an IP address")))
}

/// `--memory-swap`: memory plus swap in bytes, -1 for unlimited swap; needs `--memory` and is
/// at least it, as docker requires.
pub fn parse_memory_swap(text: &str, memory: Option<i64>) -> Result<i64, EngineError> {
    let Some(memory) = memory else {
        return Err(invalid(
            "--memory-swap needs --memory: set a memory limit too".into(),
        ));
    };

    if text.trim() == "-1" {
        return Ok(-1);
    }
    let swap = crate::options::parse_size(text, "--memory-swap")?;
    if swap < memory {
        return Err(invalid(format!(
            "invalid --memory-swap {text:?}: it is memory plus swap, so at least --memory"
        )));
    }
    Ok(swap)
}

/// Refuses `--memory-swap` where the kernel does not account swap (v1 memsw files; v2
/// memory.swap.max, not shown in the root cgroup, where the runtime's own check has to tell).
pub fn require_swap_accounting() -> Result<(), EngineError> {
    let dir = controller_dir("memory");
    let accounted = if dir.ends_with("memory") {
        dir.join("memory.memsw.limit_in_bytes").exists()
    } else {
        dir == Path::new("/sys/fs/cgroup") || dir.join("memory.swap.max").exists()
    };
    if accounted {
        Ok(())
    } else {
        Err(invalid(
            "--memory-swap: this kernel does not account swap (boot with swapaccount=1)".into(),
        ))
    }
}

/// `--cpu-shares N`: the relative CPU weight (the kernel's range, 2 to 262144; 0 is docker's
/// "the default").
pub fn parse_cpu_shares(text: &str) -> Result<Option<u64>, EngineError> {
    match text.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(n) if (2..=262_144).contains(&n) => Ok(Some(n)),
        _ => Err(invalid(format!(
            "invalid --cpu-shares {text:?}: use an integer from 2 to 262144"
        ))),
    }
}

/// A kernel list such as `0-2,5`, as the set of numbers in it.
fn parse_list(text: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in text.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
        if a > b || b - a > 4096 {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

/// `--cpuset-cpus`/`--cpuset-mems`: a list of CPUs or memory nodes, each one this host has
/// (`online`: the host's list, from /sys).
pub fn parse_cpuset(flag: &str, text: &str, online: &str) -> Result<String, EngineError> {
    let wanted = parse_list(text)
        .ok_or_else(|| invalid(format!("invalid {flag} {text:?}: use a list such as 0-2,4")))?;
    let have = parse_list(online).unwrap_or_default();
    if let Some(n) = wanted.iter().find(|n| !have.contains(n)) {
        return Err(invalid(format!(
            "invalid {flag} {text:?}: {n} is not available (this host has {})",
            online.trim()
        )));
    }
    Ok(text.trim().to_string())
}

/// The host's online CPUs or memory nodes (a host without NUMA has node 0).
pub fn host_online(what: &str) -> String {
    let path = match what {
        "cpus" => "/sys/devices/system/cpu/online",
        _ => "/sys/devices/system/node/online",
    };
    std::fs::read_to_string(path).unwrap_or_else(|_| "0".into())
}

/// A host device node: its kind, numbers and mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// `c` or `b`.
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Stats `path` (following links, as docker does for /dev/disk/by-id names).
pub fn device_node(path: &Path) -> Result<DeviceNode, EngineError> {
    let meta =
        std::fs::metadata(path).map_err(|e| invalid(format!("device {}: {e}", path.display())))?;
    let kind = if meta.file_type().is_char_device() {
        'c'
    } else if meta.file_type().is_block_device() {
        'b'
    } else {
        return Err(invalid(format!("{} is not a device node", path.display())));
    };
    let rdev = meta.rdev();
    Ok(DeviceNode {
        kind,
        major: nix::sys::stat::major(rdev),
        minor: nix::sys::stat::minor(rdev),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

/// `--device HOST[:CTR[:PERMS]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    pub host_path: String,
    pub container_path: String,
    /// `rwm` or a subset.
    pub access: String,
    pub node: DeviceNode,
}

/// Every device node under `dir`, recursively, symlinks skipped.
pub fn nodes_under(dir: &Path) -> Vec<(PathBuf, DeviceNode)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.extend(nodes_under(&path)),
            Ok(t) if t.is_char_device() || t.is_block_device() => {
                if let Ok(node) = device_node(&path) {
                    out.push((path, node));
                }
            }
            _ => {}
        }
    }
    out
}

/// `--device HOST[:CTR[:PERMS]]`; a directory (as /dev/snd) gives every node under it, at the
/// same place under CTR, as docker does.
pub fn parse_device(text: &str) -> Result<Vec<DeviceSpec>, EngineError> {
    let bad = |why: &str| invalid(format!("invalid --device {text:?}: {why}"));
    let mut parts = text.split(':');
    let host = parts.next().unwrap_or_default();
    let mut ctr = parts.next().unwrap_or(host);
    let mut access = parts.next().unwrap_or("rwm");
    // `HOST:PERMS`, as docker reads a second field of only r, w and m.
    if parts.next().is_some() {
        return Err(bad("use HOST[:CONTAINER[:PERMISSIONS]]"));
    }
    if !ctr.starts_with('/') && is_access(ctr) && text.split(':').count() == 2 {
        access = ctr;
        ctr = host;
    }
    if !host.starts_with('/') || !ctr.starts_with('/') {
        return Err(bad("the paths must be absolute"));
    }
    if !is_access(access) {
        return Err(bad("permissions are a combination of r, w and m"));
    }
    if Path::new(host).is_dir() {
        let nodes = nodes_under(Path::new(host));
        if nodes.is_empty() {
            return Err(bad("the directory has no device nodes"));
        }
        return Ok(nodes
            .into_iter()
            .filter_map(|(path, node)| {
                let rel = path.strip_prefix(host).ok()?;
                Some(DeviceSpec {
                    host_path: path.to_str()?.to_string(),
                    container_path: Path::new(ctr).join(rel).to_str()?.to_string(),
                    access: access.to_string(),
                    node,
                })
            })
            .collect());
    }
    Ok(vec![DeviceSpec {
        host_path: host.to_string(),
        container_path: ctr.to_string(),
        access: access.to_string(),
        node: device_node(Path::new(host))?,
    }])
}

fn is_access(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
}

/// `--device-read-bps/--device-write-bps DEV:RATE`: the block device's numbers and bytes/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub major: u64,
    pub minor: u64,
    pub rate: u64,
}

pub fn parse_throttle(flag: &str, text: &str) -> Result<Throttle, EngineError> {
    let (dev, rate) = text
        .rsplit_once(':')
        .ok_or_else(|| invalid(format!("invalid {flag} {text:?}: use DEVICE:RATE")))?;
    let rate = crate::options::parse_size(rate, flag)?;
    let node = device_node(Path::new(dev))?;
    if node.kind != 'b' {
        return Err(invalid(format!(
            "invalid {flag} {text:?}: {dev} is not a block device"
        )));
    }
    Ok(Throttle {
        major: node.major,
        minor: node.minor,
        rate: u64::try_from(rate).unwrap_or(0),
    })
}

/// Where this host's block I/O weights would be: the v1 blkio hierarchy, else (v2) this
/// process's own cgroup.
pub fn blkio_controller_dir() -> PathBuf {
    controller_dir("blkio")
}

/// A v1 controller's hierarchy, else (v2) this process's own cgroup.
fn controller_dir(v1_name: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup").join(v1_name);
    if v1.is_dir() {
        return v1;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let rel = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/")
        .trim_start_matches('/');
    Path::new("/sys/fs/cgroup").join(rel)
}

/// Whether the block I/O controller at `controller` has a weight file (blkio.weight, or bfq's
/// when a device uses that scheduler).
pub fn weight_honoured(controller: &Path) -> bool {
    [
        "blkio.weight",
        "blkio.bfq.weight",
        "io.weight",
        "io.bfq.weight",
    ]
    .iter()
    .any(|f| controller.join(f).exists())
}

/// `--blkio-weight N` (10 to 1000), refused when nothing on this host would honour it: the
/// v1 blkio controller needs blkio.weight or bfq's blkio.bfq.weight.
pub fn parse_blkio_weight(text: &str, controller: &Path) -> Result<u16, EngineError> {
    let w = match text.parse::<u16>() {
        Ok(n) if (10..=1000).contains(&n) => n,
        _ => {
            return Err(invalid(format!(
                "invalid --blkio-weight {text:?}: use an integer from 10 to 1000"
            )))
        }
    };
    if !weight_honoured(controller) {
        return Err(invalid(format!(
            "--blkio-weight: this host's kernel has no I/O weight control ({} has no blkio.weight nor bfq weight: no device uses the bfq scheduler)",
            controller.display()
        )));
    }
    Ok(w)
}

/// `--cap-add`/`--cap-drop` names as `CAP_X` (ALL kept), each checked against `known`.
pub fn normalize_caps(
    flag: &str,
    names: &[String],
    known: &[String],
) -> Result<Vec<String>, EngineError> {
    names
        .iter()
        .map(|n| {
            let upper = n.trim().to_ascii_uppercase();
            if upper == "ALL" {
                return Ok(upper);
            }
            let full = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            if known.contains(&full) {
                Ok(full)
            } else {
                Err(invalid(format!("{flag}: unknown capability {n:?}")))
            }
        })
        .collect()
}

/// Refuses an added capability this host's bounding set lacks: the runtime could not give it,
/// and it is better said before a container exists.
pub fn check_grantable(add: &[String], grantable: &[String]) -> Result<(), EngineError> {
    match add.iter().find(|c| *c != "ALL" && !grantable.contains(c)) {
        Some(c) => Err(invalid(format!(
            "--cap-add {c}: not in this host's capability bounding set, so no process here can hold it"
        ))),
        None => Ok(()),
    }
}

/// docker's capability rule: `--cap-drop ALL` starts from none, `--cap-add ALL` from every
/// one; otherwise the defaults, plus the added, minus the dropped.
pub fn capabilities(
    defaults: &[&str],
    known: &[String],
    add: &[String],
    drop: &[String],
) -> Vec<String> {
    let all = |v: &[String]| v.iter().any(|c| c == "ALL");
    let mut caps: Vec<String> = if all(add) {
        known.to_vec()
    } else if all(drop) {
        Vec::new()
    } else {
        defaults.iter().map(|c| c.to_string()).collect()
    };
    if !all(add) {
        for c in add {
            if !caps.contains(c) {
                caps.push(c.clone());
            }
        }
    }
    if !all(drop) {
        caps.retain(|c| !drop.contains(c));
    }
    caps
}

/// Where the seccomp filter comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Seccomp {
    /// podman's default profile.
    #[default]
    Default,
    Unconfined,
    /// A docker-format profile file.
    File(PathBuf),
}

/// `--security-opt` values: `seccomp=...` and `no-new-privileges[=true|false]`.
pub fn parse_security_opt(
    text: &str,
    seccomp: &mut Seccomp,
    nnp: &mut bool,
) -> Result<(), EngineError> {
    let (key, value) = text
        .split_once(['=', ':'])
        .map_or((text, None), |(k, v)| (k, Some(v)));
    match (key, value) {
        ("seccomp", Some("unconfined")) => *seccomp = Seccomp::Unconfined,
        ("seccomp", Some(path)) if !path.is_empty() => *seccomp = Seccomp::File(path.into()),
        ("no-new-privileges", None | Some("true")) => *nnp = true,
        ("no-new-privileges", Some("false")) => *nnp = false,
        _ => {
            return Err(invalid(format!(
                "--security-opt {text:?} is not supported: hull takes seccomp=PROFILE.json, seccomp=unconfined and no-new-privileges[=true|false]"
            )))
        }
    }
    Ok(())
}

/// `--ulimit NAME=SOFT[:HARD]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    /// The OCI type, `RLIMIT_NOFILE`.
    pub kind: String,
    pub soft: u64,
    pub hard: u64,
}

/// docker's ulimit names and their resources.
const ULIMITS: [(&str, nix::sys::resource::Resource); 15] = {
    use nix::sys::resource::Resource as R;
    [
        ("core", R::RLIMIT_CORE),
        ("cpu", R::RLIMIT_CPU),
        ("data", R::RLIMIT_DATA),
        ("fsize", R::RLIMIT_FSIZE),
        ("locks", R::RLIMIT_LOCKS),
        ("memlock", R::RLIMIT_MEMLOCK),
        ("msgqueue", R::RLIMIT_MSGQUEUE),
        ("nice", R::RLIMIT_NICE),
        ("nofile", R::RLIMIT_NOFILE),
        ("nproc", R::RLIMIT_NPROC),
        ("rss", R::RLIMIT_RSS),
        ("rtprio", R::RLIMIT_RTPRIO),
        ("rttime", R::RLIMIT_RTTIME),
        ("sigpending", R::RLIMIT_SIGPENDING),
        ("stack", R::RLIMIT_STACK),
    ]
};

/// Checks the limit against this host's hard limit of it (as the defaults are capped to it:
/// the runtime could not set more without CAP_SYS_RESOURCE in the host).
pub fn parse_ulimit(text: &str) -> Result<Ulimit, EngineError> {
    let bad = |why: String| invalid(format!("invalid --ulimit {text:?}: {why}"));
    let (name, values) = text
        .split_once('=')
        .ok_or_else(|| bad("use NAME=SOFT[:HARD]".into()))?;
    let resource = ULIMITS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r)
        .ok_or_else(|| {
            let names: Vec<&str> = ULIMITS.iter().map(|(n, _)| *n).collect();
            bad(format!(
                "unknown limit {name:?} (one of {})",
                names.join(", ")
            ))
        })?;
    let number = |v: &str| -> Result<u64, EngineError> {
        if v == "-1" || v == "unlimited" {
            return Ok(u64::MAX);
        }
        v.parse().map_err(|_| bad(format!("{v:?} is not a number")))
    };
    let (soft, hard) = match values.split_once(':') {
        Some((s, h)) => (number(s)?, number(h)?),
        None => (number(values)?, number(values)?),
    };
    if soft > hard {
        return Err(bad(format!(
            "the soft limit {soft} is above the hard limit {hard}"
        )));
    }
    let host_hard = nix::sys::resource::getrlimit(resource)
        .map(|(_, h)| h)
        .unwrap_or(u64::MAX);
    if hard > host_hard {
        return Err(bad(format!(
            "the hard limit is above this host's ({host_hard})"
        )));
    }
    Ok(Ulimit {
        kind: format!("RLIMIT_{}", name.to_ascii_uppercase()),
        soft,
        hard,
    })
}

/// `--stop-signal`: a signal name or number, kept as the runtime parses it.
pub fn parse_stop_signal(text: &str) -> Result<String, EngineError> {
    hull_runtime::parse_signal(text)
        .map(|s| s.as_str().to_string())
        .ok_or_else(|| invalid(format!("invalid --stop-signal {text:?}: not a signal")))
}

/// The tiny init `--init` runs as PID 1: Debian's tini-static (package tini), else podman's
/// catatonit; bind-mounted read-only from the host as docker does with docker-init.
pub const INIT_CANDIDATES: [&str; 3] = [
    "/usr/bin/tini-static",
    "/usr/libexec/podman/catatonit",
    "/usr/bin/catatonit",
];

/// Where the init appears in the container (on /dev's tmpfs, so a read-only root needs no
/// mount point made in it).
pub const INIT_PATH: &str = "/dev/init";

pub fn find_init() -> Result<PathBuf, EngineError> {
    INIT_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            invalid(format!(
                "--init: no init binary on this host (looked for {}; install Debian's tini)",
                INIT_CANDIDATES.join(", ")
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_dns() {
        assert_eq!(
            parse_add_host("db:10.0.0.5").unwrap(),
            ("db".into(), "10.0.0.5".into())
        );
        assert_eq!(
            parse_add_host("v6:fd00::1").unwrap(),
            ("v6".into(), "fd00::1".into())
        );
        assert!(parse_add_host("db").is_err());
        assert!(parse_add_host("db:nope").is_err());
        assert_eq!(parse_add_host("h:host-gateway").unwrap().1, "host-gateway");
        assert!(parse_dns("1.1.1.1").is_ok());
        assert!(parse_dns("dns.example").is_err());
    }

    #[test]
    fn resources() {
        assert_eq!(parse_memory_swap("-1", Some(64 << 20)).unwrap(), -1);
        assert_eq!(
            parse_memory_swap("128m", Some(64 << 20)).unwrap(),
            128 << 20
        );
        assert!(parse_memory_swap("32m", Some(64 << 20)).is_err());
        assert!(parse_memory_swap("128m", None).is_err());
        assert_eq!(parse_cpu_shares("512").unwrap(), Some(512));
        assert_eq!(parse_cpu_shares("0").unwrap(), None);
        assert!(parse_cpu_shares("1").is_err());
        assert_eq!(
            parse_cpuset("--cpuset-cpus", "0,1", "0-1\n").unwrap(),
            "0,1"
        );
        assert!(parse_cpuset("--cpuset-cpus", "0-3", "0-1\n").is_err());
        assert!(parse_cpuset("--cpuset-cpus", "a", "0-1").is_err());
        assert!(parse_cpuset("--cpuset-cpus", "1-0", "0-1").is_err());
    }

    #[test]
    fn caps_rule() {
        let known: Vec<String> = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let add = normalize_caps("--cap-add", &["net_admin".into()], &known).unwrap();
        assert_eq!(add, ["CAP_NET_ADMIN"]);
        assert!(normalize_caps("--cap-add", &["bogus".into()], &known).is_err());
        assert!(check_grantable(&add, &known).is_ok());
        assert!(check_grantable(&add, &known[..2]).is_err());
        let drop = vec!["CAP_KILL".to_string()];
        let defaults = ["CAP_CHOWN", "CAP_KILL"];
        assert_eq!(
            capabilities(&defaults, &known, &add, &drop),
            ["CAP_CHOWN", "CAP_NET_ADMIN"]
        );
        let all = vec!["ALL".to_string()];
        assert_eq!(capabilities(&defaults, &known, &all, &drop).len(), 3);
        assert_eq!(
            capabilities(&defaults, &known, &add, &all),
            ["CAP_NET_ADMIN"]
        );
    }

    #[test]
    fn security_opts_and_ulimits() {
        let (mut s, mut n) = (Seccomp::Default, false);
        parse_security_opt("seccomp=unconfined", &mut s, &mut n).unwrap();
        parse_security_opt("no-new-privileges", &mut s, &mut n).unwrap();
        assert_eq!((s.clone(), n), (Seccomp::Unconfined, true));
        assert!(parse_security_opt("apparmor=x", &mut s, &mut n).is_err());
        assert!(parse_security_opt("label=disable", &mut s, &mut n).is_err());
        let u = parse_ulimit("nofile=100:200").unwrap();
        assert_eq!(
            (u.kind.as_str(), u.soft, u.hard),
            ("RLIMIT_NOFILE", 100, 200)
        );
        assert!(parse_ulimit("nofile=300:200").is_err());
        assert!(parse_ulimit("files=1").is_err());
        assert!(parse_ulimit("nofile=x").is_err());
        assert_eq!(parse_stop_signal("KILL").unwrap(), "SIGKILL");
        assert!(parse_stop_signal("NOPE").is_err());
    }

    #[test]
    fn devices() {
        let d = parse_device("/dev/null:/dev/mynull:r").unwrap().remove(0);
        assert_eq!((d.node.kind, d.node.major, d.node.minor), ('c', 1, 3));
        assert_eq!(
            (d.container_path.as_str(), d.access.as_str()),
            ("/dev/mynull", "r")
        );
        let d = parse_device("/dev/null:rw").unwrap().remove(0);
        assert_eq!(
            (d.container_path.as_str(), d.access.as_str()),
            ("/dev/null", "rw")
        );
        assert!(parse_device("/etc/passwd").is_err());
        assert!(parse_device("/dev/null:/x:q").is_err());
        assert!(parse_throttle("--device-read-bps", "/dev/null:1mb").is_err());
    }
}
