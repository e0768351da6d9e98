//! The netlink layer against the real kernel: bridge, veth into a netns, addresses, routes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::net::Ipv4Addr;

use common::{can_run, tag, LinkGuard, TempDir, TestNetns};
use hull_net::netlink::Netlink;

#[test]
fn bridge_veth_addr_route_in_netns() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new();
    let ns = TestNetns::new(dir.path());
    let t = tag();
    let br = format!("hulltb{t}");
    let veth = format!("hulltv{t}");
    let _guard = LinkGuard(vec![br.clone(), veth.clone()]);
    let mut nl = Netlink::open().unwrap();
    nl.bridge_create(&br, Some(1400)).unwrap();
    let bridge = nl.link_require(&br).unwrap();
    assert_eq!(bridge.mtu, 1400);
    nl.link_up(bridge.index).unwrap();
    nl.addr_add(bridge.index, Ipv4Addr::new(10, 231, 0, 1), 24)
        .unwrap();
    assert!(nl.bridge_create(&br, None).unwrap_err().errno() == Some(libc::EEXIST));

    let nsfile = ns.file();
    use std::os::fd::AsFd;
    nl.veth_create(&veth, "eth0", nsfile.as_fd(), 1400, Some(bridge.index))
        .unwrap();
    let host_end = nl.link_require(&veth).unwrap();
    assert_eq!(host_end.master, Some(bridge.index));
    nl.bridge_port_hairpin(host_end.index, true).unwrap();
    nl.link_up(host_end.index).unwrap();

    let (addrs, routes, mtu) = ns.netlink(|nl| {
        let lo = nl.link_require("lo").unwrap();
        nl.link_up(lo.index).unwrap();
        let eth0 = nl.link_require("eth0").unwrap();
        nl.link_up(eth0.index).unwrap();
        nl.addr_add(eth0.index, Ipv4Addr::new(10, 231, 0, 2), 24)
            .unwrap();
        nl.route_add(
            Ipv4Addr::UNSPECIFIED,
            0,
            Some(Ipv4Addr::new(10, 231, 0, 1)),
            eth0.index,
        )
        .unwrap();
        (
            nl.addr_list(eth0.index).unwrap(),
            nl.route_list().unwrap(),
            eth0.mtu,
        )
    });
    assert_eq!(mtu, 1400);
    assert_eq!(addrs.len(), 1);
    assert_eq!(addrs[0].ip, Ipv4Addr::new(10, 231, 0, 2));
    assert!(routes
        .iter()
        .any(|r| r.prefix == 0 && r.gateway == Some(Ipv4Addr::new(10, 231, 0, 1))));

    assert!(nl.link_delete(&veth).unwrap());
    assert!(!nl.link_delete(&veth).unwrap());
    assert!(nl.link_delete(&br).unwrap());
}
