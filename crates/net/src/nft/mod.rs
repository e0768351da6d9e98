//! hull's own nftables table (`ip hull`): DNAT for published ports (from other hosts, from
//! containers, and from the host itself including 127.0.0.1), hairpin and localhost
//! masquerade, and egress masquerade per non-internal subnet.
//!
//! Through libnftables (the library `nft` is built on) rather than a netlink crate: one text
//! batch is one atomic netlink transaction, and it handles what hull's rules need (fib,
//! concatenated maps with `dnat ... map`, interval sets) that the Rust netlink nftables crates
//! cover only partly. The rules are fixed; containers and networks only add and remove map
//! and set elements, so nothing ever looks up rule handles, and removing a container removes
//! exactly its elements.

mod ffi;

use std::net::Ipv4Addr;

use crate::cidr::Ipv4Net;
use crate::host_lock;
use crate::ports::PortMapping;

/// The table's family and name.
pub const TABLE: &str = "ip hull";

/// Errors from nftables.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("cannot create an nftables context (libnftables): {0}")]
    Init(String),
    #[error("host port {0} is already published by another hull root (nftables map entry exists)")]
    PortExists(String),
    #[error("nftables: {what}: {detail}")]
    Command { what: String, detail: String },
}

const DEFINITION: &str = "
table ip hull {
  map dnat_ports { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
  map dnat_any { type inet_proto . inet_service : ipv4_addr . inet_service; }
  set nets { type ipv4_addr; flags interval; }
  set masq_nets { type ipv4_addr; flags interval; }
  chain ports {
    dnat ip to ip daddr . meta l4proto . th dport map @dnat_ports
    dnat ip to meta l4proto . th dport map @dnat_any
  }
  chain prerouting { type nat hook prerouting priority dstnat; policy accept; fib daddr type local jump ports; }
  chain output { type nat hook output priority -100; policy accept; fib daddr type local jump ports; }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
    ct status dnat ip saddr 127.0.0.0/8 masquerade
    ct status dnat ip saddr @nets ip daddr @nets masquerade
    ip saddr @masq_nets ip daddr != @nets ip daddr != 224.0.0.0/4 masquerade
  }
}
";

/// A libnftables context bound to hull's table.
#[derive(Debug)]
pub struct Firewall {
    ctx: ffi::Ctx,
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| l.starts_with("Error:"))
        .unwrap_or_else(|| s.lines().next().unwrap_or("").trim())
        .to_string()
}

fn missing(err: &str) -> bool {
    err.contains("No such file or directory") || err.contains("does not exist")
}

impl Firewall {
    pub fn open() -> Result<Firewall, NftError> {
        Ok(Firewall {
            ctx: ffi::Ctx::new().map_err(NftError::Init)?,
        })
    }

    /// Creates the table with its fixed rules if missing. `create table` makes the batch fail
    /// when another process won the race, which then is success.
    fn ensure_table(&mut self) -> Result<(), NftError> {
        let batch = format!("create table ip hull\n{DEFINITION}");
        match self.ctx.run(&batch) {
            Ok(_) => Ok(()),
            Err(e) if e.contains("File exists") => Ok(()),
            Err(e) => Err(NftError::Command {
                what: "create table ip hull".to_string(),
                detail: one_line(&e),
            }),
        }
    }

    /// Runs `cmds` as one batch, creating the table first when it is missing.
    fn apply(&mut self, what: &str, cmds: &[String]) -> Result<(), NftError> {
        if cmds.is_empty() {
            return Ok(());
        }
        let batch = cmds.join("\n");
        match self.ctx.run(&batch) {
            Ok(_) => Ok(()),
            Err(e) if missing(&e) => {
                self.ensure_table()?;
                self.ctx
                    .run(&batch)
                    .map(drop)
                    .map_err(|e| NftError::Command {
                        what: what.to_string(),
                        detail: one_line(&e),
                    })
            }
            Err(e) => Err(NftError::Command {
                what: what.to_string(),
                detail: one_line(&e),
            }),
        }
    }

    /// Removes elements: in one batch when all exist, else one by one, ignoring absent ones
    /// (cleanup after a crash may find some already gone).
    fn remove(&mut self, what: &str, cmds: &[String]) -> Result<(), NftError> {
        if cmds.is_empty() || self.ctx.run(&cmds.join("\n")).is_ok() {
            return Ok(());
        }
        for cmd in cmds {
            match self.ctx.run(cmd) {
                Ok(_) => {}
                Err(e) if missing(&e) => {}
                Err(e) => {
                    return Err(NftError::Command {
                        what: what.to_string(),
                        detail: one_line(&e),
                    })
                }
            }
        }
        Ok(())
    }

    /// Registers a network's subnet (for hairpin) and, unless internal, its masquerade,
    /// together with a container's published ports, in one transaction; under the host lock
    /// held shared, as the table is deleted, once empty, only under it held exclusive.
    pub(crate) fn add_attachment(
        &mut self,
        _held: &host_lock::Shared,
        subnet: Ipv4Net,
        masquerade: bool,
        container_ip: Ipv4Addr,
        ports: &[PortMapping],
    ) -> Result<(), NftError> {
        let mut nets = vec![format!("add element ip hull nets {{ {subnet} }}")];
        if masquerade {
            nets.push(format!("add element ip hull masq_nets {{ {subnet} }}"));
        }
        let port_cmds: Vec<String> = ports
            .iter()
            .map(|p| port_cmd("add", p, Some(container_ip)))
            .collect();
        let what = format!("publish ports of {container_ip}");
        let all: Vec<String> = nets.iter().chain(&port_cmds).cloned().collect();
        match self.apply(&what, &all) {
            Err(NftError::Command { detail, .. }) if detail.contains("File exists") => {
                // Find out which part exists: the subnets are shared and may be there already;
                // a port entry under the same key belongs to another container.
                for cmd in &nets {
                    match self.apply(&what, std::slice::from_ref(cmd)) {
                        Err(NftError::Command { detail, .. }) if detail.contains("File exists") => {
                        }
                        other => other?,
                    }
                }
                match self.apply(&what, &port_cmds) {
                    Err(NftError::Command { detail, .. }) if detail.contains("File exists") => {
                        let shown: Vec<String> = ports.iter().map(ToString::to_string).collect();
                        Err(NftError::PortExists(shown.join(", ")))
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    /// Removes a container's published ports.
    pub fn remove_ports(&mut self, ports: &[PortMapping]) -> Result<(), NftError> {
        let cmds: Vec<String> = ports.iter().map(|p| port_cmd("delete", p, None)).collect();
        self.remove("remove published ports", &cmds)
    }

    /// Removes a network's subnet from hull's sets (when the network is removed).
    pub fn remove_network(&mut self, subnet: Ipv4Net) -> Result<(), NftError> {
        let cmds = vec![
            format!("delete element ip hull nets {{ {subnet} }}"),
            format!("delete element ip hull masq_nets {{ {subnet} }}"),
        ];
        self.remove(&format!("remove network {subnet}"), &cmds)
    }

    /// Deletes the table when nothing is left in it (no network's subnet, no published port:
    /// the last network of every root is gone), so removing hull's networks leaves nothing of
    /// hull in the host's nftables; under the host lock held exclusive, so that no other
    /// process adds its elements meanwhile (`crate::host_lock`). Returns whether it was deleted.
    pub(crate) fn remove_table_if_empty(
        &mut self,
        _held: &host_lock::Exclusive,
    ) -> Result<bool, NftError> {
        let listed = self.list()?;
        if listed.is_empty() || listed.contains("elements =") {
            return Ok(false);
        }
        match self.ctx.run(&format!("delete table {TABLE}")) {
            Ok(_) => Ok(true),
            Err(e) if missing(&e) => Ok(false),
            Err(e) => Err(NftError::Command {
                what: format!("delete table {TABLE}"),
                detail: one_line(&e),
            }),
        }
    }

    /// The table as `nft list` prints it (empty when it does not exist); for checks and tests.
    pub fn list(&mut self) -> Result<String, NftError> {
        match self.ctx.run("list table ip hull") {
            Ok(out) => Ok(out),
            Err(e) if missing(&e) => Ok(String::new()),
            Err(e) => Err(NftError::Command {
                what: "list table ip hull".to_string(),
                detail: one_line(&e),
            }),
        }
    }

    /// Whether egress from `subnet` is masqueraded.
    pub fn masquerades(&mut self, subnet: Ipv4Net) -> Result<bool, NftError> {
        match self
            .ctx
            .run(&format!("get element ip hull masq_nets {{ {subnet} }}"))
        {
            Ok(_) => Ok(true),
            Err(e) if missing(&e) => Ok(false),
            Err(e) => Err(NftError::Command {
                what: format!("look up masquerade of {subnet}"),
                detail: one_line(&e),
            }),
        }
    }

    /// Whether a published host port has a DNAT entry.
    pub fn publishes(&mut self, p: &PortMapping) -> Result<bool, NftError> {
        match self.ctx.run(&port_cmd("get", p, None)) {
            Ok(_) => Ok(true),
            Err(e) if missing(&e) => Ok(false),
            Err(e) => Err(NftError::Command {
                what: format!("look up published port {p}"),
                detail: one_line(&e),
            }),
        }
    }
}

fn port_cmd(verb: &str, p: &PortMapping, target: Option<Ipv4Addr>) -> String {
    let value = target
        .map(|ip| format!(" : {ip} . {}", p.container_port))
        .unwrap_or_default();
    let proto = p.proto.as_str();
    if p.host_ip.is_unspecified() {
        format!(
            "{verb} element ip hull dnat_any {{ {proto} . {}{value} }}",
            p.host_port
        )
    } else {
        format!(
            "{verb} element ip hull dnat_ports {{ {} . {proto} . {}{value} }}",
            p.host_ip, p.host_port
        )
    }
}
