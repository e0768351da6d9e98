//! IPv4 subnets (`10.88.0.0/16`): parsing, membership, overlap, host ranges.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Errors parsing or checking a subnet.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    #[error("subnet {0:?} is not an IPv4 CIDR like 10.88.0.0/16")]
    Syntax(String),
    #[error("subnet {given} has host bits set (did you mean {network}?)")]
    HostBits { given: String, network: String },
    #[error("subnet {0} is too small: it needs room for a gateway and at least one container (/30 or larger)")]
    TooSmall(String),
}

/// An IPv4 network: base address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// A network from its base address; host bits must be clear.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, CidrError> {
        let net = Ipv4Net { addr, prefix };
        if prefix > 32 {
            return Err(CidrError::Syntax(format!("{addr}/{prefix}")));
        }
        if u32::from(addr) & !net.mask() != 0 {
            return Err(CidrError::HostBits {
                given: format!("{addr}/{prefix}"),
                network: format!("{}/{prefix}", Ipv4Addr::from(u32::from(addr) & net.mask())),
            });
        }
        Ok(net)
    }

    /// The network that `ip/prefix` lies in (host bits cleared).
    pub fn containing(ip: Ipv4Addr, prefix: u8) -> Ipv4Net {
        let prefix = prefix.min(32);
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        };
        Ipv4Net {
            addr: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
        }
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The netmask as a u32.
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// First and last usable host address (network and broadcast excluded).
    pub fn host_range(&self) -> (u32, u32) {
        (u32::from(self.addr) + 1, u32::from(self.broadcast()) - 1)
    }

    /// Refuses subnets without room for a gateway plus one container.
    pub fn require_usable(&self) -> Result<(), CidrError> {
        if self.prefix > 30 {
            return Err(CidrError::TooSmall(self.to_string()));
        }
        Ok(())
    }

    /// Whether `ip` is a usable host address of this subnet.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        let (lo, hi) = self.host_range();
        (lo..=hi).contains(&u32::from(ip)) && self.contains(ip)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CidrError::Syntax(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ipv4Net::new(addr, prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_check() {
        let n: Ipv4Net = "10.88.0.0/16".parse().unwrap();
        assert!(n.contains("10.88.255.1".parse().unwrap()));
        assert!(!n.contains("10.89.0.1".parse().unwrap()));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 88, 255, 255));
        assert!(matches!(
            "10.88.0.1/16".parse::<Ipv4Net>(),
            Err(CidrError::HostBits { .. })
        ));
        assert!(matches!(
            "10.88.0.0".parse::<Ipv4Net>(),
            Err(CidrError::Syntax(_))
        ));
        assert!(matches!(
            "10.88.0.0/33".parse::<Ipv4Net>(),
            Err(CidrError::Syntax(_))
        ));
        let small: Ipv4Net = "10.1.1.0/31".parse().unwrap();
        assert!(small.require_usable().is_err());
        let a: Ipv4Net = "10.0.0.0/8".parse().unwrap();
        assert!(a.overlaps(&n) && n.overlaps(&a));
        assert!(!n.overlaps(&"10.89.0.0/16".parse().unwrap()));
        assert!(n.is_host(Ipv4Addr::new(10, 88, 0, 1)));
        assert!(!n.is_host(Ipv4Addr::new(10, 88, 255, 255)));
    }
}
