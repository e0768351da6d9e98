//! The IPv4 sysctls a bridge network needs, written only when not already set:
//! route_localnet on a hull bridge (so DNAT of connections to 127.0.0.1 may leave through
//! it), forwarding on the bridge (packets arriving on it may be routed: hairpin, container
//! to published port, egress), and the global ip_forward (for published ports reached from
//! other hosts, as podman sets it).

use std::path::PathBuf;

/// Errors writing a sysctl.
#[derive(Debug, thiserror::Error)]
#[error("cannot set sysctl {path} to {value}: {source}")]
pub struct SysctlError {
    path: String,
    value: String,
    source: std::io::Error,
}

fn set(path: PathBuf, value: &str) -> Result<(), SysctlError> {
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(|source| SysctlError {
        path: path.display().to_string(),
        value: value.to_string(),
        source,
    })
}

/// Lets packets from 127.0.0.0/8, DNATed to a container, be routed out of `bridge`.
pub fn route_localnet(bridge: &str) -> Result<(), SysctlError> {
    set(
        PathBuf::from(format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet")),
        "1",
    )
}

/// Lets packets that arrive on `bridge` be forwarded. IPv4 checks forwarding on the input
/// device only, so this is enough for everything coming from containers, without turning
/// on forwarding for the host's other interfaces.
pub fn bridge_forwarding(bridge: &str) -> Result<(), SysctlError> {
    set(
        PathBuf::from(format!("/proc/sys/net/ipv4/conf/{bridge}/forwarding")),
        "1",
    )
}

/// Turns IPv4 forwarding on, as podman and the CNI bridge plugin do for egress.
pub fn ip_forward() -> Result<(), SysctlError> {
    set(PathBuf::from("/proc/sys/net/ipv4/ip_forward"), "1")
}
