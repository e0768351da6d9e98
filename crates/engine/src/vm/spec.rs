//! What the guest agent is asked to run for a VM-isolated container, from the container's
//! config.json (the same bundle a container gets): the main process with its hostname and the
//! image's layer disks as its root, and the process settings `exec` starts from.

use std::path::Path;

use hull_vmm::proto::{ProcessSpec, Rlimit, RootSpec, RunSpec};
use serde_json::Value;

use super::qemu;
use crate::error::EngineError;
use crate::paths;
use crate::store::Record;

/// The container's config.json.
pub(crate) fn config(root: &Path, id: &str) -> Result<Value, EngineError> {
    let path = paths::container_dir(root, id).join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(EngineError::io(format!("reading {}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| EngineError::Invalid(format!("{}: {e}", path.display())))
}

/// The guest's view of the container's config.json: its process and hostname; the root is
/// the image's layers, `hull-layer0` (the top one) on the others, under a tmpfs upper layer.
pub(crate) fn run_spec(root: &Path, record: &Record) -> Result<RunSpec, EngineError> {
    let config = config(root, &record.id)?;
    let layers = hull_image::ImageStore::open(root)?
        .rootfs_for(&record.settings.manifest)?
        .lowers
        .len();
    Ok(spec_of(&config, layers))
}

fn spec_of(config: &Value, layers: usize) -> RunSpec {
    RunSpec {
        hostname: config["hostname"].as_str().unwrap_or("hull").to_string(),
        root: Some(RootSpec {
            serial: qemu::layer_serial(0),
            overlay: true,
            read_only: true,
            lower_serials: (1..layers).map(qemu::layer_serial).collect(),
        }),
        process: process_of(&config["process"]),
    }
}

/// An OCI `process` as the agent takes it (no terminal: the agent's terminal is asked for
/// apart).
pub(crate) fn process_of(p: &Value) -> ProcessSpec {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let num = |v: &Value| u32::try_from(v.as_u64().unwrap_or(0)).unwrap_or(0);
    let rlimits = p["rlimits"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| Rlimit {
                    kind: r["type"].as_str().unwrap_or_default().to_string(),
                    soft: r["soft"].as_u64().unwrap_or(0),
                    hard: r["hard"].as_u64().unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    ProcessSpec {
        args: strings(&p["args"]),
        env: strings(&p["env"]),
        cwd: p["cwd"].as_str().unwrap_or("/").to_string(),
        uid: num(&p["user"]["uid"]),
        gid: num(&p["user"]["gid"]),
        additional_gids: p["user"]["additionalGids"]
            .as_array()
            .map(|a| a.iter().map(num).collect())
            .unwrap_or_default(),
        terminal: false,
        rlimits,
        no_new_privileges: p["noNewPrivileges"].as_bool().unwrap_or(false),
        // Not yet from the config: the VM is the boundary, and the engine refuses --cap-* and
        // seccomp options with --isolation vm, so the guest keeps root's full set.
        ..ProcessSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_gets_the_configs_process_and_every_layer() {
        let config = serde_json::json!({
            "hostname": "h1",
            "process": {
                "args": ["sh", "-c", "true"],
                "env": ["PATH=/bin"],
                "cwd": "/tmp",
                "user": {"uid": 1000, "gid": 100, "additionalGids": [10, 20]},
                "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}],
                "noNewPrivileges": true
            }
        });
        let s = spec_of(&config, 3);
        assert_eq!(s.hostname, "h1");
        assert_eq!(s.process.args, ["sh", "-c", "true"]);
        assert_eq!((s.process.uid, s.process.gid), (1000, 100));
        assert_eq!(s.process.additional_gids, [10, 20]);
        assert_eq!(s.process.rlimits[0].kind, "RLIMIT_NOFILE");
        assert!(s.process.no_new_privileges);
        let r = s.root.unwrap();
        assert_eq!(r.serial, "hull-layer0");
        assert_eq!(r.lower_serials, ["hull-layer1", "hull-layer2"]);
    }
}
