//! What the guest agent is asked to run for a VM-isolated container, from the container's
//! config.json (the same bundle a container gets): the main process with its hostname and the
//! image's layer disks as its root, and the process settings `exec` starts from, with the
//! container's capabilities, no_new_privs and seccomp filter (compiled here: the guest has no
//! compiler), so the VM's process is confined as the container's would be.

use std::path::Path;

use hull_net::tap::InterfaceConfig;
use hull_vmm::proto::{
    Capabilities, FileSpec, InterfaceSpec, ProcessSpec, Rlimit, RootSpec, RunSpec, SeccompFilter,
};
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
    let mut spec = spec_of(&config, layers);
    spec.process = process_spec(root, &config)?;
    Ok(spec)
}

/// The container's process for the guest (the main one, and what `exec` starts from), with
/// its seccomp filter.
pub(crate) fn process_spec(root: &Path, config: &Value) -> Result<ProcessSpec, EngineError> {
    let mut p = process_of(&config["process"]);
    p.seccomp = seccomp_of(root, config)?;
    Ok(p)
}

/// config.json's `linux.seccomp` compiled for the guest; none without one (unconfined).
fn seccomp_of(root: &Path, config: &Value) -> Result<Option<SeccompFilter>, EngineError> {
    let section = &config["linux"]["seccomp"];
    if section.is_null() {
        return Ok(None);
    }
    guest_seccomp(root, section).map(Some)
}

/// An OCI `linux.seccomp` object compiled for a guest's process by the runtime of the engine
/// at `root` (whose cache keeps compiled filters).
pub fn guest_seccomp(root: &Path, section: &Value) -> Result<SeccompFilter, EngineError> {
    let runtime = hull_runtime::Runtime::new(paths::vm_runtime_root(root));
    let (flags, program) = runtime.compile_seccomp(section)?;
    let program: Vec<_> = program.iter().map(|f| (f.code, f.jt, f.jf, f.k)).collect();
    Ok(SeccompFilter::new(flags, &program))
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
        files: etc_files(config),
        ..RunSpec::default()
    }
}

/// The files config.json binds over the image's /etc (the container's hosts, hostname and
/// resolv.conf, which its monitor wrote), with their contents: the guest binds them in its
/// root as the runtime binds them in a container's.
fn etc_files(config: &Value) -> Vec<FileSpec> {
    config["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["type"] == "bind")
        .filter_map(|m| {
            let path = m["destination"].as_str()?;
            let name = path.strip_prefix("/etc/")?;
            if !ETC_FILES.contains(&name) {
                return None;
            }
            let contents = std::fs::read_to_string(m["source"].as_str()?).ok()?;
            Some(FileSpec {
                path: path.to_string(),
                contents,
            })
        })
        .collect()
}

/// The /etc files a container's monitor writes.
const ETC_FILES: [&str; 3] = ["hosts", "hostname", "resolv.conf"];

/// The guest's interface taking over a host interface's configuration (a tap's mirror).
pub fn interface_of(i: &InterfaceConfig) -> InterfaceSpec {
    InterfaceSpec {
        name: i.name.clone(),
        mac: i.mac.clone(),
        mtu: i.mtu,
        addresses: i.addresses.clone(),
        gateway: i.gateway,
    }
}

/// An OCI `process` as the agent takes it (no terminal: the agent's terminal is asked for
/// apart; no seccomp filter: that is [`seccomp_of`]'s).
pub fn process_of(p: &Value) -> ProcessSpec {
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
        // As the OCI runtime spec: a process without `capabilities` has none.
        capabilities: Some(
            serde_json::from_value::<Capabilities>(p["capabilities"].clone()).unwrap_or_default(),
        ),
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
        // No `capabilities`: none, as an OCI runtime gives.
        assert_eq!(s.process.capabilities, Some(Capabilities::default()));
    }

    #[test]
    fn capabilities_and_seccomp_reach_the_guest() {
        let config = serde_json::json!({
            "process": {
                "args": ["true"],
                "capabilities": {
                    "bounding": ["CAP_CHOWN", "CAP_KILL"],
                    "effective": ["CAP_KILL"],
                    "permitted": ["CAP_CHOWN", "CAP_KILL"]
                }
            },
            "linux": {"seccomp": {
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
            }}
        });
        let root = std::env::temp_dir().join(format!("hull-vm-spec-{}", std::process::id()));
        let spec = process_spec(&root, &config);
        let unconfined = process_spec(&root, &serde_json::json!({"process": {}}));
        let _ = std::fs::remove_dir_all(&root);
        let spec = spec.unwrap();
        let caps = spec.capabilities.unwrap();
        assert_eq!(caps.bounding, ["CAP_CHOWN", "CAP_KILL"]);
        assert_eq!(caps.effective, ["CAP_KILL"]);
        assert!(caps.ambient.is_empty() && caps.inheritable.is_empty());
        let prog = spec.seccomp.unwrap().instructions().unwrap();
        assert!(prog.len() > 3, "{prog:?}");
        assert_eq!(unconfined.unwrap().seccomp, None);
    }
}
