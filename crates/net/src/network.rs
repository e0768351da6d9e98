//! Networks as hull keeps them: name, bridge, subnet, gateway, address range, internal flag,
//! MTU; creating one checks the input and refuses overlaps, listing, and looking one up.

use std::net::Ipv4Addr;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::cidr::{CidrError, Ipv4Net};
use crate::db::{self, DbError};

/// Name of the default network, and its bridge.
pub const DEFAULT_NETWORK: &str = "hull";
pub const DEFAULT_BRIDGE: &str = "hull0";
pub const DEFAULT_MTU: u32 = 1500;

/// Errors about network definitions.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network name {0:?} is invalid: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit")]
    BadName(String),
    #[error("bridge name {0:?} is invalid: use 1-15 characters, no '/', ':' or whitespace")]
    BadBridge(String),
    #[error(transparent)]
    Subnet(#[from] CidrError),
    #[error("gateway {gateway} is not a usable address of subnet {subnet}")]
    GatewayOutside { gateway: Ipv4Addr, subnet: Ipv4Net },
    #[error("address range {start}-{end} is not inside subnet {subnet}")]
    RangeOutside {
        start: Ipv4Addr,
        end: Ipv4Addr,
        subnet: Ipv4Net,
    },
    #[error("mtu {0} is out of range (68-65535)")]
    BadMtu(u32),
    #[error("network {0} already exists")]
    Exists(String),
    #[error("subnet {subnet} overlaps subnet {other} of network {network}")]
    Overlap {
        subnet: Ipv4Net,
        other: Ipv4Net,
        network: String,
    },
    #[error("subnet {subnet} overlaps {other} on host interface {interface}")]
    HostOverlap {
        subnet: Ipv4Net,
        other: Ipv4Net,
        interface: String,
    },
    #[error("bridge {bridge} is already used by network {network}")]
    BridgeTaken { bridge: String, network: String },
    #[error("no free /{0} left in hull's address pool 10.80.0.0/13 (taken by networks or host routes); give one with --subnet")]
    NoFreeSubnet(u8),
    #[error("{0} is the default network and cannot be removed")]
    Default(String),
    #[error("no network named {0}")]
    NotFound(String),
    #[error("network {network} is in use by container {container}")]
    InUse { network: String, container: String },
    #[error(
        "network {name} exists with different settings ({what}); remove it or use another name"
    )]
    Mismatch { name: String, what: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for NetworkError {
    fn from(e: rusqlite::Error) -> Self {
        NetworkError::Db(DbError::Sql(e))
    }
}

/// A network definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub bridge: String,
    #[serde(serialize_with = "ser_display")]
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// First and last address handed to containers.
    pub range_start: Ipv4Addr,
    pub range_end: Ipv4Addr,
    /// No egress masquerade and no default route in containers.
    pub internal: bool,
    /// Egress masquerade (false for internal networks, and for CNI configs with ipMasq false).
    pub masquerade: bool,
    pub mtu: u32,
    pub created: i64,
}

fn ser_display<S: serde::Serializer>(v: &Ipv4Net, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// What `hull network create` (or a CNI config) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    pub name: String,
    pub subnet: String,
    pub gateway: Option<Ipv4Addr>,
    pub range: Option<(Ipv4Addr, Ipv4Addr)>,
    pub bridge: Option<String>,
    pub internal: bool,
    pub masquerade: bool,
    pub mtu: Option<u32>,
}

impl NetworkSpec {
    /// A spec with podman's defaults for everything but name and subnet.
    pub fn new(name: &str, subnet: &str) -> Self {
        NetworkSpec {
            name: name.to_string(),
            subnet: subnet.to_string(),
            gateway: None,
            range: None,
            bridge: None,
            internal: false,
            masquerade: true,
            mtu: None,
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Whether a name is a valid Linux interface name.
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Network> {
    let subnet: String = r.get("subnet")?;
    let gateway: String = r.get("gateway")?;
    let start: u32 = r.get("range_start")?;
    let end: u32 = r.get("range_end")?;
    let bad = |c: &str| rusqlite::Error::InvalidColumnName(format!("corrupt {c}"));
    Ok(Network {
        name: r.get("name")?,
        id: r.get("id")?,
        bridge: r.get("bridge")?,
        subnet: subnet.parse().map_err(|_| bad("subnet"))?,
        gateway: gateway.parse().map_err(|_| bad("gateway"))?,
        range_start: Ipv4Addr::from(start),
        range_end: Ipv4Addr::from(end),
        internal: r.get("internal")?,
        masquerade: r.get("masquerade")?,
        mtu: r.get("mtu")?,
        created: r.get("created")?,
    })
}

/// Checks a spec and turns it into a network (not yet stored).
fn build(spec: &NetworkSpec) -> Result<Network, NetworkError> {
    if !valid_name(&spec.name) {
        return Err(NetworkError::BadName(spec.name.clone()));
    }
    let id = random_id();
    let bridge = spec.bridge.clone().unwrap_or_else(|| bridge_name(&id));
    if !valid_ifname(&bridge) {
        return Err(NetworkError::BadBridge(bridge));
    }
    let subnet: Ipv4Net = spec.subnet.parse()?;
    subnet.require_usable()?;
    let (lo, hi) = subnet.host_range();
    let gateway = spec.gateway.unwrap_or(Ipv4Addr::from(lo));
    if !subnet.is_host(gateway) {
        return Err(NetworkError::GatewayOutside { gateway, subnet });
    }
    let (start, end) = spec
        .range
        .unwrap_or((Ipv4Addr::from(lo), Ipv4Addr::from(hi)));
    if !subnet.is_host(start) || !subnet.is_host(end) || u32::from(start) > u32::from(end) {
        return Err(NetworkError::RangeOutside { start, end, subnet });
    }
    let mtu = spec.mtu.unwrap_or(DEFAULT_MTU);
    if !(68..=65535).contains(&mtu) {
        return Err(NetworkError::BadMtu(mtu));
    }
    Ok(Network {
        name: spec.name.clone(),
        id,
        bridge,
        subnet,
        gateway,
        range_start: start,
        range_end: end,
        internal: spec.internal,
        masquerade: spec.masquerade && !spec.internal,
        mtu,
        created: db::now(),
    })
}

/// A 64-hex-digit id, as podman gives networks.
pub fn random_id() -> String {
    let mut bytes = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        let t = db::now().to_le_bytes();
        bytes[..8].copy_from_slice(&t);
        bytes[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Stores a new network after checking it against every existing one, atomically.
pub fn create(conn: &mut Connection, spec: &NetworkSpec) -> Result<Network, NetworkError> {
    let tx = hull_db::write_tx(conn)?;
    let existing = list_in(&tx)?;
    let net = build(spec)?;
    check_against(&net, &existing)?;
    insert(&tx, &net)?;
    tx.commit()?;
    Ok(net)
}

/// Returns the network named in `spec`, creating it if missing; an existing one must have
/// the same subnet, bridge and gateway (used by hull-cni, where every call carries the config).
pub fn ensure(conn: &mut Connection, spec: &NetworkSpec) -> Result<Network, NetworkError> {
    if let Some(n) = get(conn, &spec.name)? {
        return same_settings(&n, spec).map(|()| n);
    }
    match create(conn, spec) {
        Err(NetworkError::Exists(_)) => {
            let n = get(conn, &spec.name)?.ok_or(NetworkError::NotFound(spec.name.clone()))?;
            same_settings(&n, spec).map(|()| n)
        }
        other => other,
    }
}

fn same_settings(n: &Network, spec: &NetworkSpec) -> Result<(), NetworkError> {
    let mismatch = |what: String| {
        Err(NetworkError::Mismatch {
            name: n.name.clone(),
            what,
        })
    };
    if n.subnet.to_string() != spec.subnet {
        return mismatch(format!("subnet {} vs {}", n.subnet, spec.subnet));
    }
    if let Some(b) = &spec.bridge {
        if *b != n.bridge {
            return mismatch(format!("bridge {} vs {b}", n.bridge));
        }
    }
    if let Some(g) = spec.gateway {
        if g != n.gateway {
            return mismatch(format!("gateway {} vs {g}", n.gateway));
        }
    }
    Ok(())
}

fn check_against(net: &Network, existing: &[Network]) -> Result<(), NetworkError> {
    for other in existing {
        if other.name == net.name {
            return Err(NetworkError::Exists(net.name.clone()));
        }
        if other.subnet.overlaps(&net.subnet) {
            return Err(NetworkError::Overlap {
                subnet: net.subnet,
                other: other.subnet,
                network: other.name.clone(),
            });
        }
        if other.bridge == net.bridge {
            return Err(NetworkError::BridgeTaken {
                bridge: net.bridge.clone(),
                network: other.name.clone(),
            });
        }
    }
    Ok(())
}

/// The bridge of a network that does not name one: from its id, as docker's `br-<id>`, so
/// that networks of different roots (which share the host's interface names but not each
/// other's databases) never take the same bridge.
fn bridge_name(id: &str) -> String {
    format!("hull-{}", id.get(..10).unwrap_or(id))
}

fn insert(conn: &Connection, n: &Network) -> Result<(), rusqlite::Error> {
    conn.execute(
        "INSERT INTO net_networks (name, id, bridge, subnet, gateway, range_start, range_end,
             internal, masquerade, mtu, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            n.name,
            n.id,
            n.bridge,
            n.subnet.to_string(),
            n.gateway.to_string(),
            u32::from(n.range_start),
            u32::from(n.range_end),
            n.internal,
            n.masquerade,
            n.mtu,
            n.created
        ],
    )?;
    Ok(())
}

/// Every network, by name.
pub fn list(conn: &Connection) -> Result<Vec<Network>, NetworkError> {
    Ok(list_in(conn)?)
}

fn list_in(conn: &Connection) -> Result<Vec<Network>, rusqlite::Error> {
    let mut stmt = conn.prepare("SELECT * FROM net_networks ORDER BY name")?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// One network by name.
pub fn get(conn: &Connection, name: &str) -> Result<Option<Network>, NetworkError> {
    Ok(conn
        .query_row(
            "SELECT * FROM net_networks WHERE name = ?1",
            [name],
            from_row,
        )
        .optional()?)
}

/// Removes a network's row, refusing while a container is attached. Kernel objects (the
/// bridge, its nftables entries) are the caller's to remove first.
pub fn delete(conn: &mut Connection, name: &str) -> Result<Network, NetworkError> {
    let tx = hull_db::write_tx(conn)?;
    let net = get(&tx, name)?.ok_or_else(|| NetworkError::NotFound(name.to_string()))?;
    let user: Option<String> = tx
        .query_row(
            "SELECT container_id FROM net_leases WHERE network = ?1
             UNION SELECT container_id FROM net_attachments WHERE network = ?1 LIMIT 1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(container) = user {
        return Err(NetworkError::InUse {
            network: name.to_string(),
            container,
        });
    }
    tx.execute("DELETE FROM net_networks WHERE name = ?1", [name])?;
    tx.commit()?;
    Ok(net)
}

#[cfg(test)]
mod bridge_name_tests {
    use super::*;

    /// A network that names no bridge gets one from its id: two networks (of two roots, which
    /// do not see each other's) never share one; one that names its bridge keeps it.
    #[test]
    fn a_bridge_is_named_after_its_network_id() {
        let a = build(&NetworkSpec::new("a", "10.1.0.0/24")).unwrap();
        let b = build(&NetworkSpec::new("a", "10.1.0.0/24")).unwrap();
        assert_eq!(a.bridge, format!("hull-{}", &a.id[..10]));
        assert!(valid_ifname(&a.bridge));
        assert_ne!(a.bridge, b.bridge);
        let mut named = NetworkSpec::new("c", "10.1.1.0/24");
        named.bridge = Some("br-c".into());
        assert_eq!(build(&named).unwrap().bridge, "br-c");
    }
}
