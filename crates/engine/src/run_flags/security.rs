//! `--cap-add/--cap-drop` (docker's rule), `--security-opt` and `--ulimit`.

use std::path::PathBuf;

use super::invalid;
use crate::error::EngineError;

/// `--cap-add`/`--cap-drop` names as `CAP_X` (ALL kept), each checked against `known`.
pub fn normalize_caps(
    flag: &str,
    names: &[String],
    known: &[String],
) -> Result<Vec<String>, EngineError> {
    names
        .iter()
        .map(|n| {
            let upper = n.trim().to_ascii_uppercase();
            if upper == "ALL" {
                return Ok(upper);
            }
            let full = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            if known.contains(&full) {
                Ok(full)
            } else {
                Err(invalid(format!("{flag}: unknown capability {n:?}")))
            }
        })
        .collect()
}

/// Refuses an added capability this host's bounding set lacks: the runtime could not give it,
/// and it is better said before a container exists.
pub fn check_grantable(add: &[String], grantable: &[String]) -> Result<(), EngineError> {
    match add.iter().find(|c| *c != "ALL" && !grantable.contains(c)) {
        Some(c) => Err(invalid(format!(
            "--cap-add {c}: not in this host's capability bounding set, so no process here can hold it"
        ))),
        None => Ok(()),
    }
}

/// docker's capability rule: `--cap-drop ALL` starts from none, `--cap-add ALL` from every
/// one; otherwise the defaults, plus the added, minus the dropped.
pub fn capabilities(
    defaults: &[&str],
    known: &[String],
    add: &[String],
    drop: &[String],
) -> Vec<String> {
    let all = |v: &[String]| v.iter().any(|c| c == "ALL");
    let mut caps: Vec<String> = if all(add) {
        known.to_vec()
    } else if all(drop) {
        Vec::new()
    } else {
        defaults.iter().map(|c| c.to_string()).collect()
    };
    if !all(add) {
        for c in add {
            if !caps.contains(c) {
                caps.push(c.clone());
            }
        }
    }
    if !all(drop) {
        caps.retain(|c| !drop.contains(c));
    }
    caps
}

/// Where the seccomp filter comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Seccomp {
    /// podman's default profile.
    #[default]
    Default,
    Unconfined,
    /// A docker-format profile file.
    File(PathBuf),
}

/// `--security-opt` values: `seccomp=...` and `no-new-privileges[=true|false]`.
pub fn parse_security_opt(
    text: &str,
    seccomp: &mut Seccomp,
    nnp: &mut bool,
) -> Result<(), EngineError> {
    let (key, value) = text
        .split_once(['=', ':'])
        .map_or((text, None), |(k, v)| (k, Some(v)));
    match (key, value) {
        ("seccomp", Some("unconfined")) => *seccomp = Seccomp::Unconfined,
        ("seccomp", Some(path)) if !path.is_empty() => *seccomp = Seccomp::File(path.into()),
        ("no-new-privileges", None | Some("true")) => *nnp = true,
        ("no-new-privileges", Some("false")) => *nnp = false,
        _ => {
            return Err(invalid(format!(
                "--security-opt {text:?} is not supported: hull takes seccomp=PROFILE.json, seccomp=unconfined and no-new-privileges[=true|false]"
            )))
        }
    }
    Ok(())
}

/// `--ulimit NAME=SOFT[:HARD]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    /// The OCI type, `RLIMIT_NOFILE`.
    pub kind: String,
    pub soft: u64,
    pub hard: u64,
}

/// docker's ulimit names and their resources.
const ULIMITS: [(&str, nix::sys::resource::Resource); 15] = {
    use nix::sys::resource::Resource as R;
    [
        ("core", R::RLIMIT_CORE),
        ("cpu", R::RLIMIT_CPU),
        ("data", R::RLIMIT_DATA),
        ("fsize", R::RLIMIT_FSIZE),
        ("locks", R::RLIMIT_LOCKS),
        ("memlock", R::RLIMIT_MEMLOCK),
        ("msgqueue", R::RLIMIT_MSGQUEUE),
        ("nice", R::RLIMIT_NICE),
        ("nofile", R::RLIMIT_NOFILE),
        ("nproc", R::RLIMIT_NPROC),
        ("rss", R::RLIMIT_RSS),
        ("rtprio", R::RLIMIT_RTPRIO),
        ("rttime", R::RLIMIT_RTTIME),
        ("sigpending", R::RLIMIT_SIGPENDING),
        ("stack", R::RLIMIT_STACK),
    ]
};

/// Checks the limit against this host's hard limit of it (as the defaults are capped to it:
/// the runtime could not set more without CAP_SYS_RESOURCE in the host).
pub fn parse_ulimit(text: &str) -> Result<Ulimit, EngineError> {
    ulimit(text, true)
}

/// `--ulimit` for a microVM's process: its limits are the guest kernel's, set by a PID 1 that
/// may raise them, so this host's hard limits do not bound them.
pub fn parse_guest_ulimit(text: &str) -> Result<Ulimit, EngineError> {
    ulimit(text, false)
}

fn ulimit(text: &str, within_host: bool) -> Result<Ulimit, EngineError> {
    let bad = |why: String| invalid(format!("invalid --ulimit {text:?}: {why}"));
    let (name, values) = text
        .split_once('=')
        .ok_or_else(|| bad("use NAME=SOFT[:HARD]".into()))?;
    let resource = ULIMITS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r)
        .ok_or_else(|| {
            let names: Vec<&str> = ULIMITS.iter().map(|(n, _)| *n).collect();
            bad(format!(
                "unknown limit {name:?} (one of {})",
                names.join(", ")
            ))
        })?;
    let number = |v: &str| -> Result<u64, EngineError> {
        if v == "-1" || v == "unlimited" {
            return Ok(u64::MAX);
        }
        v.parse().map_err(|_| bad(format!("{v:?} is not a number")))
    };
    let (soft, hard) = match values.split_once(':') {
        Some((s, h)) => (number(s)?, number(h)?),
        None => (number(values)?, number(values)?),
    };
    if soft > hard {
        return Err(bad(format!(
            "the soft limit {soft} is above the hard limit {hard}"
        )));
    }
    let host_hard = nix::sys::resource::getrlimit(resource)
        .map(|(_, h)| h)
        .unwrap_or(u64::MAX);
    if within_host && hard > host_hard {
        return Err(bad(format!(
            "the hard limit is above this host's ({host_hard})"
        )));
    }
    Ok(Ulimit {
        kind: format!("RLIMIT_{}", name.to_ascii_uppercase()),
        soft,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_rule() {
        let known: Vec<String> = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let add = normalize_caps("--cap-add", &["net_admin".into()], &known).unwrap();
        assert_eq!(add, ["CAP_NET_ADMIN"]);
        assert!(normalize_caps("--cap-add", &["bogus".into()], &known).is_err());
        assert!(check_grantable(&add, &known).is_ok());
        assert!(check_grantable(&add, &known[..2]).is_err());
        let drop = vec!["CAP_KILL".to_string()];
        let defaults = ["CAP_CHOWN", "CAP_KILL"];
        assert_eq!(
            capabilities(&defaults, &known, &add, &drop),
            ["CAP_CHOWN", "CAP_NET_ADMIN"]
        );
        let all = vec!["ALL".to_string()];
        assert_eq!(capabilities(&defaults, &known, &all, &drop).len(), 3);
        assert_eq!(
            capabilities(&defaults, &known, &add, &all),
            ["CAP_NET_ADMIN"]
        );
    }

    #[test]
    fn security_opts_and_ulimits() {
        let (mut s, mut n) = (Seccomp::Default, false);
        parse_security_opt("seccomp=unconfined", &mut s, &mut n).unwrap();
        parse_security_opt("no-new-privileges", &mut s, &mut n).unwrap();
        assert_eq!((s.clone(), n), (Seccomp::Unconfined, true));
        assert!(parse_security_opt("apparmor=x", &mut s, &mut n).is_err());
        assert!(parse_security_opt("label=disable", &mut s, &mut n).is_err());
        let u = parse_ulimit("nofile=100:200").unwrap();
        assert_eq!(
            (u.kind.as_str(), u.soft, u.hard),
            ("RLIMIT_NOFILE", 100, 200)
        );
        assert!(parse_ulimit("nofile=300:200").is_err());
        assert!(parse_ulimit("files=1").is_err());
        assert!(parse_ulimit("nofile=x").is_err());
    }
}
