//! The default seccomp profile: the engine reads podman's own, containers-common's
//! `/usr/share/containers/seccomp.json` (docker's format, with rules conditional on the
//! container's capabilities and the architecture), and turns it into the OCI `linux.seccomp`
//! for one container. Reading the installed file rather than embedding a copy keeps hull's
//! allow-list the one podman uses on this host.

use std::borrow::Cow;

use serde::Deserialize;
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

/// The parts of a docker-format profile the conversion reads. Typed rather than a
/// [`Value`]: the profile is read on every create, and this skips the comments and conditions
/// without building them (the tree of the whole file cost about as much as the rest of
/// `create`). Rule fields are kept as values: they go into the OCI section as they are.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile<'a> {
    #[serde(borrow)]
    default_action: Option<Cow<'a, str>>,
    default_errno_ret: Option<Value>,
    #[serde(borrow)]
    arch_map: Option<Vec<ArchEntry<'a>>>,
    #[serde(borrow)]
    syscalls: Option<Vec<Rule<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchEntry<'a> {
    #[serde(borrow)]
    architecture: Option<Cow<'a, str>>,
    sub_architectures: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule<'a> {
    names: Option<Value>,
    action: Option<Value>,
    errno_ret: Option<Value>,
    args: Option<Value>,
    #[serde(borrow)]
    includes: Option<Condition<'a>>,
    #[serde(borrow)]
    excludes: Option<Condition<'a>>,
}

#[derive(Deserialize)]
struct Condition<'a> {
    #[serde(borrow)]
    arches: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    caps: Option<Vec<Cow<'a, str>>>,
}

/// The OCI seccomp section from a docker-format profile, for a container with `caps`.
pub fn from_docker_profile(text: &str, path: &str, caps: &[&str]) -> Result<Value, SeccompError> {
    let bad = |reason: String| SeccompError::Invalid {
        path: path.to_string(),
        reason,
    };
    let profile: Profile<'_> = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let default_action = profile
        .default_action
        .ok_or_else(|| bad("no defaultAction".into()))?;
    let arch = docker_arch();
    let mut architectures = Vec::new();
    for entry in profile.arch_map.into_iter().flatten() {
        if let Some(a) = entry.architecture.filter(|a| arch_matches(a, arch)) {
            architectures.push(Value::String(a.into_owned()));
            architectures.extend(entry.sub_architectures.into_iter().flatten());
        }
    }
    let mut syscalls = Vec::new();
    for rule in profile.syscalls.into_iter().flatten() {
        if !applies(&rule, arch, caps) {
            continue;
        }
        let mut out = Map::new();
        out.insert("names".into(), rule.names.unwrap_or_else(|| json!([])));
        out.insert(
            "action".into(),
            rule.action.unwrap_or_else(|| json!("SCMP_ACT_ALLOW")),
        );
        if let Some(errno) = rule.errno_ret {
            out.insert("errnoRet".into(), errno);
        }
        if let Some(args) = rule
            .args
            .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
        {
            out.insert("args".into(), args);
        }
        syscalls.push(Value::Object(out));
    }
    // Moved in, not through `json!` (which would serialize a copy of every rule).
    let mut seccomp = Map::new();
    seccomp.insert(
        "defaultAction".into(),
        Value::String(default_action.into_owned()),
    );
    seccomp.insert("architectures".into(), Value::Array(architectures));
    seccomp.insert("syscalls".into(), Value::Array(syscalls));
    if let Some(errno) = profile.default_errno_ret {
        seccomp.insert("defaultErrnoRet".into(), errno);
    }
    Ok(Value::Object(seccomp))
}

fn arch_matches(architecture: &str, arch: &str) -> bool {
    let scmp = match arch {
        "amd64" => "SCMP_ARCH_X86_64",
        "arm64" => "SCMP_ARCH_AARCH64",
        "386" => "SCMP_ARCH_X86",
        _ => return false,
    };
    architecture == scmp
}

/// Whether a rule's `includes` all hold and none of its `excludes` does.
fn applies(rule: &Rule<'_>, arch: &str, caps: &[&str]) -> bool {
    let has_cap = |c: &Cow<'_, str>| caps.contains(&c.as_ref());
    let (inc_arches, inc_caps) = arches_and_caps(&rule.includes);
    let (exc_arches, exc_caps) = arches_and_caps(&rule.excludes);
    (inc_arches.is_empty() || inc_arches.iter().any(|a| a == arch))
        && inc_caps.iter().all(has_cap)
        && !exc_arches.iter().any(|a| a == arch)
        && !exc_caps.iter().any(has_cap)
}

type Names<'r, 'a> = &'r [Cow<'a, str>];

fn arches_and_caps<'r, 'a>(c: &'r Option<Condition<'a>>) -> (Names<'r, 'a>, Names<'r, 'a>) {
    match c {
        Some(c) => (
            c.arches.as_deref().unwrap_or_default(),
            c.caps.as_deref().unwrap_or_default(),
        ),
        None => (&[], &[]),
    }
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
