//! `linux.personality`: the execution domain (LINUX or LINUX32) and personality(2) flags.

use nix::sys::personality::{self, Persona};
use oci_spec::runtime::{LinuxPersonality, LinuxPersonalityDomain};

use super::error::SecurityError;

/// The flag names of <linux/personality.h>; the runtime-spec defines none yet, so these are the
/// kernel's own names.
const FLAGS: &[(&str, i32)] = &[
    ("UNAME26", 0x002_0000),
    ("ADDR_NO_RANDOMIZE", 0x004_0000),
    ("FDPIC_FUNCPTRS", 0x008_0000),
    ("MMAP_PAGE_ZERO", 0x010_0000),
    ("ADDR_COMPAT_LAYOUT", 0x020_0000),
    ("READ_IMPLIES_EXEC", 0x040_0000),
    ("ADDR_LIMIT_32BIT", 0x080_0000),
    ("SHORT_INODE", 0x100_0000),
    ("WHOLE_SECONDS", 0x200_0000),
    ("STICKY_TIMEOUTS", 0x400_0000),
    ("ADDR_LIMIT_3GB", 0x800_0000),
];

const PER_LINUX32: i32 = 0x0008;

/// The persona value to set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PersonalityPlan {
    domain: &'static str,
    value: i32,
}

impl PersonalityPlan {
    pub(super) fn new(p: &LinuxPersonality) -> Result<Self, SecurityError> {
        let (domain, mut value) = match p.domain() {
            LinuxPersonalityDomain::PerLinux => ("LINUX", 0),
            LinuxPersonalityDomain::PerLinux32 => ("LINUX32", PER_LINUX32),
        };
        for flag in p.flags().iter().flatten() {
            let bit = FLAGS
                .iter()
                .find(|(name, _)| name == flag)
                .map(|(_, bit)| *bit)
                .ok_or_else(|| SecurityError::PersonalityFlag(flag.clone()))?;
            value |= bit;
        }
        Ok(Self { domain, value })
    }

    pub(super) fn apply(&self) -> Result<(), SecurityError> {
        personality::set(Persona::from_bits_retain(self.value))
            .map(drop)
            .map_err(|e| SecurityError::Personality {
                domain: self.domain.to_string(),
                source: e.into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_flag_is_named() {
        let p: LinuxPersonality =
            serde_json::from_str(r#"{"domain":"LINUX","flags":["ADDR_NO_RANDOMIZE","FAST"]}"#)
                .expect("json");
        let err = PersonalityPlan::new(&p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.personality.flags: \"FAST\" is not a personality flag"
        );
    }

    #[test]
    fn linux32_with_flag() {
        let p: LinuxPersonality =
            serde_json::from_str(r#"{"domain":"LINUX32","flags":["ADDR_NO_RANDOMIZE"]}"#)
                .expect("json");
        assert_eq!(PersonalityPlan::new(&p).expect("plan").value, 0x004_0008);
    }
}
