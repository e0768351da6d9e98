//! IP address management: leases per network in SQLite. An allocation reads the taken
//! addresses and inserts its own inside one IMMEDIATE transaction, so concurrent hull
//! processes serialize on the database's write lock and never hand out one address twice.

use std::net::Ipv4Addr;

use rusqlite::{params, Connection, OptionalExtension};

use crate::db::DbError;
use crate::network::{self, Network, NetworkError};

/// Errors of address allocation.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error(
        "address {ip} is outside the usable range {start}-{end} of network {network} ({subnet})"
    )]
    Outside {
        ip: Ipv4Addr,
        network: String,
        subnet: String,
        start: Ipv4Addr,
        end: Ipv4Addr,
    },
    #[error("address {ip} is the gateway of network {network}")]
    IsGateway { ip: Ipv4Addr, network: String },
    #[error("address {ip} on network {network} is already in use by container {container}")]
    Taken {
        ip: Ipv4Addr,
        network: String,
        container: String,
    },
    #[error("network {0} has no free address left")]
    Exhausted(String),
    #[error("container {container} already has a lease on network {network} for {ifname} ({ip})")]
    AlreadyLeased {
        container: String,
        network: String,
        ifname: String,
        ip: Ipv4Addr,
    },
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for IpamError {
    fn from(e: rusqlite::Error) -> Self {
        IpamError::Db(DbError::Sql(e))
    }
}

/// Leases an address on `net` for (container, ifname): `wanted` if given and free, else the
/// lowest free address of the network's range that is not the gateway.
pub fn allocate(
    conn: &mut Connection,
    net: &Network,
    container: &str,
    ifname: &str,
    wanted: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, IpamError> {
    let tx = hull_db::write_tx(conn)?;
    let ip = allocate_in(&tx, net, container, ifname, wanted)?;
    tx.commit()?;
    Ok(ip)
}

/// [`allocate`] inside a write transaction the caller holds (and commits).
pub fn allocate_in(
    tx: &Connection,
    net: &Network,
    container: &str,
    ifname: &str,
    wanted: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, IpamError> {
    if let Some(ip) = lease_of(tx, &net.name, container, ifname)? {
        return Err(IpamError::AlreadyLeased {
            container: container.to_string(),
            network: net.name.clone(),
            ifname: ifname.to_string(),
            ip,
        });
    }
    // The network may have been removed since the caller read it.
    if network::get(tx, &net.name)?.is_none() {
        return Err(NetworkError::NotFound(net.name.clone()).into());
    }
    let ip = match wanted {
        Some(ip) => check_static(tx, net, ip)?,
        None => lowest_free(tx, net)?,
    };
    tx.execute(
        "INSERT INTO net_leases (network, ip, container_id, ifname) VALUES (?1, ?2, ?3, ?4)",
        params![net.name, u32::from(ip), container, ifname],
    )?;
    Ok(ip)
}

fn check_static(conn: &Connection, net: &Network, ip: Ipv4Addr) -> Result<Ipv4Addr, IpamError> {
    let n = u32::from(ip);
    if !net.subnet.is_host(ip) || n < u32::from(net.range_start) || n > u32::from(net.range_end) {
        return Err(IpamError::Outside {
            ip,
            network: net.name.clone(),
            subnet: net.subnet.to_string(),
            start: net.range_start,
            end: net.range_end,
        });
    }
    if ip == net.gateway {
        return Err(IpamError::IsGateway {
            ip,
            network: net.name.clone(),
        });
    }
    let holder: Option<String> = conn
        .query_row(
            "SELECT container_id FROM net_leases WHERE network = ?1 AND ip = ?2",
            params![net.name, n],
            |r| r.get(0),
        )
        .optional()?;
    match holder {
        Some(container) => Err(IpamError::Taken {
            ip,
            network: net.name.clone(),
            container,
        }),
        None => Ok(ip),
    }
}

fn lowest_free(conn: &Connection, net: &Network) -> Result<Ipv4Addr, IpamError> {
    let mut stmt = conn.prepare_cached(
        "SELECT ip FROM net_leases WHERE network = ?1 AND ip BETWEEN ?2 AND ?3 ORDER BY ip",
    )?;
    let start = u32::from(net.range_start);
    let end = u32::from(net.range_end);
    let gw = u32::from(net.gateway);
    let taken = stmt.query_map(params![net.name, start, end], |r| r.get::<_, u32>(0))?;
    let mut candidate = start;
    for ip in taken {
        let ip = ip?;
        if candidate == gw {
            candidate += 1;
        }
        if ip > candidate {
            break;
        }
        if ip == candidate {
            candidate += 1;
        }
    }
    if candidate == gw {
        candidate += 1;
    }
    if candidate > end {
        return Err(IpamError::Exhausted(net.name.clone()));
    }
    Ok(Ipv4Addr::from(candidate))
}

/// The address leased to (container, ifname) on a network, if any.
pub fn lease_of(
    conn: &Connection,
    network: &str,
    container: &str,
    ifname: &str,
) -> Result<Option<Ipv4Addr>, IpamError> {
    let ip: Option<u32> = conn
        .query_row(
            "SELECT ip FROM net_leases WHERE network = ?1 AND container_id = ?2 AND ifname = ?3",
            params![network, container, ifname],
            |r| r.get(0),
        )
        .optional()?;
    Ok(ip.map(Ipv4Addr::from))
}

/// Frees the lease of (container, ifname) on a network; freeing nothing is not an error.
pub fn release(
    conn: &Connection,
    network: &str,
    container: &str,
    ifname: &str,
) -> Result<bool, IpamError> {
    let n = conn.execute(
        "DELETE FROM net_leases WHERE network = ?1 AND container_id = ?2 AND ifname = ?3",
        params![network, container, ifname],
    )?;
    Ok(n > 0)
}

/// Every lease as (network, ip, container, ifname).
pub fn list(conn: &Connection) -> Result<Vec<(String, Ipv4Addr, String, String)>, IpamError> {
    let mut stmt = conn.prepare("SELECT network, ip, container_id, ifname FROM net_leases")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Ipv4Addr::from(r.get::<_, u32>(1)?),
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{create, NetworkSpec};

    fn setup(gateway: Option<Ipv4Addr>) -> (std::path::PathBuf, Connection, Network) {
        let dir = std::env::temp_dir().join(format!(
            "hull-ipam-{}-{}",
            std::process::id(),
            gateway.map_or(0, u32::from)
        ));
        let mut conn = hull_db::open(&dir).unwrap();
        let mut spec = NetworkSpec::new("n", "10.0.0.0/29");
        spec.gateway = gateway;
        let net = create(&mut conn, &spec).unwrap();
        (dir, conn, net)
    }

    #[test]
    fn lowest_free_skips_gateway_and_refills_gaps() {
        let (dir, mut conn, net) = setup(Some(Ipv4Addr::new(10, 0, 0, 4)));
        let got: Vec<u8> = (0..5)
            .map(|i| {
                allocate(&mut conn, &net, &format!("c{i}"), "eth0", None)
                    .unwrap()
                    .octets()[3]
            })
            .collect();
        assert_eq!(got, vec![1, 2, 3, 5, 6]);
        assert!(matches!(
            allocate(&mut conn, &net, "c9", "eth0", None),
            Err(IpamError::Exhausted(_))
        ));
        assert!(release(&conn, "n", "c1", "eth0").unwrap());
        assert!(!release(&conn, "n", "c1", "eth0").unwrap());
        let ip = allocate(&mut conn, &net, "c7", "eth0", None).unwrap();
        assert_eq!(ip, Ipv4Addr::new(10, 0, 0, 2));
        assert!(matches!(
            allocate(&mut conn, &net, "c7", "eth0", None),
            Err(IpamError::AlreadyLeased { .. })
        ));
        assert!(matches!(
            allocate(
                &mut conn,
                &net,
                "c8",
                "eth0",
                Some(Ipv4Addr::new(10, 0, 0, 4))
            ),
            Err(IpamError::IsGateway { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
