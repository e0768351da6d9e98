//! `--expose` and `-P`: the ports a container exposes (the image's ExposedPorts and the
//! user's), and each of them published to a free host port on every host address, as
//! docker's `--publish-all` does.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};

use hull_net::ports::{PortMapping, Proto};

use crate::error::EngineError;

/// `--expose 80`, `80/udp` or a range `8000-8010/tcp`: the ports as `80/tcp`.
pub fn parse_expose(text: &str) -> Result<Vec<String>, EngineError> {
    let bad = || {
        EngineError::Invalid(format!(
            "invalid --expose {text:?}: use PORT[/tcp|udp] or START-END[/tcp|udp]"
        ))
    };
    let (range, proto) = match text.split_once('/') {
        Some((r, p)) => (r, Proto::parse(p).ok_or_else(bad)?),
        None => (text, Proto::Tcp),
    };
    let (first, last) = range.split_once('-').unwrap_or((range, range));
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad);
    let (first, last) = (port(first)?, port(last)?);
    if first > last {
        return Err(bad());
    }
    Ok((first..=last)
        .map(|p| format!("{p}/{}", proto.as_str()))
        .collect())
}

/// An exposed port (`80/tcp`, or `80` for tcp) as its number and protocol.
fn exposed(text: &str) -> Option<(u16, Proto)> {
    let (port, proto) = match text.split_once('/') {
        Some((n, p)) => (n, Proto::parse(p)?),
        None => (text, Proto::Tcp),
    };
    Some((port.parse().ok()?, proto))
}

/// A host port nothing uses now, from the kernel's ephemeral range (as docker picks them).
fn free_port(proto: Proto) -> Result<u16, EngineError> {
    let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
    let port = match proto {
        Proto::Tcp => TcpListener::bind(any).and_then(|l| l.local_addr()),
        Proto::Udp => UdpSocket::bind(any).and_then(|s| s.local_addr()),
    }
    .map_err(EngineError::io("finding a free host port"))?
    .port();
    Ok(port)
}

/// `-P`: a mapping for each exposed port that `-p` does not publish already.
pub fn publish_all(
    exposed_ports: &[String],
    explicit: &[PortMapping],
) -> Result<Vec<PortMapping>, EngineError> {
    let mut out = Vec::new();
    for text in exposed_ports {
        let Some((container_port, proto)) = exposed(text) else {
            return Err(EngineError::Invalid(format!(
                "exposed port {text:?} is not PORT/tcp or PORT/udp"
            )));
        };
        let taken = explicit
            .iter()
            .chain(&out)
            .any(|m| m.container_port == container_port && m.proto == proto);
        if !taken {
            out.push(PortMapping {
                host_ip: Ipv4Addr::UNSPECIFIED,
                host_port: free_port(proto)?,
                container_port,
                proto,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expose_forms() {
        assert_eq!(parse_expose("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_expose("53/udp").unwrap(), ["53/udp"]);
        assert_eq!(
            parse_expose("8000-8002/tcp").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(parse_expose("0").is_err());
        assert!(parse_expose("9-8").is_err());
        assert!(parse_expose("80/sctp").is_err());
    }

    #[test]
    fn publish_all_skips_what_p_publishes() {
        let explicit: Vec<PortMapping> = vec!["8080:80".parse().unwrap()];
        let ports = ["80/tcp".to_string(), "81/tcp".into(), "81/udp".into()];
        let got = publish_all(&ports, &explicit).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].container_port, got[0].proto), (81, Proto::Tcp));
        assert_eq!((got[1].container_port, got[1].proto), (81, Proto::Udp));
        assert!(got.iter().all(|m| m.host_port > 0));
    }
}
