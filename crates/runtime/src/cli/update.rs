//! `update`: runc's flags (or `-r resources.json`, `-` for stdin) turned into a
//! `linux.resources` object for the library's update.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use hull_runtime::{parse_resources, Runtime};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};

use super::log::Logger;

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// A file holding a linux.resources object, or - for the standard input; the other
    /// options are then ignored.
    #[arg(long, short = 'r')]
    resources: Option<PathBuf>,
    /// Block I/O weight, 10..=1000.
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<String>,
    /// CFS period (microseconds).
    #[arg(long = "cpu-period")]
    cpu_period: Option<String>,
    /// CFS quota (microseconds per period; -1: none).
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<String>,
    /// CFS burst (microseconds).
    #[arg(long = "cpu-burst")]
    cpu_burst: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    cpu_share: Option<String>,
    /// Realtime period (microseconds).
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<String>,
    /// Realtime runtime (microseconds per period).
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    cpu_rt_runtime: Option<String>,
    /// SCHED_IDLE for the cgroup: 1, or 0 for the default.
    #[arg(long = "cpu-idle", allow_hyphen_values = true)]
    cpu_idle: Option<String>,
    /// CPUs to use, as "0-3,8".
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Memory nodes to use, as "0-1".
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Memory limit in bytes (or 512k, 64m, 1g; -1: none).
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory soft limit in bytes.
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit in bytes (-1: no swap limit).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Maximum number of tasks (-1: none).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<String>,
    #[arg(long = "kernel-memory", hide = true)]
    kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp", hide = true)]
    kernel_memory_tcp: Option<String>,
    /// Intel RDT L3 cache schema (no Intel RDT here: refused).
    #[arg(long = "l3-cache-schema")]
    l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (no Intel RDT here: refused).
    #[arg(long = "mem-bw-schema")]
    mem_bw_schema: Option<String>,
    /// The container id.
    pub(super) id: String,
}

pub fn update(runtime: &Runtime, args: UpdateArgs, logger: &Logger) -> anyhow::Result<()> {
    if args.l3_cache_schema.is_some() {
        bail!("Intel RDT/CAT: l3 cache schema is not enabled");
    }
    if args.mem_bw_schema.is_some() {
        bail!("Intel RDT/MBA: memory bandwidth schema is not enabled");
    }
    let resources = match &args.resources {
        Some(path) => read_resources(path)?,
        None => from_flags(&args, logger)?,
    };
    let container = runtime.open(&args.id)?;
    for warning in container.update(&resources)? {
        logger.warn(&warning);
    }
    Ok(())
}

fn read_resources(path: &PathBuf) -> anyhow::Result<LinuxResources> {
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the resources from stdin")?;
    } else {
        bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(parse_resources(&bytes)?)
}

/// The flags as a resources object; each value is checked here, so a typo names its flag.
fn from_flags(args: &UpdateArgs, logger: &Logger) -> anyhow::Result<LinuxResources> {
    let mut memory = Map::new();
    let mut cpu = Map::new();
    let mut r = Map::new();
    for (flag, value, key) in [
        ("memory", &args.memory, "limit"),
        (
            "memory-reservation",
            &args.memory_reservation,
            "reservation",
        ),
        ("memory-swap", &args.memory_swap, "swap"),
    ] {
        if let Some(v) = value {
            memory.insert(key.into(), json!(parse_bytes(flag, v)?));
        }
    }
    for (flag, value, key) in [
        ("cpu-period", &args.cpu_period, "period"),
        ("cpu-burst", &args.cpu_burst, "burst"),
        ("cpu-share", &args.cpu_share, "shares"),
        ("cpu-rt-period", &args.cpu_rt_period, "realtimePeriod"),
    ] {
        if let Some(v) = value {
            cpu.insert(key.into(), json!(parse_number::<u64>(flag, v)?));
        }
    }
    for (flag, value, key) in [
        ("cpu-quota", &args.cpu_quota, "quota"),
        ("cpu-rt-runtime", &args.cpu_rt_runtime, "realtimeRuntime"),
        ("cpu-idle", &args.cpu_idle, "idle"),
    ] {
        if let Some(v) = value {
            cpu.insert(key.into(), json!(parse_number::<i64>(flag, v)?));
        }
    }
    for (value, key) in [(&args.cpuset_cpus, "cpus"), (&args.cpuset_mems, "mems")] {
        if let Some(v) = value {
            cpu.insert(key.into(), json!(v));
        }
    }
    if let Some(v) = &args.blkio_weight {
        r.insert(
            "blockIO".into(),
            json!({"weight": parse_number::<u16>("blkio-weight", v)?}),
        );
    }
    if let Some(v) = &args.pids_limit {
        r.insert(
            "pids".into(),
            json!({"limit": parse_number::<i64>("pids-limit", v)?}),
        );
    }
    for (flag, value) in [
        ("kernel-memory", &args.kernel_memory),
        ("kernel-memory-tcp", &args.kernel_memory_tcp),
    ] {
        if value.is_some() {
            logger.warn(&format!("Setting --{flag} is ignored and will be removed"));
        }
    }
    if !memory.is_empty() {
        r.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }
    Ok(serde_json::from_value(Value::Object(r))?)
}

fn parse_number<T: std::str::FromStr>(flag: &str, text: &str) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    text.trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("invalid value for {flag}: {text:?}: {e}"))
}

/// A byte count as docker's units read it (runc uses them): 1024-based k, m, g, t, p, with an
/// optional "i" and "b" (64m, 1.5GiB, 512kb); -1 is "unlimited".
fn parse_bytes(flag: &str, text: &str) -> anyhow::Result<i64> {
    let bad = || anyhow::anyhow!("invalid value for {flag}: invalid size: {text:?}");
    let t = text.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let digits = lower
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits);
    let unit = unit.trim_start();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad()),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bytes = (value * f64::from(1u32 << 10).powi(shift / 10)).floor();
    if !(0.0..9.2e18).contains(&bytes) {
        return Err(bad());
    }
    // In range (checked above): the conversion cannot truncate.
    #[allow(clippy::cast_possible_truncation)]
    Ok(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_as_docker_units() {
        assert_eq!(parse_bytes("memory", "1048576").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("memory", "64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("memory", "1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("memory", "512 kb").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("memory", "-1").unwrap(), -1);
        for bad in ["abc", "12x", "-5", "", "1e30"] {
            assert!(parse_bytes("memory", bad).is_err(), "{bad}");
        }
    }
}
