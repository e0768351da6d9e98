//! The cgroup limits of a container's config (`linux.resources` but devices) from `--memory`,
//! `--memory-swap`, `--cpus`, `--cpu-shares`, `--cpuset-*`, `--pids-limit`, `--blkio-weight`
//! and `--device-read-bps/--device-write-bps`, and its rlimits with `--ulimit` over the defaults.

use serde_json::{json, Map, Value};

use super::defaults::{self, HostLimits};
use crate::options::RunOptions;
use crate::run_flags::Throttle;

/// The CFS period docker uses for `--cpus`.
const CPU_PERIOD: u64 = 100_000;

/// `linux.resources` without `devices` (security.rs owns the device rules).
pub fn resources(opts: &RunOptions) -> Value {
    let mut r = Map::new();
    let mut memory = Map::new();
    if let Some(limit) = opts.memory {
        memory.insert("limit".into(), json!(limit));
    }
    if let Some(swap) = opts.memory_swap {
        memory.insert("swap".into(), json!(swap));
    }
    if !memory.is_empty() {
        r.insert("memory".into(), Value::Object(memory));
    }
    let mut cpu = Map::new();
    if let Some(milli) = opts.millicpus {
        cpu.insert("quota".into(), json!(milli * CPU_PERIOD / 1000));
        cpu.insert("period".into(), json!(CPU_PERIOD));
    }
    if let Some(shares) = opts.cpu_shares {
        cpu.insert("shares".into(), json!(shares));
    }
    if let Some(cpus) = &opts.cpuset_cpus {
        cpu.insert("cpus".into(), json!(cpus));
    }
    if let Some(mems) = &opts.cpuset_mems {
        cpu.insert("mems".into(), json!(mems));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(limit) = opts.pids_limit {
        r.insert("pids".into(), json!({"limit": limit}));
    }
    let mut io = Map::new();
    if let Some(w) = opts.blkio_weight {
        io.insert("weight".into(), json!(w));
    }
    let throttles = |t: &[Throttle]| -> Value {
        t.iter()
            .map(|t| json!({"major": t.major, "minor": t.minor, "rate": t.rate}))
            .collect()
    };
    if !opts.device_read_bps.is_empty() {
        io.insert(
            "throttleReadBpsDevice".into(),
            throttles(&opts.device_read_bps),
        );
    }
    if !opts.device_write_bps.is_empty() {
        io.insert(
            "throttleWriteBpsDevice".into(),
            throttles(&opts.device_write_bps),
        );
    }
    if !io.is_empty() {
        r.insert("blockIO".into(), Value::Object(io));
    }
    Value::Object(r)
}

/// The default rlimits, each `--ulimit` replacing or adding its kind.
pub fn rlimits(host: HostLimits, opts: &RunOptions) -> Vec<Value> {
    let mut out = defaults::rlimits(host);
    for u in &opts.ulimits {
        out.retain(|l| l["type"] != u.kind.as_str());
        out.push(json!({"type": u.kind, "soft": u.soft, "hard": u.hard}));
    }
    out
}
