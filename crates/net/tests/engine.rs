//! The engine API against the real kernel: attach two namespaces to one network and talk
//! over TCP, reach the gateway, published ports from the host's 127.0.0.1 (TCP and UDP),
//! internal networks, modes, bad input, and that detach and gc leave nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::{can_run, host_links_with_prefix, tag, LinkGuard, TempDir, TestNetns};
use hull_net::engine::{AttachRequest, Net, NetMode, NetOptions};
use hull_net::netns::NetnsRef;
use hull_net::network::NetworkSpec;
use hull_net::nft::Firewall;
use hull_net::ports::PortMapping;

fn open(dir: &Path) -> Net {
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.53\nsearch test\n").unwrap();
    let opts = NetOptions {
        default_subnet: Some("10.239.0.0/16".to_string()),
        ip_forward: false,
        resolv_conf: resolv,
        hosts: "/etc/hosts".into(),
    };
    Net::open_with(&dir.join("root"), opts).unwrap()
}

fn network(net: &mut Net, name: &str, subnet: &str, bridge: &str, internal: bool) {
    let mut spec = NetworkSpec::new(name, subnet);
    spec.bridge = Some(bridge.to_string());
    spec.internal = internal;
    net.create_network(&spec).unwrap();
}

fn bridge_req(id: &str, ns: &TestNetns, network: &str, ports: Vec<PortMapping>) -> AttachRequest {
    AttachRequest {
        container_id: id.to_string(),
        hostname: id.to_string(),
        netns: NetnsRef::Path(ns.path.clone()),
        loopback_up: false,
        mode: NetMode::Bridge {
            network: Some(network.to_string()),
            ip: None,
            ports,
        },
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP echo server for one connection, listening inside `ns`.
fn tcp_echo_in(ns: &TestNetns, port: u16) -> std::thread::JoinHandle<()> {
    let listener = ns.run(|| TcpListener::bind(("0.0.0.0", port)).unwrap());
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        s.write_all(&buf[..n]).unwrap();
    })
}

fn tcp_roundtrip(stream: TcpStream) -> String {
    let mut s = stream;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"hello hull").unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn two_containers_talk_and_reach_gateway_then_nothing_left() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let mut net = open(dir.path());
    let br = format!("hulle{}", tag());
    let _g = LinkGuard(vec![br.clone()]);
    network(&mut net, "talk", "10.231.0.0/24", &br, false);
    let (a, b) = (TestNetns::new(dir.path()), TestNetns::new(dir.path()));
    let (ida, idb) = (format!("ta{}", tag()), format!("tb{}", tag()));
    let att_a = net.attach(&bridge_req(&ida, &a, "talk", vec![])).unwrap();
    let att_b = net.attach(&bridge_req(&idb, &b, "talk", vec![])).unwrap();
    let (la, lb) = (att_a.link.unwrap(), att_b.link.unwrap());
    assert_ne!(la.ip, lb.ip);
    assert_eq!(la.gateway, Some(Ipv4Addr::new(10, 231, 0, 1)));
    assert!(att_a.etc.hosts.contains(&format!("{}\t{ida}", la.ip)));
    assert!(!att_a.etc.resolv_conf.contains("127.0.0.53"));
    assert!(att_a.etc.resolv_conf.contains("search test"));

    // a -> b over the bridge.
    let server = tcp_echo_in(&b, 7000);
    let stream = a.run(|| TcpStream::connect((lb.ip, 7000)).unwrap());
    assert_eq!(tcp_roundtrip(stream), "hello hull");
    server.join().unwrap();

    // a -> gateway (a listener on the host, bound to the bridge's address).
    let gw = TcpListener::bind((Ipv4Addr::new(10, 231, 0, 1), 0)).unwrap();
    let gw_port = gw.local_addr().unwrap().port();
    let client = std::thread::spawn({
        let a_file = a.file();
        move || {
            hull_net::netns::run_in(&a_file, || {
                TcpStream::connect((Ipv4Addr::new(10, 231, 0, 1), gw_port)).unwrap()
            })
            .unwrap()
        }
    });
    let (_, peer) = gw.accept().unwrap();
    assert_eq!(peer.ip(), std::net::IpAddr::V4(la.ip));
    drop(client.join().unwrap());

    // Detach: no veth, no lease; detaching twice is fine.
    net.detach(&ida).unwrap();
    net.detach(&idb).unwrap();
    net.detach(&idb).unwrap();
    assert!(net.attachments(None).unwrap().is_empty());
    assert!(!host_links_with_prefix("hull")
        .iter()
        .any(|l| l == &la.host_veth || l == &lb.host_veth));
    net.remove_network("talk").unwrap();
    assert!(host_links_with_prefix(&br).is_empty());
}

#[test]
fn published_ports_on_localhost_tcp_and_udp() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let mut net = open(dir.path());
    let br = format!("hullp{}", tag());
    let _g = LinkGuard(vec![br.clone()]);
    network(&mut net, "pub", "10.232.0.0/24", &br, false);
    let ns = TestNetns::new(dir.path());
    let id = format!("tp{}", tag());
    let (tcp_port, udp_port) = (free_port(), free_port());
    let ports: Vec<PortMapping> = vec![
        format!("127.0.0.1:{tcp_port}:8080").parse().unwrap(),
        format!("{udp_port}:5353/udp").parse().unwrap(),
    ];
    let link = net
        .attach(&bridge_req(&id, &ns, "pub", ports.clone()))
        .unwrap()
        .link
        .unwrap();

    let server = tcp_echo_in(&ns, 8080);
    let stream = TcpStream::connect_timeout(
        &SocketAddrV4::new(Ipv4Addr::LOCALHOST, tcp_port).into(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(tcp_roundtrip(stream), "hello hull");
    server.join().unwrap();

    let udp = ns.run(|| UdpSocket::bind(("0.0.0.0", 5353)).unwrap());
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let (n, from) = udp.recv_from(&mut buf).unwrap();
        udp.send_to(&buf[..n], from).unwrap();
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.send_to(b"dns?", ("127.0.0.1", udp_port)).unwrap();
    let mut buf = [0u8; 64];
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"dns?");
    echo.join().unwrap();

    // A second container cannot take the same host port.
    let ns2 = TestNetns::new(dir.path());
    let err = net
        .attach(&bridge_req(
            &format!("tq{}", tag()),
            &ns2,
            "pub",
            vec![ports[0]],
        ))
        .unwrap_err();
    assert!(
        err.to_string().contains("already published by container"),
        "{err}"
    );
    assert_eq!(net.attachments(None).unwrap().len(), 1);

    let mut fw = Firewall::open().unwrap();
    assert!(fw.publishes(&ports[0]).unwrap());
    net.detach(&id).unwrap();
    assert!(!fw.publishes(&ports[0]).unwrap());
    assert!(!fw.publishes(&ports[1]).unwrap());
    assert!(!host_links_with_prefix(&link.host_veth).iter().any(|_| true));
    net.remove_network("pub").unwrap();
}

#[test]
fn host_port_in_use_is_refused_and_nothing_left() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let mut net = open(dir.path());
    let br = format!("hullu{}", tag());
    let _g = LinkGuard(vec![br.clone()]);
    network(&mut net, "busy", "10.233.0.0/24", &br, false);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let ns = TestNetns::new(dir.path());
    let m: PortMapping = format!("127.0.0.1:{port}:80").parse().unwrap();
    let err = net
        .attach(&bridge_req(&format!("tu{}", tag()), &ns, "busy", vec![m]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("host port 127.0.0.1:{port}/tcp is already in use")
    );
    assert!(net.attachments(None).unwrap().is_empty());
    assert!(hull_net::ipam::list(net.conn()).unwrap().is_empty());
}

#[test]
fn internal_network_has_no_masquerade_and_no_default_route() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let mut net = open(dir.path());
    let (bi, bo) = (format!("hulli{}", tag()), format!("hullo{}", tag()));
    let _g = LinkGuard(vec![bi.clone(), bo.clone()]);
    network(&mut net, "inner", "10.234.0.0/24", &bi, true);
    network(&mut net, "outer", "10.234.1.0/24", &bo, false);
    let (a, b) = (TestNetns::new(dir.path()), TestNetns::new(dir.path()));
    let (ida, idb) = (format!("ti{}", tag()), format!("to{}", tag()));
    net.attach(&bridge_req(&ida, &a, "inner", vec![])).unwrap();
    net.attach(&bridge_req(&idb, &b, "outer", vec![])).unwrap();
    let mut fw = Firewall::open().unwrap();
    assert!(!fw.masquerades("10.234.0.0/24".parse().unwrap()).unwrap());
    assert!(fw.masquerades("10.234.1.0/24".parse().unwrap()).unwrap());
    let routes = a.netlink(|nl| nl.route_list().unwrap());
    assert!(!routes.iter().any(|r| r.prefix == 0));
    let routes = b.netlink(|nl| nl.route_list().unwrap());
    assert!(routes.iter().any(|r| r.prefix == 0));
    net.detach(&ida).unwrap();
    net.detach(&idb).unwrap();
    net.remove_network("inner").unwrap();
    net.remove_network("outer").unwrap();
    assert!(!fw.masquerades("10.234.1.0/24".parse().unwrap()).unwrap());
}

#[test]
fn bad_input_is_refused_cleanly() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let mut net = open(dir.path());
    let br = format!("hullb{}", tag());
    let _g = LinkGuard(vec![br.clone()]);
    network(&mut net, "base", "10.235.0.0/16", &br, false);
    let e = net
        .create_network(&NetworkSpec::new("over", "10.235.8.0/24"))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "subnet 10.235.8.0/24 overlaps subnet 10.235.0.0/16 of network base"
    );
    let e = net
        .create_network(&NetworkSpec::new("tiny", "10.236.0.0/31"))
        .unwrap_err();
    assert!(e.to_string().contains("too small"), "{e}");
    let mut spec = NetworkSpec::new("gw", "10.236.1.0/24");
    spec.gateway = Some(Ipv4Addr::new(10, 236, 2, 1));
    let e = net.create_network(&spec).unwrap_err();
    assert!(
        e.to_string().contains("is not a usable address of subnet"),
        "{e}"
    );
    // A subnet already on one of the host's interfaces is refused.
    let mut nl = hull_net::netlink::Netlink::open().unwrap();
    let host_addr = nl
        .link_list()
        .unwrap()
        .into_iter()
        .filter(|l| l.name != "lo" && !l.name.starts_with("hull"))
        .find_map(|l| nl.addr_list(l.index).unwrap().into_iter().next());
    if let Some(a) = host_addr {
        let subnet = hull_net::cidr::Ipv4Net::containing(a.ip, a.prefix.max(8));
        let e = net
            .create_network(&NetworkSpec::new("hostnet", &subnet.to_string()))
            .unwrap_err();
        assert!(e.to_string().contains("on host interface"), "{e}");
    }
    let e = net.remove_network("hull").unwrap_err();
    assert!(e.to_string().contains("default network"), "{e}");
    assert_eq!(net.networks().unwrap().len(), 1);

    let ns = TestNetns::new(dir.path());
    let mut req = bridge_req("outside", &ns, "base", vec![]);
    req.mode = NetMode::Bridge {
        network: Some("base".into()),
        ip: Some(Ipv4Addr::new(10, 99, 0, 5)),
        ports: vec![],
    };
    let e = net.attach(&req).unwrap_err();
    assert!(
        e.to_string().starts_with("address 10.99.0.5 is outside"),
        "{e}"
    );
    let mut req = bridge_req("badhost", &ns, "base", vec![]);
    req.hostname = "evil\n1.2.3.4 bank".into();
    let e = net.attach(&req).unwrap_err();
    assert!(e.to_string().starts_with("hostname"), "{e}");
    let mut req = bridge_req("nons", &ns, "base", vec![]);
    req.netns = NetnsRef::Path(dir.path().join("no-such-netns"));
    let e = net.attach(&req).unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(net.attachments(None).unwrap().is_empty());
    assert!(hull_net::ipam::list(net.conn()).unwrap().is_empty());

    // A network whose bridge name is taken by a non-bridge interface is refused at attach.
    let veth = format!("hullz{}", tag());
    let _gz = LinkGuard(vec![veth.clone()]);
    {
        use std::os::fd::AsFd;
        let peer = TestNetns::new(dir.path());
        let mut nl = hull_net::netlink::Netlink::open().unwrap();
        nl.veth_create(&veth, "eth9", peer.file().as_fd(), 1500, None)
            .unwrap();
        let mut spec = NetworkSpec::new("notbr", "10.236.12.0/24");
        spec.bridge = Some(veth.clone());
        net.create_network(&spec).unwrap();
        let e = net
            .attach(&bridge_req("nb", &ns, "notbr", vec![]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("interface {veth} exists and is not a bridge")
        );
        assert!(net.attachments(None).unwrap().is_empty());
        net.remove_network("notbr").unwrap();
        assert_eq!(host_links_with_prefix(&veth), vec![veth.clone()]);
    }

    // A static address is honoured, and the same one refused to the next container.
    let mut req = bridge_req("static1", &ns, "base", vec![]);
    req.mode = NetMode::Bridge {
        network: Some("base".into()),
        ip: Some(Ipv4Addr::new(10, 235, 3, 3)),
        ports: vec![],
    };
    let link = net.attach(&req).unwrap().link.unwrap();
    assert_eq!(link.ip, Ipv4Addr::new(10, 235, 3, 3));
    let ns2 = TestNetns::new(dir.path());
    let mut req2 = req.clone();
    req2.container_id = "static2".into();
    req2.netns = NetnsRef::Path(ns2.path.clone());
    let e = net.attach(&req2).unwrap_err();
    assert!(
        e.to_string()
            .contains("already in use by container static1"),
        "{e}"
    );
    net.detach("static1").unwrap();
    net.remove_network("base").unwrap();
}

#[test]
fn gc_removes_attachments_whose_netns_is_gone() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let mut net = open(dir.path());
    let br = format!("hullg{}", tag());
    let _g = LinkGuard(vec![br.clone()]);
    network(&mut net, "gcnet", "10.237.0.0/24", &br, false);
    let ns = TestNetns::new(dir.path());
    let keep = TestNetns::new(dir.path());
    let port = free_port();
    let m: PortMapping = format!("127.0.0.1:{port}:80").parse().unwrap();
    let id = format!("tg{}", tag());
    let link = net
        .attach(&bridge_req(&id, &ns, "gcnet", vec![m]))
        .unwrap()
        .link
        .unwrap();
    net.attach(&bridge_req("kept", &keep, "gcnet", vec![]))
        .unwrap();
    drop(ns); // the "crash": the namespace goes away without detach
    let report = net.gc().unwrap();
    assert_eq!(report.removed, vec![(id, "eth0".to_string())]);
    assert!(!Firewall::open().unwrap().publishes(&m).unwrap());
    assert!(host_links_with_prefix(&link.host_veth).is_empty());
    assert_eq!(net.attachments(None).unwrap().len(), 1);
    net.detach("kept").unwrap();
    net.remove_network("gcnet").unwrap();
}

#[test]
fn an_unnamed_namespace_comes_with_its_loopback_up_and_none_mode_leaves_it_be() {
    if !can_run() {
        return;
    }
    let own = || std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
    let before = own();
    let ns = hull_net::netns::unnamed().unwrap();
    // Made on this thread, which is back in its own namespace, not in the new one.
    assert_eq!(own(), before);
    assert_ne!(ns.metadata().unwrap().ino(), before);
    let lo = |ns: &std::fs::File| {
        hull_net::netns::run_in(ns, || {
            let mut nl = hull_net::netlink::Netlink::open().unwrap();
            (
                nl.link_require("lo").unwrap().up,
                nl.link_list().unwrap().len(),
            )
        })
        .unwrap()
    };
    assert_eq!(lo(&ns), (true, 1));
    // Told so, the attach in none mode does not enter the namespace: a path that names none
    // would fail if it did.
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let mut net = open(dir.path());
    let att = net
        .attach(&AttachRequest {
            container_id: "nonetahead".into(),
            hostname: "box".into(),
            netns: NetnsRef::Path(dir.path().join("no-such-netns")),
            loopback_up: true,
            mode: NetMode::None,
        })
        .unwrap();
    assert!(att.link.is_none());
    assert!(att.etc.hosts.contains("127.0.1.1\tbox"));
    let refused = net.attach(&AttachRequest {
        container_id: "nonetnotahead".into(),
        hostname: "box".into(),
        netns: NetnsRef::Path(dir.path().join("no-such-netns")),
        loopback_up: false,
        mode: NetMode::None,
    });
    assert!(refused.is_err());
}

#[test]
fn none_and_host_modes() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let mut net = open(dir.path());
    let ns = TestNetns::new(dir.path());
    let att = net
        .attach(&AttachRequest {
            container_id: "nonet".into(),
            hostname: "box".into(),
            netns: NetnsRef::Path(ns.path.clone()),
            loopback_up: false,
            mode: NetMode::None,
        })
        .unwrap();
    assert!(att.link.is_none());
    assert!(att.etc.hosts.contains("127.0.1.1\tbox"));
    let lo_up = ns.netlink(|nl| nl.link_require("lo").unwrap().up);
    assert!(lo_up);
    let links = ns.netlink(|nl| nl.link_list().unwrap());
    assert_eq!(links.len(), 1);
    let att = net
        .attach(&AttachRequest {
            container_id: "hostnet".into(),
            hostname: "box".into(),
            netns: NetnsRef::Pid(1),
            loopback_up: false,
            mode: NetMode::Host,
        })
        .unwrap();
    assert_eq!(
        att.etc.hosts,
        std::fs::read_to_string("/etc/hosts").unwrap()
    );
}

#[test]
fn published_port_reached_from_containers_and_hairpin() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let mut net = open(dir.path());
    let br = format!("hullr{}", tag());
    let _g = LinkGuard(vec![br.clone()]);
    network(&mut net, "hair", "10.238.0.0/24", &br, false);
    let (a, b) = (TestNetns::new(dir.path()), TestNetns::new(dir.path()));
    let (ida, idb) = (format!("ha{}", tag()), format!("hb{}", tag()));
    let port = free_port();
    let m: PortMapping = format!("{port}:9000").parse().unwrap();
    net.attach(&bridge_req(&ida, &a, "hair", vec![m])).unwrap();
    net.attach(&bridge_req(&idb, &b, "hair", vec![])).unwrap();
    let gw = Ipv4Addr::new(10, 238, 0, 1);

    // Another container reaches a's published port through the host's address.
    let server = tcp_echo_in(&a, 9000);
    let stream = b.run(|| TcpStream::connect((gw, port)).unwrap());
    assert_eq!(tcp_roundtrip(stream), "hello hull");
    server.join().unwrap();

    // a reaches its own published port (hairpin on its bridge port, then masquerade).
    let server = tcp_echo_in(&a, 9000);
    let stream = a.run(|| TcpStream::connect((gw, port)).unwrap());
    assert_eq!(tcp_roundtrip(stream), "hello hull");
    server.join().unwrap();

    net.detach(&ida).unwrap();
    net.detach(&idb).unwrap();
    net.remove_network("hair").unwrap();
}

#[test]
fn mtu_static_files_and_container_mode() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let mut net = open(dir.path());
    let br = format!("hullm{}", tag());
    let _g = LinkGuard(vec![br.clone()]);
    let mut spec = NetworkSpec::new("mtu", "10.236.4.0/24");
    spec.bridge = Some(br.clone());
    spec.mtu = Some(1400);
    net.create_network(&spec).unwrap();
    let ns = TestNetns::new(dir.path());
    let id = format!("tm{}", tag());
    let att = net.attach(&bridge_req(&id, &ns, "mtu", vec![])).unwrap();
    let link = att.link.unwrap();
    let (mtu, mac) = ns.netlink(|nl| {
        let l = nl.link_require("eth0").unwrap();
        (l.mtu, l.mac)
    });
    assert_eq!(mtu, 1400);
    assert_eq!(link.mac.split(':').count(), mac.len());

    let etc_dir = dir.path().join("etc");
    std::fs::create_dir(&etc_dir).unwrap();
    att.etc.write_into(&etc_dir).unwrap();
    assert_eq!(
        std::fs::read_to_string(etc_dir.join("hostname")).unwrap(),
        format!("{id}\n")
    );
    assert!(std::fs::read_to_string(etc_dir.join("resolv.conf"))
        .unwrap()
        .contains("nameserver 8.8.8.8"));

    // container:ID mode shares the namespace: its hosts file names the shared address.
    let joined = net
        .attach(&AttachRequest {
            container_id: "joiner".into(),
            hostname: "joiner".into(),
            netns: NetnsRef::Path(ns.path.clone()),
            loopback_up: false,
            mode: NetMode::Container(NetnsRef::Path(ns.path.clone())),
        })
        .unwrap();
    assert!(joined.link.is_none());
    assert!(joined.etc.hosts.contains(&format!("{}\tjoiner", link.ip)));
    net.detach("joiner").unwrap();
    assert_eq!(net.attachments(None).unwrap().len(), 1);
    net.detach(&id).unwrap();
    net.remove_network("mtu").unwrap();
}

#[test]
fn port_published_by_another_root_is_refused_and_kept() {
    if !can_run() {
        return;
    }
    let (d1, d2) = (TempDir::new(), TempDir::new());
    let _c1 = common::Cleanup(d1.path().join("root"));
    let _c2 = common::Cleanup(d2.path().join("root"));
    let (mut n1, mut n2) = (open(d1.path()), open(d2.path()));
    let (b1, b2) = (format!("hullk{}", tag()), format!("hullk{}", tag()));
    let _g = LinkGuard(vec![b1.clone(), b2.clone()]);
    network(&mut n1, "k1", "10.236.8.0/24", &b1, false);
    network(&mut n2, "k2", "10.236.9.0/24", &b2, false);
    let (a, b) = (TestNetns::new(d1.path()), TestNetns::new(d2.path()));
    let m: PortMapping = format!("{}:80", free_port()).parse().unwrap();
    n1.attach(&bridge_req("first", &a, "k1", vec![m])).unwrap();
    let e = n2
        .attach(&bridge_req("second", &b, "k2", vec![m]))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("already published by another hull root"),
        "{e}"
    );
    assert!(n2.attachments(None).unwrap().is_empty());
    assert!(Firewall::open().unwrap().publishes(&m).unwrap());
    n1.detach("first").unwrap();
    assert!(!Firewall::open().unwrap().publishes(&m).unwrap());
    n1.remove_network("k1").unwrap();
    n2.remove_network("k2").unwrap();
}

#[test]
fn detach_keeps_the_wal_short() {
    // Each hull-cni process rebuilds the WAL index from every frame since the last checkpoint
    // when it opens the database; detach checkpoints a WAL past 512 KiB (~127 frames) while
    // the kernel removes the veth, so attach/detach cycles must not let the WAL grow
    // (SQLite alone would let it reach 1000 frames).
    if !can_run() {
        return;
    }
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let mut net = open(dir.path());
    let br = format!("hullw{}", tag());
    let _g = LinkGuard(vec![br.clone()]);
    network(&mut net, "wal", "10.250.0.0/24", &br, false);
    let ns = TestNetns::new(dir.path());
    let id = format!("tw{}", tag());
    for _ in 0..40 {
        net.attach(&bridge_req(&id, &ns, "wal", vec![])).unwrap();
        net.detach(&id).unwrap();
    }
    let other = rusqlite::Connection::open(dir.path().join("root").join("hull.db")).unwrap();
    // Columns: busy, frames in the WAL, frames checkpointed.
    let frames: i64 = other
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
        .unwrap();
    assert!(
        frames < 160,
        "WAL holds {frames} frames after 40 attach/detach cycles"
    );
    net.remove_network("wal").unwrap();
    assert!(host_links_with_prefix(&br).is_empty());
}
