//! CHECK: the attachment is recorded, its host end is a port of the bridge, and the
//! namespace's interface still has the addresses prevResult lists.

use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::Value;

use super::commands::{invalid, open};
use super::config::{Config, Env};
use super::delegate;
use super::error::{self, CniError};
use crate::attach::{self, Link};
use crate::netlink::Netlink;
use crate::netns::{self, NetnsRef};

fn check_failed(msg: String) -> CniError {
    CniError::new(error::CHECK_FAILED, msg)
}

pub(super) fn check(env: &Env, cfg: &Config, raw: &[u8]) -> Result<(), CniError> {
    if cfg.cni_version.starts_with("0.3") {
        return Err(CniError::new(
            error::INCOMPATIBLE_VERSION,
            format!("CHECK is not defined for cniVersion {}", cfg.cni_version),
        ));
    }
    env.require("CONTAINERID", &env.container_id)?;
    env.require("IFNAME", &env.ifname)?;
    let prev = cfg
        .prev_result
        .as_ref()
        .ok_or_else(|| invalid("CHECK needs prevResult".to_string()))?;
    let netns_path = env
        .netns
        .clone()
        .ok_or_else(|| CniError::new(error::INVALID_ENV, "CNI_NETNS is required for CHECK"))?;
    let mut net = open(cfg)?;
    let link = attach::list(net.conn(), Some(&env.container_id))?
        .into_iter()
        .find(|l| l.ifname == env.ifname)
        .ok_or_else(|| {
            CniError::new(
                error::UNKNOWN_CONTAINER,
                format!(
                    "container {} has no interface {}",
                    env.container_id, env.ifname
                ),
            )
        })?;
    check_host_side(&link, &cfg.bridge())?;
    check_sandbox(&netns_path, &env.ifname, &expected_ips(prev, &env.ifname))?;
    if let Some(plugin) = cfg.delegated_ipam() {
        delegate::run(env, &plugin, "CHECK", raw)?;
    }
    Ok(())
}

/// IPv4 addresses prevResult assigns to the sandbox interface `ifname`.
fn expected_ips(prev: &Value, ifname: &str) -> Vec<(Ipv4Addr, u8)> {
    let ifaces = prev.get("interfaces").and_then(Value::as_array);
    let ours = |i: &Value| {
        i.as_u64()
            .and_then(|i| ifaces?.get(usize::try_from(i).ok()?))
            .is_some_and(|f| f.get("name").and_then(Value::as_str) == Some(ifname))
    };
    prev.get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|ip| ip.get("interface").is_some_and(ours))
        .filter_map(|ip| {
            let (a, p) = ip.get("address")?.as_str()?.split_once('/')?;
            Some((a.parse().ok()?, p.parse().ok()?))
        })
        .collect()
}

fn check_host_side(link: &Link, bridge: &str) -> Result<(), CniError> {
    let mut nl = Netlink::open().map_err(crate::error::NetError::from)?;
    let br = nl
        .link_get(bridge)
        .map_err(crate::error::NetError::from)?
        .ok_or_else(|| check_failed(format!("bridge {bridge} does not exist")))?;
    let veth = nl
        .link_get(&link.host_veth)
        .map_err(crate::error::NetError::from)?
        .ok_or_else(|| check_failed(format!("host interface {} does not exist", link.host_veth)))?;
    if veth.master != Some(br.index) {
        return Err(check_failed(format!(
            "host interface {} is not a port of bridge {bridge}",
            link.host_veth
        )));
    }
    Ok(())
}

fn check_sandbox(path: &str, ifname: &str, want: &[(Ipv4Addr, u8)]) -> Result<(), CniError> {
    let ns = NetnsRef::Path(Path::new(path).to_path_buf())
        .open()
        .map_err(crate::error::NetError::from)?;
    netns::run_in(&ns, || -> Result<(), CniError> {
        let mut nl = Netlink::open().map_err(crate::error::NetError::from)?;
        let l = nl
            .link_get(ifname)
            .map_err(crate::error::NetError::from)?
            .ok_or_else(|| check_failed(format!("interface {ifname} is missing in {path}")))?;
        let have = nl
            .addr_list(l.index)
            .map_err(crate::error::NetError::from)?;
        for (ip, prefix) in want {
            if !have.iter().any(|a| a.ip == *ip && a.prefix == *prefix) {
                return Err(check_failed(format!(
                    "address {ip}/{prefix} is missing on {ifname} in {path}"
                )));
            }
        }
        Ok(())
    })
    .map_err(|e| CniError::from(crate::error::NetError::from(e)))?
}
