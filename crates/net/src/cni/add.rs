//! ADD: the network (hull's IPAM or a delegated plugin's address), the attach, and the
//! result merged into a chained plugin's prevResult.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::commands::{invalid, open};
use super::config::{Config, Env, HullIpam};
use super::delegate;
use super::error::{self, CniError};
use super::result::CniResult;
use crate::attach::{self, Address, Link, Plan, Route};
use crate::cidr::Ipv4Net;
use crate::netlink::Netlink;
use crate::netns::NetnsRef;
use crate::network::{self, NetworkSpec};

/// Network settings and address source from hull's own IPAM config.
fn hull_spec(cfg: &Config, ipam: &HullIpam, env: &Env) -> Result<(NetworkSpec, Address), CniError> {
    let range = match (&ipam.subnet, &ipam.ranges) {
        (Some(s), None) => super::config::RangeCfg {
            subnet: s.clone(),
            gateway: ipam.gateway,
            range_start: ipam.range_start,
            range_end: ipam.range_end,
        },
        (None, Some(r)) if r.len() == 1 && r[0].len() == 1 => r[0][0].clone(),
        (None, Some(_)) => {
            return Err(invalid(
                "ipam.ranges: exactly one IPv4 range is supported".to_string(),
            ))
        }
        (Some(_), Some(_)) => return Err(invalid("ipam: give subnet or ranges, not both".into())),
        (None, None) => return Err(invalid("ipam: subnet or ranges is required".into())),
    };
    let mut spec = NetworkSpec::new(&cfg.name, &range.subnet);
    spec.gateway = range.gateway;
    spec.bridge = Some(cfg.bridge());
    spec.masquerade = cfg.ip_masq;
    spec.mtu = cfg.mtu;
    if range.range_start.is_some() || range.range_end.is_some() {
        let subnet: Ipv4Net = range
            .subnet
            .parse()
            .map_err(|e: crate::cidr::CidrError| invalid(format!("ipam: {e}")))?;
        let (lo, hi) = subnet.host_range();
        spec.range = Some((
            range.range_start.unwrap_or(Ipv4Addr::from(lo)),
            range.range_end.unwrap_or(Ipv4Addr::from(hi)),
        ));
    }
    Ok((spec, Address::Lease(static_ip(cfg, env)?)))
}

/// A requested address: CNI_ARGS IP=..., or runtimeConfig.ips.
fn static_ip(cfg: &Config, env: &Env) -> Result<Option<Ipv4Addr>, CniError> {
    let from_args = env
        .args
        .iter()
        .find(|(k, _)| k == "IP")
        .map(|(_, v)| v.clone());
    let wanted = from_args.or_else(|| cfg.runtime_config.ips.first().cloned());
    wanted
        .map(|w| {
            let ip = w.split('/').next().unwrap_or_default();
            ip.parse()
                .map_err(|_| invalid(format!("requested IP {w:?} is not an IPv4 address")))
        })
        .transpose()
}

/// Network settings and address from a delegated IPAM plugin's result.
fn delegated_spec(
    cfg: &Config,
    result: &Value,
) -> Result<(NetworkSpec, Address, Vec<Route>), CniError> {
    let bad = |m: &str| CniError::new(error::DELEGATE_FAILED, format!("ipam result: {m}"));
    let ip0 = result
        .get("ips")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter().find(|ip| {
                ip.get("address")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.contains('.'))
            })
        })
        .ok_or_else(|| bad("no IPv4 address"))?;
    let addr = ip0["address"].as_str().unwrap_or_default();
    let (ip, prefix) = addr
        .split_once('/')
        .and_then(|(i, p)| Some((i.parse::<Ipv4Addr>().ok()?, p.parse::<u8>().ok()?)))
        .ok_or_else(|| bad("address is not IPv4 CIDR"))?;
    let subnet = Ipv4Net::containing(ip, prefix);
    let mut spec = NetworkSpec::new(&cfg.name, &subnet.to_string());
    spec.gateway = ip0
        .get("gateway")
        .and_then(Value::as_str)
        .and_then(|g| g.parse().ok());
    spec.bridge = Some(cfg.bridge());
    spec.masquerade = cfg.ip_masq;
    spec.mtu = cfg.mtu;
    let mut routes = Vec::new();
    for r in result
        .get("routes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let dst = r.get("dst").and_then(Value::as_str).unwrap_or_default();
        let Ok(dst) = dst.parse::<Ipv4Net>() else {
            continue; // IPv6 routes of a dual-stack IPAM: hull attaches IPv4 only
        };
        let gw = r
            .get("gw")
            .and_then(Value::as_str)
            .and_then(|g| g.parse().ok());
        routes.push(Route { dst, gw });
    }
    Ok((spec, Address::Fixed { ip, prefix }, routes))
}

fn config_routes(ipam: Option<&HullIpam>, gateway: Ipv4Addr) -> Result<Vec<Route>, CniError> {
    let mut out = Vec::new();
    for r in ipam.and_then(|i| i.routes.as_ref()).into_iter().flatten() {
        let dst = r
            .dst
            .parse::<Ipv4Net>()
            .map_err(|e| invalid(format!("ipam.routes: {e}")))?;
        out.push(Route {
            dst,
            gw: Some(r.gw.unwrap_or(gateway)),
        });
    }
    Ok(out)
}

pub(super) fn add(env: &Env, cfg: &Config, raw: &[u8]) -> Result<Value, CniError> {
    env.require("CONTAINERID", &env.container_id)?;
    env.require("IFNAME", &env.ifname)?;
    let netns_path = env
        .netns
        .clone()
        .ok_or_else(|| CniError::new(error::INVALID_ENV, "CNI_NETNS is required for ADD"))?;
    let ports = cfg.port_mappings()?;
    let mut net = open(cfg)?;
    let delegated = cfg.delegated_ipam();
    let (spec, address, mut routes, hull_ipam) = match &delegated {
        Some(plugin) => {
            let res = delegate::run(env, plugin, "ADD", raw)?;
            let (s, a, r) = delegated_spec(cfg, &res)?;
            (s, a, r, None)
        }
        None => {
            let ipam = cfg.hull_ipam()?;
            let (s, a) = hull_spec(cfg, &ipam, env)?;
            (s, a, Vec::new(), Some(ipam))
        }
    };
    let outcome = (|| {
        let network = network::ensure(net.conn(), &spec).map_err(crate::error::NetError::from)?;
        routes.extend(config_routes(hull_ipam.as_ref(), network.gateway)?);
        if cfg.is_default_gateway && !routes.iter().any(|r| r.dst.prefix() == 0) {
            routes.push(Route {
                dst: Ipv4Net::containing(Ipv4Addr::UNSPECIFIED, 0),
                gw: Some(network.gateway),
            });
        }
        let ns = NetnsRef::Path(netns_path.clone().into());
        let plan = Plan {
            container_id: &env.container_id,
            ifname: &env.ifname,
            netns: &ns,
            network: &network,
            address,
            bridge_gateway: cfg.is_gateway || cfg.is_default_gateway,
            routes: routes.clone(),
            hairpin: cfg.hairpin_mode,
            ports: &ports,
            ip_forward: cfg.is_gateway && cfg.ip_masq,
        };
        let link = attach::attach(net.conn(), &plan)?;
        Ok::<_, CniError>((network, link))
    })();
    let (network, link) = match outcome {
        Ok(v) => v,
        Err(e) => {
            if let Some(plugin) = &delegated {
                let _ = delegate::run(env, plugin, "DEL", raw);
            }
            return Err(e);
        }
    };
    Ok(add_result(cfg, &network.bridge, &link, &netns_path, &routes)?.to_json(&cfg.cni_version))
}

fn add_result(
    cfg: &Config,
    bridge: &str,
    link: &Link,
    sandbox: &str,
    routes: &[Route],
) -> Result<CniResult, CniError> {
    let mut res = CniResult::from_prev(cfg.prev_result.as_ref());
    let mut nl = Netlink::open().map_err(crate::error::NetError::from)?;
    let mac = |nl: &mut Netlink, name: &str| {
        nl.link_get(name)
            .ok()
            .flatten()
            .map(|l| {
                l.mac
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .unwrap_or_default()
    };
    let bmac = mac(&mut nl, bridge);
    res.add_interface(bridge, &bmac, None);
    let vmac = mac(&mut nl, &link.host_veth);
    res.add_interface(&link.host_veth, &vmac, None);
    let idx = res.add_interface(&link.ifname, &link.mac, Some(sandbox));
    let mut ip = json!({ "address": format!("{}/{}", link.ip, link.prefix), "interface": idx });
    if cfg.is_gateway || cfg.is_default_gateway {
        if let Some(gw) = routes.iter().find_map(|r| r.gw) {
            ip["gateway"] = json!(gw.to_string());
        }
    }
    res.ips.push(ip);
    for r in routes {
        let mut v = json!({ "dst": r.dst.to_string() });
        if let Some(gw) = r.gw {
            v["gw"] = json!(gw.to_string());
        }
        res.routes.push(v);
    }
    if let Some(dns) = &cfg.dns {
        res.dns = dns.clone();
    }
    Ok(res)
}
