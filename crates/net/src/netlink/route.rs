//! IPv4 routes in the main table.

use std::net::Ipv4Addr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, NetlinkError};

/// One IPv4 route of the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
}

fn base() -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet;
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Static;
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = RouteType::Unicast;
    msg
}

impl Netlink {
    /// Adds a route to `dst/prefix` via `gateway` out of link `oif`.
    pub fn route_add(
        &mut self,
        dst: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
        oif: u32,
    ) -> Result<(), NetlinkError> {
        let mut msg = base();
        msg.header.destination_prefix_length = prefix;
        if prefix > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
        }
        match gateway {
            Some(gw) => msg
                .attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet(gw))),
            None => msg.header.scope = RouteScope::Link,
        }
        msg.attributes.push(RouteAttribute::Oif(oif));
        self.change(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &|| match gateway {
                Some(gw) => format!("add route {dst}/{prefix} via {gw}"),
                None => format!("add route {dst}/{prefix} on interface #{oif}"),
            },
        )
    }

    /// IPv4 routes of the main table.
    pub fn route_list(&mut self) -> Result<Vec<RouteInfo>, NetlinkError> {
        let mut req = RouteMessage::default();
        req.header.address_family = AddressFamily::Inet;
        let msgs = self.dump(RouteNetlinkMessage::GetRoute(req), &|| {
            "list routes".to_string()
        })?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            if r.header.table != RouteHeader::RT_TABLE_MAIN {
                continue;
            }
            let mut info = RouteInfo {
                dst: Ipv4Addr::UNSPECIFIED,
                prefix: r.header.destination_prefix_length,
                gateway: None,
                oif: None,
            };
            for attr in &r.attributes {
                match attr {
                    RouteAttribute::Destination(RouteAddress::Inet(d)) => info.dst = *d,
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => info.gateway = Some(*g),
                    RouteAttribute::Oif(o) => info.oif = Some(*o),
                    _ => {}
                }
            }
            out.push(info);
        }
        Ok(out)
    }
}
