//! hull-net: what gives a container in its own network namespace a working network —
//! bridges, veth pairs, addresses and routes over netlink, IPAM in SQLite, port publishing
//! and masquerade with nftables, and the container's /etc/hosts, /etc/hostname, resolv.conf.

pub mod attach;
pub mod cidr;
pub mod cni;
pub mod db;
pub mod engine;
pub mod error;
pub mod etc;
mod host_lock;
pub mod ipam;
pub mod names;
pub mod netlink;
pub mod netns;
pub mod network;
pub mod nft;
pub mod pool;
pub mod ports;
pub mod sysctl;
pub mod tap;
