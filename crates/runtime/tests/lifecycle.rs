//! The lifecycle through the command line: run's exit codes, create/start, kill and delete in
//! each state, exec, pause/resume, list, ps, events, and runc's errors for unknown or taken ids.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{can_run, gone, TestContainer};
use serde_json::{json, Value};

#[test]
fn run_returns_exit_status_and_128_plus_signal() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("exit");
    c.script("exit 3");
    assert_eq!(c.run().0, 3);
    // A signal from outside: `run` reports 128+N. (Inside its pid namespace, sh is init and
    // ignores signals it has no handler for, so it must come from the host.)
    c.set_args(&["sleep", "100"]);
    c.write_config();
    let mut child = c
        .command(&["run", "--bundle", c.bundle.to_str().unwrap(), &c.id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    c.wait_status("running");
    c.ok(&["kill", &c.id, "KILL"]);
    assert_eq!(child.wait().unwrap().code(), Some(128 + 9));
    // And a signal sent to `run` itself is forwarded to the process.
    c.script("trap 'exit 42' TERM; while true; do usleep 10000; done");
    c.write_config();
    let mut child = c
        .command(&["run", "--bundle", c.bundle.to_str().unwrap(), &c.id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    c.wait_status("running");
    std::thread::sleep(std::time::Duration::from_millis(100));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(42));
    c.set_args(&["true"]);
    assert_eq!(c.run().0, 0);
}

#[test]
fn run_never_hangs_on_a_process_that_exits_at_once() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("fast");
    c.set_args(&["true"]);
    for _ in 0..20 {
        let (code, _, err) = c.run();
        assert_eq!(code, 0, "{err}");
    }
}

#[test]
fn run_passes_stdout_and_environment() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("stdout");
    c.config["process"]["env"] = json!(["PATH=/bin", "GREETING=hello"]);
    c.script("echo $GREETING from $(pwd)");
    assert_eq!(c.run_ok().trim(), "hello from /");
}

#[test]
fn the_program_starts_with_sigpipe_not_ignored() {
    if !can_run() {
        return;
    }
    // The runtime itself ignores SIGPIPE (Rust's start-up); an ignored signal survives execve.
    let mut c = TestContainer::new("sigpipe");
    c.script("grep SigIgn /proc/self/status");
    let out = c.run_ok();
    let mask = out
        .split_whitespace()
        .nth(1)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or_else(|| panic!("no SigIgn line in {out:?}"));
    assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "SigIgn {mask:#x}");
}

#[test]
fn create_waits_for_start_then_kill_and_delete() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("split");
    let shared = c.share_dir("/shared");
    c.script("echo started > /shared/marker; exec sleep 100");
    c.create();
    assert_eq!(c.status(), "created");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!shared.join("marker").exists(), "process ran before start");
    let state = c.state();
    let pid = state["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(state["bundle"], json!(c.bundle.canonicalize().unwrap()));
    c.ok(&["start", &c.id]);
    assert_eq!(c.status(), "running");
    for _ in 0..500 {
        if shared.join("marker").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        std::fs::read_to_string(shared.join("marker")).unwrap(),
        "started\n"
    );
    // Starting twice is an error.
    assert!(!c.runtime(&["start", &c.id]).status.success());
    // A running container is not deleted without --force.
    let out = c.runtime(&["delete", &c.id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not stopped"));
    c.ok(&["kill", &c.id, "KILL"]);
    c.wait_status("stopped");
    assert_eq!(c.state()["pid"], json!(0));
    let out = c.runtime(&["kill", &c.id, "TERM"]);
    assert!(
        !out.status.success(),
        "kill of a stopped container must fail"
    );
    c.ok(&["delete", &c.id]);
    let out = c.runtime(&["state", &c.id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

/// The spec: deleting a container that is not stopped is an error, `created` included (runc
/// deletes a created one); with --force it is killed and removed.
#[test]
fn deleting_a_created_container_needs_force() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("delcreated");
    c.set_args(&["sleep", "100"]);
    c.create();
    let pid = c.state()["pid"].as_i64().unwrap();
    let out = c.runtime(&["delete", &c.id]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot delete container {} that is not stopped: created",
            c.id
        )),
        "{err}"
    );
    assert_eq!(c.status(), "created", "a refused delete must not touch it");
    assert!(!gone(pid));
    c.ok(&["delete", "--force", &c.id]);
    assert!(gone(pid));
    assert!(!c.root.join(&c.id).exists());
    assert!(common::leaked_cgroups(&c.id).is_empty());
}

#[test]
fn duplicate_and_unknown_ids_fail_like_runc() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("dup");
    c.set_args(&["sleep", "100"]);
    c.create();
    let out = c.runtime(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(
        c.status(),
        "created",
        "the failed create must not touch the first"
    );
    let out = c.runtime(&["kill", "hull-no-such-container", "KILL"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let out = c.runtime(&["state", "../escape"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn exec_runs_in_the_container_and_returns_its_status() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("exec");
    c.config["hostname"] = json!("exec-host");
    c.set_args(&["sleep", "100"]);
    c.create();
    c.ok(&["start", &c.id]);
    let out = c.ok(&["exec", &c.id, "hostname"]);
    assert_eq!(out.trim(), "exec-host");
    let out = c.ok(&[
        "exec",
        "--env",
        "X=42",
        "--cwd",
        "/tmp",
        &c.id,
        "sh",
        "-c",
        "echo $X $(pwd)",
    ]);
    assert_eq!(out.trim(), "42 /tmp");
    let out = c.runtime(&["exec", &c.id, "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    // Same pid namespace as the first process: it is pid 1 there.
    let out = c.ok(&["exec", &c.id, "cat", "/proc/1/cmdline"]);
    assert!(out.starts_with("sleep"), "{out:?}");
    // Detached, with a pid file.
    let pid_file = c.dir.join("exec.pid");
    let (ok, err) = c.detached(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &c.id,
        "sleep",
        "50",
    ]);
    assert!(ok, "{err}");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pids: Vec<i32> = serde_json::from_str(&c.ok(&["ps", "--format", "json", &c.id])).unwrap();
    assert!(pids.contains(&pid), "{pid} not in {pids:?}");
    let out = c.runtime(&["exec", &c.id, "/no/such/program"]);
    assert!(!out.status.success());
    // A whole process.json, as containerd passes it.
    let process = c.dir.join("process.json");
    let mut spec = c.config["process"].clone();
    spec["args"] = json!(["sh", "-c", "echo from-process-json $HULL_X"]);
    spec["env"] = json!(["PATH=/bin", "HULL_X=x1"]);
    std::fs::write(&process, spec.to_string()).unwrap();
    let out = c.ok(&["exec", "--process", process.to_str().unwrap(), &c.id]);
    assert_eq!(out.trim(), "from-process-json x1");
    // Flags that would reshape that process are refused rather than dropped.
    let out = c.runtime(&[
        "exec",
        "--process",
        process.to_str().unwrap(),
        "--tty",
        &c.id,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tty"));
}

#[test]
fn pause_freezes_and_resume_thaws() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("pause");
    let shared = c.share_dir("/shared");
    c.script("i=0; while true; do i=$((i+1)); echo $i > /shared/n; usleep 10000; done");
    c.create();
    c.ok(&["start", &c.id]);
    let read = || -> u64 {
        std::fs::read_to_string(shared.join("n"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    c.ok(&["pause", &c.id]);
    assert_eq!(c.status(), "paused");
    let frozen = read();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(read(), frozen, "counter advanced while paused");
    assert!(
        !c.runtime(&["pause", &c.id]).status.success(),
        "pausing twice must fail"
    );
    c.ok(&["resume", &c.id]);
    assert_eq!(c.status(), "running");
    // The shell truncates the file before each write: a read may see it empty (0) once, so the
    // counter is polled until it passes the frozen value.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while read() <= frozen {
        assert!(
            std::time::Instant::now() < deadline,
            "counter did not advance after resume"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn list_ps_and_events() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("list");
    c.set_args(&["sleep", "100"]);
    c.create();
    c.ok(&["start", &c.id]);
    let list: Value = serde_json::from_str(&c.ok(&["list", "--format", "json"])).unwrap();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == json!(c.id))
        .unwrap();
    assert_eq!(entry["status"], json!("running"));
    let table = c.ok(&["list"]);
    assert!(table.starts_with("ID"));
    assert!(table.contains(&c.id));
    let pid = c.state()["pid"].as_i64().unwrap();
    let ps = c.ok(&["ps", &c.id]);
    assert!(
        ps.lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some(&pid.to_string())),
        "{ps}"
    );
    let events: Value = serde_json::from_str(c.ok(&["events", "--stats", &c.id]).trim()).unwrap();
    assert_eq!(events["type"], json!("stats"));
    assert_eq!(events["id"], json!(c.id));
    assert!(
        events["data"]["pids"]["current"].as_u64().unwrap() >= 1,
        "{events}"
    );
}

#[test]
fn kill_all_signals_every_process() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("killall");
    c.script("sleep 100 & sleep 100 & wait");
    c.create();
    c.ok(&["start", &c.id]);
    for _ in 0..100 {
        let pids: Vec<i32> =
            serde_json::from_str(&c.ok(&["ps", "--format", "json", &c.id])).unwrap();
        if pids.len() >= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    c.ok(&["kill", "--all", &c.id, "9"]);
    c.wait_status("stopped");
    c.ok(&["delete", &c.id]);
}

#[test]
fn events_reports_an_oom_kill() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("oom");
    c.config["linux"]["resources"]["memory"] = json!({"limit": 32 * 1024 * 1024});
    // busybox tail keeps a line of /dev/zero (which never ends) in memory until the OOM killer
    // ends it; sh (pid 1) survives for a while so `events` sees the kill while running.
    c.script("sleep 1; tail /dev/zero; sleep 3");
    c.create();
    c.ok(&["start", &c.id]);
    let mut events = c
        .command(&["events", "--interval", "200ms", &c.id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = events.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut saw_oom = false;
    let mut saw_stats = false;
    while std::time::Instant::now() < deadline && !saw_oom {
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            let event: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(event["id"], json!(c.id));
            saw_oom |= event["type"] == json!("oom");
            saw_stats |= event["type"] == json!("stats");
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    assert!(saw_stats, "no stats event");
    assert!(saw_oom, "no oom event");
}

#[test]
fn a_runtime_killed_mid_create_leaves_a_container_delete_removes() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("crash");
    // The hook's parent is the runtime: kill it while the container process is half set up.
    c.config["hooks"] = json!({
        "createRuntime": [{"path": "/bin/busybox", "args": ["sh", "-c", "kill -9 $PPID"]}]
    });
    c.set_args(&["true"]);
    c.write_config();
    let (ok, _) = c.detached(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    assert!(!ok, "the runtime was killed, yet create succeeded");
    assert!(
        !common::leaked_cgroups(&c.id).is_empty(),
        "the test did not crash after the cgroup"
    );
    // The half-made container's process notices its runtime is gone and exits.
    c.wait_status("stopped");
    let list = c.ok(&["list", "--quiet"]);
    assert!(list.lines().any(|l| l == c.id), "{list}");
    c.ok(&["delete", &c.id]);
    assert!(
        common::leaked_cgroups(&c.id).is_empty(),
        "cgroup left after delete"
    );
    assert!(!c.root.join(&c.id).exists());
}

/// The spec requires `process` only for start: create takes a config without one, and start
/// refuses it, leaving the container as it was.
#[test]
fn a_config_without_process_creates_and_refuses_to_start() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("noprocess");
    c.config.as_object_mut().unwrap().remove("process");
    c.create();
    assert_eq!(c.status(), "created");
    let pid = c.state()["pid"].as_i64().unwrap();
    assert!(pid > 0);
    let out = c.runtime(&["start", &c.id]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot start container {}: its config.json has no process",
            c.id
        )),
        "{err}"
    );
    assert_eq!(c.status(), "created");
    assert!(!gone(pid));
    // Its namespaces are there to join.
    let out = c.ok(&["exec", "--process", &write_process(&c), &c.id]);
    assert_eq!(out.trim(), "joined");
    c.ok(&["delete", "--force", &c.id]);
    assert!(gone(pid));
}

fn write_process(c: &TestContainer) -> String {
    let path = c.dir.join("process.json");
    let process = json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh", "-c", "echo joined"],
        "env": ["PATH=/bin"],
        "cwd": "/"
    });
    std::fs::write(&path, process.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}
