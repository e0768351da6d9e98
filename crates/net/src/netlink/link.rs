//! Links: bridges, veth pairs, up/down, MTU, bridge ports, lookup and listing.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::{Netlink, NetlinkError};

/// What hull needs to know about an existing link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfoBrief {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    pub up: bool,
    /// Index of the bridge this link is a port of.
    pub master: Option<u32>,
    pub mac: Vec<u8>,
    pub kind: Option<String>,
}

fn brief(msg: &LinkMessage) -> LinkInfoBrief {
    let mut b = LinkInfoBrief {
        index: msg.header.index,
        name: String::new(),
        mtu: 0,
        up: msg.header.flags.contains(LinkFlags::Up),
        master: None,
        mac: Vec::new(),
        kind: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => b.name.clone_from(n),
            LinkAttribute::Mtu(m) => b.mtu = *m,
            LinkAttribute::Controller(m) => b.master = Some(*m),
            LinkAttribute::Address(a) => b.mac.clone_from(a),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(k) = info {
                        b.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    b
}

fn named(name: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg
}

impl Netlink {
    /// Looks a link up by name; `None` when there is no such link.
    pub fn link_get(&mut self, name: &str) -> Result<Option<LinkInfoBrief>, NetlinkError> {
        let op = || format!("look up interface {name}");
        match self.exchange(
            RouteNetlinkMessage::GetLink(named(name)),
            netlink_packet_core::NLM_F_REQUEST | netlink_packet_core::NLM_F_ACK,
            &op,
        ) {
            Ok(msgs) => Ok(msgs.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(brief(l)),
                _ => None,
            })),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Like [`Netlink::link_get`], but a missing link is an error.
    pub fn link_require(&mut self, name: &str) -> Result<LinkInfoBrief, NetlinkError> {
        self.link_get(name)?
            .ok_or_else(|| NetlinkError::NoSuchLink(name.to_string()))
    }

    /// Every link of this namespace.
    pub fn link_list(&mut self) -> Result<Vec<LinkInfoBrief>, NetlinkError> {
        let msgs = self.dump(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            &|| "list interfaces".to_string(),
        )?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(brief(l)),
                _ => None,
            })
            .collect())
    }

    /// Creates a bridge; EEXIST is reported as such so callers can race safely.
    pub fn bridge_create(&mut self, name: &str, mtu: Option<u32>) -> Result<(), NetlinkError> {
        let mut msg = named(name);
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.change(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &|| format!("create bridge {name}"),
        )
    }

    /// Creates a veth pair whose host end `host` is a port of `master` and whose peer is
    /// created directly inside the namespace `peer_ns` under the name `peer`, so the peer
    /// never appears (or collides) in the host namespace.
    pub fn veth_create(
        &mut self,
        host: &str,
        peer: &str,
        peer_ns: BorrowedFd<'_>,
        mtu: u32,
        master: Option<u32>,
    ) -> Result<(), NetlinkError> {
        let mut peer_msg = named(peer);
        peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsFd(peer_ns.as_raw_fd()));
        let mut msg = named(host);
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        if let Some(m) = master {
            msg.attributes.push(LinkAttribute::Controller(m));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.change(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &|| format!("create veth pair {host}/{peer}"),
        )
    }

    /// Brings a link up.
    pub fn link_up(&mut self, index: u32) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.change(RouteNetlinkMessage::NewLink(msg), 0, &|| {
            format!("set interface #{index} up")
        })
    }

    /// Sets the MTU of a link.
    pub fn link_set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.change(RouteNetlinkMessage::NewLink(msg), 0, &|| {
            format!("set MTU {mtu} on interface #{index}")
        })
    }

    /// Turns hairpin mode of a bridge port on or off, so a container can reach itself
    /// through a published port.
    pub fn bridge_port_hairpin(&mut self, index: u32, on: bool) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                on,
            )])),
        ]));
        self.change(RouteNetlinkMessage::NewLink(msg), 0, &|| {
            format!("set hairpin mode on bridge port #{index}")
        })
    }

    /// Deletes a link by name; returns false when it did not exist.
    pub fn link_delete(&mut self, name: &str) -> Result<bool, NetlinkError> {
        match self.change(RouteNetlinkMessage::DelLink(named(name)), 0, &|| {
            format!("delete interface {name}")
        }) {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
