//! Linux security module labels: `process.apparmorProfile` and `process.selinuxLabel`,
//! refused with a clear error when the LSM is absent, else written as the exec label.

use std::path::Path;

use super::error::SecurityError;

/// Whether AppArmor is enabled (the check runc makes).
pub fn apparmor_enabled() -> bool {
    Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.starts_with('Y'))
}

/// Whether SELinux is enabled: selinuxfs is mounted. Also the check for `linux.mountLabel`.
pub fn selinux_enabled() -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(2) == Some("selinuxfs")))
}

/// The labels to put on the process at its execve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct LsmPlan {
    apparmor: Option<String>,
    selinux: Option<String>,
}

impl LsmPlan {
    pub(super) fn new(
        apparmor: Option<&str>,
        selinux: Option<&str>,
    ) -> Result<Self, SecurityError> {
        let apparmor = apparmor.filter(|p| !p.is_empty()).map(String::from);
        let selinux = selinux.filter(|l| !l.is_empty()).map(String::from);
        if let Some(profile) = &apparmor {
            if !apparmor_enabled() {
                return Err(SecurityError::LsmAbsent {
                    field: "apparmorProfile",
                    value: profile.clone(),
                    lsm: "AppArmor",
                });
            }
        }
        if let Some(label) = &selinux {
            if !selinux_enabled() {
                return Err(SecurityError::LsmAbsent {
                    field: "selinuxLabel",
                    value: label.clone(),
                    lsm: "SELinux",
                });
            }
        }
        Ok(Self { apparmor, selinux })
    }

    /// Writes the exec labels; needs the container's /proc mounted.
    pub(super) fn apply(&self) -> Result<(), SecurityError> {
        if let Some(profile) = &self.apparmor {
            let modern = Path::new("/proc/thread-self/attr/apparmor/exec");
            let path = if modern.exists() {
                modern
            } else {
                Path::new("/proc/thread-self/attr/exec")
            };
            write_attr("apparmorProfile", profile, path, &format!("exec {profile}"))?;
        }
        if let Some(label) = &self.selinux {
            write_attr(
                "selinuxLabel",
                label,
                Path::new("/proc/thread-self/attr/exec"),
                label,
            )?;
        }
        Ok(())
    }
}

fn write_attr(
    field: &'static str,
    value: &str,
    path: &Path,
    data: &str,
) -> Result<(), SecurityError> {
    std::fs::write(path, data).map_err(|source| SecurityError::LsmApply {
        field,
        value: value.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_lsm_is_a_named_error() {
        if apparmor_enabled() {
            hull_testkit::skip("AppArmor is enabled here");
        } else {
            let err = LsmPlan::new(Some("docker-default"), None).unwrap_err();
            assert_eq!(
                err.to_string(),
                "process.apparmorProfile \"docker-default\": AppArmor is not enabled on this host"
            );
        }
        if selinux_enabled() {
            hull_testkit::skip("SELinux is enabled here");
        } else {
            let err = LsmPlan::new(None, Some("system_u:system_r:container_t:s0")).unwrap_err();
            assert!(err.to_string().starts_with("process.selinuxLabel"), "{err}");
        }
        assert_eq!(
            LsmPlan::new(Some(""), Some("")).expect("empty"),
            LsmPlan::default()
        );
    }
}
