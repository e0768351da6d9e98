//! A VM container's directory under the runtime's `--root` (`<root>/<id>/`) and what it
//! remembers in `vm.json` (written by rename): the bundle, the keeper's and the VMM's pids with
//! their start times, the cgroup (recorded before it exists, so `delete` removes it whoever
//! died), the network namespace holding its tap. The runtime's own containers keep `state.json` instead, so each side lists only its
//! own. The directory also holds the VM's disks, its sockets and `exec.fifo` until `start`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hull_sys::procfs;
use serde::{Deserialize, Serialize};

pub const RECORD: &str = "vm.json";
/// Held open for writing by a created keeper; `start` opens it to let the process run.
pub const FIFO: &str = "exec.fifo";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// The keeper: the container's pid. 0 until the VM is ready.
    pub pid: i32,
    pub pid_start: u64,
    #[serde(default)]
    pub vmm: Option<(i32, u64)>,
    #[serde(default)]
    pub cgroup: Option<hull_cgroups::Cgroup>,
    /// The pod's network namespace, recorded before a tap is made in it (`net.rs`).
    #[serde(default)]
    pub netns: Option<PathBuf>,
}

pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

impl Record {
    pub fn load(root: &Path, id: &str) -> anyhow::Result<Record> {
        let path = dir(root, id).join(RECORD);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("container {id} does not exist")
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
    }

    pub fn save(&self, root: &Path) -> anyhow::Result<()> {
        let path = dir(root, &self.id).join(RECORD);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(self)?)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("writing {}", path.display()))
    }

    pub fn keeper_alive(&self) -> bool {
        self.pid > 0 && procfs::is_alive(self.pid, self.pid_start)
    }

    pub fn vmm_alive(&self) -> Option<i32> {
        self.vmm
            .filter(|(pid, start)| procfs::is_alive(*pid, *start))
            .map(|(pid, _)| pid)
    }

    /// The runtime spec's status.
    pub fn status(&self, root: &Path) -> &'static str {
        if self.pid == 0 {
            return "creating";
        }
        if !self.keeper_alive() {
            return "stopped";
        }
        if dir(root, &self.id).join(FIFO).exists() {
            "created"
        } else {
            "running"
        }
    }

    /// The state as `hull-runtime state` prints it.
    pub fn state(&self, root: &Path) -> serde_json::Value {
        let status = self.status(root);
        let mut v = serde_json::json!({
            "ociVersion": hull_runtime::OCI_VERSION,
            "id": self.id,
            "pid": if status == "stopped" { 0 } else { self.pid },
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": "",
        });
        if !self.annotations.is_empty() {
            v["annotations"] = serde_json::json!(self.annotations);
        }
        v
    }
}

/// Every VM container under `root`, by id.
pub fn all(root: &Path) -> Vec<Record> {
    let mut ids: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(RECORD).is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    ids.iter()
        .filter_map(|id| Record::load(root, id).ok())
        .collect()
}
