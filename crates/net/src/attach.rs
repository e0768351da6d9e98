//! Attaching one interface of a container to a bridge network, and detaching it: the lease,
//! attachment and port rows are written first (one transaction), then the kernel objects are
//! made; a failure undoes both. Rows always cover every kernel object, so cleanup after a
//! crash can find everything from the database.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::cidr::Ipv4Net;
use crate::db;
use crate::error::NetError;
use crate::ipam;
use crate::netlink::{Netlink, NetlinkError};
use crate::netns::{self, NetnsRef};
use crate::network::{self, Network};
use crate::nft::Firewall;
use crate::ports::{self, PortMapping, Proto};
use crate::sysctl;

/// Where the container's address comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// hull's IPAM: the given address if free, else the next free one.
    Lease(Option<Ipv4Addr>),
    /// Already chosen (by a delegated CNI IPAM plugin).
    Fixed { ip: Ipv4Addr, prefix: u8 },
}

/// A route to add in the container: destination and optional gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Net,
    pub gw: Option<Ipv4Addr>,
}

/// Everything one attach needs.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    pub container_id: &'a str,
    pub ifname: &'a str,
    pub netns: &'a NetnsRef,
    pub network: &'a Network,
    pub address: Address,
    /// Put the network's gateway address on the bridge.
    pub bridge_gateway: bool,
    pub routes: Vec<Route>,
    pub hairpin: bool,
    pub ports: &'a [PortMapping],
    pub ip_forward: bool,
}

/// One attached interface, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub container_id: String,
    pub ifname: String,
    pub network: String,
    pub netns_path: String,
    pub host_veth: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mac: String,
    pub ports: Vec<PortMapping>,
    #[serde(skip)]
    pub netns_id: (u64, u64),
}

/// Checks an id used in names and rows.
pub fn check_container_id(id: &str) -> Result<(), NetError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(NetError::BadContainerId(id.to_string()))
    }
}

/// `hull` + 7 characters of the id + 4 hex digits of a hash of (id, ifname, network): short
/// enough for IFNAMSIZ, readable, and distinct for a container's several interfaces.
pub fn host_veth_name(container: &str, ifname: &str, network: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in container
        .bytes()
        .chain([0])
        .chain(ifname.bytes())
        .chain([0])
        .chain(network.bytes())
    {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let short: String = container
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(7)
        .collect();
    format!("hull{short}{:04x}", h & 0xffff)
}

/// Attaches per `plan`; on failure nothing of it is left.
pub fn attach(conn: &mut Connection, plan: &Plan<'_>) -> Result<Link, NetError> {
    check_container_id(plan.container_id)?;
    if !network::valid_ifname(plan.ifname) {
        return Err(NetError::BadIfname(plan.ifname.to_string()));
    }
    let ns = plan.netns.open()?;
    let netns_id = netns::identity(&ns).map_err(|source| netns::NetnsError::Open {
        path: plan.netns.path().display().to_string(),
        source,
    })?;
    check_ports(plan.ports)?;
    let mut link = record(conn, plan, netns_id)?;
    match make(plan, &ns, &mut link) {
        Ok(()) => {
            conn.execute(
                "UPDATE net_attachments SET mac = ?1 WHERE container_id = ?2 AND ifname = ?3",
                params![link.mac, link.container_id, link.ifname],
            )?;
            Ok(link)
        }
        Err(e) => {
            // Port entries are added last in one atomic nftables batch, so a failure means
            // none of ours exist, and an entry under the same key belongs to someone else.
            link.ports.clear();
            let _ = undo(conn, &link);
            Err(e)
        }
    }
}

fn check_ports(ports: &[PortMapping]) -> Result<(), NetError> {
    for (i, p) in ports.iter().enumerate() {
        let clash = ports[..i].iter().any(|q| {
            q.proto == p.proto
                && q.host_port == p.host_port
                && (q.host_ip == p.host_ip
                    || q.host_ip.is_unspecified()
                    || p.host_ip.is_unspecified())
        });
        if clash {
            return Err(NetError::PortTwice(p.to_string()));
        }
        ports::check_free(p)?;
    }
    Ok(())
}

/// Writes lease, attachment and port rows in one transaction.
fn record(conn: &mut Connection, plan: &Plan<'_>, netns_id: (u64, u64)) -> Result<Link, NetError> {
    let tx = db::write_tx(conn)?;
    let existing: Option<String> = tx
        .query_row(
            "SELECT network FROM net_attachments WHERE container_id = ?1 AND ifname = ?2",
            params![plan.container_id, plan.ifname],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(network) = existing {
        return Err(NetError::AlreadyAttached {
            container: plan.container_id.to_string(),
            ifname: plan.ifname.to_string(),
            network,
        });
    }
    let net = plan.network;
    let (ip, prefix) = match plan.address {
        Address::Lease(wanted) => (
            ipam::allocate_in(&tx, net, plan.container_id, plan.ifname, wanted)?,
            net.subnet.prefix(),
        ),
        Address::Fixed { ip, prefix } => (ip, prefix),
    };
    let host_veth = host_veth_name(plan.container_id, plan.ifname, &net.name);
    let gateway = plan
        .routes
        .iter()
        .find(|r| r.dst.prefix() == 0)
        .and_then(|r| r.gw);
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO net_attachments (container_id, ifname, network, netns_path,
             netns_dev, netns_ino, host_veth, ip, prefix, gateway, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            plan.container_id,
            plan.ifname,
            net.name,
            plan.netns.path().display().to_string(),
            i64::try_from(netns_id.0).unwrap_or(-1),
            i64::try_from(netns_id.1).unwrap_or(-1),
            host_veth,
            u32::from(ip),
            prefix,
            gateway.map(u32::from),
            db::now()
        ],
    )?;
    if inserted == 0 {
        return Err(NetError::VethCollision(host_veth));
    }
    for p in plan.ports {
        insert_port(&tx, p, ip, plan.container_id, plan.ifname)?;
    }
    tx.commit()?;
    Ok(Link {
        container_id: plan.container_id.to_string(),
        ifname: plan.ifname.to_string(),
        network: net.name.clone(),
        netns_path: plan.netns.path().display().to_string(),
        host_veth,
        ip,
        prefix,
        gateway,
        mac: String::new(),
        ports: plan.ports.to_vec(),
        netns_id,
    })
}

fn insert_port(
    tx: &Connection,
    p: &PortMapping,
    ip: Ipv4Addr,
    container: &str,
    ifname: &str,
) -> Result<(), NetError> {
    let holder: Option<String> = tx
        .query_row(
            "SELECT container_id FROM net_ports WHERE proto = ?1 AND host_port = ?2
               AND (host_ip = ?3 OR host_ip = '0.0.0.0' OR ?3 = '0.0.0.0') LIMIT 1",
            params![p.proto.as_str(), p.host_port, p.host_ip.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(container) = holder {
        return Err(NetError::PortPublished {
            port: format!("{}:{}/{}", p.host_ip, p.host_port, p.proto.as_str()),
            container,
        });
    }
    tx.execute(
        "INSERT INTO net_ports (proto, host_ip, host_port, container_ip, container_port,
             container_id, ifname) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            p.proto.as_str(),
            p.host_ip.to_string(),
            p.host_port,
            ip.to_string(),
            p.container_port,
            container,
            ifname
        ],
    )?;
    Ok(())
}

/// Makes the kernel objects: bridge (if missing), veth pair, addresses, routes, rules.
fn make(plan: &Plan<'_>, ns: &std::fs::File, link: &mut Link) -> Result<(), NetError> {
    let net = plan.network;
    let mut nl = Netlink::open()?;
    let bridge = ensure_bridge(&mut nl, net, plan.bridge_gateway)?;
    if plan.ip_forward && net.masquerade {
        sysctl::ip_forward()?;
    }
    nl.veth_create(
        &link.host_veth,
        plan.ifname,
        ns.as_fd(),
        net.mtu,
        Some(bridge),
    )
    .map_err(|e| match e.errno() {
        Some(libc::EEXIST) => NetError::VethCollision(link.host_veth.clone()),
        _ => e.into(),
    })?;
    let host = nl.link_require(&link.host_veth)?;
    if plan.hairpin {
        nl.bridge_port_hairpin(host.index, true)?;
    }
    nl.link_up(host.index)?;
    let mac = configure_inside(plan, ns, link.ip, link.prefix)?;
    link.mac = mac;
    let mut fw = Firewall::open()?;
    fw.add_attachment(net.subnet, net.masquerade, link.ip, plan.ports)?;
    Ok(())
}

/// Creates and configures the network's bridge unless it exists; returns its index.
pub(crate) fn ensure_bridge(
    nl: &mut Netlink,
    net: &Network,
    with_gateway: bool,
) -> Result<u32, NetError> {
    match nl.bridge_create(&net.bridge, Some(net.mtu)) {
        Ok(()) => {}
        Err(e) if e.errno() == Some(libc::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let br = nl.link_require(&net.bridge)?;
    if with_gateway {
        ignore_exists(nl.addr_add(br.index, net.gateway, net.subnet.prefix()))?;
        sysctl::route_localnet(&net.bridge)?;
        // An internal network routes nowhere: packets from it are never forwarded.
        if !net.internal {
            sysctl::bridge_forwarding(&net.bridge)?;
        }
    }
    if !br.up {
        nl.link_up(br.index)?;
    }
    Ok(br.index)
}

fn ignore_exists(r: Result<(), NetlinkError>) -> Result<(), NetlinkError> {
    match r {
        Err(e) if e.errno() == Some(libc::EEXIST) => Ok(()),
        other => other,
    }
}

/// Inside the namespace: lo and the interface up, address, routes; returns the MAC.
fn configure_inside(
    plan: &Plan<'_>,
    ns: &std::fs::File,
    ip: Ipv4Addr,
    prefix: u8,
) -> Result<String, NetError> {
    netns::run_in(ns, || -> Result<String, NetError> {
        let mut nl = Netlink::open()?;
        let lo = nl.link_require("lo")?;
        if !lo.up {
            nl.link_up(lo.index)?;
        }
        let eth = nl.link_require(plan.ifname)?;
        nl.addr_add(eth.index, ip, prefix)?;
        nl.link_up(eth.index)?;
        for r in &plan.routes {
            ignore_exists(nl.route_add(r.dst.addr(), r.dst.prefix(), r.gw, eth.index))?;
        }
        Ok(mac_string(&eth.mac))
    })?
}

fn mac_string(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Removes what an attachment made and its rows; parts already gone are skipped.
pub(crate) fn undo(conn: &mut Connection, link: &Link) -> Result<(), NetError> {
    // Both kernel operations end in an RCU grace period (nf_tables flushes its destroy
    // work when the netlink socket closes; unregistering a netdev waits too): overlapping
    // them nearly halves detach time.
    let (rules, veth) = std::thread::scope(|s| {
        let rules = s.spawn(|| -> Result<(), NetError> {
            if !link.ports.is_empty() {
                Firewall::open()?.remove_ports(&link.ports)?;
            }
            Ok(())
        });
        // Deleting the host end removes the pair; when the namespace is gone so is the pair.
        let veth = Netlink::open().and_then(|mut nl| nl.link_delete(&link.host_veth));
        (rules.join(), veth)
    });
    rules.unwrap_or(Ok(()))?;
    veth?;
    let tx = db::write_tx(conn)?;
    ipam::release(&tx, &link.network, &link.container_id, &link.ifname)?;
    tx.execute(
        "DELETE FROM net_ports WHERE container_id = ?1 AND ifname = ?2",
        params![link.container_id, link.ifname],
    )?;
    tx.execute(
        "DELETE FROM net_attachments WHERE container_id = ?1 AND ifname = ?2",
        params![link.container_id, link.ifname],
    )?;
    tx.commit()?;
    Ok(())
}

fn link_from_row(r: &Row<'_>) -> rusqlite::Result<Link> {
    let gw: Option<u32> = r.get("gateway")?;
    let dev: i64 = r.get("netns_dev")?;
    let ino: i64 = r.get("netns_ino")?;
    Ok(Link {
        container_id: r.get("container_id")?,
        ifname: r.get("ifname")?,
        network: r.get("network")?,
        netns_path: r.get("netns_path")?,
        host_veth: r.get("host_veth")?,
        ip: Ipv4Addr::from(r.get::<_, u32>("ip")?),
        prefix: r.get("prefix")?,
        gateway: gw.map(Ipv4Addr::from),
        mac: r.get("mac")?,
        ports: Vec::new(),
        netns_id: (
            u64::try_from(dev).unwrap_or(0),
            u64::try_from(ino).unwrap_or(0),
        ),
    })
}

fn ports_of(
    conn: &Connection,
    container: &str,
    ifname: &str,
) -> Result<Vec<PortMapping>, NetError> {
    let mut stmt = conn.prepare_cached(
        "SELECT proto, host_ip, host_port, container_port FROM net_ports
         WHERE container_id = ?1 AND ifname = ?2",
    )?;
    let rows = stmt.query_map(params![container, ifname], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, u16>(2)?,
            r.get::<_, u16>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (proto, host_ip, host_port, container_port) = row?;
        out.push(PortMapping {
            host_ip: host_ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
            host_port,
            container_port,
            proto: Proto::parse(&proto).unwrap_or(Proto::Tcp),
        });
    }
    Ok(out)
}

/// Stored attachments: of one container, or all.
pub fn list(conn: &Connection, container: Option<&str>) -> Result<Vec<Link>, NetError> {
    let mut stmt = conn.prepare(
        "SELECT * FROM net_attachments WHERE ?1 IS NULL OR container_id = ?1
         ORDER BY container_id, ifname",
    )?;
    let links = stmt
        .query_map(params![container], link_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    links
        .into_iter()
        .map(|mut l| {
            l.ports = ports_of(conn, &l.container_id, &l.ifname)?;
            Ok(l)
        })
        .collect()
}

/// Detaches one interface of a container; false when it was not attached.
pub fn detach(conn: &mut Connection, container: &str, ifname: &str) -> Result<bool, NetError> {
    let links = list(conn, Some(container))?;
    match links.iter().find(|l| l.ifname == ifname) {
        Some(link) => undo(conn, link).map(|()| true),
        None => Ok(false),
    }
}
