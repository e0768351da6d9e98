//! The rootfs module against the real kernel: a busybox bundle is set up by the probe (a forked
//! child of the test, see probe.rs) in private namespaces, and what the container sees is
//! checked from inside it. Needs root; skips otherwise.

mod probe;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

use hull_sys::mountinfo::MountInfo;
use serde_json::{json, Value};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A bundle directory with a busybox rootfs, removed on drop.
struct Bundle {
    dir: PathBuf,
}

impl Bundle {
    fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("hull-rootfs-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rootfs = dir.join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "mnt"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for app in [
            "sh", "cat", "ls", "stat", "touch", "readlink", "echo", "mkdir", "grep",
        ] {
            symlink("busybox", rootfs.join("bin").join(app)).unwrap();
        }
        Self { dir }
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    fn write_config(&self, config: &Value) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(config).unwrap(),
        )
        .unwrap();
    }

    /// Run the probe on this bundle; returns its output.
    fn run(&self, config: &Value, flags: &[&str]) -> Output {
        self.write_config(config);
        let out = probe::run(&self.dir, flags);
        assert_no_leak(&self.dir);
        out
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The probe's namespaces die with it: nothing of the bundle stays in the host mount table.
fn assert_no_leak(bundle: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let name = bundle.file_name().unwrap().to_str().unwrap();
    assert!(
        !info.contains(name),
        "mount of {name} leaked to the host:\n{info}"
    );
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

macro_rules! require_root {
    () => {
        if !is_root() {
            hull_testkit::skip!("needs root (mounts, mknod, namespaces)");
        }
    };
}

fn config(script: &str, mounts: Value, linux_extra: Value) -> Value {
    let mut linux = json!({
        "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}],
    });
    for (k, v) in linux_extra.as_object().unwrap() {
        linux[k] = v.clone();
    }
    json!({
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs", "readonly": false},
        "process": {"args": ["/bin/sh", "-c", script], "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "mounts": mounts,
        "linux": linux,
    })
}

fn default_mounts() -> Value {
    json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ])
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The mountinfo line whose mount point is `mp` (the last one: the top of a stack); the text
/// may hold other output between the mountinfo lines.
fn mount_line<'a>(info: &'a str, mp: &str) -> Option<&'a str> {
    info.lines()
        .rfind(|l| MountInfo::parse(l).is_ok_and(|m| m.mount_point() == Path::new(mp)))
}

fn mount_entry<'a>(info: &'a str, mp: &str) -> MountInfo<'a> {
    let line = mount_line(info, mp).unwrap_or_else(|| panic!("no mount at {mp} in\n{info}"));
    MountInfo::parse(line).unwrap()
}

/// Per-mount options of mount point `mp`.
fn mount_opts(info: &str, mp: &str) -> Vec<String> {
    mount_entry(info, mp)
        .mount_opts()
        .map(str::to_string)
        .collect()
}

fn fstype(info: &str, mp: &str) -> String {
    mount_entry(info, mp).fs_type.to_string()
}

/// The output between "== name" and the next "== " marker.
fn section<'a>(out: &'a str, name: &str) -> &'a str {
    let start = out
        .find(&format!("== {name}\n"))
        .unwrap_or_else(|| panic!("no section {name} in\n{out}"));
    let rest = &out[start + name.len() + 4..];
    &rest[..rest.find("== ").unwrap_or(rest.len())]
}

#[test]
fn full_container_view() {
    require_root!();
    let b = Bundle::new();
    let host_data = b.dir.join("hostdata");
    std::fs::create_dir_all(host_data.join("sub")).unwrap();
    std::fs::write(host_data.join("file"), "host data\n").unwrap();
    std::fs::create_dir_all(b.rootfs().join("etc/secretdir")).unwrap();
    std::fs::write(b.rootfs().join("etc/secretdir/key"), "secret\n").unwrap();
    std::fs::write(b.rootfs().join("etc/secretfile"), "secret\n").unwrap();
    std::fs::create_dir_all(b.rootfs().join("etc/rodir")).unwrap();
    let mut mounts = default_mounts().as_array().unwrap().clone();
    mounts.extend([
        json!({"destination": "/mnt/ro", "type": "bind", "source": host_data, "options": ["rbind", "ro", "nosuid"]}),
        json!({"destination": "/mnt/file", "type": "bind", "source": host_data.join("file"), "options": ["bind"]}),
        json!({"destination": "/mnt/flagsrc", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec"]}),
        json!({"destination": "/mnt/kept", "type": "bind", "source": b.rootfs().join("mnt/flagsrc"), "options": ["bind", "ro"]}),
        json!({"destination": "/mnt/rec", "source": b.rootfs().join("dev"), "options": ["rbind", "rro", "rnoexec"]}),
        json!({"destination": "/mnt/deep/created/dir", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "rprivate"]}),
    ]);
    let script = "set -e
echo '== mountinfo'; cat /proc/self/mountinfo
echo '== devices'; stat -c '%n %F %t:%T %a %u:%g' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/fuse /dev/mydisk
echo '== links'; for l in ptmx fd stdin stdout stderr; do echo \"$l $(readlink /dev/$l)\"; done
echo '== dirs'; stat -c '%n %F' /dev/shm /dev/pts /dev/mqueue; test -e /dev/console || echo no-console
echo '== masked'; cat /etc/secretfile; ls -A /etc/secretdir; cat /proc/kcore | wc -c; echo done
echo '== readonly'; touch /etc/rodir/x 2>&1 || true; sh -c 'echo 1 > /proc/sys/kernel/shmmax' 2>&1 || true
echo '== rootro'; touch /newfile 2>&1 || true; touch /tmp/ok && echo tmp-writable
echo '== sysctl'; cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward
echo '== binds'; cat /mnt/file; ls /mnt/ro; touch /mnt/ro/x 2>&1 || true
echo '== cgroup'; ls /sys/fs/cgroup
echo '== end'";
    let mut cfg = config(
        script,
        Value::Array(mounts),
        json!({
            "devices": [
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 416, "uid": 1, "gid": 2},
                {"path": "/dev/mydisk", "type": "b", "major": 7, "minor": 200, "fileMode": 384}
            ],
            "maskedPaths": ["/etc/secretdir", "/etc/secretfile", "/proc/kcore", "/proc/does-not-exist"],
            "readonlyPaths": ["/etc/rodir", "/proc/sys", "/nonexistent"],
            "sysctl": {"kernel.shmmax": "123456789", "net.ipv4.ip_forward": "1"},
        }),
    );
    cfg["root"]["readonly"] = json!(true);
    cfg["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    let out = b.run(&cfg, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "probe failed: {stderr}\n{stdout}");
    eprintln!("{stdout}");
    let info = section(&stdout, "mountinfo");

    // Root: the rootfs, read-only.
    assert!(mount_opts(info, "/").contains(&"ro".to_string()), "{info}");
    assert_eq!(fstype(info, "/proc"), "proc");
    assert_eq!(fstype(info, "/dev"), "tmpfs");
    assert!(mount_opts(info, "/dev").contains(&"nosuid".to_string()));
    assert_eq!(fstype(info, "/dev/pts"), "devpts");
    assert!(
        mount_line(info, "/dev/pts")
            .unwrap()
            .contains("ptmxmode=666"),
        "{info}"
    );
    assert_eq!(fstype(info, "/dev/mqueue"), "mqueue");
    assert_eq!(fstype(info, "/sys"), "sysfs");
    let sys = mount_opts(info, "/sys");
    for f in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(sys.contains(&f.to_string()), "/sys lacks {f}: {sys:?}");
    }
    // Binds: ro + nosuid applied, a file bind, flags of the source kept under ro.
    let ro = mount_opts(info, "/mnt/ro");
    assert!(
        ro.contains(&"ro".to_string()) && ro.contains(&"nosuid".to_string()),
        "{ro:?}"
    );
    assert!(mount_line(info, "/mnt/file").is_some());
    let kept = mount_opts(info, "/mnt/kept");
    for f in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(
            kept.contains(&f.to_string()),
            "/mnt/kept lacks {f}: {kept:?}"
        );
    }
    // Recursive attributes reach the submounts of an rbind.
    for mp in ["/mnt/rec", "/mnt/rec/pts", "/mnt/rec/shm"] {
        let o = mount_opts(info, mp);
        assert!(
            o.contains(&"ro".to_string()) && o.contains(&"noexec".to_string()),
            "{mp}: {o:?}"
        );
    }
    assert_eq!(fstype(info, "/mnt/deep/created/dir"), "tmpfs");
    assert!(b.rootfs().join("mnt/deep/created/dir").is_dir());

    let devices = section(&stdout, "devices");
    for want in [
        "/dev/null character special file 1:3 666 0:0",
        "/dev/zero character special file 1:5 666 0:0",
        "/dev/full character special file 1:7 666 0:0",
        "/dev/random character special file 1:8 666 0:0",
        "/dev/urandom character special file 1:9 666 0:0",
        "/dev/tty character special file 5:0 666 0:0",
        "/dev/fuse character special file a:e5 640 1:2",
        "/dev/mydisk block special file 7:c8 600 0:0",
    ] {
        assert!(devices.contains(want), "missing {want:?} in\n{devices}");
    }
    let links = section(&stdout, "links");
    for want in [
        "ptmx pts/ptmx",
        "fd /proc/self/fd",
        "stdin /proc/self/fd/0",
        "stdout /proc/self/fd/1",
        "stderr /proc/self/fd/2",
    ] {
        assert!(links.contains(want), "missing {want:?} in\n{links}");
    }
    let dirs = section(&stdout, "dirs");
    assert!(dirs.contains("/dev/shm directory"), "{dirs}");
    // No terminal: no /dev/console, as runc.
    assert!(dirs.contains("no-console"), "{dirs}");

    let masked = section(&stdout, "masked");
    assert!(
        !masked.contains("secret"),
        "masked content visible: {masked}"
    );
    assert!(
        masked.contains("\n0\ndone") || masked.starts_with("0\ndone"),
        "{masked}"
    );
    assert_eq!(fstype(info, "/etc/secretdir"), "tmpfs");
    assert!(mount_opts(info, "/etc/secretdir").contains(&"ro".to_string()));

    let readonly = section(&stdout, "readonly");
    assert_eq!(
        readonly.matches("Read-only file system").count(),
        2,
        "{readonly}"
    );
    let rootro = section(&stdout, "rootro");
    assert!(
        rootro.contains("Read-only file system") && rootro.contains("tmp-writable"),
        "{rootro}"
    );
    let sysctl = section(&stdout, "sysctl");
    assert_eq!(sysctl.trim(), "123456789\n1", "{sysctl}");
    let binds = section(&stdout, "binds");
    assert!(
        binds.contains("host data") && binds.contains("sub") && binds.contains("Read-only"),
        "{binds}"
    );
    let cgroup = section(&stdout, "cgroup");
    assert!(
        cgroup.contains("memory") && cgroup.contains("cpu"),
        "{cgroup}"
    );
    // As runc: the tmpfs holding the view stays writable, the hierarchies are read-only.
    assert!(mount_opts(info, "/sys/fs/cgroup").contains(&"rw".to_string()));
    assert!(mount_opts(info, "/sys/fs/cgroup/memory").contains(&"ro".to_string()));
    // The host data was only bound, never written.
    assert!(!host_data.join("x").exists());
}

/// A failing probe: (exit code, stderr), with stderr checked to be one line.
fn failure(out: &Output) -> (i32, String) {
    let (_, stderr) = text(out);
    assert!(!out.status.success(), "probe unexpectedly succeeded");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    (out.status.code().unwrap_or(-1), stderr)
}

fn minimal_mounts() -> Value {
    json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
    ])
}

#[test]
fn rootfs_symlink_out_of_bundle_refused() {
    require_root!();
    let b = Bundle::new();
    let outside = std::env::temp_dir().join(format!("hull-rootfs-outside-{}", std::process::id()));
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::remove_dir_all(b.rootfs()).unwrap();
    symlink(&outside, b.rootfs()).unwrap();
    let out = b.run(&config("true", minimal_mounts(), json!({})), &[]);
    let listing: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    std::fs::remove_dir_all(&outside).unwrap();
    let (code, err) = failure(&out);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("root.path rootfs") && err.contains("outside the bundle"),
        "{err}"
    );
    assert!(
        listing.is_empty(),
        "something was created outside the bundle"
    );
}

#[test]
fn mount_targets_stay_inside_the_rootfs() {
    require_root!();
    let b = Bundle::new();
    let host = std::env::temp_dir().join(format!("hull-rootfs-escape-{}", std::process::id()));
    std::fs::create_dir_all(&host).unwrap();
    // An absolute and a relative symlink that would both lead to `host` on the host.
    symlink(&host, b.rootfs().join("abs")).unwrap();
    let up = "../".repeat(20);
    symlink(
        format!("{up}{}", host.display()),
        b.rootfs().join("etc/rel"),
    )
    .unwrap();
    let mut mounts = minimal_mounts().as_array().unwrap().clone();
    mounts.push(json!({"destination": "/abs/sub", "type": "tmpfs", "source": "tmpfs"}));
    mounts.push(json!({"destination": "/etc/rel/other", "type": "tmpfs", "source": "tmpfs"}));
    let script = "touch /abs/sub/marker /etc/rel/other/marker && cat /proc/self/mountinfo";
    let out = b.run(&config(script, Value::Array(mounts), json!({})), &[]);
    let host_entries: Vec<_> = std::fs::read_dir(&host).unwrap().collect();
    std::fs::remove_dir_all(&host).unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        host_entries.is_empty(),
        "a mount target was created on the host"
    );
    let inside = b.rootfs().join(host.strip_prefix("/").unwrap());
    assert!(inside.join("sub").is_dir() && inside.join("other").is_dir());
    let mp = format!("{}/sub", host.display());
    assert_eq!(fstype(&stdout, &mp), "tmpfs", "{stdout}");
}

#[test]
fn proc_on_a_symlink_refused() {
    require_root!();
    let b = Bundle::new();
    std::fs::remove_dir(b.rootfs().join("proc")).unwrap();
    std::fs::create_dir(b.rootfs().join("fakeproc")).unwrap();
    symlink("/fakeproc", b.rootfs().join("proc")).unwrap();
    let (code, err) = failure(&b.run(&config("true", minimal_mounts(), json!({})), &[]));
    assert_eq!(code, 3);
    assert!(
        err.contains("mounts[0] (/proc)") && err.contains("ordinary directory"),
        "{err}"
    );
}

#[test]
fn mount_into_proc_through_a_symlink_refused() {
    require_root!();
    let b = Bundle::new();
    symlink("/proc", b.rootfs().join("etc/innocent")).unwrap();
    let mut mounts = minimal_mounts().as_array().unwrap().clone();
    mounts.push(json!({"destination": "/etc/innocent/sys", "type": "tmpfs", "source": "tmpfs"}));
    let (code, err) = failure(&b.run(&config("true", Value::Array(mounts), json!({})), &[]));
    assert_eq!(code, 3);
    assert!(
        err.contains("mounts[2]") && err.contains("/proc/sys cannot be mounted"),
        "{err}"
    );
}

#[test]
fn unknown_mount_option_named() {
    require_root!();
    let b = Bundle::new();
    let mut mounts = minimal_mounts().as_array().unwrap().clone();
    mounts.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "bogusopt"]}));
    let (code, err) = failure(&b.run(&config("true", Value::Array(mounts), json!({})), &[]));
    assert_eq!(code, 2);
    assert!(
        err.contains("mounts[2] (/tmp)") && err.contains("\"bogusopt\""),
        "{err}"
    );
}

#[test]
fn no_pivot_and_read_only_dev() {
    require_root!();
    let b = Bundle::new();
    let mounts = json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "ro"]},
    ]);
    let script = "cat /proc/self/mountinfo; echo '== ls'; ls /; stat -c '%t:%T' /dev/zero; touch /dev/x 2>&1 || true";
    let out = b.run(&config(script, mounts, json!({})), &["--no-pivot"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let root = mount_line(&stdout, "/").unwrap_or_else(|| panic!("no / in {stdout}"));
    assert!(root.contains("/rootfs"), "{root}");
    assert!(
        mount_opts(&stdout, "/dev").contains(&"ro".to_string()),
        "{stdout}"
    );
    assert!(
        stdout.contains("1:5") && stdout.contains("Read-only file system"),
        "{stdout}"
    );
    assert!(section(&stdout, "ls").contains("bin"));
    // The host's other mounts were detached, not just hidden under the moved rootfs.
    let outside = stdout
        .lines()
        .take_while(|l| !l.starts_with("=="))
        .filter(|l| l.split(' ').nth(4) == Some("/sys"))
        .count();
    assert_eq!(outside, 0, "{stdout}");
}

#[test]
fn user_namespace_devices_are_bind_mounts() {
    require_root!();
    let b = Bundle::new();
    let script = "cat /proc/self/mountinfo; stat -c '%n %t:%T' /dev/null /dev/tty";
    let out = b.run(
        &config(script, minimal_mounts(), json!({})),
        &["--userns-devices"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(mount_line(&stdout, "/dev/null").is_some(), "{stdout}");
    assert!(mount_line(&stdout, "/dev/tty").is_some(), "{stdout}");
    assert!(
        stdout.contains("/dev/null 1:3") && stdout.contains("/dev/tty 5:0"),
        "{stdout}"
    );
}

#[test]
fn propagation_options_apply() {
    require_root!();
    let b = Bundle::new();
    let mut mounts = minimal_mounts().as_array().unwrap().clone();
    mounts.push(json!({"destination": "/mnt/shared", "type": "tmpfs", "source": "tmpfs", "options": ["rshared"]}));
    mounts.push(json!({"destination": "/mnt/unbindable", "type": "tmpfs", "source": "tmpfs", "options": ["unbindable"]}));
    let cfg = config(
        "cat /proc/self/mountinfo",
        Value::Array(mounts),
        json!({"rootfsPropagation": "private"}),
    );
    let out = b.run(&cfg, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        mount_line(&stdout, "/mnt/shared")
            .unwrap()
            .contains(" shared:"),
        "{stdout}"
    );
    assert!(
        mount_line(&stdout, "/mnt/unbindable")
            .unwrap()
            .contains(" unbindable "),
        "{stdout}"
    );
    assert!(
        !mount_line(&stdout, "/").unwrap().contains("master:"),
        "{stdout}"
    );
}

#[test]
fn idmapped_bind_mount() {
    require_root!();
    let b = Bundle::new();
    let mut mounts = minimal_mounts().as_array().unwrap().clone();
    mounts.push(json!({"destination": "/idsrc", "type": "tmpfs", "source": "tmpfs"}));
    mounts.push(json!({
        "destination": "/idmapped", "type": "bind", "source": b.rootfs().join("idsrc"), "options": ["bind", "idmap"],
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
        "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 10}],
    }));
    let script = "touch /idsrc/f && stat -c '%u:%g' /idsrc/f /idmapped/f && grep -w /idmapped /proc/self/mountinfo";
    let out = b.run(&config(script, Value::Array(mounts), json!({})), &[]);
    let (stdout, stderr) = text(&out);
    if stderr.contains("does its file system support idmapped mounts") {
        hull_testkit::skip!("kernel refuses idmapped tmpfs mounts: {stderr}");
    }
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("0:0\n1000:2000\n"), "{stdout}");
    assert!(stdout.contains("idmapped"), "{stdout}");
}

#[test]
fn invalid_configs_name_the_field() {
    // RootfsPlan::new only reads: no privilege needed, nothing created.
    let b = Bundle::new();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"mountLabel": "system_u:object_r:container_file_t:s0"}),
            "linux.mountLabel",
        ),
        (
            json!({"rootfsPropagation": "sideways"}),
            "linux.rootfsPropagation: unknown propagation \"sideways\"",
        ),
        (
            json!({"maskedPaths": ["proc/kcore"]}),
            "linux.maskedPaths[0]",
        ),
        (
            json!({"readonlyPaths": ["/ok", "rel"]}),
            "linux.readonlyPaths[1]",
        ),
        (
            json!({"sysctl": {"kernel.panic": "1"}}),
            "linux.sysctl \"kernel.panic\": not in a separate kernel namespace",
        ),
        (
            json!({"sysctl": {"../../etc": "1"}}),
            "not a valid sysctl name",
        ),
        (
            json!({"devices": [{"path": "/dev/x", "type": "a", "major": 1, "minor": 1}]}),
            "linux.devices[0] (/dev/x)",
        ),
        (
            json!({"devices": [{"path": "dev/x", "type": "c", "major": 1, "minor": 1}]}),
            "path must be absolute",
        ),
    ];
    for (linux, want) in cases {
        let spec: oci_spec::runtime::Spec =
            serde_json::from_value(config("true", minimal_mounts(), linux)).unwrap();
        let err = crate::rootfs::RootfsPlan::new(&spec, &b.dir, Default::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err:?} lacks {want:?}");
        assert_eq!(err.lines().count(), 1);
    }
    // net.* needs a network namespace of the container's own.
    let mut cfg = config(
        "true",
        minimal_mounts(),
        json!({"sysctl": {"net.ipv4.ip_forward": "1"}}),
    );
    cfg["linux"]["namespaces"] = json!([{"type": "mount"}]);
    let spec: oci_spec::runtime::Spec = serde_json::from_value(cfg).unwrap();
    let err = crate::rootfs::RootfsPlan::new(&spec, &b.dir, Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("host's net namespace"), "{err}");
    let mounts_cases: Vec<(Value, &str)> = vec![
        (
            json!({"destination": "/x", "type": "nosuchfs", "source": "x"}),
            "mount type \"nosuchfs\" is not supported",
        ),
        (
            json!({"destination": "/x", "source": "x"}),
            "no type and no bind option",
        ),
        (
            json!({"destination": "/x", "type": "bind", "source": "/nonexistent-hull-source"}),
            "source /nonexistent-hull-source",
        ),
        (
            json!({"destination": "/x", "type": "sysfs", "options": ["tmpcopyup"]}),
            "\"tmpcopyup\" needs a tmpfs",
        ),
        (
            json!({"destination": "/x", "type": "bind", "source": "/tmp", "options": ["bind", "sync"]}),
            "not a bind mount",
        ),
        (
            json!({"destination": "/x", "type": "cgroup", "source": "cgroup"}),
            "cgroup hierarchies",
        ),
        (
            json!({"destination": "/x", "type": "bind", "source": "/tmp", "options": ["idmap"]}),
            "user namespace mappings",
        ),
    ];
    for (m, want) in mounts_cases {
        let spec: oci_spec::runtime::Spec =
            serde_json::from_value(config("true", json!([m]), json!({}))).unwrap();
        let err = crate::rootfs::RootfsPlan::new(&spec, &b.dir, Default::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("mounts[0] (/x): ") && err.contains(want),
            "{err:?} lacks {want:?}"
        );
    }
    let mut cfg = config("true", minimal_mounts(), json!({}));
    cfg["root"]["path"] = json!("missing-rootfs");
    let spec: oci_spec::runtime::Spec = serde_json::from_value(cfg).unwrap();
    let err = crate::rootfs::RootfsPlan::new(&spec, &b.dir, Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("root.path missing-rootfs: "), "{err}");
}

#[test]
fn cgroup_views() {
    require_root!();
    let b = Bundle::new();
    let mut cg = minimal_mounts();
    cg.as_array_mut().unwrap().push(
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev"]}),
    );
    let script = "cat /proc/self/mountinfo; echo '== ls'; ls -l /sys/fs/cgroup";

    // Pure v2: one cgroup2 mount.
    let out = b.run(&config(script, cg.clone(), json!({})), &["--only-unified"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(fstype(&stdout, "/sys/fs/cgroup"), "cgroup2", "{stdout}");

    // v1 with a combined hierarchy: a directory per hierarchy plus the controller symlinks.
    let fake = b.dir.join("cpu,cpuacct");
    std::fs::create_dir_all(&fake).unwrap();
    let arg = format!("{}:cpu,cpuacct", fake.display());
    let out = b.run(
        &config(script, cg.clone(), json!({})),
        &["--fake-cgroup", &arg],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let ls = section(&stdout, "ls");
    assert!(
        ls.contains("cpu -> cpu,cpuacct") && ls.contains("cpuacct -> cpu,cpuacct"),
        "{ls}"
    );
    assert!(
        mount_line(&stdout, "/sys/fs/cgroup/cpu,cpuacct").is_some(),
        "{stdout}"
    );
    assert_eq!(fstype(&stdout, "/sys/fs/cgroup"), "tmpfs");

    // In a cgroup namespace: fresh cgroup mounts rooted at the namespace's root.
    let mut cfg = config(script, cg, json!({}));
    cfg["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "cgroup"}));
    let out = b.run(&cfg, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let mem = mount_line(&stdout, "/sys/fs/cgroup/memory").unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        mem.split(' ').nth(3) == Some("/") && mem.contains(" - cgroup "),
        "{mem}"
    );
}

#[test]
fn tmpcopyup_copies_the_covered_directory() {
    require_root!();
    use std::os::unix::fs::PermissionsExt;
    let b = Bundle::new();
    let run = b.rootfs().join("etc/run");
    std::fs::create_dir_all(run.join("d")).unwrap();
    std::fs::write(run.join("a"), "from the image\n").unwrap();
    std::fs::set_permissions(run.join("a"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(run.join("a"), Some(12), Some(34)).unwrap();
    symlink("../a", run.join("d/l")).unwrap();
    let mut mounts = minimal_mounts().as_array().unwrap().clone();
    mounts.push(json!({"destination": "/etc/run", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "mode=755"]}));
    let script = "stat -c '%n %a %u:%g' /etc/run/a && readlink /etc/run/d/l && cat /etc/run/d/l && touch /etc/run/new && grep -w /etc/run /proc/self/mountinfo";
    let out = b.run(&config(script, Value::Array(mounts), json!({})), &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("/etc/run/a 640 12:34\n../a\nfrom the image\n"),
        "{stdout}"
    );
    assert!(stdout.contains(" - tmpfs "), "{stdout}");
    assert!(
        !run.join("new").exists(),
        "the write went to the image, not the tmpfs"
    );
}

fn chown_tree(path: &Path, id: u32) {
    std::os::unix::fs::lchown(path, Some(id), Some(id)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), id);
        }
    }
}

#[test]
fn inside_a_user_namespace() {
    require_root!();
    let b = Bundle::new();
    std::fs::create_dir_all(b.rootfs().join("etc/rodir")).unwrap();
    std::fs::write(b.rootfs().join("etc/secretfile"), "secret\n").unwrap();
    chown_tree(&b.rootfs(), 100_000);
    let idsrc = b.dir.join("idsrc");
    std::fs::create_dir_all(&idsrc).unwrap();
    std::fs::write(idsrc.join("f"), "owned by host root\n").unwrap();
    let mut mounts = default_mounts().as_array().unwrap().clone();
    mounts.extend([
        json!({"destination": "/mnt/plain", "type": "bind", "source": idsrc, "options": ["rbind", "ro", "nosuid"]}),
        json!({"destination": "/mnt/idmapped", "type": "bind", "source": idsrc, "options": ["bind", "idmap"],
               "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
               "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}),
    ]);
    let script = "cat /proc/self/mountinfo
echo '== owners'; stat -c '%u:%g' /mnt/plain/f /mnt/idmapped/f
echo '== devices'; stat -c '%n %t:%T' /dev/null /dev/fuse
echo '== writes'; touch /newfile 2>&1; touch /etc/rodir/x 2>&1; touch /mnt/plain/x 2>&1; cat /etc/secretfile; echo done
echo '== sysctl'; cat /proc/sys/kernel/shmmax
echo '== end'";
    let mut cfg = config(
        script,
        Value::Array(mounts),
        json!({
            "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
            "maskedPaths": ["/etc/secretfile", "/proc/kcore"],
            "readonlyPaths": ["/etc/rodir", "/proc/sys"],
            "sysctl": {"kernel.shmmax": "987654321"},
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        }),
    );
    cfg["root"]["readonly"] = json!(true);
    cfg["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let out = b.run(&cfg, &["--userns"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    let info = stdout.split("== owners").next().unwrap();
    assert!(mount_opts(info, "/").contains(&"ro".to_string()), "{info}");
    assert_eq!(fstype(info, "/proc"), "proc");
    assert_eq!(fstype(info, "/sys"), "sysfs");
    assert!(
        mount_line(info, "/mnt/idmapped")
            .unwrap()
            .contains("idmapped"),
        "{info}"
    );
    assert_eq!(section(&stdout, "owners"), "65534:65534\n0:0\n", "{stdout}");
    let devices = section(&stdout, "devices");
    assert!(
        devices.contains("/dev/null 1:3") && devices.contains("/dev/fuse a:e5"),
        "{devices}"
    );
    assert!(
        mount_line(info, "/dev/fuse").is_some(),
        "devices are binds in a user namespace"
    );
    let writes = section(&stdout, "writes");
    assert_eq!(
        writes.matches("Read-only file system").count(),
        3,
        "{writes}"
    );
    assert!(!writes.contains("secret"), "{writes}");
    assert_eq!(section(&stdout, "sysctl"), "987654321\n");
}
