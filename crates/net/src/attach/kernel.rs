//! The kernel side of an attachment: the bridge, the veth pair with its end inside the
//! namespace, addresses and routes there, the nftables entries; and their removal.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::sync::mpsc;

use super::{Link, Plan};
use crate::error::NetError;
use crate::netlink::{Netlink, NetlinkError};
use crate::netns;
use crate::network::Network;
use crate::nft::Firewall;
use crate::sysctl;

/// Makes the kernel objects: bridge (if missing), veth pair, addresses, routes, rules.
pub(super) fn make(plan: &Plan<'_>, ns: &std::fs::File, link: &mut Link) -> Result<(), NetError> {
    let net = plan.network;
    let mut nl = Netlink::open()?;
    // The bridge may be another root's too (every root's default network is on hull0), and
    // the table every root's: neither is deleted as unused between its making here and this
    // container's port on it, or its elements in it.
    let in_use = crate::host_lock::shared();
    let bridge = ensure_bridge(&mut nl, net, plan.bridge_gateway)?;
    if plan.ip_forward && net.masquerade {
        sysctl::ip_forward()?;
    }
    nl.veth_create(
        &link.host_veth,
        plan.ifname,
        ns.as_fd(),
        net.mtu,
        Some(bridge),
    )
    .map_err(|e| match e.errno() {
        Some(libc::EEXIST) => NetError::VethCollision(link.host_veth.clone()),
        _ => e.into(),
    })?;
    let host = nl.link_require(&link.host_veth)?;
    if plan.hairpin {
        nl.bridge_port_hairpin(host.index, true)?;
    }
    nl.link_up(host.index)?;
    let mac = configure_inside(plan, ns, link.ip, link.prefix)?;
    link.mac = mac;
    let mut fw = Firewall::open()?;
    fw.add_attachment(&in_use, net.subnet, net.masquerade, link.ip, plan.ports)?;
    Ok(())
}

/// Creates and configures the network's bridge unless it exists; returns its index.
fn ensure_bridge(nl: &mut Netlink, net: &Network, with_gateway: bool) -> Result<u32, NetError> {
    match nl.bridge_create(&net.bridge, Some(net.mtu)) {
        Ok(()) => {}
        Err(e) if e.errno() == Some(libc::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let br = nl.link_require(&net.bridge)?;
    if br.kind.as_deref() != Some("bridge") {
        return Err(NetError::NotABridge(net.bridge.clone()));
    }
    if with_gateway {
        ignore_exists(nl.addr_add(br.index, net.gateway, net.subnet.prefix()))?;
        sysctl::route_localnet(&net.bridge)?;
        // An internal network routes nowhere: packets from it are never forwarded.
        if !net.internal {
            sysctl::bridge_forwarding(&net.bridge)?;
        }
    }
    if !br.up {
        nl.link_up(br.index)?;
    }
    Ok(br.index)
}

fn ignore_exists(r: Result<(), NetlinkError>) -> Result<(), NetlinkError> {
    match r {
        Err(e) if e.errno() == Some(libc::EEXIST) => Ok(()),
        other => other,
    }
}

/// Inside the namespace: lo and the interface up, address, routes; returns the MAC.
fn configure_inside(
    plan: &Plan<'_>,
    ns: &std::fs::File,
    ip: Ipv4Addr,
    prefix: u8,
) -> Result<String, NetError> {
    netns::run_in(ns, || -> Result<String, NetError> {
        let mut nl = Netlink::open()?;
        let lo = nl.link_require("lo")?;
        if !lo.up {
            nl.link_up(lo.index)?;
        }
        let eth = nl.link_require(plan.ifname)?;
        nl.addr_add(eth.index, ip, prefix)?;
        nl.link_up(eth.index)?;
        for r in &plan.routes {
            ignore_exists(nl.route_add(r.dst.addr(), r.dst.prefix(), r.gw, eth.index))?;
        }
        Ok(mac_string(&eth.mac))
    })?
}

pub(crate) fn mac_string(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Removes the attachment's veth pair and published ports, running `meanwhile` while the
/// kernel works on them.
pub(super) fn remove(link: &Link, meanwhile: impl FnOnce() + Send) -> Result<(), NetError> {
    // Both kernel operations end in an RCU wait: unregistering a netdev runs rcu_barrier
    // (most of detach's time), and nf_tables frees removed elements from a work item after
    // synchronize_rcu, which closing its netlink socket flushes. So the veth deletion starts
    // at once on this (already running) thread; a helper removes the rules meanwhile and
    // keeps their socket open until the veth is gone, so one grace period serves both. The
    // elements are out of the map when the batch is acknowledged; only their memory waits.
    let (veth_gone, wait_veth) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let helper = s.spawn(move || {
            let fw = remove_ports(link);
            meanwhile();
            // Ok or Err (the sender dropped): either way the veth deletion has returned.
            let _ = wait_veth.recv();
            fw.map(drop)
        });
        // Deleting the host end removes the pair; when the namespace is gone so is the pair.
        let veth = Netlink::open().and_then(|mut nl| nl.link_delete(&link.host_veth));
        drop(veth_gone);
        let rules = helper
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        rules?;
        veth?;
        Ok(())
    })
}

/// Removes the published ports; the returned context keeps the nftables socket open.
fn remove_ports(link: &Link) -> Result<Option<Firewall>, NetError> {
    if link.ports.is_empty() {
        return Ok(None);
    }
    let mut fw = Firewall::open()?;
    fw.remove_ports(&link.ports)?;
    Ok(Some(fw))
}
