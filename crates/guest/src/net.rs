//! The guest's network, as the host's spec gives it: lo up, and each interface (the virtio-net
//! NIC whose MAC the host named, its driver loaded from the initramfs) renamed, sized, addressed
//! and routed as the container's interface it mirrors is on the host. Plain ioctls on an
//! AF_INET socket (SIOCSIF*, SIOCADDRT), which the static PID 1 makes without a netlink library.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hull_vmproto::InterfaceSpec;

/// How long a NIC may take to appear once its driver is loaded.
const NIC_WAIT: Duration = Duration::from_secs(10);

/// `struct rtentry` of <net/route.h> (libc has none for glibc).
#[repr(C)]
struct RtEntry {
    pad1: libc::c_ulong,
    dst: libc::sockaddr,
    gateway: libc::sockaddr,
    genmask: libc::sockaddr,
    flags: libc::c_ushort,
    pad2: libc::c_short,
    pad3: libc::c_ulong,
    pad4: *mut libc::c_void,
    metric: libc::c_short,
    dev: *mut libc::c_char,
    mtu: libc::c_ulong,
    window: libc::c_ulong,
    irtt: libc::c_ushort,
}

/// An AF_INET datagram socket, the handle the interface ioctls take.
struct Sock(OwnedFd);

impl Sock {
    fn open() -> anyhow::Result<Sock> {
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            bail!("socket: {}", std::io::Error::last_os_error());
        }
        // SAFETY: a descriptor socket(2) just returned, owned by nothing else.
        Ok(Sock(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// One interface ioctl on `req`; `what` names it in the error.
    fn ifreq(&self, op: libc::Ioctl, req: &mut libc::ifreq, what: &str) -> anyhow::Result<()> {
        // SAFETY: the SIOC*IF* requests read and write only the ifreq, which outlives the call.
        if unsafe { libc::ioctl(self.0.as_raw_fd(), op, std::ptr::from_mut(req)) } != 0 {
            bail!("{what}: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }
}

fn request(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all zeroes is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = libc::c_char::from_ne_bytes([src]);
    }
    req
}

fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::sa_family_t::try_from(libc::AF_INET).unwrap_or_default(),
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes of plain data; the kernel reads a
    // sockaddr of family AF_INET as a sockaddr_in.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(
        u32::MAX
            .checked_shl(32 - u32::from(prefix.min(32)))
            .unwrap_or(0),
    )
}

/// Sets IFF_UP on interface `name`.
fn up(sock: &Sock, name: &str) -> anyhow::Result<()> {
    let mut req = request(name);
    sock.ifreq(libc::SIOCGIFFLAGS, &mut req, &format!("flags of {name}"))?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::c_short::try_from(libc::IFF_UP).unwrap_or(1);
    sock.ifreq(libc::SIOCSIFFLAGS, &mut req, &format!("setting {name} up"))
}

/// The name of the interface whose MAC is `mac`, waiting for its driver to make it.
fn by_mac(mac: &str) -> anyhow::Result<String> {
    let start = Instant::now();
    loop {
        for e in std::fs::read_dir("/sys/class/net")
            .into_iter()
            .flatten()
            .flatten()
        {
            let path: PathBuf = e.path().join("address");
            let found = std::fs::read_to_string(path).unwrap_or_default();
            if found.trim().eq_ignore_ascii_case(mac) {
                return Ok(e.file_name().to_string_lossy().into_owned());
            }
        }
        if start.elapsed() > NIC_WAIT {
            bail!("no network interface with MAC {mac} after {NIC_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Configures one interface.
fn configure_one(sock: &Sock, spec: &InterfaceSpec) -> anyhow::Result<()> {
    let name = &spec.name;
    let found = by_mac(&spec.mac)?;
    if &found != name {
        // Renaming needs the interface down, which a NIC just made is.
        let mut req = request(&found);
        req.ifr_ifru.ifru_newname = request(name).ifr_name;
        sock.ifreq(
            libc::SIOCSIFNAME,
            &mut req,
            &format!("renaming {found} to {name}"),
        )?;
    }
    let mut req = request(name);
    req.ifr_ifru.ifru_mtu = libc::c_int::try_from(spec.mtu).unwrap_or(1500);
    sock.ifreq(
        libc::SIOCSIFMTU,
        &mut req,
        &format!("MTU {} on {name}", spec.mtu),
    )?;
    for (i, (ip, prefix)) in spec.addresses.iter().enumerate() {
        // More than one address: the others as labels (eth0:1), as ifconfig adds them.
        let label = if i == 0 {
            name.clone()
        } else {
            format!("{name}:{i}")
        };
        let mut req = request(&label);
        req.ifr_ifru.ifru_addr = sockaddr(*ip);
        sock.ifreq(
            libc::SIOCSIFADDR,
            &mut req,
            &format!("address {ip} on {label}"),
        )?;
        let mut req = request(&label);
        req.ifr_ifru.ifru_netmask = sockaddr(netmask(*prefix));
        sock.ifreq(
            libc::SIOCSIFNETMASK,
            &mut req,
            &format!("prefix /{prefix} on {label}"),
        )?;
    }
    up(sock, name)?;
    if let Some(gw) = spec.gateway {
        default_route(sock, name, gw)?;
    }
    Ok(())
}

/// Adds the default route via `gw` out of interface `name`.
fn default_route(sock: &Sock, name: &str, gw: Ipv4Addr) -> anyhow::Result<()> {
    let mut dev = crate::setup::cstring(name)?.into_bytes_with_nul();
    let mut rt = RtEntry {
        pad1: 0,
        dst: sockaddr(Ipv4Addr::UNSPECIFIED),
        gateway: sockaddr(gw),
        genmask: sockaddr(Ipv4Addr::UNSPECIFIED),
        flags: libc::c_ushort::try_from(libc::RTF_UP | libc::RTF_GATEWAY).unwrap_or(3),
        pad2: 0,
        pad3: 0,
        pad4: std::ptr::null_mut(),
        metric: 0,
        dev: dev.as_mut_ptr().cast(),
        mtu: 0,
        window: 0,
        irtt: 0,
    };
    // SAFETY: SIOCADDRT reads the rtentry and the NUL-terminated device name it points to,
    // both alive across the call.
    let rc = unsafe {
        libc::ioctl(
            sock.0.as_raw_fd(),
            libc::SIOCADDRT,
            std::ptr::from_mut(&mut rt),
        )
    };
    if rc != 0 {
        bail!(
            "default route via {gw}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// lo up, then every interface of the spec.
pub fn configure(interfaces: &[InterfaceSpec]) -> anyhow::Result<()> {
    let sock = Sock::open()?;
    up(&sock, "lo")?;
    for spec in interfaces {
        configure_one(&sock, spec)
            .with_context(|| format!("configuring the guest's {}", spec.name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks_and_the_rtentry_layout() {
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(netmask(32), Ipv4Addr::BROADCAST);
        // glibc's struct rtentry on x86_64.
        assert_eq!(std::mem::size_of::<RtEntry>(), 120);
    }
}
