//! `hull network`: create, list, inspect, remove and clean up container networks.

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::Context;
use clap::Subcommand;
use hull_net::engine::Net;
use hull_net::network::NetworkSpec;

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a bridge network.
    Create {
        /// Network name.
        name: String,
        /// IPv4 subnet in CIDR form, e.g. 10.89.0.0/24 (default: the first free 10.89.N.0/24).
        #[arg(long)]
        subnet: Option<String>,
        /// Gateway address (default: the subnet's first address).
        #[arg(long)]
        gateway: Option<Ipv4Addr>,
        /// No egress: no masquerade and no default route in containers.
        #[arg(long)]
        internal: bool,
        /// Bridge interface name (default: hullN).
        #[arg(long = "interface-name")]
        bridge: Option<String>,
        /// MTU of the bridge and the containers' interfaces.
        #[arg(long)]
        mtu: Option<u32>,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Print names only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show networks as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks that no container uses.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove veths, port rules and leases of containers whose network namespace is gone.
    Gc,
}

pub fn run(root: &Path, cmd: NetworkCommand) -> anyhow::Result<()> {
    let mut net = Net::open(root)?;
    match cmd {
        NetworkCommand::Create {
            name,
            subnet,
            gateway,
            internal,
            bridge,
            mtu,
        } => {
            let subnet = match subnet {
                Some(s) => s,
                None => net.free_subnet()?,
            };
            let mut spec = NetworkSpec::new(&name, &subnet);
            spec.gateway = gateway;
            spec.internal = internal;
            spec.bridge = bridge;
            spec.mtu = mtu;
            let n = net.create_network(&spec)?;
            println!("{}", n.name);
        }
        NetworkCommand::Ls { quiet } => {
            net.default_network()?;
            let nets = net.networks()?;
            if !quiet {
                println!(
                    "{:<20} {:<12} {:<18} {:<15} INTERNAL",
                    "NAME", "BRIDGE", "SUBNET", "GATEWAY"
                );
            }
            for n in nets {
                if quiet {
                    println!("{}", n.name);
                } else {
                    println!(
                        "{:<20} {:<12} {:<18} {:<15} {}",
                        n.name,
                        n.bridge,
                        n.subnet.to_string(),
                        n.gateway.to_string(),
                        n.internal
                    );
                }
            }
        }
        NetworkCommand::Inspect { names } => {
            let nets = names
                .iter()
                .map(|n| net.network(n))
                .collect::<Result<Vec<_>, _>>()?;
            println!("{}", serde_json::to_string_pretty(&nets)?);
        }
        NetworkCommand::Rm { names } => {
            for name in names {
                net.remove_network(&name)
                    .with_context(|| format!("network rm {name}"))?;
                println!("{name}");
            }
        }
        NetworkCommand::Gc => {
            for (id, ifname) in net.gc()?.removed {
                println!("removed {id} {ifname}");
            }
        }
    }
    Ok(())
}
