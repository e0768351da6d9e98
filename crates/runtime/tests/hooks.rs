//! OCI hooks: all six stages run, in the spec's order, each with the state JSON on stdin, its
//! args and env; a failing createRuntime hook fails the create and leaves nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{can_run, TestContainer};
use serde_json::{json, Value};

fn host_hook(log: &std::path::Path, name: &str) -> Value {
    json!({
        "path": "/bin/busybox",
        "args": ["sh", "-c", format!("read -r state; echo \"{name} $HOOK_ENV $state\" >> {}", log.display())],
        "env": ["HOOK_ENV=env-ok"]
    })
}

#[test]
fn all_hooks_run_in_order_with_state_on_stdin() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("hooks");
    let log = c.share_dir("/shared").join("log");
    let in_container = json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", "read -r state; echo \"startContainer $HOOK_ENV $state\" >> /shared/log"],
        "env": ["HOOK_ENV=env-ok"]
    });
    c.config["hooks"] = json!({
        "prestart": [host_hook(&log, "prestart")],
        "createRuntime": [host_hook(&log, "createRuntime")],
        "createContainer": [host_hook(&log, "createContainer")],
        "startContainer": [in_container],
        "poststart": [host_hook(&log, "poststart")],
        "poststop": [host_hook(&log, "poststop")],
    });
    c.script("echo process >> /shared/log");
    c.run_ok();
    let text = std::fs::read_to_string(&log).unwrap();
    let stages: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    let order: Vec<&str> = stages.iter().copied().filter(|s| *s != "process").collect();
    assert_eq!(
        order,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{text}"
    );
    for line in text.lines().filter(|l| !l.starts_with("process")) {
        let (_, rest) = line.split_once(' ').unwrap();
        let (env, state) = rest.split_once(' ').unwrap();
        assert_eq!(env, "env-ok", "{line}");
        let state: Value = serde_json::from_str(state).unwrap();
        assert_eq!(state["id"], json!(c.id), "{line}");
        assert!(
            state["pid"].as_i64().unwrap_or(0) > 0 || line.starts_with("poststop"),
            "{line}"
        );
    }
}

#[test]
fn failing_hook_fails_create_and_leaves_nothing() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("hookfail");
    c.config["hooks"] = json!({
        "createRuntime": [{"path": "/bin/busybox", "args": ["sh", "-c", "echo broken hook >&2; exit 3"]}]
    });
    c.set_args(&["true"]);
    c.write_config();
    let out = c.runtime(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("createRuntime") && err.contains("broken hook"),
        "{err}"
    );
    assert!(!c.root.join(&c.id).exists(), "state dir left behind");
    assert!(common::leaked_cgroups(&c.id).is_empty());
}

#[test]
fn hook_timeout_kills_the_hook() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("hooktimeout");
    c.config["hooks"] = json!({
        "createRuntime": [{"path": "/bin/busybox", "args": ["sleep", "30"], "timeout": 1}]
    });
    c.set_args(&["true"]);
    let started = std::time::Instant::now();
    let (code, _, err) = c.run();
    assert_ne!(code, 0);
    assert!(err.contains("timed out"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
