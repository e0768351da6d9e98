//! Unknown keys under `linux.resources`. oci-spec's types drop fields they do not know, so a
//! limit misspelled or from a newer spec would silently not be enforced; hull refuses it instead,
//! naming the field (the one place where hull is stricter than "ignore unknown properties").

use serde_json::Value;

/// Keys each object may have; `*` after a name means "an array of such objects".
const SCHEMA: &[(&str, &[&str])] = &[
    (
        "resources",
        &[
            "devices*",
            "memory",
            "cpu",
            "pids",
            "blockIO",
            "hugepageLimits*",
            "network",
            "rdma",
            "unified",
        ],
    ),
    ("devices", &["allow", "type", "major", "minor", "access"]),
    (
        "memory",
        &[
            "limit",
            "reservation",
            "swap",
            "kernel",
            "kernelTCP",
            "swappiness",
            "disableOOMKiller",
            "useHierarchy",
            "checkBeforeUpdate",
        ],
    ),
    (
        "cpu",
        &[
            "shares",
            "quota",
            "burst",
            "period",
            "realtimeRuntime",
            "realtimePeriod",
            "cpus",
            "mems",
            "idle",
        ],
    ),
    ("pids", &["limit"]),
    (
        "blockIO",
        &[
            "weight",
            "leafWeight",
            "weightDevice*",
            "throttleReadBpsDevice*",
            "throttleWriteBpsDevice*",
            "throttleReadIOPSDevice*",
            "throttleWriteIOPSDevice*",
        ],
    ),
    ("weightDevice", &["major", "minor", "weight", "leafWeight"]),
    ("throttleReadBpsDevice", &["major", "minor", "rate"]),
    ("throttleWriteBpsDevice", &["major", "minor", "rate"]),
    ("throttleReadIOPSDevice", &["major", "minor", "rate"]),
    ("throttleWriteIOPSDevice", &["major", "minor", "rate"]),
    ("hugepageLimits", &["pageSize", "limit"]),
    ("network", &["classID", "priorities*"]),
    ("priorities", &["name", "priority"]),
];

/// The first unknown key under `linux.resources`, as a dotted path.
pub fn first_unknown(config: &Value) -> Option<String> {
    let resources = config.get("linux")?.get("resources")?;
    check("resources", "linux.resources", resources)
}

fn check(kind: &str, path: &str, value: &Value) -> Option<String> {
    let object = value.as_object()?;
    let known = SCHEMA.iter().find(|(k, _)| *k == kind)?.1;
    for (key, child) in object {
        let entry = known
            .iter()
            .find(|k| k.trim_end_matches('*') == key.as_str());
        let Some(entry) = entry else {
            return Some(format!("{path}.{key}"));
        };
        let child_path = format!("{path}.{key}");
        let found = if entry.ends_with('*') {
            child
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .find_map(|(i, item)| check(key, &format!("{child_path}[{i}]"), item))
        } else {
            check(key, &child_path, child)
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::first_unknown;
    use serde_json::json;

    #[test]
    fn names_the_unknown_key() {
        let ok = json!({"linux": {"resources": {"memory": {"limit": 1}, "devices": [{"allow": false, "access": "rwm"}],
            "blockIO": {"throttleWriteBpsDevice": [{"major": 7, "minor": 0, "rate": 1}]}, "unified": {"io.max": "x"}}}});
        assert_eq!(first_unknown(&ok), None);
        let bad = json!({"linux": {"resources": {"memory": {"limitt": 1}}}});
        assert_eq!(
            first_unknown(&bad).as_deref(),
            Some("linux.resources.memory.limitt")
        );
        let bad = json!({"linux": {"resources": {"blockIO": {"throttleWriteBpsDevice": [{"major": 7, "minor": 0, "rat": 1}]}}}});
        assert_eq!(
            first_unknown(&bad).as_deref(),
            Some("linux.resources.blockIO.throttleWriteBpsDevice[0].rat")
        );
        let bad = json!({"linux": {"resources": {"gpu": {}}}});
        assert_eq!(first_unknown(&bad).as_deref(), Some("linux.resources.gpu"));
    }
}
