//! `hull_net::tap` against the real kernel: a namespace attached to a bridge network as a
//! container's, its eth0 mirrored to a tap, and frames crossing both ways between the tap's
//! queue (what a VMM reads and writes) and a peer namespace on the same bridge: the peer's ARP
//! request comes out of the tap, an ARP reply written into the tap reaches the peer, whose UDP
//! datagram then comes out of the tap too.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use common::{can_run, tag, LinkGuard, TempDir, TestNetns};
use hull_net::engine::{AttachRequest, Net, NetMode, NetOptions};
use hull_net::netns::NetnsRef;
use hull_net::network::NetworkSpec;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// The virtio-net header before each frame on a tap made with IFF_VNET_HDR.
const VNET_HDR: usize = 10;

fn attach(net: &mut Net, id: &str, ns: &TestNetns) -> hull_net::attach::Link {
    let req = AttachRequest {
        container_id: id.to_string(),
        hostname: id.to_string(),
        netns: NetnsRef::Path(ns.path.clone()),
        loopback_up: false,
        mode: NetMode::Bridge {
            network: Some("taptest".into()),
            ip: None,
            ports: vec![],
        },
    };
    net.attach(&req).unwrap().link.unwrap()
}

fn mac(text: &str) -> Vec<u8> {
    text.split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// The next frame out of the tap for which `want` holds (without the virtio-net header).
fn frame(tap: &mut File, want: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 65536];
    loop {
        assert!(Instant::now() < deadline, "no such frame out of the tap");
        let mut fds = [PollFd::new(tap.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(200u16)).unwrap() == 0 {
            continue;
        }
        let n = tap.read(&mut buf).unwrap();
        let f = &buf[VNET_HDR..n];
        if want(f) {
            return f.to_vec();
        }
    }
}

#[test]
fn a_tap_mirrors_a_containers_interface_both_ways() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let opts = NetOptions {
        default_subnet: Some("10.239.0.0/16".to_string()),
        ip_forward: false,
        resolv_conf: dir.path().join("resolv.conf"),
        hosts: "/etc/hosts".into(),
    };
    let mut net = Net::open_with(&dir.path().join("root"), opts).unwrap();
    let br = format!("hullt{}", tag());
    let _g = LinkGuard(vec![br.clone()]);
    let mut spec = NetworkSpec::new("taptest", "10.229.0.0/24");
    spec.bridge = Some(br.clone());
    net.create_network(&spec).unwrap();
    let (vm, peer) = (TestNetns::new(dir.path()), TestNetns::new(dir.path()));
    let (idv, idp) = (format!("tv{}", tag()), format!("tp{}", tag()));
    let lv = attach(&mut net, &idv, &vm);
    let lp = attach(&mut net, &idp, &peer);

    let tap = hull_net::tap::mirror(&vm.file(), "eth0", "tap0").unwrap();
    // What the guest takes over: eth0's configuration as the attach made it.
    assert_eq!(tap.interface.addresses, vec![(lv.ip, 24)]);
    assert_eq!(tap.interface.gateway, Some(Ipv4Addr::new(10, 229, 0, 1)));
    assert_eq!(tap.interface.mac, lv.mac);
    assert_eq!(tap.interface.mtu, 1500);
    let links = vm.netlink(|nl| nl.link_list().unwrap());
    let t = links.iter().find(|l| l.name == "tap0").unwrap();
    assert!(t.up && t.mtu == 1500, "{t:?}");
    let mut q = File::from(tap.fd);

    // The peer's datagram to the VM's address: first its ARP request, out of the tap.
    let sock = peer.run(|| UdpSocket::bind("0.0.0.0:0").unwrap());
    sock.send_to(b"hello tap", (lv.ip, 9999)).unwrap();
    let arp = frame(&mut q, |f| {
        f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[38..42] == lv.ip.octets()
    });
    assert_eq!(arp[6..12], mac(&lp.mac)[..], "from the peer");
    // The VM's answer, written into the tap, reaches the peer through eth0 and the bridge.
    let (vmac, pmac) = (mac(&lv.mac), mac(&lp.mac));
    let mut reply = vec![0u8; VNET_HDR];
    reply.extend(&pmac);
    reply.extend(&vmac);
    reply.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    reply.extend(&vmac);
    reply.extend(lv.ip.octets());
    reply.extend(&pmac);
    reply.extend(lp.ip.octets());
    q.write_all(&reply).unwrap();
    // So the peer sends its datagram, which comes out of the tap too.
    let udp = frame(&mut q, |f| {
        f.len() > 42 && f[12..14] == [0x08, 0x00] && f[30..34] == lv.ip.octets()
    });
    assert_eq!(udp[0..6], vmac[..], "to the VM's MAC");
    assert!(udp.ends_with(b"hello tap"));

    drop(q);
    // The tap goes with its queue.
    let links = vm.netlink(|nl| nl.link_list().unwrap());
    assert!(!links.iter().any(|l| l.name == "tap0"), "{links:?}");
    net.detach(&idv).unwrap();
    net.detach(&idp).unwrap();
    net.remove_network("taptest").unwrap();
}
