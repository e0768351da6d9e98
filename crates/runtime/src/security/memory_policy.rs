//! `linux.memoryPolicy`: the NUMA memory policy (set_mempolicy(2)) the process starts with, as
//! runc sets it: the mode with its flags, on the nodes given. Validated as the kernel would, so
//! a bad policy fails before clone and names the field; nodes that this host cannot have are
//! dropped, and the kernel uses those of the rest that the process may use.

use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType};

use super::error::SecurityError;
use crate::sys::mempolicy::set_mempolicy;

const MPOL_F_STATIC_NODES: i32 = 1 << 15;
const MPOL_F_RELATIVE_NODES: i32 = 1 << 14;
const MPOL_F_NUMA_BALANCING: i32 = 1 << 13;

/// Which nodes a mode takes, as runc and the kernel check it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Nodes {
    None,
    AtLeastOne,
    /// MPOL_PREFERRED: none means local allocation.
    Any,
}

fn mode_info(mode: MemoryPolicyModeType) -> (i32, Nodes) {
    match mode {
        MemoryPolicyModeType::MpolDefault => (0, Nodes::None),
        MemoryPolicyModeType::MpolPreferred => (1, Nodes::Any),
        MemoryPolicyModeType::MpolBind => (2, Nodes::AtLeastOne),
        MemoryPolicyModeType::MpolInterleave => (3, Nodes::AtLeastOne),
        MemoryPolicyModeType::MpolLocal => (4, Nodes::None),
        MemoryPolicyModeType::MpolPreferredMany => (5, Nodes::AtLeastOne),
        MemoryPolicyModeType::MpolWeightedInterleave => (6, Nodes::AtLeastOne),
    }
}

/// The modes and flags this runtime knows, for the features document.
pub fn memory_policy_features() -> serde_json::Value {
    serde_json::json!({
        "modes": ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                  "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"],
        "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
    })
}

/// The set_mempolicy arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct MemoryPolicyPlan {
    name: String,
    mode: i32,
    mask: Vec<u64>,
}

impl MemoryPolicyPlan {
    pub(super) fn new(p: &LinuxMemoryPolicy) -> Result<Self, SecurityError> {
        Self::with_host_nodes(p, host_node_limit())
    }

    /// `last_node`: the highest node number this host can ever have (hot-plugged ones included).
    fn with_host_nodes(p: &LinuxMemoryPolicy, last_node: u32) -> Result<Self, SecurityError> {
        let name = p.mode().to_string();
        let (mut mode, takes) = mode_info(p.mode());
        let err = |field: &str, why: String| SecurityError::MemoryPolicy {
            field: format!("linux.memoryPolicy{field}"),
            why,
        };
        for flag in p.flags().iter().flatten() {
            mode |= match flag {
                MemoryPolicyFlagType::MpolFStaticNodes => MPOL_F_STATIC_NODES,
                MemoryPolicyFlagType::MpolFRelativeNodes => MPOL_F_RELATIVE_NODES,
                MemoryPolicyFlagType::MpolFNumaBalancing => MPOL_F_NUMA_BALANCING,
            };
        }
        let placement = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES;
        if mode & placement == placement {
            return Err(err(
                ".flags",
                "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other".into(),
            ));
        }
        if mode & MPOL_F_NUMA_BALANCING != 0
            && !matches!(
                p.mode(),
                MemoryPolicyModeType::MpolBind | MemoryPolicyModeType::MpolPreferredMany
            )
        {
            return Err(err(
                ".flags",
                format!("MPOL_F_NUMA_BALANCING needs MPOL_BIND or MPOL_PREFERRED_MANY, not {name}"),
            ));
        }
        let text = p.nodes().as_deref().unwrap_or("").trim();
        let nodes_field = format!(".nodes {text:?}");
        let mut nodes = parse_node_list(text).map_err(|why| err(&nodes_field, why))?;
        match takes {
            Nodes::None if !nodes.is_empty() => {
                return Err(err("", format!("{name} takes no nodes")));
            }
            Nodes::AtLeastOne if nodes.is_empty() => {
                return Err(err("", format!("{name} needs at least one node")));
            }
            Nodes::Any if nodes.is_empty() && mode & placement != 0 => {
                return Err(err(
                    "",
                    format!("{name} without nodes (local allocation) takes no node flags"),
                ));
            }
            _ => {}
        }
        if mode & placement != 0 && p.mode() == MemoryPolicyModeType::MpolLocal {
            return Err(err("", format!("{name} takes no node flags")));
        }
        // Relative nodes are positions in the allowed set, not node numbers: the kernel folds
        // them. Otherwise a node above the host's last possible one can never exist here.
        if mode & MPOL_F_RELATIVE_NODES == 0 && !nodes.is_empty() {
            nodes.retain(|&n| n <= last_node);
            if nodes.is_empty() {
                return Err(err(
                    &nodes_field,
                    format!("none of these nodes exists on this host (its last is {last_node})"),
                ));
            }
        }
        let mut mask = Vec::new();
        for n in nodes {
            let word = usize::try_from(n / 64).unwrap_or(usize::MAX);
            if mask.len() <= word {
                mask.resize(word + 1, 0);
            }
            mask[word] |= 1u64 << (n % 64);
        }
        Ok(Self { name, mode, mask })
    }

    pub(super) fn apply(&self) -> Result<(), SecurityError> {
        set_mempolicy(self.mode, &self.mask).map_err(|source| SecurityError::MemoryPolicyApply {
            mode: self.name.clone(),
            source,
        })
    }
}

/// The kernel's own upper bound on a node number (MAX_NUMNODES is at most 1 << 10).
const MAX_NODE: u32 = (1 << 10) - 1;

/// "0-3,7" -> [0, 1, 2, 3, 7]; "" -> [].
fn parse_node_list(text: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    if text.is_empty() {
        return Ok(out);
    }
    for part in text.split(',') {
        let part = part.trim();
        let bad = || format!("{part:?} is not a node number or a range of them");
        let number = |s: &str| s.trim().parse::<u32>().map_err(|_| bad());
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(part)?, number(part)?),
        };
        if first > last {
            return Err(format!("{part:?} is a range from high to low"));
        }
        if last > MAX_NODE {
            return Err(format!(
                "node {last} is above the kernel's limit {MAX_NODE}"
            ));
        }
        out.extend(first..=last);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The last node of /sys/devices/system/node/possible; 0 on a kernel without NUMA.
fn host_node_limit() -> u32 {
    std::fs::read_to_string("/sys/devices/system/node/possible")
        .ok()
        .and_then(|s| parse_node_list(s.trim()).ok())
        .and_then(|v| v.last().copied())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(json: serde_json::Value) -> Result<MemoryPolicyPlan, String> {
        let p: LinuxMemoryPolicy = serde_json::from_value(json).expect("json");
        MemoryPolicyPlan::with_host_nodes(&p, 3).map_err(|e| e.to_string())
    }

    #[test]
    fn modes_flags_and_masks() {
        let p = plan(serde_json::json!({"mode": "MPOL_BIND", "nodes": "0-1,3,9", "flags": ["MPOL_F_STATIC_NODES"]}))
            .expect("plan");
        assert_eq!(
            (p.mode, p.mask.as_slice()),
            (2 | MPOL_F_STATIC_NODES, &[0b1011][..])
        );
        // Relative nodes are kept as given.
        let p = plan(serde_json::json!({"mode": "MPOL_INTERLEAVE", "nodes": "70", "flags": ["MPOL_F_RELATIVE_NODES"]}))
            .expect("plan");
        assert_eq!(p.mask, vec![0, 1 << 6]);
        let p = plan(serde_json::json!({"mode": "MPOL_PREFERRED"})).expect("plan");
        assert_eq!((p.mode, p.mask.len()), (1, 0));
    }

    #[test]
    fn refusals_name_the_field() {
        for (json, want) in [
            (
                serde_json::json!({"mode": "MPOL_DEFAULT", "nodes": "0"}),
                "linux.memoryPolicy: MPOL_DEFAULT takes no nodes",
            ),
            (
                serde_json::json!({"mode": "MPOL_WEIGHTED_INTERLEAVE"}),
                "linux.memoryPolicy: MPOL_WEIGHTED_INTERLEAVE needs at least one node",
            ),
            (
                serde_json::json!({"mode": "MPOL_BIND", "nodes": "0-x"}),
                "linux.memoryPolicy.nodes \"0-x\": \"0-x\" is not a node number or a range of them",
            ),
            (
                serde_json::json!({"mode": "MPOL_BIND", "nodes": "5000"}),
                "node 5000 is above",
            ),
            (
                serde_json::json!({"mode": "MPOL_BIND", "nodes": "4-6"}),
                "none of these nodes exists on this host (its last is 3)",
            ),
            (
                serde_json::json!({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]}),
                "needs MPOL_BIND or MPOL_PREFERRED_MANY",
            ),
            (
                serde_json::json!({"mode": "MPOL_PREFERRED", "flags": ["MPOL_F_STATIC_NODES"]}),
                "takes no node flags",
            ),
            (
                serde_json::json!({"mode": "MPOL_LOCAL", "flags": ["MPOL_F_RELATIVE_NODES"]}),
                "MPOL_LOCAL takes no node flags",
            ),
        ] {
            let e = plan(json.clone()).unwrap_err();
            assert!(e.contains(want), "{json}: {e}");
        }
    }
}
