//! Published ports: the `-p [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]` syntax, and the check
//! that a host port is free before hull claims it.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Errors about published ports.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    #[error("port mapping {0:?} is invalid: use [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]")]
    Syntax(String),
    #[error("port mapping {spec:?}: {what} {value:?} is not a port number (1-65535)")]
    BadPort {
        spec: String,
        what: &'static str,
        value: String,
    },
    #[error("port mapping {spec:?}: protocol {proto:?} is not supported (tcp or udp)")]
    BadProto { spec: String, proto: String },
    #[error("port mapping {spec:?}: host IP {ip:?} is not an IPv4 address")]
    BadHostIp { spec: String, ip: String },
    #[error("host port {0} is already in use")]
    Taken(String),
    #[error("host IP {0} is not an address of this host")]
    NotLocal(Ipv4Addr),
    #[error("cannot check host port {addr}: {reason}")]
    Check { addr: String, reason: String },
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    pub fn parse(s: &str) -> Option<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }
}

/// One published port; `host_ip` 0.0.0.0 means every host address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}->{}/{}",
            self.host_ip,
            self.host_port,
            self.container_port,
            self.proto.as_str()
        )
    }
}

fn port(spec: &str, what: &'static str, value: &str) -> Result<u16, PortError> {
    match value.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(PortError::BadPort {
            spec: spec.to_string(),
            what,
            value: value.to_string(),
        }),
    }
}

impl FromStr for PortMapping {
    type Err = PortError;

    fn from_str(spec: &str) -> Result<Self, PortError> {
        let (ports, proto) = match spec.rsplit_once('/') {
            Some((p, proto)) => (
                p,
                Proto::parse(proto).ok_or_else(|| PortError::BadProto {
                    spec: spec.to_string(),
                    proto: proto.to_string(),
                })?,
            ),
            None => (spec, Proto::Tcp),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let (ip, host, container) = match parts.as_slice() {
            [h, c] => (None, *h, *c),
            [ip, h, c] => (Some(*ip), *h, *c),
            _ => return Err(PortError::Syntax(spec.to_string())),
        };
        let host_ip = match ip {
            None | Some("") => Ipv4Addr::UNSPECIFIED,
            Some(ip) => ip.parse().map_err(|_| PortError::BadHostIp {
                spec: spec.to_string(),
                ip: ip.to_string(),
            })?,
        };
        Ok(PortMapping {
            host_ip,
            host_port: port(spec, "host port", host)?,
            container_port: port(spec, "container port", container)?,
            proto,
        })
    }
}

/// Checks that nothing on the host listens on the mapping's host address and port, by
/// binding it for a moment (the DNAT rule would otherwise silently steal its traffic).
pub fn check_free(m: &PortMapping) -> Result<(), PortError> {
    let addr = SocketAddrV4::new(m.host_ip, m.host_port);
    let shown = format!("{}:{}/{}", m.host_ip, m.host_port, m.proto.as_str());
    let res = match m.proto {
        Proto::Tcp => TcpListener::bind(addr).map(drop),
        Proto::Udp => UdpSocket::bind(addr).map(drop),
    };
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(PortError::Taken(shown)),
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
            Err(PortError::NotLocal(m.host_ip))
        }
        Err(e) => Err(PortError::Check {
            addr: shown,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        let m: PortMapping = "8080:80".parse().unwrap();
        assert_eq!(
            (m.host_port, m.container_port, m.proto),
            (8080, 80, Proto::Tcp)
        );
        assert_eq!(m.host_ip, Ipv4Addr::UNSPECIFIED);
        let m: PortMapping = "127.0.0.1:53:5353/udp".parse().unwrap();
        assert_eq!(m.host_ip, Ipv4Addr::LOCALHOST);
        assert_eq!(m.proto, Proto::Udp);
        assert!(matches!(
            "80".parse::<PortMapping>(),
            Err(PortError::Syntax(_))
        ));
        assert!(matches!(
            "0:80".parse::<PortMapping>(),
            Err(PortError::BadPort { .. })
        ));
        assert!(matches!(
            "1:70000".parse::<PortMapping>(),
            Err(PortError::BadPort { .. })
        ));
        assert!(matches!(
            "1:2/sctp".parse::<PortMapping>(),
            Err(PortError::BadProto { .. })
        ));
        assert!(matches!(
            "x:1:2".parse::<PortMapping>(),
            Err(PortError::BadHostIp { .. })
        ));
    }
}
