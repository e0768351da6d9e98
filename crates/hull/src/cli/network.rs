//! `hull network`: create, list, inspect, remove and clean up container networks.

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::Context;
use clap::Subcommand;
use hull_net::engine::Net;
use hull_net::network::{Network, NetworkSpec};

use super::format;

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a bridge network.
    Create {
        /// Network name.
        name: String,
        /// IPv4 subnet in CIDR form, e.g. 10.80.5.0/24 (default: the first free /24 of
        /// 10.80.0.0/13 that no network uses and the host does not route).
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
        /// Full network ids.
        #[arg(long)]
        no_trunc: bool,
        /// table (default), json (one object per line, with subnets), or a template such as
        /// '{{.Name}} {{.Subnets}}'.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Show networks as JSON.
    Inspect {
        /// Network names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks that no container uses.
    #[command(alias = "remove")]
    Rm {
        /// Network names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove veths, port rules and leases of containers whose network namespace is gone.
    Gc,
}

pub fn run(root: &Path, cmd: NetworkCommand) -> anyhow::Result<()> {
    // Read-only commands on a root that does not exist yet create nothing.
    if !hull_db::path(root).exists() {
        match &cmd {
            NetworkCommand::Ls {
                quiet,
                no_trunc,
                format,
            } => return list(&[], *quiet, *no_trunc, format),
            NetworkCommand::Inspect { names } => {
                anyhow::bail!("no network named {}", names[0])
            }
            _ => {}
        }
    }
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
        NetworkCommand::Ls {
            quiet,
            no_trunc,
            format,
        } => {
            net.default_network()?;
            list(&net.networks()?, quiet, no_trunc, &format)?;
        }
        NetworkCommand::Inspect { names } => {
            let mut docs = Vec::new();
            for n in &names {
                let n = net.network(n)?;
                let mut v = serde_json::to_value(&n)?;
                v["created"] = created(&n).into();
                docs.push(v);
            }
            println!("{}", serde_json::to_string_pretty(&docs)?);
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

/// Titles of the fields for a `table ...` template, as docker's.
const HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("CreatedAt", "CREATED AT"),
];

/// A network's creation time in RFC 3339, as docker prints dates.
fn created(n: &Network) -> String {
    hull_image::time::rfc3339(u64::try_from(n.created).unwrap_or(0))
}

/// docker's `network ls --format json` object, with the subnets and gateway beside.
fn json_row(n: &Network, no_trunc: bool) -> serde_json::Value {
    let id = if no_trunc {
        n.id.clone()
    } else {
        n.id.chars().take(12).collect()
    };
    serde_json::json!({
        "ID": id,
        "Name": n.name,
        "Driver": "bridge",
        "Scope": "local",
        "IPv6": "false",
        "Internal": n.internal.to_string(),
        "CreatedAt": created(n),
        "Subnets": [n.subnet.to_string()],
        "Gateway": n.gateway.to_string(),
        "Bridge": n.bridge,
        "Labels": "",
    })
}

/// `network ls`: docker's columns (NETWORK ID, NAME, DRIVER, SCOPE), json lines or a
/// template.
fn list(nets: &[Network], quiet: bool, no_trunc: bool, fmt: &str) -> anyhow::Result<()> {
    if quiet {
        for n in nets {
            println!("{}", n.name);
        }
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = nets.iter().map(|n| json_row(n, no_trunc)).collect();
    match fmt {
        "table" => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    ["ID", "Name", "Driver", "Scope"]
                        .iter()
                        .map(|k| r[*k].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .collect();
            format::table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &cells);
        }
        "json" => {
            for r in &rows {
                println!("{r}");
            }
        }
        tmpl if tmpl.contains("{{") => {
            format::print_json_rows(tmpl, &rows, HEADERS)?;
        }
        other => anyhow::bail!(
            "--format {other:?}: expected table, json or a template like '{{{{.Name}}}}'"
        ),
    }
    Ok(())
}
