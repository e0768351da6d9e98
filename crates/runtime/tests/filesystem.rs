//! The container's file system as its process sees it: mounts, masked and read-only paths, the
//! read-only root, default and configured devices, a cwd made when missing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{can_run, TestContainer};
use serde_json::json;

#[test]
fn default_mounts_and_devices() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("mounts");
    c.script("cat /proc/self/mounts; ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; for l in /dev/ptmx /dev/fd /dev/stdin; do readlink $l; done; test -d /dev/shm && echo shm-ok");
    let out = c.run_ok();
    for needle in [
        " /proc proc ",
        " /sys sysfs ",
        " /dev tmpfs ",
        " /dev/pts devpts ",
        " /dev/mqueue mqueue ",
        "shm-ok",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in {out}");
    }
    assert!(
        out.lines().any(|l| l.starts_with("crw-rw-rw-")
            && l.contains("1,   3")
            && l.ends_with("/dev/null")),
        "{out}"
    );
    assert!(out.contains("pts/ptmx"), "{out}");
    assert!(out.contains("/proc/self/fd"), "{out}");
}

#[test]
fn readonly_root_masked_and_readonly_paths() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("masked");
    c.config["root"]["readonly"] = json!(true);
    c.config["linux"]["maskedPaths"] = json!(["/proc/meminfo", "/proc/driver", "/no/such/path"]);
    c.config["linux"]["readonlyPaths"] = json!(["/proc/sys"]);
    c.script(
        "touch /rootfile 2>/dev/null || echo root-ro; \
         echo meminfo=$(wc -c < /proc/meminfo); echo driver=$(ls /proc/driver | wc -l); \
         (echo x > /proc/sys/kernel/hostname) 2>/dev/null || echo sys-ro; \
         grep ' /proc/driver ' /proc/mounts",
    );
    let out = c.run_ok();
    // A masked directory's tmpfs as runc mounts it: read-only, no options (no size=0).
    assert!(
        out.contains("tmpfs /proc/driver tmpfs ro,relatime 0 0\n"),
        "masked /proc/driver mount: {out}"
    );
    assert!(out.contains("root-ro\n"), "root is writable: {out}");
    assert!(
        out.contains("meminfo=0\n"),
        "masked /proc/meminfo readable: {out}"
    );
    assert!(
        out.contains("driver=0\n"),
        "masked /proc/driver not empty: {out}"
    );
    assert!(
        out.contains("sys-ro\n"),
        "readonly /proc/sys writable: {out}"
    );
}

#[test]
fn configured_device_nodes() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("devices");
    c.config["linux"]["devices"] = json!([
        {"path": "/dev/hullzero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640, "uid": 0, "gid": 0}
    ]);
    // /dev/kmsg (1:11) is in neither the config's rules nor the defaults: the device cgroup must
    // refuse it even when its node is bind-mounted in.
    c.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/kmsg", "type": "bind", "source": "/dev/kmsg", "options": ["bind"]
    }));
    c.script("ls -l /dev/hullzero; head -c 4 /dev/hullzero | wc -c; head -c 1 /kmsg >/dev/null 2>&1 && echo kmsg-open || echo kmsg-denied");
    let out = c.run_ok();
    assert!(out.starts_with("crw-r-----"), "{out}");
    assert!(out.contains("1,   5"), "{out}");
    assert!(out.contains("\n4\n"), "{out}");
    assert!(
        out.contains("kmsg-denied"),
        "the device cgroup let /dev/kmsg through: {out}"
    );
}

#[test]
fn bind_mounts_read_only_and_tmpfs_options() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("binds");
    let host = c.dir.join("data");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("file"), "from-host").unwrap();
    let mounts = c.config["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/data", "type": "bind", "source": host, "options": ["bind", "ro"]}),
    );
    mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=1777", "nosuid"]}));
    c.script("cat /data/file; echo; touch /data/new 2>&1; grep ' /scratch ' /proc/self/mounts; stat -c %a /scratch");
    let out = c.run_ok();
    assert!(out.starts_with("from-host\n"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(
        out.contains("size=1024k") && out.contains("nosuid"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("1777"), "{out}");
    assert!(!host.join("new").exists());
}

#[test]
fn bind_mount_with_file_system_data_runs_as_under_runc() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("binddata");
    let host = c.dir.join("data");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("file"), "from-host").unwrap();
    // runc hands `mode=755` to mount(2) with MS_BIND, which ignores data for a bind.
    c.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": host, "options": ["rbind", "mode=755", "ro"]
    }));
    c.script("cat /data/file; echo; grep ' /data ' /proc/self/mounts");
    let out = c.run_ok();
    assert!(out.starts_with("from-host\n"), "{out}");
    assert!(out.contains(" ro,"), "{out}");
}

/// The mounts at /dev and /sys/fs/cgroup as (mount point, mount options, type, source, super
/// options, root with the container's cgroup name as ID), sorted; then the names in /dev.
fn dev_and_cgroup_view(out: &str, cgroup_name: &str) -> (Vec<String>, String) {
    let (info, dev) = out.split_once("==\n").unwrap();
    let mut mounts: Vec<String> = info
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(" - ")?;
            let a: Vec<&str> = a.split(' ').collect();
            let mp = a[4];
            (mp.starts_with("/dev") || mp.starts_with("/sys/fs/cgroup"))
                .then(|| format!("{mp} {} {b} {}", a[5], a[3].replace(cgroup_name, "ID")))
        })
        .collect();
    mounts.sort();
    (mounts, dev.to_string())
}

#[test]
fn dev_and_cgroup_mounts_are_as_runc_makes_them() {
    if !can_run() {
        return;
    }
    let runc = "/usr/sbin/runc";
    if !std::path::Path::new(runc).exists() {
        hull_testkit::skip!("runc is not installed (apt-get install runc)");
    }
    for cgroupns in [false, true] {
        let mut c = TestContainer::new("runc-view");
        let namespaces = c.config["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.retain(|n| n["type"] != "cgroup");
        if cgroupns {
            namespaces.push(json!({"type": "cgroup"}));
        }
        c.script("cat /proc/self/mountinfo; echo ==; ls -a /dev");
        let hull = c.run_ok();
        let runc_id = format!("{}-runc", c.id);
        let out = std::process::Command::new(runc)
            .arg("--root")
            .arg(c.dir.join("runc-state"))
            .args(["run", "--bundle", c.bundle.to_str().unwrap(), &runc_id])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let _ = std::process::Command::new(runc)
            .arg("--root")
            .arg(c.dir.join("runc-state"))
            .args(["delete", "--force", &runc_id])
            .output();
        assert!(
            out.status.success(),
            "runc: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs = dev_and_cgroup_view(&String::from_utf8_lossy(&out.stdout), &runc_id);
        let ours = dev_and_cgroup_view(&hull, &format!("hull-{}", c.id));
        assert_eq!(ours, theirs, "cgroupns={cgroupns}");
    }
}

/// A process.cwd the root file system lacks is made (0755), as runc's init does, also when
/// the root is read-only (kubelet passes a pod's workingDir as written).
#[test]
fn a_missing_cwd_is_made_before_the_root_goes_read_only() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("mkcwd");
    c.config["process"]["cwd"] = json!("/work/not/in/image");
    c.config["root"]["readonly"] = json!(true);
    c.script("pwd; stat -c %a /work/not/in/image /work");
    let out = c.run_ok();
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["/work/not/in/image", "755", "755"]
    );
}
