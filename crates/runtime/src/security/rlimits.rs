//! Resource limits (`process.rlimits`): checked against this host's hard limits before clone,
//! set with setrlimit in the container process.

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use super::error::{spec_name, SecurityError};
use crate::sys::capset;

const CAP_SYS_RESOURCE: u64 = 1 << 24;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rlimit {
    name: String,
    resource: Resource,
    soft: u64,
    hard: u64,
}

/// The limits to set, in config order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct RlimitPlan {
    limits: Vec<Rlimit>,
}

fn resource(typ: PosixRlimitType) -> Resource {
    match typ {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

impl RlimitPlan {
    /// Rejects duplicates, soft above hard, and a hard limit above the host's own when this
    /// process cannot raise it (raising needs CAP_SYS_RESOURCE in the initial user namespace,
    /// so a user namespace does not help).
    pub(super) fn new(rlimits: &[PosixRlimit]) -> Result<Self, SecurityError> {
        let can_raise = capset::capget()
            .map(|c| c.effective & CAP_SYS_RESOURCE != 0)
            .unwrap_or(false);
        let mut limits: Vec<Rlimit> = Vec::with_capacity(rlimits.len());
        for r in rlimits {
            let name = spec_name(&r.typ());
            let (soft, hard) = (r.soft(), r.hard());
            if limits.iter().any(|l| l.name == name) {
                return Err(SecurityError::DuplicateRlimit { kind: name });
            }
            if soft > hard {
                return Err(SecurityError::RlimitSoftAboveHard {
                    kind: name,
                    soft,
                    hard,
                });
            }
            let resource = resource(r.typ());
            let (_, host_hard) = getrlimit(resource).map_err(|e| SecurityError::Rlimit {
                kind: name.clone(),
                soft,
                hard,
                source: e.into(),
            })?;
            if hard > host_hard && !can_raise {
                return Err(SecurityError::RlimitAboveHost {
                    kind: name,
                    hard,
                    host_hard,
                });
            }
            limits.push(Rlimit {
                name,
                resource,
                soft,
                hard,
            });
        }
        Ok(Self { limits })
    }

    pub(super) fn apply(&self) -> Result<(), SecurityError> {
        for l in &self.limits {
            setrlimit(l.resource, l.soft, l.hard).map_err(|e| {
                if e == nix::errno::Errno::EPERM {
                    let host_hard = getrlimit(l.resource).map_or(0, |(_, h)| h);
                    return SecurityError::RlimitAboveHost {
                        kind: l.name.clone(),
                        hard: l.hard,
                        host_hard,
                    };
                }
                SecurityError::Rlimit {
                    kind: l.name.clone(),
                    soft: l.soft,
                    hard: l.hard,
                    source: e.into(),
                }
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(typ: PosixRlimitType, soft: u64, hard: u64) -> PosixRlimit {
        let typ = serde_json::to_value(typ).expect("name");
        serde_json::from_value(serde_json::json!({"type": typ, "soft": soft, "hard": hard}))
            .expect("rlimit")
    }

    #[test]
    fn soft_above_hard_is_named() {
        let err = RlimitPlan::new(&[limit(PosixRlimitType::RlimitCore, 10, 5)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "process.rlimits: RLIMIT_CORE soft limit 10 is above its hard limit 5"
        );
    }

    #[test]
    fn duplicate_is_named() {
        let r = limit(PosixRlimitType::RlimitCore, 1, 1);
        let err = RlimitPlan::new(&[r, r]).unwrap_err();
        assert!(
            err.to_string()
                .contains("RLIMIT_CORE appears more than once"),
            "{err}"
        );
    }

    #[test]
    fn above_host_hard_limit_is_named() {
        let (_, host_hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        let has_cap = capset::capget().expect("capget").effective & CAP_SYS_RESOURCE != 0;
        if has_cap || host_hard == u64::MAX {
            hull_testkit::skip!(
                "this process can raise RLIMIT_NOFILE (CAP_SYS_RESOURCE or no limit)"
            );
        }
        let err = RlimitPlan::new(&[limit(PosixRlimitType::RlimitNofile, 1024, host_hard + 1)])
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("RLIMIT_NOFILE"), "{msg}");
        assert!(
            msg.contains(&format!("hard limit {}", host_hard + 1)),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("host's hard limit {host_hard}")),
            "{msg}"
        );
    }
}
