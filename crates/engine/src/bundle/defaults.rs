//! podman's defaults for a container, as its containers.conf and libpod set them: the
//! capability set, masked and read-only paths, the default mounts, and the rlimits (capped to
//! what this host allows, since raising a hard limit needs CAP_SYS_RESOURCE).

use serde_json::{json, Value};

/// podman's `default_capabilities`.
pub const CAPABILITIES: [&str; 11] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// Hidden from the container (an empty file or tmpfs over them).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/dev/block",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
    "/sys/fs/selinux",
];

pub const READONLY_PATHS: [&str; 6] = [
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys, /sys/fs/cgroup with podman's options.
pub fn mounts() -> Vec<Value> {
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["rprivate", "nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ]
}

/// The host's hard limits that bound what a container may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    pub nofile_hard: u64,
    pub nproc_hard: u64,
}

impl HostLimits {
    /// This process's hard limits (a container cannot get more without CAP_SYS_RESOURCE).
    pub fn current() -> HostLimits {
        use nix::sys::resource::{getrlimit, Resource};
        let hard = |r| getrlimit(r).map(|(_, h)| h).unwrap_or(u64::MAX);
        HostLimits {
            nofile_hard: hard(Resource::RLIMIT_NOFILE),
            nproc_hard: hard(Resource::RLIMIT_NPROC),
        }
    }
}

/// podman's rlimits as root (nofile 1048576, nproc 4194304), each capped to the host's hard
/// limit so the runtime can set them.
pub fn rlimits(host: HostLimits) -> Vec<Value> {
    let nofile = host.nofile_hard.min(1_048_576);
    let nproc = host.nproc_hard.min(4_194_304);
    vec![
        json!({"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}),
        json!({"type": "RLIMIT_NPROC", "hard": nproc, "soft": nproc}),
    ]
}
