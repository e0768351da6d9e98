//! Validation of config.json's root file system part, in the runtime process before clone: a bad
//! config fails here with one line and nothing created. The result is the plan the container's
//! init carries out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hull_sys::ahead::ReadAhead;
use nix::mount::MsFlags;
use nix::sys::stat::SFlag;
use oci_spec::runtime::{LinuxDeviceType, LinuxIdMapping, LinuxNamespaceType, Mount, Spec};

use super::error::RootfsError;
use super::idmap::IdmapSources;
use super::options::{self, ParsedOptions, SUPERBLOCK_FLAGS};
use super::{sysctl, RootfsOptions};

/// Everything needed to build the container's root file system, validated.
#[derive(Debug)]
pub struct RootfsPlan {
    /// Canonical host path of the rootfs.
    pub(super) rootfs: PathBuf,
    pub(super) readonly: bool,
    pub(super) root_propagation: Option<MsFlags>,
    pub(super) mounts: Vec<PlannedMount>,
    pub(super) devices: Vec<PlannedDevice>,
    /// False when /dev is bind-mounted from elsewhere: then no device is created.
    pub(super) setup_dev: bool,
    pub(super) masked_paths: Vec<PathBuf>,
    pub(super) readonly_paths: Vec<PathBuf>,
    pub(super) sysctl: Vec<(String, String)>,
    /// The config lists no mount namespace: the rootfs is set up in the caller's, and entered
    /// by chroot, as runc does.
    pub(super) inherited_mount_ns: bool,
    pub(super) opts: RootfsOptions,
    pub(super) idmap_sources: IdmapSources,
}

#[derive(Debug)]
pub(super) struct PlannedMount {
    /// "mounts[3] (/dev/pts)", for error messages.
    pub field: String,
    pub destination: PathBuf,
    pub kind: MountKind,
    pub opts: ParsedOptions,
    pub idmap: Option<IdmapSpec>,
    /// Mounted read-write and made read-only in finalize (a read-only /dev still needs its
    /// device nodes created).
    pub defer_ro: bool,
}

#[derive(Debug)]
pub(super) enum MountKind {
    Bind {
        source: PathBuf,
    },
    /// `cgroup`: a view of the container's cgroup hierarchies.
    Cgroup,
    Fs {
        fstype: String,
        source: String,
    },
}

#[derive(Debug, Clone)]
pub(super) struct IdmapSpec {
    pub recursive: bool,
    pub uid: Vec<LinuxIdMapping>,
    pub gid: Vec<LinuxIdMapping>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PlannedDevice {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// /dev/null, zero, full, random, urandom, tty, as every runtime creates them.
const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

impl RootfsPlan {
    /// Validate config.json's root, mounts, linux.devices, maskedPaths, readonlyPaths, sysctl,
    /// rootfsPropagation and mountLabel against `bundle`. Creates nothing.
    pub fn new(spec: &Spec, bundle: &Path, opts: RootfsOptions) -> Result<Self, RootfsError> {
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| RootfsError::invalid("root", "missing"))?;
        // Bind sources are resolved against the canonical bundle, so they keep meaning the same
        // after the init changes directory, and compare with the canonical rootfs.
        let bundle = &std::fs::canonicalize(bundle)
            .map_err(|e| RootfsError::invalid("bundle", format!("{}: {e}", bundle.display())))?;
        let rootfs = resolve_rootfs(root.path(), bundle)?;
        let linux = spec.linux().clone().unwrap_or_default();
        // Joined by path or new, the namespace is the container's: only an omitted one is shared.
        let inherited_mount_ns = !linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::Mount);
        if let Some(label) = linux.mount_label().as_deref().filter(|l| !l.is_empty()) {
            return Err(RootfsError::invalid(
                "linux.mountLabel",
                format!("{label:?} needs SELinux, which is not available on this host"),
            ));
        }
        let root_propagation = match linux.rootfs_propagation().as_deref() {
            None | Some("") => None,
            Some(v) => Some(options::root_propagation(v).ok_or_else(|| {
                RootfsError::invalid(
                    "linux.rootfsPropagation",
                    format!("unknown propagation {v:?}"),
                )
            })?),
        };
        let known_fs = known_filesystems();
        let container_maps = (
            linux.uid_mappings().clone().unwrap_or_default(),
            linux.gid_mappings().clone().unwrap_or_default(),
        );
        let mut mounts = Vec::new();
        for (i, m) in spec.mounts().iter().flatten().enumerate() {
            mounts.push(plan_mount(
                i,
                m,
                bundle,
                &rootfs,
                &known_fs,
                &container_maps,
                &opts,
            )?);
        }
        let setup_dev = !mounts.iter().any(|m| {
            m.destination == Path::new("/dev") && matches!(m.kind, MountKind::Bind { .. })
        });
        let devices = plan_devices(linux.devices().as_deref().unwrap_or_default(), &opts)?;
        let masked_paths = absolute_paths("linux.maskedPaths", linux.masked_paths())?;
        let readonly_paths = absolute_paths("linux.readonlyPaths", linux.readonly_paths())?;
        let sysctl = sysctl::validate(spec, &linux)?;
        if inherited_mount_ns {
            refuse_restricted_paths(&masked_paths, &readonly_paths)?;
        }
        Ok(Self {
            rootfs,
            readonly: root.readonly().unwrap_or(false),
            root_propagation,
            mounts,
            devices,
            setup_dev,
            masked_paths,
            readonly_paths,
            sysctl,
            inherited_mount_ns,
            opts,
            idmap_sources: IdmapSources::default(),
        })
    }

    /// Canonical host path of the container's rootfs.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// The rootfs is set up in the caller's mount namespace.
    pub fn inherited_mount_ns(&self) -> bool {
        self.inherited_mount_ns
    }
}

/// `root.path`, relative to the bundle unless absolute. A relative path that resolves (through
/// symlinks) out of the bundle is refused: the bundle is untrusted input.
fn resolve_rootfs(path: &Path, bundle: &Path) -> Result<PathBuf, RootfsError> {
    if path.as_os_str().is_empty() {
        return Err(RootfsError::invalid("root.path", "empty"));
    }
    let field = || format!("root.path {}", path.display());
    let joined = bundle.join(path);
    let canonical = std::fs::canonicalize(&joined)
        .map_err(|e| RootfsError::invalid(field(), format!("{}: {e}", joined.display())))?;
    if path.is_relative() && !canonical.starts_with(bundle) {
        return Err(RootfsError::invalid(
            field(),
            format!(
                "resolves to {}, outside the bundle {}",
                canonical.display(),
                bundle.display()
            ),
        ));
    }
    if canonical == Path::new("/") {
        return Err(RootfsError::invalid(
            field(),
            "the host's / cannot be a container rootfs",
        ));
    }
    if !canonical.is_dir() {
        return Err(RootfsError::invalid(field(), "not a directory"));
    }
    Ok(canonical)
}

/// Masking or making read-only a path of the caller's own mount namespace would change the
/// caller's view: runc refuses it too.
fn refuse_restricted_paths(masked: &[PathBuf], readonly: &[PathBuf]) -> Result<(), RootfsError> {
    for (field, paths) in [
        ("linux.maskedPaths", masked),
        ("linux.readonlyPaths", readonly),
    ] {
        if !paths.is_empty() {
            return Err(RootfsError::invalid(
                field,
                "needs a mount namespace of the container's own (linux.namespaces has none)",
            ));
        }
    }
    Ok(())
}

/// What a create's plan reads of the host, read ahead by [`read_ahead`].
static FILESYSTEMS: ReadAhead<Vec<String>> = ReadAhead::new();

/// Reads now the file-system types this kernel knows, for the next create's plan to take
/// (`hull_sys::ahead`).
pub(crate) fn read_ahead() {
    FILESYSTEMS.fill(|| Ok::<_, ()>(read_filesystems()));
}

/// File-system types this kernel knows (/proc/filesystems).
fn known_filesystems() -> Vec<String> {
    FILESYSTEMS
        .take_or(|| Ok::<_, ()>(read_filesystems()))
        .unwrap_or_default()
}

fn read_filesystems() -> Vec<String> {
    std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect()
}

type IdMaps = (Vec<LinuxIdMapping>, Vec<LinuxIdMapping>);

#[allow(clippy::too_many_arguments)]
fn plan_mount(
    i: usize,
    m: &Mount,
    bundle: &Path,
    rootfs: &Path,
    known_fs: &[String],
    container_maps: &IdMaps,
    opts: &RootfsOptions,
) -> Result<PlannedMount, RootfsError> {
    let dest = m.destination();
    let field = format!("mounts[{i}] ({})", dest.display());
    let bad = |reason: String| RootfsError::invalid(field.clone(), reason);
    if dest.as_os_str().is_empty() {
        return Err(bad("empty destination".into()));
    }
    // runc still accepts a relative destination as relative to /.
    let destination = Path::new("/").join(dest);
    let raw = m.options().clone().unwrap_or_default();
    let is_bind = raw.iter().any(|o| o == "bind" || o == "rbind");
    let typ = m.typ().as_deref().unwrap_or("");
    let fstype = if is_bind || typ == "bind" {
        "bind"
    } else {
        typ
    };
    if fstype.is_empty() || fstype == "none" {
        return Err(bad("no type and no bind option".into()));
    }
    let mut parsed = options::parse(&raw, fstype).map_err(bad)?;
    if fstype == "bind" {
        parsed.flags.insert(MsFlags::MS_BIND);
    }
    if parsed.tmpcopyup && fstype != "tmpfs" {
        return Err(bad("option \"tmpcopyup\" needs a tmpfs mount".into()));
    }
    let idmap = plan_idmap(m, &parsed, container_maps).map_err(bad)?;
    let kind = if fstype == "bind" {
        let invalid = parsed.flags & SUPERBLOCK_FLAGS;
        if !invalid.is_empty() {
            return Err(bad(format!(
                "flags {invalid:?} change a file system, not a bind mount"
            )));
        }
        let source = m
            .source()
            .as_ref()
            .ok_or_else(|| bad("bind mount without source".into()))?;
        let source = bundle.join(source);
        // A source inside the rootfs may be made by an earlier mount; it is checked then.
        if let Err(e) = std::fs::metadata(&source) {
            if !source.starts_with(rootfs) {
                return Err(bad(format!("source {}: {e}", source.display())));
            }
        }
        MountKind::Bind { source }
    } else {
        if idmap.is_some() {
            return Err(bad("idmap is only supported on bind mounts".into()));
        }
        if fstype == "cgroup" {
            if opts.cgroups.is_empty() {
                return Err(bad(
                    "a cgroup mount needs the container's cgroup hierarchies".into(),
                ));
            }
            MountKind::Cgroup
        } else {
            if !known_fs.iter().any(|f| f == fstype) {
                return Err(bad(format!(
                    "mount type {fstype:?} is not supported by this kernel"
                )));
            }
            MountKind::Fs {
                fstype: fstype.to_string(),
                source: m
                    .source()
                    .as_ref()
                    .map_or_else(|| fstype.to_string(), |s| s.display().to_string()),
            }
        }
    };
    let defer_ro = destination == Path::new("/dev") && parsed.flags.contains(MsFlags::MS_RDONLY);
    Ok(PlannedMount {
        field,
        destination,
        kind,
        opts: parsed,
        idmap,
        defer_ro,
    })
}

/// An idmapped mount comes from "idmap"/"ridmap" or from the mount's own uid/gid mappings;
/// without its own mappings it takes the container's user namespace mappings, as runc does.
fn plan_idmap(
    m: &Mount,
    parsed: &ParsedOptions,
    container_maps: &IdMaps,
) -> Result<Option<IdmapSpec>, String> {
    let uid = m.uid_mappings().clone().unwrap_or_default();
    let gid = m.gid_mappings().clone().unwrap_or_default();
    if uid.is_empty() != gid.is_empty() {
        return Err("uidMappings and gidMappings must be given together".into());
    }
    if parsed.idmap.is_none() && uid.is_empty() {
        return Ok(None);
    }
    let recursive = parsed.idmap.unwrap_or(false);
    let (uid, gid) = if uid.is_empty() {
        if container_maps.0.is_empty() || container_maps.1.is_empty() {
            return Err(
                "idmap without uidMappings/gidMappings needs the container's user namespace mappings"
                    .into(),
            );
        }
        container_maps.clone()
    } else {
        (uid, gid)
    };
    Ok(Some(IdmapSpec {
        recursive,
        uid,
        gid,
    }))
}

fn plan_devices(
    devices: &[oci_spec::runtime::LinuxDevice],
    opts: &RootfsOptions,
) -> Result<Vec<PlannedDevice>, RootfsError> {
    let mut out: Vec<PlannedDevice> = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let field = format!("linux.devices[{i}] ({})", d.path().display());
        let bad = |reason: &str| RootfsError::invalid(field.clone(), reason.to_string());
        if !d.path().is_absolute() {
            return Err(bad("path must be absolute"));
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => return Err(bad("type \"a\" is not a device node type")),
        };
        let major = u64::try_from(d.major()).map_err(|_| bad("negative major"))?;
        let minor = u64::try_from(d.minor()).map_err(|_| bad("negative minor"))?;
        if opts.user_namespace && kind != SFlag::S_IFIFO && !d.path().exists() {
            return Err(bad("in a user namespace devices are bind-mounted from the host, which has no such node"));
        }
        let mode = d.file_mode().unwrap_or(0o666);
        // Some callers include the file type bits; they must then agree with `type`.
        let type_bits = mode & SFlag::S_IFMT.bits();
        if type_bits != 0 && type_bits != kind.bits() {
            return Err(bad("fileMode's file type disagrees with type"));
        }
        let mode = mode & 0o7777;
        let dev = PlannedDevice {
            path: d.path().clone(),
            kind,
            major,
            minor,
            mode,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        out.retain(|o| o.path != dev.path);
        out.push(dev);
    }
    let defaults = if opts.no_default_devices {
        &[][..]
    } else {
        DEFAULT_DEVICES
    };
    for &(path, major, minor) in defaults {
        if !out.iter().any(|d| d.path == Path::new(path)) {
            out.push(PlannedDevice {
                path: PathBuf::from(path),
                kind: SFlag::S_IFCHR,
                major,
                minor,
                mode: 0o666,
                uid: 0,
                gid: 0,
            });
        }
    }
    Ok(out)
}

fn absolute_paths(field: &str, paths: &Option<Vec<String>>) -> Result<Vec<PathBuf>, RootfsError> {
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    for (i, p) in paths.iter().flatten().enumerate() {
        if !p.starts_with('/') {
            return Err(RootfsError::invalid(
                format!("{field}[{i}]"),
                format!("{p:?} is not an absolute path"),
            ));
        }
        if seen.insert(p.clone(), ()).is_none() {
            out.push(PathBuf::from(p));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
