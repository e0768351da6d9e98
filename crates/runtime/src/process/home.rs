//! HOME for a process whose environment has none, as runc's init sets it: the home of the
//! process's uid in the container's /etc/passwd, else "/". Read inside the container (after
//! its root is final), so the file is the container's.

use std::io::Read;

/// The most of /etc/passwd read: the file is the container's, and its size is its choice.
const MAX_PASSWD: u64 = 4 << 20;

/// `env` with HOME set when it is missing or empty (Go's Setenv, as runc: in place if the
/// name is there, else last). `home` is only called when needed.
pub fn with_home(mut env: Vec<String>, home: impl FnOnce() -> String) -> Vec<String> {
    let at = env
        .iter()
        .position(|e| e == "HOME" || e.starts_with("HOME="));
    match at {
        Some(i) if env[i].len() > "HOME=".len() => env,
        Some(i) => {
            env[i] = format!("HOME={}", home());
            env
        }
        None => {
            env.push(format!("HOME={}", home()));
            env
        }
    }
}

/// The home directory of `uid` in passwd(5) text: the first entry with that uid.
fn home_in(passwd: &str, uid: u32) -> Option<&str> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            [_, _, id, _, _, home, _] if id.parse::<u32>() == Ok(uid) => Some(*home),
            _ => None,
        }
    })
}

/// `uid`'s home in this root's /etc/passwd, or "/" (runc's default) when the file is missing,
/// not a regular file, or has no entry for it.
pub fn home_of(uid: u32) -> String {
    let read = || -> Option<String> {
        let file = std::fs::File::open("/etc/passwd").ok()?;
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        let mut text = String::new();
        file.take(MAX_PASSWD).read_to_string(&mut text).ok()?;
        Some(text)
    };
    read()
        .as_deref()
        .and_then(|text| home_in(text, uid))
        .filter(|h| !h.is_empty())
        .unwrap_or("/")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn home_is_added_last_or_filled_in_place_never_replaced() {
        let home = || "/root".to_string();
        assert_eq!(
            with_home(strings(&["PATH=/bin", "X=1"]), home),
            strings(&["PATH=/bin", "X=1", "HOME=/root"])
        );
        assert_eq!(
            with_home(strings(&["HOME=", "PATH=/bin"]), home),
            strings(&["HOME=/root", "PATH=/bin"])
        );
        assert_eq!(
            with_home(strings(&["HOME=/h", "PATH=/bin"]), || unreachable!()),
            strings(&["HOME=/h", "PATH=/bin"])
        );
    }

    #[test]
    fn home_of_a_uid_in_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nbroken\napp:x:1000:1000::/home/app:/bin/sh\n\
                      again:x:1000:1000::/other:/bin/sh\n";
        assert_eq!(home_in(passwd, 0), Some("/root"));
        assert_eq!(home_in(passwd, 1000), Some("/home/app"));
        assert_eq!(home_in(passwd, 2000), None);
    }
}
