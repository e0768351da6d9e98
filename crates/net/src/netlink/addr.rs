//! IPv4 addresses on links.

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, NetlinkError};

/// One address of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrInfo {
    pub index: u32,
    pub ip: Ipv4Addr,
    pub prefix: u8,
}

fn message(index: u32, ip: Ipv4Addr, prefix: u8) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = prefix;
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Address(ip.into()));
    msg.attributes.push(AddressAttribute::Local(ip.into()));
    if prefix < 31 {
        let brd = Ipv4Addr::from(u32::MAX >> u32::from(prefix) | u32::from(ip));
        msg.attributes.push(AddressAttribute::Broadcast(brd));
    }
    msg
}

impl Netlink {
    /// Adds `ip/prefix` to a link; EEXIST is reported as such.
    pub fn addr_add(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<(), NetlinkError> {
        self.change(
            RouteNetlinkMessage::NewAddress(message(index, ip, prefix)),
            NLM_F_CREATE | NLM_F_EXCL,
            &|| format!("add address {ip}/{prefix} to interface #{index}"),
        )
    }

    /// Removes `ip/prefix` from a link.
    pub fn addr_del(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<(), NetlinkError> {
        self.change(
            RouteNetlinkMessage::DelAddress(message(index, ip, prefix)),
            0,
            &|| format!("remove address {ip}/{prefix} from interface #{index}"),
        )
    }

    /// IPv4 addresses of one link.
    pub fn addr_list(&mut self, index: u32) -> Result<Vec<AddrInfo>, NetlinkError> {
        let mut req = AddressMessage::default();
        req.header.family = AddressFamily::Inet;
        let msgs = self.dump(RouteNetlinkMessage::GetAddress(req), &|| {
            "list addresses".to_string()
        })?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            if a.header.index != index {
                continue;
            }
            let ip = a.attributes.iter().find_map(|attr| match attr {
                AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            });
            if let Some(ip) = ip {
                out.push(AddrInfo {
                    index,
                    ip,
                    prefix: a.header.prefix_len,
                });
            }
        }
        Ok(out)
    }
}
