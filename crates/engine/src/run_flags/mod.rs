//! The `run`/`create` flags for DNS and hosts, resources, devices and security (`--add-host`,
//! `--dns`, `--memory-swap`, `--cpu-shares`, `--cpuset-*`, `--device*`, `--blkio-weight`,
//! `--cap-add/--cap-drop`, `--security-opt`, `--ulimit`, `--stop-signal`, `--init`): each parsed
//! and checked against the host as docker does, before anything is created. One file per concern.

mod devices;
mod resources;
mod security;

use std::path::PathBuf;

pub use devices::{device_node, nodes_under, parse_device, DeviceNode, DeviceSpec};
pub use resources::{
    blkio_controller_dir, host_online, parse_blkio_weight, parse_cpu_shares, parse_cpuset,
    parse_memory_swap, parse_throttle, require_swap_accounting, weight_honoured, Throttle,
};
pub use security::{
    capabilities, check_grantable, normalize_caps, parse_guest_ulimit, parse_security_opt,
    parse_ulimit, Seccomp, Ulimit,
};

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

/// `--network-alias NAME`: a host name (letters, digits, '-', '_', '.'), as a hosts file's line
/// takes it.
pub fn parse_network_alias(text: &str) -> Result<String, EngineError> {
    let ok = !text.is_empty()
        && text.len() <= 253
        && !text.starts_with(['-', '.'])
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(text.to_string())
    } else {
        Err(invalid(format!(
            "invalid --network-alias {text:?}: use letters, digits, '-', '_' and '.'"
        )))
    }
}

/// `--dns IP`: a nameserver address.
pub fn parse_dns(text: &str) -> Result<String, EngineError> {
    text.parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| invalid(format!("invalid --dns {text:?}: not an IP address")))
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
        assert_eq!(parse_network_alias("db.local_1").unwrap(), "db.local_1");
        for bad in ["", "-x", ".x", "a b", "a:b"] {
            assert!(parse_network_alias(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_stop_signal("KILL").unwrap(), "SIGKILL");
        assert!(parse_stop_signal("NOPE").is_err());
    }
}
