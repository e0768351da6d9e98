//! What a user asks of a new container (`hull run`/`create` flags), parsed and checked before
//! anything is created, and the part of it the engine keeps with the container.

use std::path::PathBuf;

use hull_net::ports::PortMapping;
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
pub use crate::log_opts::LogOptions;

/// How the container gets its network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The default bridge network.
    #[default]
    Default,
    /// Its own namespace with only lo.
    None,
    /// The host's namespace.
    Host,
    /// A user network by name.
    Named(String),
}

impl Network {
    /// `--network none|host|bridge|NAME`.
    pub fn parse(text: &str) -> Result<Network, EngineError> {
        Ok(match text {
            "" => return Err(EngineError::Invalid("--network: empty network name".into())),
            "none" => Network::None,
            "host" => Network::Host,
            "bridge" | "hull" | "default" => Network::Default,
            t if t.starts_with("container:") => {
                return Err(EngineError::Unsupported("--network container:ID"))
            }
            name => Network::Named(name.to_string()),
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Network::Default => "hull",
            Network::None => "none",
            Network::Host => "host",
            Network::Named(n) => n,
        }
    }
}

/// `--restart`: what the monitor does when the container's process exits, as docker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restart (the default).
    #[default]
    No,
    /// Restart after a non-zero exit, at most this many times (0: no limit).
    OnFailure(u32),
    /// Restart after every exit, until a user stops it.
    Always,
    /// As `always`; also not after any signal a user sent (docker's "manually stopped").
    UnlessStopped,
}

impl RestartPolicy {
    /// `no`, `on-failure[:N]`, `always`, `unless-stopped`.
    pub fn parse(text: &str) -> Result<RestartPolicy, EngineError> {
        let bad =
            |why: &str| EngineError::Invalid(format!("invalid restart policy {text:?}: {why}"));
        let (name, count) = match text.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (text, None),
        };
        let policy = match name {
            "no" | "" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => {
                let n = match count {
                    None => 0,
                    Some(c) => c
                        .parse::<u32>()
                        .map_err(|_| bad("the maximum retry count must be a number"))?,
                };
                return Ok(RestartPolicy::OnFailure(n));
            }
            _ => {
                return Err(bad(
                    "use no, always, unless-stopped or on-failure[:max-retry]",
                ))
            }
        };
        if count.is_some() {
            return Err(bad(
                "maximum retry count can only be used with 'on-failure'",
            ));
        }
        Ok(policy)
    }

    /// docker's `HostConfig.RestartPolicy.Name`.
    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure(_) => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }

    /// docker's `HostConfig.RestartPolicy.MaximumRetryCount`.
    pub fn max_retries(self) -> u32 {
        match self {
            RestartPolicy::OnFailure(n) => n,
            _ => 0,
        }
    }

    /// Whether a process that exited with `code` is started again, after `restarts` restarts
    /// already, given what the user did (docker's restart manager).
    pub fn should_restart(self, code: i32, restarts: u32, user: UserStop) -> bool {
        if user.cancelled {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always => true,
            RestartPolicy::UnlessStopped => !user.signalled,
            RestartPolicy::OnFailure(max) => code != 0 && (max == 0 || restarts < max),
        }
    }
}

/// What a user did to a container that has a restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserStop {
    /// `stop`, or `kill` with SIGKILL or its stop signal: the policy ends for every kind.
    pub cancelled: bool,
    /// Any `kill`: an `unless-stopped` container is not restarted either.
    pub signalled: bool,
}

impl UserStop {
    /// `stop` or `rm -f`: no policy starts it again.
    pub const STOPPED: UserStop = UserStop {
        cancelled: true,
        signalled: true,
    };
}

/// docker's restart delay: 100 ms, doubled after each restart up to a minute, back to 100 ms
/// after a run of at least 10 s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Backoff {
    delay: std::time::Duration,
}

impl Backoff {
    pub const FIRST: std::time::Duration = std::time::Duration::from_millis(100);
    pub const MAX: std::time::Duration = std::time::Duration::from_secs(60);
    pub const RESET_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

    /// The delay before the next start of a process that ran for `ran`.
    pub fn next(&mut self, ran: std::time::Duration) -> std::time::Duration {
        if ran >= Self::RESET_AFTER || self.delay.is_zero() {
            self.delay = Self::FIRST;
        } else {
            self.delay = self.delay.saturating_mul(2).min(Self::MAX);
        }
        self.delay
    }
}

/// `--pull`: when `run` and `create` pull the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// When it is not in the store (the default).
    #[default]
    Missing,
    Always,
    Never,
}

impl PullPolicy {
    pub fn parse(text: &str) -> Result<PullPolicy, EngineError> {
        match text {
            "missing" => Ok(PullPolicy::Missing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            _ => Err(EngineError::Invalid(format!(
                "invalid pull option {text:?}: use missing, always or never"
            ))),
        }
    }
}

/// The flags of `hull run` and `hull create`, parsed.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub name: Option<String>,
    /// The command after the image (replaces its Cmd).
    pub command: Vec<String>,
    /// `--entrypoint` (replaces the image's; an empty string clears it).
    pub entrypoint: Option<String>,
    /// `-e K=V` or `-e K` (the value of K in the caller's environment).
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub network: Network,
    pub ports: Vec<PortMapping>,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// CPU quota in thousandths of a CPU.
    pub millicpus: Option<u64>,
    pub pids_limit: Option<i64>,
    /// `-v`, `--mount` and `--tmpfs`, in the order given.
    pub mounts: Vec<crate::volumes::MountSpec>,
    pub rm: bool,
    /// `-i`: the container's stdin is open to attached clients (the caller's, for `run -i`).
    pub interactive: bool,
    /// `-t`: the container's process gets a terminal (a pty its monitor holds the master of).
    pub tty: bool,
    pub restart: RestartPolicy,
    /// `--log-opt`: the rotation of its log.
    pub log: LogOptions,
    /// `--label K=V`, over the image's labels.
    pub labels: Vec<(String, String)>,
    /// `-P`: publish every exposed port to a free host port.
    pub publish_all: bool,
    /// `--expose PORT[/PROTO]` (or a range), beside the image's ExposedPorts.
    pub expose: Vec<String>,
    /// `--add-host`, `--dns`, `--dns-search`, `--dns-option`: the container's /etc files.
    pub etc: EtcOverrides,
    /// `--memory-swap`: memory plus swap in bytes (-1: unlimited swap).
    pub memory_swap: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub device_read_bps: Vec<crate::run_flags::Throttle>,
    pub device_write_bps: Vec<crate::run_flags::Throttle>,
    pub blkio_weight: Option<u16>,
    /// `--device`: host device nodes made in the container and allowed by its cgroup.
    pub devices: Vec<crate::run_flags::DeviceSpec>,
    /// `--cap-add`/`--cap-drop`, as `CAP_X` or `ALL`.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    /// `--read-only`: the root file system is mounted read-only.
    pub read_only: bool,
    pub seccomp: crate::run_flags::Seccomp,
    pub no_new_privileges: bool,
    /// `--ulimit`, over the defaults.
    pub ulimits: Vec<crate::run_flags::Ulimit>,
    /// `--init`: a tiny init as PID 1 that reaps and forwards signals.
    pub init: bool,
    /// `--stop-signal` (over the image's StopSignal).
    pub stop_signal: Option<String>,
    /// `--stop-timeout`: seconds `stop` waits before SIGKILL when not given -t; negative:
    /// until the container exits (docker's -1).
    pub stop_timeout: Option<i64>,
    /// `--isolation` (with `--vmm`): a container, or a microVM.
    pub isolation: crate::vm::Isolation,
}

/// What the user adds to the container's /etc/hosts and replaces in its /etc/resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcOverrides {
    /// `--add-host`: (name, address), appended to /etc/hosts.
    #[serde(default)]
    pub hosts: Vec<(String, String)>,
    /// `--dns`: replaces the nameservers.
    #[serde(default)]
    pub dns: Vec<String>,
    /// `--dns-search`: replaces the search domains.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// `--dns-option`: replaces the options.
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// `--network-alias`: more names the others on its user network know it by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_aliases: Vec<String>,
}

impl RunOptions {
    /// The checks of flags against each other, before anything is made (or pulled).
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.rm && self.restart != RestartPolicy::No {
            return Err(EngineError::Invalid(
                "conflicting options: cannot specify both --restart and --rm".into(),
            ));
        }
        Ok(())
    }
}

/// What the engine keeps of the flags, beside the bundle, for the container's later life.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Settings {
    /// The image's manifest digest: the image the container holds.
    pub manifest: String,
    /// The image's layer dirs, top-most first, as the store gave them at create (the container
    /// holds the image, so they stay): its monitor mounts them without opening the store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lowers: Vec<std::path::PathBuf>,
    pub rm: bool,
    pub network: Network,
    pub ports: Vec<PortMapping>,
    pub hostname: String,
    pub stop_signal: String,
    pub interactive: bool,
    /// `-t`: a pty as its stdio.
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub log: LogOptions,
    /// The image's ExposedPorts and `--expose`s (`80/tcp`); `-P` publishes them.
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// The restart policy's state: restarts since the user last started it (`RestartCount`).
    #[serde(default)]
    pub restart_count: u32,
    /// The restart policy's state: what the user did since the last start.
    #[serde(default)]
    pub user_stop: UserStop,
    /// The named volumes it mounts: a volume is in use while a container row names it.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// The anonymous volumes made for it, removed with it by `rm -v` and `--rm`.
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
    /// The image's labels and `--label`s.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// `--add-host`, `--dns*`: applied when its network writes the /etc files.
    #[serde(default)]
    pub etc: EtcOverrides,
    /// `--stop-timeout`: `stop`'s wait before SIGKILL when not given one (None: 10 s;
    /// negative: no SIGKILL).
    #[serde(default)]
    pub stop_timeout: Option<i64>,
    /// The security flags, for `inspect` (the config holds their effect).
    #[serde(default)]
    pub security: SecurityFlags,
    /// `--isolation vm`: how its VM is made (None: a container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<crate::vm::VmSettings>,
}

/// The security flags as docker's `inspect` shows them in HostConfig.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityFlags {
    pub privileged: bool,
    pub read_only: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `seccomp=...`, `no-new-privileges` as given.
    pub security_opt: Vec<String>,
    pub init: bool,
}

impl SecurityFlags {
    pub fn of(opts: &RunOptions) -> SecurityFlags {
        use crate::run_flags::Seccomp;
        let mut security_opt = Vec::new();
        match &opts.seccomp {
            Seccomp::Default => {}
            Seccomp::Unconfined => security_opt.push("seccomp=unconfined".to_string()),
            Seccomp::File(p) => security_opt.push(format!("seccomp={}", p.display())),
        }
        if opts.no_new_privileges {
            security_opt.push("no-new-privileges".into());
        }
        SecurityFlags {
            privileged: opts.privileged,
            read_only: opts.read_only,
            cap_add: opts.cap_add.clone(),
            cap_drop: opts.cap_drop.clone(),
            security_opt,
            init: opts.init,
        }
    }
}

/// `--memory 64m`: bytes, with docker's b/k/m/g suffixes (powers of 1024); at least 6 MiB as
/// docker requires, since less cannot start a container.
pub fn parse_memory(text: &str) -> Result<i64, EngineError> {
    let bytes = parse_size(text, "memory size")?;
    if bytes < 6 << 20 {
        return Err(EngineError::Invalid(format!(
            "invalid memory size {text:?}: the minimum is 6m"
        )));
    }
    Ok(bytes)
}

/// A size as docker reads `--memory` and `--log-opt max-size`: bytes, with b/k/m/g/t suffixes
/// (powers of 1024); `what` names it in the error.
pub fn parse_size(text: &str, what: &str) -> Result<i64, EngineError> {
    let bad = |why: &str| EngineError::Invalid(format!("invalid {what} {text:?}: {why}"));
    let t = text.trim().to_ascii_lowercase();
    // "64mb" is "64m"; a bare "b" after digits is bytes.
    let t = match t.strip_suffix('b') {
        Some(s) if s.ends_with(['k', 'm', 'g', 't']) => s,
        _ => t.as_str(),
    };
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit {
        "" | "b" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad("use a number with an optional unit b, k, m or g")),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| bad("use a number with an optional unit b, k, m or g"))?;
    n.checked_mul(1i64 << shift).ok_or_else(|| bad("too large"))
}

/// `--cpus 0.5`: thousandths of a CPU (docker's precision).
pub fn parse_cpus(text: &str) -> Result<u64, EngineError> {
    let bad = || {
        EngineError::Invalid(format!(
            "invalid --cpus {text:?}: use a positive number such as 0.5"
        ))
    };
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || (whole.is_empty() && frac.is_empty()) {
        return Err(bad());
    }
    let w: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let f: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}").parse().map_err(|_| bad())?
    };
    let milli = w
        .checked_mul(1000)
        .and_then(|w| w.checked_add(f))
        .ok_or_else(bad)?;
    if milli == 0 {
        return Err(bad());
    }
    Ok(milli)
}

/// `--pids-limit N` (0 or -1: unlimited, as docker).
pub fn parse_pids_limit(text: &str) -> Result<Option<i64>, EngineError> {
    let n: i64 = text.parse().map_err(|_| {
        EngineError::Invalid(format!("invalid --pids-limit {text:?}: use an integer"))
    })?;
    Ok((n > 0).then_some(n))
}

/// Lines of a `--env-file`: `K=V`, or `K` alone for the caller's value; `#` comments and blank
/// lines skipped, as docker reads them.
pub fn parse_env_file(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Reads every `--env-file`, then the `-e` entries, into `K=V` pairs (later ones win); a bare
/// `K` takes the caller's value and is dropped when the caller has none.
pub fn collect_env(opts: &RunOptions) -> Result<Vec<String>, EngineError> {
    let mut entries = Vec::new();
    for file in &opts.env_files {
        let text = std::fs::read_to_string(file)
            .map_err(EngineError::io(format!("--env-file {}", file.display())))?;
        entries.extend(parse_env_file(&text));
    }
    entries.extend(opts.env.iter().cloned());
    let mut out = Vec::new();
    for e in entries {
        if e.starts_with('=') {
            return Err(EngineError::Invalid(format!(
                "invalid environment variable {e:?}"
            )));
        }
        match e.split_once('=') {
            Some(_) => out.push(e),
            None => {
                if let Ok(v) = std::env::var(&e) {
                    out.push(format!("{e}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// A container name: docker's rule `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn check_name(name: &str) -> Result<(), EngineError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("64m").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1G").unwrap(), 1 << 30);
        assert_eq!(parse_memory("64mb").unwrap(), 64 << 20);
        assert_eq!(parse_memory("8388608").unwrap(), 8 << 20);
        assert!(parse_memory("12x").is_err());
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("1k").is_err());
        assert!(parse_memory("").is_err());
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("0.5").unwrap(), 500);
        assert_eq!(parse_cpus("2").unwrap(), 2000);
        assert_eq!(parse_cpus(".25").unwrap(), 250);
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("0.0001").is_err());
        assert!(parse_cpus("x").is_err());
    }

    #[test]
    fn env_file_and_names() {
        assert_eq!(
            parse_env_file("# c\n\nA=1\n  B=2\nC\n"),
            ["A=1", "B=2", "C"]
        );
        assert!(check_name("web-1.a_b").is_ok());
        assert!(check_name("-web").is_err());
        assert!(check_name("a b").is_err());
        assert_eq!(Network::parse("none").unwrap(), Network::None);
        assert_eq!(
            Network::parse("mynet").unwrap(),
            Network::Named("mynet".into())
        );
        assert!(Network::parse("container:x").is_err());
    }

    #[test]
    fn restart_policies() {
        assert_eq!(RestartPolicy::parse("no").unwrap(), RestartPolicy::No);
        assert_eq!(
            RestartPolicy::parse("on-failure:3").unwrap(),
            RestartPolicy::OnFailure(3)
        );
        assert_eq!(
            RestartPolicy::parse("on-failure").unwrap(),
            RestartPolicy::OnFailure(0)
        );
        assert!(RestartPolicy::parse("always:2").is_err());
        assert!(RestartPolicy::parse("on-failure:x").is_err());
        assert!(RestartPolicy::parse("sometimes").is_err());
        let none = UserStop::default();
        let p = RestartPolicy::OnFailure(2);
        assert!(p.should_restart(1, 1, none));
        assert!(!p.should_restart(1, 2, none));
        assert!(!p.should_restart(0, 0, none));
        assert!(RestartPolicy::Always.should_restart(0, 99, none));
        let hup = UserStop {
            cancelled: false,
            signalled: true,
        };
        assert!(RestartPolicy::Always.should_restart(129, 0, hup));
        assert!(!RestartPolicy::UnlessStopped.should_restart(129, 0, hup));
        let stop = UserStop {
            cancelled: true,
            signalled: true,
        };
        assert!(!RestartPolicy::Always.should_restart(143, 0, stop));
    }

    #[test]
    fn backoff_doubles_and_resets() {
        let mut b = Backoff::default();
        let short = std::time::Duration::from_millis(5);
        assert_eq!(b.next(short).as_millis(), 100);
        assert_eq!(b.next(short).as_millis(), 200);
        assert_eq!(b.next(short).as_millis(), 400);
        assert_eq!(b.next(Backoff::RESET_AFTER).as_millis(), 100);
        for _ in 0..20 {
            b.next(short);
        }
        assert_eq!(b.next(short), Backoff::MAX);
    }
}
