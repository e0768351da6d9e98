//! The API the `hull` engine calls: open the store under the engine's root, manage
//! networks, attach a container's network namespace in one of the modes (bridge, none, host,
//! container:ID), detach it, and clean up after crashes.

use std::borrow::BorrowMut;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::Serialize;

use crate::attach::{self, Address, Link, Plan, Route};
use crate::cidr::Ipv4Net;
use crate::db;
use crate::error::NetError;
use crate::etc::{self, EtcFiles};
use crate::netlink::Netlink;
use crate::netns::{self, NetnsRef};
use crate::network::{self, Network, NetworkSpec, DEFAULT_BRIDGE, DEFAULT_NETWORK};
use crate::nft::Firewall;
use crate::ports::PortMapping;

/// Settings that are not per container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOptions {
    /// Subnet of the default network `hull` (bridge hull0), used when it is first created;
    /// `None`: the first free /16 of hull's pool (see [`crate::pool`]).
    pub default_subnet: Option<String>,
    /// Turn on net.ipv4.ip_forward when a masquerading network is used (podman does).
    pub ip_forward: bool,
    /// The host's resolv.conf.
    pub resolv_conf: PathBuf,
    /// The host's hosts file (for `--network host`).
    pub hosts: PathBuf,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            default_subnet: None,
            ip_forward: true,
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            hosts: PathBuf::from("/etc/hosts"),
        }
    }
}

impl NetOptions {
    /// Defaults, with the default subnet taken from HULL_DEFAULT_SUBNET when set.
    pub fn from_env() -> Self {
        let mut o = NetOptions::default();
        if let Ok(s) = std::env::var("HULL_DEFAULT_SUBNET") {
            o.default_subnet = Some(s);
        }
        o
    }
}

/// How a container gets its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetMode {
    /// Own namespace on a bridge network (`None` = the default network).
    Bridge {
        network: Option<String>,
        ip: Option<Ipv4Addr>,
        ports: Vec<PortMapping>,
    },
    /// Own namespace with only lo.
    None,
    /// The host's namespace.
    Host,
    /// Another container's namespace (the engine resolves the id to this path).
    Container(NetnsRef),
}

/// What the engine asks for.
#[derive(Debug, Clone)]
pub struct AttachRequest {
    pub container_id: String,
    pub hostname: String,
    /// The container's namespace (ignored for Host and Container modes).
    pub netns: NetnsRef,
    pub mode: NetMode,
    /// The namespace's loopback is up already (made by [`crate::netns::unnamed`]): with
    /// [`NetMode::None`] nothing is left to do in it.
    pub loopback_up: bool,
}

/// What the engine gets back: the interface (bridge mode) and the three files' contents.
#[derive(Debug, Clone, Serialize)]
pub struct Attachment {
    pub link: Option<Link>,
    pub etc: EtcFiles,
}

/// What a cleanup removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// (container id, interface) of attachments whose namespace was gone.
    pub removed: Vec<(String, String)>,
}

/// hull-net bound to one engine root: over a connection to its hull.db of its own, or one its
/// caller lends (a container's monitor keeps one connection for everything it does, since
/// each new one parses the whole schema).
#[derive(Debug)]
pub struct Net<C = Connection> {
    conn: C,
    opts: NetOptions,
}

impl Net {
    /// Opens `<root>/hull.db` with options from the environment.
    pub fn open(root: &Path) -> Result<Net, NetError> {
        Net::open_with(root, NetOptions::from_env())
    }

    pub fn open_with(root: &Path, opts: NetOptions) -> Result<Net, NetError> {
        Ok(Net {
            conn: hull_db::open(root).map_err(db::DbError::from)?,
            opts,
        })
    }
}

impl<'a> Net<&'a mut Connection> {
    /// hull-net over the caller's connection to hull.db, with options from the environment.
    pub fn with_conn(conn: &'a mut Connection) -> Self {
        Net {
            conn,
            opts: NetOptions::from_env(),
        }
    }
}

impl<C: BorrowMut<Connection>> Net<C> {
    /// The database connection (for hull-cni, which drives [`attach::attach`] itself).
    pub fn conn(&mut self) -> &mut Connection {
        self.conn.borrow_mut()
    }

    pub fn options(&self) -> &NetOptions {
        &self.opts
    }

    /// Creates a user network (`hull network create`).
    pub fn create_network(&mut self, spec: &NetworkSpec) -> Result<Network, NetError> {
        if spec.name == DEFAULT_NETWORK {
            return Err(network::NetworkError::Exists(spec.name.clone()).into());
        }
        check_host_overlap(&spec.subnet)?;
        Ok(network::create(self.conn.borrow_mut(), spec)?)
    }

    /// A free /24 for a network created without `--subnet` (see [`crate::pool`]).
    pub fn free_subnet(&mut self) -> Result<String, NetError> {
        self.free_block(24)
    }

    fn free_block(&mut self, prefix: u8) -> Result<String, NetError> {
        let mut taken: Vec<Ipv4Net> = self.networks()?.iter().map(|n| n.subnet).collect();
        taken.extend(crate::pool::host_routes()?);
        crate::pool::pick(crate::pool::pool(), prefix, &taken)
            .map(|n| n.to_string())
            .ok_or_else(|| network::NetworkError::NoFreeSubnet(prefix).into())
    }

    /// The default network, created on first use (on HULL_DEFAULT_SUBNET, or the first free
    /// /16 of the pool).
    pub fn default_network(&mut self) -> Result<Network, NetError> {
        let subnet = match &self.opts.default_subnet {
            Some(s) => s.clone(),
            None => match network::get(self.conn.borrow(), DEFAULT_NETWORK)? {
                Some(n) => return Ok(n),
                None => self.free_block(16)?,
            },
        };
        let mut spec = NetworkSpec::new(DEFAULT_NETWORK, &subnet);
        spec.bridge = Some(DEFAULT_BRIDGE.to_string());
        Ok(network::ensure(self.conn.borrow_mut(), &spec)?)
    }

    /// Networks, the default one included once it exists.
    pub fn networks(&mut self) -> Result<Vec<Network>, NetError> {
        Ok(network::list(self.conn.borrow())?)
    }

    /// One network by name.
    pub fn network(&mut self, name: &str) -> Result<Network, NetError> {
        if name == DEFAULT_NETWORK {
            return self.default_network();
        }
        network::get(self.conn.borrow(), name)?
            .ok_or_else(|| network::NetworkError::NotFound(name.to_string()).into())
    }

    /// Removes a network that no container uses: its row, bridge and nftables entries.
    pub fn remove_network(&mut self, name: &str) -> Result<Network, NetError> {
        if name == DEFAULT_NETWORK {
            return Err(network::NetworkError::Default(name.to_string()).into());
        }
        let net = network::delete(self.conn.borrow_mut(), name)?;
        release_kernel_objects(&net)?;
        Ok(net)
    }

    /// Removes every network of this root, the default one included (`hull system reset`):
    /// what is still attached is detached first, then each network goes as with
    /// [`Net::remove_network`]. Returns their names.
    pub fn remove_all_networks(&mut self) -> Result<Vec<String>, NetError> {
        for link in self.attachments(None)? {
            self.detach(&link.container_id)?;
        }
        let mut removed = Vec::new();
        for n in self.networks()? {
            let net = network::delete(self.conn.borrow_mut(), &n.name)?;
            release_kernel_objects(&net)?;
            removed.push(net.name);
        }
        Ok(removed)
    }

    /// Gives the container its network per `req.mode`.
    pub fn attach(&mut self, req: &AttachRequest) -> Result<Attachment, NetError> {
        attach::check_container_id(&req.container_id)?;
        check_hostname(&req.hostname)?;
        let resolv = etc::read_host_resolv_conf(&self.opts.resolv_conf);
        match &req.mode {
            NetMode::Bridge { network, ip, ports } => {
                let net = match network {
                    Some(n) => self.network(n)?,
                    None => self.default_network()?,
                };
                let default_route = Route {
                    dst: Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0)
                        .map_err(network::NetworkError::from)?,
                    gw: Some(net.gateway),
                };
                let plan = Plan {
                    container_id: &req.container_id,
                    ifname: "eth0",
                    netns: &req.netns,
                    network: &net,
                    address: Address::Lease(*ip),
                    bridge_gateway: true,
                    routes: if net.internal {
                        vec![]
                    } else {
                        vec![default_route]
                    },
                    hairpin: true,
                    ports,
                    ip_forward: self.opts.ip_forward,
                };
                let link = attach::attach(self.conn.borrow_mut(), &plan)?;
                let gw = (!net.internal).then_some(net.gateway);
                let etc = EtcFiles::for_container(&req.hostname, Some((link.ip, gw)), &resolv);
                Ok(Attachment {
                    link: Some(link),
                    etc,
                })
            }
            NetMode::None => {
                if !req.loopback_up {
                    let ns = req.netns.open()?;
                    netns::run_in(&ns, netns::loopback_up)??;
                }
                Ok(Attachment {
                    link: None,
                    etc: EtcFiles::for_container(&req.hostname, None, &resolv),
                })
            }
            NetMode::Host => {
                let hosts = std::fs::read_to_string(&self.opts.hosts).unwrap_or_default();
                Ok(Attachment {
                    link: None,
                    etc: EtcFiles::for_host(&req.hostname, &hosts, &resolv),
                })
            }
            NetMode::Container(other) => {
                let ns = other.open()?;
                let id = netns::identity(&ns).ok();
                let peer = attach::list(self.conn.borrow(), None)?
                    .into_iter()
                    .find(|l| Some(l.netns_id) == id);
                let addr = peer.map(|l| (l.ip, l.gateway));
                Ok(Attachment {
                    link: None,
                    etc: EtcFiles::for_container(&req.hostname, addr, &resolv),
                })
            }
        }
    }

    /// Removes every interface, rule and lease of a container; detaching a container that
    /// has none is not an error.
    pub fn detach(&mut self, container_id: &str) -> Result<(), NetError> {
        for link in attach::list(self.conn.borrow(), Some(container_id))? {
            attach::undo(self.conn.borrow_mut(), &link)?;
        }
        Ok(())
    }

    /// Makes the container known by `names` to the others on its user networks, and them to
    /// it, through the hosts file at `hosts_file` and theirs (see [`crate::names`]).
    pub fn publish_names(
        &mut self,
        container_id: &str,
        names: &[String],
        hosts_file: &Path,
    ) -> Result<(), NetError> {
        crate::names::publish(self.conn.borrow_mut(), container_id, names, hosts_file)
    }

    /// The container's current attachments.
    pub fn attachments(&mut self, container_id: Option<&str>) -> Result<Vec<Link>, NetError> {
        attach::list(self.conn.borrow(), container_id)
    }

    /// Removes veths, rules and leases of attachments whose namespace no longer exists.
    pub fn gc(&mut self) -> Result<GcReport, NetError> {
        let mut report = GcReport::default();
        for link in attach::list(self.conn.borrow(), None)? {
            if netns::still_alive(Path::new(&link.netns_path), link.netns_id) {
                continue;
            }
            attach::undo(self.conn.borrow_mut(), &link)?;
            report.removed.push((link.container_id, link.ifname));
        }
        // Leases without an attachment come from a process killed between its own
        // transaction and nothing else; there is none by construction, but a delegated or
        // older writer could leave one.
        self.conn.borrow().execute(
            "DELETE FROM net_leases WHERE NOT EXISTS (SELECT 1 FROM net_attachments a
               WHERE a.container_id = net_leases.container_id AND a.ifname = net_leases.ifname)",
            [],
        )?;
        Ok(report)
    }
}

/// The hostname goes into /etc/hosts and /etc/hostname: refuse anything but a DNS name.
fn check_hostname(name: &str) -> Result<(), NetError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= 63 && !label.starts_with('-'))
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(NetError::BadHostname(name.to_string()))
    }
}

/// Refuses a subnet that overlaps an address already on a host interface (other than hull's
/// own bridges), as podman does, so a network never hides part of the host's LAN.
fn check_host_overlap(subnet: &str) -> Result<(), NetError> {
    let Ok(net) = subnet.parse::<Ipv4Net>() else {
        return Ok(()); // network::create reports the syntax error
    };
    let mut nl = Netlink::open()?;
    for link in nl.link_list()? {
        for a in nl.addr_list(link.index)? {
            let theirs = Ipv4Net::containing(a.ip, a.prefix);
            if theirs.overlaps(&net) && !link.name.starts_with("hull") && link.name != "lo" {
                return Err(network::NetworkError::HostOverlap {
                    subnet: net,
                    other: theirs,
                    interface: link.name,
                }
                .into());
            }
        }
    }
    Ok(())
}

/// What a removed network held in the kernel: its bridge, and its subnet in hull's nftables
/// sets (the table itself once nothing else is in it). Only ever a bridge is deleted (the name
/// may have been taken by something else since), and only one that no other root shares: the
/// default network's bridge of every root is `hull0`, so while another root's gateway address
/// or container is on it, only this network's gateway address leaves it.
fn release_kernel_objects(net: &Network) -> Result<(), NetError> {
    // Whether a bridge or the table is unused holds only while no other process is making
    // or using one (`crate::host_lock`); without the lock the table stays.
    let held = crate::host_lock::exclusive();
    let mut nl = Netlink::open()?;
    if let Some(br) = nl
        .link_get(&net.bridge)?
        .filter(|l| l.kind.as_deref() == Some("bridge"))
    {
        let ported = nl.link_list()?.iter().any(|l| l.master == Some(br.index));
        let shared = nl
            .addr_list(br.index)?
            .iter()
            .any(|a| a.ip != net.gateway || a.prefix != net.subnet.prefix());
        if ported || shared {
            match nl.addr_del(br.index, net.gateway, net.subnet.prefix()) {
                Err(e) if e.errno() == Some(libc::EADDRNOTAVAIL) => {}
                other => other?,
            }
        } else {
            nl.link_delete(&net.bridge)?;
        }
    }
    let mut fw = Firewall::open()?;
    fw.remove_network(net.subnet)?;
    if let Some(held) = &held {
        fw.remove_table_if_empty(held)?;
    }
    Ok(())
}
