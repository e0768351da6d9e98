//! ADD, DEL, CHECK and VERSION.

use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::{json, Value};

use super::config::{Config, Env, HullIpam};
use super::delegate;
use super::error::{self, CniError};
use super::result::CniResult;
use crate::attach::{self, Address, Link, Plan, Route};
use crate::cidr::Ipv4Net;
use crate::engine::{Net, NetOptions};
use crate::netlink::Netlink;
use crate::netns::{self, NetnsRef};
use crate::network::{self, NetworkSpec};

/// Runs the command named by CNI_COMMAND; `Ok(Some(json))` is printed on stdout.
pub fn run(env: &Env, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    if env.command == "VERSION" {
        return Ok(Some(version(stdin)));
    }
    let cfg = Config::parse(stdin)?;
    match env.command.as_str() {
        "ADD" => add(env, &cfg, stdin).map(Some),
        "DEL" => del(env, &cfg, stdin).map(|()| None),
        "CHECK" => check(env, &cfg, stdin).map(|()| None),
        other => Err(CniError::new(
            error::INVALID_ENV,
            format!("CNI_COMMAND {other:?} is not supported (ADD, DEL, CHECK, VERSION)"),
        )),
    }
}

fn version(stdin: &[u8]) -> Value {
    let asked = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .filter(|v| super::SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| "1.0.0".to_string());
    json!({ "cniVersion": asked, "supportedVersions": super::SUPPORTED_VERSIONS })
}

fn open(cfg: &Config) -> Result<Net, CniError> {
    let opts = NetOptions {
        ip_forward: cfg.is_gateway && cfg.ip_masq,
        ..NetOptions::default()
    };
    Ok(Net::open_with(&cfg.root(), opts)?)
}

fn invalid(msg: String) -> CniError {
    CniError::new(error::INVALID_CONFIG, msg)
}

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

fn add(env: &Env, cfg: &Config, raw: &[u8]) -> Result<Value, CniError> {
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

fn del(env: &Env, cfg: &Config, raw: &[u8]) -> Result<(), CniError> {
    env.require("CONTAINERID", &env.container_id)?;
    env.require("IFNAME", &env.ifname)?;
    let mut net = open(cfg)?;
    attach::detach(net.conn(), &env.container_id, &env.ifname)?;
    if let Some(plugin) = cfg.delegated_ipam() {
        delegate::run(env, &plugin, "DEL", raw)?;
    }
    Ok(())
}

fn check_failed(msg: String) -> CniError {
    CniError::new(error::CHECK_FAILED, msg)
}

fn check(env: &Env, cfg: &Config, raw: &[u8]) -> Result<(), CniError> {
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
