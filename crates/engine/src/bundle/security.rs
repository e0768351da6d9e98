//! The security part of a container's config from `--cap-add/--cap-drop`, `--privileged`,
//! `--read-only`, `--security-opt no-new-privileges` and `--device`, as docker sets them.

use std::path::Path;

use serde_json::{json, Value};

use super::defaults;
use crate::options::RunOptions;
use crate::run_flags::{self, DeviceSpec};

/// The container's capabilities: every one this host can grant when privileged, else docker's
/// rule over podman's defaults.
pub fn capabilities(opts: &RunOptions, grantable: &[String]) -> Vec<String> {
    if opts.privileged {
        return grantable.to_vec();
    }
    run_flags::capabilities(
        &defaults::CAPABILITIES,
        grantable,
        &opts.cap_add,
        &opts.cap_drop,
    )
}

/// Every device node under the host's /dev (docker gives them all to a privileged container),
/// except the per-container ones the runtime makes (pts, shm, mqueue) and the console.
pub fn host_devices() -> Vec<DeviceSpec> {
    run_flags::nodes_under(Path::new("/dev"))
        .into_iter()
        .filter(|(path, _)| {
            !path.starts_with("/dev/pts")
                && !path.starts_with("/dev/shm")
                && !path.starts_with("/dev/mqueue")
                && path != Path::new("/dev/console")
        })
        .filter_map(|(path, node)| {
            let p = path.to_str()?.to_string();
            Some(DeviceSpec {
                host_path: p.clone(),
                container_path: p,
                access: "rwm".into(),
                node,
            })
        })
        .collect()
}

/// Sets capabilities, no-new-privileges, the root's read-only flag, the devices and, for a
/// privileged container, the lifting of masked and read-only paths and of the read-only /sys.
pub fn apply(config: &mut Value, opts: &RunOptions, caps: &[String], devices: &[DeviceSpec]) {
    config["process"]["capabilities"] = json!({
        "bounding": caps,
        "effective": caps,
        "permitted": caps,
    });
    config["process"]["noNewPrivileges"] = json!(opts.no_new_privileges);
    config["root"]["readonly"] = json!(opts.read_only);
    let linux = &mut config["linux"];
    let mut rules = vec![json!({"allow": false, "access": "rwm"})];
    if opts.privileged {
        linux["maskedPaths"] = json!([]);
        linux["readonlyPaths"] = json!([]);
        rules.push(json!({"allow": true, "access": "rwm"}));
        if let Some(mounts) = config["mounts"].as_array_mut() {
            for m in mounts
                .iter_mut()
                .filter(|m| matches!(m["destination"].as_str(), Some("/sys" | "/sys/fs/cgroup")))
            {
                if let Some(o) = m["options"].as_array_mut() {
                    o.retain(|v| v != "ro");
                    o.push(json!("rw"));
                }
            }
        }
    }
    let mut nodes = Vec::new();
    for d in devices {
        if !opts.privileged {
            rules.push(json!({
                "allow": true,
                "type": d.node.kind.to_string(),
                "major": d.node.major,
                "minor": d.node.minor,
                "access": d.access,
            }));
        }
        // The runtime allows rwm on every node it makes (runc's rule); a narrower access is
        // kept by binding the host's node instead, so only the rule above applies to it.
        if d.access != "rwm" {
            if let Some(mounts) = config["mounts"].as_array_mut() {
                mounts.push(json!({
                    "destination": d.container_path,
                    "type": "bind",
                    "source": d.host_path,
                    "options": ["bind", "rprivate", "nosuid"],
                }));
            }
            continue;
        }
        nodes.push(json!({
            "path": d.container_path,
            "type": d.node.kind.to_string(),
            "major": d.node.major,
            "minor": d.node.minor,
            "fileMode": d.node.mode,
            "uid": d.node.uid,
            "gid": d.node.gid,
        }));
    }
    let linux = &mut config["linux"];
    if !nodes.is_empty() {
        linux["devices"] = json!(nodes);
    }
    linux["resources"]["devices"] = json!(rules);
}
