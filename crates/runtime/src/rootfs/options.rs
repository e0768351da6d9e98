//! Mount option strings -> mount(2) flags, propagation, recursive mount_setattr attributes and
//! file-system data, with runc's vocabulary. An option nobody knows is an error naming it.

use nix::mount::MsFlags;

use hull_sys::mount_api::{
    MountAttr, MOUNT_ATTR_ATIME_MASK, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_RELATIME, MOUNT_ATTR_STRICTATIME,
};

/// (name, clears the flag, flag), as runc's mountFlags table.
const FLAGS: &[(&str, bool, MsFlags)] = &[
    ("acl", false, MsFlags::MS_POSIXACL),
    ("async", true, MsFlags::MS_SYNCHRONOUS),
    ("atime", true, MsFlags::MS_NOATIME),
    ("bind", false, MsFlags::MS_BIND),
    ("defaults", false, MsFlags::empty()),
    ("dev", true, MsFlags::MS_NODEV),
    ("diratime", true, MsFlags::MS_NODIRATIME),
    ("dirsync", false, MsFlags::MS_DIRSYNC),
    ("exec", true, MsFlags::MS_NOEXEC),
    ("iversion", false, MsFlags::MS_I_VERSION),
    ("lazytime", false, MsFlags::MS_LAZYTIME),
    ("loud", true, MsFlags::MS_SILENT),
    ("mand", false, MsFlags::MS_MANDLOCK),
    ("noacl", true, MsFlags::MS_POSIXACL),
    ("noatime", false, MsFlags::MS_NOATIME),
    ("nodev", false, MsFlags::MS_NODEV),
    ("nodiratime", false, MsFlags::MS_NODIRATIME),
    ("noexec", false, MsFlags::MS_NOEXEC),
    ("noiversion", true, MsFlags::MS_I_VERSION),
    ("nolazytime", true, MsFlags::MS_LAZYTIME),
    ("nomand", true, MsFlags::MS_MANDLOCK),
    ("norelatime", true, MsFlags::MS_RELATIME),
    ("nostrictatime", true, MsFlags::MS_STRICTATIME),
    ("nosuid", false, MsFlags::MS_NOSUID),
    ("nosymfollow", false, MS_NOSYMFOLLOW),
    ("rbind", false, MsFlags::MS_BIND.union(MsFlags::MS_REC)),
    ("relatime", false, MsFlags::MS_RELATIME),
    ("ro", false, MsFlags::MS_RDONLY),
    ("rw", true, MsFlags::MS_RDONLY),
    ("silent", false, MsFlags::MS_SILENT),
    ("strictatime", false, MsFlags::MS_STRICTATIME),
    ("suid", true, MsFlags::MS_NOSUID),
    ("sync", false, MsFlags::MS_SYNCHRONOUS),
];

/// nix 0.32 has no MS_NOSYMFOLLOW (Linux 5.10).
pub(crate) const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

const PROPAGATION: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("shared", MsFlags::MS_SHARED),
    ("slave", MsFlags::MS_SLAVE),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// (name, clears, MOUNT_ATTR_*), applied with mount_setattr(AT_RECURSIVE), as runc's recAttrFlags.
const RECURSIVE: &[(&str, bool, u64)] = &[
    ("rro", false, MOUNT_ATTR_RDONLY),
    ("rrw", true, MOUNT_ATTR_RDONLY),
    ("rnosuid", false, MOUNT_ATTR_NOSUID),
    ("rsuid", true, MOUNT_ATTR_NOSUID),
    ("rnodev", false, MOUNT_ATTR_NODEV),
    ("rdev", true, MOUNT_ATTR_NODEV),
    ("rnoexec", false, MOUNT_ATTR_NOEXEC),
    ("rexec", true, MOUNT_ATTR_NOEXEC),
    ("rnodiratime", false, MOUNT_ATTR_NODIRATIME),
    ("rdiratime", true, MOUNT_ATTR_NODIRATIME),
    ("rrelatime", false, MOUNT_ATTR_RELATIME),
    ("rnorelatime", true, MOUNT_ATTR_RELATIME),
    ("rnoatime", false, MOUNT_ATTR_NOATIME),
    ("ratime", true, MOUNT_ATTR_NOATIME),
    ("rstrictatime", false, MOUNT_ATTR_STRICTATIME),
    ("rnostrictatime", true, MOUNT_ATTR_STRICTATIME),
    ("rnosymfollow", false, MOUNT_ATTR_NOSYMFOLLOW),
    ("rsymfollow", true, MOUNT_ATTR_NOSYMFOLLOW),
];

/// File-system data options (with or without `=value`) accepted per type. Types not listed here
/// take no data option at all.
const FS_DATA: &[(&str, &[&str])] = &[
    (
        "tmpfs",
        &[
            "size",
            "nr_blocks",
            "nr_inodes",
            "mode",
            "uid",
            "gid",
            "huge",
            "mpol",
            "inode32",
            "inode64",
            "noswap",
            "quota",
            "usrquota",
            "grpquota",
            "usrquota_block_hardlimit",
            "usrquota_inode_hardlimit",
            "grpquota_block_hardlimit",
            "grpquota_inode_hardlimit",
        ],
    ),
    (
        "devpts",
        &["newinstance", "ptmxmode", "mode", "gid", "uid", "max"],
    ),
    ("proc", &["hidepid", "gid", "subset"]),
    (
        "cgroup2",
        &[
            "nsdelegate",
            "memory_recursiveprot",
            "favordynmods",
            "memory_localevents",
        ],
    ),
    ("mqueue", &[]),
    ("sysfs", &[]),
    ("cgroup", &[]),
];

/// Every option name `mounts[].options` accepts besides file-system data (`key=value` and the
/// per-type words), for the runtime's `features` output.
pub fn supported_mount_options() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = FLAGS.iter().map(|(n, _, _)| *n).collect();
    all.extend(PROPAGATION.iter().map(|(n, _)| *n));
    all.extend(RECURSIVE.iter().map(|(n, _, _)| *n));
    all.extend(["idmap", "ridmap", "tmpcopyup"]);
    all.sort_unstable();
    all
}

/// What one mount's option list asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedOptions {
    /// mount(2) flags to set.
    pub flags: MsFlags,
    /// mount(2) flags the options explicitly clear ("rw", "dev", "suid", ...).
    pub cleared: MsFlags,
    /// Propagation changes, applied in order after the mount.
    pub propagation: Vec<MsFlags>,
    /// MOUNT_ATTR_* set and cleared recursively.
    pub rec_set: u64,
    pub rec_clr: u64,
    /// File-system specific options, in order.
    pub data: Vec<String>,
    /// Some(recursive) for "idmap" / "ridmap".
    pub idmap: Option<bool>,
    /// runc's "tmpcopyup" extension.
    pub tmpcopyup: bool,
}

impl Default for ParsedOptions {
    fn default() -> Self {
        Self {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            rec_set: 0,
            rec_clr: 0,
            data: Vec::new(),
            idmap: None,
            tmpcopyup: false,
        }
    }
}

/// Parse `options` for a mount of `fstype` ("bind" for bind mounts). Err carries the offending
/// option and why.
pub(crate) fn parse(options: &[String], fstype: &str) -> Result<ParsedOptions, String> {
    let mut p = ParsedOptions::default();
    for opt in options {
        let o = opt.as_str();
        if let Some(&(_, clear, flag)) = FLAGS.iter().find(|(n, _, _)| *n == o) {
            if clear {
                p.flags.remove(flag);
                p.cleared.insert(flag);
            } else {
                p.flags.insert(flag);
                p.cleared.remove(flag);
            }
        } else if let Some(&(_, flag)) = PROPAGATION.iter().find(|(n, _)| *n == o) {
            p.propagation.push(flag);
        } else if let Some(&(_, clear, attr)) = RECURSIVE.iter().find(|(n, _, _)| *n == o) {
            add_rec_attr(&mut p, clear, attr);
        } else if o == "idmap" || o == "ridmap" {
            p.idmap = Some(o == "ridmap");
        } else if o == "tmpcopyup" {
            p.tmpcopyup = true;
        } else if o == "remount" {
            return Err(format!(
                "option {o:?} is not supported in config.json mounts"
            ));
        } else if data_option_known(fstype, o) {
            p.data.push(opt.clone());
        } else {
            return Err(format!("unknown mount option {o:?} for {fstype}"));
        }
    }
    Ok(p)
}

fn add_rec_attr(p: &mut ParsedOptions, clear: bool, attr: u64) {
    let is_atime =
        attr == MOUNT_ATTR_RELATIME || attr == MOUNT_ATTR_NOATIME || attr == MOUNT_ATTR_STRICTATIME;
    if clear {
        p.rec_clr |= if is_atime {
            MOUNT_ATTR_ATIME_MASK
        } else {
            attr
        };
        p.rec_set &= !attr;
    } else {
        if is_atime {
            p.rec_set &= !MOUNT_ATTR_ATIME_MASK;
        }
        p.rec_set |= attr;
        // The atime modes are one field: selecting one means clearing the field first.
        p.rec_clr |= if is_atime { MOUNT_ATTR_ATIME_MASK } else { 0 };
        p.rec_clr &= if is_atime { u64::MAX } else { !attr };
    }
}

/// Whether `opt` is a data option of `fstype`; types outside the table (overlay, ext4, ...)
/// take `key=value` data, which the kernel itself validates at mount time. So do binds: runc
/// hands their data (`mode=755`, from callers that reuse one option list) to mount(2), which
/// ignores it for MS_BIND; hull's bind path (open_tree) takes no data at all.
fn data_option_known(fstype: &str, opt: &str) -> bool {
    let key = opt.split_once('=').map_or(opt, |(k, _)| k);
    match FS_DATA.iter().find(|(t, _)| *t == fstype) {
        Some((_, keys)) => keys.contains(&key),
        None => opt.contains('=') || GENERIC_FLAG_DATA.contains(&opt),
    }
}

/// Bare data words of common file systems outside the table.
const GENERIC_FLAG_DATA: &[&str] = &["userxattr", "volatile", "redirect_dir", "xino", "index"];

/// rootfsPropagation values, as runc accepts them.
pub(crate) fn root_propagation(value: &str) -> Option<MsFlags> {
    PROPAGATION
        .iter()
        .find(|(n, _)| *n == value)
        .map(|&(_, f)| f)
}

/// The mount_setattr change (set, clear) that gives a bind mount the per-mount flags its options
/// set or clear; flags the options do not mention (locked nodev/nosuid/noexec of the source
/// included) are left as the source has them.
pub(crate) fn bind_attr(flags: MsFlags, cleared: MsFlags) -> MountAttr {
    let table = [
        (MsFlags::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
        (MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW),
    ];
    let pick = |f: MsFlags| {
        table
            .iter()
            .filter(|(m, _)| f.contains(*m))
            .fold(0, |acc, (_, a)| acc | a)
    };
    let mut attr = MountAttr {
        attr_set: pick(flags),
        attr_clr: pick(cleared),
        ..MountAttr::default()
    };
    // The atime modes are one field: the kernel wants the whole field cleared to pick one.
    let atime = MsFlags::MS_NOATIME | MsFlags::MS_STRICTATIME | MsFlags::MS_RELATIME;
    let mode = if flags.contains(MsFlags::MS_NOATIME) {
        Some(MOUNT_ATTR_NOATIME)
    } else if flags.contains(MsFlags::MS_STRICTATIME) {
        Some(MOUNT_ATTR_STRICTATIME)
    } else if flags.intersects(atime) || cleared.intersects(atime) {
        Some(MOUNT_ATTR_RELATIME)
    } else {
        None
    };
    if let Some(mode) = mode {
        attr.attr_set |= mode;
        attr.attr_clr |= MOUNT_ATTR_ATIME_MASK;
    }
    attr
}

/// Flags that change a superblock, not a mount: meaningless on a bind mount.
pub(crate) const SUPERBLOCK_FLAGS: MsFlags = MsFlags::MS_SYNCHRONOUS
    .union(MsFlags::MS_DIRSYNC)
    .union(MsFlags::MS_MANDLOCK)
    .union(MsFlags::MS_I_VERSION)
    .union(MsFlags::MS_LAZYTIME)
    .union(MsFlags::MS_POSIXACL)
    .union(MsFlags::MS_SILENT);

#[cfg(test)]
#[path = "options_tests.rs"]
mod tests;
