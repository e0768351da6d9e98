//! The default seccomp profile: the engine reads podman's own, containers-common's
//! `/usr/share/containers/seccomp.json` (docker's format, with rules conditional on the
//! container's capabilities and the architecture), and turns it into the OCI `linux.seccomp`
//! for one container. Reading the installed file rather than embedding a copy keeps hull's
//! allow-list the one podman uses on this host.

use serde_json::{json, Map, Value};

/// Where Debian's podman (containers-common) installs the profile.
pub const DEFAULT_PROFILE: &str = "/usr/share/containers/seccomp.json";

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp profile {path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// The architecture names docker's profile uses in `includes.arches`, for this build.
fn docker_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// The OCI seccomp section from a docker-format profile, for a container with `caps`.
pub fn from_docker_profile(text: &str, path: &str, caps: &[&str]) -> Result<Value, SeccompError> {
    let bad = |reason: String| SeccompError::Invalid {
        path: path.to_string(),
        reason,
    };
    let mut profile: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    // The rules move into the result (hundreds of syscall names), not copied.
    let rules = match profile.get_mut("syscalls") {
        Some(Value::Array(rules)) => std::mem::take(rules),
        _ => Vec::new(),
    };
    let default_action = profile
        .get("defaultAction")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no defaultAction".into()))?;
    let arch = docker_arch();
    let mut architectures = Vec::new();
    for entry in profile
        .get("archMap")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if arch_matches(entry.get("architecture"), arch) {
            architectures.push(entry["architecture"].clone());
            if let Some(sub) = entry.get("subArchitectures").and_then(Value::as_array) {
                architectures.extend(sub.iter().cloned());
            }
        }
    }
    let mut syscalls = Vec::new();
    for mut rule in rules {
        if !applies(&rule, arch, caps) {
            continue;
        }
        let mut field = |key: &str| rule.get_mut(key).map(Value::take);
        let mut out = Map::new();
        out.insert("names".into(), field("names").unwrap_or_else(|| json!([])));
        out.insert(
            "action".into(),
            field("action").unwrap_or_else(|| json!("SCMP_ACT_ALLOW")),
        );
        if let Some(errno) = field("errnoRet").filter(|v| !v.is_null()) {
            out.insert("errnoRet".into(), errno);
        }
        if let Some(args) = field("args").filter(|a| a.as_array().is_some_and(|a| !a.is_empty())) {
            out.insert("args".into(), args);
        }
        syscalls.push(Value::Object(out));
    }
    let mut seccomp = json!({
        "defaultAction": default_action,
        "architectures": architectures,
        "syscalls": syscalls,
    });
    if let Some(errno) = profile.get("defaultErrnoRet").filter(|v| !v.is_null()) {
        seccomp["defaultErrnoRet"] = errno.clone();
    }
    Ok(seccomp)
}

fn arch_matches(architecture: Option<&Value>, arch: &str) -> bool {
    let scmp = match arch {
        "amd64" => "SCMP_ARCH_X86_64",
        "arm64" => "SCMP_ARCH_AARCH64",
        "386" => "SCMP_ARCH_X86",
        _ => return false,
    };
    architecture.and_then(Value::as_str) == Some(scmp)
}

/// Whether a rule's `includes` all hold and none of its `excludes` does.
fn applies(rule: &Value, arch: &str, caps: &[&str]) -> bool {
    let list = |section: &str, key: &str| -> Vec<String> {
        rule.get(section)
            .and_then(|s| s.get(key))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let has_cap = |c: &String| caps.contains(&c.as_str());
    let inc_arches = list("includes", "arches");
    let inc_caps = list("includes", "caps");
    let exc_arches = list("excludes", "arches");
    let exc_caps = list("excludes", "caps");
    (inc_arches.is_empty() || inc_arches.iter().any(|a| a == arch))
        && inc_caps.iter().all(has_cap)
        && !exc_arches.iter().any(|a| a == arch)
        && !exc_caps.iter().any(has_cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"{
      "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
      "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                  {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": []}],
      "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": [], "includes": {}, "excludes": {}},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_PTRACE"]}, "excludes": {}},
        {"names": ["chroot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_CHROOT"]}, "excludes": {}},
        {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "includes": {}, "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}], "includes": {}, "excludes": {}},
        {"names": ["s390_thing"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}, "excludes": {}}
      ]}"#;

    #[test]
    fn rules_follow_caps_and_arch() {
        let s = from_docker_profile(PROFILE, "p", &["CAP_SYS_CHROOT"]).unwrap();
        assert_eq!(s["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(s["defaultErrnoRet"], 38);
        let names: Vec<String> = s["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}:{}",
                    r["names"][0].as_str().unwrap(),
                    r["action"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                "read:SCMP_ACT_ALLOW",
                "chroot:SCMP_ACT_ALLOW",
                "personality:SCMP_ACT_ALLOW"
            ]
        );
        assert_eq!(s["syscalls"][2]["args"][0]["value"], 8);
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(
                s["architectures"],
                json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
            );
        }
        // Valid OCI.
        let _: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(s).unwrap();
    }

    #[test]
    fn installed_profile_converts() {
        let Ok(text) = std::fs::read_to_string(DEFAULT_PROFILE) else {
            hull_testkit::skip!("no {DEFAULT_PROFILE} (podman's containers-common) to convert");
        };
        let s = from_docker_profile(
            &text,
            DEFAULT_PROFILE,
            &super::super::defaults::CAPABILITIES,
        )
        .unwrap();
        let all: Vec<&str> = s["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
            .flat_map(|r| {
                r["names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
            })
            .collect();
        assert!(all.contains(&"read") && all.contains(&"chroot"));
        // podman's profile refuses kexec_load outright.
        assert!(!all.contains(&"kexec_load"));
        let _: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(s).unwrap();
    }
}
