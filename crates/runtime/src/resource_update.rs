//! `update` (runc's): new limits for a live container. hull-cgroups writes them to the cgroup in
//! its update mode; the container's saved config takes them too, so that it keeps describing the
//! cgroup. As in runc, a field left out or zero keeps what is in force, and devices are not
//! updated (engines send the whole resources object, device rules included).

use oci_spec::runtime::{LinuxResources, Spec};
use serde_json::{Map, Value};

use crate::container::{Container, ContainerError};
use crate::state::Status;

#[derive(Debug, thiserror::Error)]
pub enum ResourcesError {
    #[error("resources: invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("resources: {0}: unknown resource field")]
    UnknownKey(String),
}

/// Parses a `linux.resources` object as `update -r` takes it, refusing unknown fields as create
/// does (a misspelled limit would otherwise silently not be applied).
pub fn parse(bytes: &[u8]) -> Result<LinuxResources, ResourcesError> {
    let raw: Value = serde_json::from_slice(bytes)?;
    let config = serde_json::json!({"linux": {"resources": raw.clone()}});
    if let Some(key) = crate::resource_keys::first_unknown(&config) {
        return Err(ResourcesError::UnknownKey(key));
    }
    Ok(serde_json::from_value(raw)?)
}

/// Fields where 0 means "not given" to runc's update (and to hull-cgroups' update mode).
const ZERO_IS_UNSET: &[(&str, &str)] = &[
    ("memory", "limit"),
    ("memory", "reservation"),
    ("memory", "swap"),
    ("memory", "kernel"),
    ("memory", "kernelTCP"),
    ("cpu", "shares"),
    ("cpu", "quota"),
    ("cpu", "period"),
    ("cpu", "cpus"),
    ("cpu", "mems"),
    ("pids", "limit"),
    ("blockIO", "weight"),
    ("blockIO", "leafWeight"),
];

fn given(section: &str, key: &str, value: &Value) -> bool {
    let unset_when_zero = ZERO_IS_UNSET.contains(&(section, key));
    match value {
        Value::Null => false,
        Value::Number(n) if unset_when_zero => n.as_f64() != Some(0.0),
        Value::String(s) if unset_when_zero => !s.is_empty(),
        _ => true,
    }
}

/// `saved` with every field `update` gives: scalars replace, objects (a section, `unified`) merge
/// key by key, lists (per-device rules, hugepage limits) replace as a whole.
fn merge(saved: &mut Map<String, Value>, update: &Map<String, Value>, section: &str) {
    for (key, value) in update {
        if !given(section, key, value) {
            continue;
        }
        let Value::Object(new) = value else {
            saved.insert(key.clone(), value.clone());
            continue;
        };
        let entry = saved
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        match entry {
            Value::Object(old) => {
                merge(old, new, key);
                if old.is_empty() {
                    saved.remove(key);
                }
            }
            other => *other = value.clone(),
        }
    }
}

/// What `update` writes: the request without device rules, and with runc's v1 rule that an
/// unlimited memory limit without a swap limit lifts the swap limit too.
fn to_apply(request: &LinuxResources) -> LinuxResources {
    let mut r = request.clone();
    r.set_devices(None);
    if let Some(m) = r.memory_mut() {
        if m.limit() == Some(-1) && m.swap().is_none() {
            m.set_swap(Some(-1));
        }
    }
    r
}

/// The saved config with the update's fields merged into `linux.resources`.
fn merged_config(spec: &Spec, applied: &LinuxResources) -> Result<Spec, ContainerError> {
    let mut value = serde_json::to_value(spec).map_err(crate::state::encode("config"))?;
    let update = serde_json::to_value(applied).map_err(crate::state::encode("resources"))?;
    if let (Some(root), Value::Object(update)) = (value.as_object_mut(), update) {
        let linux = root
            .entry("linux")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(linux) = linux.as_object_mut() {
            let resources = linux
                .entry("resources")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(resources) = resources.as_object_mut() {
                merge(resources, &update, "resources");
            }
        }
    }
    Ok(serde_json::from_value(value).map_err(crate::state::encode("config"))?)
}

impl Container {
    /// Applies `resources` to the live cgroup and records them in the saved config. The
    /// fields skipped because the kernel dropped them, one line each.
    pub fn update(&self, resources: &LinuxResources) -> Result<Vec<String>, ContainerError> {
        if self.status() == Status::Stopped {
            return Err(ContainerError::NotRunning);
        }
        let applied = to_apply(resources);
        let spec = self.config()?;
        // Built before the cgroup changes: a config that cannot take them changes nothing.
        let updated = merged_config(&spec, &applied)?;
        let warnings = self.state.cgroup.update(&applied)?;
        self.dir.save_config(&updated)?;
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_names_unknown_fields() {
        let r = parse(br#"{"memory": {"limit": 1048576}, "pids": {"limit": 5}}"#).unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(1_048_576));
        let e = parse(br#"{"memory": {"limitt": 1}}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "resources: linux.resources.memory.limitt: unknown resource field"
        );
        let e = parse(b"{").unwrap_err().to_string();
        assert!(e.starts_with("resources: invalid JSON: "), "{e}");
    }

    #[test]
    fn zeros_keep_and_devices_stay() {
        let mut spec = Spec::default();
        let saved: LinuxResources = serde_json::from_value(json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {"limit": 100, "swap": 200},
            "cpu": {"shares": 512, "cpus": "0"},
            "pids": {"limit": 10},
            "unified": {"a.b": "1"}
        }))
        .unwrap();
        if let Some(linux) = spec.linux_mut() {
            linux.set_resources(Some(saved));
        }
        // As docker 20.10 sends it: zeros for everything not changed.
        let request: LinuxResources = serde_json::from_value(json!({
            "devices": [{"allow": true, "access": "rwm"}],
            "memory": {"limit": 300, "reservation": 0, "kernel": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": ""},
            "blockIO": {"weight": 0},
            "pids": {"limit": 0},
            "unified": {"c.d": "2"}
        }))
        .unwrap();
        let applied = to_apply(&request);
        assert!(applied.devices().is_none());
        let merged = merged_config(&spec, &applied).unwrap();
        let got = serde_json::to_value(merged.linux().as_ref().unwrap().resources()).unwrap();
        assert_eq!(got["memory"], json!({"limit": 300, "swap": 200}));
        assert_eq!(got["cpu"], json!({"shares": 512, "cpus": "0"}));
        assert_eq!(got["pids"], json!({"limit": 10}));
        assert_eq!(got["unified"], json!({"a.b": "1", "c.d": "2"}));
        assert_eq!(got["devices"][0]["allow"], json!(false));
        assert!(
            got["blockIO"].is_null() || got["blockIO"] == json!({}),
            "{got}"
        );
    }

    #[test]
    fn unlimited_memory_lifts_swap() {
        let r: LinuxResources = serde_json::from_value(json!({"memory": {"limit": -1}})).unwrap();
        assert_eq!(to_apply(&r).memory().as_ref().unwrap().swap(), Some(-1));
    }
}
