//! Attaching one interface of a container to a bridge network, and detaching it: the lease,
//! attachment and port rows are written first (one transaction), then the kernel objects are
//! made; a failure undoes both. Rows always cover every kernel object, so cleanup after a
//! crash can find everything from the database.

mod kernel;
mod store;

use std::net::Ipv4Addr;

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::cidr::Ipv4Net;
use crate::error::NetError;
use crate::netns::{self, NetnsRef};
use crate::network::{self, Network};
use crate::ports::{self, PortMapping};

pub(crate) use kernel::mac_string;
pub use store::list;

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
    Ok(hull_sys::id::validate_id(id)?)
}

/// `hull` + 5 characters of the id + 6 hex digits of a hash of (id, ifname, network): short
/// enough for IFNAMSIZ, readable, and distinct for a container's several interfaces. 24 bits
/// of hash keep ids that share their first characters apart (50 such ids collide with odds of
/// about 1 in 13,000; with 16 bits it was 1 in 50).
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
        .take(5)
        .collect();
    format!("hull{short}{:06x}", h & 0x00ff_ffff)
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
    let mut link = store::record(conn, plan, netns_id)?;
    match kernel::make(plan, &ns, &mut link) {
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

/// Removes what an attachment made and its rows; parts already gone are skipped.
pub(crate) fn undo(conn: &mut Connection, link: &Link) -> Result<(), NetError> {
    // The kernel side ends in RCU waits (see kernel::remove) during which this process
    // would sit idle: fold the WAL into the database meanwhile, so that the next hull
    // process, which rebuilds the WAL index from every frame since the last checkpoint
    // when it opens the file, finds a short WAL.
    let lent = &mut *conn;
    kernel::remove(link, move || hull_db::checkpoint(lent))?;
    store::forget(conn, link)
}

/// Detaches one interface of a container; false when it was not attached.
pub fn detach(conn: &mut Connection, container: &str, ifname: &str) -> Result<bool, NetError> {
    let links = list(conn, Some(container))?;
    match links.iter().find(|l| l.ifname == ifname) {
        Some(link) => undo(conn, link).map(|()| true),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::host_veth_name;

    #[test]
    fn veth_names_fit_ifnamsiz_and_keep_ids_with_one_prefix_apart() {
        // As the CNI test's parallel ADDs name them: one prefix, a counter.
        let names: std::collections::HashSet<String> = (0..200)
            .map(|i| host_veth_name(&format!("parallel-{i}"), "eth0", "hull"))
            .collect();
        assert_eq!(names.len(), 200, "two ids share a veth name");
        assert!(names.iter().all(|n| n.len() <= 15 && n.starts_with("hull")));
        assert_ne!(
            host_veth_name("abc", "eth0", "hull"),
            host_veth_name("abc", "eth1", "hull"),
            "a container's second interface"
        );
    }
}
