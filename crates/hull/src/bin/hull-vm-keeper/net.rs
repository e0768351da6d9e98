//! The VM's network: the spec's network namespace when it joins one by path (a pod's, made and
//! configured by CNI). When that namespace's eth0 has an address, eth0 is mirrored to a tap
//! (`hull_net::tap`) that qemu, started in the namespace, uses as the guest's NIC with eth0's
//! MAC, and the guest's eth0 takes over its addresses and route. A new (unpathed) namespace,
//! or one without a configured eth0 (`--network none`), leaves the guest its loopback only.
//!
//! Ownership: the namespace is bind-mounted by CNI and outlives the container, so the tap and
//! eth0's redirect are the keeper's to remove: the record names the namespace before the tap
//! exists, the keeper removes them at its end and `delete` again (after a kill -9).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hull_net::error::NetError;
use hull_net::tap::{self, Tap};
use hull_vmm::proto::InterfaceSpec;
use serde_json::Value;

/// The pod's interface, as CNI plugins name it.
const IFNAME: &str = "eth0";

/// The network namespace the spec joins by path; None for a new one or the host's.
pub fn netns_path(config: &Value) -> Option<PathBuf> {
    config["linux"]["namespaces"]
        .as_array()?
        .iter()
        .find(|n| n["type"] == "network")?["path"]
        .as_str()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// The namespace qemu runs in, and the tap mirrored to its eth0.
#[derive(Debug)]
pub struct VmNet {
    pub netns: File,
    pub tap: Option<Tap>,
}

/// Opens the namespace at `path` and mirrors its eth0 when it has an address.
pub fn setup(path: &Path) -> anyhow::Result<VmNet> {
    let netns = File::open(path)
        .with_context(|| format!("opening the network namespace {}", path.display()))?;
    let configured = hull_net::netns::run_in(&netns, || -> Result<bool, NetError> {
        let mut nl = hull_net::netlink::Netlink::open()?;
        match nl.link_get(IFNAME)? {
            Some(eth) => Ok(!nl.addr_list(eth.index)?.is_empty()),
            None => Ok(false),
        }
    })??;
    let tap = if configured {
        Some(tap::mirror(&netns, IFNAME, tap::TAP_NAME)?)
    } else {
        None
    };
    Ok(VmNet { netns, tap })
}

impl VmNet {
    /// The guest's interfaces: eth0 as the pod's is.
    pub fn interfaces(&self) -> Vec<InterfaceSpec> {
        self.tap
            .iter()
            .map(|t| hull_engine::vm::interface_of(&t.interface))
            .collect()
    }
}

/// Removes the tap and eth0's redirect from the namespace at `path`, if it is still there.
pub fn cleanup(path: &Path) -> anyhow::Result<()> {
    let netns = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("opening the network namespace {}", path.display()))
        }
    };
    tap::unmirror(&netns, IFNAME, tap::TAP_NAME).context("removing the VM's tap")
}
