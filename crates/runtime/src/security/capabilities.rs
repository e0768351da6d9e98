//! Capabilities: the five OCI sets checked against the kernel and the host's bounding set,
//! then the bounding set dropped (before the user switch) and the other four set (after it).

use std::str::FromStr;

use hull_sys::ahead::ReadAhead;
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use super::error::{read_to_string, spec_name, SecurityError};
use crate::sys::capset::{self, CapSets};

/// The sets the container process ends with, as bit masks (bit n = capability number n).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct CapabilityPlan {
    bounding: u64,
    sets: CapSets,
    ambient: u64,
    skipped_ambient: Vec<String>,
    last_cap: u8,
}

/// What a create's [`CapabilityPlan`] reads of the host, read ahead by [`read_ahead`].
static LAST_CAP: ReadAhead<u8> = ReadAhead::new();
static HOST_BOUNDING: ReadAhead<u64> = ReadAhead::new();

/// Reads now the kernel's last capability and this process's bounding set, for the next
/// create's plan to take (`hull_sys::ahead`).
pub(crate) fn read_ahead() {
    LAST_CAP.fill(read_last_cap);
    HOST_BOUNDING.fill(read_host_bounding);
}

/// The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap).
fn last_cap() -> Result<u8, SecurityError> {
    LAST_CAP.take_or(read_last_cap)
}

fn read_last_cap() -> Result<u8, SecurityError> {
    let path = "/proc/sys/kernel/cap_last_cap";
    read_to_string(path)?
        .trim()
        .parse::<u8>()
        // The sets are 64-bit masks; a kernel past that would need a wider type here.
        .map(|last| last.min(63))
        .map_err(|e| SecurityError::Read {
            path: path.into(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
}

/// The calling process's bounding set, from /proc/self/status.
fn host_bounding() -> Result<u64, SecurityError> {
    HOST_BOUNDING.take_or(read_host_bounding)
}

fn read_host_bounding() -> Result<u64, SecurityError> {
    let path = "/proc/self/status";
    let status = read_to_string(path)?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| SecurityError::Read {
            path: path.into(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "no CapBnd line"),
        })
}

fn cap_name(index: u8) -> String {
    caps::all()
        .into_iter()
        .find(|c| c.index() == index)
        .map_or_else(|| format!("capability {index}"), |c| c.to_string())
}

/// Every capability name this kernel knows, in number order.
pub fn known_capabilities() -> Vec<String> {
    let last = last_cap().unwrap_or(0);
    let mut known: Vec<caps::Capability> = caps::all()
        .into_iter()
        .filter(|c| c.index() <= last)
        .collect();
    known.sort_by_key(|c| c.index());
    known.into_iter().map(|c| c.to_string()).collect()
}

/// The capabilities this kernel knows that this process's bounding set still has: what a
/// container can be given here (`--privileged` in a container that lost some gets the rest).
pub fn grantable_capabilities() -> Vec<String> {
    let bounding = host_bounding().unwrap_or(u64::MAX);
    let last = last_cap().unwrap_or(0);
    // By index, not by name: every `create` asks, and matching names took ~0.4M instructions.
    let mut grantable: Vec<String> = caps::all()
        .into_iter()
        .filter(|c| c.index() <= last && bounding & (1u64 << c.index()) != 0)
        .map(|c| c.to_string())
        .collect();
    grantable.sort_unstable();
    grantable
}

/// Checks one capability name (with or without the CAP_ prefix, any case) and returns its bit.
struct Checker {
    last: u8,
    bounding: u64,
}

impl Checker {
    fn bit(&self, set: &str, name: &str) -> Result<u64, SecurityError> {
        let canonical = caps::to_canonical(name);
        let unknown = || SecurityError::UnknownCapability {
            set: set.to_string(),
            name: name.to_string(),
            last: cap_name(self.last),
        };
        let cap = caps::Capability::from_str(&canonical).map_err(|_| unknown())?;
        if cap.index() > self.last {
            return Err(unknown());
        }
        if self.bounding & cap.bitmask() == 0 {
            return Err(SecurityError::CapabilityNotInBounding {
                set: set.to_string(),
                name: canonical,
            });
        }
        Ok(cap.bitmask())
    }

    fn mask(&self, set: &'static str, caps: Option<&Capabilities>) -> Result<u64, SecurityError> {
        let field = format!("process.capabilities.{set}");
        let mut names: Vec<String> = caps.into_iter().flatten().map(spec_name).collect();
        // HashSet order is random; sort so the first bad name reported is stable.
        names.sort();
        names
            .iter()
            .try_fold(0u64, |mask, name| Ok(mask | self.bit(&field, name)?))
    }
}

fn names_of(mask: u64) -> Vec<String> {
    (0..64u8)
        .filter(|cap| mask & (1u64 << cap) != 0)
        .map(cap_name)
        .collect()
}

fn first_outside(mask: u64, allowed: u64) -> Option<String> {
    let extra = mask & !allowed;
    (extra != 0).then(|| {
        // trailing_zeros of a non-zero u64 is below 64, so it fits a u8.
        cap_name(u8::try_from(extra.trailing_zeros()).unwrap_or(u8::MAX))
    })
}

impl CapabilityPlan {
    /// Validates the five sets plus `exec --cap` additions; a missing object means no
    /// capabilities at all, as runc does.
    pub(super) fn new(
        caps: Option<&LinuxCapabilities>,
        extra: &[String],
    ) -> Result<Self, SecurityError> {
        let checker = Checker {
            last: last_cap()?,
            bounding: host_bounding()?,
        };
        let get =
            |f: fn(&LinuxCapabilities) -> &Option<Capabilities>| caps.and_then(|c| f(c).as_ref());
        let mut bounding = checker.mask("bounding", get(LinuxCapabilities::bounding))?;
        let mut effective = checker.mask("effective", get(LinuxCapabilities::effective))?;
        let mut permitted = checker.mask("permitted", get(LinuxCapabilities::permitted))?;
        let inheritable = checker.mask("inheritable", get(LinuxCapabilities::inheritable))?;
        let mut ambient = checker.mask("ambient", get(LinuxCapabilities::ambient))?;
        // `runc exec --cap X` adds X to bounding, effective and permitted, and to ambient only
        // where inheritable allows it (ambient needs inheritable).
        for name in extra {
            let bit = checker.bit("exec --cap", name)?;
            bounding |= bit;
            effective |= bit;
            permitted |= bit;
            if inheritable & bit != 0 {
                ambient |= bit;
            }
        }
        if let Some(name) = first_outside(effective, permitted) {
            return Err(SecurityError::CapabilityNotInSet {
                set: "effective",
                name,
                needs: "permitted",
            });
        }
        // The kernel refuses an inheritable capability outside the bounding set.
        if let Some(name) = first_outside(inheritable, bounding) {
            return Err(SecurityError::CapabilityNotInSet {
                set: "inheritable",
                name,
                needs: "bounding",
            });
        }
        // The kernel raises an ambient capability only if it is permitted and inheritable.
        // runc's own `runc spec` config lists ambient capabilities without inheritable ones,
        // and runc warns and goes on; so does hull (see `skipped_ambient`).
        let raisable = ambient & permitted & inheritable;
        let skipped_ambient = names_of(ambient & !raisable);
        let ambient = raisable;
        Ok(Self {
            bounding,
            sets: CapSets {
                effective,
                permitted,
                inheritable,
            },
            ambient,
            skipped_ambient,
            last_cap: checker.last,
        })
    }

    /// Ambient capabilities the config asks for that are not both permitted and inheritable,
    /// which the kernel cannot raise.
    pub(super) fn skipped_ambient(&self) -> &[String] {
        &self.skipped_ambient
    }

    /// Drops every capability outside the bounding set, by number up to the kernel's last (so
    /// one newer than this build is dropped too); needs CAP_SETPCAP, so before the user switch.
    pub(super) fn apply_bounding(&self) -> Result<(), SecurityError> {
        for cap in 0..=self.last_cap {
            if self.bounding & (1u64 << cap) != 0 {
                continue;
            }
            capset::bounding_drop(cap).map_err(|source| SecurityError::CapabilityApply {
                step: format!("dropping {} from the bounding set", cap_name(cap)),
                source,
            })?;
        }
        Ok(())
    }

    /// Sets effective, permitted and inheritable in one capset, then the ambient set.
    pub(super) fn apply_sets(&self) -> Result<(), SecurityError> {
        capset::capset(self.sets).map_err(|source| SecurityError::CapabilityApply {
            step: format!(
                "capset(effective {:#x}, permitted {:#x}, inheritable {:#x})",
                self.sets.effective, self.sets.permitted, self.sets.inheritable
            ),
            source,
        })?;
        capset::ambient_clear().map_err(|source| SecurityError::CapabilityApply {
            step: "clearing the ambient set".into(),
            source,
        })?;
        for cap in 0..=self.last_cap {
            if self.ambient & (1u64 << cap) == 0 {
                continue;
            }
            capset::ambient_raise(cap).map_err(|source| SecurityError::CapabilityApply {
                step: format!("raising {} in the ambient set", cap_name(cap)),
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_capabilities_match_the_kernel() {
        let known = known_capabilities();
        let last = usize::from(last_cap().expect("cap_last_cap"));
        assert_eq!(known.len(), last + 1);
        assert_eq!(known[0], "CAP_CHOWN");
        assert!(known.contains(&"CAP_SYS_ADMIN".to_string()));
    }

    #[test]
    fn exec_cap_unknown_name_is_named() {
        let err = CapabilityPlan::new(None, &["CAP_FLY".into()]).unwrap_err();
        assert_eq!(
            err.to_string().split(':').next(),
            Some("exec --cap"),
            "{err}"
        );
        assert!(err.to_string().contains("CAP_FLY"), "{err}");
    }

    #[test]
    fn missing_object_means_no_capabilities() {
        let plan = CapabilityPlan::new(None, &[]).expect("plan");
        assert_eq!(plan.bounding, 0);
        assert_eq!(plan.sets, CapSets::default());
    }
}
