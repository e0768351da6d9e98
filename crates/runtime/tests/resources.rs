//! The container's cgroup limits through the CLI: fields the kernel dropped, `update`, and
//! creates racing for one new cgroup parent.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{can_run, leaked_cgroups, TestContainer};
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;

/// The container's dir in the v1 hierarchy mounted at /sys/fs/cgroup/<name>.
fn v1_dir(c: &TestContainer, hierarchy: &str) -> PathBuf {
    let mount = Path::new("/sys/fs/cgroup").join(hierarchy);
    leaked_cgroups(&c.id)
        .into_iter()
        .find(|d| d.starts_with(&mount))
        .unwrap_or_else(|| panic!("no {hierarchy} cgroup of {}", c.id))
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
        .trim()
        .to_string()
}

fn has_v1(hierarchy: &str) -> bool {
    Path::new("/sys/fs/cgroup")
        .join(hierarchy)
        .join("cgroup.procs")
        .exists()
}

#[test]
fn dropped_resource_fields_warn_once_and_the_rest_applies() {
    if !can_run() {
        return;
    }
    if !has_v1("memory") {
        hull_testkit::skip!("swappiness and kernel memory are cgroup v1 files");
    }
    let mut c = TestContainer::new("dropped");
    c.set_args(&["sleep", "1000"]);
    c.config["linux"]["resources"]["memory"] = json!({
        "limit": 64 * MIB, "swap": 128 * MIB, "swappiness": 10,
        "kernel": 32 * MIB, "kernelTCP": 16 * MIB
    });
    c.config["linux"]["resources"]["blockIO"] = json!({
        "weight": 0, "leafWeight": 300,
        "weightDevice": [{"major": 1, "minor": 3, "leafWeight": 200}]
    });
    c.write_config();
    let log = c.dir.join("runtime.log");
    let log_arg = log.to_str().unwrap();
    let bundle = c.bundle.to_str().unwrap();
    let (ok, err) = c.detached(&["--log", log_arg, "create", "--bundle", bundle, &c.id]);
    assert!(ok, "create: {err}");
    let memory = v1_dir(&c, "memory");
    assert_eq!(
        read(&memory, "memory.limit_in_bytes"),
        (64 * MIB).to_string()
    );
    assert_eq!(
        read(&memory, "memory.memsw.limit_in_bytes"),
        (128 * MIB).to_string()
    );
    assert_eq!(read(&memory, "memory.swappiness"), "10");
    let text = std::fs::read_to_string(&log).unwrap();
    let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("linux.resources.memory.kernel: ignored"), 1, "{text}");
    assert_eq!(
        count("linux.resources.blockIO.leafWeight: ignored"),
        1,
        "{text}"
    );
    assert_eq!(
        count("leafWeight"),
        1,
        "one warning for all leaf weights: {text}"
    );
    assert!(text.lines().all(|l| l.contains("level=warning")), "{text}");
}

/// `update ARGS... ID` with `stdin`: (success, stderr).
fn update(c: &TestContainer, args: &[&str], stdin: &str) -> (bool, String) {
    let mut full = vec!["update"];
    full.extend(args);
    full.push(&c.id);
    let mut child = c
        .command(&full)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), err)
}

fn update_ok(c: &TestContainer, args: &[&str], stdin: &str) {
    let (ok, err) = update(c, args, stdin);
    assert!(ok, "update {args:?}: {err}");
}

/// `update` that must fail with one line containing `want`.
fn update_fails(c: &TestContainer, args: &[&str], stdin: &str, want: &str) {
    let (ok, err) = update(c, args, stdin);
    assert!(!ok, "update {args:?} succeeded");
    assert!(
        err.contains(want),
        "update {args:?}: {err:?} lacks {want:?}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
}

fn stats(c: &TestContainer) -> Value {
    let out = c.ok(&["events", "--stats", &c.id]);
    let event: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(event["type"], "stats", "{out}");
    event["data"].clone()
}

fn saved_resources(c: &TestContainer) -> Value {
    let saved: Value =
        serde_json::from_slice(&std::fs::read(c.root.join(&c.id).join("config.json")).unwrap())
            .unwrap();
    saved["linux"]["resources"].clone()
}

#[test]
fn update_changes_the_live_cgroup_and_the_saved_config() {
    if !can_run() {
        return;
    }
    for h in ["memory", "cpu", "cpuset", "pids"] {
        if !has_v1(h) {
            hull_testkit::skip!("the file checks are cgroup v1's (v2 is tested in hull-cgroups)");
        }
    }
    let mut c = TestContainer::new("update");
    c.set_args(&["sleep", "1000"]);
    c.config["linux"]["resources"]["memory"] = json!({"limit": 64 * MIB});
    c.config["linux"]["resources"]["pids"] = json!({"limit": 100});
    c.create();
    c.ok(&["start", &c.id]);
    let (memory, cpu, cpuset, pids) = (
        v1_dir(&c, "memory"),
        v1_dir(&c, "cpu"),
        v1_dir(&c, "cpuset"),
        v1_dir(&c, "pids"),
    );

    update_ok(
        &c,
        &[
            "--memory",
            "128m",
            "--memory-swap",
            "256M",
            "--memory-reservation",
            "32m",
            "--pids-limit",
            "50",
            "--cpu-period",
            "100000",
            "--cpu-quota",
            "20000",
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0",
            "--cpuset-mems",
            "0",
            "--blkio-weight",
            "0",
        ],
        "",
    );
    assert_eq!(
        read(&memory, "memory.limit_in_bytes"),
        (128 * MIB).to_string()
    );
    assert_eq!(
        read(&memory, "memory.memsw.limit_in_bytes"),
        (256 * MIB).to_string()
    );
    assert_eq!(
        read(&memory, "memory.soft_limit_in_bytes"),
        (32 * MIB).to_string()
    );
    assert_eq!(read(&pids, "pids.max"), "50");
    assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "20000");
    assert_eq!(read(&cpu, "cpu.shares"), "512");
    assert_eq!(read(&cpuset, "cpuset.cpus"), "0");
    let data = stats(&c);
    assert_eq!(data["memory"]["usage"]["limit"], json!(128 * MIB), "{data}");
    assert_eq!(data["memory"]["swap"]["limit"], json!(256 * MIB), "{data}");
    assert_eq!(data["pids"]["limit"], json!(50), "{data}");

    // As docker 20.10 and containerd send it (-r -): zeros for what does not change.
    update_ok(
        &c,
        &["-r", "-"],
        r#"{"memory": {"limit": 0, "reservation": 0, "kernel": 0}, "pids": {"limit": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""},
            "blockIO": {"weight": 0},
            "devices": [{"allow": true, "access": "rwm"}]}"#,
    );
    assert_eq!(
        read(&memory, "memory.limit_in_bytes"),
        (128 * MIB).to_string()
    );
    assert_eq!(read(&pids, "pids.max"), "50");
    assert_eq!(read(&cpu, "cpu.shares"), "512");
    let file = c.dir.join("resources.json");
    std::fs::write(
        &file,
        r#"{"pids": {"limit": 70}, "memory": {"limit": 96000000}}"#,
    )
    .unwrap();
    update_ok(&c, &["-r", file.to_str().unwrap()], "");
    assert_eq!(read(&pids, "pids.max"), "70");
    let data = stats(&c);
    assert_eq!(data["pids"]["limit"], json!(70), "{data}");
    // The kernel rounds to pages.
    assert_eq!(
        data["memory"]["usage"]["limit"],
        json!(96_000_000 / 4096 * 4096)
    );

    let saved = saved_resources(&c);
    assert_eq!(saved["memory"]["limit"], json!(96_000_000), "{saved}");
    assert_eq!(saved["memory"]["swap"], json!(256 * MIB), "{saved}");
    assert_eq!(saved["pids"]["limit"], json!(70), "{saved}");
    assert_eq!(saved["cpu"]["shares"], json!(512), "{saved}");
    assert_eq!(saved["cpu"]["cpus"], json!("0"), "{saved}");
    // Device rules are not updated: the saved ones stay (none allows everything).
    assert!(
        !saved["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["allow"] == json!(true) && d["type"].is_null() && d["major"].is_null()),
        "{saved}"
    );

    // Bad input: one line, and nothing changed.
    update_fails(&c, &["--memroy", "1m"], "", "--memroy");
    update_fails(&c, &["--memory", "lots"], "", "invalid value for memory");
    update_fails(
        &c,
        &["--pids-limit", "x"],
        "",
        "invalid value for pids-limit",
    );
    update_fails(&c, &["--cpuset-cpus", "0-"], "", "linux.resources.cpu.cpus");
    update_fails(
        &c,
        &["--pids-limit", "-7"],
        "",
        "linux.resources.pids.limit",
    );
    update_fails(
        &c,
        &["-r", "-"],
        r#"{"memory": {"limitt": 1}}"#,
        "linux.resources.memory.limitt: unknown resource field",
    );
    update_fails(&c, &["-r", "-"], "{", "invalid JSON");
    update_fails(
        &c,
        &["--l3-cache-schema", "L3:0=f"],
        "",
        "l3 cache schema is not enabled",
    );
    let any_bfq = std::fs::read_dir("/sys/block").unwrap().flatten().any(|e| {
        std::fs::read_to_string(e.path().join("queue/scheduler")).is_ok_and(|s| s.contains("[bfq]"))
    });
    if !any_bfq {
        update_fails(
            &c,
            &["--blkio-weight", "500"],
            "",
            "linux.resources.blockIO.weight",
        );
    }
    assert_eq!(read(&pids, "pids.max"), "70");
    assert_eq!(saved_resources(&c), saved);

    c.ok(&["kill", &c.id, "KILL"]);
    c.wait_status("stopped");
    update_fails(&c, &["--pids-limit", "5"], "", "container not running");
    let missing = TestContainer::new("update-missing");
    update_fails(
        &missing,
        &["--pids-limit", "5"],
        "",
        "container does not exist",
    );
}

#[test]
fn parallel_creates_under_one_new_parent() {
    if !can_run() {
        return;
    }
    let parent = format!("hull-t-parallel-parent-{}", std::process::id());
    let containers: Vec<TestContainer> = (0..10)
        .map(|i| {
            let mut c = TestContainer::new("parallel");
            c.set_args(&["sleep", "1000"]);
            c.linux()["cgroupsPath"] = json!(format!("{parent}/c{i}"));
            c.write_config();
            c
        })
        .collect();
    let results: Vec<(bool, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = containers
            .iter()
            .map(|c| {
                // Output to a file: the container's process keeps the stdio it inherits.
                s.spawn(|| c.detached(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for c in &containers {
        let _ = c.runtime(&["delete", "--force", &c.id]);
    }
    // The parent is shared: whoever made it may have gone first, so the test removes it.
    let mut left = leaked_cgroups(&parent);
    left.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in &left {
        std::fs::remove_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    for (c, (ok, err)) in containers.iter().zip(&results) {
        assert!(ok, "create {}: {err}", c.id);
    }
    assert!(leaked_cgroups(&parent).is_empty());
}
