//! devices: validated device rules, runc's default rules, and their enforcement (v1 devices.allow /
//! devices.deny, or an eBPF BPF_PROG_TYPE_CGROUP_DEVICE program on cgroup v2).
//!
//! Semantics (as runc/crun): everything is denied first, then rules apply in order and the last
//! matching rule wins.

pub mod bpf;
pub(crate) mod v1;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::CgroupError;
use crate::plan::{Ctx, DeviceRules};

/// A checked device rule. `None` major/minor is the wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// 'a' (all), 'b' or 'c'.
    pub kind: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// Bits: 1 mknod, 2 read, 4 write (the kernel's BPF_DEVCG_ACC_* values).
    pub access: u32,
}

pub(crate) const ACC_MKNOD: u32 = 1;
pub(crate) const ACC_READ: u32 = 2;
pub(crate) const ACC_WRITE: u32 = 4;
pub(crate) const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

impl Rule {
    /// The v1 "type major:minor access" form written to devices.allow / devices.deny.
    pub fn v1_string(&self) -> String {
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let mut acc = String::new();
        for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
            if self.access & bit != 0 {
                acc.push(c);
            }
        }
        format!(
            "{} {}:{} {acc}",
            self.kind,
            num(self.major),
            num(self.minor)
        )
    }
}

fn number(field: &str, which: &str, n: Option<i64>) -> Result<Option<u32>, CgroupError> {
    match n {
        None | Some(-1) => Ok(None),
        Some(n) => u32::try_from(n).map(Some).map_err(|_| {
            CgroupError::invalid(
                format!("{field}.{which}"),
                format!("{n} is not a device number (0..=4294967295, or -1 for any)"),
            )
        }),
    }
}

/// Validates one OCI rule; `field` names it, e.g. `linux.resources.devices[2]`.
pub fn check_rule(field: &str, d: &LinuxDeviceCgroup) -> Result<Rule, CgroupError> {
    let kind = match d.typ().unwrap_or_default() {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => {
            return Err(CgroupError::invalid(
                format!("{field}.type"),
                "\"p\" (FIFO) is not a device cgroup type (a, b or c)",
            ))
        }
    };
    let access_str = d.access().as_deref().unwrap_or("rwm");
    let mut access = 0;
    for c in access_str.chars() {
        access |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => {
                return Err(CgroupError::invalid(
                    format!("{field}.access"),
                    format!("{access_str:?} may contain only r, w and m"),
                ))
            }
        };
    }
    if access == 0 {
        access = ACC_ALL;
    }
    let (major, minor) = (
        number(field, "major", d.major())?,
        number(field, "minor", d.minor())?,
    );
    // "a" means every device whatever numbers are given, as in the v1 kernel interface.
    let (major, minor) = if kind == 'a' {
        (None, None)
    } else {
        (major, minor)
    };
    Ok(Rule {
        allow: d.allow(),
        kind,
        major,
        minor,
        access,
    })
}

pub(crate) fn plan(cx: &mut Ctx, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let checked = rules
        .iter()
        .enumerate()
        .map(|(i, d)| check_rule(&format!("linux.resources.devices[{i}]"), d))
        .collect::<Result<Vec<_>, _>>()?;
    let field = "linux.resources.devices";
    if let Some(i) = cx.cg.v1("devices") {
        v1::simulate(&checked)?;
        let update = cx.mode == crate::plan::Mode::Update;
        cx.plan.devices = Some(DeviceRules::V1(i, checked, update));
    } else if let Some(i) = cx.cg.v2() {
        cx.plan.devices = Some(DeviceRules::Bpf(i, checked));
    } else {
        return Err(CgroupError::invalid(
            field,
            "the devices cgroup controller is not mounted on this host",
        ));
    }
    Ok(())
}

fn rule(
    kind: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true);
    r.set_typ(Some(kind));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

/// The rules runc applies when a config has none: deny everything, then allow mknod of any device
/// and use of /dev/null, zero, full, random, urandom, tty, /dev/pts/*, /dev/ptmx and /dev/net/tun.
pub fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let mut deny_all = LinuxDeviceCgroup::default();
    deny_all.set_allow(false);
    deny_all.set_access(Some("rwm".to_string()));
    let mut rules = vec![deny_all];
    rules.extend(allowed_devices());
    rules
}

/// The rules runc 1.1 applies for any config (specconv): the config's own rules, then its default
/// allow list, then "rwm" for every device node the config creates (`linux.devices`). Everything
/// not allowed is denied (hull-cgroups starts every rule set from deny-all, as runc does).
pub fn runc_device_rules(
    config: &[LinuxDeviceCgroup],
    created: &[oci_spec::runtime::LinuxDevice],
) -> Vec<LinuxDeviceCgroup> {
    let mut rules = config.to_vec();
    rules.extend(allowed_devices());
    // FIFOs are not device-cgroup objects: the kernel never asks about them.
    rules.extend(
        created
            .iter()
            .filter(|d| d.typ() != LinuxDeviceType::P)
            .map(|d| {
                let kind = if d.typ() == LinuxDeviceType::B {
                    LinuxDeviceType::B
                } else {
                    LinuxDeviceType::C
                };
                rule(kind, Some(d.major()), Some(d.minor()), "rwm")
            }),
    );
    rules
}

fn allowed_devices() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),    // /dev/null
        rule(C, Some(1), Some(8), "rwm"),    // /dev/random
        rule(C, Some(1), Some(7), "rwm"),    // /dev/full
        rule(C, Some(5), Some(0), "rwm"),    // /dev/tty
        rule(C, Some(1), Some(5), "rwm"),    // /dev/zero
        rule(C, Some(1), Some(9), "rwm"),    // /dev/urandom
        rule(C, Some(136), None, "rwm"),     // /dev/pts/*
        rule(C, Some(5), Some(2), "rwm"),    // /dev/ptmx
        rule(C, Some(10), Some(200), "rwm"), // /dev/net/tun
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_check_and_render() {
        let rules: Vec<Rule> = default_device_rules()
            .iter()
            .map(|r| check_rule("r", r).unwrap())
            .collect();
        assert_eq!(rules[0].v1_string(), "a *:* rwm");
        assert!(!rules[0].allow);
        assert_eq!(rules[1].v1_string(), "c *:* m");
        assert_eq!(rules[3].v1_string(), "c 1:3 rwm");
        assert_eq!(rules[9].v1_string(), "c 136:* rwm");
    }

    #[test]
    fn runc_order_config_then_defaults_then_created_nodes() {
        let mut deny = LinuxDeviceCgroup::default();
        deny.set_access(Some("rwm".into()));
        let mut fuse = oci_spec::runtime::LinuxDevice::default();
        fuse.set_typ(LinuxDeviceType::C);
        fuse.set_major(10);
        fuse.set_minor(229);
        let rules: Vec<String> = runc_device_rules(&[deny], &[fuse])
            .iter()
            .map(|r| check_rule("r", r).unwrap().v1_string())
            .collect();
        assert_eq!(rules.first().unwrap(), "a *:* rwm");
        assert_eq!(rules.last().unwrap(), "c 10:229 rwm");
        assert_eq!(rules.len(), 1 + 11 + 1);
    }

    #[test]
    fn bad_rules_name_the_field() {
        let mut r = LinuxDeviceCgroup::default();
        r.set_access(Some("rx".into()));
        let e = check_rule("linux.resources.devices[0]", &r).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.resources.devices[0].access"),
            "{e}"
        );
        let mut r = LinuxDeviceCgroup::default();
        r.set_typ(Some(LinuxDeviceType::C));
        r.set_major(Some(-5));
        let e = check_rule("d", &r).unwrap_err();
        assert!(e.to_string().starts_with("d.major"), "{e}");
    }
}
