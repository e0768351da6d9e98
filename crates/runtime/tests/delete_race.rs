//! `delete --force` racing `create` leaves no live container process behind: sent while a
//! prestart hook runs (it waits for the create), right after create returns, and at any moment
//! of it. Whatever the order, a container either exists with its state (and a later delete
//! finds it) or has no process, cgroup or state left.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{can_run, TestContainer};
use serde_json::{json, Value};

/// Pids of live (not zombie) processes whose command line names `id`: the container's process
/// is a clone of the `create` that made it until it executes its program.
fn processes_of(id: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let names_id = cmdline.split(|b| *b == 0).any(|arg| arg == id.as_bytes());
        if names_id && !common::gone(i64::from(pid)) {
            found.push(pid);
        }
    }
    found
}

fn spawn_create(c: &TestContainer) -> Child {
    c.command(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn delete_force(c: &TestContainer) {
    let out = c.runtime(&["delete", "--force", &c.id]);
    assert!(
        out.status.success(),
        "delete --force: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// After both commands returned: the container is recorded, or nothing of it is left.
fn recorded_or_gone(c: &TestContainer, what: &str) -> bool {
    if c.runtime(&["state", &c.id]).status.success() {
        return true;
    }
    // Let the killed processes be reaped.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_of(&c.id).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        processes_of(&c.id).is_empty(),
        "{what}: a process of a container without state"
    );
    assert!(
        common::leaked_cgroups(&c.id).is_empty(),
        "{what}: cgroups without state"
    );
    assert!(
        !c.root.join(&c.id).exists(),
        "{what}: a state directory without state"
    );
    false
}

#[test]
fn delete_force_while_a_prestart_hook_runs_waits_and_kills() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("racehook");
    let states = c.dir.join("hook-states");
    // The hook records the state it got (the container's pid with it), then takes its time.
    c.config["hooks"] = json!({
        "prestart": [{"path": "/bin/busybox", "args": ["sh", "-c",
            format!("cat >> {}; echo >> {}; sleep 0.3", states.display(), states.display())]}]
    });
    c.set_args(&["sleep", "100"]);
    c.write_config();
    for round in 0..5 {
        let before = std::fs::read_to_string(&states)
            .unwrap_or_default()
            .lines()
            .count();
        let mut create = spawn_create(&c);
        // Wait until the hook runs.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&states)
            .unwrap_or_default()
            .lines()
            .count()
            == before
        {
            assert!(Instant::now() < deadline, "the hook never ran");
            std::thread::sleep(Duration::from_millis(5));
        }
        delete_force(&c);
        let created = create.wait().unwrap().success();
        let text = std::fs::read_to_string(&states).unwrap();
        let state: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        let pid = i32::try_from(state["pid"].as_i64().unwrap()).unwrap();
        assert!(created, "round {round}: the create was disturbed");
        assert!(
            common::gone(i64::from(pid)),
            "round {round}: the container's process {pid} lives on"
        );
        assert!(
            !recorded_or_gone(&c, "after a hook"),
            "round {round}: still there"
        );
    }
}

#[test]
fn delete_force_right_after_create_returns() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("raceafter");
    c.set_args(&["sleep", "100"]);
    c.write_config();
    for round in 0..20 {
        let status = spawn_create(&c).wait().unwrap();
        assert!(status.success(), "round {round}: create");
        let pid = i32::try_from(c.state()["pid"].as_i64().unwrap()).unwrap();
        delete_force(&c);
        assert!(
            common::gone(i64::from(pid)),
            "round {round}: the container's process {pid} lives on"
        );
        assert!(
            !recorded_or_gone(&c, "after create"),
            "round {round}: still there"
        );
    }
}

/// Before the fix, about 1 in 50 left a live process whose state directory the delete had
/// removed: it took the lock file between its creation and create's lock, found no state, and
/// removed what it took for a dead create's directory.
#[test]
fn delete_force_at_any_moment_of_create() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("raceany");
    c.set_args(&["sleep", "100"]);
    c.write_config();
    for round in 0..150u64 {
        let mut create = spawn_create(&c);
        // Spread over the create's life (a few ms in a debug build).
        std::thread::sleep(Duration::from_micros((round * 7919) % 12_000));
        delete_force(&c);
        let _ = create.wait().unwrap();
        if recorded_or_gone(&c, &format!("round {round}")) {
            // The delete came first and found nothing; the create then made a whole container.
            delete_force(&c);
            assert!(!recorded_or_gone(&c, "the second delete"));
        }
    }
    assert!(
        !Path::new(&c.root).read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".creating")),
        "a create's private directory was left"
    );
}
