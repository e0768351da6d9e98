//! Bad bundles: each fails with one line naming the problem, exit status 1, and leaves no state,
//! cgroup or mount behind.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{can_run, leaked_cgroups, TestContainer};
use serde_json::json;

fn create_fails(c: &TestContainer, needle: &str) {
    let out = c.runtime(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(!c.root.join(&c.id).exists(), "state left behind");
    assert!(leaked_cgroups(&c.id).is_empty(), "cgroup left behind");
}

#[test]
fn malformed_config_json() {
    if !can_run() {
        return;
    }
    let c = TestContainer::new("badjson");
    std::fs::write(
        c.bundle.join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"process\": ",
    )
    .unwrap();
    create_fails(&c, "config.json");
}

#[test]
fn missing_rootfs() {
    if !can_run() {
        return;
    }
    let c = TestContainer::new("norootfs");
    c.write_config();
    std::fs::remove_dir_all(c.bundle.join("rootfs")).unwrap();
    create_fails(&c, "rootfs");
}

#[test]
fn unknown_namespace_type() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("badns");
    c.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "bogus"}));
    c.write_config();
    create_fails(&c, "bogus");
}

#[test]
fn rootfs_symlink_out_of_the_bundle() {
    if !can_run() {
        return;
    }
    let c = TestContainer::new("rootfslink");
    c.write_config();
    let outside = c.dir.join("outside-rootfs");
    std::fs::rename(c.bundle.join("rootfs"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, c.bundle.join("rootfs")).unwrap();
    create_fails(&c, "rootfs");
}

#[test]
fn unsupported_version_and_empty_args() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("badversion");
    c.config["ociVersion"] = json!("2.0.0");
    c.write_config();
    create_fails(&c, "ociVersion");
    c.config["ociVersion"] = json!("1.0.2");
    c.config["process"]["args"] = json!([]);
    c.write_config();
    create_fails(&c, "process.args");
}

#[test]
fn unknown_flag_and_command() {
    if !can_run() {
        return;
    }
    let c = TestContainer::new("badflag");
    let out = c.runtime(&["create", "--no-such-flag", &c.id]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
    let out = c.runtime(&["frobnicate"]);
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn nonexistent_namespace_path() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("badnspath");
    c.config["linux"]["namespaces"] =
        json!([{"type": "mount"}, {"type": "network", "path": "/proc/999999999/ns/net"}]);
    c.config.as_object_mut().unwrap().remove("hostname");
    c.write_config();
    create_fails(&c, "/proc/999999999/ns/net");
}

#[test]
fn unknown_resource_field_and_bad_values() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("badres");
    c.config["linux"]["resources"]["memory"] = json!({"limitt": 1048576});
    c.write_config();
    create_fails(&c, "linux.resources.memory.limitt");
    c.config["linux"]["resources"]["memory"] = json!({"limit": -5});
    c.write_config();
    create_fails(&c, "memory");
    c.config["linux"]["resources"]["memory"] = json!({});
    c.config["linux"]["resources"]["blockIO"] =
        json!({"throttleWriteBpsDevice": [{"major": 7, "minor": 4000, "rate": 1024}]});
    c.write_config();
    create_fails(&c, "throttleWriteBpsDevice");
}

#[test]
fn a_reader_that_went_away_ends_the_command_quietly() {
    // `hull-runtime features | head -0`: the pipe is closed before anything is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(common::runtime_bin())
        .arg("features")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(128 + libc::SIGPIPE), "{err}");
    assert!(err.is_empty(), "no panic, no message: {err:?}");
}

/// A mount refused while the runtime is still making the cgroups (the process makes its first
/// mounts meanwhile): the create fails naming it, and the cgroups made so far are removed.
#[test]
fn a_mount_refused_before_the_cgroups_exist() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("earlymount");
    std::fs::write(c.bundle.join("rootfs/notadir"), b"").unwrap();
    c.config["mounts"].as_array_mut().unwrap().insert(
        0,
        json!({"destination": "/notadir", "type": "sysfs", "source": "sysfs"}),
    );
    c.write_config();
    create_fails(&c, "mounts[0] (/notadir)");
}
