//! `hull vm run`'s security flags for its command: `--cap-add`/`--cap-drop`, `--security-opt
//! seccomp=PROFILE.json|unconfined|no-new-privileges` and `--ulimit`, parsed by the engine's
//! rules (hull_engine::run_flags) and set in the process spec hull-guest applies. The starting
//! point is the VM's own: its command is root with every capability and no filter (the VM is the
//! boundary), so `--cap-drop ALL --cap-add NET_BIND_SERVICE` leaves that one, and a profile
//! (docker's format) is compiled here by hull-runtime and loaded by the guest.

use std::path::Path;

use anyhow::Context;
use clap::Args;
use hull_engine::bundle::seccomp::from_docker_profile;
use hull_engine::run_flags::{self as flags, Seccomp};
use hull_vmm::proto::{Capabilities, ProcessSpec, Rlimit};

#[derive(Debug, Clone, Default, Args)]
pub struct SecurityFlags {
    /// Add a capability (CAP_X or X; ALL) to the command's, which starts with all of them
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (CAP_X or X; ALL) from the command's
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// seccomp=PROFILE.json (docker's format), seccomp=unconfined (the default in a VM) or
    /// no-new-privileges[=true|false]
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// A resource limit of the command: NAME=SOFT[:HARD] (nofile, nproc, core, ...)
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
}

impl SecurityFlags {
    pub fn given(&self) -> bool {
        !(self.cap_add.is_empty()
            && self.cap_drop.is_empty()
            && self.security_opt.is_empty()
            && self.ulimit.is_empty())
    }

    /// Sets the capabilities, no_new_privs and seccomp filter of `spec`; `root` is hull's state
    /// root, whose runtime keeps compiled filters.
    pub fn apply(&self, root: &Path, spec: &mut ProcessSpec) -> anyhow::Result<()> {
        let known = hull_runtime::known_capabilities();
        let add = flags::normalize_caps("--cap-add", &self.cap_add, &known)?;
        let drop = flags::normalize_caps("--cap-drop", &self.cap_drop, &known)?;
        let all: Vec<&str> = known.iter().map(String::as_str).collect();
        let caps = flags::capabilities(&all, &known, &add, &drop);
        if !add.is_empty() || !drop.is_empty() {
            spec.capabilities = Some(Capabilities {
                bounding: caps.clone(),
                effective: caps.clone(),
                permitted: caps.clone(),
                ..Capabilities::default()
            });
        }
        for u in &self.ulimit {
            let u = flags::parse_guest_ulimit(u)?;
            spec.rlimits.push(Rlimit {
                kind: u.kind,
                soft: u.soft,
                hard: u.hard,
            });
        }
        let mut seccomp = Seccomp::Unconfined;
        for opt in &self.security_opt {
            flags::parse_security_opt(opt, &mut seccomp, &mut spec.no_new_privileges)?;
        }
        if let Seccomp::File(path) = seccomp {
            let name = path.to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("--security-opt seccomp={name}"))?;
            let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
            let section = from_docker_profile(&text, &name, &caps)?;
            spec.seccomp = Some(hull_engine::vm::guest_seccomp(root, &section)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(add: &[&str], drop: &[&str], opts: &[&str]) -> SecurityFlags {
        let v = |x: &[&str]| x.iter().map(|s| (*s).to_string()).collect();
        SecurityFlags {
            cap_add: v(add),
            cap_drop: v(drop),
            security_opt: v(opts),
            ulimit: vec![],
        }
    }

    #[test]
    fn capabilities_start_from_all_and_options_set_the_spec() {
        let root = Path::new("/nonexistent");
        let mut spec = ProcessSpec::default();
        flags(&[], &[], &[]).apply(root, &mut spec).unwrap();
        assert_eq!(
            (spec.capabilities.clone(), spec.no_new_privileges),
            (None, false)
        );
        flags(&["net_bind_service"], &["ALL"], &["no-new-privileges"])
            .apply(root, &mut spec)
            .unwrap();
        let caps = spec.capabilities.clone().unwrap();
        assert_eq!(caps.bounding, ["CAP_NET_BIND_SERVICE"]);
        assert_eq!(caps.effective, caps.permitted);
        assert!(caps.ambient.is_empty() && caps.inheritable.is_empty());
        assert!(spec.no_new_privileges);
        let mut spec = ProcessSpec::default();
        flags(&[], &["CHOWN"], &[]).apply(root, &mut spec).unwrap();
        let b = spec.capabilities.unwrap().bounding;
        assert!(!b.contains(&"CAP_CHOWN".to_string()) && b.contains(&"CAP_KILL".to_string()));
        let mut spec = ProcessSpec::default();
        // Above this host's hard limit is fine: the guest's PID 1 sets it.
        let mut f = flags(&[], &[], &[]);
        f.ulimit = vec!["nofile=5:99999999".into()];
        f.apply(root, &mut spec).unwrap();
        assert_eq!(spec.rlimits[0].kind, "RLIMIT_NOFILE");
        assert_eq!(
            (spec.rlimits[0].soft, spec.rlimits[0].hard),
            (5, 99_999_999)
        );
        f.ulimit = vec!["files=1".into()];
        assert!(f.apply(root, &mut spec).is_err());
        assert!(flags(&["FLY"], &[], &[]).apply(root, &mut spec).is_err());
        assert!(flags(&[], &[], &["apparmor=x"])
            .apply(root, &mut spec)
            .is_err());
        let e = flags(&[], &[], &["seccomp=/nonexistent.json"])
            .apply(root, &mut spec)
            .unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent.json"), "{e:#}");
    }

    #[test]
    fn a_profile_is_compiled_for_the_guest() {
        let dir = std::env::temp_dir().join(format!("hull-vm-sec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let profile = dir.join("p.json");
        std::fs::write(
            &profile,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        let mut spec = ProcessSpec::default();
        let opt = format!("seccomp={}", profile.display());
        let r = flags(&[], &[], &[&opt]).apply(&dir, &mut spec);
        std::fs::remove_dir_all(&dir).unwrap();
        r.unwrap();
        let prog = spec.seccomp.unwrap().instructions().unwrap();
        assert!(prog.len() > 3, "{prog:?}");
    }
}
