//! The identity the container process runs as: `process.user` (uid, gid, additionalGids,
//! umask), and the `exec --user UID[:GID]` syntax.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::stat::{fstat, umask, Mode, SFlag};
use nix::unistd::{fchown, Uid};
use oci_spec::runtime::{Linux, LinuxIdMapping, User};

use super::error::SecurityError;
use crate::sys::creds;

/// Ids to switch to, checked against the user namespace mappings when the config has them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct UserPlan {
    uid: u32,
    gid: u32,
    additional_gids: Vec<u32>,
    umask: u32,
    in_user_namespace: bool,
}

fn mapped(id: u32, mappings: &[LinuxIdMapping]) -> bool {
    mappings.iter().any(|m| {
        id >= m.container_id() && u64::from(id) < u64::from(m.container_id()) + u64::from(m.size())
    })
}

fn check_mapped(
    what: &str,
    id: u32,
    mappings: Option<&Vec<LinuxIdMapping>>,
    field: &str,
) -> Result<(), SecurityError> {
    match mappings {
        Some(m) if !m.is_empty() && !mapped(id, m) => Err(SecurityError::UserInvalid(format!(
            "{what} {id} is not mapped by linux.{field}"
        ))),
        _ => Ok(()),
    }
}

impl UserPlan {
    pub(super) fn new(
        user: &User,
        linux: Option<&Linux>,
        in_user_namespace: bool,
    ) -> Result<Self, SecurityError> {
        let additional_gids = user.additional_gids().clone().unwrap_or_default();
        let umask = user.umask().unwrap_or(0o022);
        if umask > 0o777 {
            return Err(SecurityError::UserInvalid(format!(
                "umask {umask:#o} has bits outside 0777"
            )));
        }
        if in_user_namespace {
            let uids = linux.and_then(|l| l.uid_mappings().as_ref());
            let gids = linux.and_then(|l| l.gid_mappings().as_ref());
            check_mapped("uid", user.uid(), uids, "uidMappings")?;
            check_mapped("gid", user.gid(), gids, "gidMappings")?;
            for g in &additional_gids {
                check_mapped("additionalGids entry", *g, gids, "gidMappings")?;
            }
        }
        Ok(Self {
            uid: user.uid(),
            gid: user.gid(),
            additional_gids,
            umask,
            in_user_namespace,
        })
    }

    /// Switches to the configured ids; with PR_SET_KEEPCAPS set by the caller the permitted
    /// set survives the switch away from uid 0.
    /// `setgroups` is the answer of [`Self::setgroups_allowed`], asked before seccomp is
    /// loaded so that the filter need not allow reading /proc.
    pub(super) fn apply_ids(&self, setgroups: bool) -> Result<(), SecurityError> {
        self.fix_stdio_owner();
        if setgroups {
            creds::setgroups(&self.additional_gids).map_err(|source| SecurityError::User {
                step: format!("setgroups({:?})", self.additional_gids),
                source,
            })?;
        }
        creds::setresgid(self.gid).map_err(|source| SecurityError::User {
            step: format!("setgid({})", self.gid),
            source,
        })?;
        creds::setresuid(self.uid).map_err(|source| SecurityError::User {
            step: format!("setuid({})", self.uid),
            source,
        })
    }

    pub(super) fn apply_umask(&self) {
        umask(Mode::from_bits_truncate(self.umask));
    }

    /// In a user namespace whose setgroups is "deny", runc skips setgroups, and fails only when
    /// groups were asked for.
    pub(super) fn setgroups_allowed(&self) -> Result<bool, SecurityError> {
        if !self.in_user_namespace {
            return Ok(true);
        }
        let denied =
            std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
        if denied && !self.additional_gids.is_empty() {
            return Err(SecurityError::UserInvalid(
                "additionalGids: setgroups is denied in this user namespace (/proc/self/setgroups is \"deny\")".into(),
            ));
        }
        Ok(!denied)
    }

    /// Gives the new user its stdio (a pipe or pty the runtime made as root), as runc does, so
    /// that /dev/stdout can be reopened; /dev/null and failures (read-only, unmapped) are left.
    fn fix_stdio_owner(&self) {
        let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
        let fds: [BorrowedFd<'_>; 3] = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
        for fd in fds {
            let Ok(st) = fstat(fd) else { continue };
            let is_char = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
            let is_null = is_char && st.st_rdev == nix::sys::stat::makedev(1, 3);
            if is_null || st.st_uid == self.uid {
                continue;
            }
            // Only the owner, as runc: the gid may be a tty group the mount chose. Failures
            // (read-only, unmapped owner) leave the stdio as it is, as runc does.
            let _ = fchown(fd, Some(Uid::from_raw(self.uid)), None);
        }
    }
}

/// Parses `exec --user UID[:GID]`; without `:GID` the gid is 0 (see [`override_user`] to keep
/// the config's gid, as runc does).
pub fn parse_user(s: &str) -> Result<User, SecurityError> {
    let bad = || SecurityError::ParseUser(s.to_string());
    let (uid, gid) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid: u32 = uid.parse().map_err(|_| bad())?;
    let gid: u32 = gid.map_or(Ok(0), str::parse).map_err(|_| bad())?;
    let mut user = User::default();
    user.set_uid(uid);
    user.set_gid(gid);
    Ok(user)
}

/// `base` (the container's `process.user`) with the uid, and the gid when given, from
/// `--user`: as runc, everything else (additionalGids, umask) stays.
pub fn override_user(base: &User, s: &str) -> Result<User, SecurityError> {
    let parsed = parse_user(s)?;
    let mut user = base.clone();
    user.set_uid(parsed.uid());
    if s.contains(':') {
        user.set_gid(parsed.gid());
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_user_forms() {
        let u = parse_user("1000:100").expect("uid:gid");
        assert_eq!((u.uid(), u.gid()), (1000, 100));
        let u = parse_user("7").expect("uid");
        assert_eq!((u.uid(), u.gid()), (7, 0));
        for bad in ["", "root", "1:x", "1:2:3", "-1"] {
            let err = parse_user(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("--user {bad:?}: expected UID[:GID] with numeric ids")
            );
        }
    }

    #[test]
    fn override_keeps_gid_without_colon() {
        let mut base = User::default();
        base.set_gid(50);
        base.set_umask(Some(0o077));
        base.set_additional_gids(Some(vec![7]));
        let u = override_user(&base, "1000").expect("override");
        assert_eq!((u.uid(), u.gid(), u.umask()), (1000, 50, Some(0o077)));
        assert_eq!(u.additional_gids().as_deref(), Some(&[7][..]));
        let u = override_user(&base, "1000:60").expect("override");
        assert_eq!(u.gid(), 60);
    }

    #[test]
    fn unmapped_uid_is_named() {
        let linux: Linux = serde_json::from_str(
            r#"{"uidMappings":[{"containerID":0,"hostID":100000,"size":1000}],
                "gidMappings":[{"containerID":0,"hostID":100000,"size":1000}]}"#,
        )
        .expect("linux");
        let mut user = User::default();
        user.set_uid(5000);
        let err = UserPlan::new(&user, Some(&linux), true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "process.user: uid 5000 is not mapped by linux.uidMappings"
        );
        user.set_uid(999);
        assert!(UserPlan::new(&user, Some(&linux), true).is_ok());
    }
}
