//! `stats`: one sample of a container's resource use: CPU time, memory and pids from its
//! cgroups (hull-cgroups' stats, through the runtime facade), block I/O from the same, and
//! network bytes from its network namespace's counters (/proc/PID/net/dev of its process).

use hull_runtime::Runtime;
use serde::Serialize;

use crate::options::Network;
use crate::store::{Record, State};
use crate::times::{self, Nanos};
use crate::{paths, Engine, EngineError};

/// What `stats` shows of one container at one moment; two samples give the CPU %.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatsSample {
    pub id: String,
    pub name: String,
    /// When it was read, nanoseconds since the epoch.
    pub at: Nanos,
    /// CPU time used so far, nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use without the inactive page cache (docker's MEM USAGE).
    pub mem_usage: u64,
    /// The memory limit, or the host's memory when there is none.
    pub mem_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub blk_read: u64,
    pub blk_write: u64,
    pub pids: u64,
}

impl Engine {
    /// A sample of the container's use now (zeros for one that is not running).
    pub fn stats(&self, reference: &str) -> Result<StatsSample, EngineError> {
        let record = self.find(reference)?;
        let mut s = StatsSample {
            id: record.id.clone(),
            name: record.name.clone(),
            at: times::now(),
            ..Default::default()
        };
        if record.state != State::Running {
            return Ok(s);
        }
        let Ok(container) = Runtime::new(paths::runtime_root(&self.root)).open(&record.id) else {
            return Ok(s);
        };
        let cg = container.watch().stats()?;
        s.cpu_ns = cg.cpu.usage.total;
        let inactive = ["total_inactive_file", "inactive_file"]
            .iter()
            .find_map(|k| cg.memory.raw.get(*k).copied())
            .unwrap_or(0);
        s.mem_usage = cg.memory.usage.usage.saturating_sub(inactive);
        let host = host_memory();
        s.mem_limit = match cg.memory.usage.limit {
            0 => host,
            l => l.min(host),
        };
        for e in &cg.blkio.io_service_bytes_recursive {
            match e.op.to_ascii_lowercase().as_str() {
                "read" => s.blk_read += e.value,
                "write" => s.blk_write += e.value,
                _ => {}
            }
        }
        s.pids = cg.pids.current;
        (s.net_rx, s.net_tx) = net_bytes(&record);
        Ok(s)
    }
}

/// The host's memory (MemTotal), the limit docker shows for a container without one.
pub(crate) fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Bytes received and sent by the interfaces of the container's network namespace, loopback
/// aside; none for a container on the host's network (those are the host's).
fn net_bytes(record: &Record) -> (u64, u64) {
    let Some(pid) = record
        .pid
        .filter(|_| record.settings.network != Network::Host)
    else {
        return (0, 0);
    };
    std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
        .map(|t| parse_net_dev(&t))
        .unwrap_or((0, 0))
}

/// Sums /proc/net/dev's receive and transmit bytes (columns 1 and 9), lo aside.
fn parse_net_dev(text: &str) -> (u64, u64) {
    let mut total = (0, 0);
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let c: Vec<u64> = counters
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        total.0 += c.first().copied().unwrap_or(0);
        total.1 += c.get(8).copied().unwrap_or(0);
    }
    total
}

/// docker's CPU %: the CPU time used between two samples over the wall time between them,
/// as a percentage of one CPU (so up to 100 × CPUs).
pub fn cpu_percent(before: &StatsSample, after: &StatsSample) -> f64 {
    let wall = after.at - before.at;
    if wall <= 0 || after.cpu_ns < before.cpu_ns {
        return 0.0;
    }
    (after.cpu_ns - before.cpu_ns) as f64 / wall as f64 * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_sums_all_but_lo() {
        let text = "Inter-|   Receive  |  Transmit\n face |bytes packets|bytes\n    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  eth0: 1500 10 0 0 0 0 0 0 700 5 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(text), (1500, 700));
    }

    #[test]
    fn cpu_percent_of_one_cpu() {
        let a = StatsSample {
            at: 0,
            cpu_ns: 0,
            ..Default::default()
        };
        let b = StatsSample {
            at: 1_000_000_000,
            cpu_ns: 250_000_000,
            ..Default::default()
        };
        assert!((cpu_percent(&a, &b) - 25.0).abs() < 1e-9);
        assert_eq!(cpu_percent(&b, &a), 0.0);
    }
}
