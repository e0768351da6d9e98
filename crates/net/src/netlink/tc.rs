//! Traffic control: an ingress qdisc on a link, and a u32 filter on it that matches every
//! frame and redirects it to another link's egress (`tc filter add dev A parent ffff: protocol
//! all u32 match u32 0 0 action mirred egress redirect dev B`). u32, not matchall: kernels
//! built without cls_matchall (this kind of host's) have u32.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionGeneric, TcActionMirrorOption, TcActionOption,
    TcActionType, TcAttribute, TcFilterU32Option, TcHandle, TcMessage, TcMirror,
    TcMirrorActionType, TcOption, TcU32Key, TcU32Selector, TcU32SelectorFlags,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::{Netlink, NetlinkError};

/// The ingress qdisc's handle, `ffff:`.
const INGRESS: TcHandle = TcHandle {
    major: 0xffff,
    minor: 0,
};
/// ETH_P_ALL: the filter sees every protocol.
const ETH_P_ALL: u16 = 0x0003;
/// The filter's priority (`pref`): the only one on the qdisc.
const PRIORITY: u16 = 1;

fn ifindex(index: u32) -> i32 {
    i32::try_from(index).unwrap_or(i32::MAX)
}

/// The filter's request, apart so its bytes can be checked without a kernel.
pub(crate) fn redirect_message(from: u32, to: u32) -> TcMessage {
    let mut msg = TcMessage::with_index(ifindex(from));
    msg.header.parent = INGRESS;
    // tcm_info: the priority in the upper half, the protocol (network order) in the lower.
    msg.header.info = (u32::from(PRIORITY) << 16) | u32::from(ETH_P_ALL.to_be());
    let mut generic = TcActionGeneric::default();
    generic.action = TcActionType::Stolen;
    let mut mirror = TcMirror::default();
    mirror.generic = generic;
    mirror.eaction = TcMirrorActionType::EgressRedir;
    mirror.ifindex = to;
    let mut action = TcAction::default();
    action.attributes = vec![
        TcActionAttribute::Kind("mirred".into()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
            mirror,
        ))]),
    ];
    // One key of mask 0 and value 0: every frame matches.
    let mut every_frame = TcU32Selector::default();
    every_frame.flags = TcU32SelectorFlags::Terminal;
    every_frame.nkeys = 1;
    every_frame.keys = vec![TcU32Key::default()];
    msg.attributes.push(TcAttribute::Kind("u32".into()));
    msg.attributes.push(TcAttribute::Options(vec![
        TcOption::U32(TcFilterU32Option::Selector(every_frame)),
        TcOption::U32(TcFilterU32Option::Action(vec![action])),
    ]));
    msg
}

impl Netlink {
    /// Adds the ingress qdisc to link `index` (`tc qdisc add dev X ingress`).
    pub fn qdisc_add_ingress(&mut self, index: u32) -> Result<(), NetlinkError> {
        let mut msg = TcMessage::with_index(ifindex(index));
        msg.header.parent = TcHandle::INGRESS;
        msg.header.handle = INGRESS;
        msg.attributes.push(TcAttribute::Kind("ingress".into()));
        self.change(
            RouteNetlinkMessage::NewQueueDiscipline(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &|| format!("add an ingress qdisc to interface #{index}"),
        )
    }

    /// Removes link `index`'s ingress qdisc and its filters (`tc qdisc del dev X ingress`);
    /// false when it had none.
    pub fn qdisc_del_ingress(&mut self, index: u32) -> Result<bool, NetlinkError> {
        let mut msg = TcMessage::with_index(ifindex(index));
        msg.header.parent = TcHandle::INGRESS;
        msg.header.handle = INGRESS;
        match self.change(RouteNetlinkMessage::DelQueueDiscipline(msg), 0, &|| {
            format!("delete the ingress qdisc of interface #{index}")
        }) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.errno(), Some(libc::ENOENT | libc::EINVAL | libc::ENODEV)) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Redirects every frame arriving on link `from` to the egress of link `to` (needs the
    /// ingress qdisc on `from`).
    pub fn redirect_ingress(&mut self, from: u32, to: u32) -> Result<(), NetlinkError> {
        self.change(
            RouteNetlinkMessage::NewTrafficFilter(redirect_message(from, to)),
            NLM_F_CREATE | NLM_F_EXCL,
            &|| format!("redirect what arrives on interface #{from} to interface #{to}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{Emitable, Parseable};

    use super::*;

    #[test]
    fn the_filter_matches_every_frame_of_every_protocol() {
        let msg = redirect_message(7, 9);
        assert_eq!(msg.header.index, 7);
        assert_eq!(
            (msg.header.parent.major, msg.header.parent.minor),
            (0xffff, 0)
        );
        // pref 1, protocol ETH_P_ALL in network byte order, as `tc` sends it.
        assert_eq!(msg.header.info, (1 << 16) | u32::from(0x0003u16.to_be()));
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        assert_eq!(TcMessage::parse(buf.as_slice()).unwrap(), msg);
        // struct tc_mirred ends with eaction (TCA_EGRESS_REDIR, 1) and the target's index.
        let tail = [1i32.to_ne_bytes(), 9u32.to_ne_bytes()].concat();
        assert!(buf.windows(8).any(|w| w == tail.as_slice()), "{buf:02x?}");
    }
}
