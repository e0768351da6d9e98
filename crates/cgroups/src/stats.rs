//! Resource usage in the shape of the "data" object of `runc events --stats`: cpu, memory, pids,
//! blkio and hugetlb, read from whichever hierarchy hosts each controller.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::cgroup::Cgroup;
use crate::controllers::hugetlb::page_sizes;
use crate::error::CgroupError;
use crate::fs::{self, keyed};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuUsage {
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuStats {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PidsStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BlkioStats {
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HugetlbStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// "max" and v1's near-u64::MAX "unlimited" are both reported as 0 would be wrong: runc reports
/// the raw number on v1 and u64::MAX for "max" on v2; the same is done here.
fn num(path: &Path) -> Result<u64, CgroupError> {
    fs::read_u64_opt(path).map(|v| v.unwrap_or(0))
}

fn nums(path: &Path) -> Result<Vec<u64>, CgroupError> {
    let Some(text) = fs::read_opt(path)? else {
        return Ok(Vec::new());
    };
    text.split_whitespace()
        .map(|v| fs::parse_u64(path, v))
        .collect()
}

fn kv(path: &Path) -> Result<Vec<(String, u64)>, CgroupError> {
    match fs::read_opt(path)? {
        Some(t) => fs::parse_flat_keyed(path, &t),
        None => Ok(Vec::new()),
    }
}

impl Cgroup {
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        let mut s = Stats::default();
        let at = |c: &str| self.host_of(c).map(|i| self.dir(i));
        if let Some(d) = self.v1("cpuacct").map(|i| self.dir(i)) {
            cpuacct_v1(&d.path, &mut s.cpu)?;
        }
        match at("cpu") {
            Some(d) if d.version == 1 => {
                let st = kv(&d.path.join("cpu.stat"))?;
                s.cpu.throttling = Throttling {
                    periods: keyed(&st, "nr_periods"),
                    throttled_periods: keyed(&st, "nr_throttled"),
                    throttled_time: keyed(&st, "throttled_time"),
                };
            }
            _ => {
                if let Some(i) = self.v2().filter(|_| self.v1("cpuacct").is_none()) {
                    cpu_v2(&self.dir(i).path, &mut s.cpu)?;
                }
            }
        }
        if let Some(d) = at("memory") {
            s.memory = if d.version == 1 {
                memory_v1(&d.path)?
            } else {
                memory_v2(&d.path)?
            };
        }
        if let Some(d) = at("pids") {
            s.pids = PidsStats {
                current: num(&d.path.join("pids.current"))?,
                limit: match num(&d.path.join("pids.max"))? {
                    u64::MAX => 0,
                    l => l,
                },
            };
        }
        if let Some(d) = self.v1("blkio").map(|i| self.dir(i)) {
            s.blkio = BlkioStats {
                io_service_bytes_recursive: blkio_v1(
                    &d.path.join("blkio.throttle.io_service_bytes_recursive"),
                )?,
                io_serviced_recursive: blkio_v1(
                    &d.path.join("blkio.throttle.io_serviced_recursive"),
                )?,
            };
        } else if let Some(d) = at("io") {
            s.blkio = io_v2(&d.path.join("io.stat"))?;
        }
        if let Some(d) = at("hugetlb") {
            for size in page_sizes() {
                let f = |n: &str| d.path.join(format!("hugetlb.{size}.{n}"));
                let usage = if d.version == 1 {
                    "usage_in_bytes"
                } else {
                    "current"
                };
                if !f(usage).exists() {
                    // Not delegated to this cgroup (cgroup2 side of a hybrid host): nothing to report.
                    continue;
                }
                let h = if d.version == 1 {
                    HugetlbStats {
                        usage: num(&f("usage_in_bytes"))?,
                        max: num(&f("max_usage_in_bytes"))?,
                        failcnt: num(&f("failcnt"))?,
                    }
                } else {
                    HugetlbStats {
                        usage: num(&f("current"))?,
                        max: 0,
                        failcnt: keyed(&kv(&f("events"))?, "max"),
                    }
                };
                s.hugetlb.insert(size, h);
            }
        }
        Ok(s)
    }
}

/// USER_HZ of cpuacct.stat: the kernel always reports it in 1/100 s.
const NS_PER_TICK: u64 = 10_000_000;

fn cpuacct_v1(dir: &Path, cpu: &mut CpuStats) -> Result<(), CgroupError> {
    cpu.usage.total = num(&dir.join("cpuacct.usage"))?;
    cpu.usage.percpu = nums(&dir.join("cpuacct.usage_percpu"))?;
    cpu.usage.percpu_kernel = nums(&dir.join("cpuacct.usage_percpu_sys"))?;
    cpu.usage.percpu_user = nums(&dir.join("cpuacct.usage_percpu_user"))?;
    let st = kv(&dir.join("cpuacct.stat"))?;
    cpu.usage.user = keyed(&st, "user") * NS_PER_TICK;
    cpu.usage.kernel = keyed(&st, "system") * NS_PER_TICK;
    Ok(())
}

fn cpu_v2(dir: &Path, cpu: &mut CpuStats) -> Result<(), CgroupError> {
    let st = kv(&dir.join("cpu.stat"))?;
    cpu.usage.total = keyed(&st, "usage_usec") * 1000;
    cpu.usage.user = keyed(&st, "user_usec") * 1000;
    cpu.usage.kernel = keyed(&st, "system_usec") * 1000;
    cpu.throttling = Throttling {
        periods: keyed(&st, "nr_periods"),
        throttled_periods: keyed(&st, "nr_throttled"),
        throttled_time: keyed(&st, "throttled_usec") * 1000,
    };
    Ok(())
}

fn entry_v1(dir: &Path, prefix: &str) -> Result<MemoryEntry, CgroupError> {
    let f = |n: &str| dir.join(format!("{prefix}{n}"));
    Ok(MemoryEntry {
        limit: num(&f("limit_in_bytes"))?,
        usage: num(&f("usage_in_bytes"))?,
        max: num(&f("max_usage_in_bytes"))?,
        failcnt: num(&f("failcnt"))?,
    })
}

fn memory_v1(dir: &Path) -> Result<MemoryStats, CgroupError> {
    let raw: BTreeMap<String, u64> = kv(&dir.join("memory.stat"))?.into_iter().collect();
    Ok(MemoryStats {
        cache: raw.get("cache").copied().unwrap_or(0),
        usage: entry_v1(dir, "memory.")?,
        swap: entry_v1(dir, "memory.memsw.")?,
        kernel: entry_v1(dir, "memory.kmem.")?,
        kernel_tcp: entry_v1(dir, "memory.kmem.tcp.")?,
        raw,
    })
}

fn memory_v2(dir: &Path) -> Result<MemoryStats, CgroupError> {
    let raw: BTreeMap<String, u64> = kv(&dir.join("memory.stat"))?.into_iter().collect();
    let events = kv(&dir.join("memory.events"))?;
    let swap_events = kv(&dir.join("memory.swap.events"))?;
    Ok(MemoryStats {
        cache: raw.get("file").copied().unwrap_or(0),
        usage: MemoryEntry {
            limit: num(&dir.join("memory.max"))?,
            usage: num(&dir.join("memory.current"))?,
            max: num(&dir.join("memory.peak"))?,
            failcnt: keyed(&events, "max"),
        },
        swap: MemoryEntry {
            limit: num(&dir.join("memory.swap.max"))?,
            usage: num(&dir.join("memory.swap.current"))?,
            max: num(&dir.join("memory.swap.peak"))?,
            failcnt: keyed(&swap_events, "max"),
        },
        kernel: MemoryEntry::default(),
        kernel_tcp: MemoryEntry::default(),
        raw,
    })
}

fn parse_dev(path: &Path, s: &str) -> Result<(u64, u64), CgroupError> {
    let bad = || CgroupError::Parse {
        path: path.to_path_buf(),
        reason: format!("{s:?} is not MAJ:MIN"),
    };
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

/// "8:0 Read 4096" lines (plus a trailing "Total N" line, skipped).
fn blkio_v1(path: &Path) -> Result<Vec<BlkioEntry>, CgroupError> {
    let Some(text) = fs::read_opt(path)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let (major, minor) = parse_dev(path, f[0])?;
        out.push(BlkioEntry {
            major,
            minor,
            op: f[1].to_string(),
            value: fs::parse_u64(path, f[2])?,
        });
    }
    Ok(out)
}

/// io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" per device.
fn io_v2(path: &Path) -> Result<BlkioStats, CgroupError> {
    let mut b = BlkioStats::default();
    let Some(text) = fs::read_opt(path)? else {
        return Ok(b);
    };
    for l in text.lines() {
        let mut it = l.split_whitespace();
        let Some(dev) = it.next() else { continue };
        let (major, minor) = parse_dev(path, dev)?;
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let value = fs::parse_u64(path, v)?;
            let (list, op) = match k {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    Ok(b)
}
