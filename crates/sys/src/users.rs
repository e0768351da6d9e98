//! `-u USER[:GROUP]` resolved the way docker and runc do: names are looked up in the root's own
//! /etc/passwd and /etc/group (given as text: the engine reads an image's, hull-guest its
//! disk's), numbers are taken as they are. One rule for containers and microVMs.

/// Why a user could not be resolved; the texts are docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    #[error("the image's {file} file has a malformed entry for {user}")]
    Malformed { file: &'static str, user: String },
}

/// The user a container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the groups of /etc/group that list the user.
    pub additional_gids: Vec<u32>,
    /// The user's home from /etc/passwd, for HOME.
    pub home: String,
}

/// Resolves `spec` (`user`, `uid`, `user:group`, `uid:gid`; empty is root) against the
/// contents of the image's passwd and group files (empty when the image has none).
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<ResolvedUser, UserError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entries: Vec<Vec<&str>> = passwd.lines().map(|l| l.split(':').collect()).collect();
    let by_name = entries.iter().find(|f| f.len() >= 6 && f[0] == user);
    let (uid, mut gid, home, name) = match (user.parse::<u32>(), by_name) {
        (Ok(uid), _) => {
            let entry = entries
                .iter()
                .find(|f| f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid));
            match entry {
                Some(f) => (uid, f[3].parse().unwrap_or(0), f[5].to_string(), Some(f[0])),
                None => (uid, 0, "/".to_string(), None),
            }
        }
        (Err(_), Some(f)) => (
            f[2].parse().map_err(|_| bad_file("passwd", user))?,
            f[3].parse().map_err(|_| bad_file("passwd", user))?,
            f[5].to_string(),
            Some(f[0]),
        ),
        (Err(_), None) => return Err(UserError::NoUser(user.to_string())),
    };
    let groups: Vec<Vec<&str>> = group.lines().map(|l| l.split(':').collect()).collect();
    if let Some(g) = grp.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| UserError::NoGroup(g.to_string()))?,
        };
    }
    let additional_gids = match name {
        Some(name) if grp.is_none() => groups
            .iter()
            .filter(|f| f.len() >= 4 && f[3].split(',').any(|m| m == name))
            .filter_map(|f| f[2].parse().ok())
            .filter(|g| *g != gid)
            .collect(),
        _ => Vec::new(),
    };
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

fn bad_file(file: &'static str, user: &str) -> UserError {
    UserError::Malformed {
        file,
        user: user.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nweb:x:1000:1000::/home/web:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\nweb:x:1000:\nwheel:x:10:web\n";

    #[test]
    fn names_numbers_and_groups() {
        let r = resolve("", PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
        let w = resolve("web", PASSWD, GROUP).unwrap();
        assert_eq!(
            (w.uid, w.gid, w.additional_gids.clone(), w.home.as_str()),
            (1000, 1000, vec![10], "/home/web")
        );
        let n = resolve("nobody:web", PASSWD, GROUP).unwrap();
        assert_eq!((n.uid, n.gid), (65534, 1000));
        let x = resolve("4242:4343", "", "").unwrap();
        assert_eq!((x.uid, x.gid, x.home.as_str()), (4242, 4343, "/"));
        assert!(resolve("ghost", PASSWD, GROUP).is_err());
        assert!(resolve("web:ghosts", PASSWD, GROUP).is_err());
    }
}
