//! The resources a container's cgroup gets: the config's, with device rules composed as runc
//! composes them (hull_cgroups::runc_device_rules), except that a config with no device rules
//! at all starts from deny-all rather than from the host's allow-all.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources, Spec};

pub fn resources(spec: &Spec) -> LinuxResources {
    let linux = spec.linux().as_ref();
    let mut resources = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let mut config_rules = resources.devices().clone().unwrap_or_default();
    if config_rules.is_empty() {
        let mut deny_all = LinuxDeviceCgroup::default();
        deny_all.set_allow(false);
        deny_all.set_access(Some("rwm".to_string()));
        config_rules.push(deny_all);
    }
    let created = linux.and_then(|l| l.devices().clone()).unwrap_or_default();
    resources.set_devices(Some(hull_cgroups::runc_device_rules(
        &config_rules,
        &created,
    )));
    resources
}
