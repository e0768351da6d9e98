//! The files a container's network needs: /etc/hostname, /etc/hosts and /etc/resolv.conf
//! (from the host's, with loopback resolvers replaced the way podman does, since 127.0.0.x
//! inside the container's namespace is not the host's resolver).

use std::net::Ipv4Addr;
use std::path::Path;

use serde::Serialize;

/// Resolvers used when the host has only loopback ones (podman's defaults).
const FALLBACK_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// Errors writing the files.
#[derive(Debug, thiserror::Error)]
pub enum EtcError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Contents of the three files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtcFiles {
    pub hostname: String,
    pub hosts: String,
    pub resolv_conf: String,
}

impl EtcFiles {
    /// Files for a container with its own namespace; `addr` is its address and the
    /// network's gateway, when it has one (none for `--network none`).
    pub fn for_container(
        hostname: &str,
        addr: Option<(Ipv4Addr, Option<Ipv4Addr>)>,
        host_resolv: &str,
    ) -> Self {
        let mut hosts = String::from(
            "127.0.0.1\tlocalhost localhost.localdomain\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        );
        match addr {
            Some((ip, gateway)) => {
                hosts.push_str(&format!("{ip}\t{hostname}\n"));
                if let Some(gw) = gateway {
                    hosts.push_str(&format!(
                        "{gw}\thost.containers.internal host.hull.internal\n"
                    ));
                }
            }
            None => hosts.push_str(&format!("127.0.1.1\t{hostname}\n")),
        }
        EtcFiles {
            hostname: format!("{hostname}\n"),
            hosts,
            resolv_conf: container_resolv_conf(host_resolv),
        }
    }

    /// Files for `--network host`: the host's own hosts and resolv.conf, unchanged.
    pub fn for_host(hostname: &str, host_hosts: &str, host_resolv: &str) -> Self {
        EtcFiles {
            hostname: format!("{hostname}\n"),
            hosts: host_hosts.to_string(),
            resolv_conf: host_resolv.to_string(),
        }
    }

    /// Writes `hostname`, `hosts` and `resolv.conf` into `dir`, each by rename.
    pub fn write_into(&self, dir: &Path) -> Result<(), EtcError> {
        for (name, text) in [
            ("hostname", &self.hostname),
            ("hosts", &self.hosts),
            ("resolv.conf", &self.resolv_conf),
        ] {
            write_atomic(&dir.join(name), text)?;
        }
        Ok(())
    }
}

fn write_atomic(path: &Path, text: &str) -> Result<(), EtcError> {
    let err = |source| EtcError::Write {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

fn is_loopback(server: &str) -> bool {
    server
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The host's resolv.conf with loopback nameservers dropped; when none is left, podman's
/// public fallbacks. search/options lines are kept.
pub fn container_resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let Some(server) = words.next() else { continue };
            if is_loopback(server) {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        for s in FALLBACK_NAMESERVERS {
            out.push_str(&format!("nameserver {s}\n"));
        }
    }
    out
}

/// docker's `--add-host NAME:host-gateway`: the address at which the container reaches the host.
pub const HOST_GATEWAY: &str = "host-gateway";

/// `--add-host`: a line per (name, address) after the generated ones, as docker appends them;
/// [`HOST_GATEWAY`] becomes `gateway` (lines naming it are left out when there is none).
pub fn add_hosts(hosts: &str, extra: &[(String, String)], gateway: Option<&str>) -> String {
    let mut out = hosts.to_string();
    for (name, ip) in extra {
        let ip = match ip.as_str() {
            HOST_GATEWAY => match gateway {
                Some(g) => g,
                None => continue,
            },
            ip => ip,
        };
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    out
}

/// `--dns`, `--dns-search`, `--dns-option`: each given kind replaces the file's lines of it.
pub fn override_resolv(
    resolv: &str,
    dns: &[String],
    search: &[String],
    options: &[String],
) -> String {
    let replaced = |word: &str| match word {
        "nameserver" => !dns.is_empty(),
        "search" | "domain" => !search.is_empty(),
        "options" => !options.is_empty(),
        _ => false,
    };
    let mut out: String = resolv
        .lines()
        .filter(|l| !l.split_whitespace().next().is_some_and(replaced))
        .map(|l| format!("{l}\n"))
        .collect();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in dns {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The host's resolv.conf: systemd-resolved's real upstream list when the stub is in use.
pub fn read_host_resolv_conf(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let stub = text
        .lines()
        .any(|l| l.split_whitespace().eq(["nameserver", "127.0.0.53"]));
    if stub {
        if let Ok(real) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            return real;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_overrides() {
        let r = override_resolv(
            "search a.org\nnameserver 192.0.2.1\noptions edns0\n",
            &["10.1.1.1".into()],
            &[],
            &["ndots:2".into()],
        );
        assert_eq!(r, "search a.org\nnameserver 10.1.1.1\noptions ndots:2\n");
        let extra = [
            ("db".to_string(), "10.0.0.5".to_string()),
            ("gw".to_string(), HOST_GATEWAY.to_string()),
        ];
        let h = add_hosts("127.0.0.1\tlocalhost\n", &extra, Some("10.9.0.1"));
        assert!(h.ends_with("10.0.0.5\tdb\n10.9.0.1\tgw\n"), "{h}");
        assert!(!add_hosts("", &extra, None).contains("gw"));
    }

    #[test]
    fn loopback_resolvers_replaced() {
        let host = "search example.org\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n";
        let r = container_resolv_conf(host);
        assert!(!r.contains("127.0.0.53") && !r.contains("::1"));
        assert!(r.contains("search example.org") && r.contains("options edns0"));
        assert!(r.contains("nameserver 8.8.8.8"));
        let r = container_resolv_conf("nameserver 127.0.0.1\nnameserver 192.0.2.53\n");
        assert_eq!(r, "nameserver 192.0.2.53\n");
    }

    #[test]
    fn hosts_has_container_and_gateway() {
        let f = EtcFiles::for_container(
            "web",
            Some((
                Ipv4Addr::new(10, 88, 0, 2),
                Some(Ipv4Addr::new(10, 88, 0, 1)),
            )),
            "",
        );
        assert!(f.hosts.contains("10.88.0.2\tweb\n"));
        assert!(f.hosts.contains("10.88.0.1\thost.containers.internal"));
        assert_eq!(f.hostname, "web\n");
    }
}
