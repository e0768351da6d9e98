//! The `run`/`create` flags for /etc files, resources, devices and security, flattened into
//! [`super::container::RunArgs`]; hull-engine's run_flags parses and checks each.

use clap::Args;
use hull_engine::options;
use hull_engine::run_flags as flags;
use hull_engine::vm::Isolation;
use hull_engine::{EngineError, RunOptions};

#[derive(Debug, Args)]
pub struct ExtraRunArgs {
    /// Add a line to the container's /etc/hosts: HOST:IP (host-gateway: the host's address on
    /// the container's network)
    #[arg(long = "add-host", value_name = "HOST:IP")]
    add_host: Vec<String>,
    /// Another name of the container on its user network, for the others there
    #[arg(long = "network-alias", alias = "net-alias", value_name = "ALIAS")]
    network_alias: Vec<String>,
    /// Set a nameserver in the container's /etc/resolv.conf (replaces the host's)
    #[arg(long, value_name = "IP")]
    dns: Vec<String>,
    /// Set a DNS search domain in the container's /etc/resolv.conf
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    dns_search: Vec<String>,
    /// Set a resolver option in the container's /etc/resolv.conf (e.g. ndots:2)
    #[arg(long = "dns-option", value_name = "OPTION")]
    dns_option: Vec<String>,
    /// Memory plus swap limit (needs --memory; -1: unlimited swap; default: twice --memory)
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// CPU shares: the relative weight against other containers (default 1024)
    #[arg(short = 'c', long = "cpu-shares")]
    cpu_shares: Option<String>,
    /// CPUs the container may run on (e.g. 0-1, 0,2)
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Memory nodes the container may allocate from (e.g. 0)
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Limit reads from a block device: DEVICE:RATE (e.g. /dev/sda:1mb)
    #[arg(long = "device-read-bps")]
    device_read_bps: Vec<String>,
    /// Limit writes to a block device: DEVICE:RATE (e.g. /dev/sda:1mb)
    #[arg(long = "device-write-bps")]
    device_write_bps: Vec<String>,
    /// Block I/O weight, 10 to 1000 (needs the bfq scheduler or blk-iocost on the host)
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<String>,
    /// Give the container a host device: HOST[:CONTAINER[:PERMISSIONS]] (permissions: rwm)
    #[arg(long)]
    device: Vec<String>,
    /// Add a capability (with or without CAP_; ALL for every one)
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    /// Drop a capability (with or without CAP_; ALL for every one)
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    /// Every capability and host device, no seccomp, no masked or read-only paths
    #[arg(long)]
    privileged: bool,
    /// Mount the container's root file system read-only
    #[arg(long = "read-only")]
    read_only: bool,
    /// Security option: seccomp=PROFILE.json, seccomp=unconfined, no-new-privileges[=true|false]
    #[arg(long = "security-opt")]
    security_opt: Vec<String>,
    /// Resource limit: NAME=SOFT[:HARD] (e.g. nofile=1024:2048)
    #[arg(long)]
    ulimit: Vec<String>,
    /// Run a tiny init as PID 1 that reaps zombies and forwards signals
    #[arg(long)]
    init: bool,
    /// Signal that stops the container (default: the image's StopSignal, else SIGTERM)
    #[arg(long = "stop-signal")]
    stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (default 10; -1: wait until it exits)
    #[arg(long = "stop-timeout", allow_negative_numbers = true)]
    stop_timeout: Option<i64>,
}

fn each<T>(
    values: &[String],
    parse: impl Fn(&str) -> Result<T, EngineError>,
) -> Result<Vec<T>, EngineError> {
    values.iter().map(|v| parse(v)).collect()
}

impl ExtraRunArgs {
    /// Parses and checks every flag into `opts` (after `--memory` is in it).
    pub fn apply(&self, opts: &mut RunOptions) -> Result<(), EngineError> {
        opts.etc = options::EtcOverrides {
            hosts: each(&self.add_host, flags::parse_add_host)?,
            dns: each(&self.dns, flags::parse_dns)?,
            dns_search: self.dns_search.clone(),
            dns_options: self.dns_option.clone(),
            network_aliases: each(&self.network_alias, flags::parse_network_alias)?,
        };
        opts.memory_swap = self
            .memory_swap
            .as_deref()
            .map(|s| flags::parse_memory_swap(s, opts.memory))
            .transpose()?;
        if opts.memory_swap.is_some() {
            flags::require_swap_accounting()?;
        } else if let (Some(memory), Isolation::Container) = (opts.memory, opts.isolation) {
            // docker's and podman's default: as much swap as memory, where swap is accounted.
            if flags::require_swap_accounting().is_ok() {
                opts.memory_swap = memory.checked_mul(2);
            }
        }
        opts.cpu_shares = self
            .cpu_shares
            .as_deref()
            .map(flags::parse_cpu_shares)
            .transpose()?
            .flatten();
        opts.cpuset_cpus = self
            .cpuset_cpus
            .as_deref()
            .map(|c| flags::parse_cpuset("--cpuset-cpus", c, &flags::host_online("cpus")))
            .transpose()?;
        opts.cpuset_mems = self
            .cpuset_mems
            .as_deref()
            .map(|m| flags::parse_cpuset("--cpuset-mems", m, &flags::host_online("mems")))
            .transpose()?;
        opts.device_read_bps = each(&self.device_read_bps, |t| {
            flags::parse_throttle("--device-read-bps", t)
        })?;
        opts.device_write_bps = each(&self.device_write_bps, |t| {
            flags::parse_throttle("--device-write-bps", t)
        })?;
        opts.blkio_weight = self
            .blkio_weight
            .as_deref()
            .map(|w| flags::parse_blkio_weight(w, &flags::blkio_controller_dir()))
            .transpose()?;
        opts.devices = each(&self.device, flags::parse_device)?
            .into_iter()
            .flatten()
            .collect();
        // Only when asked: each reads /proc, and `run` without these flags comes here first.
        if !self.cap_add.is_empty() || !self.cap_drop.is_empty() {
            let known = hull_runtime::known_capabilities();
            opts.cap_add = flags::normalize_caps("--cap-add", &self.cap_add, &known)?;
            opts.cap_drop = flags::normalize_caps("--cap-drop", &self.cap_drop, &known)?;
            flags::check_grantable(&opts.cap_add, &hull_runtime::grantable_capabilities())?;
        }
        opts.privileged = self.privileged;
        opts.read_only = self.read_only;
        for s in &self.security_opt {
            flags::parse_security_opt(s, &mut opts.seccomp, &mut opts.no_new_privileges)?;
        }
        opts.ulimits = each(&self.ulimit, flags::parse_ulimit)?;
        opts.init = self.init;
        opts.stop_signal = self
            .stop_signal
            .as_deref()
            .map(flags::parse_stop_signal)
            .transpose()?;
        opts.stop_timeout = self.stop_timeout;
        Ok(())
    }
}
