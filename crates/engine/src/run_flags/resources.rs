//! `--memory-swap`, `--cpu-shares`, `--cpuset-cpus/-mems`, `--device-read-bps/-write-bps` and
//! `--blkio-weight`, checked against what this host's kernel and cgroups have.

use std::path::{Path, PathBuf};

use super::{device_node, invalid};
use crate::error::EngineError;

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

/// Refuses `--memory-swap` where the kernel does not account swap: v1 has memsw files in this
/// process's memory cgroup. v2 shows memory.swap.max only in cgroups whose parent enabled the
/// memory controller, which this process's own (a leaf with processes) may not be: the nearest
/// ancestor with it tells, and up to the root (which never shows it) with the memory controller
/// available, the runtime's own check has to.
pub fn require_swap_accounting() -> Result<(), EngineError> {
    let accounted = match own_dir("memory") {
        Some(dir) if dir.join("cgroup.controllers").exists() => {
            let v2: Vec<&Path> = dir
                .ancestors()
                .take_while(|d| d.join("cgroup.controllers").exists())
                .collect();
            v2.iter().any(|d| d.join("memory.swap.max").exists())
                || v2.last().is_some_and(|root| {
                    std::fs::read_to_string(root.join("cgroup.controllers"))
                        .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory"))
                })
        }
        Some(dir) => dir.join("memory.memsw.limit_in_bytes").exists(),
        None => false,
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

/// The CPUs (`what` = "cpus") or memory nodes ("mems") a container here may get: those of this
/// process's own cpuset, under which its cgroup is made, else the host's online ones (a host
/// without NUMA has node 0).
pub fn host_online(what: &str) -> String {
    let own = own_dir("cpuset").and_then(|dir| {
        [
            format!("cpuset.effective_{what}"),
            format!("cpuset.{what}.effective"),
            format!("cpuset.{what}"),
        ]
        .iter()
        .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .find(|t| !t.trim().is_empty())
    });
    let online = match what {
        "cpus" => "/sys/devices/system/cpu/online",
        _ => "/sys/devices/system/node/online",
    };
    own.or_else(|| std::fs::read_to_string(online).ok())
        .unwrap_or_else(|| "0".into())
}

/// This process's cgroup dir in the hierarchy of `controller` (v1), else its v2 one.
fn own_dir(controller: &str) -> Option<PathBuf> {
    let pid = i32::try_from(std::process::id()).ok()?;
    let dirs = hull_cgroups::process_dirs(pid).ok()?;
    dirs.iter()
        .find(|(c, _, _)| c.iter().any(|x| x == controller))
        .or_else(|| dirs.iter().find(|(c, _, _)| c.is_empty()))
        .map(|(_, _, dir)| dir.clone())
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

/// Where this host's block I/O weights would be: this process's own blkio (v1) or v2 cgroup,
/// under which the container's is made.
pub fn blkio_controller_dir() -> PathBuf {
    own_dir("blkio").unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup/blkio"))
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(parse_throttle("--device-read-bps", "/dev/null:1mb").is_err());
    }
}
