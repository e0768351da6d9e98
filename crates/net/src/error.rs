//! The crate's top-level error: what attach, detach and cleanup can fail with, each variant
//! wrapping one module's error so the message names the mechanism that failed.

use crate::db::DbError;
use crate::etc::EtcError;
use crate::ipam::IpamError;
use crate::netlink::NetlinkError;
use crate::netns::NetnsError;
use crate::network::NetworkError;
use crate::nft::NftError;
use crate::ports::PortError;
use crate::sysctl::SysctlError;
use crate::tap::TapError;

/// Errors of attaching, detaching and cleaning up container networks.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error(transparent)]
    Nft(#[from] NftError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    #[error(transparent)]
    Etc(#[from] EtcError),
    #[error(transparent)]
    Tap(#[from] TapError),
    #[error(transparent)]
    BadContainerId(#[from] hull_sys::id::IdError),
    #[error("hostname {0:?} is invalid: use 1-253 letters, digits, '-' and '.'")]
    BadHostname(String),
    #[error("interface {0} exists and is not a bridge")]
    NotABridge(String),
    #[error("interface name {0:?} is invalid")]
    BadIfname(String),
    #[error("container {container} already has interface {ifname} (on network {network})")]
    AlreadyAttached {
        container: String,
        ifname: String,
        network: String,
    },
    #[error("host port {port} is already published by container {container}")]
    PortPublished { port: String, container: String },
    #[error("port {0} is published twice")]
    PortTwice(String),
    #[error("network mode {mode} takes no {what}")]
    ModeOption {
        mode: &'static str,
        what: &'static str,
    },
    #[error(
        "host veth name {0} is already in use; container ids collide in their first characters"
    )]
    VethCollision(String),
}

impl From<rusqlite::Error> for NetError {
    fn from(e: rusqlite::Error) -> Self {
        NetError::Db(DbError::Sql(e))
    }
}
