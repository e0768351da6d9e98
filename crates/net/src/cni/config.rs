//! The CNI inputs: environment variables and the network configuration on stdin, with the
//! reference bridge plugin's keys, portmap's runtimeConfig, and hull's own `hullRoot`.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::error::{self, CniError};
use crate::ports::{PortMapping, Proto};

/// The CNI_* environment.
#[derive(Debug, Clone)]
pub struct Env {
    pub command: String,
    pub container_id: String,
    pub netns: Option<String>,
    pub ifname: String,
    pub args: Vec<(String, String)>,
    pub path: Vec<PathBuf>,
}

impl Env {
    /// Reads the environment; what a command needs is checked by the command.
    pub fn from_env() -> Result<Env, CniError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let command = var("CNI_COMMAND")
            .ok_or_else(|| CniError::new(error::INVALID_ENV, "CNI_COMMAND is not set"))?;
        let args = var("CNI_ARGS")
            .map(|a| {
                a.split(';')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| match kv.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (kv.to_string(), String::new()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Env {
            command,
            container_id: var("CNI_CONTAINERID").unwrap_or_default(),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME").unwrap_or_default(),
            args,
            path: var("CNI_PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default(),
        })
    }

    /// Fails with the spec's "invalid environment" error when `CNI_<name>` is empty.
    pub fn require(&self, name: &str, value: &str) -> Result<(), CniError> {
        if value.is_empty() {
            return Err(CniError::new(
                error::INVALID_ENV,
                format!("CNI_{name} is required for {}", self.command),
            ));
        }
        Ok(())
    }
}

/// One address range of `ipam.ranges`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RangeCfg {
    pub subnet: String,
    pub gateway: Option<Ipv4Addr>,
    pub range_start: Option<Ipv4Addr>,
    pub range_end: Option<Ipv4Addr>,
}

/// A route of `ipam.routes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCfg {
    pub dst: String,
    pub gw: Option<Ipv4Addr>,
}

/// `ipam` handled by hull itself (host-local's keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HullIpam {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub subnet: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    pub range_start: Option<Ipv4Addr>,
    pub range_end: Option<Ipv4Addr>,
    pub ranges: Option<Vec<Vec<RangeCfg>>>,
    pub routes: Option<Vec<RouteCfg>>,
}

/// A port mapping as portmap takes it. containerd's CRI (go-cni's PortMapping has no JSON
/// tags) sends the Go field names, `HostPort`...; portmap reads them through Go's
/// case-insensitive decoding, so hull-cni takes both spellings.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMappingCfg {
    #[serde(alias = "HostPort")]
    pub host_port: u16,
    #[serde(alias = "ContainerPort")]
    pub container_port: u16,
    #[serde(alias = "Protocol")]
    pub protocol: Option<String>,
    #[serde(rename = "hostIP", alias = "HostIP")]
    pub host_ip: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeConfig {
    #[serde(default)]
    pub port_mappings: Vec<PortMappingCfg>,
    /// Static addresses (the "ips" capability), e.g. "10.1.0.5/24".
    #[serde(default)]
    pub ips: Vec<String>,
}

/// The network configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub bridge: Option<String>,
    #[serde(default)]
    pub is_gateway: bool,
    #[serde(default)]
    pub is_default_gateway: bool,
    #[serde(default)]
    pub ip_masq: bool,
    pub mtu: Option<u32>,
    #[serde(default)]
    pub hairpin_mode: bool,
    pub ipam: Option<Value>,
    pub dns: Option<Value>,
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    pub prev_result: Option<Value>,
    pub capabilities: Option<Value>,
    pub args: Option<Value>,
    /// hull's state directory (where hull.db is).
    pub hull_root: Option<PathBuf>,
}

/// Default bridge when the config names none.
pub const DEFAULT_BRIDGE: &str = "hullcni0";

impl Config {
    pub fn parse(raw: &[u8]) -> Result<Config, CniError> {
        let cfg: Config = serde_json::from_slice(raw).map_err(|e| {
            let text = e.to_string();
            let code = if text.starts_with("unknown field") {
                error::UNSUPPORTED_FIELD
            } else {
                error::DECODE_FAILURE
            };
            CniError::new(code, format!("network configuration: {text}"))
        })?;
        if !super::SUPPORTED_VERSIONS.contains(&cfg.cni_version.as_str()) {
            return Err(CniError::new(
                error::INCOMPATIBLE_VERSION,
                format!("cniVersion {} is not supported", cfg.cni_version),
            )
            .with_details(format!(
                "supported: {}",
                super::SUPPORTED_VERSIONS.join(", ")
            )));
        }
        Ok(cfg)
    }

    /// The delegated IPAM plugin's type, or None when hull's IPAM is used.
    pub fn delegated_ipam(&self) -> Option<String> {
        let t = self.ipam.as_ref()?.get("type")?.as_str()?;
        (t != "hull" && !t.is_empty()).then(|| t.to_string())
    }

    /// hull's own IPAM settings.
    pub fn hull_ipam(&self) -> Result<HullIpam, CniError> {
        let v = self.ipam.clone().ok_or_else(|| {
            CniError::new(error::INVALID_CONFIG, "ipam is required (subnet or ranges)")
        })?;
        serde_json::from_value(v).map_err(|e| {
            let code = if e.to_string().starts_with("unknown field") {
                error::UNSUPPORTED_FIELD
            } else {
                error::INVALID_CONFIG
            };
            CniError::new(code, format!("ipam: {e}"))
        })
    }

    pub fn bridge(&self) -> String {
        self.bridge
            .clone()
            .unwrap_or_else(|| DEFAULT_BRIDGE.to_string())
    }

    /// The state root: config key, then HULL_ROOT, then /var/lib/hull.
    pub fn root(&self) -> PathBuf {
        self.hull_root
            .clone()
            .or_else(|| std::env::var_os("HULL_ROOT").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/var/lib/hull"))
    }

    /// runtimeConfig.portMappings as hull's mappings (IPv4 only).
    pub fn port_mappings(&self) -> Result<Vec<PortMapping>, CniError> {
        let bad = |m: String| CniError::new(error::INVALID_CONFIG, m);
        self.runtime_config
            .port_mappings
            .iter()
            .map(|p| {
                let proto = match &p.protocol {
                    None => Proto::Tcp,
                    Some(s) => Proto::parse(s).ok_or_else(|| {
                        bad(format!(
                            "portMappings: protocol {s:?} is not supported (tcp or udp)"
                        ))
                    })?,
                };
                let host_ip = match p.host_ip.as_deref() {
                    None | Some("") => Ipv4Addr::UNSPECIFIED,
                    Some(ip) => ip.parse().map_err(|_| {
                        bad(format!(
                            "portMappings: hostIP {ip:?} is not an IPv4 address"
                        ))
                    })?,
                };
                if p.host_port == 0 || p.container_port == 0 {
                    return Err(bad("portMappings: ports must be 1-65535".to_string()));
                }
                Ok(PortMapping {
                    host_ip,
                    host_port: p.host_port,
                    container_port: p.container_port,
                    proto,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// containerd 1.6's CRI sends runtimeConfig.portMappings with Go's field names.
    #[test]
    fn port_mappings_as_containerd_sends_them() {
        let raw = br#"{"cniVersion":"1.0.0","name":"n","type":"hull-cni",
            "ipam":{"subnet":"10.1.0.0/24"},
            "runtimeConfig":{"portMappings":[
              {"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":"127.0.0.1"},
              {"hostPort":53,"containerPort":5353,"protocol":"udp"}]}}"#;
        let cfg = Config::parse(raw).unwrap();
        let ports = cfg.port_mappings().unwrap();
        assert_eq!(ports[0].to_string(), "127.0.0.1:8080->80/tcp");
        assert_eq!(ports[1].to_string(), "0.0.0.0:53->5353/udp");
    }
}
