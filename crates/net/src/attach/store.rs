//! The database side of an attachment: lease, attachment and port rows, written in one
//! transaction before any kernel object exists, read back for detach and cleanup.

use std::net::Ipv4Addr;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{host_veth_name, Address, Link, Plan};
use crate::db;
use crate::error::NetError;
use crate::ipam;
use crate::ports::{PortMapping, Proto};

/// Writes lease, attachment and port rows in one transaction.
pub(super) fn record(
    conn: &mut Connection,
    plan: &Plan<'_>,
    netns_id: (u64, u64),
) -> Result<Link, NetError> {
    let tx = hull_db::write_tx(conn)?;
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

/// Deletes the attachment's lease, port and attachment rows in one transaction, and the
/// container's line from the hosts files of the others on its network.
pub(super) fn forget(conn: &mut Connection, link: &Link) -> Result<(), NetError> {
    let tx = hull_db::write_tx(conn)?;
    ipam::release(&tx, &link.network, &link.container_id, &link.ifname)?;
    tx.execute(
        "DELETE FROM net_ports WHERE container_id = ?1 AND ifname = ?2",
        params![link.container_id, link.ifname],
    )?;
    tx.execute(
        "DELETE FROM net_attachments WHERE container_id = ?1 AND ifname = ?2",
        params![link.container_id, link.ifname],
    )?;
    // The container's names leave its peers' hosts files under the same lock.
    crate::names::refresh(&tx, &link.network, None)?;
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
