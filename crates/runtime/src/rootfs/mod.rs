//! The container's root file system: validation of config.json's root, mounts, devices, masked and
//! readonly paths and sysctls (before clone), then, in the container's init, the mounts, /dev,
//! pivot_root and the final read-only / masking steps. Every path inside the rootfs is resolved
//! with openat2(RESOLVE_IN_ROOT) and mounted on through its descriptor.
//!
//! Order in the container's init (single-threaded, in its new or joined mount namespace, or the
//! caller's when the config lists none):
//! `prepare()` -> (createRuntime/createContainer hook sync) -> `pivot()` -> console setup
//! (bind the pty onto /dev/console) -> `finalize()` -> exec.

mod bind;
mod cgroup_mounts;
mod copyup;
mod devices;
mod error;
mod idmap;
mod masked;
mod mounts;
mod options;
mod phases;
mod pivot;
mod plan;
mod propagation;
mod resolve;
mod shared;
mod sysctl;

#[cfg(test)]
mod kernel_tests;

use std::path::PathBuf;

pub use error::RootfsError;
pub use options::supported_mount_options;
pub use phases::Prepared;
pub(crate) use plan::read_ahead;
pub use plan::RootfsPlan;
pub use shared::SharedRootfs;

/// What the process code knows that config.json does not say.
#[derive(Debug, Clone, Default)]
pub struct RootfsOptions {
    /// `--no-pivot`: MS_MOVE the rootfs onto / and chroot instead of pivot_root.
    pub no_pivot: bool,
    /// The container has its own user namespace: device nodes are bind-mounted from the host
    /// (mknod is not allowed there).
    pub user_namespace: bool,
    /// The container has its own cgroup namespace: cgroup views are fresh cgroup mounts rather
    /// than binds of the container's host cgroup directories.
    pub cgroup_namespace: bool,
    /// The process has a terminal: /dev/console is made for the pty to be bound on (runc makes
    /// none otherwise).
    pub terminal: bool,
    /// Create only the config's `linux.devices`, not the default /dev/null, zero, full,
    /// random, urandom and tty (a jail whose only device is /dev/kvm).
    pub no_default_devices: bool,
    /// The container's cgroup hierarchies, for `cgroup` entries of `mounts`.
    pub cgroups: Vec<CgroupMount>,
}

/// One host cgroup hierarchy of this container, filled by the process code from hull-cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// 1 or 2.
    pub version: u8,
    /// v1 controllers of the hierarchy, e.g. ["cpu", "cpuacct"] or ["name=systemd"]; empty for v2.
    pub controllers: Vec<String>,
    /// Host mount point of the hierarchy, e.g. /sys/fs/cgroup/cpu,cpuacct.
    pub mount_point: PathBuf,
    /// The container's cgroup directory in it: either a host path under `mount_point`, or the
    /// cgroup path relative to the hierarchy root (e.g. /hull/abc).
    pub path: PathBuf,
}
