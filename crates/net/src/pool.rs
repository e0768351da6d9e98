//! Subnets for networks made without `--subnet`, as docker's default-address-pools: the
//! first /16 (the default network) or /24 (a user network) of hull's pool that overlaps
//! neither another network nor anything the host already routes. The pool, 10.80.0.0/13
//! (10.80.0.0 to 10.87.255.255), stays clear of podman's defaults (10.88.0.0/16 and its
//! 10.89.0.0/16 and up) and docker's (172.17.0.0/16 and up, 192.168.0.0/16).

use std::net::Ipv4Addr;

use crate::cidr::Ipv4Net;
use crate::netlink::{Netlink, NetlinkError};

/// hull's address pool.
pub fn pool() -> Ipv4Net {
    Ipv4Net::containing(Ipv4Addr::new(10, 80, 0, 0), 13)
}

/// The first `/prefix` of `pool` that overlaps nothing in `taken`.
pub fn pick(pool: Ipv4Net, prefix: u8, taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    if prefix < pool.prefix() || prefix > 30 {
        return None;
    }
    let step = 1u64 << (32 - u32::from(prefix));
    let start = u64::from(u32::from(pool.addr()));
    let end = u64::from(u32::from(pool.broadcast()));
    let mut at = start;
    while at <= end {
        let ip = Ipv4Addr::from(u32::try_from(at).ok()?);
        let candidate = Ipv4Net::containing(ip, prefix);
        if !taken.iter().any(|t| t.overlaps(&candidate)) {
            return Some(candidate);
        }
        at += step;
    }
    None
}

/// The destinations the host's main routing table reaches (the default route aside): a
/// subnet among them would shadow, or be shadowed by, a network already in use.
pub fn host_routes() -> Result<Vec<Ipv4Net>, NetlinkError> {
    let mut nl = Netlink::open()?;
    Ok(nl
        .route_list()?
        .into_iter()
        .filter(|r| r.prefix > 0)
        .map(|r| Ipv4Net::containing(r.dst, r.prefix))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::{pick, pool};
    use crate::cidr::Ipv4Net;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn the_pool_avoids_podman_and_docker() {
        for other in [
            "10.88.0.0/16",
            "10.89.0.0/16",
            "172.17.0.0/16",
            "192.168.0.0/16",
        ] {
            assert!(!pool().overlaps(&net(other)), "{other}");
        }
    }

    #[test]
    fn first_free_block_skipping_networks_and_routes() {
        assert_eq!(pick(pool(), 16, &[]), Some(net("10.80.0.0/16")));
        assert_eq!(pick(pool(), 24, &[]), Some(net("10.80.0.0/24")));
        // A host route inside the first /16 (a VPN's /20, say) skips that /16 ...
        let taken = [net("10.80.16.0/20")];
        assert_eq!(pick(pool(), 16, &taken), Some(net("10.81.0.0/16")));
        // ... but only the /24s it covers.
        assert_eq!(pick(pool(), 24, &taken), Some(net("10.80.0.0/24")));
        let taken = [
            net("10.80.0.0/16"),
            net("10.81.0.0/24"),
            net("10.81.1.7/32"),
        ];
        assert_eq!(pick(pool(), 24, &taken), Some(net("10.81.2.0/24")));
        // A route covering the whole pool (10.0.0.0/8 via a VPN) leaves nothing.
        assert_eq!(pick(pool(), 24, &[net("10.0.0.0/8")]), None);
        assert_eq!(pick(pool(), 12, &[]), None, "larger than the pool");
    }
}
