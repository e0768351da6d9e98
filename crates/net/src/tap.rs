//! A tap device mirrored to a configured interface of a network namespace: how a VMM joins the
//! network a container's namespace was given (Kata's "tcfilter" model). Given the namespace and
//! its interface (eth0, made by hull's bridge attach or by a CNI plugin), [`mirror`] makes a tap
//! beside it and two ingress u32 filters that redirect every frame arriving on one to the egress
//! of the other, and returns the tap's queue (for the VMM: `-netdev tap,fd=N`) with the
//! interface's configuration (MAC, MTU, addresses, gateway), which the guest takes over
//! unchanged. The guest's NIC has the interface's MAC, so ARP answers and the bridge's FDB stay
//! what they would be for a container; nothing on the host side changes (IPAM, nftables
//! publishing, names in /etc/hosts), so `-p` and container names work as they do for one.
//!
//! Ownership: the tap is not persistent and lives in the namespace, so it goes with the last
//! holder of its queue (the VMM) or with the namespace, whichever ends first, and its own
//! filter with it; the ingress qdisc and filter on the interface stay while the namespace
//! does. A namespace its VMM's owner made ends with it (the engine's); one that outlives the
//! VM (a pod's, bind-mounted by CNI) is cleaned by [`unmirror`], which its owner runs at its
//! end and again at delete (after a kill -9). Nothing of it is left on the host.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use serde::Serialize;

use crate::error::NetError;
use crate::netlink::Netlink;
use crate::netns;

/// The tap's name in the namespace.
pub const TAP_NAME: &str = "tap0";

/// Errors making the tap.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("cannot open /dev/net/tun: {0}")]
    Open(std::io::Error),
    #[error("cannot create tap {name}: {source}")]
    Create {
        name: String,
        source: std::io::Error,
    },
    #[error("interface {0} has no IPv4 address to hand to the VM")]
    NoAddress(String),
}

/// An interface's configuration, as the guest takes it over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceConfig {
    pub name: String,
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    pub mtu: u32,
    /// IPv4 addresses with their prefix lengths.
    pub addresses: Vec<(Ipv4Addr, u8)>,
    /// The default route's gateway through this interface.
    pub gateway: Option<Ipv4Addr>,
}

/// A tap mirrored to an interface.
#[derive(Debug)]
pub struct Tap {
    /// The tap's queue (close-on-exec; the VMM's starter hands it over).
    pub fd: OwnedFd,
    pub name: String,
    /// The interface it mirrors.
    pub interface: InterfaceConfig,
}

/// Makes tap `tap` in the namespace `ns`, mirrored both ways to its interface `ifname`.
pub fn mirror(ns: &File, ifname: &str, tap: &str) -> Result<Tap, NetError> {
    netns::run_in(ns, || -> Result<Tap, NetError> {
        let mut nl = Netlink::open()?;
        let eth = nl.link_require(ifname)?;
        let addresses: Vec<(Ipv4Addr, u8)> = nl
            .addr_list(eth.index)?
            .into_iter()
            .map(|a| (a.ip, a.prefix))
            .collect();
        if addresses.is_empty() {
            return Err(TapError::NoAddress(ifname.to_string()).into());
        }
        let gateway = nl
            .route_list()?
            .into_iter()
            .find(|r| r.prefix == 0 && r.oif == Some(eth.index))
            .and_then(|r| r.gateway);
        // Opened here, so the tap is made in this namespace.
        let fd = open_tap(tap)?;
        let t = nl.link_require(tap)?;
        nl.link_set_mtu(t.index, eth.mtu)?;
        nl.link_up(t.index)?;
        for (from, to) in [(eth.index, t.index), (t.index, eth.index)] {
            nl.qdisc_add_ingress(from)?;
            nl.redirect_ingress(from, to)?;
        }
        Ok(Tap {
            fd,
            name: tap.to_string(),
            interface: InterfaceConfig {
                name: ifname.to_string(),
                mac: crate::attach::mac_string(&eth.mac),
                mtu: eth.mtu,
                addresses,
                gateway,
            },
        })
    })?
}

/// Undoes [`mirror`] in `ns`: deletes tap `tap` if it is still there and the interface
/// `ifname`'s ingress qdisc with its redirect (so a later VM can mirror it again).
pub fn unmirror(ns: &File, ifname: &str, tap: &str) -> Result<(), NetError> {
    netns::run_in(ns, || -> Result<(), NetError> {
        let mut nl = Netlink::open()?;
        nl.link_delete(tap)?;
        if let Some(eth) = nl.link_get(ifname)? {
            nl.qdisc_del_ingress(eth.index)?;
        }
        Ok(())
    })?
}

/// Creates tap `name` in this thread's namespace: frames without packet information, with a
/// virtio-net header (the VMM passes the guest's offloads through it).
fn open_tap(name: &str) -> Result<OwnedFd, TapError> {
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(TapError::Open)?;
    // SAFETY: ifreq is plain data; all zeroes is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = libc::c_char::from_ne_bytes([src]);
    }
    let flags = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;
    req.ifr_ifru.ifru_flags = libc::c_short::try_from(flags).unwrap_or(libc::c_short::MAX);
    // SAFETY: TUNSETIFF reads and writes the ifreq, which lives across the call, on a
    // descriptor of /dev/net/tun this function owns.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req) } != 0 {
        return Err(TapError::Create {
            name: name.to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(OwnedFd::from(tun))
}
