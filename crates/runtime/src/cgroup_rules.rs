//! The device rules a container's cgroup gets, composed as runc composes them: the config's own
//! rules (deny-all when it has none), then the devices every container needs (/dev/null, zero,
//! full, random, urandom, tty, ptmx, pts, and mknod of any node), then the nodes the config
//! creates under `linux.devices`.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources, Spec};

/// The resources to apply: the config's, with the composed device rules.
pub fn resources(spec: &Spec) -> LinuxResources {
    let linux = spec.linux().as_ref();
    let mut resources = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let mut rules = resources.devices().clone().unwrap_or_default();
    let mut defaults = hull_cgroups::default_device_rules();
    if rules.is_empty() {
        // The defaults start with deny-all: keep it, as the config said nothing.
        rules.append(&mut defaults);
    } else {
        rules.extend(defaults.into_iter().filter(|r| r.allow()));
    }
    for device in linux.and_then(|l| l.devices().as_ref()).into_iter().flatten() {
        let mut rule = LinuxDeviceCgroup::default();
        rule.set_allow(true);
        rule.set_typ(Some(match device.typ() {
            LinuxDeviceType::B => LinuxDeviceType::B,
            LinuxDeviceType::P => continue,
            _ => LinuxDeviceType::C,
        }));
        rule.set_major(Some(device.major()));
        rule.set_minor(Some(device.minor()));
        rule.set_access(Some("rwm".to_string()));
        rules.push(rule);
    }
    resources.set_devices(Some(rules));
    resources
}
