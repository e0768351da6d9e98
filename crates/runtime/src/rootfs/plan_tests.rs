//! The rootfs plan from configs built here, without root: a bundle in a temp dir, nothing mounted.

use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::mount::MsFlags;
use nix::sys::stat::SFlag;
use serde_json::{json, Value};

use super::*;
use crate::rootfs::CgroupMount;

/// A bundle dir with an empty `rootfs/`, removed on drop.
struct Bundle {
    dir: PathBuf,
}

impl Bundle {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("hull-rootfs-plan-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        Self {
            dir: std::fs::canonicalize(dir).unwrap(),
        }
    }

    fn plan(&self, spec: Value) -> Result<RootfsPlan, RootfsError> {
        self.plan_with(spec, RootfsOptions::default())
    }

    fn plan_with(&self, spec: Value, opts: RootfsOptions) -> Result<RootfsPlan, RootfsError> {
        let spec: Spec = serde_json::from_value(spec).unwrap();
        RootfsPlan::new(&spec, &self.dir, opts)
    }

    /// The error message for `spec`, which must be refused.
    fn refused(&self, spec: Value) -> String {
        match self.plan(spec.clone()) {
            Ok(p) => panic!("accepted {spec}: {p:?}"),
            Err(e) => e.to_string(),
        }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A config with a new mount namespace, `mounts` and extra `linux` keys.
fn config(mounts: Value, linux: Value) -> Value {
    let mut l = json!({"namespaces": [{"type": "mount"}]});
    for (k, v) in linux.as_object().unwrap() {
        l[k] = v.clone();
    }
    json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "mounts": mounts, "linux": l})
}

fn mounts(m: Value) -> Value {
    config(m, json!({}))
}

fn maps() -> Value {
    json!([{"containerID": 0, "hostID": 100_000, "size": 65_536}])
}

#[test]
fn no_default_devices_leaves_only_the_configs() {
    let b = Bundle::new();
    let spec = config(
        json!([]),
        json!({"devices": [{"path": "/dev/kvm", "type": "c", "major": 10, "minor": 232, "fileMode": 0o600}]}),
    );
    let opts = RootfsOptions {
        no_default_devices: true,
        ..RootfsOptions::default()
    };
    let p = b.plan_with(spec, opts).unwrap();
    let devs: Vec<_> = p
        .devices
        .iter()
        .map(|d| (d.path.to_str().unwrap(), d.major, d.minor, d.mode))
        .collect();
    assert_eq!(devs, [("/dev/kvm", 10, 232, 0o600)]);
}

#[test]
fn minimal_config() {
    let b = Bundle::new();
    let p = b.plan(mounts(json!([]))).unwrap();
    assert_eq!(p.rootfs(), b.dir.join("rootfs"));
    assert!(!p.readonly);
    assert_eq!(p.root_propagation, None);
    assert!(p.mounts.is_empty() && p.masked_paths.is_empty() && p.sysctl.is_empty());
    assert!(p.setup_dev);
    let devs: Vec<_> = p.devices.iter().map(|d| d.path.to_str().unwrap()).collect();
    assert_eq!(
        devs,
        [
            "/dev/null",
            "/dev/zero",
            "/dev/full",
            "/dev/random",
            "/dev/urandom",
            "/dev/tty"
        ]
    );
    assert!(p
        .devices
        .iter()
        .all(|d| d.kind == SFlag::S_IFCHR && d.mode == 0o666));
}

#[test]
fn root_path_checks() {
    let b = Bundle::new();
    let mut c = mounts(json!([]));
    c["root"] = json!({"path": b.dir.join("rootfs"), "readonly": true});
    let p = b.plan(c.clone()).unwrap();
    assert!(p.readonly);
    assert_eq!(p.rootfs(), b.dir.join("rootfs"));

    symlink("/", b.dir.join("escape")).unwrap();
    std::fs::write(b.dir.join("file"), "").unwrap();
    for (path, want) in [
        ("", "root.path: empty"),
        ("missing", "root.path missing: "),
        ("escape", "outside the bundle"),
        ("/", "the host's / cannot be a container rootfs"),
        ("file", "not a directory"),
    ] {
        c["root"] = json!({"path": path});
        let e = b.refused(c.clone());
        assert!(e.contains(want), "{path:?}: {e}");
    }
    let mut c = mounts(json!([]));
    c.as_object_mut().unwrap().remove("root");
    assert_eq!(b.refused(c), "root: missing");
}

#[test]
fn mount_namespace_label_and_propagation() {
    let b = Bundle::new();
    // A mount namespace omitted (the caller's) or joined is set up there, as runc does; the
    // caller's own paths are not masked.
    let mut c = mounts(json!([]));
    c["linux"]["namespaces"] = json!([{"type": "pid"}]);
    assert!(b.plan(c.clone()).unwrap().inherited_mount_ns());
    c["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
    assert_eq!(
        b.refused(c.clone()),
        "linux.maskedPaths: needs a mount namespace of the container's own (linux.namespaces has none)"
    );
    c["linux"]["namespaces"] = json!([{"type": "mount", "path": "/proc/self/ns/mnt"}]);
    assert!(!b.plan(c).unwrap().inherited_mount_ns());

    let e = b.refused(config(
        json!([]),
        json!({"mountLabel": "system_u:object_r:x"}),
    ));
    assert!(e.starts_with("linux.mountLabel: "), "{e}");
    // An empty label is no label.
    b.plan(config(json!([]), json!({"mountLabel": ""})))
        .unwrap();

    let p = b
        .plan(config(json!([]), json!({"rootfsPropagation": "rslave"})))
        .unwrap();
    assert_eq!(
        p.root_propagation,
        Some(MsFlags::MS_SLAVE | MsFlags::MS_REC)
    );
    let e = b.refused(config(json!([]), json!({"rootfsPropagation": "bogus"})));
    assert_eq!(e, "linux.rootfsPropagation: unknown propagation \"bogus\"");
}

#[test]
fn mounts_keep_config_order_and_kinds() {
    let b = Bundle::new();
    let p = b
        .plan(mounts(json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666"]},
            {"destination": "data", "source": "data", "options": ["rbind", "ro"]},
            {"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts"},
            {"destination": "/sys", "type": "sysfs", "options": ["ro"]},
        ])))
        .unwrap();
    let dests: Vec<_> = p.mounts.iter().map(|m| m.destination.clone()).collect();
    assert_eq!(
        dests,
        ["/proc", "/dev", "/dev/pts", "/data", "/etc/hosts", "/sys"].map(PathBuf::from)
    );
    assert!(
        matches!(&p.mounts[0].kind, MountKind::Fs { fstype, source } if fstype == "proc" && source == "proc")
    );
    assert_eq!(p.mounts[1].opts.data, ["mode=755", "size=65536k"]);
    assert_eq!(
        p.mounts[1].opts.flags,
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME
    );
    // A relative source is the bundle's; rbind and ro are both kept.
    assert!(
        matches!(&p.mounts[3].kind, MountKind::Bind { source } if *source == b.dir.join("data"))
    );
    assert_eq!(
        p.mounts[3].opts.flags,
        MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
    );
    assert_eq!(p.mounts[3].field, "mounts[3] (data)");
    // type "bind" without the option is still a bind mount.
    assert!(p.mounts[4].opts.flags.contains(MsFlags::MS_BIND));
    assert!(matches!(&p.mounts[4].kind, MountKind::Bind { .. }));
    // No source: the type names it.
    assert!(matches!(&p.mounts[5].kind, MountKind::Fs { source, .. } if source == "sysfs"));
    assert!(p.setup_dev);
    assert!(p.mounts.iter().all(|m| !m.defer_ro && m.idmap.is_none()));
}

#[test]
fn dev_mounts_decide_device_setup() {
    let b = Bundle::new();
    // A read-only /dev tmpfs is made read-only only after its nodes exist.
    let p = b
        .plan(mounts(json!([
            {"destination": "/dev", "type": "tmpfs", "options": ["ro"]},
        ])))
        .unwrap();
    assert!(p.mounts[0].defer_ro && p.setup_dev);
    // A bind-mounted /dev brings its own nodes.
    let p = b
        .plan(mounts(json!([
            {"destination": "/dev", "source": "/dev", "options": ["rbind"]},
        ])))
        .unwrap();
    assert!(!p.setup_dev && !p.mounts[0].defer_ro);
}

#[test]
fn bad_mounts_name_the_entry() {
    let b = Bundle::new();
    let cases = [
        (
            json!({"destination": "", "type": "tmpfs"}),
            "mounts[0] (): empty destination",
        ),
        (
            json!({"destination": "/x"}),
            "mounts[0] (/x): no type and no bind option",
        ),
        (
            json!({"destination": "/x", "type": "none"}),
            "no type and no bind option",
        ),
        (
            json!({"destination": "/x", "type": "tmpfs", "options": ["bogus"]}),
            "unknown mount option \"bogus\" for tmpfs",
        ),
        (
            json!({"destination": "/x", "type": "nosuchfs"}),
            "mount type \"nosuchfs\" is not supported by this kernel",
        ),
        (
            json!({"destination": "/x", "type": "bind"}),
            "bind mount without source",
        ),
        (
            json!({"destination": "/x", "type": "bind", "source": "/nonexistent/hull"}),
            "source /nonexistent/hull: ",
        ),
        (
            json!({"destination": "/x", "source": "data", "options": ["bind", "sync"]}),
            "change a file system, not a bind mount",
        ),
        (
            json!({"destination": "/x", "source": "data", "options": ["rbind", "tmpcopyup"]}),
            "\"tmpcopyup\" needs a tmpfs mount",
        ),
        (
            json!({"destination": "/x", "type": "tmpfs", "options": ["remount"]}),
            "\"remount\" is not supported",
        ),
        (
            json!({"destination": "/x", "type": "tmpfs", "options": ["idmap"]}),
            "needs the container's user namespace mappings",
        ),
        (
            json!({"destination": "/sys/fs/cgroup", "type": "cgroup"}),
            "needs the container's cgroup hierarchies",
        ),
    ];
    for (m, want) in cases {
        let e = b.refused(mounts(json!([m.clone()])));
        assert!(e.starts_with("mounts[0] ("), "{m}: {e}");
        assert!(e.contains(want), "{m}: {e}");
    }
    // The index is the entry's own.
    let e = b.refused(mounts(json!([
        {"destination": "/proc", "type": "proc"},
        {"destination": "/y", "type": "tmpfs", "options": ["nosuid", "x"]},
    ])));
    assert!(e.starts_with("mounts[1] (/y): "), "{e}");
}

#[test]
fn bind_source_inside_the_rootfs_may_come_later() {
    // An earlier mount may create it; the mount step checks it then.
    let b = Bundle::new();
    let p = b
        .plan(mounts(json!([
            {"destination": "/x", "source": "rootfs/not-yet", "options": ["bind"]},
        ])))
        .unwrap();
    assert!(
        matches!(&p.mounts[0].kind, MountKind::Bind { source } if *source == b.dir.join("rootfs/not-yet"))
    );
}

#[test]
fn cgroup_mounts_need_hierarchies() {
    let b = Bundle::new();
    let opts = RootfsOptions {
        cgroups: vec![CgroupMount {
            version: 2,
            controllers: Vec::new(),
            mount_point: "/sys/fs/cgroup".into(),
            path: "/sys/fs/cgroup/hull-abc".into(),
        }],
        ..RootfsOptions::default()
    };
    let p = b
        .plan_with(
            mounts(json!([{"destination": "/sys/fs/cgroup", "type": "cgroup", "options": ["ro"]}])),
            opts,
        )
        .unwrap();
    assert!(matches!(p.mounts[0].kind, MountKind::Cgroup));
    assert!(p.mounts[0].opts.flags.contains(MsFlags::MS_RDONLY));
}

#[test]
fn idmapped_mounts() {
    let b = Bundle::new();
    // Without own mappings the container's are used; ridmap is recursive.
    let p = b
        .plan(config(
            json!([{"destination": "/x", "source": "data", "options": ["rbind", "ridmap"]}]),
            json!({"uidMappings": maps(), "gidMappings": maps()}),
        ))
        .unwrap();
    let idmap = p.mounts[0].idmap.as_ref().unwrap();
    assert!(idmap.recursive);
    assert_eq!(idmap.uid[0].host_id(), 100_000);
    // The mount's own mappings win, and imply an idmapped mount.
    let own = json!([{"containerID": 0, "hostID": 2000, "size": 10}]);
    let p = b
        .plan(mounts(json!([{
            "destination": "/x", "source": "data", "options": ["bind"],
            "uidMappings": own, "gidMappings": own,
        }])))
        .unwrap();
    let idmap = p.mounts[0].idmap.as_ref().unwrap();
    assert!(!idmap.recursive);
    assert_eq!((idmap.uid[0].host_id(), idmap.gid[0].size()), (2000, 10));
    let e = b.refused(mounts(json!([{
        "destination": "/x", "source": "data", "options": ["bind"], "uidMappings": own,
    }])));
    assert!(
        e.contains("uidMappings and gidMappings must be given together"),
        "{e}"
    );
    let e = b.refused(mounts(json!([{
        "destination": "/x", "type": "tmpfs", "uidMappings": own, "gidMappings": own,
    }])));
    assert!(e.contains("idmap is only supported on bind mounts"), "{e}");
}

#[test]
fn devices_are_checked_and_defaults_added() {
    let b = Bundle::new();
    let p = b
        .plan(config(
            json!([]),
            json!({"devices": [
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o20_640, "uid": 1, "gid": 2},
                {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600},
                {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
                {"path": "/dev/fifo", "type": "p"},
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666},
            ]}),
        ))
        .unwrap();
    let paths: Vec<_> = p.devices.iter().map(|d| d.path.to_str().unwrap()).collect();
    // A later entry for the same path replaces the earlier one; defaults fill what is missing.
    assert_eq!(
        paths,
        [
            "/dev/null",
            "/dev/sda",
            "/dev/fifo",
            "/dev/fuse",
            "/dev/zero",
            "/dev/full",
            "/dev/random",
            "/dev/urandom",
            "/dev/tty"
        ]
    );
    let fuse = &p.devices[3];
    assert_eq!(
        (fuse.kind, fuse.major, fuse.minor, fuse.mode),
        (SFlag::S_IFCHR, 10, 229, 0o666)
    );
    assert_eq!(p.devices[0].mode, 0o600);
    assert_eq!(p.devices[1].kind, SFlag::S_IFBLK);
    assert_eq!(p.devices[2].kind, SFlag::S_IFIFO);

    // The file type bits, when given, are stripped from the mode.
    let p = b
        .plan(config(
            json!([]),
            json!({"devices": [{"path": "/dev/x", "type": "c", "major": 1, "minor": 1, "fileMode": 0o20_640, "uid": 7}]}),
        ))
        .unwrap();
    assert_eq!(
        (p.devices[0].mode, p.devices[0].uid, p.devices[0].gid),
        (0o640, 7, 0)
    );

    for (dev, want) in [
        (
            json!({"path": "dev/x", "type": "c", "major": 1, "minor": 1}),
            "path must be absolute",
        ),
        (
            json!({"path": "/dev/x", "type": "a"}),
            "type \"a\" is not a device node type",
        ),
        (
            json!({"path": "/dev/x", "type": "c", "major": -1, "minor": 1}),
            "negative major",
        ),
        (
            json!({"path": "/dev/x", "type": "b", "major": 1, "minor": -3}),
            "negative minor",
        ),
        (
            json!({"path": "/dev/x", "type": "b", "major": 1, "minor": 1, "fileMode": 0o20_666}),
            "fileMode's file type disagrees with type",
        ),
    ] {
        let e = b.refused(config(json!([]), json!({"devices": [dev.clone()]})));
        assert!(e.starts_with("linux.devices[0] ("), "{dev}: {e}");
        assert!(e.contains(want), "{dev}: {e}");
    }
}

#[test]
fn user_namespace_devices_must_exist_on_the_host() {
    let b = Bundle::new();
    let opts = || RootfsOptions {
        user_namespace: true,
        ..RootfsOptions::default()
    };
    let dev = |path: &str, typ: &str| json!({"devices": [{"path": path, "type": typ, "major": 1, "minor": 3}]});
    b.plan_with(config(json!([]), dev("/dev/null", "c")), opts())
        .unwrap();
    // A FIFO is made with mknod, which a user namespace allows.
    b.plan_with(
        config(json!([]), dev("/dev/hull-no-such-fifo", "p")),
        opts(),
    )
    .unwrap();
    let e = b
        .plan_with(
            config(json!([]), dev("/dev/hull-no-such-node", "c")),
            opts(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("bind-mounted from the host"), "{e}");
    // Without a user namespace the node is made with mknod: no host node needed.
    b.plan(config(json!([]), dev("/dev/hull-no-such-node", "c")))
        .unwrap();
}

#[test]
fn masked_and_readonly_paths() {
    let b = Bundle::new();
    let p = b
        .plan(config(
            json!([]),
            json!({
                "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/kcore", "/sys/firmware"],
                "readonlyPaths": ["/proc/sys", "/proc/bus"],
            }),
        ))
        .unwrap();
    assert_eq!(
        p.masked_paths,
        ["/proc/kcore", "/proc/keys", "/sys/firmware"].map(PathBuf::from)
    );
    assert_eq!(
        p.readonly_paths,
        ["/proc/sys", "/proc/bus"].map(PathBuf::from)
    );
    let e = b.refused(config(
        json!([]),
        json!({"maskedPaths": ["/proc/kcore", "proc/keys"]}),
    ));
    assert_eq!(
        e,
        "linux.maskedPaths[1]: \"proc/keys\" is not an absolute path"
    );
    let e = b.refused(config(json!([]), json!({"readonlyPaths": [""]})));
    assert!(e.starts_with("linux.readonlyPaths[0]: "), "{e}");
}

#[test]
fn sysctls_need_their_namespace() {
    let b = Bundle::new();
    let mut c = config(
        json!([]),
        json!({"sysctl": {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000"}}),
    );
    c["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "network"}, {"type": "ipc"}]);
    let p = b.plan(c.clone()).unwrap();
    // Sorted by name.
    assert_eq!(
        p.sysctl,
        [
            ("kernel.shmmax".to_string(), "1000".to_string()),
            ("net.ipv4.ip_forward".to_string(), "1".to_string())
        ]
    );
    c["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "ipc"}]);
    let e = b.refused(c);
    assert_eq!(
        e,
        "linux.sysctl \"net.ipv4.ip_forward\": not allowed in the host's net namespace"
    );
    // Joining the host's own namespace is not a namespace of the container's.
    let mut c = config(json!([]), json!({"sysctl": {"kernel.msgmax": "1"}}));
    c["linux"]["namespaces"] =
        json!([{"type": "mount"}, {"type": "ipc", "path": "/proc/self/ns/ipc"}]);
    assert!(b.refused(c).contains("host's ipc namespace"));
    for name in ["vm.swappiness", "net..x", "kernel.hostname"] {
        let mut c = config(json!([]), json!({"sysctl": {name: "1"}}));
        c["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "network"}]);
        c["hostname"] = json!("box");
        let e = b.refused(c);
        assert!(e.starts_with(&format!("linux.sysctl {name:?}: ")), "{e}");
    }
}
