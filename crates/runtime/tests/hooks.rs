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

/// A hook that appends `NAME STATE` (its stdin) to `log`.
fn recorder(log: &std::path::Path, name: &str) -> Value {
    json!({
        "path": "/bin/busybox",
        "args": ["sh", "-c", format!("echo \"{name} $(cat)\" >> {}", log.display())],
        "env": ["PATH=/bin"]
    })
}

/// The stages `log` recorded, in order, with the state each got.
fn recorded(log: &std::path::Path) -> Vec<(String, Value)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (name, state) = l.split_once(' ').unwrap();
            (name.to_string(), serde_json::from_str(state).unwrap())
        })
        .collect()
}

/// runtime-spec (1.0.2 to 1.2.1, what the runtime-tools conformance checks test): a failing
/// poststart or poststop hook is a warning, the remaining hooks run and the lifecycle goes on.
#[test]
fn failing_poststart_and_poststop_hooks_are_warnings_in_the_log() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("hookwarn");
    let log = c.dir.join("hooks.log");
    std::fs::create_dir_all(&c.dir).unwrap();
    let failing = |what: &str| json!({"path": "/bin/busybox", "args": ["sh", "-c", format!("echo {what} broke >&2; exit 3")]});
    c.config["hooks"] = json!({
        "poststart": [failing("poststart"), recorder(&log, "poststart")],
        "poststop": [failing("poststop"), recorder(&log, "poststop")],
    });
    c.set_args(&["sleep", "100"]);
    c.create();
    let runtime_log = c.dir.join("runtime.log");
    let logged = |args: &[&str]| {
        let mut all = vec!["--log", runtime_log.to_str().unwrap()];
        all.extend_from_slice(args);
        c.runtime(&all)
    };
    let out = logged(&["start", &c.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.status(), "running");
    c.ok(&["kill", &c.id, "KILL"]);
    c.wait_status("stopped");
    let out = logged(&["delete", &c.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!c.root.join(&c.id).exists());
    let stages: Vec<String> = recorded(&log).into_iter().map(|(n, _)| n).collect();
    assert_eq!(stages, ["poststart", "poststop"]);
    let text = std::fs::read_to_string(&runtime_log).unwrap();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("level=warning"))
        .collect();
    assert_eq!(warnings.len(), 2, "{text}");
    assert!(
        warnings[0].contains("poststart hook /bin/busybox failed")
            && warnings[0].contains("poststart broke"),
        "{text}"
    );
    assert!(
        warnings[1].contains("poststop hook /bin/busybox failed")
            && warnings[1].contains("poststop broke"),
        "{text}"
    );
    assert!(!text.contains("level=error"), "{text}");
}

/// A failing startContainer hook, or a program that cannot be executed, fails `start` (today's
/// runc exits 0) and stops the container: its process never runs.
#[test]
fn a_failing_start_container_hook_fails_start_and_stops_the_container() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("hookstart");
    let shared = c.share_dir("/shared");
    c.config["hooks"] = json!({
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no start >&2; exit 4"]}],
    });
    c.script("echo ran > /shared/ran; sleep 100");
    c.create();
    let pid = c.state()["pid"].as_i64().unwrap();
    let out = c.runtime(&["start", &c.id]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("startContainer hook /bin/sh failed") && err.contains("no start"),
        "{err}"
    );
    assert_eq!(c.status(), "stopped");
    assert!(common::gone(pid));
    assert!(
        !shared.join("ran").exists(),
        "the process ran after its hook failed"
    );
    c.ok(&["delete", &c.id]);

    // An execve that fails after start (a file that is executable but no program) is the same.
    std::fs::write(
        c.bundle.join("rootfs/bin/not-a-program"),
        "\x01\x02\x03\x04garbage",
    )
    .unwrap();
    std::fs::set_permissions(
        c.bundle.join("rootfs/bin/not-a-program"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    c.config["hooks"] = json!({});
    c.set_args(&["/bin/not-a-program"]);
    c.create();
    let out = c.runtime(&["start", &c.id]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not-a-program") && err.contains("Exec format error"),
        "{err}"
    );
    assert_eq!(c.status(), "stopped");
}

/// The spec: a failing createContainer hook fails the create, stops the container, and the
/// lifecycle goes on at destroy: the poststop hooks run (as runc's do), with status stopped.
#[test]
fn a_failing_create_container_hook_fails_create_then_poststop_runs() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("hookcc");
    let log = c.dir.join("hooks.log");
    c.config["hooks"] = json!({
        "createContainer": [{"path": "/bin/busybox", "args": ["sh", "-c", "exit 5"]}],
        "poststop": [recorder(&log, "poststop")],
    });
    c.set_args(&["true"]);
    c.write_config();
    let out = c.runtime(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("createContainer hook /bin/busybox failed"),
        "{err}"
    );
    assert!(!c.root.join(&c.id).exists(), "state dir left behind");
    assert!(common::leaked_cgroups(&c.id).is_empty());
    let hooks = recorded(&log);
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0].1["status"], "stopped");
    assert_eq!(hooks[0].1["id"], json!(c.id));
}

/// Each hook gets the status the spec names for its point, and a hook without `env` what runc
/// gives it: the runtime's environment on the host, the process's (each name once, the last
/// value) in the container. An empty `env` is an empty environment. The create-time host hooks
/// run in the bundle, as runc's.
#[test]
fn hooks_get_the_specs_status_and_runcs_environment() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("hookenv");
    let shared = c.share_dir("/shared");
    let host_log = c.dir.join("host.log");
    let host = |name: &str| {
        json!({
            "path": "/bin/busybox",
            "args": ["sh", "-c", format!(
                "echo \"{name} ${{HULL_HOOK_TEST:-unset}} ${{X:-unset}} $(pwd -P) $(cat)\" >> {}",
                host_log.display()
            )]
        })
    };
    let in_container = |name: &str, log: String| {
        json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!(
                "echo \"{name} ${{HULL_HOOK_TEST:-unset}} ${{X:-unset}} $(pwd -P) $(cat)\" >> {log}"
            )]
        })
    };
    c.config["process"]["env"] = json!(["PATH=/bin", "X=first", "X=last"]);
    c.config["hooks"] = json!({
        "prestart": [host("prestart")],
        "createRuntime": [host("createRuntime"), {
            "path": "/bin/busybox",
            "args": ["sh", "-c", format!("echo ${{HULL_HOOK_TEST:-unset}} > {}", c.dir.join("empty-env").display())],
            "env": []
        }],
        "createContainer": [in_container("createContainer", host_log.display().to_string())],
        "startContainer": [in_container("startContainer", "/shared/log".to_string())],
        "poststart": [host("poststart")],
        "poststop": [host("poststop")],
    });
    c.set_args(&["sleep", "100"]);
    c.write_config();
    let run = |args: &[&str]| {
        let out = c
            .command(args)
            .env("HULL_HOOK_TEST", "from-runtime")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let out_file = std::fs::File::create(c.dir.join("create.out")).unwrap();
    let status = c
        .command(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id])
        .env("HULL_HOOK_TEST", "from-runtime")
        .stdout(out_file.try_clone().unwrap())
        .stderr(out_file)
        .status()
        .unwrap();
    assert!(status.success());
    run(&["start", &c.id]);
    run(&["delete", "--force", &c.id]);
    let mut lines: Vec<String> = std::fs::read_to_string(&host_log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.extend(
        std::fs::read_to_string(shared.join("log"))
            .unwrap()
            .lines()
            .map(String::from),
    );
    let bundle = c.bundle.canonicalize().unwrap();
    let rootfs = bundle.join("rootfs");
    let cwd_of = |name: &str| match name {
        "prestart" | "createRuntime" => Some(bundle.display().to_string()),
        "createContainer" => Some(rootfs.display().to_string()),
        "startContainer" => Some("/".to_string()),
        _ => None,
    };
    let mut seen = Vec::new();
    for line in &lines {
        let mut parts = line.splitn(5, ' ');
        let (name, env, x, cwd, state) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let state: Value = serde_json::from_str(state).unwrap();
        let (want_status, host_side) = match name {
            "prestart" | "createRuntime" => ("creating", true),
            "createContainer" => ("creating", false),
            "startContainer" => ("created", false),
            "poststart" => ("running", true),
            "poststop" => ("stopped", true),
            other => panic!("unknown stage {other}"),
        };
        assert_eq!(state["status"], want_status, "{line}");
        if host_side {
            assert_eq!((env, x), ("from-runtime", "unset"), "{line}");
        } else {
            assert_eq!((env, x), ("unset", "last"), "{line}");
        }
        if let Some(want) = cwd_of(name) {
            assert_eq!(cwd, want, "{line}");
        }
        seen.push(name);
    }
    assert_eq!(
        seen,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop",
            "startContainer"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(c.dir.join("empty-env")).unwrap(),
        "unset\n"
    );
}
