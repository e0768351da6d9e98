//! `hull-cni` against the CNI contract: ADD twice, DEL of the unknown, CHECK noticing a
//! removed address, prevResult kept when chained, delegated IPAM, 50 parallel ADDs from
//! separate processes, bad input; and nothing left afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{can_run, host_links_with_prefix, tag, LinkGuard, TempDir, TestNetns};
use hull_net::engine::Net;
use hull_net::nft::Firewall;
use hull_net::ports::PortMapping;
use serde_json::{json, Value};

fn spawn(cmd: &str, id: &str, netns: &str, conf: &Value) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hull-cni"))
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    child
}

fn finish(child: Child) -> (bool, Value) {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (out.status.success(), v)
}

fn cni(cmd: &str, id: &str, netns: &str, conf: &Value) -> (bool, Value) {
    finish(spawn(cmd, id, netns, conf))
}

fn conf(root: &Path, name: &str, bridge: &str, subnet: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": name,
        "type": "hull-cni",
        "bridge": bridge,
        "isGateway": true,
        "ipMasq": false,
        "hairpinMode": true,
        "ipam": { "subnet": subnet, "routes": [{ "dst": "0.0.0.0/0" }] },
        "hullRoot": root,
    })
}

fn ns_str(ns: &TestNetns) -> String {
    ns.path.display().to_string()
}

#[test]
fn version_lists_supported_versions() {
    let (ok, v) = cni("VERSION", "", "", &json!({ "cniVersion": "0.4.0" }));
    assert!(ok);
    assert_eq!(v["cniVersion"], "0.4.0");
    assert!(v["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&json!("1.0.0")));
}

#[test]
fn add_twice_del_unknown_check_and_cleanup() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let br = format!("hullc{}", tag());
    let _g = LinkGuard(vec![br.clone()]);
    let c = conf(&dir.path().join("root"), "cnitest", &br, "10.241.0.0/24");
    let ns = TestNetns::new(dir.path());
    let id = format!("cni{}", tag());

    let (ok, res) = cni("ADD", &id, &ns_str(&ns), &c);
    assert!(ok, "{res}");
    assert_eq!(res["cniVersion"], "1.0.0");
    assert_eq!(res["ips"][0]["address"], "10.241.0.2/24");
    assert_eq!(res["ips"][0]["gateway"], "10.241.0.1");
    assert_eq!(res["interfaces"][2]["name"], "eth0");
    assert_eq!(res["interfaces"][2]["sandbox"], ns_str(&ns));
    let host_veth = res["interfaces"][1]["name"].as_str().unwrap().to_string();
    assert!(host_veth.starts_with("hull"));

    // A second ADD for the same container and interface is an error, and harms nothing.
    let (ok, err) = cni("ADD", &id, &ns_str(&ns), &c);
    assert!(!ok);
    assert_eq!(err["code"], 100);
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("already has interface eth0"),
        "{err}"
    );

    // CHECK with the ADD result passes.
    let mut with_prev = c.clone();
    with_prev["prevResult"] = res.clone();
    let (ok, out) = cni("CHECK", &id, &ns_str(&ns), &with_prev);
    assert!(ok, "{out}");

    // Remove the address inside the namespace: CHECK must notice.
    ns.netlink(|nl| {
        let eth0 = nl.link_require("eth0").unwrap();
        nl.addr_del(eth0.index, Ipv4Addr::new(10, 241, 0, 2), 24)
            .unwrap();
    });
    let (ok, err) = cni("CHECK", &id, &ns_str(&ns), &with_prev);
    assert!(!ok);
    assert_eq!(err["code"], 101);
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("10.241.0.2/24 is missing"),
        "{err}"
    );

    // DEL of an unknown container succeeds; DEL twice succeeds.
    let (ok, out) = cni("DEL", "nosuchcontainer", "", &c);
    assert!(ok, "{out}");
    assert!(cni("DEL", &id, &ns_str(&ns), &c).0);
    assert!(cni("DEL", &id, &ns_str(&ns), &c).0);
    assert!(host_links_with_prefix(&host_veth).is_empty());
    let mut net = Net::open(&dir.path().join("root")).unwrap();
    assert!(hull_net::ipam::list(net.conn()).unwrap().is_empty());
    let links = ns.netlink(|nl| nl.link_list().unwrap());
    assert!(links.iter().all(|l| l.name == "lo"), "{links:?}");
}

#[test]
fn prev_result_is_kept_when_chained() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let br = format!("hullh{}", tag());
    let _g = LinkGuard(vec![br.clone()]);
    let mut c = conf(&dir.path().join("root"), "chain", &br, "10.242.0.0/24");
    c["cniVersion"] = json!("0.4.0");
    c["prevResult"] = json!({
        "cniVersion": "0.4.0",
        "interfaces": [{ "name": "other0", "mac": "02:00:00:00:00:01", "sandbox": "/x" }],
        "ips": [{ "version": "4", "address": "192.0.2.5/24", "interface": 0 }],
        "routes": [{ "dst": "192.0.2.0/24" }],
        "dns": { "nameservers": ["192.0.2.53"] }
    });
    let ns = TestNetns::new(dir.path());
    let id = format!("chain{}", tag());
    let (ok, res) = cni("ADD", &id, &ns_str(&ns), &c);
    assert!(ok, "{res}");
    assert_eq!(res["cniVersion"], "0.4.0");
    assert_eq!(res["interfaces"][0]["name"], "other0");
    assert_eq!(res["interfaces"][3]["name"], "eth0");
    assert_eq!(res["ips"][0]["address"], "192.0.2.5/24");
    assert_eq!(res["ips"][1]["address"], "10.242.0.2/24");
    assert_eq!(res["ips"][1]["interface"], 3);
    assert_eq!(res["ips"][1]["version"], "4");
    assert_eq!(res["routes"][0]["dst"], "192.0.2.0/24");
    assert_eq!(res["dns"]["nameservers"][0], "192.0.2.53");
    assert!(cni("DEL", &id, &ns_str(&ns), &c).0);
}

#[test]
fn delegated_ipam_host_local() {
    if !can_run() {
        return;
    }
    if !Path::new("/usr/lib/cni/host-local").exists() {
        hull_testkit::skip!("/usr/lib/cni/host-local missing (containernetworking-plugins)");
    }
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let br = format!("hulld{}", tag());
    let _g = LinkGuard(vec![br.clone()]);
    let data = dir.path().join("host-local");
    let mut c = conf(&dir.path().join("root"), "deleg", &br, "unused");
    c["ipam"] = json!({
        "type": "host-local",
        "ranges": [[{ "subnet": "10.243.0.0/24", "rangeStart": "10.243.0.50" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": data,
    });
    let ns = TestNetns::new(dir.path());
    let id = format!("deleg{}", tag());
    let (ok, res) = cni("ADD", &id, &ns_str(&ns), &c);
    assert!(ok, "{res}");
    assert_eq!(res["ips"][0]["address"], "10.243.0.50/24");
    assert!(data.join("deleg").join("10.243.0.50").exists());
    let have = ns.netlink(|nl| {
        let eth0 = nl.link_require("eth0").unwrap();
        nl.addr_list(eth0.index).unwrap()
    });
    assert_eq!(have[0].ip, Ipv4Addr::new(10, 243, 0, 50));
    assert!(cni("DEL", &id, &ns_str(&ns), &c).0);
    assert!(!data.join("deleg").join("10.243.0.50").exists());
}

#[test]
fn bad_input_gives_spec_errors_and_leaves_nothing() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let root = dir.path().join("root");
    let br = format!("hullx{}", tag());
    let _g = LinkGuard(vec![br.clone()]);
    let mut c = conf(&root, "bad", &br, "10.244.0.0/24");
    c["vlan"] = json!(5);
    let (ok, err) = cni("ADD", "b1", "/nonexistent", &c);
    assert!(!ok);
    assert_eq!(err["code"], 2, "{err}");

    let c = conf(&root, "bad", &br, "10.244.0.0/24");
    let (ok, err) = cni(
        "ADD",
        "b1",
        &dir.path().join("nope").display().to_string(),
        &c,
    );
    assert!(!ok);
    assert_eq!(err["code"], 3, "{err}");

    let ns = TestNetns::new(dir.path());
    let mut c2 = c.clone();
    c2["runtimeConfig"] = json!({ "ips": ["10.250.0.9/24"] });
    let (ok, err) = cni("ADD", "b2", &ns_str(&ns), &c2);
    assert!(!ok);
    assert!(err["msg"].as_str().unwrap().contains("is outside"), "{err}");

    let mut net = Net::open(&root).unwrap();
    assert!(hull_net::ipam::list(net.conn()).unwrap().is_empty());
    assert!(net.attachments(None).unwrap().is_empty());
}

#[test]
fn fifty_parallel_adds_get_distinct_addresses_and_leave_nothing() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new();
    let _cleanup = common::Cleanup(dir.path().join("root"));
    let root = dir.path().join("root");
    let br = format!("hullf{}", tag());
    let _g = LinkGuard(vec![br.clone()]);
    let nss: Vec<TestNetns> = (0..50).map(|_| TestNetns::new(dir.path())).collect();
    let base = format!("par{}x", tag());
    let listeners: Vec<_> = (0..50)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    drop(listeners);
    let confs: Vec<Value> = ports
        .iter()
        .map(|p| {
            let mut c = conf(&root, "par", &br, "10.245.0.0/24");
            c["runtimeConfig"] = json!({ "portMappings": [
                { "hostPort": p, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1" }
            ]});
            c
        })
        .collect();
    let children: Vec<Child> = nss
        .iter()
        .enumerate()
        .map(|(i, ns)| spawn("ADD", &format!("{base}{i}"), &ns_str(ns), &confs[i]))
        .collect();
    let mut ips = std::collections::BTreeSet::new();
    let mut veths = Vec::new();
    for child in children {
        let (ok, res) = finish(child);
        assert!(ok, "{res}");
        ips.insert(res["ips"][0]["address"].as_str().unwrap().to_string());
        veths.push(res["interfaces"][1]["name"].as_str().unwrap().to_string());
    }
    assert_eq!(ips.len(), 50);
    let mut fw = Firewall::open().unwrap();
    let mapping = |p: u16| -> PortMapping { format!("127.0.0.1:{p}:80").parse().unwrap() };
    assert!(ports.iter().all(|p| fw.publishes(&mapping(*p)).unwrap()));

    let children: Vec<Child> = nss
        .iter()
        .enumerate()
        .map(|(i, ns)| spawn("DEL", &format!("{base}{i}"), &ns_str(ns), &confs[i]))
        .collect();
    for child in children {
        let (ok, res) = finish(child);
        assert!(ok, "{res}");
    }
    let left: Vec<String> = host_links_with_prefix("hull")
        .into_iter()
        .filter(|l| veths.contains(l))
        .collect();
    assert!(left.is_empty(), "veths left: {left:?}");
    assert!(ports.iter().all(|p| !fw.publishes(&mapping(*p)).unwrap()));
    let mut net = Net::open(&root).unwrap();
    assert!(hull_net::ipam::list(net.conn()).unwrap().is_empty());
    assert!(net.attachments(None).unwrap().is_empty());
}
