//! The kernel's view of a container (`inspect --kernel`, and `Kernel` in `inspect`): the inode
//! of each of its namespaces as /proc/PID/ns shows it, its cgroup paths (hull-cgroups), the
//! limits it was given (its config.json's resources) and its usage (read through the runtime), its overlay (shared image layers below, its own
//! upper and work dirs) and its network attachment (veth pair, bridge, address, and its
//! elements in hull's nftables table: masquerade of its subnet, DNAT of its published ports). For a
//! container that is not running only the paths that exist are shown, and `Live` is false.

use std::os::unix::fs::MetadataExt;

use hull_runtime::Runtime;
use serde_json::{json, Value};

use crate::store::State;
use crate::{paths, Engine, EngineError};

/// The namespaces /proc/PID/ns lists.
const NAMESPACES: [&str; 8] = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];

impl Engine {
    /// What the kernel holds for the container, as JSON.
    pub fn kernel_view(&self, reference: &str) -> Result<Value, EngineError> {
        let r = self.find(reference)?;
        let dir = paths::container_dir(&self.root, &r.id);
        let lowers = hull_image::ImageStore::open(&self.root)?
            .rootfs_for(&r.settings.manifest)
            .map(|f| f.lowers)
            .unwrap_or_default();
        if let Some(vm) = &r.settings.vm {
            let pid = (r.state == State::Running)
                .then(|| crate::vm::vmm_pid(&self.root, &r.id))
                .flatten();
            let disks = hull_image::ImageStore::open(&self.root)?
                .layer_disk_paths(&r.settings.manifest)
                .unwrap_or_default();
            let network = self.network_view(&r.id)?;
            // The VM's NIC: a tap beside eth0 in the container's namespace, mirrored to it.
            let nics: Vec<Value> = network
                .iter()
                .map(|n| {
                    json!({
                        "Device": "virtio-net-device",
                        "Mac": n["Mac"],
                        "Tap": hull_net::tap::TAP_NAME,
                        "Mirrors": n["ContainerInterface"],
                    })
                })
                .collect();
            return Ok(json!({
                "Live": pid.is_some(),
                "Vm": crate::vm::kernel::view(vm, pid, &disks, &lowers),
                "Network": network,
                "Nics": nics,
            }));
        }
        // A container's root has the mount points' layer below the image's.
        let lowers = [lowers, vec![crate::mount_targets::path(&self.root)]].concat();
        let merged = dir.join("merged");
        let config: Value = std::fs::read_to_string(dir.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let mut limits = config["linux"]["resources"].clone();
        if let Some(l) = limits.as_object_mut() {
            // The device rules are the cgroup's access list, not a resource limit.
            l.remove("devices");
        }
        let mut view = json!({
            "Live": false,
            "Limits": limits,
            "Overlay": {
                "LowerDirs": lowers,
                "UpperDir": dir.join("upper"),
                "WorkDir": dir.join("work"),
                "MergedDir": merged,
                "Mounted": hull_image::overlay::is_mounted(&merged),
            },
        });
        view["Network"] = self.network_view(&r.id)?.into();
        if r.state != State::Running {
            return Ok(view);
        }
        let Ok(container) = Runtime::new(paths::runtime_root(&self.root)).open(&r.id) else {
            return Ok(view);
        };
        let pid = container.pid();
        view["Live"] = json!(true);
        view["Pid"] = json!(pid);
        view["Namespaces"] = NAMESPACES
            .iter()
            .filter_map(|ns| {
                let path = format!("/proc/{pid}/ns/{ns}");
                let md = std::fs::metadata(&path).ok()?;
                Some((
                    (*ns).to_string(),
                    json!({"Inode": md.ino(), "Device": md.dev()}),
                ))
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        view["Cgroups"] = hull_cgroups::process_dirs(pid)
            .unwrap_or_default()
            .into_iter()
            .map(|(controllers, path, dir)| {
                json!({"Controllers": controllers.join(","), "Path": path, "Dir": dir})
            })
            .collect();
        view["Resources"] = container
            .watch()
            .stats()
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        Ok(view)
    }

    /// The container's network attachments: veth, bridge, address, its nftables elements.
    fn network_view(&self, id: &str) -> Result<Vec<Value>, EngineError> {
        let mut net = hull_net::engine::Net::open(&self.root)?;
        let links = net.attachments(Some(id))?;
        let mut firewall = hull_net::nft::Firewall::open().ok();
        let mut nets = Vec::new();
        for l in &links {
            let network = net.network(&l.network).ok();
            let nft = match (&mut firewall, &network) {
                (Some(fw), Some(n)) => json!({
                    "Table": hull_net::nft::TABLE,
                    "Subnet": n.subnet.to_string(),
                    "Masquerade": fw.masquerades(n.subnet).ok(),
                    "PublishedPorts": l.ports.iter().map(|p| json!({
                        "Port": p.to_string(),
                        "Dnat": fw.publishes(p).ok(),
                    })).collect::<Vec<_>>(),
                }),
                _ => Value::Null,
            };
            nets.push(json!({
                "Network": l.network,
                "Bridge": network.map(|n| n.bridge).unwrap_or_default(),
                "HostVeth": l.host_veth,
                "ContainerInterface": l.ifname,
                "Address": format!("{}/{}", l.ip, l.prefix),
                "Gateway": l.gateway,
                "Mac": l.mac,
                "NetnsPath": l.netns_path,
                "Nft": nft,
            }));
        }
        Ok(nets)
    }
}

/// The short readable report of `inspect --kernel`.
pub fn report(name: &str, v: &Value) -> String {
    let mut out = format!("container {name}\n");
    let live = v["Live"].as_bool().unwrap_or(false);
    if !v["Vm"].is_null() {
        if !live {
            out.push_str(
                "  not running: no VMM, guest memory or vCPU threads
",
            );
        }
        out.push_str(&crate::vm::kernel::report(&v["Vm"]));
        for n in v["Nics"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  nic {} (mac {}) <- tap {} in the container's netns, tc redirect <-> {}\n",
                n["Device"].as_str().unwrap_or_default(),
                n["Mac"].as_str().unwrap_or_default(),
                n["Tap"].as_str().unwrap_or_default(),
                n["Mirrors"].as_str().unwrap_or_default(),
            ));
        }
        network_report(&mut out, v);
        return out;
    }
    if live {
        out.push_str(&format!("  pid {}\n  namespaces:\n", v["Pid"]));
        for (ns, info) in v["Namespaces"].as_object().into_iter().flatten() {
            out.push_str(&format!("    {ns:<7} {}\n", info["Inode"]));
        }
        out.push_str("  cgroups:\n");
        for c in v["Cgroups"].as_array().into_iter().flatten() {
            let ctrl = c["Controllers"].as_str().unwrap_or_default();
            let ctrl = if ctrl.is_empty() { "(v2)" } else { ctrl };
            out.push_str(&format!(
                "    {ctrl:<12} {}\n",
                c["Dir"].as_str().unwrap_or_default()
            ));
        }
        let res = &v["Resources"];
        let mem = &res["memory"]["usage"];
        let cpu = &v["Limits"]["cpu"];
        if let (Some(quota), Some(period)) = (cpu["quota"].as_i64(), cpu["period"].as_u64()) {
            out.push_str(&format!("  cpu limit: {quota} us per {period} us\n"));
        }
        out.push_str(&format!(
            "  memory: usage {} limit {}\n  pids: current {} limit {}\n  cpu: {} ns used\n",
            mem["usage"].as_u64().unwrap_or(0),
            limit(&mem["limit"]),
            res["pids"]["current"].as_u64().unwrap_or(0),
            limit(&res["pids"]["limit"]),
            res["cpu"]["usage"]["total"].as_u64().unwrap_or(0),
        ));
    } else {
        out.push_str("  not running: namespaces, cgroups and usage are not live\n");
    }
    let ov = &v["Overlay"];
    out.push_str(&format!(
        "  overlay{}:\n",
        if ov["Mounted"].as_bool().unwrap_or(false) {
            ""
        } else {
            " (not mounted)"
        }
    ));
    for l in ov["LowerDirs"].as_array().into_iter().flatten() {
        out.push_str(&format!("    lower  {}\n", l.as_str().unwrap_or_default()));
    }
    for key in ["UpperDir", "WorkDir", "MergedDir"] {
        out.push_str(&format!(
            "    {:<6} {}\n",
            key.trim_end_matches("Dir").to_lowercase(),
            ov[key].as_str().unwrap_or_default()
        ));
    }
    network_report(&mut out, v);
    out
}

/// The report lines of the network attachments.
fn network_report(out: &mut String, v: &Value) {
    for n in v["Network"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  network {}: veth {} <-> {} on bridge {}, address {}\n",
            n["Network"].as_str().unwrap_or_default(),
            n["HostVeth"].as_str().unwrap_or_default(),
            n["ContainerInterface"].as_str().unwrap_or_default(),
            n["Bridge"].as_str().unwrap_or_default(),
            n["Address"].as_str().unwrap_or_default(),
        ));
        let nft = &n["Nft"];
        if !nft.is_null() {
            let ports: Vec<&str> = nft["PublishedPorts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["Dnat"].as_bool() == Some(true))
                .filter_map(|p| p["Port"].as_str())
                .collect();
            out.push_str(&format!(
                "    nft table {}: subnet {} masquerade {}, dnat {}\n",
                nft["Table"].as_str().unwrap_or_default(),
                nft["Subnet"].as_str().unwrap_or_default(),
                if nft["Masquerade"].as_bool() == Some(true) {
                    "on"
                } else {
                    "off"
                },
                if ports.is_empty() {
                    "none".to_string()
                } else {
                    ports.join(", ")
                },
            ));
        }
    }
}

/// A limit as a number, or "max" for none (cgroup's own word).
fn limit(v: &Value) -> String {
    match v.as_u64() {
        Some(n) if n > 0 && n < u64::MAX / 2 => n.to_string(),
        _ => "max".into(),
    }
}
