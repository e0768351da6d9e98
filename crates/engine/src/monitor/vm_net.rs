//! The network of a VM-isolated container: a network namespace of its own, made and held by
//! the monitor (not bind-mounted anywhere, so it ends with the monitor and the VMM, even when
//! both are killed), given its network exactly as a container's is (hull-net's attach: the same
//! IPAM, bridge, veth, nftables rules for `-p`/`-P`, and /etc/hosts, hostname, resolv.conf),
//! plus, on a bridge network, a tap mirrored to its eth0 (`hull_net::tap`) that the VMM's
//! virtio-net device uses with eth0's MAC. The VMM runs in the namespace. What hull.db records
//! of the attachment is removed by the container's teardown as for a container; the veth and the
//! tap go with the namespace. Its names are published on a user network as a container's, but
//! the guest gets its hosts file once, at boot: it knows the peers there at its start.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use hull_net::netns::NetnsRef;
use hull_net::tap::{self, Tap};
use hull_vmm::proto::InterfaceSpec;
use rusqlite::Connection;

use super::own_pid;
use crate::error::EngineError;
use crate::options::Network;
use crate::store::Record;
use crate::vm::qemu::QemuNet;

/// The container's interface, as hull-net's bridge attach names it.
const IFNAME: &str = "eth0";

/// The VM's namespace and NIC.
#[derive(Debug)]
pub(super) struct VmNet {
    netns: File,
    tap: Option<Tap>,
}

/// Makes the namespace, attaches it to the container's network, writes the /etc files, and on
/// a bridge network mirrors eth0 to a tap.
pub(super) fn setup(
    root: &Path,
    conn: &mut Connection,
    record: &Record,
) -> Result<VmNet, EngineError> {
    let netns = hull_net::netns::unnamed().map_err(hull_net::error::NetError::from)?;
    // How hull.db names it while the monitor lives; after, the attachment's teardown finds the
    // namespace gone, as for a container whose process ended.
    let path = format!("/proc/{}/fd/{}", own_pid(), netns.as_raw_fd());
    super::run::write_etc(
        root,
        conn,
        record,
        (NetnsRef::Path(path.into()), true),
        None,
    )?;
    // Before the run spec reads the hosts file: the VM gets the peers known at its start.
    crate::names::publish(root, conn, record)?;
    let tap = match record.settings.network {
        Network::Default | Network::Named(_) => Some(tap::mirror(&netns, IFNAME, tap::TAP_NAME)?),
        Network::None | Network::Host => None,
    };
    Ok(VmNet { netns, tap })
}

impl VmNet {
    /// The guest's interfaces: eth0 as the container's is on the host.
    pub(super) fn interfaces(&self) -> Vec<InterfaceSpec> {
        self.tap
            .iter()
            .map(|t| crate::vm::interface_of(&t.interface))
            .collect()
    }

    /// What qemu is started with.
    pub(super) fn qemu(&self) -> QemuNet<'_> {
        QemuNet {
            netns: self.netns.as_fd(),
            tap: self.tap.as_ref().map(|t| t.fd.as_fd()),
            mac: self.tap.as_ref().map_or("", |t| t.interface.mac.as_str()),
        }
    }
}
